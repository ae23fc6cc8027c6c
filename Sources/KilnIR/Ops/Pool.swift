// Max and average pooling (channels_last; padded cells are ignored, avg counts
// the valid cells only) and their gradients.

public enum Pool: PrimitiveFamily {
    public static func infer(_ op: PrimOp, _ ins: [TensorType], layer: String) throws -> [TensorType] {
        func fail(_ msg: String) -> ShapeError { primShapeError(op, layer: layer, msg) }
        switch op {
        case let .pool2D(_, _, oh, ow):
            try expectArity(ins, 1...1, layer)
            let x = ins[0]
            guard x.rank == 4 else { throw fail("needs rank 4, got \(x)") }
            return [.f32([x.shape[0], .fixed(oh), .fixed(ow), x.shape[3]])]
        case .pool2DGrad:
            try expectArity(ins, 3...3, layer)
            return [ins[0]]
        default: notInFamily(op, Self.self)
        }
    }

    public static func gradient(_ op: PrimOp, _ n: Node, _ dys: [Value?], _ b: inout PrimBuilder) throws -> [Value?] {
        let dy = dys[0]!
        let x = n.inputs.first
        let y = n.outputs[0]
        switch op {
        case let .pool2D(kind, win, _, _):
            return [try b.p(.pool2DGrad(kind, win), x!, y, dy)]
        case .pool2DGrad:
            throw ShapeError(layer: n.layer, "\(op) has no gradient rule (it should not appear before autodiff)")
        default: notInFamily(op, Self.self)
        }
    }

    public static func evaluate(_ op: PrimOp, _ n: Node, _ ins: [Tensor], _ outDims: [[Int]], _ ctx: inout EvalContext) throws -> [[Double]] {
        switch op {
        case let .pool2D(kind, win, oh, ow): return [pool2D(kind, ins[0], win, oh, ow)]
        case let .pool2DGrad(kind, win): return [pool2DGrad(kind, ins[0], ins[1], ins[2], win)]
        default: notInFamily(op, Self.self)
        }
    }

    public static func kernel(_ op: PrimOp, _ n: Node, in g: Graph) -> [Step] {
        let (ins, args, bufs) = kernelOperands(n, in: g)
        func idx(_ k: Int) -> KExpr { .index(k) }
        switch op {
        case let .pool2D(kind, win, oh, ow):
            let x = ins[0]
            let (h, w) = (x.shape[1].factor, x.shape[2].factor)
            let xh = idx(1) * .int(win.sh) + idx(4) - .int(win.padTop)
            let xw = idx(2) * .int(win.sw) + idx(5) - .int(win.padLeft)
            let load = KExpr.guardedLoad(buffer: 0, at: linearIndex(x.shape, [idx(0), xh, xw, idx(3)]), valid: inRange(xh, h, xw, w),
                                         otherwise: kind == .max ? -Float.infinity : 0)
            let outShape: [Dim] = [x.shape[0], .fixed(oh), .fixed(ow), x.shape[3]]
            let k = LoopKernel(buffers: bufs, loops: extents(outShape), reduceLoops: [.int(win.kh), .int(win.kw)],
                               reduceOp: kind == .max ? .max : .sum, body: load,
                               epilogue: kind == .avg ? .binary(.div, .acc, .toReal(poolCount(win, h: h, w: w))) : nil,
                               output: 1, outputIndex: linearIndex(outShape, (0..<4).map(idx)))
            return [.loop(k, args: args)]
        case let .pool2DGrad(kind, win):
            // dx[n,h,w,c] = sum over windows (oh,ow) holding (h,w) of dy[window] (max: where x == y[window];
            // avg: divided by the window's valid-cell count).
            let (x, y) = (ins[0], ins[1])
            let (h, w) = (x.shape[1].factor, x.shape[2].factor)
            let (oh, ow) = (y.shape[1].factor, y.shape[2].factor)
            // Windows that tile the input (stride = pool size, no padding): the one window holding
            // (h, w) is (h / kh, w / kw), so there is nothing to search.
            let tiled = win.sh == win.kh && win.sw == win.kw && win.padTop == 0 && win.padLeft == 0
            let th = tiled ? idx(1) : idx(1) + .int(win.padTop) - idx(4), tw = tiled ? idx(2) : idx(2) + .int(win.padLeft) - idx(5)
            let (yh, yw) = (KExpr.idiv(th, .int(win.sh)), KExpr.idiv(tw, .int(win.sw)))
            let valid = tiled ? .and(.compare(.lt, yh, .int(oh)), .compare(.lt, yw, .int(ow))) : windowValid(th, win.sh, oh, tw, win.sw, ow)
            let yAt = linearIndex(y.shape, [idx(0), yh, yw, idx(3)])
            let dyv = KExpr.guardedLoad(buffer: 2, at: yAt, valid: valid, otherwise: 0)
            let body: KExpr
            if kind == .max {
                let hit = KExpr.compare(.eq, .load(buffer: 0, at: linearIndex(x.shape, (0..<4).map(idx))),
                                        .guardedLoad(buffer: 1, at: yAt, valid: valid, otherwise: .nan))
                body = .select(hit, dyv, .real(0))
            } else {
                let cnt = poolCount(win, h: h, w: w, oh: yh, ow: yw)
                body = .binary(.div, dyv, .toReal(cnt))
            }
            let k = LoopKernel(buffers: bufs, loops: extents(x.shape), reduceLoops: tiled ? [] : [.int(win.kh), .int(win.kw)],
                               body: body, output: 3, outputIndex: linearIndex(x.shape, (0..<4).map(idx)))
            return [.loop(k, args: args)]
        default: notInFamily(op, Self.self)
        }
    }

