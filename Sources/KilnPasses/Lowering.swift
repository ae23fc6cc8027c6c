import KilnIR

/// Lowers layer ops to primitive ops, in the training form every program starts from:
/// Dropout draws its mask (and records that inference takes its input instead), scans record
/// what their gradient needs. The inference pass derives predict and evaluate from it.
public let lowerLayers = Pass("lower") { g in
    var r = GraphRebuilder(g)
    var salt = 0
    return try r.run { r, n in
        guard case .layer(let op) = n.op else { return try r.copy(n) }
        var b = PrimBuilder(graph: r.new, layer: n.layer)
        let ins = n.inputs.map { r[$0] }
        let outs = try b.lowerOutputs(op, ins, salt: &salt)
        r.new = b.graph
        return outs
    }
}

extension PrimBuilder {
    /// An activation applied elementwise (softmax and log_softmax on the last axis).
    public mutating func activation(_ a: Activation, _ x: Value, alpha: Float = 0) throws -> Value {
        switch a {
        case .linear: return x
        case .relu:
            if alpha != 0 { return try activation(.leakyRelu, x, alpha: alpha) }
            return try unary(.relu, x)
        case .sigmoid: return try unary(.sigmoid, x)
        case .tanh: return try unary(.tanh, x)
        case .exponential: return try unary(.exp, x)
        case .softplus: return try unary(.softplus, x)
        case .softsign: return try div(x, try add(try unary(.abs, x), 1))
        case .swish: return try mul(x, try unary(.sigmoid, x))
        case .elu:
            let neg = try mul(try add(try unary(.exp, x), -1), alpha == 0 ? 1 : alpha)
            return try select(try compare(.gt, x, try const(0)), x, neg)
        case .selu:
            let (al, scale): (Float, Float) = (1.6732632423543772, 1.0507009873554805)
            let neg = try mul(try add(try unary(.exp, x), -1), al)
            return try mul(try select(try compare(.gt, x, try const(0)), x, neg), scale)
        case .gelu:
            let e = try unary(.erf, try mul(x, Float(1.0 / 2.0.squareRoot())))
            return try mul(try mul(x, try add(e, 1)), 0.5)
        case .hardSigmoid:
            return try binary(.min, try unary(.relu, try add(try mul(x, Float(1.0 / 6.0)), 0.5)), try const(1))
        case .hardSilu:
            return try mul(x, try activation(.hardSigmoid, x))
        case .leakyRelu:
            let slope = alpha == 0 ? 0.2 : alpha
            return try select(try compare(.ge, x, try const(0)), x, try mul(x, slope))
        case .relu6:
            return try binary(.min, try unary(.relu, x), try const(6))
        case .mish:
            return try mul(x, try unary(.tanh, try unary(.softplus, x)))
        case .celu:
            let a = alpha == 0 ? 1 : alpha
            let neg = try mul(try add(try unary(.exp, try mul(x, 1 / a)), -1), a)
            return try select(try compare(.gt, x, try const(0)), x, neg)
        case .hardShrink:
            return try select(try compare(.gt, try unary(.abs, x), try const(0.5)), x, try const(0))
        case .hardTanh:
            return try binary(.min, try binary(.max, x, try const(-1)), try const(1))
        case .logSigmoid:
            return try unary(.neg, try unary(.softplus, try unary(.neg, x)))
        case .softShrink:
            let zero = try const(0)
            let lower = try select(try compare(.lt, x, try const(-0.5)), try add(x, 0.5), zero)
            return try select(try compare(.gt, x, try const(0.5)), try add(x, -0.5), lower)
        case .sparsePlus:
            let mid = try mul(try unary(.square, try add(x, 1)), 0.25)
            let upper = try select(try compare(.ge, x, try const(1)), x, mid)
            return try select(try compare(.le, x, try const(-1)), try const(0), upper)
        case .squareplus:
            return try mul(try add(x, try unary(.sqrt, try add(try unary(.square, x), 4))), 0.5)
        case .tanhShrink:
            return try sub(x, try unary(.tanh, x))
        case .sparsemax:
            // Without sorting: z_i is in the support when 1 + c_i z_i > s_i, where c_i counts the
            // z_j >= z_i and s_i sums them (s_i is the cumulative sum at z_i's rank). As Keras' JAX
            // backend computes it, tau = (sum of those cumulative sums over the support - 1) / its size.
            let shape = type(x).shape
            let last = shape.count - 1
            let zi = try reshape(x, shape + [.fixed(1)])
            let zj = try reshape(x, Array(shape.dropLast()) + [.fixed(1), shape[last]])
            // z_j comes before z_i in a descending stable sort: greater, or equal and earlier.
            let k = shape[last].factor
            let iota = try p(.iota(k))
            let jIdx = try reshape(iota, [.fixed(1), .fixed(k)]), iIdx = try reshape(iota, [.fixed(k), .fixed(1)])
            let earlier = try cast(try compare(.le, jIdx, iIdx), .f32)
            let ge = try add(try cast(try compare(.gt, zj, zi), .f32), try mul(try cast(try compare(.eq, zj, zi), .f32), earlier))
            let c = try reduce(.sum, ge, axes: [last + 1])
            let s = try reduce(.sum, try mul(ge, zj), axes: [last + 1])
            let support = try cast(try compare(.gt, try add(try mul(c, x), 1), s), .f32)
            let size = try reduce(.sum, support, axes: [last], keepDims: true)
            let tau = try div(try add(try reduce(.sum, try mul(support, s), axes: [last], keepDims: true), -1), size)
            return try unary(.relu, try sub(x, tau))
        case .softmax, .logSoftmax:
            let last = type(x).rank - 1
            let m = try reduce(.max, x, axes: [last], keepDims: true)
            let shifted = try sub(x, m)
            let e = try unary(.exp, shifted)
            let s = try reduce(.sum, e, axes: [last], keepDims: true)
            return a == .softmax ? try div(e, s) : try sub(shifted, try unary(.log, s))
        }
    }

