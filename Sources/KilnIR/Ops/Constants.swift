// Primitives without inputs: a scalar constant, the call's sizes N and T, the
// optimizer step, and iota. The scalars are elementwise (the fuser folds them
// into their users); iota is a loop of its own.

public enum Constants: PrimitiveFamily {
    public static func infer(_ op: PrimOp, _ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 0...0, layer)
        switch op {
        case .constant, .batchSize, .stepCount, .iteration: return [.f32([])]
        case .iota(let k): return [.f32([.fixed(k)])]
        default: notInFamily(op, Self.self)
        }
    }

    public static func gradient(_ op: PrimOp, _ n: Node, _ dys: [Value?], _ b: inout PrimBuilder) throws -> [Value?] {
        []
    }

    public static func evaluate(_ op: PrimOp, _ n: Node, _ ins: [Tensor], _ outDims: [[Int]], _ ctx: inout EvalContext) throws -> [[Double]] {
        switch op {
        case .constant(let c): return [[Double(c)]]
        case .batchSize: return [[Double(ctx.n)]]
        case .stepCount: return [[Double(ctx.steps)]]
        case .iteration: return [[Double(ctx.iteration)]]
        case .iota(let k): return [(0..<k).map(Double.init)]
        default: notInFamily(op, Self.self)
        }
    }

    public static func kernel(_ op: PrimOp, _ n: Node, in g: Graph) -> [Step] {
        if case .iota(let k) = op {
            let k = LoopKernel(buffers: kernelBuffers(n, in: g), loops: [.int(k)], body: .toReal(.index(0)), output: 0, outputIndex: .index(0))
            return [.loop(k, args: n.inputs + n.outputs)]
        }
        return elementwiseSteps(fusedForm(op)!, n, in: g)
    }

    public static func describe(_ op: PrimOp) -> String {
        switch op {
        case .constant(let c): return "const<\(formatFloat(c))>"
        case .batchSize: return "batch_size"
        case .stepCount: return "step_count"
        case .iteration: return "iteration"
        case .iota(let k): return "iota<\(k)>"
        default: notInFamily(op, Self.self)
        }
    }

    public static func fusedForm(_ op: PrimOp) -> FusedExpr? {
        switch op {
        case .constant(let c): return .const(c)
        case .batchSize: return .batchSize
        case .stepCount: return .stepCount
        case .iteration: return .iteration
        case .iota: return nil
        default: notInFamily(op, Self.self)
        }
    }

    public static func effects(_ op: PrimOp) -> PrimEffects { .none }
}
