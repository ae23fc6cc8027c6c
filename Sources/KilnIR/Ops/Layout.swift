// Primitives that move elements without computing: reshape (no kernel: the output
// aliases the input), transpose, broadcast, concat, split and slice.

public enum Layout: PrimitiveFamily {
    public static func infer(_ op: PrimOp, _ ins: [TensorType], layer: String) throws -> [TensorType] {
        func fail(_ msg: String) -> ShapeError { primShapeError(op, layer: layer, msg) }
        switch op {
        case .reshape(let shape):
            try expectArity(ins, 1...1, layer)
            let x = ins[0]
            let t = TensorType(x.dtype, shape)
            if t.staticCount != x.staticCount || t.scale != x.scale {
                throw fail("cannot reshape \(x) to \(t)")
            }
            return [t]
        case .transpose(let perm):
            try expectArity(ins, 1...1, layer)
            guard perm.sorted() == Array(0..<ins[0].rank) else { throw fail("\(perm) is not a permutation of \(ins[0])") }
            return [TensorType(ins[0].dtype, perm.map { ins[0].shape[$0] })]
        case .batchRows:
            try expectArity(ins, 1...1, layer)
            guard ins[0].rank >= 1, ins[0].shape[0].fixedValue != nil, !ins[0].scalesWithBatch else { throw fail("takes a fixed (B, ...) tensor, got \(ins[0])") }
            return [TensorType(ins[0].dtype, [.n] + ins[0].shape.dropFirst())]
        case .broadcast(let shape):
            try expectArity(ins, 1...1, layer)
            guard broadcastShapes(ins[0].shape, shape) == shape else { throw fail("cannot broadcast \(ins[0]) to \(shape)") }
            return [TensorType(ins[0].dtype, shape)]
        case .concat(let axis):
            guard let x = ins.first else { throw fail("needs inputs") }
            var out = x.shape
            out[axis] = .fixed(ins.reduce(0) { $0 + $1.shape[axis].factor })
            return [TensorType(x.dtype, out)]
        case let .split(axis, sizes):
            try expectArity(ins, 1...1, layer)
            guard axis < ins[0].rank, !ins[0].shape[axis].isBatch, sizes.allSatisfy({ $0 >= 1 }),
                  sizes.reduce(0, +) == ins[0].shape[axis].factor else {
                throw fail("sizes \(sizes) do not split axis \(axis) of \(ins[0])")
            }
            return sizes.map { s in
                var out = ins[0].shape; out[axis] = .fixed(s)
                return TensorType(ins[0].dtype, out)
            }
        case let .slice(axis, start, length):
            try expectArity(ins, 1...1, layer)
            guard axis < ins[0].rank, !ins[0].shape[axis].isBatch, start >= 0, start + length <= ins[0].shape[axis].factor else {
                throw fail("slice out of range of \(ins[0])")
            }
            var out = ins[0].shape; out[axis] = .fixed(length)
            return [TensorType(ins[0].dtype, out)]
        default: notInFamily(op, Self.self)
        }
    }

    public static func gradient(_ op: PrimOp, _ n: Node, _ dys: [Value?], _ b: inout PrimBuilder) throws -> [Value?] {
        // Every op but split has one output, whose gradient is given.
        var dy: Value { dys[0]! }
        let x = n.inputs.first
        func shape(_ v: Value) -> [Dim] { b.type(v).shape }
        switch op {
        case .reshape:
            return [try b.reshape(dy, shape(x!))]
        case .batchRows:
            // Carried state: not trained through.
            return [nil]
        case .transpose(let perm):
            var inv = [Int](repeating: 0, count: perm.count)
            for (i, p) in perm.enumerated() { inv[p] = i }
            return [try b.p(.transpose(inv), dy)]
        case .broadcast:
            return [try b.sumTo(dy, shape(x!))]
        case .concat(let axis):
            var out: [Value?] = []
            var start = 0
            for v in n.inputs {
                let len = shape(v)[axis].factor
                out.append(try b.p(.slice(axis: axis, start: start, length: len), dy))
                start += len
            }
            return out
        case let .slice(axis, start, length):
            // Pad the gradient with zeros back to the input's size along the axis.
            let xs = shape(x!)
            var parts: [Value] = []
            func zeros(_ n: Int) throws -> Value {
                var s = xs; s[axis] = .fixed(n)
                return try b.p(.broadcast(s), try b.const(0))
            }
            if start > 0 { parts.append(try zeros(start)) }
            parts.append(dy)
            let rest = xs[axis].factor - start - length
            if rest > 0 { parts.append(try zeros(rest)) }
            return [parts.count == 1 ? dy : try b.graph.add(.prim(.concat(axis: axis)), parts, layer: b.layer)[0]]
        case .split(let axis, _):
        // The adjoint of a split is the concatenation of its pieces' adjoints (zeros where none).
        let pieces = try zip(n.outputs, dys).map { o, d in try d ?? b.zeros(b.type(o).shape) }
        return [pieces.count == 1 ? pieces[0] : try b.graph.add(.prim(.concat(axis: axis)), pieces, layer: b.layer)[0]]
        default: notInFamily(op, Self.self)
        }
    }

