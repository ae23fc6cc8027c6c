// Constant padding along one axis: pad(axis, before, after, value) puts `before`
// copies of the value ahead of the input along the axis and `after` behind it
// (ZeroPadding1D/2D are pads along the step or spatial axes). Its gradient is the
// slice of dy where the input was.

public enum Pad: PrimitiveFamily {
    public static func infer(_ op: PrimOp, _ ins: [TensorType], layer: String) throws -> [TensorType] {
        guard case let .pad(axis, before, after, _) = op else { notInFamily(op, Self.self) }
        try expectArity(ins, 1...1, layer)
        let x = ins[0]
        guard x.dtype == .f32, axis >= 0, axis < x.rank, let size = x.shape[axis].fixedValue, before >= 0, after >= 0 else {
            throw primShapeError(op, layer: layer, "cannot pad \(x) along axis \(axis) (f32, a fixed axis, sizes >= 0)")
        }
        var out = x.shape
        out[axis] = .fixed(before + size + after)
        return [.f32(out)]
    }

    public static func gradient(_ op: PrimOp, _ n: Node, _ dys: [Value?], _ b: inout PrimBuilder) throws -> [Value?] {
        guard case let .pad(axis, before, _, _) = op else { notInFamily(op, Self.self) }
        let size = b.type(n.inputs[0]).shape[axis].factor
        return [try b.p(.slice(axis: axis, start: before, length: size), dys[0]!)]
    }

    public static func evaluate(_ op: PrimOp, _ n: Node, _ ins: [Tensor], _ outDims: [[Int]], _ ctx: inout EvalContext) throws -> [[Double]] {
        guard case let .pad(axis, before, _, value) = op else { notInFamily(op, Self.self) }
        let x = ins[0], out = outDims[0]
        return [(0..<out.reduce(1, *)).map { flat in
            var idx = unravel(flat, out)
            idx[axis] -= before
            return idx[axis] >= 0 && idx[axis] < x.dims[axis] ? x.data[ravel(idx, x.dims)] : Double(value)
        }]
    }

    /// One loop over the output: the input where the index along the axis falls inside it
    /// (shifted by `before`), the value elsewhere.
    public static func kernel(_ op: PrimOp, _ n: Node, in g: Graph) -> [Step] {
        guard case let .pad(axis, before, _, value) = op else { notInFamily(op, Self.self) }
        let (x, out) = (g.type(n.inputs[0]), g.type(n.outputs[0]))
        let ix = (0..<out.rank).map(KExpr.index)
        var at = ix
        at[axis] = ix[axis] - .int(before)
        let inside = KExpr.and(.compare(.ge, at[axis], .int(0)), .compare(.lt, at[axis], .int(x.shape[axis].factor)))
        let k = LoopKernel(buffers: kernelBuffers(n, in: g), loops: extents(out.shape),
                           body: .guardedLoad(buffer: 0, at: linearIndex(x.shape, at), valid: inside, otherwise: value),
                           output: 1, outputIndex: linearIndex(out.shape, ix))
        return [.loop(k, args: n.inputs + n.outputs)]
    }

    public static func describe(_ op: PrimOp) -> String {
        guard case let .pad(axis, before, after, value) = op else { notInFamily(op, Self.self) }
        return "pad<axis=\(axis), \(before), \(after)" + (value != 0 ? ", value=\(formatFloat(value))" : "") + ">"
    }

    public static func fusedForm(_ op: PrimOp) -> FusedExpr? { nil }

    public static func effects(_ op: PrimOp) -> PrimEffects { .none }
}
