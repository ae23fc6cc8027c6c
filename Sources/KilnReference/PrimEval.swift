// The float64 meaning of each primitive op, one case at a time.

import KilnIR

func evalPrim(_ op: PrimOp, _ ins: [Tensor], _ outDims: [Int], _ ctx: Context) throws -> [Double] {
    switch op {
    case .unary(let u):
        return ins[0].data.map { applyUnary(u, $0) }
    case .binary(let o):
        return try elementwise(ins, outDims) { applyBinary(o, $0[0], $0[1]) }
    case .compare(let c):
        return try elementwise(ins, outDims) { applyCompare(c, $0[0], $0[1]) }
    case .select:
        return try elementwise(ins, outDims) { $0[0] != 0 ? $0[1] : $0[2] }
    case .cast(let t):
        return ins[0].data.map { applyCast(t, $0) }
    case .constant(let c):
        return [Double(c)]
    case .batchSize:
        return [Double(ctx.n)]
    case .stepCount:
        return [Double(ctx.steps)]
    case .iteration:
        return [Double(ctx.iteration)]
    case .iota(let k):
        return (0..<k).map(Double.init)
    case let .reduce(r, axes, _):
        return reduce(r, ins[0], axes: axes)
    case .reshape:
        return ins[0].data
    case .transpose(let perm):
        return transpose(ins[0], perm)
    case .broadcast:
        let src = try broadcastSource(ins[0].dims, to: outDims)
        return src.map { ins[0].data[$0] }
    case let .matmul(ta, tb):
        return matmul(ins[0], ins[1], ta, tb)
    case let .conv2D(win, oh, ow):
        return conv2D(ins[0], ins[1], win, oh, ow)
    case let .convBiasAct(win, oh, ow, act):
        var y = conv2D(ins[0], ins[1], win, oh, ow)
        let f = ins[1].dims[3]
        for i in 0..<y.count {
            let pre = y[i] + ins[2].data[i % f]
            y[i] = act.map { evalFused($0, [pre], ctx) } ?? pre
        }
        return y
    case let .conv2DGradInput(win, h, w):
        return conv2DGradInput(ins[0], ins[1], win, h, w)
    case .conv2DGradFilter(let win):
        return conv2DGradFilter(ins[0], ins[1], win)
    case let .im2col(win, oh, ow):
        return im2col(ins[0], win, oh, ow)
    case let .col2im(win, h, w, c, oh, ow):
        return col2im(ins[0], win, h, w, c, oh, ow)
    case let .pool2D(kind, win, oh, ow):
        return pool2D(kind, ins[0], win, oh, ow)
    case let .pool2DGrad(kind, win):
        return pool2DGrad(kind, ins[0], ins[1], ins[2], win)
    case .gather:
        return gather(ins[0], ins[1])
    case .scatterAdd(let rows):
        return scatterAdd(ins[0], ins[1], rows: rows)
    case .concat(let axis):
        return concat(ins, axis: axis, outDims)
    case let .slice(axis, start, length):
        return slice(ins[0], axis: axis, start: start, length: length)
    case .split, .scan:
        throw InterpreterError("\(op) has several outputs; the interpreter evaluates it itself")
    case .scanGrad:
        throw InterpreterError("scan_grad has no float64 reference: scans' gradients are checked against finite differences of scan")
    case .fused(let e):
        return try elementwise(ins, outDims) { evalFused(e, $0, ctx) }
    case .randomUniform:
        throw InterpreterError("random_uniform is unsupported (the reference has no random stream)")
    case .assign:
        return []
    }
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

/// y[b,oy,ox,f] = sum_{i,j,c} x[b, oy*sh+i-pt, ox*sw+j-pl, c] * w[i,j,c,f]; cells outside x are zero.
func conv2D(_ x: Tensor, _ w: Tensor, _ win: Window2D, _ oh: Int, _ ow: Int) -> [Double] {
    let (nb, h, wd, c) = (x.dims[0], x.dims[1], x.dims[2], x.dims[3])
    let f = w.dims[3]
    var y = [Double](repeating: 0, count: nb * oh * ow * f)
    for b in 0..<nb {
        for oy in 0..<oh {
            for ox in 0..<ow {
                for ff in 0..<f {
                    var s = 0.0
                    for i in 0..<win.kh {
                        for j in 0..<win.kw {
                            let iy = oy * win.sh + i - win.padTop, ix = ox * win.sw + j - win.padLeft
                            if iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
                            for cc in 0..<c {
                                s += x.data[((b * h + iy) * wd + ix) * c + cc] * w.data[((i * win.kw + j) * c + cc) * f + ff]
                            }
                        }
                    }
                    y[((b * oh + oy) * ow + ox) * f + ff] = s
                }
            }
        }
    }
    return y
}

/// The adjoint of conv2D in x: every product x·w of the forward sum sends dy·w back to its x cell.
func conv2DGradInput(_ dy: Tensor, _ w: Tensor, _ win: Window2D, _ h: Int, _ wd: Int) -> [Double] {
    let (nb, oh, ow, f) = (dy.dims[0], dy.dims[1], dy.dims[2], dy.dims[3])
    let c = w.dims[2]
    var dx = [Double](repeating: 0, count: nb * h * wd * c)
    for b in 0..<nb {
        for oy in 0..<oh {
            for ox in 0..<ow {
                for ff in 0..<f {
                    let g = dy.data[((b * oh + oy) * ow + ox) * f + ff]
                    for i in 0..<win.kh {
                        for j in 0..<win.kw {
                            let iy = oy * win.sh + i - win.padTop, ix = ox * win.sw + j - win.padLeft
                            if iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
                            for cc in 0..<c {
                                dx[((b * h + iy) * wd + ix) * c + cc] += g * w.data[((i * win.kw + j) * c + cc) * f + ff]
                            }
                        }
                    }
                }
            }
        }
    }
    return dx
}

/// The adjoint of conv2D in w.
func conv2DGradFilter(_ x: Tensor, _ dy: Tensor, _ win: Window2D) -> [Double] {
    let (nb, h, wd, c) = (x.dims[0], x.dims[1], x.dims[2], x.dims[3])
    let (oh, ow, f) = (dy.dims[1], dy.dims[2], dy.dims[3])
    var dw = [Double](repeating: 0, count: win.kh * win.kw * c * f)
    for b in 0..<nb {
        for oy in 0..<oh {
            for ox in 0..<ow {
                for ff in 0..<f {
                    let g = dy.data[((b * oh + oy) * ow + ox) * f + ff]
                    for i in 0..<win.kh {
                        for j in 0..<win.kw {
                            let iy = oy * win.sh + i - win.padTop, ix = ox * win.sw + j - win.padLeft
                            if iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
                            for cc in 0..<c {
                                dw[((i * win.kw + j) * c + cc) * f + ff] += g * x.data[((b * h + iy) * wd + ix) * c + cc]
                            }
                        }
                    }
                }
            }
        }
    }
    return dw
}

/// Patch rows: p[(b,oy,ox), (i,j,c)] = x[b, oy*sh+i-pt, ox*sw+j-pl, c], zero outside x.
func im2col(_ x: Tensor, _ win: Window2D, _ oh: Int, _ ow: Int) -> [Double] {
    let (nb, h, wd, c) = (x.dims[0], x.dims[1], x.dims[2], x.dims[3])
    let cols = win.kh * win.kw * c
    var p = [Double](repeating: 0, count: nb * oh * ow * cols)
    for b in 0..<nb {
        for oy in 0..<oh {
            for ox in 0..<ow {
                let row = (b * oh + oy) * ow + ox
                for i in 0..<win.kh {
                    for j in 0..<win.kw {
                        let iy = oy * win.sh + i - win.padTop, ix = ox * win.sw + j - win.padLeft
                        if iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
                        for cc in 0..<c {
                            p[row * cols + (i * win.kw + j) * c + cc] = x.data[((b * h + iy) * wd + ix) * c + cc]
                        }
                    }
                }
            }
        }
    }
    return p
}

/// The adjoint of im2col: every patch entry is added back to the x cell it was read from.
func col2im(_ p: Tensor, _ win: Window2D, _ h: Int, _ wd: Int, _ c: Int, _ oh: Int, _ ow: Int) -> [Double] {
    let cols = win.kh * win.kw * c
    let nb = p.dims[0] / (oh * ow)
    var x = [Double](repeating: 0, count: nb * h * wd * c)
    for b in 0..<nb {
        for oy in 0..<oh {
            for ox in 0..<ow {
                let row = (b * oh + oy) * ow + ox
                for i in 0..<win.kh {
                    for j in 0..<win.kw {
                        let iy = oy * win.sh + i - win.padTop, ix = ox * win.sw + j - win.padLeft
                        if iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
                        for cc in 0..<c {
                            x[((b * h + iy) * wd + ix) * c + cc] += p.data[row * cols + (i * win.kw + j) * c + cc]
                        }
                    }
                }
            }
        }
    }
    return x
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