    /// Lowers one layer op.
    mutating func lower(_ op: LayerOp, _ ins: [Value], salt: inout Int) throws -> Value {
        let x = ins[0]
        let xt = type(x)
        switch op {
        case let .dense(units, act, useBias):
            let inDim = xt.shape.last!.factor
            let rows = Dim.product(Array(xt.shape.dropLast()))!
            let x2 = try reshape(x, [rows, .fixed(inDim)])
            var y = try reshape(try p(.matmul(transA: false, transB: false), x2, ins[1]), Array(xt.shape.dropLast()) + [.fixed(units)])
            if useBias { y = try add(y, ins[2]) }
            return try activation(act, y)
        case let .conv2D(_, kernel, strides, padding, act, useBias):
            let (oh, pt) = Window2D.outSize(xt.shape[1].factor, kernel: kernel[0], stride: strides[0], padding: padding)
            let (ow, pl) = Window2D.outSize(xt.shape[2].factor, kernel: kernel[1], stride: strides[1], padding: padding)
            let win = Window2D(kh: kernel[0], kw: kernel[1], sh: strides[0], sw: strides[1], padTop: pt, padLeft: pl)
            var y = try p(.conv2D(win, outH: oh, outW: ow), x, ins[1])
            if useBias { y = try add(y, ins[2]) }
            return try activation(act, y)
        case let .maxPool2D(pool, strides, padding), let .avgPool2D(pool, strides, padding):
            let kind: PoolKind = { if case .maxPool2D = op { return .max } else { return .avg } }()
            let (oh, pt) = Window2D.outSize(xt.shape[1].factor, kernel: pool[0], stride: strides[0], padding: padding)
            let (ow, pl) = Window2D.outSize(xt.shape[2].factor, kernel: pool[1], stride: strides[1], padding: padding)
            let win = Window2D(kh: pool[0], kw: pool[1], sh: strides[0], sw: strides[1], padTop: pt, padLeft: pl)
            return try p(.pool2D(kind, win, outH: oh, outW: ow), x)
        case .globalAvgPool2D:
            return try reduce(.mean, x, axes: [1, 2])
        case .globalMaxPool2D:
            return try reduce(.max, x, axes: [1, 2])
        case let .relu(maxValue, slope, threshold):
            // As Keras' relu(x, negative_slope, max_value, threshold).
            if slope != 0 && maxValue == nil && threshold == 0 { return try activation(.leakyRelu, x, alpha: slope) }
            let negPart = slope != 0 ? try unary(.relu, try add(try unary(.neg, x), threshold)) : nil
            var y: Value
            if threshold != 0 {
                y = try mul(x, try cast(try compare(.gt, x, try const(threshold)), .f32))
            } else {
                y = try unary(.relu, x)
            }
            if let m = maxValue { y = try binary(.min, try binary(.max, y, try const(0)), try const(m)) }
            if let n = negPart { y = try sub(y, try mul(n, slope)) }
            return y
        case .prelu:
            let pos = try unary(.relu, x)
            let neg = try mul(ins[1], try unary(.relu, try unary(.neg, x)))
            return try sub(pos, neg)
        case .flatten, .reshape:
            let out = try inferLayer(op, [xt], layer: layer)
            return try reshape(x, out.shape)
        case .dropout(let rate):
            guard rate > 0 else { return x }
            salt += 1
            let u = try p(.randomUniform(salt: salt), x)
            let keep = try cast(try compare(.ge, u, try const(rate)), .f32)
            let y = try mul(try mul(x, keep), 1 / (1 - rate))
            graph.inferenceForms[y] = x
            return y
        case let .activation(a, alpha):
            return try activation(a, x, alpha: alpha)
        case .embedding:
            return try p(.gather, ins[1], try cast(x, .i32))
        case .concatenate(let axis):
            let ax = axis < 0 ? xt.rank + axis : axis
            return try graph.add(.prim(.concat(axis: ax)), ins, layer: layer)[0]
        case .add:
            var acc = x
            for v in ins.dropFirst() { acc = try add(acc, v) }
            return acc
        case .recurrent, .bidirectional:
            return try lowerOutputs(op, ins, salt: &salt)[0]
        case .timeDistributed, .masking:
            return try lowerRecurrent(op, ins, salt: &salt)
        case .notEqual(let v):
            return try compare(.ne, ins[0], try const(v))
        case .crf:
            // Predict's form: the Viterbi path. The CRF loss (Losses.crf) reads this node's inputs.
            return try graph.add(.prim(.crfViterbi), ins, layer: layer)[0]
        case .anyLastAxis:
            let x = ins[0]
            return try compare(.gt, try reduce(.max, try cast(x, .f32), axes: [type(x).rank - 1]), try const(0))
        case .table(let t):
            var ctx = LoweringContext(salt: salt)
            let outs = try t.kind.lower(&self, ins, &ctx)
            salt = ctx.salt
            return outs[0]
        }
    }
}
