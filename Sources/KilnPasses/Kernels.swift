import KilnIR

// The kernel of every primitive: how one node becomes steps of loop kernels
// (or a BLAS call). Reshape has no kernel: its output aliases its input.

/// Translates an elementwise expression over args into a kernel expression,
/// given how to load each argument.
func kexpr(_ e: FusedExpr, _ load: (Int) -> KExpr) -> KExpr {
    switch e {
    case .arg(let k): return load(k)
    case .const(let c): return .real(c)
    case .batchSize: return .toReal(.n)
    case .stepCount: return .toReal(.steps)
    case .iteration: return .toReal(.iteration)
    case let .unary(op, a): return .unary(op, kexpr(a, load))
    case let .binary(op, a, b): return .binary(op, kexpr(a, load), kexpr(b, load))
    case let .compare(op, a, b): return .compare(op, kexpr(a, load), kexpr(b, load))
    case let .select(c, a, b): return .select(kexpr(c, load), kexpr(a, load), kexpr(b, load))
    case let .cast(t, a):
        let x = kexpr(a, load)
        return t == .f32 ? .toReal(x) : .toInt(x)
    }
}

/// The elementwise expression of a primitive, if it is elementwise.
public func elementwiseExpr(_ op: PrimOp, arity: Int) -> FusedExpr? {
    switch op {
    case .unary(let u): return .unary(u, .arg(0))
    case .binary(let b): return .binary(b, .arg(0), .arg(1))
    case .compare(let c): return .compare(c, .arg(0), .arg(1))
    case .select: return .select(.arg(0), .arg(1), .arg(2))
    case .cast(let t): return .cast(t, .arg(0))
    case .constant(let c): return .const(c)
    case .batchSize: return .batchSize
    case .stepCount: return .stepCount
    case .iteration: return .iteration
    case .broadcast: return .arg(0)
    case .fused(let e): return e
    default: return nil
    }
}

