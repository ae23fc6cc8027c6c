// Scans (recurrent layers as compiled loops): the gradient the compiled
// reverse scan gives, against float64 central finite differences of the loss
// computed by the naive reference of RecurrentTests; and a scan's code does
// not grow with the number of time steps.

import Foundation
import XCTest
import Kiln
import KilnIR
import KilnPasses
import KilnRuntime

final class ScanTests: XCTestCase {
    typealias Seq = [[Double]]

    /// One configuration: the layer (two specs for Bidirectional) and whether a Masking layer feeds it.
    struct Case {
        var specs: [RecurrentSpec]
        var merge: MergeMode? = nil
        var masked: Bool
        var name: String
    }

    let (t, f, rows) = (5, 3, 4)

    /// The model's output for all rows in float64, and the per-output mask (rows, t) when the output is a masked sequence.
    func forward(_ c: Case, _ weights: [[Double]], _ data: [Float]) -> (out: [Double], mask: [Bool]?) {
        var out: [Double] = []
        var outMask: [Bool] = []
        for row in 0..<rows {
            let seq: Seq = (0..<t).map { s in (0..<f).map { Double(data[(row * t + s) * f + $0]) } }
            let mask: [Bool]? = c.masked ? (0..<t).map { s in seq[s].contains { $0 != 0 } } : nil
            var offset = 0
            var results: [(steps: Seq, last: [Double], states: [[Double]])] = []
            for s in c.specs {
                let ws = Array(weights[offset..<(offset + s.weightCount)])
                offset += s.weightCount
                results.append(RecurrentTests.referenceWithStates(s, x: seq, mask: mask, w: ws[0], u: ws[1], b: s.useBias ? ws[2] : nil))
            }
            let s0 = c.specs[0]
            if let merge = c.merge {
                func combine(_ a: [Double], _ b: [Double]) -> [Double] { RecurrentTests.merge(merge, a, b) }
                if s0.returnSequences {
                    let back = Array(results[1].steps.reversed())
                    for s in 0..<t { out += combine(results[0].steps[s], back[s]) }
                } else {
                    out += combine(results[0].last, results[1].last)
                }
            } else {
                out += s0.returnSequences ? results[0].steps.flatMap { $0 } : results[0].last
            }
            // return_state: the states follow the output in one concatenated row (see check).
            if s0.returnState { out += results.flatMap { $0.states.flatMap { $0 } } }
            if let mask, s0.returnSequences {
                // As Keras does, the output mask is the input's, even for go_backwards outputs.
                outMask += mask
            }
        }
        return (out, outMask.isEmpty ? nil : outMask)
    }

    /// Keras' mean squared error (sum_over_batch_size), masked steps weighing nothing.
    func loss(_ c: Case, _ weights: [[Double]], _ data: [Float], _ target: [Float]) -> Double {
        let (out, mask) = forward(c, weights, data)
        guard let mask else { return zip(out, target).reduce(0) { $0 + pow($1.0 - Double($1.1), 2) } / Double(out.count) }
        let width = out.count / mask.count
        var sum = 0.0, count = 0.0
        for (k, keep) in mask.enumerated() where keep {
            sum += (0..<width).reduce(0) { $0 + pow(out[k * width + $1] - Double(target[k * width + $1]), 2) } / Double(width)
            count += 1
        }
        return sum / max(count, 1)
    }

