// Recurrent dropout (Keras' dropout and recurrent_dropout on LSTM, GRU, SimpleRNN): the masks'
// statistics, one mask per call reused at every step, inference ignoring the rates, and the
// gradients of a scan with fixed masks (float64, through the interpreter: the unrolled cell's
// autodiff against central differences of the scan's reference).

import XCTest
import KilnIR
import KilnLayers
import KilnPasses
import KilnReference

final class RecurrentDropoutTests: XCTestCase {
    /// The masks one call draws, evaluated for n rows with a step seed.
    func masks(_ spec: RecurrentSpec, n: Int, features f: Int, seed: UInt64) throws -> (input: [[Double]], recurrent: [Double]?) {
        var g = Graph(name: "masks")
        let x = g.addInput("x", .f32([.n, .fixed(3), .fixed(f)]))
        var b = PrimBuilder(graph: g, layer: "rnn")
        var ctx = LoweringContext()
        let m = try XCTUnwrap(try b.recurrentDropoutMasks(spec, x: x, &ctx))
        for (k, v) in (m.input + [m.recurrent].compactMap { $0 }).enumerated() { b.graph.addOutput(v, name: "m\(k)") }
        let values = try Interpreter.run(b.graph, inputs: [[Double](repeating: 0.5, count: n * 3 * f)], n: n, stepSeed: seed)
        return (m.input.map { values[$0]! }, m.recurrent.map { values[$0]! })
    }

    func checkMask(_ m: [Double], rate: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let scale = 1 / (1 - Double(rate))
        XCTAssertTrue(m.allSatisfy { $0 == 0 || Swift.abs($0 - scale) < 1e-6 }, "\(what): entries are 0 or 1/(1-rate)", file: file, line: line)
        let kept = Double(m.filter { $0 != 0 }.count) / Double(m.count)
        XCTAssertEqual(kept, 1 - Double(rate), accuracy: 0.03, "\(what): kept share", file: file, line: line)
    }

    func testMaskStatistics() throws {
        let (n, f, u) = (400, 5, 6)
        // LSTM with recurrent_dropout: Keras' implementation 1, a mask per gate on both sides.
        let lstm = RecurrentSpec(kind: .lstm, units: u, dropout: 0.3, recurrentDropout: 0.2)
        let a = try masks(lstm, n: n, features: f, seed: 11)
        XCTAssertEqual(a.input.count, 4)
        for (k, m) in a.input.enumerated() {
            XCTAssertEqual(m.count, n * f)
            checkMask(m, rate: 0.3, "lstm input mask \(k)")
        }
        let rec = try XCTUnwrap(a.recurrent)
        XCTAssertEqual(rec.count, n * 4 * u)
        checkMask(rec, rate: 0.2, "lstm recurrent masks")
        // The gates' masks are drawn apart.
        XCTAssertNotEqual(a.input[0], a.input[1])
        // Another call (step seed): other masks.
        let b = try masks(lstm, n: n, features: f, seed: 12)
        let differ = zip(a.input[0], b.input[0]).filter { $0 != $1 }.count
        XCTAssertGreaterThan(Double(differ) / Double(n * f), 0.2, "two calls draw different masks")
        // The same seed: the same masks.
        XCTAssertEqual(try masks(lstm, n: n, features: f, seed: 11).input[0], a.input[0])
        // Without recurrent_dropout, LSTM and GRU use one input mask for every gate (implementation 2).
        let gru = try masks(RecurrentSpec(kind: .gru, units: u, dropout: 0.5), n: n, features: f, seed: 3)
        XCTAssertEqual(gru.input.count, 1)
        XCTAssertNil(gru.recurrent)
        checkMask(gru.input[0], rate: 0.5, "gru input mask")
        // SimpleRNN: one mask each side, the recurrent one (N, u).
        let rnn = try masks(RecurrentSpec(kind: .simpleRNN, units: u, dropout: 0.1, recurrentDropout: 0.6), n: n, features: f, seed: 5)
        XCTAssertEqual(rnn.input.count, 1)
        XCTAssertEqual(rnn.recurrent?.count, n * u)
        checkMask(rnn.recurrent!, rate: 0.6, "simple_rnn recurrent mask")
        // Rates Keras does not apply (0, or 1 for LSTM/GRU) draw nothing.
        var g = Graph(name: "none")
        let x = g.addInput("x", .f32([.n, .fixed(3), .fixed(f)]))
        var pb = PrimBuilder(graph: g, layer: "rnn")
        var ctx = LoweringContext()
        XCTAssertNil(try pb.recurrentDropoutMasks(RecurrentSpec(kind: .lstm, units: u), x: x, &ctx))
        XCTAssertNil(try pb.recurrentDropoutMasks(RecurrentSpec(kind: .gru, units: u, dropout: 1), x: x, &ctx))
    }

