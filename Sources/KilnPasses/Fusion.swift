import KilnIR

/// Fuses chains of elementwise primitives into one `fused` op each, so a chain
/// runs as one loop (the fusable ops are those with a `fusedForm`, PrimitiveFamily):
///   // add(x, b) |> relu          ->  fused{relu(add(%0, %1))}(x, b)
/// A producer is folded into its consumer when the consumer is its only user
/// and both have the same shape (scalar constants are folded everywhere).
public let fuseElementwise = Pass("fuse-elementwise") { g in
    try rewriteUntilStable(g) { g, i, uses in
        let node = g.nodes[i]
        guard case .prim(let op) = node.op, let expr = op.fusedForm, let out = node.outputs.first else { return false }
        for (k, v) in node.inputs.enumerated() {
            guard let p = g.producer(v), case .prim(let pop) = p.op, let pe = pop.fusedForm else { continue }
            // A scalar without inputs (a constant, N, T, the step), not a fused chain of them.
            let isConst: Bool
            if case .fused = pop { isConst = false } else { isConst = p.inputs.isEmpty }
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
            return true
        }
        return false
    }
}

/// Folds bias and activation into convolutions:
///   // conv2d(x, w) + b            ->  conv2d_bias(x, w, b)
///   // conv2d_bias(x, w, b) |> act ->  conv2d_bias{act}(x, w, b)
public let fuseConvBiasActivation = Pass("fuse-conv") { g in
    try rewriteUntilStable(g) { g, i, uses in
        let node = g.nodes[i]
        guard case .prim(let op) = node.op, node.outputs.count == 1 else { return false }
        // conv + bias
        if case .binary(.add) = op {
            for (k, v) in node.inputs.enumerated() {
                guard uses[v.id] == 1, let p = g.producer(v), case let .prim(.conv2D(win, oh, ow)) = p.op else { continue }
                let b = node.inputs[1 - k]
                guard g.type(b).shape == [g.type(v).shape[3]] else { continue }
                g.nodes[i].op = .prim(.convBiasAct(win, outH: oh, outW: ow, act: nil))
                g.nodes[i].inputs = p.inputs + [b]
                return true
            }
            return false
        }
        // conv_bias |> act: an elementwise op of one single-use conv_bias result and scalar constants.
        guard let e = op.fusedForm, g.type(node.outputs[0]).dtype == .f32 else { return false }
        var conv: (index: Int, node: Node)? = nil
        var constants: [Int: Float] = [:]
        for (k, v) in node.inputs.enumerated() {
            guard let p = g.producer(v), case .prim(let pop) = p.op else { return false }
            if case .convBiasAct(_, _, _, nil) = pop, uses[v.id] == 1, conv == nil {
                conv = (k, p)
            } else if case .constant(let c) = pop {
                constants[k] = c
            } else {
                return false
            }
        }
        guard let (ci, p) = conv, case let .prim(.convBiasAct(win, oh, ow, nil)) = p.op else { return false }
        g.nodes[i].op = .prim(.convBiasAct(win, outH: oh, outW: ow, act: e.mapArgs { $0 == ci ? .arg(0) : .const(constants[$0]!) }))
        g.nodes[i].inputs = p.inputs
        return true
    }
}

/// Applies a rewrite rule in one forward sweep: node i is rewritten until the
/// rule no longer applies, then the sweep moves on (a node's producers come
/// before it, so they are final by then). Use counts are kept up to date as
/// producers fold into node i and die; dead producers are removed once, at the end.
func rewriteUntilStable(_ g: Graph, _ rule: (inout Graph, Int, [Int]) -> Bool) throws -> Graph {
    var g = g
    var uses = g.useCounts()
    var changed = false
    for i in g.nodes.indices {
        var before = g.nodes[i].inputs
        while rule(&g, i, uses) {
            changed = true
            let after = Set(g.nodes[i].inputs)
            for v in after where !before.contains(v) { uses[v.id] += 1 }
            for v in before where !after.contains(v) {
                uses[v.id] -= 1
                // A producer nobody uses any more gives up its own uses.
                if uses[v.id] == 0, let p = g.producer(v), !g.outputs.contains(v) {
                    for w in p.inputs { uses[w.id] -= 1 }
                }
            }
            before = g.nodes[i].inputs
        }
    }
    return changed ? try deadCode.run(g) : g
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
        case .const, .batchSize, .stepCount, .iteration: return self
        case let .unary(op, a): return .unary(op, a.mapArgs(f))
        case let .binary(op, a, b): return .binary(op, a.mapArgs(f), b.mapArgs(f))
        case let .compare(op, a, b): return .compare(op, a.mapArgs(f), b.mapArgs(f))
        case let .select(c, a, b): return .select(c.mapArgs(f), a.mapArgs(f), b.mapArgs(f))
        case let .cast(t, a): return .cast(t, a.mapArgs(f))
        }
    }
}