    func check(_ c: Case, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) throws {
        var r = TestRNG(seed)
        var m = GraphMaker("scan")
        let x = m.input("x", [t, f])
        var weights: [[Float]] = []
        var params: [Value] = []
        for (k, s) in c.specs.enumerated() {
            for (j, shape) in s.weightShapes(features: f).enumerated() {
                let w = r.floats(shape.reduce(1, *), -0.7, 0.7)
                weights.append(w)
                params.append(m.param("l\(k)/w\(j)", shape, w))
            }
        }
        let input = c.masked ? try m.layer(MaskingKind(value: 0).op, [x], "masking") : x
        let op: LayerOp = c.merge.map { BidirectionalKind(forward: c.specs[0], backward: c.specs[1], merge: $0, masked: false, innerName: "rnn").op } ?? RNNKind(c.specs[0], masked: false).op
        let outs = try m.g.add(.layer(op), [input] + params, layer: "rnn")
        // With return_state the output and every state are concatenated into one output row.
        m.output(outs.count == 1 ? outs[0] : try m.layer(ConcatenateKind(axis: -1).op, outs, "concatenate"), "rnn")
        let training = TrainingConfig(losses: [LossConfig(name: "mean_squared_error")], optimizer: OptimizerConfig(name: "SGD", learningRate: 1))
        let lib = try compileAndLoad(m.model(training: training), name: "scan", dir: try makeTempDir(self))

        var data = r.floats(rows * t * f)
        // Masked steps (all features zero): trailing, leading and inside.
        for (row, step) in [(0, 4), (1, 0), (2, 2), (2, 3), (2, 4)] { for j in 0..<f { data[(row * t + step) * f + j] = 0 } }
        let outCount = forward(c, weights.map { $0.map(Double.init) }, data).out.count
        let target = r.floats(outCount)
        let outShape = c.specs[0].returnSequences ? [rows, t, outCount / (rows * t)] : [rows, outCount / rows]
        _ = try lib.trainStep(x: [HostTensor(shape: [rows, t, f], floats: data)], y: [HostTensor(shape: outShape, floats: target)])
        let after = lib.getWeights().map(\.floats)
        // SGD with learning rate 1: the gradient is the change of the weights.
        let w64 = weights.map { $0.map(Double.init) }
        for (k, w) in weights.enumerated() {
            let compiled = zip(w, after[k]).map { Double($0 - $1) }
            var numeric: [Double] = []
            for i in w.indices {
                var plus = w64, minus = w64
                let h = 1e-6
                plus[k][i] += h; minus[k][i] -= h
                numeric.append((loss(c, plus, data, target) - loss(c, minus, data, target)) / (2 * h))
            }
            assertClose(compiled.map(Float.init), numeric, rtol: 2e-3, atol: 2e-6, "\(c.name): gradient of weight \(k)", file: file, line: line)
        }
    }

    func testLSTMGradients() throws {
        for masked in [false, true] {
            try check(Case(specs: [RecurrentSpec(kind: .lstm, units: 3, returnSequences: true)], masked: masked, name: "lstm seq masked=\(masked)"), seed: 1)
            try check(Case(specs: [RecurrentSpec(kind: .lstm, units: 3)], masked: masked, name: "lstm last masked=\(masked)"), seed: 2)
            try check(Case(specs: [RecurrentSpec(kind: .lstm, units: 2, returnSequences: true, goBackwards: true)], masked: masked,
                           name: "lstm backwards masked=\(masked)"), seed: 3)
        }
        try check(Case(specs: [RecurrentSpec(kind: .lstm, units: 3, activation: .relu, recurrentActivation: .hardSigmoid, useBias: false,
                                             returnSequences: true)], masked: true, name: "lstm relu/hard_sigmoid"), seed: 4)
    }

    func testGRUGradients() throws {
        for masked in [false, true] {
            try check(Case(specs: [RecurrentSpec(kind: .gru, units: 3, returnSequences: true)], masked: masked, name: "gru seq masked=\(masked)"), seed: 5)
            try check(Case(specs: [RecurrentSpec(kind: .gru, units: 3, goBackwards: true)], masked: masked, name: "gru backwards masked=\(masked)"), seed: 6)
            // reset_after false is unrolled: its gradient comes from the primitives' rules.
            try check(Case(specs: [RecurrentSpec(kind: .gru, units: 2, returnSequences: true, resetAfter: false)], masked: masked,
                           name: "gru reset_before masked=\(masked)"), seed: 7)
        }
        try check(Case(specs: [RecurrentSpec(kind: .gru, units: 2, useBias: false, returnSequences: true)], masked: true, name: "gru no bias"), seed: 8)
    }