    /// A linear SimpleRNN with W = U = I, zero bias, fed ones at step 0 and zeros after: in training
    /// h_t = m ⊙ r^t (m the input mask, r the recurrent one), so h_t·h_{t-2} = h_{t-1}² at every
    /// step only if the same masks serve every step; inference (rates ignored) gives ones.
    func testSameMasksAtEveryStepAndInferenceIgnoresThem() throws {
        let (t, u, n) = (5, 4, 64)
        let spec = RecurrentSpec(kind: .simpleRNN, units: u, activation: .linear, returnSequences: true, dropout: 0.5, recurrentDropout: 0.5)
        var g = Graph(name: "steps")
        let x = g.addInput("x", .f32([.n, .fixed(t), .fixed(u)]))
        let eye = (0..<(u * u)).map { Float($0 / u == $0 % u ? 1 : 0) }
        let w = g.addParam("kernel", .f32([.fixed(u), .fixed(u)]), initial: eye)
        let rk = g.addParam("recurrent_kernel", .f32([.fixed(u), .fixed(u)]), initial: eye)
        let bias = g.addParam("bias", .f32([.fixed(u)]), initial: [Float](repeating: 0, count: u))
        var b = PrimBuilder(graph: g, layer: "simple_rnn")
        var ctx = LoweringContext()
        let y = try RNNKind(spec).lower(&b, [x, w, rk, bias], &ctx)[0]
        b.graph.addOutput(y, name: "y")
        var input = [Double](repeating: 0, count: n * t * u)
        for r in 0..<n { for j in 0..<u { input[r * t * u + j] = 1 } }
        let training = try Interpreter.run(b.graph, inputs: [input], n: n, stepSeed: 42)[b.graph.outputs[0]]!
        func h(_ r: Int, _ s: Int, _ j: Int) -> Double { training[(r * t + s) * u + j] }
        var zeros = 0, kept = 0
        for r in 0..<n {
            for j in 0..<u {
                for s in 0..<t {
                    XCTAssertTrue(h(r, s, j) == 0 || h(r, s, j) == pow(2, Double(s + 1)), "h_\(s) is m·r^\(s) with entries 0 or 2")
                    if s >= 2 { XCTAssertEqual(h(r, s, j) * h(r, s - 2, j), h(r, s - 1, j) * h(r, s - 1, j)) }
                }
                if h(r, 0, j) == 0 { zeros += 1 }
                if h(r, 1, j) != 0 { kept += 1 }
            }
        }
        XCTAssertEqual(Double(zeros) / Double(n * u), 0.5, accuracy: 0.1, "input mask drops about half")
        XCTAssertEqual(Double(kept) / Double(n * u), 0.25, accuracy: 0.1, "both masks keep about a quarter")
        // Another step seed draws other masks.
        let other = try Interpreter.run(b.graph, inputs: [input], n: n, stepSeed: 43)[b.graph.outputs[0]]!
        XCTAssertNotEqual(training, other)
        // The inference form ignores the rates.
        let predict = try inference.run(b.graph)
        let p = try Interpreter.run(predict, inputs: [input], n: n)[predict.outputs[0]]!
        XCTAssertEqual(p, [Double](repeating: 1, count: n * t * u))
        XCTAssertFalse(predict.nodes.contains { if case .prim(.randomUniform) = $0.op { return true } else { return false } },
                       "predict draws nothing")
    }

