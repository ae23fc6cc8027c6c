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
    /// Lowers one layer op.
    mutating func lower(_ op: LayerOp, _ ins: [Value], salt: inout Int) throws -> Value {
        let x = ins[0]
        let xt = type(x)
        switch op {
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
        case .timeDistributed:
            return try lowerRecurrent(op, ins, salt: &salt)
        case .anyLastAxis:
            let x = ins[0]
            return try compare(.gt, try reduce(.max, try cast(x, .f32), axes: [type(x).rank - 1]), try const(0))
        case .notEqual(let v):
            return try compare(.ne, ins[0], try const(v))
        case .table(let t):
            var ctx = LoweringContext(salt: salt)
            let outs = try t.kind.lower(&self, ins, &ctx)
            salt = ctx.salt
            return outs[0]
        }
    }
}
