// 2-D convolutions (channels_last) and their gradients, as the runtime computes them
// directly (kiln_conv.c) or, after the conv-gemm pass, as im2col/col2im around a
// product; and conv2d with its bias and activation folded in.

public enum Convolution: PrimitiveFamily {
    public static func infer(_ op: PrimOp, _ ins: [TensorType], layer: String) throws -> [TensorType] {
        func fail(_ msg: String) -> ShapeError { primShapeError(op, layer: layer, msg) }
        switch op {
        case let .conv2D(win, oh, ow):
            try expectArity(ins, 2...2, layer)
            let (x, w) = (ins[0], ins[1])
            guard x.rank == 4, w.shape.count == 4, x.shape[3] == w.shape[2],
                  w.shape[0] == .fixed(win.kh), w.shape[1] == .fixed(win.kw) else { throw fail("\(x) and filter \(w) do not fit") }
            return [.f32([x.shape[0], .fixed(oh), .fixed(ow), w.shape[3]])]
        case let .convBiasAct(win, oh, ow, _):
            try expectArity(ins, 3...3, layer)
            let out = try inferPrim(.conv2D(win, outH: oh, outW: ow), Array(ins[0...1]), layer: layer)
            guard ins[2].shape == [ins[1].shape[3]] else { throw fail("bias \(ins[2]) does not fit filter \(ins[1])") }
            return out
        case let .conv2DGradInput(_, h, w):
            try expectArity(ins, 2...2, layer)
            return [.f32([ins[0].shape[0], .fixed(h), .fixed(w), ins[1].shape[2]])]
        case .conv2DGradFilter(let win):
            try expectArity(ins, 2...2, layer)
            return [.f32([.fixed(win.kh), .fixed(win.kw), ins[0].shape[3], ins[1].shape[3]])]
        case let .im2col(win, oh, ow):
            try expectArity(ins, 1...1, layer)
            guard ins[0].rank == 4 else { throw fail("needs rank 4, got \(ins[0])") }
            let rows = ins[0].shape[0]
            return [.f32([Dim.make(oh * ow * rows.factor, n: rows.isBatch, t: rows.isSteps), .fixed(win.kh * win.kw * ins[0].shape[3].factor)])]
        case let .col2im(win, h, w, c, oh, ow):
            try expectArity(ins, 1...1, layer)
            guard ins[0].rank == 2, ins[0].shape[0].isBatch, ins[0].shape[0].factor % (oh * ow) == 0,
                  ins[0].shape[1] == .fixed(win.kh * win.kw * c) else {
                throw fail("patches \(ins[0]) do not fit a \(win) window over \(c) channels")
            }
            let rows = ins[0].shape[0]
            return [.f32([Dim.make(rows.factor / (oh * ow), n: true, t: rows.isSteps), .fixed(h), .fixed(w), .fixed(c)])]
        default: notInFamily(op, Self.self)
        }
    }

    public static func gradient(_ op: PrimOp, _ n: Node, _ dys: [Value?], _ b: inout PrimBuilder) throws -> [Value?] {
        let dy = dys[0]!
        func shape(_ v: Value) -> [Dim] { b.type(v).shape }
        switch op {
        case let .conv2D(win, _, _):
            let (xv, w) = (n.inputs[0], n.inputs[1])
            let xs = shape(xv)
            return [try b.p(.conv2DGradInput(win, inH: xs[1].factor, inW: xs[2].factor), dy, w),
                    try b.p(.conv2DGradFilter(win), xv, dy)]
        case let .conv2DGradInput(win, _, _):
            // A transposed convolution (Conv2DTranspose): y[xi] = sum dy[yi] * w[wi] over the products of
            // the convolution it is the adjoint of, so d dy = conv2d(g, w) and d w = conv2d_grad_filter(g, dy).
            let (dyIn, w) = (n.inputs[0], n.inputs[1])
            let ds = shape(dyIn)
            return [try b.p(.conv2D(win, outH: ds[1].factor, outW: ds[2].factor), dy, w),
                    try b.p(.conv2DGradFilter(win), dy, dyIn)]
        case .convBiasAct, .conv2DGradFilter, .im2col, .col2im:
            throw ShapeError(layer: n.layer, "\(op) has no gradient rule (it should not appear before autodiff)")
        default: notInFamily(op, Self.self)
        }
    }

