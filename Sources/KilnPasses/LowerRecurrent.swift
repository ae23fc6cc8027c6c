import KilnIR

// Recurrent layers lowered by unrolling over the (fixed) time steps: the input
// projection x·W for all steps is one matrix product, then each step is a
// small product h·U and the gate arithmetic, which fusion merges. Masked
// steps keep the state and repeat the previous output (or output zeros), as
// Keras' rnn() does.

extension PrimBuilder {
    /// A zero tensor of the given shape (broadcast from a scalar).
    mutating func zeros(_ shape: [Dim]) throws -> Value {
        try p(.broadcast(shape), try const(0))
    }

    /// Slices `length` entries at `start` along `axis`.
    mutating func slice(_ x: Value, axis: Int, _ start: Int, _ length: Int) throws -> Value {
        if start == 0 && type(x).shape[axis] == .fixed(length) { return x }
        return try p(.slice(axis: axis, start: start, length: length), x)
    }

    /// The sequence outputs and last output of one recurrent layer over x (N, T, F).
    /// - Returns: (outputs in processing order, each (N, u); the last output).
    mutating func unroll(_ spec: RecurrentSpec, x: Value, weights: [Value], mask: Value?, training: Bool) throws -> (steps: [Value], last: Value) {
        if training && (spec.dropout > 0 || spec.recurrentDropout > 0) {
            throw ShapeError(layer: layer, "\(spec.kind.rawValue) with dropout or recurrent_dropout cannot be trained by Kiln yet; set them to 0 to train")
        }
        let xs = type(x).shape
        let (t, f) = (xs[1].factor, xs[2].factor)
        let u = spec.units, g = spec.kind.gates * u
        let (kernel, recurrent) = (weights[0], weights[1])
        // Input projections for every step at once: (N*T, F)·(F, G*u) -> (N, T, G*u).
        var proj = try reshape(try p(.matmul(transA: false, transB: false), try reshape(x, [.batch(t), .fixed(f)]), kernel),
                               [.n, .fixed(t), .fixed(g)])
        var recurrentBias: Value? = nil
        if spec.useBias {
            var inputBias = weights[2]
            if spec.kind == .gru && spec.resetAfter {
                inputBias = try reshape(try slice(weights[2], axis: 0, 0, 1), [.fixed(g)])
                recurrentBias = try reshape(try slice(weights[2], axis: 0, 1, 1), [.fixed(g)])
            }
            proj = try add(proj, inputBias)
        }
        func act(_ a: Activation, _ v: Value) throws -> Value { try activation(a, v) }
        var h = try zeros([.n, .fixed(u)])
        var c = spec.kind == .lstm ? try zeros([.n, .fixed(u)]) : h
        var previousOutput = h
        var outputs: [Value] = []
        let order = spec.goBackwards ? Array((0..<t).reversed()) : Array(0..<t)
        // One split into time steps (its gradient is one concatenation, not T padded copies).
        let perStep = t == 1 ? [proj] : try graph.add(.prim(.split(axis: 1, sizes: Array(repeating: 1, count: t))), [proj], layer: layer)
        let maskSteps = try mask.map { m in t == 1 ? [m] : try graph.add(.prim(.split(axis: 1, sizes: Array(repeating: 1, count: t))), [m], layer: layer) }
        func gates(_ v: Value, _ count: Int) throws -> [Value] {
            count == 1 ? [v] : try graph.add(.prim(.split(axis: 1, sizes: Array(repeating: u, count: count))), [v], layer: layer)
        }
        for step in order {
            let xt = try reshape(perStep[step], [.n, .fixed(g)])
            var hNew: Value, cNew = c
            switch spec.kind {
            case .lstm:
                let z = try gates(try add(xt, try p(.matmul(transA: false, transB: false), h, recurrent)), 4)
                let i = try act(spec.recurrentActivation, z[0])
                let fg = try act(spec.recurrentActivation, z[1])
                let cc = try act(spec.activation, z[2])
                let o = try act(spec.recurrentActivation, z[3])
                cNew = try add(try mul(fg, c), try mul(i, cc))
                hNew = try mul(o, try act(spec.activation, cNew))
            case .gru:
                let xg = try gates(xt, 3)
                let (xz, xr, xh) = (xg[0], xg[1], xg[2])
                let hh: Value
                let z: Value, r: Value
                if spec.resetAfter {
                    var innerAll = try p(.matmul(transA: false, transB: false), h, recurrent)
                    if let rb = recurrentBias { innerAll = try add(innerAll, rb) }
                    let inner = try gates(innerAll, 3)
                    z = try act(spec.recurrentActivation, try add(xz, inner[0]))
                    r = try act(spec.recurrentActivation, try add(xr, inner[1]))
                    hh = try act(spec.activation, try add(xh, try mul(r, inner[2])))
                } else {
                    let uzr = try slice(recurrent, axis: 1, 0, 2 * u), uh = try slice(recurrent, axis: 1, 2 * u, u)
                    let inner = try p(.matmul(transA: false, transB: false), h, uzr)
                    z = try act(spec.recurrentActivation, try add(xz, try slice(inner, axis: 1, 0, u)))
                    r = try act(spec.recurrentActivation, try add(xr, try slice(inner, axis: 1, u, u)))
                    hh = try act(spec.activation, try add(xh, try p(.matmul(transA: false, transB: false), try mul(r, h), uh)))
                }
                // h = z * h + (1 - z) * hh
                hNew = try add(try mul(z, h), try mul(try sub(try const(1), z), hh))
            case .simpleRNN:
                hNew = try act(spec.activation, try add(xt, try p(.matmul(transA: false, transB: false), h, recurrent)))
            }
            var out = hNew
            if let mask {
                let m = try reshape(maskSteps![step], [.n, .fixed(1)])
                out = try select(m, hNew, spec.zeroOutputForMask ? try zeros([.n, .fixed(u)]) : previousOutput)
                h = try select(m, hNew, h)
                if spec.kind == .lstm { cNew = try select(m, cNew, c) }
            } else {
                h = hNew
            }
            c = cNew
            previousOutput = out
            outputs.append(out)
        }
        return (outputs, outputs.last!)
    }

