// Elementwise primitives: unary and binary functions, comparisons, select and
// cast (numpy broadcasting), and the fused chains the elementwise fuser makes of
// them. Each is one loop computing an expression (`fusedForm`) per element.

import Foundation

public enum Elementwise: PrimitiveFamily {
    public static func infer(_ op: PrimOp, _ ins: [TensorType], layer: String) throws -> [TensorType] {
        switch op {
        case .unary:
            try expectArity(ins, 1...1, layer)
            return [.f32(ins[0].shape)]
        case .binary:
            try expectArity(ins, 2...2, layer)
            return [.f32(try broadcastTypes(op, ins[0], ins[1], layer: layer))]
        case .compare:
            try expectArity(ins, 2...2, layer)
            return [TensorType(.bool, try broadcastTypes(op, ins[0], ins[1], layer: layer))]
        case .select:
            try expectArity(ins, 3...3, layer)
            let s = try broadcastTypes(op, TensorType(.f32, try broadcastTypes(op, ins[0], ins[1], layer: layer)), ins[2], layer: layer)
            return [TensorType(ins[1].dtype, s)]
        case .cast(let t):
            try expectArity(ins, 1...1, layer)
            return [TensorType(t, ins[0].shape)]
        case .fused(let e):
            var shape: [Dim] = []
            for t in ins {
                guard let s = broadcastShapes(shape, t.shape) else { throw primShapeError(op, layer: layer, "inputs do not broadcast") }
                shape = s
            }
            return [TensorType(e.resultType(ins.map(\.dtype)), shape)]
        default: notInFamily(op, Self.self)
        }
    }

    public static func gradient(_ op: PrimOp, _ n: Node, _ dys: [Value?], _ b: inout PrimBuilder) throws -> [Value?] {
        let dy = dys[0]!
        let y = n.outputs[0]
        func shape(_ v: Value) -> [Dim] { b.type(v).shape }
        switch op {
        case .unary(let u):
            let x = n.inputs[0]
            let d: Value?
            switch u {
            case .neg: d = try b.unary(.neg, dy)
            case .abs: d = try b.mul(dy, try b.unary(.sign, x))
            case .sign, .floor, .step: d = nil
            case .exp: d = try b.mul(dy, y)
            case .log: d = try b.div(dy, x)
            case .log1p: d = try b.div(dy, try b.add(x, 1))
            case .sqrt: d = try b.div(try b.mul(dy, 0.5), y)
            case .rsqrt: d = try b.mul(try b.mul(dy, -0.5), try b.div(y, x))
            case .square: d = try b.mul(dy, try b.mul(x, 2))
            case .reciprocal: d = try b.unary(.neg, try b.mul(dy, try b.unary(.square, y)))
            case .tanh: d = try b.mul(dy, try b.sub(try b.const(1), try b.unary(.square, y)))
            case .sigmoid: d = try b.mul(dy, try b.mul(y, try b.sub(try b.const(1), y)))
            // From the output (y > 0 exactly where x > 0): the input then has one use, and fusion can
            // fold a bias add and the relu into one loop.
            case .relu: d = try b.mul(dy, try b.unary(.step, y))
            case .erf:
                let e = try b.unary(.exp, try b.unary(.neg, try b.unary(.square, x)))
                d = try b.mul(dy, try b.mul(e, Float(2 / Double.pi.squareRoot())))
            case .softplus: d = try b.mul(dy, try b.unary(.sigmoid, x))
            }
            return [d]
        case .binary(let o):
            let (a, c) = (n.inputs[0], n.inputs[1])
            var da: Value?, dc: Value?
            switch o {
            case .add: da = dy; dc = dy
            case .sub: da = dy; dc = try b.unary(.neg, dy)
            case .mul: da = try b.mul(dy, c); dc = try b.mul(dy, a)
            case .div: da = try b.div(dy, c); dc = try b.unary(.neg, try b.div(try b.mul(dy, y), c))
            case .max, .min:
                // Ties split the gradient evenly, as JAX does.
                let win = try b.cast(try b.compare(o == .max ? .gt : .lt, a, c), .f32)
                let tie = try b.mul(try b.cast(try b.compare(.eq, a, c), .f32), 0.5)
                let wa = try b.add(win, tie)
                da = try b.mul(dy, wa)
                dc = try b.mul(dy, try b.sub(try b.const(1), wa))
            case .pow:
                da = try b.mul(dy, try b.mul(c, try b.binary(.pow, a, try b.sub(c, try b.const(1)))))
                dc = try b.mul(dy, try b.mul(y, try b.unary(.log, a)))
            }
            return [try da.map { try b.sumTo($0, shape(a)) }, try dc.map { try b.sumTo($0, shape(c)) }]
        case .select:
            let zero = try b.const(0)
            let da = try b.select(n.inputs[0], dy, zero)
            let dc = try b.select(n.inputs[0], zero, dy)
            return [nil, try b.sumTo(da, shape(n.inputs[1])), try b.sumTo(dc, shape(n.inputs[2]))]
        case .compare:
            return n.inputs.map { _ in nil }
        case .cast:
            return [b.type(n.inputs[0]).dtype == .f32 && b.type(y).dtype == .f32 ? dy : nil]
        case .fused:
            throw ShapeError(layer: n.layer, "\(op) has no gradient rule (it should not appear before autodiff)")
        default: notInFamily(op, Self.self)
        }
    }

    public static func evaluate(_ op: PrimOp, _ n: Node, _ ins: [Tensor], _ outDims: [[Int]], _ ctx: inout EvalContext) throws -> [[Double]] {
        let out = outDims[0]
        switch op {
        case .unary(let u): return [ins[0].data.map { applyUnary(u, $0) }]
        case .binary(let o): return [try elementwise(ins, out) { applyBinary(o, $0[0], $0[1]) }]
        case .compare(let c): return [try elementwise(ins, out) { applyCompare(c, $0[0], $0[1]) }]
        case .select: return [try elementwise(ins, out) { $0[0] != 0 ? $0[1] : $0[2] }]
        case .cast(let t): return [ins[0].data.map { applyCast(t, $0) }]
        case .fused(let e):
            let c = ctx
            return [try elementwise(ins, out) { evalFused(e, $0, c) }]
        default: notInFamily(op, Self.self)
        }
    }

    public static func kernel(_ op: PrimOp, _ n: Node, in g: Graph) -> [Step] {
        elementwiseSteps(fusedForm(op)!, n, in: g)
    }

    public static func describe(_ op: PrimOp) -> String {
        switch op {
        case .unary(let u): return u.rawValue
        case .binary(let b): return b.rawValue
        case .compare(let c): return "cmp_\(c.rawValue)"
        case .select: return "select"
        case .cast(let t): return "cast<\(t.rawValue)>"
        case .fused(let e): return "fused{\(e)}"
        default: notInFamily(op, Self.self)
        }
    }

    public static func fusedForm(_ op: PrimOp) -> FusedExpr? {
        switch op {
        case .unary(let u): return .unary(u, .arg(0))
        case .binary(let b): return .binary(b, .arg(0), .arg(1))
        case .compare(let c): return .compare(c, .arg(0), .arg(1))
        case .select: return .select(.arg(0), .arg(1), .arg(2))
        case .cast(let t): return .cast(t, .arg(0))
        case .fused(let e): return e
        default: notInFamily(op, Self.self)
        }
    }

    public static func effects(_ op: PrimOp) -> PrimEffects { .none }
}
