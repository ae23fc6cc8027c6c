// Recurrent layers against a naive float64 reference written here from Keras'
// definitions: LSTM (gates i, f, c, o), GRU (z, r, h; reset after or before the
// recurrent product), SimpleRNN; return_sequences, go_backwards, masks (a masked
// step keeps the state and repeats the previous output, or outputs zeros), and
// Bidirectional merges.

import Foundation
import XCTest
import Kiln
import KilnIR
import KilnRuntime

final class RecurrentTests: XCTestCase {
    typealias Seq = [[Double]]   // [t][feature] for one sample

    static func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }

    /// Bidirectional's merge of the forward and backward outputs of one step.
    static func merge(_ mode: MergeMode, _ a: [Double], _ b: [Double]) -> [Double] {
        switch mode {
        case .concat: return a + b
        case .sum: return zip(a, b).map(+)
        case .mul: return zip(a, b).map(*)
        case .ave: return zip(a, b).map { ($0 + $1) / 2 }
        }
    }

    /// The activations a recurrent cell may use here, as Keras defines them.
    static func apply(_ a: Activation, _ x: Double) -> Double {
        switch a {
        case .tanh: return tanh(x)
        case .sigmoid: return sigmoid(x)
        case .relu: return max(x, 0)
        case .linear: return x
        case .hardSigmoid: return min(max(x / 6 + 0.5, 0), 1)
        default: fatalError("no reference for \(a)")
        }
    }

    /// One layer over one sample: outputs in processing order and the last output.
    static func reference(_ s: RecurrentSpec, x: Seq, mask: [Bool]?, w: [Double], u: [Double], b: [Double]?) -> (steps: Seq, last: [Double]) {
        let r = referenceWithStates(s, x: x, mask: mask, w: w, u: u, b: b)
        return (r.steps, r.last)
    }

    /// The reference's outputs and its final states (h, and c for LSTM), as return_state gives them.
    static func referenceWithStates(_ s: RecurrentSpec, x: Seq, mask: [Bool]?, w: [Double], u: [Double], b: [Double]?)
        -> (steps: Seq, last: [Double], states: [[Double]]) {
        let n = s.units, g = s.kind.gates * n, f = x[0].count
        var h = [Double](repeating: 0, count: n), c = h, prevOut = h
        var outs: Seq = []
        let order = s.goBackwards ? Array((0..<x.count).reversed()) : Array(0..<x.count)
        func rowTimes(_ v: [Double], _ m: [Double], cols: Int, from: Int, count: Int) -> [Double] {
            (0..<count).map { j in (0..<v.count).reduce(0) { $0 + v[$1] * m[$1 * cols + from + j] } }
        }
        for t in order {
            var xp = rowTimes(x[t], w, cols: g, from: 0, count: g)
            let rb: [Double]?
            if let b {
                if s.kind == .gru && s.resetAfter { for j in 0..<g { xp[j] += b[j] }; rb = Array(b[g..<(2 * g)]) }
                else { for j in 0..<g { xp[j] += b[j] }; rb = nil }
            } else { rb = nil }
            var hNew = h, cNew = c
            let ra = { (x: Double) in Self.apply(s.recurrentActivation, x) }, ca = { (x: Double) in Self.apply(s.activation, x) }
            switch s.kind {
            case .lstm:
                let r = rowTimes(h, u, cols: g, from: 0, count: g)
                for j in 0..<n {
                    let i = ra(xp[j] + r[j]), fg = ra(xp[n + j] + r[n + j])
                    let cc = ca(xp[2 * n + j] + r[2 * n + j]), o = ra(xp[3 * n + j] + r[3 * n + j])
                    cNew[j] = fg * c[j] + i * cc
                    hNew[j] = o * ca(cNew[j])
                }
            case .gru:
                if s.resetAfter {
                    var inner = rowTimes(h, u, cols: g, from: 0, count: g)
                    if let rb { for j in 0..<g { inner[j] += rb[j] } }
                    for j in 0..<n {
                        let z = ra(xp[j] + inner[j]), r = ra(xp[n + j] + inner[n + j])
                        let hh = ca(xp[2 * n + j] + r * inner[2 * n + j])
                        hNew[j] = z * h[j] + (1 - z) * hh
                    }
                } else {
                    let inner = rowTimes(h, u, cols: g, from: 0, count: 2 * n)
                    let z = (0..<n).map { ra(xp[$0] + inner[$0]) }, r = (0..<n).map { ra(xp[n + $0] + inner[n + $0]) }
                    let rh = (0..<n).map { r[$0] * h[$0] }
                    let rec = rowTimes(rh, u, cols: g, from: 2 * n, count: n)
                    for j in 0..<n { hNew[j] = z[j] * h[j] + (1 - z[j]) * ca(xp[2 * n + j] + rec[j]) }
                }
            case .simpleRNN:
                let r = rowTimes(h, u, cols: g, from: 0, count: n)
                for j in 0..<n { hNew[j] = ca(xp[j] + r[j]) }
            }
            _ = f
            var out = hNew
            if let mask, !mask[t] {
                out = s.zeroOutputForMask ? [Double](repeating: 0, count: n) : prevOut
            } else {
                h = hNew; c = cNew
            }
            prevOut = out
            outs.append(out)
        }
        return (outs, outs.last!, s.kind == .lstm ? [h, c] : [h])
    }

    struct Setup {
        var spec: RecurrentSpec
        var weights: [[Float]]
    }

    func makeWeights(_ s: RecurrentSpec, features: Int, _ r: inout TestRNG) -> [[Float]] {
        s.weightShapes(features: features).map { r.floats($0.reduce(1, *), -0.6, 0.6) }
    }

    /// Builds x -> [Masking-like mask from zero rows] -> layer, compiles, predicts, compares.
    /// Which steps of the data are all zero (masked): a mix of leading, inner and trailing ones; right
    /// padding of several lengths (with inner holes and an empty row); or left padding. Right and left
    /// padding let the driver leave finished or unstarted rows out of a step (kiln_scan.c, row order).
    enum Padding { case mixed, right, left }

    func run(_ specs: [RecurrentSpec], bidirectional merge: MergeMode? = nil, masked: Bool, seed: UInt64, padding: Padding = .mixed,
             size: (t: Int, f: Int, rows: Int) = (5, 3, 7), file: StaticString = #filePath, line: UInt = #line) throws {
        let (t, f, rows) = size
        var r = TestRNG(seed)
        var m = GraphMaker("rnn")
        let x = m.input("x", [t, f])
        var weights: [[Float]] = []
        var params: [Value] = []
        for (k, s) in specs.enumerated() {
            for (j, shape) in s.weightShapes(features: f).enumerated() {
                let w = r.floats(shape.reduce(1, *), -0.6, 0.6)
                weights.append(w)
                params.append(m.param("l\(k)/w\(j)", shape, w))
            }
        }
        var input = x
        if masked { input = try m.layer(MaskingKind(value: 0).op, [x], "masking") }
        let op: LayerOp = merge.map { BidirectionalKind(forward: specs[0], backward: specs[1], merge: $0, masked: false, innerName: "rnn").op } ?? RNNKind(specs[0], masked: false).op
        m.output(try m.layer(op, [input] + params, "rnn"), "rnn")
        let dir = try makeTempDir(self)
        let lib = try compileAndLoad(m.model(), name: "rnn", dir: dir)

        // Data: some steps all zero (masked when masking is on): trailing, leading and middle ones.
        var data = r.floats(rows * t * f)
        var zeroSteps: [(Int, Int)] = [(0, 4), (1, 0), (2, 2), (3, 3), (3, 4), (5, 0), (5, 1), (5, 2), (5, 3), (5, 4)]
        if padding != .mixed {
            // Row i keeps (i * 5) % (t + 1) steps (0 for an empty row), at the end or at the start; rows
            // of 3 steps or more also lose their second real step.
            zeroSteps = []
            for row in 0..<rows {
                let len = (row * 5) % (t + 1)
                let real = padding == .right ? Array(0..<len) : Array((t - len)..<t)
                for s in 0..<t where !real.contains(s) || (len >= 3 && s == real[1]) { zeroSteps.append((row, s)) }
            }
        }
        for (row, step) in zeroSteps { for j in 0..<f { data[(row * t + step) * f + j] = 0 } }
        let y = try lib.predict([HostTensor(shape: [rows, t, f], floats: data)])[0]

        var want: [Double] = []
        for row in 0..<rows {
            let seq: Seq = (0..<t).map { s in (0..<f).map { Double(data[(row * t + s) * f + $0]) } }
            let mask: [Bool]? = masked ? (0..<t).map { s in seq[s].contains { $0 != 0 } } : nil
            var offset = 0
            var results: [(Seq, [Double])] = []
            for s in specs {
                let ws = weights[offset..<(offset + s.weightCount)].map { $0.map(Double.init) }
                offset += s.weightCount
                results.append(Self.reference(s, x: seq, mask: mask, w: ws[0], u: ws[1], b: s.useBias ? ws[2] : nil))
            }
            let s0 = specs[0]
            if let merge {
                let (fw, bw) = (results[0], results[1])
                func combine(_ a: [Double], _ b: [Double]) -> [Double] { Self.merge(merge, a, b) }
                if s0.returnSequences {
                    let back = Array(bw.0.reversed())
                    for s in 0..<t { want += combine(fw.0[s], back[s]) }
                } else {
                    want += combine(fw.1, bw.1)
                }
            } else {
                want += s0.returnSequences ? results[0].0.flatMap { $0 } : results[0].1
            }
        }
        assertClose(y.floats, want, rtol: 1e-5, atol: 2e-6, "\(specs[0].kind.rawValue) \(merge.map { "bidirectional \($0.rawValue)" } ?? "") masked=\(masked)", file: file, line: line)
    }

    /// Right- and left-padded batches, where the driver runs only the rows still (or already) taking
    /// real steps: every layer kind, both directions, zero or repeated outputs on masked steps, a
    /// Bidirectional layer, and a batch large enough to be split over threads.
    func testPaddedBatchesInRowOrder() throws {
        var seed: UInt64 = 200
        for padding in [Padding.right, .left] {
            for kind in [RecurrentKind.lstm, .gru, .simpleRNN] {
                for (seqs, back, zero) in [(true, false, false), (false, false, false), (true, true, true), (false, true, false)] {
                    seed += 1
                    try run([RecurrentSpec(kind: kind, units: 4, returnSequences: seqs, goBackwards: back, zeroOutputForMask: zero)],
                            masked: true, seed: seed, padding: padding)
                }
            }
            let fw = RecurrentSpec(kind: .lstm, units: 3, returnSequences: true, zeroOutputForMask: true)
            var bw = fw
            bw.goBackwards = true
            try run([fw, bw], bidirectional: .concat, masked: true, seed: 250, padding: padding)
            try run([RecurrentSpec(kind: .lstm, units: 32, returnSequences: true)], masked: true, seed: 251, padding: padding,
                    size: (12, 5, 40))
        }
    }

    func testLSTM() throws {
        for (k, (seqs, back)) in [(false, false), (true, false), (false, true), (true, true)].enumerated() {
            for masked in [false, true] {
                try run([RecurrentSpec(kind: .lstm, units: 4, returnSequences: seqs, goBackwards: back)], masked: masked, seed: UInt64(10 + k))
            }
        }
        try run([RecurrentSpec(kind: .lstm, units: 3, useBias: false, returnSequences: true)], masked: false, seed: 19)
    }

    func testGRUBothResetModes() throws {
        for resetAfter in [true, false] {
            for (seqs, back) in [(false, false), (true, true)] {
                for masked in [false, true] {
                    try run([RecurrentSpec(kind: .gru, units: 4, returnSequences: seqs, goBackwards: back, resetAfter: resetAfter)],
                            masked: masked, seed: resetAfter ? 20 : 21)
                }
            }
        }
    }

    func testSimpleRNN() throws {
        for masked in [false, true] {
            try run([RecurrentSpec(kind: .simpleRNN, units: 5, returnSequences: true)], masked: masked, seed: 30)
            try run([RecurrentSpec(kind: .simpleRNN, units: 5, goBackwards: true)], masked: masked, seed: 31)
        }
    }

    func testBidirectionalMerges() throws {
        for merge in [MergeMode.concat, .sum, .mul, .ave] {
            for seqs in [false, true] {
                for masked in [false, true] {
                    // Inside Bidirectional, masked steps output zeros (zero_output_for_mask).
                    let fw = RecurrentSpec(kind: .lstm, units: 3, returnSequences: seqs, zeroOutputForMask: true)
                    var bw = fw
                    bw.goBackwards = true
                    try run([fw, bw], bidirectional: merge, masked: masked, seed: 40)
                }
            }
        }
    }
}
