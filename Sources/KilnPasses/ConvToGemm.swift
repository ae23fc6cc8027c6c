import KilnIR

/// Rewrites convolutions as matrix products:
///   // conv2d_bias{act}(x, w, b)   ->  act(matmul(im2col(x), reshape(w)) + b)
///   // conv2d_grad_filter(x, dy)    ->  reshape(matmul<TN>(im2col(x), reshape(dy)))
///   // conv2d_grad_input(dy, w)     ->  col2im(matmul<NT>(reshape(dy), reshape(w)))
/// except the convolutions and gradients the runtime computes directly (directForward,
/// directGradInput, directGradFilter, Ops/Convolution.swift): those are kept, and a kept
/// conv2d's bias and activation follow as one loop.
public let convToGemm = Pass("conv-gemm") { g in
    var r = GraphRebuilder(g)
    return try r.run { r, n in
        guard case .prim(let op) = n.op else { return try r.copy(n) }
        switch op {
        case .conv2D, .convBiasAct: break
        case .conv2DGradFilter:
            // The runtime computes it directly when the filters come in blocks of 16 (kiln_conv.c).
            if directGradFilter(filters: r.old.type(n.inputs[1]).shape[3].factor) { return try r.copy(n) }
        case let .conv2DGradInput(win, _, _):
            // The runtime computes it directly when its filters fit (kiln_conv.c).
            let ws = r.old.type(n.inputs[1]).shape.map(\.factor)
            if directGradInput(channels: ws[2], filters: ws[3], win) { return try r.copy(n) }
        default: return try r.copy(n)
        }
        var b = PrimBuilder(graph: r.new, layer: n.layer)
        defer { r.new = b.graph }
        let ins = n.inputs.map { r[$0] }
        func flatFilter(_ w: Value) throws -> Value {
            let s = b.type(w).shape
            return try b.reshape(w, [.fixed(s[0].factor * s[1].factor * s[2].factor), s[3]])
        }
        switch op {
        case let .conv2D(win, oh, ow), let .convBiasAct(win, oh, ow, _):
            let f = b.type(ins[1]).shape[3]
            var y: Value
            if directForward(channels: b.type(ins[1]).shape[2].factor, filters: f.factor) {
                // The runtime convolves directly (kiln_conv.c); bias and activation follow as one loop.
                y = try b.p(.conv2D(win, outH: oh, outW: ow), ins[0], ins[1])
            } else {
                let patches = try b.p(.im2col(win, outH: oh, outW: ow), ins[0])
                y = try b.reshape(try b.p(.matmul(transA: false, transB: false), patches, try flatFilter(ins[1])), [b.type(ins[0]).shape[0], .fixed(oh), .fixed(ow), f])
            }
            if case let .convBiasAct(_, _, _, act) = op {
                let e: FusedExpr = act.map { a in a.mapArgs { _ in .binary(.add, .arg(0), .arg(1)) } } ?? .binary(.add, .arg(0), .arg(1))
                y = try b.p(.fused(e), y, ins[2])
            }
            return [y]
        case .conv2DGradFilter(let win):
            let (x, dy) = (ins[0], ins[1])
            let ds = b.type(dy).shape
            let patches = try b.p(.im2col(win, outH: ds[1].factor, outW: ds[2].factor), x)
            let dy2 = try b.reshape(dy, [Dim.product(Array(ds[0..<3]))!, ds[3]])
            let dw = try b.p(.matmul(transA: true, transB: false), patches, dy2)
            return [try b.reshape(dw, r.old.type(n.outputs[0]).shape)]
        case let .conv2DGradInput(win, h, w):
            let (dy, wt) = (ins[0], ins[1])
            let ds = b.type(dy).shape
            let dy2 = try b.reshape(dy, [Dim.product(Array(ds[0..<3]))!, ds[3]])
            let dp = try b.p(.matmul(transA: false, transB: true), dy2, try flatFilter(wt))
            let c = b.type(wt).shape[2].factor
            return [try b.p(.col2im(win, inH: h, inW: w, channels: c, outH: ds[1].factor, outW: ds[2].factor), dp)]
        default:
            fatalError("conv-gemm: unreachable")
        }
    }
}
