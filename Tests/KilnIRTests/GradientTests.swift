// Every gradient rule of Autodiff.swift against central finite differences,
// both evaluated in float64 by the reference interpreter.

import XCTest
import KilnIR
import KilnPasses
import KilnReference

final class GradientTests: XCTestCase {
    /// Points where each unary op is smooth (away from 0 for kinks, positive for logs and roots).
    func unaryPoints(_ u: UnaryOp, _ rng: inout RNG, _ count: Int) -> [Double] {
        switch u {
        case .log, .sqrt, .rsqrt, .log1p: return rng.uniforms(count, 0.3, 2.5)
        case .abs, .sign, .relu, .step, .reciprocal: return rng.signed(count, 0.2, 2)
        case .floor: return rng.uniforms(count, -3, 3).map { $0.rounded(.down) + 0.1 + 0.8 * ($0 - $0.rounded(.down)) }
        default: return rng.uniforms(count, -2, 2)
        }
    }

    func testUnaryGradients() throws {
        var rng = RNG(1)
        for u in UnaryOp.allCases {
            let x = Operand.param([2, 3], unaryPoints(u, &rng, 6))
            try checkGradient("unary_\(u.rawValue)", [x]) { b, v in try b.unary(u, v[0]) }
            // And on a batched input.
            let xb = Operand.input(.f32([.n, .fixed(2)]), unaryPoints(u, &rng, 6))
            try checkGradient("unary_\(u.rawValue)_batched", n: 3, [xb]) { b, v in try b.unary(u, v[0]) }
        }
    }

    func binaryPoints(_ o: BinaryOp, rhs: Bool, _ rng: inout RNG, _ count: Int) -> [Double] {
        switch o {
        case .pow: return rhs ? rng.uniforms(count, -1.5, 1.5) : rng.uniforms(count, 0.5, 2)
        case .div: return rhs ? rng.signed(count, 0.5, 2) : rng.uniforms(count, -2, 2)
        default: return rng.uniforms(count, -2, 2)
        }
    }

    func testBinaryGradients() throws {
        var rng = RNG(2)
        // (lhs, rhs) shapes: same shape, broadcasting on either side, batch against fixed, scalars.
        let cases: [(TensorType, TensorType)] = [
            (.f32([.fixed(2), .fixed(3)]), .f32([.fixed(2), .fixed(3)])),
            (.f32([.n, .fixed(3)]), .f32([.fixed(3)])),
            (.f32([.fixed(3)]), .f32([.n, .fixed(3)])),
            (.f32([.fixed(2), .fixed(1)]), .f32([.fixed(1), .fixed(3)])),
            (.f32([.n, .fixed(2), .fixed(3)]), .f32([.fixed(2), .fixed(1)])),
            (.f32([.n, .fixed(3)]), .f32([])),
        ]
        for o in BinaryOp.allCases {
            for (k, (ta, tc)) in cases.enumerated() {
                func operand(_ t: TensorType, rhs: Bool) -> Operand {
                    let vals = binaryPoints(o, rhs: rhs, &rng, t.count(n: 2))
                    return t.scalesWithBatch ? .input(t, vals) : Operand(type: t, isParam: true, values: vals, differentiable: true)
                }
                try checkGradient("binary_\(o.rawValue)_\(k)", [operand(ta, rhs: false), operand(tc, rhs: true)]) { b, v in
                    try b.binary(o, v[0], v[1])
                }
            }
        }
    }

    func testMaxMinSameOperand() throws {
        // max(a, a) ties everywhere: the split must still sum to the full gradient.
        var rng = RNG(3)
        for o in [BinaryOp.max, .min] {
            try checkGradient("\(o.rawValue)_tie", [.param([4], rng.uniforms(4))]) { b, v in try b.binary(o, v[0], v[0]) }
        }
    }

