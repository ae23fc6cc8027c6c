import KilnIR

/// Keras' `model.summary()` table.
public enum ModelSummary {
    public static func render(_ m: Model) -> String {
        let g = m.graph
        let functional = !m.isSequential
        var rows: [[String]] = []
        for l in m.layers where !(m.isSequential && l.className == "InputLayer") {
            // A layer with several outputs (return_state) shows their list, as Keras does.
            let shapes = l.outputs.map { g.type($0).kerasDescription(batch: g.batchSize) }
            let shape = shapes.count > 1 && !l.shared ? "[" + shapes.joined(separator: ", ") + "]" : shapes.joined(separator: ", ")
            var row = ["\(l.name) (\(l.className))", shape, formatCount(l.paramCount)]
            if functional { row.append(l.inbound.isEmpty ? "-" : l.inbound.joined(separator: ", ")) }
            rows.append(row)
        }
        var headers = ["Layer (type)", "Output Shape", "Param #"]
        if functional { headers.append("Connected to") }
        var widths = headers.map(\.count)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        widths = widths.map { $0 + 2 }
        func line(_ l: Character, _ m: Character, _ r: Character, _ fill: Character) -> String {
            String(l) + widths.map { String(repeating: fill, count: $0) }.joined(separator: String(m)) + String(r)
        }
        func row(_ cells: [String]) -> String {
            "│" + zip(cells, widths).enumerated().map { i, cw in
                let (c, w) = cw
                let text = " " + c
                return i == 2 ? String(repeating: " ", count: max(0, w - c.count - 1)) + c + " "
                              : text + String(repeating: " ", count: max(0, w - text.count))
            }.joined(separator: "│") + "│"
        }
        var out = "Model: \"\(g.name)\"\n"
        out += line("┏", "┳", "┓", "━") + "\n"
        out += "┃" + zip(headers, widths).map { h, w in " " + h + String(repeating: " ", count: max(0, w - h.count - 1)) }.joined(separator: "┃") + "┃\n"
        out += line("┡", "╇", "┩", "━") + "\n"
        for (i, r) in rows.enumerated() {
            out += row(r) + "\n"
            out += (i == rows.count - 1 ? line("└", "┴", "┘", "─") : line("├", "┼", "┤", "─")) + "\n"
        }
        let params = m.layers.reduce(0) { $0 + $1.paramCount }
        let trainable = m.layers.reduce(0) { $0 + $1.trainableCount }
        let total = params + m.optimizerParamCount
        out += " Total params: \(formatCount(total)) (\(formatBytes(total * 4)))\n"
        out += " Trainable params: \(formatCount(trainable)) (\(formatBytes(trainable * 4)))\n"
        out += " Non-trainable params: \(formatCount(params - trainable)) (\(formatBytes((params - trainable) * 4)))\n"
        if m.optimizerParamCount > 0 {
            out += " Optimizer params: \(formatCount(m.optimizerParamCount)) (\(formatBytes(m.optimizerParamCount * 4)))\n"
        }
        return out
    }

    /// 12345 -> "12,345".
    public static func formatCount(_ n: Int) -> String {
        let s = String(n)
        var out = ""
        for (i, ch) in s.reversed().enumerated() {
            if i > 0 && i % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return String(out.reversed())
    }

    /// Keras' size string: "1.23 KB", "40.00 B".
    static func formatBytes(_ b: Int) -> String {
        let units = ["B", "KB", "MB", "GB"]
        var v = Double(b)
        var u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        return String(format: "%.2f %@", v, units[u])
    }
}
