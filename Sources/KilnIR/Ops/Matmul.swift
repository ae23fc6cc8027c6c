// The matrix product of rank-2 operands, each optionally transposed: op(a)·op(b),
// by the runtime's kernels (kiln_gemm).

public enum Matmul: PrimitiveFamily {
    public static func infer(_ op: PrimOp, _ ins: [TensorType], layer: String) throws -> [TensorType] {
        func fail(_ msg: String) -> ShapeError { primShapeError(op, layer: layer, msg) }
        switch op {
        case let .matmul(ta, tb):
            try expectArity(ins, 2...2, layer)
            let (a, b) = (ins[0], ins[1])
            guard a.rank == 2, b.rank == 2 else { throw fail("needs rank-2 operands, got \(a) and \(b)") }
            let (m, ka) = ta ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
            let (kb, n) = tb ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
            guard ka == kb else { throw fail("inner dimensions of \(a) and \(b) differ") }
            guard !(m.isBatch && n.isBatch) else { throw fail("both result dimensions scale with the batch") }
            return [.f32([m, n])]
        default: notInFamily(op, Self.self)
        }
    }

    public static func gradient(_ op: PrimOp, _ n: Node, _ dys: [Value?], _ b: inout PrimBuilder) throws -> [Value?] {
        let dy = dys[0]!
        switch op {
        case let .matmul(ta, tb):
            let (a, c) = (n.inputs[0], n.inputs[1])
            func mm(_ p: Value, _ q: Value, _ tp: Bool, _ tq: Bool) throws -> Value { try b.p(.matmul(transA: tp, transB: tq), p, q) }
            switch (ta, tb) {
            case (false, false): return [try mm(dy, c, false, true), try mm(a, dy, true, false)]
            case (false, true): return [try mm(dy, c, false, false), try mm(dy, a, true, false)]
            case (true, false): return [try mm(c, dy, false, true), try mm(a, dy, false, false)]
            case (true, true): return [try mm(c, dy, true, true), try mm(dy, a, true, true)]
            }
        default: notInFamily(op, Self.self)
        }
    }

    public static func evaluate(_ op: PrimOp, _ n: Node, _ ins: [Tensor], _ outDims: [[Int]], _ ctx: inout EvalContext) throws -> [[Double]] {
        guard case let .matmul(ta, tb) = op else { notInFamily(op, Self.self) }
        return [matmul(ins[0], ins[1], ta, tb)]
    }

    public static func kernel(_ op: PrimOp, _ n: Node, in g: Graph) -> [Step] {
        guard case let .matmul(ta, tb) = op else { notInFamily(op, Self.self) }
        let ea = extents(g.type(n.inputs[0]).shape), eb = extents(g.type(n.inputs[1]).shape)
        let m = ta ? ea[1] : ea[0], kk = ta ? ea[0] : ea[1], nn = tb ? eb[0] : eb[1]
        return [.gemm(a: n.inputs[0], b: n.inputs[1], c: n.outputs[0], transA: ta, transB: tb, m: m, n: nn, k: kk, epilogue: nil)]
    }

    public static func describe(_ op: PrimOp) -> String {
        guard case let .matmul(ta, tb) = op else { notInFamily(op, Self.self) }
        return "matmul" + (ta || tb ? "<\(ta ? "T" : "N")\(tb ? "T" : "N")>" : "")
    }

    public static func fusedForm(_ op: PrimOp) -> FusedExpr? { nil }

    public static func effects(_ op: PrimOp) -> PrimEffects { .none }
}

/// op(a) · op(b) with op = transpose when the flag is set.
func matmul(_ a: Tensor, _ b: Tensor, _ ta: Bool, _ tb: Bool) -> [Double] {
    let (m, k) = ta ? (a.dims[1], a.dims[0]) : (a.dims[0], a.dims[1])
    let n = tb ? b.dims[0] : b.dims[1]
    func A(_ i: Int, _ p: Int) -> Double { ta ? a.data[p * a.dims[1] + i] : a.data[i * a.dims[1] + p] }
    func B(_ p: Int, _ j: Int) -> Double { tb ? b.data[j * b.dims[1] + p] : b.data[p * b.dims[1] + j] }
    var c = [Double](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0
            for p in 0..<k { s += A(i, p) * B(p, j) }
            c[i * n + j] = s
        }
    }
    return c
}
