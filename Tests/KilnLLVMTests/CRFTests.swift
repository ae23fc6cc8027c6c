// The CRF compiled the whole way (passes, LLVM, the runtime's kiln_crf.c) against enumeration
// of every tag path in float64 (BruteForceCRF) on tiny cases with masks: the NLL, its gradient
// and Viterbi as primitives, and the training step's loss and gradient through
// Embedding(mask_zero) -> CRF. Whole models are in CRFModelTests.swift.

import Foundation
import XCTest
import Kiln
import KilnIR
import KilnReference
import KilnRuntime

final class CRFTests: XCTestCase {
    /// A tiny batch: n = 3 tags, rows whose masks cover every step, a hole, none at all, a masked
    /// start and end. Tags at masked steps are out of range (7): they must be ignored.
    struct Batch {
        let tags = 3
        let masks: [[Bool]]
        var steps: Int { masks[0].count }
        var rows: Int { masks.count }
        var emissions: [Double], path: [Int], weights: BruteForceCRF

        init(_ masks: [[Bool]], _ r: inout TestRNG) {
            self.masks = masks
            let steps = masks[0].count
            emissions = r.floats(masks.count * steps * 3, -1.5, 1.5).map(Double.init)
            path = masks.flatMap { $0.map { $0 ? r.int(3) : 7 } }
            weights = BruteForceCRF(tags: 3, transitions: r.floats(9, -1.5, 1.5).map(Double.init),
                                    start: r.floats(3, -1, 1).map(Double.init), end: r.floats(3, -1, 1).map(Double.init))
        }
        func row(_ r: Int) -> [Double] { Array(emissions[r * steps * tags..<(r + 1) * steps * tags]) }
        func y(_ r: Int) -> [Int] { Array(path[r * steps..<(r + 1) * steps]) }
        func nll(_ w: BruteForceCRF, row r: Int, _ e: [Double]? = nil) -> Double { w.nll(e ?? row(r), mask: masks[r], y: y(r)) }
        var meanNLL: Double { (0..<rows).map { nll(weights, row: $0) }.reduce(0, +) / Double(rows) }
    }

    static let batches: [[[Bool]]] = [
        [[true, true, true, true], [true, false, true, true], [false, false, false, false]],
        [[false, true, true], [true, false, false]],
    ]

    /// Central difference of f at x[i] in float64.
    func difference(_ x: [Double], _ i: Int, _ f: ([Double]) -> Double, h: Double = 1e-6) -> Double {
        var (p, q) = (x, x)
        p[i] += h; q[i] -= h
        return (f(p) - f(q)) / (2 * h)
    }

    // MARK: - The primitives