/// Steps for one primitive node of graph g.
public func kernelSteps(_ n: Node, in g: Graph) -> [Step] {
    guard case .prim(let op) = n.op else { fatalError("kernelSteps: layer op \(n.op) reached codegen; lowering must run first") }
    let ins = n.inputs.map { g.type($0) }
    let args = n.inputs + n.outputs
    let outBuf = n.inputs.count
    let bufs = ins.map { KBuffer($0.dtype) } + n.outputs.map { KBuffer(g.type($0).dtype, written: true) }
    func idx(_ k: Int) -> KExpr { .index(k) }

    if let e = elementwiseExpr(op, arity: n.inputs.count) {
        let out = g.type(n.outputs[0])
        // Same shape everywhere (or a single element, broadcast): one flat loop.
        func isScalar(_ t: TensorType) -> Bool { t.scale == .fixed && t.staticCount == 1 }
        if ins.allSatisfy({ $0.shape == out.shape || isScalar($0) }) {
            let i = KExpr.index(0)
            let k = LoopKernel(buffers: bufs, loops: [elementCount(out)], body: kexpr(e) { .load(buffer: $0, at: ins[$0].shape == out.shape ? i : .int(0)) },
                               output: outBuf, outputIndex: i)
            return [.loop(k, args: args)]
        }
        let r = out.rank
        let ix = (0..<r).map(idx)
        let body = kexpr(e) { .load(buffer: $0, at: linearIndex(ins[$0].shape, ix)) }
        let k = LoopKernel(buffers: bufs, loops: extents(out.shape), body: body,
                           output: outBuf, outputIndex: linearIndex(out.shape, ix))
        return [.loop(k, args: args)]
    }

    switch op {
    case .reshape:
        return []
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
    case .transpose(let perm):
        let out = g.type(n.outputs[0])
        var src = [KExpr](repeating: .int(0), count: perm.count)
        for (j, p) in perm.enumerated() { src[p] = idx(j) }
        let k = LoopKernel(buffers: bufs, loops: extents(out.shape), body: .load(buffer: 0, at: linearIndex(ins[0].shape, src)),
                           output: 1, outputIndex: linearIndex(out.shape, (0..<perm.count).map(idx)))
        return [.loop(k, args: args)]
    case let .matmul(ta, tb):
        let (a, b) = (ins[0], ins[1])
        let ea = extents(a.shape), eb = extents(b.shape)
        let m = ta ? ea[1] : ea[0], kk = ta ? ea[0] : ea[1], nn = tb ? eb[0] : eb[1]
        return [.gemm(a: n.inputs[0], b: n.inputs[1], c: n.outputs[0], transA: ta, transB: tb, m: m, n: nn, k: kk, epilogue: nil)]
    case let .conv2D(win, _, _):
        // conv-gemm keeps a conv2d only where the runtime convolves directly (ConvToGemm.swift).
        precondition(directForward(channels: ins[1].shape[2].factor, filters: ins[1].shape[3].factor),
                     "kernelSteps: conv2d \(win) should have become im2col + product (conv-gemm)")
        return [.conv(x: n.inputs[0], w: n.inputs[1], y: n.outputs[0], win, epilogue: nil)]
    case let .conv2DGradInput(win, _, _):
        precondition(directGradInput(channels: ins[1].shape[2].factor, filters: ins[1].shape[3].factor, win),
                     "kernelSteps: conv2d_grad_input should have become a product + col2im (conv-gemm)")
        return [.convGradInput(dy: n.inputs[0], w: n.inputs[1], dx: n.outputs[0], win)]
    case .convBiasAct, .conv2DGradFilter:
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
    case .iota(let k):
        return [.loop(LoopKernel(buffers: bufs, loops: [.int(k)], body: .toReal(idx(0)), output: 0, outputIndex: idx(0)), args: args)]
    case .randomUniform(let salt):
        let out = g.type(n.outputs[0])
        let k = LoopKernel(buffers: bufs, loops: [elementCount(out)], body: .random(salt: salt, at: idx(0)), output: 1, outputIndex: idx(0))
        return [.loop(k, args: args)]
    case .scan, .scanGrad:
        return [.scan(scanStep(n, in: g))]
    case .assign:
        let t = ins[1]
        let k = LoopKernel(buffers: [KBuffer(t.dtype, written: true), KBuffer(t.dtype)], loops: [.int(t.staticCount)],
                           body: .load(buffer: 1, at: idx(0)), output: 0, outputIndex: idx(0))
        return [.loop(k, args: n.inputs)]
    default:
        fatalError("kernelSteps: no kernel for \(op)")
    }
}


func inRange(_ a: KExpr, _ ha: Int, _ b: KExpr, _ hb: Int) -> KExpr {
    .and(.and(.compare(.ge, a, .int(0)), .compare(.lt, a, .int(ha))),
         .and(.compare(.ge, b, .int(0)), .compare(.lt, b, .int(hb))))
}

/// t = out*stride exactly, for an out in [0, limit), along both axes.
func windowValid(_ th: KExpr, _ sh: Int, _ oh: Int, _ tw: KExpr, _ sw: Int, _ ow: Int) -> KExpr {
    func one(_ t: KExpr, _ s: Int, _ o: Int) -> KExpr {
        var v = KExpr.and(.compare(.ge, t, .int(0)), .compare(.lt, t, .int(o * s)))
        if s != 1 { v = .and(v, .compare(.eq, .imod(t, .int(s)), .int(0))) }
        return v
    }
    return .and(one(th, sh, oh), one(tw, sw, ow))
}

/// Number of input cells of the pooling window at (oh, ow) inside the input.
func poolCount(_ win: Window2D, h: Int, w: Int, oh: KExpr = .index(1), ow: KExpr = .index(2)) -> KExpr {
    func along(_ o: KExpr, _ s: Int, _ pad: Int, _ k: Int, _ size: Int) -> KExpr {
        let lo = o * .int(s) - .int(pad)
        let hi = lo + .int(k)
        let clo = KExpr.select(.compare(.lt, lo, .int(0)), .int(0), lo)
        let chi = KExpr.select(.compare(.gt, hi, .int(size)), .int(size), hi)
        return chi - clo
    }
    return along(oh, win.sh, win.padTop, win.kh, h) * along(ow, win.sw, win.padLeft, win.kw, w)
}
