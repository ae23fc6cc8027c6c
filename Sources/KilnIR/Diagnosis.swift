// Shape errors that need the graph, not only the input types: a layer that
// wants a time axis (LSTM, GRU, SimpleRNN, Bidirectional, TimeDistributed) and
// got a 2-D tensor is told which earlier layer dropped that axis and how to
// keep it. Graph.add calls `explain` on every refusal.

extension Graph {
    /// The error of adding `op` on `inputs`, with a better hint when the graph knows one.
    func explain(_ e: ShapeError, _ op: Op, _ inputs: [Value]) -> ShapeError {
        guard case let .layer(l) = op, let x = inputs.first, type(x).rank == 2 else { return e }
        switch l {
        case .table(let t) where t.kind.needsTimeAxis: break
        default: return e
        }
        guard let why = whereTheTimeAxisWent(x) else { return e }
        return ShapeError(layer: e.layer, e.message, hint: why)
    }

    /// Walks back from a 2-D value through the layers that keep its rank (Dropout, Dense,
    /// Activation, ...) to the layer that made it 2-D, or to the model input, and says what
    /// happened there and what to write instead.
    func whereTheTimeAxisWent(_ value: Value) -> String? {
        var v = value
        while true {
            switch values[v.id].source {
            case .input(let k):
                let f = type(v).shape.last?.factor ?? 1
                let rows = (1...f).last { $0 * $0 <= f && f % $0 == 0 } ?? 1
                return "the model input '\(inputNames[k])' is \(type(v).kerasDescription), with no time axis: give the Input a shape "
                    + "(timesteps, features), e.g. (\(rows), \(f / rows)) for \(rows) steps of \(f / rows) values, or Reshape to one"
            case .param:
                return nil
            case let .node(i, _):
                let n = nodes[i]
                guard case let .layer(op) = n.op, let first = n.inputs.first else { return nil }
                let before = type(first)
                if before.rank == 2 { v = first; continue }
                return before.rank > 2 ? culprit(op, n.layer, before, type(v)) : nil
            }
        }
    }

    /// What the layer that turned `before` (rank 3 or more) into the 2-D `after` did, and the fix.
    private func culprit(_ op: LayerOp, _ name: String, _ before: TensorType, _ after: TensorType) -> String {
        if case .table(let layer) = op, let hint = layer.kind.droppedTimeAxisHint(name: name, before: before, after: after) {
            return hint
        }
        let t = before.shape[1] == .t ? "None" : "\(before.shape[1])"
        return "\(op.kerasClass) '\(name)' turned \(before.kerasDescription) into \(after.kerasDescription), dropping axis 1 (\(t)), "
            + "the time axis: apply it to each step with TimeDistributed(\(op.kerasClass)(...))"
    }
}
