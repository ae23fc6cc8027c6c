// Reads a Keras 3 `.keras` file (a zip holding config.json, metadata.json and
// model.weights.h5) into a `KerasModelSpec`. Nothing from the file is
// executed; a config that carries Python code (a Lambda layer or a
// serialized `__lambda__`) is refused.
//
// Weight layout in model.weights.h5 (Keras 3 saving_lib):
//   layers/<key>/vars/0, vars/1, ...        a layer's own variables, in
//                                           `layer.weights` order
//   layers/<key>/cell/vars/...              RNN layers (LSTM, GRU, ...)
//   layers/<key>/forward_layer/cell/vars    Bidirectional (then backward_layer)
//   layers/<key>/layer/vars/...             TimeDistributed
//   layers/<key>/layers/<key2>/...          a nested Sequential/Functional model
// where <key> is NOT the layer's name but the snake_case class name made
// unique over `model.layers` ("dense", "dense_1", ...; a Sequential model's
// leading InputLayer is not in `model.layers`, a Functional model's are).
// (Recent Keras versions also write the layer name as an attribute of the
// `vars` group; Kiln does not need it, and does not read it.)

import Foundation
import KilnSupport
import ZIPFoundation

public enum KerasArchive {
    /// Reads the `.keras` file at `path`.
    public static func read(path: String) throws -> KerasModelSpec {
        let display = (path as NSString).lastPathComponent
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw KerasImportError("\(display): no such file.")
        }
        if isDir.boolValue {
            throw KerasImportError("\(display): is a directory, not a .keras file.")
        }
        guard let fh = FileHandle(forReadingAtPath: path) else {
            throw KerasImportError("\(display): cannot be read (permission denied).")
        }
        let head = [UInt8](fh.readData(ofLength: 8))
        fh.closeFile()
        if head.count == 8, head == hdf5Signature {
            throw KerasImportError("\(display): is an HDF5 file (a legacy .h5 Keras model), not a Keras 3 .keras archive; KerasModelFile.read, which kiln uses, reads both.")
        }
        let archive: Archive
        do {
            archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read)
        } catch {
            throw notAZip(display: display, head: head)
        }
        return try read(archive: archive, display: display)
    }

    /// Reads a `.keras` archive held in memory; `name` is used in messages.
    /// (Through a temporary file: ZIPFoundation's in-memory archives trap on an entry offset
    /// past the end of the data, as Fuzz/keras found; its file-backed ones refuse it.)
    public static func read(data: [UInt8], name: String) throws -> KerasModelSpec {
        let head = Array(data.prefix(8))
        let tmp = FileManager.default.temporaryDirectory
            .appendingPathComponent("kiln-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString).keras")
        // A plain write (createFile writes atomically: a second temporary file and an fsync).
        do { try Data(data).write(to: tmp, options: .withoutOverwriting) } catch {
            throw KerasImportError("\(name): cannot write a temporary copy to read it (in \(tmp.deletingLastPathComponent().path)).")
        }
        defer { try? FileManager.default.removeItem(at: tmp) }
        let archive: Archive
        do {
            archive = try Archive(url: tmp, accessMode: .read)
        } catch {
            throw notAZip(display: name, head: head)
        }
        return try read(archive: archive, display: name)
    }

    /// Parses the text of a config.json (a Keras model config) into a spec
    /// without weights. For tools and tests; `read` is the normal entry.
    public static func parseConfig(_ text: String, name: String = "config.json") throws -> KerasModelSpec {
        let json: JSON
        do { json = try JSON.parse(text) } catch let e as JSONParseError {
            throw KerasImportError("\(name): config.json is not valid JSON (\(e.description)).")
        }
        var b = SpecBuilder(display: name, weights: nil)
        return try b.build(root: json)
    }

    // MARK: - Internals

    static let hdf5Signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

    static func notAZip(display: String, head: [UInt8]) -> KerasImportError {
        if head.count >= 2, head[0] == 0x50, head[1] == 0x4B {  // "PK"
            return KerasImportError("\(display): the zip archive is truncated or damaged (its central directory cannot be read).")
        }
        if head.isEmpty {
            return KerasImportError("\(display): the file is empty, not a Keras .keras archive.")
        }
        return KerasImportError("\(display): not a Keras .keras file (it is not a zip archive).")
    }

    static func read(archive: Archive, display: String) throws -> KerasModelSpec {
        let configBytes = try entryBytes(archive, "config.json", display: display)
        return try read(config: configBytes, weights: { try entryBytes(archive, "model.weights.h5", display: display) },
                        display: display)
    }

    /// The archive's two entries, config.json and (when the config is sound) model.weights.h5,
    /// already extracted. Also the fuzz target's entry (Fuzz/keras), which bypasses the zip's CRCs.
    public static func read(config configBytes: [UInt8], weights: () throws -> [UInt8], display: String) throws -> KerasModelSpec {
        let json: JSON
        do { json = try JSON.parse(configBytes) } catch let e as JSONParseError {
            throw KerasImportError("\(display): config.json is not valid JSON (\(e.description)).")
        }
        // Refuse Python code before anything else is looked at.
        try refusePythonCode(json, display: display)
        // Validate the structure before reading weights, so that config
        // errors are reported as such.
        _ = try SpecBuilder(display: display, weights: nil).dryRun(root: json)
        let h5Bytes = try weights()
        // libhdf5 reads the file in this process only after the same reading ran whole in a
        // child process (HDF5Reader.swift, "libhdf5 and crafted files").
        if let why = HDF5Lib.preflight(bytes: h5Bytes.count, { _ = try? readWeights(json, h5Bytes, display: display) }) {
            throw KerasImportError("\(display): model.weights.h5 \(why).")
        }
        return try readWeights(json, h5Bytes, display: display)
    }

    /// The spec with its weights from the model.weights.h5 image (libhdf5's part of `read`).
    static func readWeights(_ json: JSON, _ h5Bytes: [UInt8], display: String) throws -> KerasModelSpec {
        let h5: HDF5File
        do { h5 = try HDF5File(image: h5Bytes) } catch let f as HDF5Failure {
            throw KerasImportError("\(display): model.weights.h5 \(f.message).")
        }
        var builder = SpecBuilder(display: display, weights: h5)
        var spec = try builder.build(root: json)
        // The saved optimizer's variables (iterations, learning rate, slots), which Keras' summary counts.
        spec.optimizerParamCount = h5.children("optimizer/vars").reduce(0) { total, child in
            total + ((try? h5.readFloats("optimizer/vars/" + child))?.values.count ?? 0)
        }
        // In Keras' order (0, 1, 2, ...), to resume training from the saved state.
        let varCount = h5.children("optimizer/vars").count
        for k in 0..<varCount {
            guard let v = try? h5.readFloats("optimizer/vars/\(k)") else {
                throw KerasImportError("\(display): model.weights.h5 has \(varCount) optimizer variables but no readable optimizer/vars/\(k).")
            }
            spec.optimizerVars.append(v.values)
        }
        return spec
    }

    static func entryBytes(_ archive: Archive, _ entryName: String, display: String) throws -> [UInt8] {
        guard let entry = archive[entryName] else {
            if entryName == "config.json" {
                throw KerasImportError("\(display): the archive has no config.json, so it is not a Keras 3 model file.")
            }
            throw KerasImportError("\(display): the archive has no \(entryName), so the model's weights are missing.")
        }
        guard entry.type == .file else {
            throw KerasImportError("\(display): \(entryName) in the archive is not a regular file.")
        }
        // Bounds (README "Fuzzing and bounded inputs"): config.json is parsed into JSON values
        // (tens of bytes per element), model.weights.h5 is copied once more by libhdf5's
        // core driver; a zip bomb's declared sizes are checked before anything is inflated,
        // and inflating stops as soon as more comes out than the zip directory declared.
        let declared = entry.uncompressedSize
        let limit = entryName == "config.json" ? KilnLimits.maxJSONBytes : KilnLimits.maxBytes / 2
        if declared > UInt64(limit) {
            throw KerasImportError("\(display): \(entryName) declares \(declared) bytes, more than Kiln reads for it (\(KilnLimits.describe(limit)); \(KilnLimits.overrideHint)).")
        }
        // Deflate cannot expand data more than 1032 to 1; a larger declared ratio is a lie.
        let packed = entry.compressedSize
        if declared > 1 << 20, !entry.isCompressed ? declared != packed : declared / 1100 > packed {
            throw KerasImportError("\(display): \(entryName) declares \(declared) bytes stored in \(packed), a ratio no real archive has (a zip bomb or a damaged archive).")
        }
        var out = [UInt8]()
        out.reserveCapacity(min(Int(declared), 64 << 20))
        let crc: CRC32
        do {
            crc = try archive.extract(entry, skipCRC32: false) { chunk in
                if out.count + chunk.count > Int(declared) + 1 {
                    throw KerasImportError("\(display): \(entryName) is larger than the zip directory says.")
                }
                out.append(contentsOf: chunk)
            }
        } catch let e as KerasImportError {
            throw e
        } catch {
            throw KerasImportError("\(display): \(entryName) in the archive is truncated or damaged (\(error)).")
        }
        if out.count != Int(declared) {
            throw KerasImportError("\(display): \(entryName) in the archive is truncated: expected \(declared) bytes, found \(out.count).")
        }
        if crc != entry.checksum {
            throw KerasImportError("\(display): \(entryName) in the archive is damaged (CRC mismatch).")
        }
        return out
    }

    /// Refuses a config that carries Python code: a Lambda layer or a
    /// serialized `__lambda__` anywhere.
    static func refusePythonCode(_ root: JSON, display: String) throws {
        func layerName(_ obj: JSON) -> String? {
            if let n = obj["name"]?.string { return n }
            if let n = obj["config"]?["name"]?.string { return n }
            return nil
        }
        func visit(_ v: JSON, enclosing: String?, depth: Int) throws {
            guard depth < 1000 else { return }
            switch v {
            case .object(let items):
                var here = enclosing
                if let cls = v["class_name"]?.string {
                    if cls == "Lambda" {
                        let n = layerName(v) ?? "?"
                        throw KerasImportError("\(display): layer '\(n)' is a Lambda layer, which runs Python code from the file; Kiln refuses it.")
                    }
                    if cls == "__lambda__" {
                        throw lambdaCode(enclosing)
                    }
                    if v["config"] != nil, let n = layerName(v), cls != "__keras_tensor__" { here = n }
                }
                for (k, e) in items {
                    if k == "__lambda__" { throw lambdaCode(here) }
                    try visit(e, enclosing: here, depth: depth + 1)
                }
            case .array(let a):
                for e in a { try visit(e, enclosing: enclosing, depth: depth + 1) }
            case .string(let s):
                if s == "__lambda__" { throw lambdaCode(enclosing) }
            default: break
            }
        }
        func lambdaCode(_ layer: String?) -> KerasImportError {
            if let layer = layer {
                return KerasImportError("\(display): layer '\(layer)' contains a serialized Python lambda ('__lambda__'), which would run Python code from the file; Kiln refuses it.")
            }
            return KerasImportError("\(display): config.json contains a serialized Python lambda ('__lambda__'), which would run Python code from the file; Kiln refuses it.")
        }
        try visit(root, enclosing: nil, depth: 0)
    }

    /// Keras' `naming.to_snake_case`:
    ///   re.sub(r"\W+", "", name); re.sub("(.)([A-Z][a-z]+)", r"\1_\2", ...);
    ///   re.sub("([a-z])([A-Z])", r"\1_\2", ...).lower()
    public static func snakeCase(_ name: String) -> String {
        func isUpper(_ c: Character) -> Bool { c.isASCII && c.isUppercase }
        func isLower(_ c: Character) -> Bool { c.isASCII && c.isLowercase }
        let s0 = Array(name.filter { $0.isLetter || $0.isNumber || $0 == "_" })
        var s1: [Character] = []
        var i = 0
        while i < s0.count {
            if i + 2 < s0.count, s0[i] != "\n", isUpper(s0[i + 1]), isLower(s0[i + 2]) {
                var j = i + 3
                while j < s0.count, isLower(s0[j]) { j += 1 }
                s1.append(s0[i]); s1.append("_"); s1.append(contentsOf: s0[(i + 1)..<j])
                i = j
            } else {
                s1.append(s0[i]); i += 1
            }
        }
        var s2: [Character] = []
        i = 0
        while i < s1.count {
            if i + 1 < s1.count, isLower(s1[i]), isUpper(s1[i + 1]) {
                s2.append(s1[i]); s2.append("_"); s2.append(s1[i + 1]); i += 2
            } else {
                s2.append(s1[i]); i += 1
            }
        }
        return String(s2).lowercased()
    }

    /// The h5 keys Keras gives the layers of a container, in order.
    static func containerKeys(_ classNames: [String]) -> [String] {
        var used: [String: Int] = [:]
        return classNames.map { cls in
            let base = snakeCase(cls)
            if let n = used[base] {
                used[base] = n + 1
                return "\(base)_\(n + 1)"
            }
            used[base] = 0
            return base
        }
    }
}

