// Reductions (sum, max, mean) over sorted axes, optionally keeping them as size 1.

public enum Reduce: PrimitiveFamily {
    public static func infer(_ op: PrimOp, _ ins: [TensorType], layer: String) throws -> [TensorType] {
        func fail(_ msg: String) -> ShapeError { primShapeError(op, layer: layer, msg) }
        switch op {
        case let .reduce(_, axes, keepDims):
            try expectArity(ins, 1...1, layer)
            let x = ins[0]
            guard axes.allSatisfy({ $0 >= 0 && $0 < x.rank }), axes == Array(Set(axes)).sorted() else {
                throw fail("axes \(axes) are not valid for \(x)")
            }
            var out: [Dim] = []
            for (k, d) in x.shape.enumerated() {
                if axes.contains(k) { if keepDims { out.append(.fixed(1)) } } else { out.append(d) }
            }
            return [TensorType(x.dtype, out)]
        default: notInFamily(op, Self.self)
        }
    }

    public static func gradient(_ op: PrimOp, _ n: Node, _ dys: [Value?], _ b: inout PrimBuilder) throws -> [Value?] {
        let dy = dys[0]!
        let x = n.inputs.first
        let y = n.outputs[0]
        func shape(_ v: Value) -> [Dim] { b.type(v).shape }
        switch op {
        case let .reduce(r, axes, _):
            let xs = shape(x!)
            var kept = xs
            for a in axes { kept[a] = .fixed(1) }
            var g = try b.reshape(dy, kept)
            switch r {
            case .sum:
                break
            case .mean:
                var count = 1
                var (byN, byT) = (false, false)
                for a in axes { count *= xs[a].factor; byN = byN || xs[a].isBatch; byT = byT || xs[a].isSteps }
                g = try b.mul(g, 1 / Float(count))
                if byN { g = try b.div(g, try b.p(.batchSize)) }
                if byT { g = try b.div(g, try b.p(.stepCount)) }
            case .max:
                let ym = try b.reshape(y, kept)
                let hit = try b.cast(try b.compare(.eq, x!, ym), .f32)
                return [try b.mul(try b.p(.broadcast(xs), g), hit)]
            }
            return [try b.p(.broadcast(xs), g)]
        default: notInFamily(op, Self.self)
        }
    }

    public static func evaluate(_ op: PrimOp, _ n: Node, _ ins: [Tensor], _ outDims: [[Int]], _ ctx: inout EvalContext) throws -> [[Double]] {
        guard case let .reduce(r, axes, _) = op else { notInFamily(op, Self.self) }
        return [reduce(r, ins[0], axes: axes)]
    }

    public static func kernel(_ op: PrimOp, _ n: Node, in g: Graph) -> [Step] {
        let (ins, args, bufs) = kernelOperands(n, in: g)
        func idx(_ k: Int) -> KExpr { .index(k) }
        switch op {
        case let .reduce(rop, axes, _):
            let x = ins[0]
            let kept = (0..<x.rank).filter { !axes.contains($0) }
            var full = [KExpr](repeating: .int(0), count: x.rank)
            for (j, a) in kept.enumerated() { full[a] = idx(j) }
            for (j, a) in axes.enumerated() { full[a] = idx(kept.count + j) }
            let ext = extents(x.shape)
            let outShape = kept.map { x.shape[$0] }
            var count = KExpr.int(1)
            for a in axes { count = count * ext[a] }
            // A sum over the leading axes (a bias gradient: every pixel of the batch, per channel) runs
            // row by row, adding each row into the output: the input streams through memory once, where
            // one strided pass per output reads all of it again and again. Each output still adds its
            // terms in the same order, from +0.
            if rop == .sum, x.dtype == .f32, !kept.isEmpty, Set(axes) == Set(0..<axes.count) {
                let all = (0..<x.rank).map(idx)
                var k = LoopKernel(buffers: bufs, loops: ext, body: .load(buffer: 0, at: linearIndex(x.shape, all)),
                                   output: 1, outputIndex: linearIndex(outShape, Array(all.suffix(kept.count))))
                k.accumulate = true
                return [.zero(n.outputs[0]), .loop(k, args: args)]
            }
            let k = LoopKernel(buffers: bufs, loops: kept.map { ext[$0] }, reduceLoops: axes.map { ext[$0] },
                               reduceOp: rop == .max ? .max : .sum,
                               body: .load(buffer: 0, at: linearIndex(x.shape, full)),
                               epilogue: rop == .mean ? .binary(.div, .acc, .toReal(count)) : nil,
                               output: 1, outputIndex: linearIndex(outShape, (0..<kept.count).map(idx)))
            return [.loop(k, args: args)]
        default: notInFamily(op, Self.self)
        }
    }

    public static func describe(_ op: PrimOp) -> String {
        guard case let .reduce(op, axes, keep) = op else { notInFamily(op, Self.self) }
        return "reduce_\(op.rawValue)<\(axes)\(keep ? ", keep" : "")>"
    }

    public static func fusedForm(_ op: PrimOp) -> FusedExpr? { nil }

    public static func effects(_ op: PrimOp) -> PrimEffects { .none }
}

func reduce(_ r: ReduceOp, _ x: Tensor, axes: [Int]) -> [Double] {
    let kept = (0..<x.dims.count).filter { !axes.contains($0) }
    let outDims = kept.map { x.dims[$0] }
    let total = outDims.reduce(1, *)
    var acc = [Double](repeating: r == .max ? -Double.infinity : 0, count: total)
    var count = 1
    for a in axes { count *= x.dims[a] }
    for flat in 0..<x.count {
        let idx = unravel(flat, x.dims)
        let o = ravel(kept.map { idx[$0] }, outDims)
        let v = x.data[flat]
        switch r {
        case .sum, .mean: acc[o] += v
        case .max: if v > acc[o] { acc[o] = v }
        }
    }
    if r == .mean { for i in 0..<total { acc[i] /= Double(count) } }
    return acc
}
