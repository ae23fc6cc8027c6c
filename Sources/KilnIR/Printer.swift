// The textual form of a graph, for --print-after and golden tests:
//
//   graph mlp(%0: f32[N, 4] "x") params(%1: f32[4, 8] "dense/kernel")
//     %2 = matmul %0, %1                         ; dense
//     return %2 "dense"

extension LayerOp: CustomStringConvertible {
    public var description: String {
        switch self {
        case .notEqual(let v): return "not_equal<\(v)>"
        case .anyLastAxis: return "any<axis=-1>"
        case .table(let t): return t.description
        }
    }
}

extension Window2D: CustomStringConvertible {
    public var description: String {
        var s = "\(kh)x\(kw)"
        if sh != 1 || sw != 1 { s += "/\(sh)x\(sw)" }
        if padTop != 0 || padLeft != 0 { s += " pad \(padTop),\(padLeft)" }
        return s
    }
}

extension PrimOp: CustomStringConvertible {
    /// The printed form (its family's `describe`).
    public var description: String { family.describe(self) }
}

extension Op: CustomStringConvertible {
    public var description: String {
        switch self {
        case .layer(let l): return l.description
        case .prim(let p): return p.description
        }
    }
}

extension Graph: CustomStringConvertible {
    public var description: String {
        func decl(_ v: Value) -> String { "\(v): \(type(v)) \"\(info(v).name)\"" }
        var s = "graph \(name)(" + inputs.map(decl).joined(separator: ", ") + ")"
        if !params.isEmpty {
            s += "\n  params(" + params.map { p in
                decl(p.value) + (p.trainable ? "" : " frozen") + (p.role == .slot ? " slot" : p.role == .carried ? " carried" : "")
                    + (p.regularizer.map { " regularizer \($0)" } ?? "") + (p.constraint.map { " constraint \($0)" } ?? "") }
                .joined(separator: ",\n         ") + ")"
        }
        s += "\n"
        for n in nodes {
            let lhs = n.outputs.isEmpty ? "" : n.outputs.map(\.description).joined(separator: ", ") + " = "
            var line = "  " + lhs + n.op.description
            if !n.inputs.isEmpty { line += " " + n.inputs.map(\.description).joined(separator: ", ") }
            let types = n.outputs.map { type($0).description }.joined(separator: ", ")
            line += " : " + (types.isEmpty ? "()" : types)
            let pad = max(1, 64 - line.count)
            s += line + String(repeating: " ", count: pad) + "; " + n.layer + "\n"
        }
        // A layer's state writes and loss terms, before the training step takes them in.
        for u in stateUpdates { s += "  state \(u.param) <- \(u.value)\n" }
        if !lossTerms.isEmpty { s += "  loss terms " + lossTerms.map(\.description).joined(separator: ", ") + "\n" }
        s += "  return " + zip(outputs, outputNames).map { "\($0) \"\($1)\"" }.joined(separator: ", ") + "\n"
        return s
    }
}