    func testSimpleRNNGradients() throws {
        for masked in [false, true] {
            try check(Case(specs: [RecurrentSpec(kind: .simpleRNN, units: 3, returnSequences: true)], masked: masked, name: "rnn seq masked=\(masked)"), seed: 9)
            try check(Case(specs: [RecurrentSpec(kind: .simpleRNN, units: 3, goBackwards: true)], masked: masked, name: "rnn backwards masked=\(masked)"), seed: 10)
        }
    }

    func testBidirectionalGradients() throws {
        for (merge, seqs) in [(MergeMode.concat, true), (.sum, false), (.mul, true), (.ave, true)] {
            for masked in [false, true] {
                let fw = RecurrentSpec(kind: .lstm, units: 2, returnSequences: seqs, zeroOutputForMask: true)
                var bw = fw
                bw.goBackwards = true
                try check(Case(specs: [fw, bw], merge: merge, masked: masked, name: "bidirectional \(merge.rawValue) seqs=\(seqs) masked=\(masked)"), seed: 11)
            }
        }
    }

    /// return_state: the final h (and c) as outputs of their own, their gradients flowing back through the scan.
    func testReturnStateGradients() throws {
        for masked in [false, true] {
            try check(Case(specs: [RecurrentSpec(kind: .lstm, units: 3, returnState: true)], masked: masked, name: "lstm state masked=\(masked)"), seed: 13)
            try check(Case(specs: [RecurrentSpec(kind: .lstm, units: 2, goBackwards: true, zeroOutputForMask: true, returnState: true)], masked: masked,
                           name: "lstm backwards zero-masked state masked=\(masked)"), seed: 14)
            try check(Case(specs: [RecurrentSpec(kind: .gru, units: 3, returnState: true)], masked: masked, name: "gru state masked=\(masked)"), seed: 15)
            try check(Case(specs: [RecurrentSpec(kind: .gru, units: 2, resetAfter: false, returnState: true)], masked: masked,
                           name: "gru reset-before state masked=\(masked)"), seed: 16)
            try check(Case(specs: [RecurrentSpec(kind: .simpleRNN, units: 3, goBackwards: true, returnState: true)], masked: masked,
                           name: "rnn backwards state masked=\(masked)"), seed: 17)
            let fw = RecurrentSpec(kind: .lstm, units: 2, returnState: true)
            var bw = fw
            bw.goBackwards = true
            try check(Case(specs: [fw, bw], merge: .sum, masked: masked, name: "bidirectional state masked=\(masked)"), seed: 18)
        }
    }

    /// The same model with T = 10 and T = 1000, as scans: the same program (steps) and about the same library.
    func testCodeDoesNotGrowWithSteps() throws {
        var sizes: [Int] = [], schedules: [Int] = []
        for steps in [10, 1000] {
            var r = TestRNG(12)
            var m = GraphMaker("long_seq")
            let x = m.input("x", [steps, 4])
            let spec = RecurrentSpec(kind: .lstm, units: 8, returnSequences: true)
            let ws = spec.weightShapes(features: 4).enumerated().map { j, s in m.param("w\(j)", s, r.floats(s.reduce(1, *))) }
            m.output(try m.layer(RNNKind(spec, masked: false).op, [try m.layer(MaskingKind(value: 0).op, [x], "masking")] + ws, "lstm"), "lstm")
            let training = TrainingConfig(losses: [LossConfig(name: "mean_absolute_error")], optimizer: OptimizerConfig(name: "Adam", learningRate: 0.001))
            var options = CompileOptions()
            options.printAfter = ["schedule"]
            options.unroll = .never
            var log = ""
            let a = try Compiler.compile(m.model(training: training), name: "long_seq", to: try makeTempDir(self), options: options) { log += $0 + "\n" }
            sizes.append(try FileManager.default.attributesOfItem(atPath: a.library)[.size] as! Int)
            schedules.append(log.split(separator: "\n").count)
        }
        XCTAssertEqual(schedules[0], schedules[1], "the schedules of T = 10 and T = 1000 differ in length")
        XCTAssertLessThan(Double(sizes[1]), Double(sizes[0]) * 1.1, "library sizes \(sizes) for T = 10 and 1000")
    }
}
