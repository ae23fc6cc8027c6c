import KilnIR

/// Lowers layer ops to primitive ops, in the training form every program starts from:
/// Dropout draws its mask (and records that inference takes its input instead), scans record
/// what their gradient needs. The inference pass derives predict and evaluate from it.
public let lowerLayers = Pass("lower") { g in
    var r = GraphRebuilder(g)
    var ctx = LoweringContext()
    return try r.run { r, n in
        guard case .layer(let op) = n.op else { return try r.copy(n) }
        var b = PrimBuilder(graph: r.new, layer: n.layer)
        let outs = try b.lower(op, n.inputs.map { r[$0] }, &ctx)
        r.new = b.graph
        return outs
    }
}

extension PrimBuilder {
    /// Lowers one layer op: a layer of the table by its kind, Keras' saved mask ops here.
    mutating func lower(_ op: LayerOp, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        switch op {
        case .anyLastAxis:
            let x = ins[0]
            return [try compare(.gt, try reduce(.max, try cast(x, .f32), axes: [type(x).rank - 1]), try const(0))]
        case .notEqual(let v):
            return [try compare(.ne, ins[0], try const(v))]
        case .table(let t):
            return try t.kind.lower(&self, ins, &ctx)
        }
    }
}
