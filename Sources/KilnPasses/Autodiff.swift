import KilnIR

/// Reverse-mode autodiff over primitive ops: appends the backward graph of
/// `loss` (a scalar) to `b.graph` and returns d loss / d v for each requested value.
/// Each primitive's gradient rule is in `gradient(_:_:_:)`, beside the others.
public func differentiate(_ b: inout PrimBuilder, loss: Value, wrt targets: [Value]) throws -> [Value?] {
    let forward = b.graph.nodes
    var adjoint: [Value: Value] = [:]
    adjoint[loss] = try b.const(1)
    func accumulate(_ v: Value, _ g: Value, _ b: inout PrimBuilder) throws {
        if let old = adjoint[v] { adjoint[v] = try b.add(old, g) } else { adjoint[v] = g }
    }
    for node in forward.reversed() {
        if case let .prim(.split(axis, _)) = node.op {
            // The adjoint of a split is the concatenation of its pieces' adjoints (zeros where none).
            guard node.outputs.contains(where: { adjoint[$0] != nil }) else { continue }
            b.layer = node.layer + "/grad"
            let pieces = try node.outputs.map { o in try adjoint[o] ?? b.p(.broadcast(b.type(o).shape), try b.const(0)) }
            let g = pieces.count == 1 ? pieces[0] : try b.graph.add(.prim(.concat(axis: axis)), pieces, layer: b.layer)[0]
            if b.graph.type(node.inputs[0]).dtype == .f32 { try accumulate(node.inputs[0], g, &b) }
            continue
        }
        if case let .prim(.scan(cell)) = node.op {
            guard node.outputs.prefix(4).contains(where: { adjoint[$0] != nil }) else { continue }
            b.layer = node.layer + "/grad"
            try scanGradient(node, cell, adjoint: adjoint, &b) { v, g, b in try accumulate(v, g, &b) }
            continue
        }
        guard let out = node.outputs.first, let dy = adjoint[out] else { continue }
        b.layer = node.layer + "/grad"
        let grads = try gradient(node, dy, &b)
        for (v, g) in zip(node.inputs, grads) {
            guard let g, b.graph.type(v).dtype == .f32 else { continue }
            try accumulate(v, g, &b)
        }
    }
    return targets.map { adjoint[$0] }
}