    /// crf_nll, crf_nll_grad (each row scaled by its own dnll) and crf_viterbi on inputs, compiled
    /// as a predict program, with the mask and without.
    func testPrimitivesAgainstEnumeration() throws {
        var r = TestRNG(4101)
        for (k, masks) in Self.batches.enumerated() {
            for masked in [true, false] {
                var b = Batch(masks, &r)
                if !masked {
                    b = Batch(masks.map { $0.map { _ in true } }, &r)
                }
                let (n, steps, rows) = (b.tags, b.steps, b.rows)
                var g = Graph(name: "crf_prims")
                let e = g.addInput("emissions", .f32([.n, .fixed(steps), .fixed(n)]))
                let y = g.addInput("tags", TensorType(.i32, [.n, .fixed(steps)]))
                let m = g.addInput("mask", TensorType(.i32, [.n, .fixed(steps)]))
                let d = g.addInput("dnll", .f32([.n]))
                let w = b.weights
                let a = g.addParam("transitions", .f32([.fixed(n), .fixed(n)]), initial: w.transitions.map(Float.init))
                let s = g.addParam("start", .f32([.fixed(n)]), initial: w.start.map(Float.init))
                let f = g.addParam("end", .f32([.fixed(n)]), initial: w.end.map(Float.init))
                let mask = masked ? [try g.prim(.compare(.ne), m, try g.prim(.constant(0), layer: "zero"), layer: "mask")] : []
                g.addOutput(try g.add(.prim(.crfNLL), [e, a, s, f, y] + mask, layer: "nll")[0], name: "nll")
                for (j, v) in try g.add(.prim(.crfNLLGrad), [e, a, s, f, y, d] + mask, layer: "grad").enumerated() {
                    g.addOutput(v, name: "grad\(j)")
                }
                g.addOutput(try g.add(.prim(.crfViterbi), [e, a, s, f] + mask, layer: "viterbi")[0], name: "viterbi")
                let lib = try compileAndLoad(Model(graph: g, layers: [], training: nil, isSequential: false), name: "crf_prims",
                                             dir: try makeTempDir(self))
                let dnll = r.floats(rows, 0.5, 2).map(Double.init)
                let out = try lib.predict([HostTensor(shape: [rows, steps, n], floats: b.emissions.map(Float.init)),
                                           HostTensor(shape: [rows, steps], ints: b.path.map(Int32.init)),
                                           HostTensor(shape: [rows, steps], ints: masks.flatMap { $0.map { $0 ? 1 : 0 } }),
                                           HostTensor(shape: [rows], floats: dnll.map(Float.init))])
                XCTAssertEqual(out[5].dtype, .int32)
                // The kernels see float32 weights: enumerate with those.
                let w32 = BruteForceCRF(tags: n, transitions: w.transitions.map { Double(Float($0)) },
                                        start: w.start.map { Double(Float($0)) }, end: w.end.map { Double(Float($0)) })
                for row in 0..<rows {
                    let what = "batch \(k)\(masked ? "" : " unmasked") row \(row)"
                    let e32 = b.row(row).map { Double(Float($0)) }
                    let nll = b.nll(w32, row: row, e32)
                    XCTAssertEqual(Double(out[0].floats[row]), nll, accuracy: 1e-5 + 1e-5 * abs(nll), "\(what): nll")
                    let best = w32.best(e32, mask: b.masks[row])
                    XCTAssertGreaterThan(best.margin, 1e-3, "\(what): the data make a near tie")
                    XCTAssertEqual(Array(out[5].ints[row * steps..<(row + 1) * steps]).map(Int.init), best.path, "\(what): viterbi")
                    // Gradients: dnll times central differences of the enumerated NLL.
                    let scale = Double(Float(dnll[row]))
                    let de = e32.indices.map { i in scale * difference(e32, i) { b.nll(w32, row: row, $0) } }
                    assertClose(Array(out[1].floats[row * steps * n..<(row + 1) * steps * n]), de, rtol: 1e-4, atol: 1e-5, "\(what): d emissions")
                    func weightGradient(_ get: (BruteForceCRF) -> [Double], _ set: @escaping (inout BruteForceCRF, [Double]) -> Void) -> [Double] {
                        get(w32).indices.map { i in
                            scale * difference(get(w32), i) { v in var c = w32; set(&c, v); return b.nll(c, row: row, e32) }
                        }
                    }
                    assertClose(Array(out[2].floats[row * n * n..<(row + 1) * n * n]), weightGradient({ $0.transitions }, { $0.transitions = $1 }),
                                rtol: 1e-4, atol: 1e-5, "\(what): d transitions")
                    assertClose(Array(out[3].floats[row * n..<(row + 1) * n]), weightGradient({ $0.start }, { $0.start = $1 }),
                                rtol: 1e-4, atol: 1e-5, "\(what): d start")
                    assertClose(Array(out[4].floats[row * n..<(row + 1) * n]), weightGradient({ $0.end }, { $0.end = $1 }),
                                rtol: 1e-4, atol: 1e-5, "\(what): d end")
                    if !b.masks[row].contains(true) {
                        XCTAssertEqual(out[0].floats[row], 0, "\(what): a fully masked row has NLL 0")
                        XCTAssertTrue(out[1].floats[row * steps * n..<(row + 1) * steps * n].allSatisfy { $0 == 0 }, "\(what): and no gradient")
                    }
                }
                // And the float64 rules (the interpreter) agree with the compiled kernels.
                let ref = try Interpreter.run(g, inputs: [b.emissions.map { Double(Float($0)) }, b.path.map(Double.init),
                                                          masks.flatMap { $0.map { $0 ? 1.0 : 0.0 } }, dnll.map { Double(Float($0)) }], n: rows)
                for (j, v) in g.outputs.enumerated().dropLast() {
                    assertClose(out[j].floats, ref[v]!, rtol: 1e-4, atol: 1e-5, "batch \(k) output \(j) against the interpreter")
                }
            }
        }
    }

