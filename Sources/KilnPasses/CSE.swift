import KilnIR

/// Common-subexpression elimination: a node computing the same op on the
/// same inputs as an earlier one reuses its result.
///   // a = im2col(x); ...; b = im2col(x)   ->  b replaced by a
/// Ops whose effects forbid it (random draws, state writes: PrimitiveFamily.effects) are never merged.
public let commonSubexpressions = Pass("cse") { g in
    var g = g
    struct Key: Hashable { var op: Op; var inputs: [Value] }
    var seen: [Key: [Value]] = [:]
    var rename: [Value: Value] = [:]
    var keep = [Bool](repeating: true, count: g.nodes.count)
    for i in g.nodes.indices {
        g.nodes[i].inputs = g.nodes[i].inputs.map { rename[$0] ?? $0 }
        let n = g.nodes[i]
        if case .prim(let op) = n.op, !op.effects.mergeable { continue }
        let key = Key(op: n.op, inputs: n.inputs)
        if let earlier = seen[key] {
            for (o, e) in zip(n.outputs, earlier) { rename[o] = e }
            keep[i] = false
        } else {
            seen[key] = n.outputs
        }
    }
    g.outputs = g.outputs.map { rename[$0] ?? $0 }
    g.stateUpdates = g.stateUpdates.map { StateUpdate(param: $0.param, value: rename[$0.value] ?? $0.value, inference: $0.inference) }
    g.lossTerms = g.lossTerms.map { rename[$0] ?? $0 }
    g.retainNodes(keep)
    return g
}