    public static func describe(_ op: PrimOp) -> String {
        switch op {
        case let .pool2D(k, w, _, _): return "\(k.rawValue)_pool2d<\(w)>"
        case let .pool2DGrad(k, w): return "\(k.rawValue)_pool2d_grad<\(w)>"
        default: notInFamily(op, Self.self)
        }
    }

    public static func fusedForm(_ op: PrimOp) -> FusedExpr? { nil }

    public static func effects(_ op: PrimOp) -> PrimEffects { .none }
}

/// The input cells (iy, ix) of pooling window (oy, ox) that lie inside the input.
func windowCells(_ win: Window2D, _ oy: Int, _ ox: Int, _ h: Int, _ wd: Int) -> [(Int, Int)] {
    var cells: [(Int, Int)] = []
    for i in 0..<win.kh {
        for j in 0..<win.kw {
            let iy = oy * win.sh + i - win.padTop, ix = ox * win.sw + j - win.padLeft
            if iy >= 0 && iy < h && ix >= 0 && ix < wd { cells.append((iy, ix)) }
        }
    }
    return cells
}

func pool2D(_ kind: PoolKind, _ x: Tensor, _ win: Window2D, _ oh: Int, _ ow: Int) -> [Double] {
    let (nb, h, wd, c) = (x.dims[0], x.dims[1], x.dims[2], x.dims[3])
    var y = [Double](repeating: 0, count: nb * oh * ow * c)
    for b in 0..<nb {
        for oy in 0..<oh {
            for ox in 0..<ow {
                let cells = windowCells(win, oy, ox, h, wd)
                for cc in 0..<c {
                    var m = -Double.infinity, s = 0.0
                    for (iy, ix) in cells {
                        let v = x.data[((b * h + iy) * wd + ix) * c + cc]
                        m = Swift.max(m, v); s += v
                    }
                    y[((b * oh + oy) * ow + ox) * c + cc] = kind == .max ? m : s / Double(cells.count)
                }
            }
        }
    }
    return y
}

/// Max: each window's dy goes to the cells of the window equal to its max y.
/// Avg: each window's dy is spread evenly over its valid cells.
func pool2DGrad(_ kind: PoolKind, _ x: Tensor, _ y: Tensor, _ dy: Tensor, _ win: Window2D) -> [Double] {
    let (nb, h, wd, c) = (x.dims[0], x.dims[1], x.dims[2], x.dims[3])
    let (oh, ow) = (y.dims[1], y.dims[2])
    var dx = [Double](repeating: 0, count: x.count)
    for b in 0..<nb {
        for oy in 0..<oh {
            for ox in 0..<ow {
                let cells = windowCells(win, oy, ox, h, wd)
                for cc in 0..<c {
                    let o = ((b * oh + oy) * ow + ox) * c + cc
                    for (iy, ix) in cells {
                        let xi = ((b * h + iy) * wd + ix) * c + cc
                        switch kind {
                        case .max: if x.data[xi] == y.data[o] { dx[xi] += dy.data[o] }
                        case .avg: dx[xi] += dy.data[o] / Double(cells.count)
                        }
                    }
                }
            }
        }
    }
    return dx
}