    /// Predict of a layer with rates equals the same layer without them, for every kind and Bidirectional.
    func testInferenceEqualsRateZero() throws {
        let (t, f, n) = (4, 3, 3)
        var rng = RNG(9)
        let x = rng.uniforms(n * t * f)
        for kind in [RecurrentKind.lstm, .gru, .simpleRNN] {
            let spec = RecurrentSpec(kind: kind, units: 3, returnSequences: true, dropout: 0.4, recurrentDropout: 0.3, returnState: true)
            var plain = spec
            plain.dropout = 0; plain.recurrentDropout = 0
            var back = spec
            back.goBackwards = true
            var plainBack = plain
            plainBack.goBackwards = true
            let kinds: [(any LayerKind, any LayerKind)] = [
                (RNNKind(spec), RNNKind(plain)),
                (BidirectionalKind(forward: spec, backward: back, merge: .concat, innerName: "rnn"),
                 BidirectionalKind(forward: plain, backward: plainBack, merge: .concat, innerName: "rnn"))]
            for (k, (dropped, zero)) in kinds.enumerated() {
                var results: [[Double]] = []
                for layer in [dropped, zero] {
                    var g = Graph(name: "infer")
                    let xv = g.addInput("x", .f32([.n, .fixed(t), .fixed(f)]))
                    var wrng = RNG(UInt64(5 + k))
                    let ws = try layer.weights(for: [g.type(xv)]).map { w in
                        g.addParam(w.name, .f32(w.shape.map { .fixed($0) }), initial: wrng.uniforms(w.shape.reduce(1, *)).map(Float.init))
                    }
                    var b = PrimBuilder(graph: g, layer: "rnn")
                    var ctx = LoweringContext()
                    let outs = try layer.lower(&b, [xv] + ws, &ctx)
                    for (i, o) in outs.enumerated() { b.graph.addOutput(o, name: "o\(i)") }
                    let predict = try inference.run(b.graph)
                    let values = try Interpreter.run(predict, inputs: [x], n: n)
                    results.append(predict.outputs.flatMap { values[$0]! })
                }
                XCTAssertEqual(results[0], results[1], "\(kind) \(k == 0 ? "layer" : "bidirectional"): predict ignores the rates")
            }
        }
    }