// MARK: - Building the spec

/// One entry of a `layers` list in config.json.
struct RawLayer {
    var className: String
    var name: String
    var config: JSON
    var entry: JSON
}

let modelClassNames: Set<String> = ["Sequential", "Functional", "Model"]
let rnnClassNames: Set<String> = ["LSTM", "GRU", "SimpleRNN", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"]

struct SpecBuilder {
    let display: String
    let weights: HDF5File?
    /// How messages name the weights file (a .weights.h5 given with --weights is not model.weights.h5).
    var weightsFile = "model.weights.h5"
    var consumed = Set<String>()
    var groupsSeen = Set<UInt64>()

    init(display: String, weights: HDF5File?) {
        self.display = display
        self.weights = weights
    }

    func fail(_ message: String) -> KerasImportError {
        KerasImportError("\(display): \(message)")
    }

    /// Checks the config's structure without reading weights.
    func dryRun(root: JSON) throws -> KerasModelSpec {
        var b = SpecBuilder(display: display, weights: nil)
        return try b.build(root: root)
    }

    mutating func build(root: JSON) throws -> KerasModelSpec {
        guard case .object = root else { throw fail("config.json does not hold a JSON object.") }
        guard let cls = root["class_name"]?.string else {
            throw fail("config.json has no 'class_name', so it does not describe a Keras model.")
        }
        guard let cfg = root["config"], case .object = cfg else {
            throw fail("config.json has no model 'config' object.")
        }
        let kind: KerasModelSpec.Kind
        if cls == "Sequential" {
            kind = .sequential
        } else if cls == "Functional" || (cls == "Model" && cfg["layers"] != nil && cfg["input_layers"] != nil) {
            kind = .functional
        } else {
            throw fail("the model is a '\(cls)', not a Sequential or Functional model; a subclassed model's code is Python, which Kiln does not run.")
        }
        let modelName = cfg["name"]?.string ?? (kind == .sequential ? "sequential" : "functional")
        let raws = try rawLayers(cfg, owner: "the model")

        var layers: [KerasLayerSpec] = []
        var inputs: [KerasTensorRef] = []
        var outputs: [KerasTensorRef] = []
        if kind == .functional {
            let names = Set(raws.map(\.name))
            for r in raws {
                layers.append(KerasLayerSpec(className: r.className, name: r.name,
                                             config: configWithInboundNodes(r),
                                             calls: try calls(of: r, known: names), weights: []))
            }
            inputs = try modelRefs(cfg["input_layers"], what: "input_layers", known: names)
            outputs = try modelRefs(cfg["output_layers"], what: "output_layers", known: names)
            if inputs.isEmpty { throw fail("the Functional model has no input_layers.") }
            if outputs.isEmpty { throw fail("the Functional model has no output_layers.") }
        } else {
            for r in raws {
                layers.append(KerasLayerSpec(className: r.className, name: r.name, config: r.config,
                                             calls: [], weights: []))
            }
        }

        if weights != nil {
            let keys = containerKeys(raws, sequential: kind == .sequential)
            for (i, r) in raws.enumerated() {
                guard let key = keys[i] else { continue }
                let path = try locateLayerGroup(prefix: "layers", key: key, layerName: r.name)
                layers[i].weights = try layerWeights(path: path, raw: r)
            }
            try checkAllConsumed()
        }

        var compile: JSON? = root["compile_config"]
        if compile?.isNull == true { compile = nil }
        return KerasModelSpec(kind: kind, name: modelName, layers: layers, inputs: inputs,
                              outputs: outputs, compileConfig: compile)
    }

    /// The `layers` list of a model config.
    func rawLayers(_ cfg: JSON, owner: String) throws -> [RawLayer] {
        guard let list = cfg["layers"]?.array else {
            throw fail("\(owner) has no 'layers' list in config.json.")
        }
        var out: [RawLayer] = []
        var seen = Set<String>()
        for (i, e) in list.enumerated() {
            guard case .object = e else { throw fail("entry \(i) of the layers of \(owner) is not a JSON object.") }
            guard let cls = e["class_name"]?.string else {
                throw fail("entry \(i) of the layers of \(owner) has no 'class_name'.")
            }
            var config = e["config"] ?? .object([])
            if config.isNull { config = .object([]) }
            guard case .object = config else {
                throw fail("layer \(i) (\(cls)) of \(owner) has a 'config' that is not an object.")
            }
            guard let name = e["name"]?.string ?? config["name"]?.string else {
                throw fail("layer \(i) (\(cls)) of \(owner) has no name.")
            }
            if seen.contains(name) { throw fail("two layers of \(owner) are named '\(name)'.") }
            seen.insert(name)
            out.append(RawLayer(className: cls, name: name, config: config, entry: e))
        }
        return out
    }

    /// h5 keys for the layers of a model: nil for a Sequential model's
    /// leading InputLayer, which is not in `model.layers`.
    func containerKeys(_ raws: [RawLayer], sequential: Bool) -> [String?] {
        var skipFirst = false
        if sequential, let first = raws.first, first.className == "InputLayer" { skipFirst = true }
        let counted = skipFirst ? Array(raws.dropFirst()) : raws
        let keys = KerasArchive.containerKeys(counted.map(\.className))
        return skipFirst ? [nil] + keys.map { Optional($0) } : keys.map { Optional($0) }
    }

    // MARK: Functional graph edges

    /// The layer's config with its raw `inbound_nodes` appended under
    /// "__inbound_nodes__" (so that non-tensor call arguments, such as the 0
    /// of a NotEqual op, reach the graph builder).
    func configWithInboundNodes(_ r: RawLayer) -> JSON {
        guard let nodes = r.entry["inbound_nodes"], case .object(var items) = r.config else { return r.config }
        items.append((KerasLayerSpec.inboundNodesKey, nodes))
        return .object(items)
    }

    func calls(of r: RawLayer, known: Set<String>) throws -> [KerasNodeCall] {
        guard let nodes = r.entry["inbound_nodes"] else { return [] }
        if nodes.isNull { return [] }
        guard let list = nodes.array else {
            throw fail("layer '\(r.name)' has 'inbound_nodes' that are not a list.")
        }
        var out: [KerasNodeCall] = []
        for (ni, node) in list.enumerated() {
            var inputs: [KerasTensorRef] = []
            var kwargs: [(String, KerasTensorRef)] = []
            if case .object = node {
                // Keras 3: {"args": [...], "kwargs": {...}}
                if let args = node["args"] {
                    try collectTensors(args, into: &inputs, layer: r.name, known: known)
                }
                if let kw = node["kwargs"]?.object {
                    for (k, v) in kw {
                        var refs: [KerasTensorRef] = []
                        try collectTensors(v, into: &refs, layer: r.name, known: known)
                        for ref in refs { kwargs.append((k, ref)) }
                    }
                }
            } else if let legacy = node.array {
                // Keras 2: [["layer", node, tensor, {kwargs}], ...]
                for item in legacy {
                    guard let ref = tripleRef(item) else {
                        throw fail("layer '\(r.name)' has an inbound node \(ni) that cannot be read.")
                    }
                    try checkKnown(ref, layer: r.name, known: known)
                    inputs.append(ref)
                    if let kw = item[3]?.object {
                        for (k, v) in kw {
                            var refs: [KerasTensorRef] = []
                            try collectTensors(v, into: &refs, layer: r.name, known: known)
                            for ref in refs { kwargs.append((k, ref)) }
                        }
                    }
                }
            } else {
                throw fail("layer '\(r.name)' has an inbound node \(ni) that cannot be read.")
            }
            out.append(KerasNodeCall(inputs: inputs, kwargs: kwargs))
        }
        return out
    }

    func checkKnown(_ ref: KerasTensorRef, layer: String, known: Set<String>) throws {
        if !known.contains(ref.layer) {
            throw fail("layer '\(layer)' takes its input from a layer '\(ref.layer)' that the model does not have.")
        }
    }

    /// Collects Keras tensors (`__keras_tensor__` objects) in `v`, depth first.
    func collectTensors(_ v: JSON, into out: inout [KerasTensorRef], layer: String, known: Set<String>, depth: Int = 0) throws {
        guard depth < 64 else { throw fail("layer '\(layer)' has call arguments nested too deeply.") }
        switch v {
        case .object:
            if v["class_name"]?.string == "__keras_tensor__" {
                guard let hist = v["config"]?["keras_history"], let ref = tripleRef(hist) else {
                    throw fail("layer '\(layer)' has an input tensor without a readable keras_history.")
                }
                try checkKnown(ref, layer: layer, known: known)
                out.append(ref)
            } else if let items = v.object {
                for (_, e) in items { try collectTensors(e, into: &out, layer: layer, known: known, depth: depth + 1) }
            }
        case .array(let a):
            for e in a { try collectTensors(e, into: &out, layer: layer, known: known, depth: depth + 1) }
        default: break
        }
    }

    /// ["layer", nodeIndex, tensorIndex(, ...)] -> ref.
    func tripleRef(_ v: JSON) -> KerasTensorRef? {
        guard let a = v.array, a.count >= 3, let name = a[0].string,
              let n = a[1].int, let t = a[2].int, n >= 0, t >= 0 else { return nil }
        return KerasTensorRef(layer: name, nodeIndex: n, tensorIndex: t)
    }

    /// `input_layers` / `output_layers`: one triple, a list of triples, or a
    /// dict / nested structure of triples.
    func modelRefs(_ v: JSON?, what: String, known: Set<String>) throws -> [KerasTensorRef] {
        guard let v = v, !v.isNull else { return [] }
        var out: [KerasTensorRef] = []
        func walk(_ x: JSON, _ depth: Int) throws {
            guard depth < 32 else { throw fail("the model's \(what) are nested too deeply.") }
            if let ref = tripleRef(x) {
                if !known.contains(ref.layer) {
                    throw fail("the model's \(what) name a layer '\(ref.layer)' that the model does not have.")
                }
                out.append(ref)
            } else if let a = x.array {
                for e in a { try walk(e, depth + 1) }
            } else if let o = x.object {
                for (_, e) in o { try walk(e, depth + 1) }
            } else {
                throw fail("the model's \(what) cannot be read.")
            }
        }
        try walk(v, 0)
        return out
    }

    // MARK: Weights

    /// The h5 group of a layer, `prefix/key`, or nil when the file has none.
    /// (Keras' own loader addresses groups by this key alone. Recent Keras
    /// versions also store the layer name as a string attribute of the vars
    /// group; it is deliberately not read: variable-length strings live in
    /// the HDF5 global heap, which libhdf5 does not read safely from a
    /// crafted file.)
    func locateLayerGroup(prefix: String, key: String, layerName: String) throws -> String? {
        guard let h5 = weights else { return nil }
        let path = prefix + "/" + key
        return h5.kind(path) == .group ? path : nil
    }

    mutating func layerWeights(path: String?, raw: RawLayer) throws -> [KerasWeight] {
        let expected = expectedWeightCount(raw.className, raw.config)
        guard let path = path else {
            if let e = expected, e > 0 {
                throw fail("\(weightsFile) has no weights for layer '\(raw.name)' (\(raw.className)), which needs \(e).")
            }
            return []
        }
        let w = try collect(path: path, className: raw.className, config: raw.config, layerName: raw.name)
        if let e = expected, e != w.count {
            if w.isEmpty {
                throw fail("\(weightsFile) has no weights for layer '\(raw.name)' (\(raw.className)), which needs \(e).")
            }
            throw fail("layer '\(raw.name)' (\(raw.className)) has \(w.count) weight arrays in \(weightsFile) but its config calls for \(e).")
        }
        return w
    }

    /// A layer's weights in Keras `layer.weights` order: its own variables
    /// (vars/0, vars/1, ... numerically), then its sub-layers' in the order
    /// Keras creates them.
    mutating func collect(path: String, className: String?, config: JSON?, layerName: String, depth: Int = 0) throws -> [KerasWeight] {
        guard let h5 = weights else { return [] }
        guard depth < 32 else { throw fail("the weights of layer '\(layerName)' are nested too deeply.") }
        // Each group once: hard links can make a cycle (or share a group), which Keras never writes.
        if let a = h5.address(path), !groupsSeen.insert(a).inserted {
            throw fail("model.weights.h5 links the group '\(path)' to a group reached before (a cycle of links), which Keras never writes.")
        }
        var out = try ownVars(path: path, layerName: layerName)
        let cls = className ?? ""
        if modelClassNames.contains(cls), let cfg = config {
            // A nested model: its layers, keyed like the top level.
            let raws = try rawLayers(cfg, owner: "layer '\(layerName)'")
            let keys = containerKeys(raws, sequential: cls == "Sequential")
            for (i, r) in raws.enumerated() {
                guard let key = keys[i] else { continue }
                guard let sub = try locateLayerGroup(prefix: path + "/layers", key: key, layerName: r.name) else {
                    if let e = expectedWeightCount(r.className, r.config), e > 0 {
                        throw fail("\(weightsFile) has no weights for layer '\(r.name)' (\(r.className)) inside '\(layerName)', which needs \(e).")
                    }
                    continue
                }
                let w = try collect(path: sub, className: r.className, config: r.config, layerName: r.name, depth: depth + 1)
                if let e = expectedWeightCount(r.className, r.config), e != w.count {
                    throw fail("layer '\(r.name)' (\(r.className)) inside '\(layerName)' has \(w.count) weight arrays in \(weightsFile) but its config calls for \(e).")
                }
                out += w
            }
            return out
        }
        var children: [(key: String, cls: String?, cfg: JSON?)] = []
        if cls == "Bidirectional" {
            let inner = config?["layer"]
            let back = config?["backward_layer"] ?? inner
            children = [("forward_layer", inner?["class_name"]?.string, inner?["config"]),
                        ("backward_layer", back?["class_name"]?.string, back?["config"])]
        } else if cls == "TimeDistributed" {
            let inner = config?["layer"]
            children = [("layer", inner?["class_name"]?.string, inner?["config"])]
        } else if cls == "MultiHeadAttention" {
            // Its EinsumDense sub-layers, in the order Keras makes them (not the saved groups' order).
            children = ["query_dense", "key_dense", "value_dense", "output_dense"].map { ($0, "EinsumDense", nil) }
        } else if rnnClassNames.contains(cls) {
            let cell = config?["cell"]
            children = [("cell", cell?["class_name"]?.string, cell?["config"])]
        } else {
            // Unknown structure: sub-groups in Keras' save order (public
            // attribute names first, then private ones).
            let subs = h5.children(path).filter { $0 != "vars" && h5.kind(path + "/" + $0) == .group }
            let sorted = subs.sorted { a, b in
                let ka = a.hasPrefix("_") ? "~" + a : a
                let kb = b.hasPrefix("_") ? "~" + b : b
                return ka.utf8.lexicographicallyPrecedes(kb.utf8)
            }
            children = sorted.map { ($0, nil, nil) }
        }
        for c in children {
            let sub = path + "/" + c.key
            guard h5.kind(sub) == .group else { continue }
            out += try collect(path: sub, className: c.cls, config: c.cfg, layerName: layerName, depth: depth + 1)
        }
        return out
    }

    /// `path/vars/0 ... n-1`, numerically.
    mutating func ownVars(path: String, layerName: String) throws -> [KerasWeight] {
        guard let h5 = weights else { return [] }
        let vp = path + "/vars"
        guard h5.kind(vp) == .group else { return [] }
        var indices: [Int] = []
        for n in h5.children(vp) {
            guard let k = Int(n), k >= 0, String(k) == n else {
                throw fail("\(weightsFile) has an unexpected entry '\(vp)/\(n)' in the weights of layer '\(layerName)'.")
            }
            indices.append(k)
        }
        indices.sort()
        for (i, k) in indices.enumerated() where i != k {
            throw fail("\(weightsFile) lacks '\(vp)/\(i)' among the weights of layer '\(layerName)'.")
        }
        var out: [KerasWeight] = []
        for k in indices {
            let p = vp + "/" + String(k)
            do {
                let (shape, values) = try h5.readFloats(p)
                out.append(KerasWeight(path: p, shape: shape, values: values))
                consumed.insert(p)
            } catch let f as HDF5Failure {
                throw fail("\(weightsFile) \(f.message) (layer '\(layerName)').")
            }
        }
        return out
    }

    /// Every dataset under `layers/` must belong to some layer.
    func checkAllConsumed() throws {
        guard let h5 = weights else { return }
        var stack = ["layers"]
        var seen = Set<UInt64>()
        while let p = stack.popLast() {
            if let a = h5.address(p), !seen.insert(a).inserted {
                throw fail("model.weights.h5 links the group '\(p)' to a group reached before (a cycle of links), which Keras never writes.")
            }
            for c in h5.children(p) {
                let cp = p + "/" + c
                switch h5.kind(cp) {
                case .group?: stack.append(cp)
                case .dataset?:
                    if !consumed.contains(cp) {
                        throw fail("\(weightsFile) holds weights at '\(cp)' that belong to no layer of config.json, so the two do not match.")
                    }
                default: break
                }
            }
        }
    }

    /// How many weight arrays a well-known layer has (nil: not known here).
    func expectedWeightCount(_ cls: String, _ cfg: JSON?) -> Int? {
        if let dt = cfg?["dtype"], let dcls = dt["class_name"]?.string, dcls.contains("Quant") { return nil }
        if let q = cfg?["quantization_config"], !q.isNull { return nil }
        func flag(_ k: String, _ def: Bool = true) -> Int { (cfg?[k]?.bool ?? def) ? 1 : 0 }
        switch cls {
        case "Dense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
             "DepthwiseConv1D", "DepthwiseConv2D":
            return 1 + flag("use_bias")
        case "SeparableConv1D", "SeparableConv2D":
            return 2 + flag("use_bias")
        case "Embedding":
            return 1
        case "LSTM", "GRU", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D":
            return 2 + flag("use_bias")
        case "BatchNormalization":
            return 2 + flag("center") + flag("scale")
        case "LayerNormalization":
            // rms_scaling: gamma only.
            let rms = cfg?["rms_scaling"]?.bool ?? false
            return (rms ? 0 : flag("center")) + (rms ? 1 : flag("scale"))
        case "PReLU":
            return 1
        case "Attention":
            return flag("use_scale", false) + (cfg?["score_mode"]?.string == "concat" ? 1 : 0)
        case "AdditiveAttention":
            return flag("use_scale")
        case "MultiHeadAttention":
            return (cfg?["use_gate"]?.bool ?? false) ? nil : 4 * (1 + flag("use_bias"))
        case "Bidirectional":
            guard let inner = cfg?["layer"], let icls = inner["class_name"]?.string,
                  let f = expectedWeightCount(icls, inner["config"]) else { return nil }
            let back = cfg?["backward_layer"]
            if let back = back, !back.isNull {
                guard let bcls = back["class_name"]?.string, let b = expectedWeightCount(bcls, back["config"]) else { return nil }
                return f + b
            }
            return 2 * f
        case "TimeDistributed":
            guard let inner = cfg?["layer"], let icls = inner["class_name"]?.string else { return nil }
            return expectedWeightCount(icls, inner["config"])
        case "InputLayer", "Flatten", "Reshape", "Dropout", "Activation", "ReLU", "Softmax", "LeakyReLU", "ELU",
             "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
             "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
             "Masking", "Concatenate", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
             "Permute", "RepeatVector", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D",
             "UpSampling1D", "UpSampling2D", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise",
             "GaussianDropout", "AlphaDropout", "NotEqual", "Any", "Identity":
            return 0
        default:
            return nil
        }
    }
}

// MARK: - Helpers for the graph builder

extension KerasLayerSpec {
    /// The key under which a Functional layer's raw `inbound_nodes` are
    /// appended to its `config`.
    public static let inboundNodesKey = "__inbound_nodes__"

    /// The raw positional and keyword arguments of call `index` (Keras 3
    /// format), constants included (e.g. the 0 of a NotEqual op); tensors
    /// appear as their `__keras_tensor__` objects (see `JSON.kerasTensorRef`).
    public func rawCallArguments(_ index: Int) -> (args: [JSON], kwargs: [(String, JSON)])? {
        guard let node = config[KerasLayerSpec.inboundNodesKey]?[index] else { return nil }
        if case .object = node {
            return (node["args"]?.array ?? [], node["kwargs"]?.object ?? [])
        }
        return nil
    }
}

extension JSON {
    /// The reference held by a `{"class_name": "__keras_tensor__", ...}` object.
    public var kerasTensorRef: KerasTensorRef? {
        guard self["class_name"]?.string == "__keras_tensor__",
              let h = self["config"]?["keras_history"]?.array, h.count >= 3,
              let name = h[0].string, let n = h[1].int, let t = h[2].int else { return nil }
        return KerasTensorRef(layer: name, nodeIndex: n, tensorIndex: t)
    }
}