    /// Stacks per-step outputs (N, u) into (N, T, u), in the given order.
    mutating func stack(_ steps: [Value]) throws -> Value {
        let u = type(steps[0]).shape[1]
        let rows = try steps.map { try reshape($0, [.n, .fixed(1), u]) }
        return rows.count == 1 ? rows[0] : try graph.add(.prim(.concat(axis: 1)), rows, layer: layer)[0]
    }

    mutating func lowerRecurrent(_ op: LayerOp, _ ins: [Value], training: Bool, salt: inout Int) throws -> Value {
        switch op {
        case let .recurrent(spec, masked):
            let mask = masked ? ins.last : nil
            let (steps, last) = try unroll(spec, x: ins[0], weights: Array(ins[1...spec.weightCount]), mask: mask, training: training)
            return spec.returnSequences ? try stack(steps) : last
        case let .bidirectional(fw, bw, merge, masked):
            let mask = masked ? ins.last : nil
            let n = fw.weightCount
            let (fSteps, fLast) = try unroll(fw, x: ins[0], weights: Array(ins[1...n]), mask: mask, training: training)
            let (bSteps, bLast) = try unroll(bw, x: ins[0], weights: Array(ins[(n + 1)...(n + bw.weightCount)]), mask: mask, training: training)
            var a = fLast, b = bLast
            if fw.returnSequences {
                a = try stack(fSteps)
                // The backward layer's outputs come in reverse time order; flip them back.
                b = try stack(bw.goBackwards != fw.goBackwards ? bSteps.reversed() : bSteps)
            }
            switch merge {
            case .concat: return try graph.add(.prim(.concat(axis: type(a).rank - 1)), [a, b], layer: layer)[0]
            case .sum: return try add(a, b)
            case .mul: return try mul(a, b)
            case .ave: return try mul(try add(a, b), 0.5)
            }
        case .timeDistributed(let inner):
            let x = ins[0]
            let xs = type(x).shape
            let t = xs[1].factor
            let inside = try reshape(x, [.batch(t)] + Array(xs.dropFirst(2)))
            let y = try lower(inner.op, [inside] + ins.dropFirst(), training: training, salt: &salt)
            return try reshape(y, [.n, .fixed(t)] + Array(type(y).shape.dropFirst()))
        case .masking(let value):
            return try mul(ins[0], try cast(try maskOf(masking: ins[0], value: value, keepLast: true), .f32))
        default:
            fatalError("lowerRecurrent: \(op)")
        }
    }

    /// Masking's mask: a step is kept when any feature differs from the value.
    /// keepLast: (N, T, 1) for multiplying; otherwise (N, T).
    public mutating func maskOf(masking x: Value, value: Float, keepLast: Bool = false) throws -> Value {
        let last = type(x).rank - 1
        let differs = try cast(try compare(.ne, x, try const(value)), .f32)
        return try compare(.gt, try reduce(.max, differs, axes: [last], keepDims: keepLast), try const(0))
    }
}