    func testSelectAndCastGradients() throws {
        var rng = RNG(4)
        let p = Operand.param([2, 3], rng.uniforms(6)), q = Operand.param([2, 3], rng.uniforms(6))
        let a = Operand.param([2, 3], rng.uniforms(6)), c = Operand.param([3], rng.uniforms(3))
        try checkGradient("select", [p, q, a, c]) { b, v in
            try b.select(try b.compare(.gt, v[0], v[1]), v[2], v[3])
        }
        // A scalar branch broadcast against a batched one.
        let cond = Operand.input(.f32([.n, .fixed(2)]), rng.signed(6))
        try checkGradient("select_scalar", n: 3, [cond, .param([], [0.7]), .input(.f32([.n, .fixed(2)]), rng.uniforms(6))]) { b, v in
            try b.select(try b.compare(.lt, v[0], try b.const(0)), v[1], v[2])
        }
        try checkGradient("cast_f32", [.param([2, 3], rng.uniforms(6))]) { b, v in try b.p(.cast(.f32), v[0]) }
        try checkGradient("cast_bool_f32", [.param([2, 3], rng.signed(6))]) { b, v in
            try b.mul(try b.cast(try b.p(.cast(.bool), try b.unary(.relu, v[0])), .f32), v[0])
        }
        try checkGradient("cast_i32_f32", [.param([4], rng.uniforms(4, 0.1, 0.9).map { $0 + 2 })]) { b, v in
            try b.add(try b.cast(try b.p(.cast(.i32), v[0]), .f32), try b.unary(.square, v[0]))
        }
    }

    func testReduceGradients() throws {
        var rng = RNG(5)
        let x3 = Operand.param([2, 3, 4], rng.uniforms(24))
        let xb = Operand.input(.f32([.n, .fixed(3)]), rng.uniforms(9))
        let specs: [(ReduceOp, [Int], Bool)] = [
            (.sum, [1], false), (.sum, [0, 2], true), (.sum, [0, 1, 2], false),
            (.mean, [1], false), (.mean, [2], true), (.mean, [0, 1, 2], false),
            (.max, [1], false), (.max, [0, 2], true), (.max, [2], false),
        ]
        for (k, (r, axes, keep)) in specs.enumerated() {
            try checkGradient("reduce_\(r.rawValue)_\(k)", [x3]) { b, v in try b.reduce(r, v[0], axes: axes, keepDims: keep) }
        }
        // Over the batch axis: the mean divides by N at run time.
        for (r, axes, keep) in [(ReduceOp.mean, [0], false), (.mean, [0, 1], false), (.mean, [0], true), (.sum, [0], false), (.max, [0], true)] {
            try checkGradient("reduce_\(r.rawValue)_batch_\(axes)", n: 3, [xb]) { b, v in try b.reduce(r, v[0], axes: axes, keepDims: keep) }
        }
    }

    func testShapeOpGradients() throws {
        var rng = RNG(6)
        try checkGradient("reshape", [.param([2, 3, 2], rng.uniforms(12))]) { b, v in try b.p(.reshape([.fixed(3), .fixed(4)]), v[0]) }
        try checkGradient("reshape_batch", n: 2, [.input(.f32([.n, .fixed(2), .fixed(3)]), rng.uniforms(12))]) { b, v in
            try b.p(.reshape([.batch(2), .fixed(3)]), v[0])
        }
        try checkGradient("transpose", [.param([2, 3, 4], rng.uniforms(24))]) { b, v in try b.p(.transpose([2, 0, 1]), v[0]) }
        try checkGradient("transpose_batch", [.input(.f32([.n, .fixed(3)]), rng.uniforms(6))]) { b, v in try b.p(.transpose([1, 0]), v[0]) }
        try checkGradient("broadcast_lead", n: 2, [.param([3], rng.uniforms(3))]) { b, v in
            try b.p(.broadcast([.n, .fixed(2), .fixed(3)]), v[0])
        }
        try checkGradient("broadcast_inner", [.param([2, 1], rng.uniforms(2))]) { b, v in try b.p(.broadcast([.fixed(2), .fixed(4)]), v[0]) }
        try checkGradient("broadcast_scalar", [.param([], [0.3])]) { b, v in try b.p(.broadcast([.fixed(2), .fixed(2)]), v[0]) }
    }