    public static func evaluate(_ op: PrimOp, _ n: Node, _ ins: [Tensor], _ outDims: [[Int]], _ ctx: inout EvalContext) throws -> [[Double]] {
        switch op {
        case let .conv2D(win, oh, ow):
            return [conv2D(ins[0], ins[1], win, oh, ow)]
        case let .convBiasAct(win, oh, ow, act):
            var y = conv2D(ins[0], ins[1], win, oh, ow)
            let f = ins[1].dims[3]
            for i in 0..<y.count {
                let pre = y[i] + ins[2].data[i % f]
                y[i] = act.map { evalFused($0, [pre], ctx) } ?? pre
            }
            return [y]
        case let .conv2DGradInput(win, h, w):
            return [conv2DGradInput(ins[0], ins[1], win, h, w)]
        case .conv2DGradFilter(let win):
            return [conv2DGradFilter(ins[0], ins[1], win)]
        case let .im2col(win, oh, ow):
            return [im2col(ins[0], win, oh, ow)]
        case let .col2im(win, h, w, c, oh, ow):
            return [col2im(ins[0], win, h, w, c, oh, ow)]
        default: notInFamily(op, Self.self)
        }
    }

    public static func kernel(_ op: PrimOp, _ n: Node, in g: Graph) -> [Step] {
        let (ins, args, bufs) = kernelOperands(n, in: g)
        func idx(_ k: Int) -> KExpr { .index(k) }
        switch op {
        case let .conv2D(win, _, _):
            // conv-gemm keeps a conv2d only where the runtime convolves directly (ConvToGemm.swift).
            precondition(directForward(channels: ins[1].shape[2].factor, filters: ins[1].shape[3].factor),
                         "kernelSteps: conv2d \(win) should have become im2col + product (conv-gemm)")
            return [.conv(x: n.inputs[0], w: n.inputs[1], y: n.outputs[0], ConvGeometry(win, image: ins[0].shape, maps: g.type(n.outputs[0]).shape), epilogue: nil)]
        case let .conv2DGradInput(win, _, _):
            precondition(directGradInput(channels: ins[1].shape[2].factor, filters: ins[1].shape[3].factor, win),
                         "kernelSteps: conv2d_grad_input should have become a product + col2im (conv-gemm)")
            return [.convGradInput(dy: n.inputs[0], w: n.inputs[1], dx: n.outputs[0], ConvGeometry(win, image: g.type(n.outputs[0]).shape, maps: ins[0].shape))]
        case let .conv2DGradFilter(win):
            precondition(directGradFilter(filters: g.type(n.inputs[1]).shape[3].factor),
                         "kernelSteps: conv2d_grad_filter should have become im2col + product (conv-gemm)")
            return [.convGradFilter(x: n.inputs[0], dy: n.inputs[1], dw: n.outputs[0], ConvGeometry(win, image: ins[0].shape, maps: ins[1].shape))]
        case .convBiasAct:
            preconditionFailure("kernelSteps: \(op) is rewritten by conv-gemm, which every pipeline runs before scheduling")
        case let .im2col(win, oh, ow):
            // p[(n,oh,ow), (i,j,c)] = x[n, oh*sh+i-pt, ow*sw+j-pl, c]: loops n, oh, ow, i, j, c.
            let x = ins[0]
            let (h, w, c) = (x.shape[1].factor, x.shape[2].factor, x.shape[3].factor)
            let xh = idx(1) * .int(win.sh) + idx(3) - .int(win.padTop)
            let xw = idx(2) * .int(win.sw) + idx(4) - .int(win.padLeft)
            let shape6: [Dim] = [x.shape[0], .fixed(oh), .fixed(ow), .fixed(win.kh), .fixed(win.kw), .fixed(c)]
            // A window that never leaves the image (no padding) reads without bounds checks.
            let at = linearIndex(x.shape, [idx(0), xh, xw, idx(5)])
            let inside = win.padTop == 0 && win.padLeft == 0 && (oh - 1) * win.sh + win.kh <= h && (ow - 1) * win.sw + win.kw <= w
            let k = LoopKernel(buffers: bufs, loops: extents(shape6),
                               body: inside ? .load(buffer: 0, at: at) : .guardedLoad(buffer: 0, at: at, valid: inRange(xh, h, xw, w), otherwise: 0),
                               output: 1, outputIndex: linearIndex(shape6, (0..<6).map(idx)))
            return [.loop(k, args: args)]
        case let .col2im(win, _, _, c, oh, ow):
            // x[n,h,w,c] = sum_{i,j} p[(n,(h+pt-i)/sh,(w+pl-j)/sw), (i,j,c)] where divisible and in range.
            let th = idx(1) + .int(win.padTop) - idx(4), tw = idx(2) + .int(win.padLeft) - idx(5)
            let (yh, yw) = (KExpr.idiv(th, .int(win.sh)), KExpr.idiv(tw, .int(win.sw)))
            let outShape = g.type(n.outputs[0]).shape
            let shape6: [Dim] = [outShape[0], .fixed(oh), .fixed(ow), .fixed(win.kh), .fixed(win.kw), .fixed(c)]
            let at = linearIndex(shape6, [idx(0), yh, yw, idx(4), idx(5), idx(3)])
            let k = LoopKernel(buffers: bufs, loops: extents(outShape), reduceLoops: [.int(win.kh), .int(win.kw)],
                               body: .guardedLoad(buffer: 0, at: at, valid: windowValid(th, win.sh, oh, tw, win.sw, ow), otherwise: 0),
                               output: 1, outputIndex: linearIndex(outShape, (0..<4).map(idx)))
            return [.loop(k, args: args)]
        default: notInFamily(op, Self.self)
        }
    }

