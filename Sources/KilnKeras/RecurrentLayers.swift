import KilnIR

// The legacy table's TimeDistributed, for the layers not yet in the layer table.
extension KerasGraphBuilder {
    static let recurrentTable: [String: LayerFn] = [
        "TimeDistributed": { c in
            guard let inner = c.config["layer"], let cls = inner["class_name"]?.string else { throw c.fail("has no wrapped layer") }
            guard let fn = table[cls], !["Bidirectional", "TimeDistributed", "LSTM", "GRU", "SimpleRNN"].contains(cls) else {
                throw c.fail("wraps a \(cls) layer, which Kiln does not support inside TimeDistributed")
            }
            let (op, names) = try fn(c.nested(inner))
            return (.timeDistributed(Wrapped(op)), names)
        },
    ]
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
