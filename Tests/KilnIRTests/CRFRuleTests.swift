// The CRF's rules below the compiler's backend: the layer's and the primitives' shape rules and
// printed forms, the float64 rules (the interpreter's meaning) against enumeration of every tag
// path, and the NLL's gradient rule against finite differences.

import XCTest
import KilnIR
import KilnLayers
import KilnPasses
import KilnReference

private let N = Dim.n
private func fx(_ k: Int) -> Dim { .fixed(k) }

final class CRFRuleTests: XCTestCase {
    func refuses(_ op: Op, _ ins: [TensorType], name: String, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try inferTypes(op, ins, layer: name), file: file, line: line) { e in
            for f in fragments { XCTAssertTrue("\(e)".contains(f), "'\(f)' not in: \(e)", file: file, line: line) }
        }
    }

    func testLayerShapes() throws {
        let w = [TensorType.f32([fx(5), fx(5)]), .f32([fx(5)]), .f32([fx(5)])]
        let x = TensorType.f32([N, fx(7), fx(5)])
        XCTAssertEqual(try inferTypes(.layer(CRFKind(masked: false).op), [x] + w, layer: "crf"), [TensorType(.i32, [N, fx(7)])])
        XCTAssertEqual(try inferTypes(.layer(CRFKind(masked: true).op), [.f32([N, .t, fx(5)])] + w + [TensorType(.bool, [N, .t])], layer: "crf"),
                       [TensorType(.i32, [N, .t])])
        // The layer on a rank-2 input: one sentence naming the layer, the shape and what it expects.
        refuses(.layer(CRFKind(masked: false).op), [.f32([N, fx(5)])] + w, name: "tagger",
                ["CRF 'tagger'", "expects emission scores of shape (batch, steps, tags)", "got (None, 5)", "Dense(tags)"])
        refuses(.layer(CRFKind(masked: false).op), [TensorType(.i32, [N, fx(7), fx(5)])] + w, name: "crf", ["got (None, 7, 5) of i32"])
        refuses(.layer(CRFKind(masked: false).op), [x, .f32([fx(4), fx(4)]), w[1], w[2]], name: "crf",
                ["weight transitions of shape (4, 4) does not fit 5 tags", "expected (5, 5)"])
        refuses(.layer(CRFKind(masked: true).op), [x] + w + [TensorType(.bool, [N, fx(6)])], name: "crf", ["mask"])
        let many = TensorType.f32([fx(1025)])
        refuses(.layer(CRFKind(masked: false).op), [.f32([N, fx(7), fx(1025)]), .f32([fx(1025), fx(1025)]), many, many], name: "crf",
                ["CRF 'crf': has 1025 tags", "at most 1024"])
        XCTAssertEqual(CRFKind(masked: true).op.description, "crf<masked>")
        XCTAssertEqual(CRFKind(masked: false).op.kerasClass, "CRF")
    }

    func testPrimitiveShapes() throws {
        let (e, a, v) = (TensorType.f32([N, .t, fx(3)]), TensorType.f32([fx(3), fx(3)]), TensorType.f32([fx(3)]))
        let (y, m) = (TensorType(.i32, [N, .t]), TensorType(.bool, [N, .t]))
        XCTAssertEqual(try inferPrim(.crfNLL, [e, a, v, v, y], layer: "p"), [.f32([N])])
        XCTAssertEqual(try inferPrim(.crfNLL, [e, a, v, v, y, m], layer: "p"), [.f32([N])])
        XCTAssertEqual(try inferPrim(.crfNLLGrad, [e, a, v, v, y, .f32([N]), m], layer: "p"),
                       [e, .f32([N, fx(3), fx(3)]), .f32([N, fx(3)]), .f32([N, fx(3)])])
        XCTAssertEqual(try inferPrim(.crfViterbi, [e, a, v, v], layer: "p"), [TensorType(.i32, [N, .t]), TensorType(.i32, [N, .t, fx(3)])])
        refuses(.prim(.crfNLL), [e, a, v, v, .f32([N, .t])], name: "p", ["crf_nll", "needs tags i32[N, T]"])
        refuses(.prim(.crfViterbi), [e, .f32([fx(2), fx(2)]), v, v], name: "p", ["needs transitions f32[3, 3]"])
        refuses(.prim(.crfViterbi), [.f32([N, fx(3)]), a, v, v], name: "p", ["needs emissions (rows, steps, tags)"])
        refuses(.prim(.crfNLLGrad), [e, a, v, v, y], name: "p", ["takes 6 to 7 inputs, got 5"])
        XCTAssertEqual([PrimOp.crfNLL, .crfNLLGrad, .crfViterbi].map(\.description), ["crf_nll", "crf_nll_grad", "crf_viterbi"])
        XCTAssertTrue([PrimOp.crfNLL, .crfNLLGrad, .crfViterbi].allSatisfy { $0.effects == .none && $0.fusedForm == nil })
    }

    /// Emissions, tags and masks of rows whose masks cover the cases: every step, a hole, none,
    /// a masked start and a masked end. Tags at masked steps are out of range: they must be ignored.
    struct Batch {
        static let masks: [[Bool]] = [[true, true, true, true], [true, false, true, true], [false, false, false, false],
                                      [false, true, true, false]]
        let tags = 3, steps = 4
        var masks: [[Bool]] { Self.masks }
        var rows: Int { masks.count }
        var emissions: [Double], path: [Double], weights: BruteForceCRF
        init(_ rng: inout RNG) {
            emissions = rng.uniforms(4 * 4 * 3, -1.5, 1.5)
            path = (0..<16).map { i in Self.masks[i / 4][i % 4] ? Double(rng.next() % 3) : 7 }
            weights = BruteForceCRF(tags: 3, transitions: rng.uniforms(9, -1.5, 1.5), start: rng.uniforms(3, -1, 1), end: rng.uniforms(3, -1, 1))
        }
        func row(_ r: Int) -> [Double] { Array(emissions[r * steps * tags..<(r + 1) * steps * tags]) }
        var mask: [Double] { masks.flatMap { $0.map { $0 ? 1 : 0 } } }
    }

    /// A graph of the three primitives on inputs (emissions, tags, mask, dnll) and the weights as parameters.
    func primitiveGraph(_ b: Batch) throws -> Graph {
        var g = Graph(name: "crf")
        let e = g.addInput("e", .f32([N, fx(b.steps), fx(b.tags)]))
        let y = g.addInput("y", TensorType(.i32, [N, fx(b.steps)]))
        let m = g.addInput("m", TensorType(.bool, [N, fx(b.steps)]))
        let d = g.addInput("d", .f32([N]))
        let w = b.weights
        let a = g.addParam("a", .f32([fx(3), fx(3)]), initial: w.transitions.map(Float.init))
        let s = g.addParam("s", .f32([fx(3)]), initial: w.start.map(Float.init))
        let f = g.addParam("f", .f32([fx(3)]), initial: w.end.map(Float.init))
        g.addOutput(try g.add(.prim(.crfNLL), [e, a, s, f, y, m], layer: "nll")[0], name: "nll")
        for (k, v) in try g.add(.prim(.crfNLLGrad), [e, a, s, f, y, d, m], layer: "grad").enumerated() { g.addOutput(v, name: "grad\(k)") }
        g.addOutput(try g.add(.prim(.crfViterbi), [e, a, s, f, m], layer: "viterbi")[0], name: "viterbi")
        try g.verify()
        return g
    }

    func testFloat64RulesAgainstEnumeration() throws {
        var rng = RNG(91)
        let b = Batch(&rng)
        let g = try primitiveGraph(b)
        let dnll = rng.uniforms(b.rows, 0.5, 2)
        let w = b.weights
        let out = try Interpreter.run(g, inputs: [b.emissions, b.path, b.mask, dnll], params: [w.transitions, w.start, w.end], n: b.rows)
        let y = b.path.map { Int($0) }
        for r in 0..<b.rows {
            let (e, mask, yr) = (b.row(r), b.masks[r], Array(y[r * 4..<(r + 1) * 4]))
            let nll = w.nll(e, mask: mask, y: yr)
            XCTAssertEqual(out[g.outputs[0]]![r], nll, accuracy: 1e-12, "row \(r): nll")
            if !mask.contains(true) { XCTAssertEqual(nll, 0) }
            let best = w.best(e, mask: mask)
            XCTAssertGreaterThan(best.margin, 1e-6, "row \(r): the data make a near tie")
            XCTAssertEqual(out[g.outputs[5]]![r * 4..<(r + 1) * 4].map { Int($0) }, best.path, "row \(r): viterbi")
            // d nll / d emissions and d transitions by central differences of the enumeration.
            let h = 1e-6
            for i in e.indices {
                var (p, q) = (e, e)
                p[i] += h; q[i] -= h
                let fd = dnll[r] * (w.nll(p, mask: mask, y: yr) - w.nll(q, mask: mask, y: yr)) / (2 * h)
                XCTAssertEqual(out[g.outputs[1]]![r * 12 + i], fd, accuracy: 1e-8, "row \(r): d emissions[\(i)]")
            }
            for i in 0..<9 {
                var (p, q) = (w, w)
                p.transitions[i] += h; q.transitions[i] -= h
                let fd = dnll[r] * (p.nll(e, mask: mask, y: yr) - q.nll(e, mask: mask, y: yr)) / (2 * h)
                XCTAssertEqual(out[g.outputs[2]]![r * 9 + i], fd, accuracy: 1e-8, "row \(r): d transitions[\(i)]")
            }
            for i in 0..<3 {
                var (p, q, u, v) = (w, w, w, w)
                p.start[i] += h; q.start[i] -= h; u.end[i] += h; v.end[i] -= h
                let ds = dnll[r] * (p.nll(e, mask: mask, y: yr) - q.nll(e, mask: mask, y: yr)) / (2 * h)
                let de = dnll[r] * (u.nll(e, mask: mask, y: yr) - v.nll(e, mask: mask, y: yr)) / (2 * h)
                XCTAssertEqual(out[g.outputs[3]]![r * 3 + i], ds, accuracy: 1e-8, "row \(r): d start[\(i)]")
                XCTAssertEqual(out[g.outputs[4]]![r * 3 + i], de, accuracy: 1e-8, "row \(r): d end[\(i)]")
            }
        }
    }

    /// The gradient rule (crf_nll -> crf_nll_grad, rows summed for the weights) through autodiff,
    /// against finite differences of the interpreted crf_nll, with and without a mask.
    func testNLLGradientRule() throws {
        var rng = RNG(92)
        let b = Batch(&rng)
        let tags = Operand.input(TensorType(.i32, [N, fx(4)]), b.path, differentiable: false)
        let mask = Operand.input(TensorType(.bool, [N, fx(4)]), b.mask, differentiable: false)
        let e = Operand.input(.f32([N, fx(4), fx(3)]), b.emissions)
        let w = [Operand.param([3, 3], b.weights.transitions), .param([3], b.weights.start), .param([3], b.weights.end)]
        try checkGradient("crf_nll_masked", n: b.rows, [e] + w + [tags, mask]) { bb, v in try bb.graph.add(.prim(.crfNLL), v, layer: "nll")[0] }
        // Without a mask every step counts; the out-of-range tags of masked rows would then make NaN, so take in-range ones.
        let inRange = Operand.input(TensorType(.i32, [N, fx(4)]), b.path.map { $0 > 2 ? 1 : $0 }, differentiable: false)
        try checkGradient("crf_nll", n: b.rows, [e] + w + [inRange]) { bb, v in try bb.graph.add(.prim(.crfNLL), v, layer: "nll")[0] }
    }
}
