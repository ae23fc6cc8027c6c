import KilnIR

// A scan as straight-line cells: the recurrent layers lower to a projection and a scan
// (KilnIR/RecurrentLowering.swift); the unroll pass (Unroll.swift) turns a scan into one copy
// of the cell per step (`unroll` below) where that is needed or asked for. Masked steps keep
// the state and repeat the previous output (or output zeros), as Keras' rnn() does.

extension PrimBuilder {
    /// A scan as straight-line primitives, one copy of the cell per step (the unroll pass).
    /// - Returns: the sequence (N, T, u), the last output, final h and final c.
    mutating func unroll(_ cell: ScanCell, proj: Value, recurrent: Value, recurrentBias: Value?, mask: Value?) throws -> (Value, Value, Value, Value) {
        guard let t = type(proj).shape[1].fixedValue else {
            throw ShapeError(layer: layer, "a \(cell.kind.rawValue) over a free number of steps cannot be unrolled (its cell needs the unroll pass: \(cell))",
                             hint: "give the input a fixed number of steps, or use tanh, sigmoid, hard_sigmoid, relu or linear activations")
        }
        let u = cell.units, g = cell.gates
        func act(_ a: Activation, _ v: Value) throws -> Value { try activation(a, v) }
        var h = try zeros([.n, .fixed(u)])
        var c = h
        var previousOutput = h
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
                let z = try gates(try add(xt, try p(.matmul(transA: false, transB: false), h, recurrent)), 4)
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
                    var innerAll = try p(.matmul(transA: false, transB: false), h, recurrent)
                    if let rb = recurrentBias { innerAll = try add(innerAll, rb) }
                    let inner = try gates(innerAll, 3)
                    z = try act(cell.recurrentActivation, try add(xz, inner[0]))
                    r = try act(cell.recurrentActivation, try add(xr, inner[1]))
                    hh = try act(cell.activation, try add(xh, try mul(r, inner[2])))
                } else {
                    let uzr = try slice(recurrent, axis: 1, 0, 2 * u), uh = try slice(recurrent, axis: 1, 2 * u, u)
                    let inner = try p(.matmul(transA: false, transB: false), h, uzr)
                    z = try act(cell.recurrentActivation, try add(xz, try slice(inner, axis: 1, 0, u)))
                    r = try act(cell.recurrentActivation, try add(xr, try slice(inner, axis: 1, u, u)))
                    hh = try act(cell.activation, try add(xh, try p(.matmul(transA: false, transB: false), try mul(r, h), uh)))
                }
                // h = z * h + (1 - z) * hh
                hNew = try add(try mul(z, h), try mul(try sub(try const(1), z), hh))
            case .simpleRNN:
                hNew = try act(cell.activation, try add(xt, try p(.matmul(transA: false, transB: false), h, recurrent)))
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
