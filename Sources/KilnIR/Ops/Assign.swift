// The optimizer's state write: assign(p, v) writes v into the state buffer of the
// parameter p and produces nothing. Never merged, never removed.

public enum Assign: PrimitiveFamily {
    public static func infer(_ op: PrimOp, _ ins: [TensorType], layer: String) throws -> [TensorType] {
        func fail(_ msg: String) -> ShapeError { primShapeError(op, layer: layer, msg) }
        switch op {
        case .assign:
            try expectArity(ins, 2...2, layer)
            guard ins[0].shape == ins[1].shape else { throw fail("assigns \(ins[1]) to \(ins[0])") }
            return []
        default: notInFamily(op, Self.self)
        }
    }

    public static func gradient(_ op: PrimOp, _ n: Node, _ dys: [Value?], _ b: inout PrimBuilder) throws -> [Value?] {
        throw ShapeError(layer: n.layer, "\(op) has no gradient rule (it should not appear before autodiff)")
    }

    public static func evaluate(_ op: PrimOp, _ n: Node, _ ins: [Tensor], _ outDims: [[Int]], _ ctx: inout EvalContext) throws -> [[Double]] {
        ctx.assigned[n.inputs[0]] = ins[1].data
        return []
    }

    public static func kernel(_ op: PrimOp, _ n: Node, in g: Graph) -> [Step] {
        let t = g.type(n.inputs[1])
        let k = LoopKernel(buffers: [KBuffer(t.dtype, written: true), KBuffer(t.dtype)], loops: [elementCount(t)],
           body: .load(buffer: 1, at: .index(0)), output: 0, outputIndex: .index(0))
        return [.loop(k, args: n.inputs)]
    }

    public static func describe(_ op: PrimOp) -> String {
        "assign"
    }

    public static func fusedForm(_ op: PrimOp) -> FusedExpr? { nil }

    public static func effects(_ op: PrimOp) -> PrimEffects { PrimEffects(mergeable: false, removable: false) }
}