    /// A batch large enough to run in blocks of rows on the thread pool: the same results with one
    /// thread and three, and the float64 rules' (checked against enumeration in CRFRuleTests).
    func testLargeBatchesRunInBlocksOnThreads() throws {
        var r = TestRNG(4107)
        let (rows, steps, n) = (70, 40, 8)   // 40 * 8 * 8 multiply-adds a row: blocks of 25 rows
        var g = Graph(name: "crf_blocks")
        let e = g.addInput("emissions", .f32([.n, .fixed(steps), .fixed(n)]))
        let y = g.addInput("tags", TensorType(.i32, [.n, .fixed(steps)]))
        let m = g.addInput("mask", TensorType(.i32, [.n, .fixed(steps)]))
        let d = g.addInput("dnll", .f32([.n]))
        let a = g.addParam("transitions", .f32([.fixed(n), .fixed(n)]), initial: r.floats(n * n))
        let s = g.addParam("start", .f32([.fixed(n)]), initial: r.floats(n))
        let f = g.addParam("end", .f32([.fixed(n)]), initial: r.floats(n))
        let mask = try g.prim(.compare(.ne), m, try g.prim(.constant(0), layer: "zero"), layer: "mask")
        g.addOutput(try g.add(.prim(.crfNLL), [e, a, s, f, y, mask], layer: "nll")[0], name: "nll")
        for (j, v) in try g.add(.prim(.crfNLLGrad), [e, a, s, f, y, d, mask], layer: "grad").enumerated() { g.addOutput(v, name: "grad\(j)") }
        g.addOutput(try g.add(.prim(.crfViterbi), [e, a, s, f, mask], layer: "viterbi")[0], name: "viterbi")
        let lib = try compileAndLoad(Model(graph: g, layers: [], training: nil, isSequential: false), name: "crf_blocks", dir: try makeTempDir(self))
        // Right-padded rows of 0 to 40 real steps.
        let lengths = (0..<rows).map { $0 == 0 ? 0 : 1 + r.int(steps) }
        let maskIds = (0..<rows * steps).map { Int32(($0 % steps) < lengths[$0 / steps] ? 1 : 0) }
        let inputs = [HostTensor(shape: [rows, steps, n], floats: r.floats(rows * steps * n, -2, 2)),
                      HostTensor(shape: [rows, steps], ints: (0..<rows * steps).map { _ in Int32(r.int(n)) }),
                      HostTensor(shape: [rows, steps], ints: maskIds), HostTensor(shape: [rows], floats: r.floats(rows, 0.5, 2))]
        try lib.setNumThreads(1)
        let one = try lib.predict(inputs, batchSize: rows)
        try lib.setNumThreads(3)
        let three = try lib.predict(inputs, batchSize: rows)
        XCTAssertEqual(one, three, "results depend on the thread count")
        let ref = try Interpreter.run(g, inputs: inputs.map { $0.dtype == .float32 ? $0.floats.map(Double.init) : $0.ints.map(Double.init) }, n: rows)
        for (j, v) in g.outputs.enumerated() {
            let got = one[j].dtype == .float32 ? one[j].floats.map(Double.init) : one[j].ints.map(Double.init)
            assertClose(got, ref[v]!, rtol: 1e-4, atol: 1e-4, "output \(j) against the interpreter")
        }
    }

