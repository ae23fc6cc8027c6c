import KilnIR

/// Fuses chains of elementwise primitives into one `fused` op each, so a chain
/// runs as one loop:
///   // add(x, b) |> relu          ->  fused{relu(add(%0, %1))}(x, b)
/// A producer is folded into its consumer when the consumer is its only user
/// and both have the same shape (scalar constants are folded everywhere).
public let fuseElementwise = Pass("fuse-elementwise") { g in
    var g = g
    var changed = true
    while changed {
        changed = false
        let uses = g.useCounts()
        for i in g.nodes.indices {
            let node = g.nodes[i]
            guard case .prim(let op) = node.op, isFusable(op), let expr = elementwiseExpr(op, arity: node.inputs.count),
                  let out = node.outputs.first else { continue }
            for (k, v) in node.inputs.enumerated() {
                guard let p = g.producer(v), case .prim(let pop) = p.op, isFusable(pop),
                      let pe = elementwiseExpr(pop, arity: p.inputs.count) else { continue }
                let isConst: Bool = { if case .constant = pop { return true }; if case .batchSize = pop { return true }; if case .iteration = pop { return true }; return false }()
                guard isConst || (uses[v.id] == 1 && g.type(v).shape == g.type(out).shape) else { continue }
                let inner = p.inputs.count
                let shifted = expr.mapArgs { j in
                    j < k ? .arg(j) : j == k ? pe.mapArgs { .arg(k + $0) } : .arg(j + inner - 1)
                }
                var inputs = node.inputs
                inputs.replaceSubrange(k...k, with: p.inputs)
                let (e2, ins2) = dedupe(shifted, inputs)
                g.nodes[i].op = .prim(.fused(e2))
                g.nodes[i].inputs = ins2
                changed = true
                break
            }
        }
        if changed { g = try deadCode.run(g) }
    }
    return g
}

/// Folds bias and activation into convolutions:
///   // conv2d(x, w) + b            ->  conv2d_bias(x, w, b)
///   // conv2d_bias(x, w, b) |> act ->  conv2d_bias{act}(x, w, b)
public let fuseConvBiasActivation = Pass("fuse-conv") { g in
    var g = g
    var changed = true
    while changed {
        changed = false
        let uses = g.useCounts()
        for i in g.nodes.indices {
            let node = g.nodes[i]
            guard case .prim(let op) = node.op, node.outputs.count == 1 else { continue }
            // conv + bias
            if case .binary(.add) = op {
                for (k, v) in node.inputs.enumerated() {
                    guard uses[v.id] == 1, let p = g.producer(v), case let .prim(.conv2D(win, oh, ow)) = p.op else { continue }
                    let b = node.inputs[1 - k]
                    guard g.type(b).shape == [g.type(v).shape[3]] else { continue }
                    g.nodes[i].op = .prim(.convBiasAct(win, outH: oh, outW: ow, act: nil))
                    g.nodes[i].inputs = p.inputs + [b]
                    changed = true
                    break
                }
            }
            // conv_bias + activation: an elementwise op of the conv result and constants only.
            if !changed, let e = elementwiseExpr(op, arity: node.inputs.count), isFusable(op) {
                let convArgs = node.inputs.enumerated().filter { _, v in
                    if let p = g.producer(v), case .prim(.convBiasAct(_, _, _, nil)) = p.op, uses[v.id] == 1 { return true }
                    return false
                }
                if convArgs.count == 1 && node.inputs.count == 1, let p = g.producer(node.inputs[0]),
                   case let .prim(.convBiasAct(win, oh, ow, nil)) = p.op, g.type(node.outputs[0]).dtype == .f32 {
                    g.nodes[i].op = .prim(.convBiasAct(win, outH: oh, outW: ow, act: e))
                    g.nodes[i].inputs = p.inputs
                    changed = true
                }
            }
            if changed { break }
        }
        if changed { g = try deadCode.run(g) }
    }
    return g
}

/// Ops the elementwise fuser may merge (broadcast stays separate: it changes shape).
func isFusable(_ op: PrimOp) -> Bool {
    switch op {
    case .unary, .binary, .compare, .select, .cast, .constant, .batchSize, .iteration, .fused: return true
    default: return false
    }
}

/// Merges repeated inputs of a fused expression.
func dedupe(_ e: FusedExpr, _ inputs: [Value]) -> (FusedExpr, [Value]) {
    var unique: [Value] = []
    var map: [Int] = []
    for v in inputs {
        if let j = unique.firstIndex(of: v) { map.append(j) } else { map.append(unique.count); unique.append(v) }
    }
    return (e.mapArgs { .arg(map[$0]) }, unique)
}

extension FusedExpr {
    /// Replaces every `.arg(k)` by f(k).
    public func mapArgs(_ f: (Int) -> FusedExpr) -> FusedExpr {
        switch self {
        case .arg(let k): return f(k)
        case .const, .batchSize, .iteration: return self
        case let .unary(op, a): return .unary(op, a.mapArgs(f))
        case let .binary(op, a, b): return .binary(op, a.mapArgs(f), b.mapArgs(f))
        case let .compare(op, a, b): return .compare(op, a.mapArgs(f), b.mapArgs(f))
        case let .select(c, a, b): return .select(c.mapArgs(f), a.mapArgs(f), b.mapArgs(f))
        case let .cast(t, a): return .cast(t, a.mapArgs(f))
        }
    }
}
