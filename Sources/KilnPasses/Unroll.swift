import KilnIR

/// When the unroll pass turns a scan into straight-line code.
public enum UnrollPolicy: String, Sendable, CaseIterable {
    /// Unroll only the scans the compiled loop cannot run: cells with activations whose
    /// derivative the reverse scan does not know (ScanCell.activations) and GRUs with the
    /// reset gate before the recurrent product. A compiled loop is never slower than its
    /// unrolled copy here: the step kernel does the whole cell in one pass, where the
    /// unrolled cell is a chain of kernels, and the loop's code does not grow with T.
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
        guard g.nodes.contains(where: { if case .prim(.scan(let c)) = $0.op { return unrolls(c, policy) }; return false }) else { return g }
        var r = GraphRebuilder(g)
        return try r.run { r, n in
            guard case .prim(.scan(let cell)) = n.op, unrolls(cell, policy) else { return try r.copy(n) }
            var b = PrimBuilder(graph: r.new, layer: n.layer)
            let ins = n.inputs.map { r[$0] }
            let (seq, last, h, c) = try b.unroll(cell, proj: ins[0], recurrent: ins[1], recurrentBias: cell.recurrentBias ? ins[2] : nil,
                                                 mask: cell.masked ? ins.last : nil)
            // The scratch and the records are used by nothing before autodiff.
            var outs = [seq, last, h, c]
            for o in n.outputs.dropFirst(4) { outs.append(try b.zeros(g.type(o).shape)) }
            r.new = b.graph
            return outs
        }
    }
}

func unrolls(_ cell: ScanCell, _ policy: UnrollPolicy) -> Bool {
    policy == .always || !cell.compilable
}
