// `kiln graph MODEL -o model.svg`: the layer graph drawn as Keras' plot_model draws it
// (one box per layer with its name and type, the tensors' shapes on the edges), as
// Graphviz dot text; `dot -Tsvg` (Debian's graphviz) makes the picture. With
// `--after PASS`, the primitive graph after that pass of the predict pipeline
// (lowered ops, fused kernels) is drawn instead.

import Foundation
import KilnIR
import KilnPasses

public enum GraphPlot {
    public struct PlotError: Error, CustomStringConvertible { public var description: String }

    /// The passes `--after` accepts: the predict pipeline's, in order.
    public static var passNames: [String] {
        var seen: [String] = []
        for p in Pipeline.predict(unroll: .auto) where !seen.contains(p.name) { seen.append(p.name) }
        return seen
    }

    /// A dot string literal's body: quotes, backslashes and newlines escaped.
    static func quote(_ s: String) -> String {
        var out = "\""
        for ch in s {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.append(ch)
            }
        }
        return out + "\""
    }

    /// Keras' shape text: (None, 28, 28, 1).
    static func shape(_ t: TensorType) -> String { t.kerasDescription }

    /// The layer graph as dot: one box per layer ("name (ClassName)"), one edge per
    /// connection labelled with the tensor's shape; the outputs' shapes on edges to
    /// an output marker, as the inputs' come from their InputLayer boxes.
    public static func layerDot(_ m: Model) -> String {
        let g = m.graph
        var s = "digraph \(quote(g.name)) {\n"
        s += "  graph [rankdir=TB, fontname=\"Helvetica\", label=\(quote("Model: \(g.name)")), labelloc=t];\n"
        s += "  node [shape=record, style=\"rounded,filled\", fillcolor=\"#e8eef7\", fontname=\"Helvetica\", fontsize=11];\n"
        s += "  edge [fontname=\"Helvetica\", fontsize=9];\n"
        var index: [String: Int] = [:]
        for (i, l) in m.layers.enumerated() { index[l.name] = i }
        // Model inputs with no InputLayer among the layers (a Sequential model's) get a box of their own.
        var inputBox: [String: String] = [:]
        for (k, l) in m.layers.enumerated() {
            s += "  l\(k) [label=\(quote("\(l.name) (\(l.className))"))];\n"
        }
        func parse(_ ref: String) -> (String, Int, Int) {
            // "name[node][tensor]"
            var parts = ref.split(separator: "[").map(String.init)
            guard parts.count >= 3 else { return (ref, 0, 0) }
            let t = Int(parts.removeLast().dropLast()) ?? 0
            let n = Int(parts.removeLast().dropLast()) ?? 0
            return (parts.joined(separator: "["), n, t)
        }
        var drawnInput = Set<Int>()
        for (k, l) in m.layers.enumerated() {
            for ref in l.inbound {
                let (name, node, tensor) = parse(ref)
                if let i = index[name] {
                    let src = m.layers[i]
                    let j = src.shared ? node : tensor
                    let label = src.outputs.isEmpty ? "" : shape(g.type(src.outputs[min(max(j, 0), src.outputs.count - 1)]))
                    s += "  l\(i) -> l\(k) [label=\(quote(label))];\n"
                } else {
                    let box = inputBox[name] ?? "in\(inputBox.count)"
                    if inputBox[name] == nil {
                        inputBox[name] = box
                        s += "  \(box) [label=\(quote("\(name) (InputLayer)"))];\n"
                    }
                    let inputIndex = g.inputNames.firstIndex(of: name) ?? 0
                    if inputIndex < g.inputs.count { drawnInput.insert(inputIndex) }
                    let label = inputIndex < g.inputs.count ? shape(g.type(g.inputs[inputIndex])) : ""
                    s += "  \(box) -> l\(k) [label=\(quote(label))];\n"
                }
            }
        }
        // A Sequential model whose first layer has no inbound reference: its input feeds it.
        if m.layers.first.map({ $0.inbound.isEmpty && $0.className != "InputLayer" }) == true, let v = g.inputs.first, drawnInput.isEmpty {
            s += "  in0 [label=\(quote("\(g.inputNames.first ?? "input") (InputLayer)"))];\n"
            s += "  in0 -> l0 [label=\(quote(shape(g.type(v))))];\n"
        }
        for (k, v) in g.outputs.enumerated() {
            guard let i = m.layers.lastIndex(where: { $0.outputs.contains(v) }) else { continue }
            s += "  out\(k) [shape=plaintext, style=\"\", label=\(quote(g.outputNames.indices.contains(k) ? g.outputNames[k] : "output"))];\n"
            s += "  l\(i) -> out\(k) [label=\(quote(shape(g.type(v))))];\n"
        }
        return s + "}\n"
    }

    /// A primitive graph as dot: one box per node (its op as --print-after prints it, and the
    /// layer it comes from; fused kernels are single boxes), model inputs and outputs as
    /// ovals, weights as small grey boxes, each edge labelled with its value's type.
    public static func primitiveDot(_ g: Graph, after pass: String) -> String {
        var s = "digraph \(quote(g.name)) {\n"
        s += "  graph [rankdir=TB, fontname=\"Helvetica\", label=\(quote("\(g.name) after \(pass)")), labelloc=t];\n"
        s += "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#e8eef7\", fontname=\"Helvetica\", fontsize=10];\n"
        s += "  edge [fontname=\"Helvetica\", fontsize=8];\n"
        for (k, v) in g.inputs.enumerated() {
            s += "  i\(v.id) [shape=oval, fillcolor=\"#fff2cc\", label=\(quote(g.inputNames.indices.contains(k) ? g.inputNames[k] : "input \(k)"))];\n"
        }
        let used = Set(g.nodes.flatMap(\.inputs))
        for p in g.params where used.contains(p.value) {
            s += "  i\(p.value.id) [shape=box, fontsize=8, fillcolor=\"#eeeeee\", label=\(quote(p.name))];\n"
        }
        func short(_ text: String) -> String { text.count <= 72 ? text : String(text.prefix(69)) + "..." }
        for (k, n) in g.nodes.enumerated() {
            let fused: Bool
            switch n.op { case .prim(.fused), .prim(.convBiasAct): fused = true; default: fused = false }
            let color = fused ? ", fillcolor=\"#d9ead3\"" : ""
            s += "  n\(k) [label=\(quote(short(n.op.description) + "\n" + n.layer))\(color)];\n"
        }
        func source(_ v: Value) -> String? {
            switch g.info(v).source {
            case .input, .param: return "i\(v.id)"
            case .node(let i, _): return "n\(i)"
            }
        }
        for (k, n) in g.nodes.enumerated() {
            for v in n.inputs {
                guard let src = source(v) else { continue }
                s += "  \(src) -> n\(k) [label=\(quote(g.type(v).description))];\n"
            }
        }
        for (k, v) in g.outputs.enumerated() {
            guard let src = source(v) else { continue }
            s += "  o\(k) [shape=oval, fillcolor=\"#fff2cc\", label=\(quote(g.outputNames.indices.contains(k) ? g.outputNames[k] : "output \(k)"))];\n"
            s += "  \(src) -> o\(k) [label=\(quote(g.type(v).description))];\n"
        }
        return s + "}\n"
    }

    /// The primitive graph of predict right after `pass` (its first run when it runs twice).
    public static func graph(after pass: String, of m: Model) throws -> Graph {
        guard passNames.contains(pass) else {
            throw PlotError(description: "--after takes a pass of the predict pipeline (\(passNames.joined(separator: ", "))), not '\(pass)'")
        }
        var found: Graph? = nil
        _ = try Pipeline.run(Pipeline.predict(unroll: .auto), m.graph) { name, g in
            if name == pass && found == nil { found = g }
        }
        return found!
    }

    /// Writes the picture: dot text for a .dot or .gv path, otherwise the format of the
    /// extension (svg, png, pdf) drawn by Graphviz's `dot`. Nothing is written on an error.
    public static func write(dot: String, to path: String) throws {
        let ext = (path as NSString).pathExtension.lowercased()
        let folder = (path as NSString).deletingLastPathComponent
        var isDir: ObjCBool = false
        guard folder.isEmpty || (FileManager.default.fileExists(atPath: folder, isDirectory: &isDir) && isDir.boolValue) else {
            throw PlotError(description: "cannot write \(path): the folder \(folder) does not exist")
        }
        if ext == "dot" || ext == "gv" {
            try dot.write(toFile: path, atomically: true, encoding: .utf8)
            return
        }
        guard ["svg", "png", "pdf"].contains(ext) else {
            throw PlotError(description: "cannot tell the picture's format from '\(path)': give a .svg, .png, .pdf or .dot file")
        }
        let candidates = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map { "\($0)/dot" }
        guard let dotPath = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw PlotError(description: "drawing \(path) needs Graphviz's dot, which is not installed (apt-get install graphviz); a .dot file needs no Graphviz")
        }
        // dot reads the text from a file and writes the picture to another beside `path`,
        // renamed over it once dot has succeeded.
        let fm = FileManager.default
        let source = fm.temporaryDirectory.appendingPathComponent("kiln-graph-\(getpid())-\(UUID().uuidString).dot").path
        let dir = (path as NSString).deletingLastPathComponent
        let temp = (dir.isEmpty ? "." : dir) + "/.\((path as NSString).lastPathComponent).tmp.\(getpid())"
        defer { try? fm.removeItem(atPath: source); try? fm.removeItem(atPath: temp) }
        try dot.write(toFile: source, atomically: false, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: dotPath)
        p.arguments = ["-T" + ext, source, "-o", temp]
        let errors = Pipe()
        p.standardError = errors
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let msg = String(decoding: err, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? "exit status \(p.terminationStatus)"
            throw PlotError(description: "Graphviz's dot could not draw \(path): \(msg)")
        }
        guard rename(temp, path) == 0 else {
            throw PlotError(description: "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
