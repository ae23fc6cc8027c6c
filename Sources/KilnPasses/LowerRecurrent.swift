import KilnIR

// A scan as straight-line cells: the recurrent layers lower to a projection and a scan
// (KilnIR/RecurrentLowering.swift); the unroll pass (Unroll.swift) turns a scan into one copy
// of the cell per step (`unroll` below) where that is needed or asked for. Masked steps keep
// the state and repeat the previous output (or output zeros), as Keras' rnn() does.

extension PrimBuilder {
    /// A scan as straight-line primitives, one copy of the cell per step (the unroll pass).
    /// - Returns: the sequence (N, T, u), the last output, final h and final c.
    mutating func unroll(_ cell: ScanCell, proj: Value, recurrent: Value, recurrentBias: Value?, mask: Value?,
                         recurrentDropout: Value? = nil, initial: [Value] = []) throws -> (Value, Value, Value, Value) {
        guard let t = type(proj).shape[1].fixedValue else {
            throw ShapeError(layer: layer, "a \(cell.kind.rawValue) over a free number of steps cannot be unrolled (its cell needs the unroll pass: \(cell))",
                             hint: "give the input a fixed number of steps, or use tanh, sigmoid, hard_sigmoid, relu or linear activations")
        }
        let u = cell.units, g = cell.gates
        func act(_ a: Activation, _ v: Value) throws -> Value { try activation(a, v) }
        var h = try initial.first ?? zeros([.n, .fixed(u)])
        var c = try initial.count > 1 ? initial[1] : zeros([.n, .fixed(u)])
        var previousOutput = h
        // h·U over gate blocks [k0, k0 + count); with recurrent dropout block k reads h ⊙ the mask's block k.
        func product(_ h: Value, _ k0: Int, _ count: Int) throws -> Value {
            let whole = count * u == g
            guard let m = recurrentDropout else {
                return try p(.matmul(transA: false, transB: false), h, whole ? recurrent : try slice(recurrent, axis: 1, k0 * u, count * u))
            }
            let blocks = try (k0..<(k0 + count)).map { k in
                try p(.matmul(transA: false, transB: false), try mul(h, try slice(m, axis: 1, k * u, u)), try slice(recurrent, axis: 1, k * u, u))
            }
            return blocks.count == 1 ? blocks[0] : try graph.add(.prim(.concat(axis: 1)), blocks, layer: layer)[0]
        }
        var outputs: [Value] = []
        let order = cell.goBackwards ? Array((0..<t).reversed()) : Array(0..<t)
        // One split into time steps (its gradient is one concatenation, not T padded copies).
        let perStep = t == 1 ? [proj] : try graph.add(.prim(.split(axis: 1, sizes: Array(repeating: 1, count: t))), [proj], layer: layer)
        let maskSteps = try mask.map { m in t == 1 ? [m] : try graph.add(.prim(.split(axis: 1, sizes: Array(repeating: 1, count: t))), [m], layer: layer) }
        func gates(_ v: Value, _ count: Int) throws -> [Value] {
            count == 1 ? [v] : try graph.add(.prim(.split(axis: 1, sizes: Array(repeating: u, count: count))), [v], layer: layer)
        }
        for step in order {
            let xt = try reshape(perStep[step], [.n, .fixed(g)])
            var hNew: Value, cNew = c
            switch cell.kind {
            case .lstm:
                let z = try gates(try add(xt, try product(h, 0, 4)), 4)
                let i = try act(cell.recurrentActivation, z[0])
                let fg = try act(cell.recurrentActivation, z[1])
                let cc = try act(cell.activation, z[2])
                let o = try act(cell.recurrentActivation, z[3])
                cNew = try add(try mul(fg, c), try mul(i, cc))
                hNew = try mul(o, try act(cell.activation, cNew))
            case .gru:
                let xg = try gates(xt, 3)
                let (xz, xr, xh) = (xg[0], xg[1], xg[2])
                let hh: Value
                let z: Value, r: Value
                if cell.resetAfter {
                    var innerAll = try product(h, 0, 3)
                    if let rb = recurrentBias { innerAll = try add(innerAll, rb) }
                    let inner = try gates(innerAll, 3)
                    z = try act(cell.recurrentActivation, try add(xz, inner[0]))
                    r = try act(cell.recurrentActivation, try add(xr, inner[1]))
                    hh = try act(cell.activation, try add(xh, try mul(r, inner[2])))
                } else {
                    let inner = try product(h, 0, 2)
                    z = try act(cell.recurrentActivation, try add(xz, try slice(inner, axis: 1, 0, u)))
                    r = try act(cell.recurrentActivation, try add(xr, try slice(inner, axis: 1, u, u)))
                    hh = try act(cell.activation, try add(xh, try product(try mul(r, h), 2, 1)))
                }
                // h = z * h + (1 - z) * hh
                hNew = try add(try mul(z, h), try mul(try sub(try const(1), z), hh))
            case .simpleRNN:
                hNew = try act(cell.activation, try add(xt, try product(h, 0, 1)))
            }
            var out = hNew
            if mask != nil {
                let m = try reshape(maskSteps![step], [.n, .fixed(1)])
                out = try select(m, hNew, cell.zeroOutputForMask ? try zeros([.n, .fixed(u)]) : previousOutput)
                h = try select(m, hNew, h)
                if cell.kind == .lstm { cNew = try select(m, cNew, c) }
            } else {
                h = hNew
            }
            c = cNew
            previousOutput = out
            outputs.append(out)
        }
        return (try stack(cell.flipOutput ? outputs.reversed() : outputs), outputs.last!, h, c)
    }
}