    public static func describe(_ op: PrimOp) -> String {
        switch op {
        case let .conv2D(w, _, _): return "conv2d<\(w)>"
        case let .conv2DGradInput(w, _, _): return "conv2d_grad_input<\(w)>"
        case .conv2DGradFilter(let w): return "conv2d_grad_filter<\(w)>"
        case let .im2col(w, _, _): return "im2col<\(w)>"
        case let .col2im(w, _, _, _, _, _): return "col2im<\(w)>"
        case let .convBiasAct(w, _, _, act): return "conv2d_bias<\(w)>" + (act.map { "{\($0)}" } ?? "")
        default: notInFamily(op, Self.self)
        }
    }

    public static func fusedForm(_ op: PrimOp) -> FusedExpr? { nil }

    public static func effects(_ op: PrimOp) -> PrimEffects { .none }
}

/// Whether the runtime's direct kernel computes conv2d_grad_input (kiln_conv.c): channels a
/// multiple of 16 and the transposed filters small enough for the stack (KILN_CONV_STACK_FLOATS).
public func directGradInput(channels c: Int, filters f: Int, _ win: Window2D) -> Bool {
    c % 16 == 0 && win.kh * win.kw * f * c + f <= 16384
}

/// Whether the runtime's direct kernel computes conv2d_grad_filter (kiln_conv.c): filters a
/// multiple of 16 (any channel count: a first layer's single channel too, where im2col would
/// write every patch out to read it once).
public func directGradFilter(filters f: Int) -> Bool { f % 16 == 0 }

/// Whether the runtime's direct kernel computes conv2d (kiln_conv.c): filters a multiple of 16,
/// and channels enough to pay for its per-tap set-up (a first layer on 1 or 3 channels runs
/// faster as im2col + product, whose rows are whole patches).
public func directForward(channels c: Int, filters f: Int) -> Bool { f % 16 == 0 && c >= 8 }

