import KilnIR

// The Keras table's entries for recurrent layers and their wrappers.
extension KerasGraphBuilder {
    static let recurrentTable: [String: LayerFn] = [
        "LSTM": { c in try recurrent(c, .lstm) },
        "GRU": { c in try recurrent(c, .gru) },
        "SimpleRNN": { c in try recurrent(c, .simpleRNN) },
        "Bidirectional": { c in
            guard let inner = c.config["layer"], let cls = inner["class_name"]?.string, let kind = RecurrentKind(rawValue: cls) else {
                throw c.fail("wraps a layer Kiln does not support in Bidirectional; supported: LSTM, GRU, SimpleRNN")
            }
            let forward = c.nested(inner)
            let (fwOp, fwNames) = try recurrent(forward, kind)
            var bwOp: LayerOp
            if let back = c.config["backward_layer"], !back.isNull {
                guard let bcls = back["class_name"]?.string, let bkind = RecurrentKind(rawValue: bcls) else {
                    throw c.fail("has a backward layer Kiln does not support")
                }
                bwOp = try recurrent(c.nested(back), bkind).0
            } else {
                // Keras makes the backward layer from the forward one's config, reading backwards.
                guard case var .recurrent(s, _) = fwOp else { throw c.fail("wraps an unexpected layer") }
                s.goBackwards.toggle()
                bwOp = .recurrent(s, masked: false)
            }
            guard case let .recurrent(fs, _) = fwOp, case let .recurrent(bs, _) = bwOp else { throw c.fail("wraps an unexpected layer") }
            guard let modeName = c.config["merge_mode"]?.string, let mode = MergeMode(rawValue: modeName) else {
                throw c.fail("has merge_mode \(c.config["merge_mode"]?.serialized ?? "null"); Kiln supports concat, sum, mul and ave")
            }
            return (.bidirectional(fs, bs, merge: mode, masked: false), fwNames.map { "forward_" + $0 } + fwNames.map { "backward_" + $0 })
        },
        "TimeDistributed": { c in
            guard let inner = c.config["layer"], let cls = inner["class_name"]?.string else { throw c.fail("has no wrapped layer") }
            guard let fn = table[cls], !["Bidirectional", "TimeDistributed", "LSTM", "GRU", "SimpleRNN"].contains(cls) else {
                throw c.fail("wraps a \(cls) layer, which Kiln does not support inside TimeDistributed")
            }
            let (op, names) = try fn(c.nested(inner))
            return (.timeDistributed(Wrapped(op)), names)
        },
    ]

    static func recurrent(_ c: Context, _ kind: RecurrentKind) throws -> (LayerOp, [String]) {
        if c.config["stateful"]?.bool == true { throw c.fail("is stateful, which Kiln does not support") }
        let spec = RecurrentSpec(
            kind: kind, units: try c.positive("units"), activation: try c.activation(),
            recurrentActivation: kind == .simpleRNN ? .sigmoid : try c.activation("recurrent_activation"),
            useBias: c.config["use_bias"]?.bool ?? true, returnSequences: c.config["return_sequences"]?.bool ?? false,
            goBackwards: c.config["go_backwards"]?.bool ?? false, resetAfter: c.config["reset_after"]?.bool ?? true,
            zeroOutputForMask: c.config["zero_output_for_mask"]?.bool ?? false,
            dropout: try c.float("dropout", 0), recurrentDropout: try c.float("recurrent_dropout", 0),
            returnState: c.config["return_state"]?.bool ?? false)
        let names = ["kernel", "recurrent_kernel", "bias"]
        return (.recurrent(spec, masked: false), Array(names.prefix(spec.weightCount)))
    }
}

extension KerasGraphBuilder.Context {
    /// The context of a wrapped layer (Bidirectional, TimeDistributed): its own config, the wrapper's weights.
    func nested(_ inner: JSON) -> KerasGraphBuilder.Context {
        var spec = layer
        spec.className = inner["class_name"]?.string ?? spec.className
        spec.config = inner["config"] ?? .object([])
        var c = self
        c.layer = spec
        return c
    }
}
