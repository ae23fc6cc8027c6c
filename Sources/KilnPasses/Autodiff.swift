import KilnIR

/// Reverse-mode autodiff over primitive ops: appends the backward graph of
/// `loss` (a scalar) to `b.graph` and returns d loss / d v for each requested value.
/// Each primitive's gradient rule is its family's `gradient` (KilnIR/Ops/*.swift).
public func differentiate(_ b: inout PrimBuilder, loss: Value, wrt targets: [Value]) throws -> [Value?] {
    let forward = b.graph.nodes
    var adjoint: [Value: Value] = [:]
    adjoint[loss] = try b.const(1)
    for node in forward.reversed() {
        let dys = node.outputs.map { adjoint[$0] }
        guard dys.contains(where: { $0 != nil }) else { continue }
        guard case .prim(let op) = node.op else { throw ShapeError(layer: node.layer, "layer op reached autodiff") }
        b.layer = node.layer + "/grad"
        let grads = try op.family.gradient(op, node, dys, &b)
        for (v, g) in zip(node.inputs, grads) {
            guard let g, b.graph.type(v).dtype == .f32 else { continue }
            if let old = adjoint[v] { adjoint[v] = try b.add(old, g) } else { adjoint[v] = g }
        }
    }
    return targets.map { adjoint[$0] }
}