    public static func evaluate(_ op: PrimOp, _ n: Node, _ ins: [Tensor], _ outDims: [[Int]], _ ctx: inout EvalContext) throws -> [[Double]] {
        switch op {
        case .reshape: return [ins[0].data]
        case .batchRows:
            guard ins[0].dims[0] == ctx.n else { throw InterpreterError("batch_rows: \(ins[0].dims[0]) rows of state for a batch of \(ctx.n)") }
            return [ins[0].data]
        case .transpose(let perm): return [transpose(ins[0], perm)]
        case .broadcast:
            let src = try broadcastSource(ins[0].dims, to: outDims[0])
            return [src.map { ins[0].data[$0] }]
        case .concat(let axis): return [concat(ins, axis: axis, outDims[0])]
        case let .split(axis, sizes):
            var start = 0
            return sizes.map { size in
                defer { start += size }
                return slice(ins[0], axis: axis, start: start, length: size)
            }
        case let .slice(axis, start, length): return [slice(ins[0], axis: axis, start: start, length: length)]
        default: notInFamily(op, Self.self)
        }
    }

    public static func kernel(_ op: PrimOp, _ n: Node, in g: Graph) -> [Step] {
        let (ins, args, bufs) = kernelOperands(n, in: g)
        func idx(_ k: Int) -> KExpr { .index(k) }
        switch op {
        case .reshape, .batchRows:
        return []
        case .broadcast:
        return elementwiseSteps(.arg(0), n, in: g)
        case .transpose(let perm):
            let out = g.type(n.outputs[0])
            var src = [KExpr](repeating: .int(0), count: perm.count)
            for (j, p) in perm.enumerated() { src[p] = idx(j) }
            let k = LoopKernel(buffers: bufs, loops: extents(out.shape), body: .load(buffer: 0, at: linearIndex(ins[0].shape, src)),
                               output: 1, outputIndex: linearIndex(out.shape, (0..<perm.count).map(idx)))
            return [.loop(k, args: args)]
        case .concat(let axis):
            let out = g.type(n.outputs[0])
            var steps: [Step] = []
            var offset = 0
            for (j, t) in ins.enumerated() {
                var at = (0..<t.rank).map(idx)
                at[axis] = at[axis] + .int(offset)
                let k = LoopKernel(buffers: [KBuffer(t.dtype), KBuffer(out.dtype, written: true)], loops: extents(t.shape),
                                   body: .load(buffer: 0, at: linearIndex(t.shape, (0..<t.rank).map(idx))),
                                   output: 1, outputIndex: linearIndex(out.shape, at))
                steps.append(.loop(k, args: [n.inputs[j], n.outputs[0]]))
                offset += t.shape[axis].factor
            }
            return steps
        case let .split(axis, sizes):
            // One copy per piece, each like a slice.
            var start = 0
            var steps: [Step] = []
            for (k, size) in sizes.enumerated() {
                let out = g.type(n.outputs[k])
                var at = (0..<out.rank).map(idx)
                at[axis] = at[axis] + .int(start)
                let kern = LoopKernel(buffers: [KBuffer(ins[0].dtype), KBuffer(out.dtype, written: true)], loops: extents(out.shape),
                                      body: .load(buffer: 0, at: linearIndex(ins[0].shape, at)),
                                      output: 1, outputIndex: linearIndex(out.shape, (0..<out.rank).map(idx)))
                steps.append(.loop(kern, args: [n.inputs[0], n.outputs[k]]))
                start += size
            }
            return steps
        case let .slice(axis, start, _):
            let out = g.type(n.outputs[0])
            var at = (0..<out.rank).map(idx)
            at[axis] = at[axis] + .int(start)
            let k = LoopKernel(buffers: bufs, loops: extents(out.shape), body: .load(buffer: 0, at: linearIndex(ins[0].shape, at)),
                               output: 1, outputIndex: linearIndex(out.shape, (0..<out.rank).map(idx)))
            return [.loop(k, args: args)]
        default: notInFamily(op, Self.self)
        }
    }

    public static func describe(_ op: PrimOp) -> String {
        switch op {
        case .reshape(let s): return "reshape<\(s.map(\.description).joined(separator: ", "))>"
        case .batchRows: return "batch_rows"
        case .transpose(let p): return "transpose<\(p)>"
        case .broadcast(let s): return "broadcast<\(s.map(\.description).joined(separator: ", "))>"
        case .concat(let a): return "concat<\(a)>"
        case let .split(a, sizes): return "split<axis=\(a), \(sizes)>"
        case let .slice(a, s, l): return "slice<axis=\(a), \(s)..<\(s + l)>"
        default: notInFamily(op, Self.self)
        }
    }

    public static func fusedForm(_ op: PrimOp) -> FusedExpr? { nil }

    public static func effects(_ op: PrimOp) -> PrimEffects { .none }
}

func transpose(_ x: Tensor, _ perm: [Int]) -> [Double] {
    let outDims = perm.map { x.dims[$0] }
    var out = [Double](repeating: 0, count: x.count)
    for flat in 0..<x.count {
        let o = unravel(flat, outDims)
        var src = [Int](repeating: 0, count: perm.count)
        for (j, p) in perm.enumerated() { src[p] = o[j] }
        out[flat] = x.data[ravel(src, x.dims)]
    }
    return out
}

func concat(_ ins: [Tensor], axis: Int, _ outDims: [Int]) -> [Double] {
    var out = [Double](repeating: 0, count: outDims.reduce(1, *))
    var offset = 0
    for t in ins {
        for flat in 0..<t.count {
            var idx = unravel(flat, t.dims)
            idx[axis] += offset
            out[ravel(idx, outDims)] = t.data[flat]
        }
        offset += t.dims[axis]
    }
    return out
}

func slice(_ x: Tensor, axis: Int, start: Int, length: Int) -> [Double] {
    var outDims = x.dims
    outDims[axis] = length
    let total = outDims.reduce(1, *)
    var out = [Double](repeating: 0, count: total)
    for flat in 0..<total {
        var idx = unravel(flat, outDims)
        idx[axis] += start
        out[flat] = x.data[ravel(idx, x.dims)]
    }
    return out
}
