import KilnIR

/// When the unroll pass turns a scan into straight-line code.
public enum UnrollPolicy: String, Sendable, CaseIterable {
    /// Unroll only the scans the compiled loop cannot run: cells with activations whose
    /// derivative the reverse scan does not know (ScanCell.activations) and GRUs with the
    /// reset gate before the recurrent product. Measured (C caller, best of 5 x 20000 calls)
    /// on the 10-step Bidirectional(LSTM(20)) at batch 1, the shortest and smallest seed
    /// workload: train step 13-15 µs as a loop against 23 µs unrolled, predict 3.7-4.4 µs
    /// either way. Longer or wider scans gain more from the loop (one fused step kernel, no
    /// copies of the cell), and its code does not grow with T.
    case auto
    /// Unroll every scan (the form Kiln had before scans; tests compare the two).
    case always
    /// Unroll nothing that a compiled loop can run (same as auto today).
    case never
}

/// Unrolls scans, per the policy:
///   // scan<lstm<...>>(proj, U) -> T copies of the cell: matmul(h, U) + proj[t] |> gates, select by mask
public func unrollScans(_ policy: UnrollPolicy) -> Pass {
    Pass("unroll") { g in
        func unrolled(_ n: Node) -> Bool {
            guard case .prim(.scan(let c)) = n.op else { return false }
            return unrolls(c, steps: g.type(n.inputs[0]).shape[1].fixedValue, policy)
        }
        guard g.nodes.contains(where: unrolled) else { return g }
        var r = GraphRebuilder(g)
        return try r.run { r, n in
            guard case .prim(.scan(let cell)) = n.op, unrolled(n) else { return try r.copy(n) }
            var b = PrimBuilder(graph: r.new, layer: n.layer)
            let ins = n.inputs.map { r[$0] }
            let (seq, last, h, c) = try b.unroll(cell, proj: ins[0], recurrent: ins[1], recurrentBias: cell.recurrentBias ? ins[2] : nil,
                                                 mask: cell.masked ? ins.last : nil,
                                                 recurrentDropout: cell.recurrentDropout ? ins[cell.recurrentDropoutInput] : nil,
                                                 initial: Array(ins[cell.initialStateInput..<(cell.initialStateInput + cell.stateInputCount)]))
            // The scratch and the records are used by nothing before autodiff.
            var outs = [seq, last, h, c]
            for o in n.outputs.dropFirst(4) { outs.append(try b.zeros(g.type(o).shape)) }
            r.new = b.graph
            return outs
        }
    }
}

/// Whether a scan is unrolled (one over a free number of steps cannot be, unless it must).
func unrolls(_ cell: ScanCell, steps: Int?, _ policy: UnrollPolicy) -> Bool {
    !cell.compilable || (policy == .always && steps != nil)
}
