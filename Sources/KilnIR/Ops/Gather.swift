// Embedding lookup: gather rows of a table by id, and its gradient scatterAdd.

public enum Gather: PrimitiveFamily {
    public static func infer(_ op: PrimOp, _ ins: [TensorType], layer: String) throws -> [TensorType] {
        func fail(_ msg: String) -> ShapeError { primShapeError(op, layer: layer, msg) }
        switch op {
        case .gather:
            try expectArity(ins, 2...2, layer)
            guard ins[0].rank == 2, ins[1].dtype == .i32 else { throw fail("needs a (rows, dim) table and int ids, got \(ins[0]) and \(ins[1])") }
            return [.f32(ins[1].shape + [ins[0].shape[1]])]
        case .scatterAdd(let rows):
            try expectArity(ins, 2...2, layer)
            guard let d = ins[1].shape.last else { throw fail("needs gradients of rank 1 or more") }
            return [.f32([.fixed(rows), d])]
        default: notInFamily(op, Self.self)
        }
    }

    public static func gradient(_ op: PrimOp, _ n: Node, _ dys: [Value?], _ b: inout PrimBuilder) throws -> [Value?] {
        let dy = dys[0]!
        switch op {
        case .gather:
            let rows = b.type(n.inputs[0]).shape[0].factor
            return [try b.p(.scatterAdd(rows: rows), n.inputs[1], dy), nil]
        case .scatterAdd:
            throw ShapeError(layer: n.layer, "\(op) has no gradient rule (it should not appear before autodiff)")
        default: notInFamily(op, Self.self)
        }
    }

    public static func evaluate(_ op: PrimOp, _ n: Node, _ ins: [Tensor], _ outDims: [[Int]], _ ctx: inout EvalContext) throws -> [[Double]] {
        switch op {
        case .gather: return [gather(ins[0], ins[1])]
        case .scatterAdd(let rows): return [scatterAdd(ins[0], ins[1], rows: rows)]
        default: notInFamily(op, Self.self)
        }
    }

    public static func kernel(_ op: PrimOp, _ n: Node, in g: Graph) -> [Step] {
        let (ins, args, bufs) = kernelOperands(n, in: g)
        func idx(_ k: Int) -> KExpr { .index(k) }
        switch op {
        case .gather:
            let (table, ids) = (ins[0], ins[1])
            let (rows, d) = (table.shape[0].factor, table.shape[1].factor)
            let out = g.type(n.outputs[0])
            let r = ids.rank
            let id = KExpr.load(buffer: 1, at: linearIndex(ids.shape, (0..<r).map(idx)))
            let valid = KExpr.and(.compare(.ge, id, .int(0)), .compare(.lt, id, .int(rows)))
            let k = LoopKernel(buffers: bufs, loops: extents(out.shape),
                               body: .guardedLoad(buffer: 0, at: id * .int(d) + idx(r), valid: valid, otherwise: 0),
                               output: 2, outputIndex: linearIndex(out.shape, (0..<(r + 1)).map(idx)))
            return [.loop(k, args: args)]
        case .scatterAdd(let rows):
            // out = 0, then out[ids[p], d] += dy[p, d] for each position p in order: O(ids * D), and
            // repeated ids add up in position order. An id outside [0, rows) (gather gave zeros there)
            // adds +0 to row 0 instead, which changes nothing: a sum that starts at +0 is never -0.
            let (ids, dy) = (ins[0], ins[1])
            let d = dy.shape.last!.factor
            let p = elementCount(ids)
            let id = KExpr.load(buffer: 0, at: idx(0))
            let valid = KExpr.and(.compare(.ge, id, .int(0)), .compare(.lt, id, .int(rows)))
            var k = LoopKernel(buffers: bufs, loops: [p, .int(d)],
                               body: .select(valid, .load(buffer: 1, at: idx(0) * .int(d) + idx(1)), .real(0)),
                               output: 2, outputIndex: .select(valid, id, .int(0)) * .int(d) + idx(1))
            k.accumulate = true
            return [.zero(n.outputs[0]), .loop(k, args: args)]
        default: notInFamily(op, Self.self)
        }
    }

    public static func describe(_ op: PrimOp) -> String {
        switch op {
        case .gather: return "gather"
        case .scatterAdd(let r): return "scatter_add<\(r)>"
        default: notInFamily(op, Self.self)
        }
    }

    public static func fusedForm(_ op: PrimOp) -> FusedExpr? { nil }

    public static func effects(_ op: PrimOp) -> PrimEffects { .none }
}

/// out[p, d] = table[ids[p], d], zero for ids out of range.
func gather(_ table: Tensor, _ ids: Tensor) -> [Double] {
    let (rows, d) = (table.dims[0], table.dims[1])
    var out = [Double](repeating: 0, count: ids.count * d)
    for p in 0..<ids.count {
        let id = Int(ids.data[p])
        guard id >= 0 && id < rows else { continue }
        for k in 0..<d { out[p * d + k] = table.data[id * d + k] }
    }
    return out
}

/// out[r, d] = sum of dy[p, d] over the positions p with ids[p] == r.
func scatterAdd(_ ids: Tensor, _ dy: Tensor, rows: Int) -> [Double] {
    let d = dy.dims.last!
    var out = [Double](repeating: 0, count: rows * d)
    for p in 0..<ids.count {
        let id = Int(ids.data[p])
        guard id >= 0 && id < rows else { continue }
        for k in 0..<d { out[id * d + k] += dy.data[p * d + k] }
    }
    return out
}
