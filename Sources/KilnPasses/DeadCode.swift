import KilnIR

/// Removes nodes whose results nobody uses, except ops whose effects forbid it
/// (assignments to state: PrimitiveFamily.effects).
public let deadCode = Pass("dce") { g in
    var g = g
    var live = Set(g.outputs).union(g.outputMasks.compactMap { $0 })
        .union(g.stateUpdates.flatMap { [$0.value, $0.param] }).union(g.lossTerms)
    var keep = [Bool](repeating: false, count: g.nodes.count)
    for i in g.nodes.indices.reversed() {
        let n = g.nodes[i]
        var needed = n.outputs.contains { live.contains($0) }
        if case .prim(let op) = n.op, !op.effects.removable { needed = true }
        if needed {
            keep[i] = true
            live.formUnion(n.inputs)
        }
    }
    g.retainNodes(keep)
    return g
}