    func testMatmulGradients() throws {
        var rng = RNG(7)
        for ta in [false, true] {
            for tb in [false, true] {
                let a = Operand.param(ta ? [3, 2] : [2, 3], rng.uniforms(6))
                let c = Operand.param(tb ? [4, 3] : [3, 4], rng.uniforms(12))
                try checkGradient("matmul_\(ta)_\(tb)", [a, c]) { b, v in try b.p(.matmul(transA: ta, transB: tb), v[0], v[1]) }
            }
        }
        // Batched rows, and the batch as the contracted dimension (a weight gradient's shape).
        try checkGradient("matmul_batch_rows", n: 3, [.input(.f32([.n, .fixed(3)]), rng.uniforms(9)), .param([3, 2], rng.uniforms(6))]) { b, v in
            try b.p(.matmul(transA: false, transB: false), v[0], v[1])
        }
        try checkGradient("matmul_batch_inner", n: 3, [.input(.f32([.n, .fixed(3)]), rng.uniforms(9)),
                                                       .input(.f32([.n, .fixed(2)]), rng.uniforms(6))]) { b, v in
            try b.p(.matmul(transA: true, transB: false), v[0], v[1])
        }
        try checkGradient("matmul_batch_transB", n: 3, [.param([2, 4], rng.uniforms(8)), .input(.f32([.n, .fixed(4)]), rng.uniforms(12))]) { b, v in
            try b.p(.matmul(transA: false, transB: true), v[0], v[1])
        }
    }

    func testConv2DGradients() throws {
        var rng = RNG(8)
        let configs: [((Int, Int), (Int, Int), Padding, Int, Int)] = [
            ((3, 3), (1, 1), .valid, 5, 5), ((3, 3), (1, 1), .same, 5, 5),
            ((3, 3), (2, 2), .valid, 6, 5), ((3, 3), (2, 2), .same, 6, 5),
            ((2, 2), (1, 1), .same, 4, 4), ((2, 3), (2, 1), .same, 5, 4),
        ]
        for (k, (ker, s, pad, h, w)) in configs.enumerated() {
            let (win, oh, ow) = window(h: h, w: w, k: ker, s: s, pad)
            let x = Operand.input(.f32([.n, .fixed(h), .fixed(w), .fixed(2)]), rng.uniforms(2 * h * w * 2))
            let f = Operand.param([ker.0, ker.1, 2, 3], rng.uniforms(ker.0 * ker.1 * 6))
            try checkGradient("conv2d_\(k)_\(pad.rawValue)_s\(s.0)", [x, f]) { b, v in
                try b.p(.conv2D(win, outH: oh, outW: ow), v[0], v[1])
            }
        }
    }

    func testPool2DGradients() throws {
        var rng = RNG(9)
        let configs: [((Int, Int), (Int, Int), Padding, Int, Int)] = [
            ((2, 2), (2, 2), .valid, 4, 5), ((2, 2), (2, 2), .same, 5, 5),
            ((3, 3), (2, 2), .valid, 5, 6), ((3, 3), (2, 2), .same, 5, 6),
            ((3, 3), (1, 1), .same, 4, 4), ((2, 2), (1, 1), .valid, 3, 3),
        ]
        for kind in [PoolKind.max, .avg] {
            for (k, (ker, s, pad, h, w)) in configs.enumerated() {
                let (win, oh, ow) = window(h: h, w: w, k: ker, s: s, pad)
                let x = Operand.input(.f32([.n, .fixed(h), .fixed(w), .fixed(2)]), rng.uniforms(2 * h * w * 2))
                try checkGradient("\(kind.rawValue)_pool_\(k)_\(pad.rawValue)", [x]) { b, v in
                    try b.p(.pool2D(kind, win, outH: oh, outW: ow), v[0])
                }
            }
        }
    }

    func testGatherGradient() throws {
        var rng = RNG(10)
        // Repeated ids accumulate; out-of-range ids read zeros and get no gradient.
        let ids = Operand.input(TensorType(.i32, [.n, .fixed(4)]), [0, 3, 3, 1, 4, -1, 7, 3], differentiable: false)
        let table = Operand.param([5, 3], rng.uniforms(15))
        try checkGradient("gather", [table, ids]) { b, v in try b.p(.gather, v[0], v[1]) }
    }