/// Gradients of one node's inputs, given the gradient of its output.
func gradient(_ n: Node, _ dy: Value, _ b: inout PrimBuilder) throws -> [Value?] {
    guard case .prim(let op) = n.op else { throw ShapeError(layer: n.layer, "layer op reached autodiff") }
    let x = n.inputs.first
    let y = n.outputs.first!
    func shape(_ v: Value) -> [Dim] { b.type(v).shape }
    switch op {
    case .unary(let u):
        let x = x!
        let d: Value?
        switch u {
        case .neg: d = try b.unary(.neg, dy)
        case .abs: d = try b.mul(dy, try b.unary(.sign, x))
        case .sign, .floor, .step: d = nil
        case .exp: d = try b.mul(dy, y)
        case .log: d = try b.div(dy, x)
        case .log1p: d = try b.div(dy, try b.add(x, 1))
        case .sqrt: d = try b.div(try b.mul(dy, 0.5), y)
        case .rsqrt: d = try b.mul(try b.mul(dy, -0.5), try b.div(y, x))
        case .square: d = try b.mul(dy, try b.mul(x, 2))
        case .reciprocal: d = try b.unary(.neg, try b.mul(dy, try b.unary(.square, y)))
        case .tanh: d = try b.mul(dy, try b.sub(try b.const(1), try b.unary(.square, y)))
        case .sigmoid: d = try b.mul(dy, try b.mul(y, try b.sub(try b.const(1), y)))
        // From the output (y > 0 exactly where x > 0): the input then has one use, and fusion can
        // fold a bias add and the relu into one loop.
        case .relu: d = try b.mul(dy, try b.unary(.step, y))
        case .erf:
            let e = try b.unary(.exp, try b.unary(.neg, try b.unary(.square, x)))
            d = try b.mul(dy, try b.mul(e, Float(2 / Double.pi.squareRoot())))
        case .softplus: d = try b.mul(dy, try b.unary(.sigmoid, x))
        }
        return [d]
    case .binary(let o):
        let (a, c) = (n.inputs[0], n.inputs[1])
        var da: Value?, dc: Value?
        switch o {
        case .add: da = dy; dc = dy
        case .sub: da = dy; dc = try b.unary(.neg, dy)
        case .mul: da = try b.mul(dy, c); dc = try b.mul(dy, a)
        case .div: da = try b.div(dy, c); dc = try b.unary(.neg, try b.div(try b.mul(dy, y), c))
        case .max, .min:
            // Ties split the gradient evenly, as JAX does.
            let win = try b.cast(try b.compare(o == .max ? .gt : .lt, a, c), .f32)
            let tie = try b.mul(try b.cast(try b.compare(.eq, a, c), .f32), 0.5)
            let wa = try b.add(win, tie)
            da = try b.mul(dy, wa)
            dc = try b.mul(dy, try b.sub(try b.const(1), wa))
        case .pow:
            da = try b.mul(dy, try b.mul(c, try b.binary(.pow, a, try b.sub(c, try b.const(1)))))
            dc = try b.mul(dy, try b.mul(y, try b.unary(.log, a)))
        }
        return [try da.map { try b.sumTo($0, shape(a)) }, try dc.map { try b.sumTo($0, shape(c)) }]
    case .select:
        let zero = try b.const(0)
        let da = try b.select(n.inputs[0], dy, zero)
        let dc = try b.select(n.inputs[0], zero, dy)
        return [nil, try b.sumTo(da, shape(n.inputs[1])), try b.sumTo(dc, shape(n.inputs[2]))]
    case .compare, .constant, .batchSize, .stepCount, .iteration, .randomUniform, .iota:
        return n.inputs.map { _ in nil }
    case .cast:
        return [b.type(x!).dtype == .f32 && b.type(y).dtype == .f32 ? dy : nil]
    case let .reduce(r, axes, keep):
        let xs = shape(x!)
        var kept = xs
        for a in axes { kept[a] = .fixed(1) }
        var g = try b.reshape(dy, kept)
        _ = keep
        switch r {
        case .sum:
            break
        case .mean:
            var count = 1
            var (byN, byT) = (false, false)
            for a in axes { count *= xs[a].factor; byN = byN || xs[a].isBatch; byT = byT || xs[a].isSteps }
            g = try b.mul(g, 1 / Float(count))
            if byN { g = try b.div(g, try b.p(.batchSize)) }
            if byT { g = try b.div(g, try b.p(.stepCount)) }
        case .max:
            let ym = try b.reshape(y, kept)
            let hit = try b.cast(try b.compare(.eq, x!, ym), .f32)
            return [try b.mul(try b.p(.broadcast(xs), g), hit)]
        }
        return [try b.p(.broadcast(xs), g)]
    case .reshape:
        return [try b.reshape(dy, shape(x!))]
    case .transpose(let perm):
        var inv = [Int](repeating: 0, count: perm.count)
        for (i, p) in perm.enumerated() { inv[p] = i }
        return [try b.p(.transpose(inv), dy)]
    case .broadcast:
        return [try b.sumTo(dy, shape(x!))]
    case let .matmul(ta, tb):
        let (a, c) = (n.inputs[0], n.inputs[1])
        func mm(_ p: Value, _ q: Value, _ tp: Bool, _ tq: Bool) throws -> Value { try b.p(.matmul(transA: tp, transB: tq), p, q) }
        switch (ta, tb) {
        case (false, false): return [try mm(dy, c, false, true), try mm(a, dy, true, false)]
        case (false, true): return [try mm(dy, c, false, false), try mm(dy, a, true, false)]
        case (true, false): return [try mm(c, dy, false, true), try mm(a, dy, false, false)]
        case (true, true): return [try mm(c, dy, true, true), try mm(dy, a, true, true)]
        }
    case let .conv2D(win, _, _):
        let (xv, w) = (n.inputs[0], n.inputs[1])
        let xs = shape(xv)
        return [try b.p(.conv2DGradInput(win, inH: xs[1].factor, inW: xs[2].factor), dy, w),
                try b.p(.conv2DGradFilter(win), xv, dy)]
    case let .pool2D(kind, win, _, _):
        return [try b.p(.pool2DGrad(kind, win), x!, y, dy)]
    case .gather:
        let rows = b.type(n.inputs[0]).shape[0].factor
        return [try b.p(.scatterAdd(rows: rows), n.inputs[1], dy), nil]
    case .concat(let axis):
        var out: [Value?] = []
        var start = 0
        for v in n.inputs {
            let len = shape(v)[axis].factor
            out.append(try b.p(.slice(axis: axis, start: start, length: len), dy))
            start += len
        }
        return out
    case let .slice(axis, start, length):
        // Pad the gradient with zeros back to the input's size along the axis.
        let xs = shape(x!)
        var parts: [Value] = []
        func zeros(_ n: Int) throws -> Value {
            var s = xs; s[axis] = .fixed(n)
            return try b.p(.broadcast(s), try b.const(0))
        }
        if start > 0 { parts.append(try zeros(start)) }
        parts.append(dy)
        let rest = xs[axis].factor - start - length
        if rest > 0 { parts.append(try zeros(rest)) }
        return [parts.count == 1 ? dy : try b.graph.add(.prim(.concat(axis: axis)), parts, layer: b.layer)[0]]
    case .split, .scan, .scanGrad, .fused, .convBiasAct, .im2col, .col2im, .conv2DGradInput, .conv2DGradFilter, .pool2DGrad, .scatterAdd, .assign:
        throw ShapeError(layer: n.layer, "\(op) has no gradient rule (it should not appear before autodiff)")
    }
}