    /// A tag outside [0, n) at an unmasked step makes that row's NLL (so the batch loss) NaN, which
    /// the training loop reports; the other rows are unaffected.
    func testOutOfRangeTagMakesItsRowNaN() throws {
        var g = Graph(name: "bad_tags")
        let e = g.addInput("emissions", .f32([.n, .fixed(3), .fixed(2)]))
        let y = g.addInput("tags", TensorType(.i32, [.n, .fixed(3)]))
        let w = { (shape: [Int]) in g.addParam("p\(g.params.count)", .f32(shape.map { .fixed($0) }), initial: [Float](repeating: 0.1, count: shape.reduce(1, *))) }
        let (a, s, f) = (w([2, 2]), w([2]), w([2]))
        g.addOutput(try g.add(.prim(.crfNLL), [e, a, s, f, y], layer: "nll")[0], name: "nll")
        let lib = try compileAndLoad(Model(graph: g, layers: [], training: nil, isSequential: false), name: "bad_tags", dir: try makeTempDir(self))
        let out = try lib.predict([HostTensor(shape: [3, 3, 2], floats: [Float](repeating: 0, count: 18)),
                                   HostTensor(shape: [3, 3], ints: [0, 1, 0, 1, 2, 0, -1, 0, 0])])[0].floats
        // All scores equal: each path's score is 0.1 per transition and boundary, logZ - score = log(2^3).
        XCTAssertEqual(Double(out[0]), log(8), accuracy: 1e-6)
        XCTAssertTrue(out[1].isNaN && out[2].isNaN, "\(out)")
    }

    func testViterbiTiesGoToTheLowerTag() throws {
        // All scores equal: every path ties, and each max takes the lowest tag.
        var g = Graph(name: "ties")
        let e = g.addInput("emissions", .f32([.n, .fixed(5), .fixed(4)]))
        let z = { (shape: [Int]) in g.addParam("p\(g.params.count)", .f32(shape.map { .fixed($0) }), initial: [Float](repeating: 0.5, count: shape.reduce(1, *))) }
        let (a, s, f) = (z([4, 4]), z([4]), z([4]))
        g.addOutput(try g.add(.prim(.crfViterbi), [e, a, s, f], layer: "viterbi")[0], name: "viterbi")
        let lib = try compileAndLoad(Model(graph: g, layers: [], training: nil, isSequential: false), name: "ties", dir: try makeTempDir(self))
        var em = [Float](repeating: 1, count: 2 * 5 * 4)
        em[20 + 2 * 4 + 3] = 2   // row 1, step 2 prefers tag 3
        let out = try lib.predict([HostTensor(shape: [2, 5, 4], floats: em)])[0]
        XCTAssertEqual(out.ints, [0, 0, 0, 0, 0, 0, 0, 3, 0, 0])
    }

    // MARK: - The training step

