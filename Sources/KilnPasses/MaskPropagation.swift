import KilnIR

/// Mask propagation on the layer graph, as Keras carries `_keras_mask`:
/// Embedding(mask_zero) and Masking make a boolean (N, T) mask; layers that
/// support masking pass it on; recurrent layers consume it (and pass it on with
/// return_sequences). Masks become ordinary values: recurrent ops get the mask
/// as an extra input, and each graph output records its mask for the loss.
public let propagateMasks = Pass("masks") { g in
    var r = GraphRebuilder(g)
    var masks: [Value: Value] = [:]   // new value -> its mask
    let paramValues = Set(g.params.map(\.value))
    var result = try r.run { r, n in
        let ins = n.inputs.map { r[$0] }
        var b = PrimBuilder(graph: r.new, layer: n.layer)
        defer { r.new = b.graph }
        guard case .layer(let op) = n.op else {
            return try b.graph.add(n.op, ins, layer: n.layer)
        }
        if case .table(let t) = op {
            // A table layer: it may take the mask as its last input, and says its output's mask.
            let kind = t.kind
            let dataCount = n.inputs.filter { !paramValues.contains($0) }.count
            let inMasks = ins.prefix(max(dataCount, 1)).map { masks[$0] }
            var node = kind as any LayerKind, extra: [Value] = []
            if let (consuming, taken) = kind.consumingMasks(inMasks.map { $0 != nil }) { node = consuming; extra = taken.map { inMasks[$0]! } }
            let outs = try b.graph.add(.layer(node.op), ins + extra, layer: n.layer)
            if let m = try node.outputMask(&b, inputs: ins, masks: inMasks, outputs: outs) { for o in outs.prefix(node.maskedOutputCount) { masks[o] = m } }
            if node.clearsInputMasks { for v in ins.prefix(dataCount) { masks[v] = nil } }
            return outs
        }
        let outs = try b.graph.add(.layer(op), ins, layer: n.layer)
        return outs
    }
    result.outputMasks = result.outputs.map { masks[$0] }
    return result
}