    func testConcatGradients() throws {
        var rng = RNG(11)
        let xs = [2, 3, 1].map { Operand.input(.f32([.n, .fixed($0)]), rng.uniforms(2 * $0)) }
        try checkGradient("concat_axis1", xs) { b, v in try b.graph.add(.prim(.concat(axis: 1)), v, layer: "c")[0] }
        let ps = [1, 2].map { Operand.param([$0, 3], rng.uniforms(3 * $0)) }
        try checkGradient("concat_axis0", ps) { b, v in try b.graph.add(.prim(.concat(axis: 0)), v, layer: "c")[0] }
    }

    /// Rules composed: every activation the lowering builds, through autodiff.
    func testActivationGradients() throws {
        var rng = RNG(12)
        for a in Activation.allCases {
            let pts = rng.signed(8, 0.1, 2.5)  // kinks at 0 and ±3 (hard_sigmoid) and 6 (relu6) avoided
            try checkGradient("activation_\(a.rawValue)", [.input(.f32([.n, .fixed(4)]), pts)]) { b, v in
                try b.activation(a, v[0], alpha: a == .elu ? 0.7 : 0)
            }
        }
    }

    /// slice pads its gradient with zeros on either side (recurrent gates slice their pre-activations).
    func testSliceGradients() throws {
        var rng = RNG(13)
        let x = Operand.input(.f32([.n, .fixed(7)]), rng.uniforms(14))
        for (start, length) in [(0, 3), (2, 4), (4, 3), (0, 7)] {
            try checkGradient("slice_axis1_\(start)_\(length)", [x]) { b, v in try b.p(.slice(axis: 1, start: start, length: length), v[0]) }
        }
        let p = Operand.param([4, 3], rng.uniforms(12))
        try checkGradient("slice_axis0", [p]) { b, v in try b.p(.slice(axis: 0, start: 1, length: 2), v[0]) }
    }

    /// pad's gradient is the slice of dy where the input was.
    func testPadGradients() throws {
        var rng = RNG(17)
        let x = Operand.input(.f32([.n, .fixed(3), .fixed(4)]), rng.uniforms(24))
        for (axis, before, after) in [(1, 2, 1), (2, 0, 3), (2, 1, 0), (1, 0, 0)] {
            try checkGradient("pad_axis\(axis)_\(before)_\(after)", [x]) { b, v in
                try b.p(.pad(axis: axis, before: before, after: after, value: 0.5), v[0])
            }
        }
        let p = Operand.param([2, 3], rng.uniforms(6))
        try checkGradient("pad_axis0", [p]) { b, v in try b.p(.pad(axis: 0, before: 1, after: 2, value: -1), v[0]) }
    }

    func testNoGradientOps() throws {
        // Ops that only appear after autodiff have no rule.
        var g = Graph(name: "ng")
        let x = g.addInput("x", .f32([.n, .fixed(3), .fixed(3), .fixed(1)]))
        var b = PrimBuilder(graph: g, layer: "t")
        let s = try b.p(.im2col(Window2D(kh: 2, kw: 2, sh: 1, sw: 1), outH: 2, outW: 2), x)
        let l = try b.reduce(.sum, s, axes: [0, 1])
        XCTAssertThrowsError(try differentiate(&b, loss: l, wrt: [x])) { e in
            XCTAssertTrue("\(e)".contains("no gradient rule"), "\(e)")
        }
        // iota and compare yield no gradient; an unreachable target gets nil.
        var g2 = Graph(name: "ng2")
        let y = g2.addParam("y", .f32([.fixed(3)]), initial: [1, 2, 3])
        let z = g2.addParam("z", .f32([.fixed(3)]), initial: [1, 2, 3])
        var b2 = PrimBuilder(graph: g2, layer: "t")
        let m = try b2.cast(try b2.compare(.gt, y, try b2.p(.iota(3))), .f32)
        let l2 = try b2.reduce(.sum, m, axes: [0])
        let gr = try differentiate(&b2, loss: l2, wrt: [y, z])
        XCTAssertNil(gr[0]); XCTAssertNil(gr[1])
    }
}