    /// The gradient of a scan with fixed dropout masks (graph inputs): the unrolled cell's autodiff
    /// (evaluated in float64) against central differences of the scan's float64 reference.
    func checkGradient(_ spec: RecurrentSpec, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) throws {
        let (n, t, f) = (3, 4, 3)
        var rng = RNG(seed)
        let g0 = spec.kind.gates * spec.units
        let perGate = spec.kind != .simpleRNN && spec.recurrentDropout != 0
        var g = Graph(name: "rdrop")
        let x = g.addInput("x", .f32([.n, .fixed(t), .fixed(f)]))
        let inMasks = spec.dropout > 0 ? (0..<(perGate ? spec.kind.gates : 1)).map { g.addInput("m\($0)", .f32([.n, .fixed(f)])) } : []
        let recMask = spec.recurrentDropout > 0 ? g.addInput("rm", .f32([.n, .fixed(g0)])) : nil
        let shapes = spec.weightShapes(features: f)
        let ws = shapes.enumerated().map { g.addParam("w\($0)", .f32($1.map { .fixed($0) }), initial: [Float](repeating: 0, count: $1.reduce(1, *))) }
        var b = PrimBuilder(graph: g, layer: "rnn")
        let r = try b.recurrence(spec, x: x, weights: ws, mask: nil,
                                 dropout: PrimBuilder.RecurrentDropoutMasks(input: inMasks, recurrent: recMask)).outputs(spec)
        let y = r.states.isEmpty ? r.main : try b.graph.add(.prim(.concat(axis: 1)), [try b.reshape(r.main, [.n, .fixed(t * spec.units)])] + r.states, layer: "rnn")[0]
        let weightsIn = b.graph.addInput("weights", b.type(y))
        let loss = try b.reduce(.sum, try b.mul(weightsIn, y), axes: Array(0..<b.type(y).rank))
        var forward = b.graph
        forward.outputs = [loss]; forward.outputNames = ["loss"]
        XCTAssertTrue(forward.nodes.contains { if case .prim(.scan(let c)) = $0.op { return c.recurrentDropout == (recMask != nil) } else { return false } })

        func mask(_ count: Int, _ rate: Float) -> [Double] {
            (0..<count).map { _ in rng.uniform(0, 1) < Double(rate) ? 0 : 1 / (1 - Double(rate)) }
        }
        var inputs = [rng.uniforms(n * t * f)] + inMasks.map { _ in mask(n * f, spec.dropout) }
        if recMask != nil { inputs.append(mask(n * g0, spec.recurrentDropout)) }
        inputs.append(rng.uniforms(b.type(y).count(n: n), -1.5, 1.5))
        var params = shapes.map { rng.uniforms($0.reduce(1, *), -0.8, 0.8) }

        // Autodiff through the unrolled cells.
        let unrolled = try deadCode.run(try unrollScans(.always).run(forward))
        XCTAssertFalse(unrolled.nodes.contains { if case .prim(.scan) = $0.op { return true } else { return false } })
        var ub = PrimBuilder(graph: unrolled, layer: "rnn")
        let grads: [Value?]
        grads = try differentiate(&ub, loss: unrolled.outputs[0], wrt: unrolled.params.map(\.value))
        let all = try Interpreter.run(ub.graph, inputs: inputs, params: params, n: n)
        // The unrolled form computes the scan's loss.
        // (GRU with the reset gate before the product has no scan reference: its own unrolled form then.)
        let reference = spec.kind == .gru && !spec.resetAfter ? unrolled : forward
        let scanLoss = try Interpreter.run(reference, inputs: inputs, params: params, n: n)[reference.outputs[0]]![0]
        XCTAssertEqual(all[unrolled.outputs[0]]![0], scanLoss, accuracy: 1e-9, file: file, line: line)
        for (k, grad) in grads.enumerated() {
            let analytic = try XCTUnwrap(grad.flatMap { all[$0] }, file: file, line: line)
            for e in params[k].indices {
                let h = 1e-6
                params[k][e] += h
                let plus = try Interpreter.run(reference, inputs: inputs, params: params, n: n)[reference.outputs[0]]![0]
                params[k][e] -= 2 * h
                let minus = try Interpreter.run(reference, inputs: inputs, params: params, n: n)[reference.outputs[0]]![0]
                params[k][e] += h
                let numeric = (plus - minus) / (2 * h)
                XCTAssertEqual(analytic[e], numeric, accuracy: 1e-7 + 1e-5 * Swift.max(Swift.abs(numeric), Swift.abs(analytic[e])),
                               "\(spec.kind) weight \(k) element \(e)", file: file, line: line)
            }
        }
    }

    func testGradientsWithFixedMasks() throws {
        try checkGradient(RecurrentSpec(kind: .lstm, units: 3, returnSequences: true, dropout: 0.3, recurrentDropout: 0.4, returnState: true), seed: 1)
        try checkGradient(RecurrentSpec(kind: .lstm, units: 2, goBackwards: true, dropout: 0.5), seed: 2)
        try checkGradient(RecurrentSpec(kind: .lstm, units: 2, returnSequences: true, recurrentDropout: 0.5), seed: 3)
        try checkGradient(RecurrentSpec(kind: .gru, units: 3, returnSequences: true, dropout: 0.2, recurrentDropout: 0.5, returnState: true), seed: 4)
        try checkGradient(RecurrentSpec(kind: .gru, units: 2, returnSequences: true, resetAfter: false, dropout: 0.4, recurrentDropout: 0.4), seed: 5)
        try checkGradient(RecurrentSpec(kind: .simpleRNN, units: 3, returnSequences: true, dropout: 0.5, recurrentDropout: 0.5), seed: 6)
    }
}