/// Every product of a convolution's forward sum, as flat indices: x[xi] * w[wi] adds to
/// y[yi] (cells outside x contribute nothing). The three float64 rules below, the
/// convolution and its adjoints in x and in w, are sums over these triples.
func forEachConvProduct(n nb: Int, h: Int, w wd: Int, c: Int, oh: Int, ow: Int, f: Int, _ win: Window2D,
                        _ body: (_ xi: Int, _ wi: Int, _ yi: Int) -> Void) {
    for b in 0..<nb {
        for oy in 0..<oh {
            for ox in 0..<ow {
                for i in 0..<win.kh {
                    for j in 0..<win.kw {
                        let iy = oy * win.sh + i - win.padTop, ix = ox * win.sw + j - win.padLeft
                        if iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
                        for cc in 0..<c {
                            for ff in 0..<f {
                                body(((b * h + iy) * wd + ix) * c + cc, ((i * win.kw + j) * c + cc) * f + ff,
                                     ((b * oh + oy) * ow + ox) * f + ff)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// y[b,oy,ox,f] = sum_{i,j,c} x[b, oy*sh+i-pt, ox*sw+j-pl, c] * w[i,j,c,f]; cells outside x are zero.
func conv2D(_ x: Tensor, _ w: Tensor, _ win: Window2D, _ oh: Int, _ ow: Int) -> [Double] {
    let f = w.dims[3]
    var y = [Double](repeating: 0, count: x.dims[0] * oh * ow * f)
    forEachConvProduct(n: x.dims[0], h: x.dims[1], w: x.dims[2], c: x.dims[3], oh: oh, ow: ow, f: f, win) { xi, wi, yi in
        y[yi] += x.data[xi] * w.data[wi]
    }
    return y
}

/// The adjoint of conv2D in x: every product x·w of the forward sum sends dy·w back to its x cell.
func conv2DGradInput(_ dy: Tensor, _ w: Tensor, _ win: Window2D, _ h: Int, _ wd: Int) -> [Double] {
    let c = w.dims[2]
    var dx = [Double](repeating: 0, count: dy.dims[0] * h * wd * c)
    forEachConvProduct(n: dy.dims[0], h: h, w: wd, c: c, oh: dy.dims[1], ow: dy.dims[2], f: dy.dims[3], win) { xi, wi, yi in
        dx[xi] += dy.data[yi] * w.data[wi]
    }
    return dx
}

/// The adjoint of conv2D in w: every product x·w of the forward sum sends dy·x back to its w cell.
func conv2DGradFilter(_ x: Tensor, _ dy: Tensor, _ win: Window2D) -> [Double] {
    let (c, f) = (x.dims[3], dy.dims[3])
    var dw = [Double](repeating: 0, count: win.kh * win.kw * c * f)
    forEachConvProduct(n: x.dims[0], h: x.dims[1], w: x.dims[2], c: c, oh: dy.dims[1], ow: dy.dims[2], f: f, win) { xi, wi, yi in
        dw[wi] += dy.data[yi] * x.data[xi]
    }
    return dw
}

/// Patch rows: p[(b,oy,ox), (i,j,c)] = x[b, oy*sh+i-pt, ox*sw+j-pl, c], zero outside x. (With
/// one filter, a convolution's product indices are the patch row yi and column wi.)
func im2col(_ x: Tensor, _ win: Window2D, _ oh: Int, _ ow: Int) -> [Double] {
    let cols = win.kh * win.kw * x.dims[3]
    var p = [Double](repeating: 0, count: x.dims[0] * oh * ow * cols)
    forEachConvProduct(n: x.dims[0], h: x.dims[1], w: x.dims[2], c: x.dims[3], oh: oh, ow: ow, f: 1, win) { xi, wi, yi in
        p[yi * cols + wi] = x.data[xi]
    }
    return p
}

/// The adjoint of im2col: every patch entry is added back to the x cell it was read from.
func col2im(_ p: Tensor, _ win: Window2D, _ h: Int, _ wd: Int, _ c: Int, _ oh: Int, _ ow: Int) -> [Double] {
    let cols = win.kh * win.kw * c
    let nb = p.dims[0] / (oh * ow)
    var x = [Double](repeating: 0, count: nb * h * wd * c)
    forEachConvProduct(n: nb, h: h, w: wd, c: c, oh: oh, ow: ow, f: 1, win) { xi, wi, yi in
        x[xi] += p.data[yi * cols + wi]
    }
    return x
}