    /// Embedding(mask_zero) -> CRF, one SGD step at learning rate 1: the loss is the mean NLL, and
    /// the change of each weight is minus the gradient of the mean NLL (each embedding row is the
    /// emissions of one position; row 0, every masked position's, must get nothing).
    func testTrainingStepLossAndGradient() throws {
        var r = TestRNG(4102)
        // Each batch with a fixed number of steps, and the second with a free one (Input((None,))).
        for (masks, free) in [(Self.batches[0], false), (Self.batches[1], false), (Self.batches[1], true)] {
            let b = Batch(masks, &r)
            let (n, steps, rows) = (b.tags, b.steps, b.rows)
            let vocab = 1 + rows * steps
            // Position (row, t) reads table row 1 + row * steps + t; masked positions read row 0.
            let ids = (0..<rows * steps).map { masks[$0 / steps][$0 % steps] ? Int32(1 + $0) : 0 }
            var table = r.floats(n, -1.5, 1.5)
            for i in 0..<rows * steps { table += b.emissions[i * n..<(i + 1) * n].map(Float.init) }
            var m = GraphMaker("crf_step")
            let x = free ? m.g.addInput("tokens", TensorType(.i32, [.n, .t])) : m.input("tokens", [steps], dtype: .i32)
            let emb = try m.layer(EmbeddingKind(inputDim: vocab, outputDim: n, maskZero: true).op, [x, m.param("embedding/embeddings", [vocab, n], table)], "embedding")
            let w = b.weights
            let tags = try m.layer(CRFKind(masked: false).op, [emb, m.param("crf/transitions", [n, n], w.transitions.map(Float.init)),
                                                         m.param("crf/start_transitions", [n], w.start.map(Float.init)),
                                                         m.param("crf/end_transitions", [n], w.end.map(Float.init))], "crf")
            m.output(tags, "crf")
            let lib = try compileAndLoad(m.model(training: TrainingConfig(losses: [.crf()], optimizer: .sgd(learningRate: 1))),
                                         name: "crf_step", dir: try makeTempDir(self))
            XCTAssertEqual(lib.outputs[0].dtype, .int32)
            XCTAssertEqual(lib.targets[0].dtype, .int32)
            let before = lib.getWeights().map { $0.floats.map(Double.init) }
            let w32 = BruteForceCRF(tags: n, transitions: before[1], start: before[2], end: before[3])
            func emissions(_ t: [Double], _ row: Int) -> [Double] {
                (0..<steps).flatMap { s in Array(t[Int(ids[row * steps + s]) * n..<(Int(ids[row * steps + s]) + 1) * n]) }
            }
            func mean(_ t: [Double], _ c: BruteForceCRF) -> Double {
                (0..<rows).map { b.nll(c, row: $0, emissions(t, $0)) }.reduce(0, +) / Double(rows)
            }
            let x0 = HostTensor(shape: [rows, steps], ints: ids)
            // Predict: the Viterbi path of each row, 0 at masked steps.
            let predicted = try lib.predict([x0])[0]
            for row in 0..<rows {
                let best = w32.best(emissions(before[0], row), mask: masks[row])
                XCTAssertGreaterThan(best.margin, 1e-3)
                XCTAssertEqual(Array(predicted.ints[row * steps..<(row + 1) * steps]).map(Int.init), best.path, "predict row \(row)")
            }
            let y0 = HostTensor(shape: [rows, steps], ints: b.path.map(Int32.init))
            let loss = try lib.trainStep(x: [x0], y: [y0])
            let want = mean(before[0], w32)
            XCTAssertEqual(Double(loss), want, accuracy: 1e-5 * max(1, abs(want)), "the step's loss is the mean NLL")
            let after = lib.getWeights().map { $0.floats.map(Double.init) }
            let step = zip(before, after).map { zip($0, $1).map { $0 - $1 } }
            let dTable = before[0].indices.map { i in difference(before[0], i) { mean($0, w32) } }
            assertClose(step[0], dTable, rtol: 1e-3, atol: 2e-6, "d embeddings (the emissions)")
            XCTAssertTrue(step[0][0..<n].allSatisfy { $0 == 0 }, "the masked positions' row changed: \(step[0][0..<n])")
            let dA = w32.transitions.indices.map { i in difference(w32.transitions, i) { v in var c = w32; c.transitions = v; return mean(before[0], c) } }
            let dS = w32.start.indices.map { i in difference(w32.start, i) { v in var c = w32; c.start = v; return mean(before[0], c) } }
            let dE = w32.end.indices.map { i in difference(w32.end, i) { v in var c = w32; c.end = v; return mean(before[0], c) } }
            assertClose(step[1], dA, rtol: 1e-3, atol: 2e-6, "d transitions")
            assertClose(step[2], dS, rtol: 1e-3, atol: 2e-6, "d start_transitions")
            assertClose(step[3], dE, rtol: 1e-3, atol: 2e-6, "d end_transitions")
            // Evaluation: the mean NLL at the new weights, nothing changed.
            let w1 = BruteForceCRF(tags: n, transitions: after[1], start: after[2], end: after[3])
            let evaluated = try lib.evaluate(x: [x0], y: [y0])
            XCTAssertEqual(Double(evaluated), mean(after[0], w1), accuracy: 1e-5 * max(1, abs(want)), "evaluate")
        }
    }
}