/// Backprop through time for a scan: a reverse scan gives d proj and the gradient of
/// each step's recurrent product; then dU = Σ_t h_{t-1}ᵀ·dInner_t is one product over
/// all rows and steps, and the recurrent bias's gradient one sum.
func scanGradient(_ node: Node, _ cell: ScanCell, adjoint: [Value: Value], _ b: inout PrimBuilder,
                  accumulate: (Value, Value, inout PrimBuilder) throws -> Void) throws {
    guard cell.records else { throw ShapeError(layer: node.layer, "scan \(cell) was lowered for inference; it has no gradient") }
    let outs = node.outputs
    let given = try outs.prefix(4).map { o in try adjoint[o] ?? b.zeros(b.type(o).shape) }
    let (u, gates) = (cell.units, cell.gates)
    let rows = Dim.product([.n, b.type(node.inputs[0]).shape[1]])!
    let recurrent = node.inputs[1]
    let rb: Value? = cell.recurrentBias ? node.inputs[2] : nil
    let mask: Value? = cell.masked ? node.inputs.last : nil
    let ins = given + [recurrent] + [rb, mask].compactMap { $0 } + Array(outs[5...7])
    let grads = try b.graph.add(.prim(.scanGrad(cell)), ins, layer: b.layer)
    let dProj = grads[0], dInner = cell.kind == .gru ? grads[1] : grads[0]
    try accumulate(node.inputs[0], dProj, &b)
    let hPrev = try b.reshape(outs[7], [rows, .fixed(u)])
    let dRows = try b.reshape(dInner, [rows, .fixed(gates)])
    try accumulate(recurrent, try b.p(.matmul(transA: true, transB: false), hPrev, dRows), &b)
    if let rb { try accumulate(rb, try b.reduce(.sum, dRows, axes: [0]), &b) }
}
