// Legacy HDF5 model files and weight files, turned into the same `KerasModelSpec` the
// `.keras` reader builds, so that every layer of the layer table imports from them.
//
// Files read here:
//   - a legacy model `.h5` (Keras 2.x / tf.keras `model.save("m.h5")`, Keras 3's legacy
//     `model.save("m.h5")`): root attributes `model_config` (JSON) and `training_config`
//     (JSON, optional), and the group `model_weights`;
//   - a legacy weight-only `.h5` (tf.keras `save_weights("w.h5")`): the `model_weights`
//     layout at the root;
//   - a Keras 3 `.weights.h5` (`model.save_weights("m.weights.h5")`): the `layers/<key>/vars`
//     layout of a `.keras` archive's model.weights.h5.
//
// The legacy weight layout: the group holds the attribute `layer_names` (the names of
// `model.layers`, in order); each layer's group `<name>/` holds the attribute `weight_names`
// (e.g. "dense/kernel:0" for Keras 2, "sequential/dense/kernel" for Keras 3) in Keras'
// `trainable_weights + non_trainable_weights` order, and one dataset per name at that path
// below the layer's group. Long name lists are split over `weight_names0`, `weight_names1`, ...
// Strings are fixed-length or variable-length (h5py 3 writes variable-length ones).
//
// Nothing from the file is executed: a config carrying Python code is refused.

@preconcurrency internal import CHDF5
import Foundation
import KilnSupport
import ZIPFoundation

/// Reads any model file Kiln takes, and a weights file given beside it.
public enum KerasModelFile {
    /// Reads the model at `path` (a `.keras` archive or a legacy `.h5`, told apart by their
    /// content), then, when `weights` is given, replaces its weights with that file's
    /// (a Keras 3 `.weights.h5`, a legacy weight-only `.h5` or a legacy model `.h5`).
    public static func read(path: String, weights: String? = nil) throws -> KerasModelSpec {
        var (spec, root) = try readModel(path: path, withRoot: weights != nil)
        if let w = weights {
            try applyWeights(w, to: &spec, root: root, modelFile: (path as NSString).lastPathComponent)
        }
        return spec
    }

    /// The model at `path` and, when `withRoot`, the JSON its weights are matched against
    /// (`.null` otherwise).
    static func readModel(path: String, withRoot: Bool) throws -> (KerasModelSpec, JSON) {
        let ext = (path as NSString).pathExtension.lowercased()
        if LegacyH5.hasHDF5Signature(path) {
            // As for a .keras file's weights: libhdf5 reads the file here only after the same
            // reading ran whole in a child process (HDF5Reader.swift, "libhdf5 and crafted files").
            try preflight(path) { _ = try? LegacyH5.readModel(path: path) }
            return try LegacyH5.readModel(path: path)
        } else if ext == "h5" || ext == "hdf5", LegacyH5.head(path, 2) != [0x50, 0x4B] {
            // Named .h5 and no zip (a .keras archive given that name is read as one): the HDF5
            // reader says what is wrong (missing, a directory, empty, not HDF5).
            _ = try LegacyH5.open(path: path, display: (path as NSString).lastPathComponent)
            throw KerasImportError("\((path as NSString).lastPathComponent): not an HDF5 file, so not a Keras .h5 model.")
        }
        let spec = try KerasArchive.read(path: path)
        return (spec, withRoot ? try KerasArchive.configJSON(path: path) : .null)
    }

    /// Replaces the weights of `spec` (read from `modelFile`, whose JSON is `root`) with the
    /// weights file at `path`.
    static func applyWeights(_ path: String, to spec: inout KerasModelSpec, root: JSON, modelFile: String) throws {
        if LegacyH5.hasHDF5Signature(path) {
            try preflight(path) { [spec] in
                var copy = spec
                try? LegacyH5.loadWeights(path: path, onto: &copy, root: root, modelFile: modelFile)
            }
        }
        try LegacyH5.loadWeights(path: path, onto: &spec, root: root, modelFile: modelFile)
    }

    /// Runs `reading` (libhdf5 on the HDF5 file at `path`) in a child process first; refuses
    /// the file when the child crashes or hangs.
    static func preflight(_ path: String, _ reading: () -> Void) throws {
        let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
        if let why = HDF5Lib.preflight(bytes: size, reading) {
            throw KerasImportError("\((path as NSString).lastPathComponent): \(why).")
        }
    }
}

extension KerasArchive {
    /// The config.json of the `.keras` file at `path` (already read and checked by `read`).
    static func configJSON(path: String) throws -> JSON {
        let display = (path as NSString).lastPathComponent
        let archive: Archive
        do { archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read) } catch {
            throw KerasImportError("\(display): cannot be read as a .keras archive.")
        }
        let bytes = try entryBytes(archive, "config.json", display: display)
        do { return try JSON.parse(bytes) } catch let e as JSONParseError {
            throw KerasImportError("\(display): config.json is not valid JSON (\(e.description)).")
        }
    }
}

public enum LegacyH5 {
    /// Files larger than this are refused before they are read into memory.
    static let maxFileBytes: UInt64 = 16 << 30

    /// The first `n` bytes of a regular file (nil: missing, a directory or unreadable).
    static func head(_ path: String, _ n: Int) -> [UInt8]? {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue,
              let fh = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? fh.close() }
        do { return [UInt8](try fh.read(upToCount: n) ?? Data()) } catch { return nil }
    }

    /// True when the file starts with the HDF5 signature (at offset 0, where Keras' writers
    /// put it). Missing files and directories are left to the readers' own messages.
    static func hasHDF5Signature(_ path: String) -> Bool {
        head(path, 8) == KerasArchive.hdf5Signature
    }

    /// Opens an HDF5 file; `display` names it in messages.
    static func open(path: String, display: String) throws -> HDF5File {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw KerasImportError("\(display): no such file.")
        }
        if isDir.boolValue { throw KerasImportError("\(display): is a directory, not an HDF5 file.") }
        guard let fh = FileHandle(forReadingAtPath: path) else {
            throw KerasImportError("\(display): cannot be read (permission denied).")
        }
        defer { fh.closeFile() }
        let size = fh.seekToEndOfFile()
        if size > maxFileBytes {
            throw KerasImportError("\(display): is \(size) bytes, more than Kiln reads (16 GiB).")
        }
        if size == 0 { throw KerasImportError("\(display): the file is empty, not an HDF5 file.") }
        fh.seek(toFileOffset: 0)
        let bytes: [UInt8]
        do { bytes = [UInt8](try fh.read(upToCount: Int(size)) ?? Data()) } catch {
            throw KerasImportError("\(display): cannot be read (\((error as NSError).localizedDescription)).")
        }
        let h5: HDF5File
        do { h5 = try HDF5File(image: bytes) } catch let f as HDF5Failure {
            if f.message.contains("signature") {
                throw KerasImportError("\(display): not an HDF5 file (it does not start with the HDF5 signature), so not a Keras .h5 file.")
            }
            throw KerasImportError("\(display): \(f.message).")
        }
        try checkGlobalHeaps(bytes, display: display)
        return h5
    }

    /// The variable-length strings of h5py 3 (every string attribute Keras writes) live in
    /// global heap collections ("GCOL"). libhdf5 1.10 loops forever on a collection whose
    /// objects do not tile it (an object of size 0 at index 0 never advances its parser), so
    /// every collection is walked here first, as libhdf5 walks it, and a damaged one refused.
    static func checkGlobalHeaps(_ image: [UInt8], display: String) throws {
        func u64(_ at: Int) -> UInt64 {
            var v: UInt64 = 0
            for k in (0..<8).reversed() { v = v << 8 | UInt64(image[at + k]) }
            return v
        }
        let sig: [UInt8] = [0x47, 0x43, 0x4F, 0x4C, 0x01, 0x00, 0x00, 0x00]   // "GCOL", version 1, reserved
        var start = 0
        while start + 16 <= image.count {
            guard image[start] == 0x47, Array(image[start..<(start + 8)]) == sig else { start += 1; continue }
            let damaged = KerasImportError("\(display): is damaged: its global heap at byte \(start) (which holds its strings) cannot be read.")
            let size = u64(start + 8)
            guard size >= 16, size <= UInt64(image.count - start) else { throw damaged }
            let end = start + Int(size)
            var p = start + 16
            while p < end {
                if p + 16 > end { break }   // a tail too small for an object header is free space
                let idx = Int(image[p]) | Int(image[p + 1]) << 8
                let objSize = u64(p + 8)
                guard objSize <= UInt64(end - p) else { throw damaged }
                let need = idx > 0 ? 16 + ((Int(objSize) + 7) & ~7) : Int(objSize)
                guard need > 0, p + need <= end else { throw damaged }
                p += need
            }
            start = end
        }
    }

    // MARK: - Model files

    /// Reads a legacy `.h5` model: its spec (weights included) and its config normalized to
    /// the Keras 3 spelling (for a `.weights.h5` laid onto it).
    static func readModel(path: String) throws -> (KerasModelSpec, JSON) {
        let display = (path as NSString).lastPathComponent
        let h5 = try open(path: path, display: display)
        guard let text = try h5.stringAttribute("model_config", at: "", display: display)?.joined() else {
            if try h5.stringAttribute("layer_names", at: "", display: display) != nil {
                throw KerasImportError("\(display): is a weights-only HDF5 file (it has layer weights but no model_config); give it with --weights beside the model file.")
            }
            if h5.kind("layers") == .group {
                throw KerasImportError("\(display): is a Keras 3 weights file (.weights.h5) without the model's config; give it with --weights beside the model file.")
            }
            throw KerasImportError("\(display): is an HDF5 file but not a Keras model: it has no 'model_config' attribute.")
        }
        let raw: JSON
        do { raw = try JSON.parse(text) } catch let e as JSONParseError {
            throw KerasImportError("\(display): the model_config attribute is not valid JSON (\(e.description)).")
        }
        try KerasArchive.refusePythonCode(raw, display: display)
        try LegacyConfig.refuseTensorFlowOps(raw, display: display)
        let root = try LegacyConfig.normalize(raw, display: display)
        var spec = try SpecBuilder(display: display, weights: nil).dryRun(root: root)
        if let tc = try h5.stringAttribute("training_config", at: "", display: display)?.joined() {
            let tj: JSON
            do { tj = try JSON.parse(tc) } catch let e as JSONParseError {
                throw KerasImportError("\(display): the training_config attribute is not valid JSON (\(e.description)).")
            }
            spec.compileConfig = try LegacyConfig.compileConfig(tj, display: display)
        }
        guard h5.kind("model_weights") == .group else {
            throw KerasImportError("\(display): has a model_config but no 'model_weights' group, so the model's weights are missing.")
        }
        let groups = try legacyLayerWeights(h5, group: "model_weights", display: display)
        try assignByName(groups, to: &spec, display: display)
        spec.optimizerVars = optimizerVars(h5)
        spec.optimizerParamCount = spec.optimizerVars.reduce(0) { $0 + $1.count }
        return (spec, root)
    }

    /// The weights of one layer as the legacy layout stores them.
    struct LayerGroup {
        var name: String
        var weights: [KerasWeight]
    }

    /// The layers of a legacy weights group that hold weights, in `layer_names` order.
    static func legacyLayerWeights(_ h5: HDF5File, group: String, display: String) throws -> [LayerGroup] {
        guard let names = try h5.stringAttribute("layer_names", at: group, display: display) else {
            throw KerasImportError("\(display): the weights group '\(group.isEmpty ? "/" : group)' has no 'layer_names' attribute, so it is not a Keras weights file.")
        }
        var out: [LayerGroup] = []
        var seen = Set<String>()
        for name in names {
            guard !seen.contains(name) else { throw KerasImportError("\(display): layer_names lists the layer '\(name)' twice.") }
            seen.insert(name)
            let gp = group.isEmpty ? name : group + "/" + name
            guard h5.kind(gp) == .group else {
                throw KerasImportError("\(display): layer_names lists the layer '\(name)' but the file has no group for it.")
            }
            let wnames = try h5.stringAttribute("weight_names", at: gp, display: display) ?? []
            var ws: [KerasWeight] = []
            for w in wnames {
                let p = gp + "/" + w
                guard h5.kind(p) == .dataset else {
                    throw KerasImportError("\(display): layer '\(name)' lists the weight '\(w)' but the file has no dataset for it.")
                }
                do {
                    let (shape, values) = try h5.readFloats(p)
                    ws.append(KerasWeight(path: p, shape: shape, values: values))
                } catch let f as HDF5Failure {
                    throw KerasImportError("\(display): \(f.message) (layer '\(name)').")
                }
            }
            if !ws.isEmpty { out.append(LayerGroup(name: name, weights: ws)) }
        }
        return out
    }

    /// A legacy model file's own weights: matched to the layers by name.
    static func assignByName(_ groups: [LayerGroup], to spec: inout KerasModelSpec, display: String) throws {
        var byName: [String: [KerasWeight]] = [:]
        for g in groups { byName[g.name] = g.weights }
        let builder = SpecBuilder(display: display, weights: nil)
        for i in spec.layers.indices {
            let l = spec.layers[i]
            let w = byName.removeValue(forKey: l.name) ?? []
            if let e = builder.expectedWeightCount(l.className, l.config), e != w.count {
                if w.isEmpty {
                    throw KerasImportError("\(display): model_weights has no weights for layer '\(l.name)' (\(l.className)), which needs \(e).")
                }
                throw KerasImportError("\(display): layer '\(l.name)' (\(l.className)) has \(w.count) weight arrays in model_weights but its config calls for \(e).")
            }
            spec.layers[i].weights = w
        }
        if let extra = groups.first(where: { byName[$0.name] != nil }) {
            throw KerasImportError("\(display): model_weights holds weights for a layer '\(extra.name)' that the model_config does not have, so the two do not match.")
        }
    }

    /// Keras 3's legacy files store the optimizer's variables as Keras 3 orders them
    /// (iteration, learning rate, then the slots), which is what resuming needs. Files of
    /// other writers (Keras 2 orders them otherwise) start a fresh optimizer, as Keras 3 does
    /// when it cannot set them.
    static func optimizerVars(_ h5: HDF5File) -> [[Float]] {
        guard h5.kind("optimizer_weights") == .group,
              let names = try? h5.stringAttribute("weight_names", at: "optimizer_weights", display: ""),
              names.count >= 2, names[0].hasSuffix("/iteration"), names[1].hasSuffix("/learning_rate") else { return [] }
        var out: [[Float]] = []
        for n in names {
            guard let v = try? h5.readFloats("optimizer_weights/" + n) else { return [] }
            out.append(v.values)
        }
        return out
    }

    // MARK: - Weight files (--weights)

    /// Replaces the weights of `spec` (read from `modelFile`, whose Keras 3 config is `root`)
    /// with those of the weights file at `path`. Counts and shapes must match layer by layer.
    static func loadWeights(path: String, onto spec: inout KerasModelSpec, root: JSON, modelFile: String) throws {
        let display = (path as NSString).lastPathComponent
        if let h = head(path, 8), !h.isEmpty, h != KerasArchive.hdf5Signature {
            throw KerasImportError("\(display): not an HDF5 file (it does not start with the HDF5 signature), so not a Keras weights file (.weights.h5 or .h5).")
        }
        let h5 = try open(path: path, display: display)
        let before = spec.layers.map(\.weights)
        if h5.kind("layers") == .group {
            // Keras 3 layout: the layers' keys come from the model's config.
            var b = SpecBuilder(display: display, weights: h5)
            b.weightsFile = "the weights file"
            let other = try b.build(root: root)
            guard other.layers.count == spec.layers.count else {
                throw KerasImportError("\(display): does not hold the weights of \(modelFile)'s model.")
            }
            for i in spec.layers.indices { spec.layers[i].weights = other.layers[i].weights }
        } else {
            let group: String
            if try h5.stringAttribute("layer_names", at: "", display: display) != nil {
                group = ""
            } else if h5.kind("model_weights") == .group {
                group = "model_weights"
            } else {
                throw KerasImportError("\(display): is an HDF5 file but not a Keras weights file: it has neither a 'layers' group (.weights.h5) nor 'layer_names' (a legacy .h5).")
            }
            let groups = try legacyLayerWeights(h5, group: group, display: display)
            // As Keras' load_weights: the layers that have weights, matched in order.
            let targets = spec.layers.indices.filter { !spec.layers[$0].weights.isEmpty }
            guard groups.count == targets.count else {
                throw KerasImportError("\(display): holds weights for \(groups.count) layers (\(groups.map(\.name).joined(separator: ", "))) but \(modelFile)'s model has \(targets.count) layers with weights (\(targets.map { spec.layers[$0].name }.joined(separator: ", "))).")
            }
            for (g, i) in zip(groups, targets) {
                let l = spec.layers[i]
                guard g.weights.count == l.weights.count else {
                    throw KerasImportError("\(display): layer '\(g.name)' has \(g.weights.count) weight arrays in the file but the model's layer '\(l.name)' (\(l.className)) has \(l.weights.count).")
                }
                spec.layers[i].weights = g.weights
            }
        }
        // Shapes, layer by layer, against the model's own weights.
        for (i, old) in before.enumerated() {
            let l = spec.layers[i]
            guard old.count == l.weights.count else {
                throw KerasImportError("\(display): layer '\(l.name)' (\(l.className)) has \(l.weights.count) weight arrays in the file but \(old.count) in \(modelFile).")
            }
            for (k, (o, n)) in zip(old, l.weights).enumerated() where o.shape != n.shape {
                throw KerasImportError("\(display): weight \(k) of layer '\(l.name)' (\(l.className)) has shape \(formatShape(n.shape)) in the file but \(formatShape(o.shape)) in \(modelFile).")
            }
        }
    }

    static func formatShape(_ s: [Int]) -> String {
        "(" + s.map(String.init).joined(separator: ", ") + (s.count == 1 ? ",)" : ")")
    }
}

// MARK: - Keras 2 configs in the Keras 3 spelling

enum LegacyConfig {
    /// The model config with Keras 2's spellings turned into what the `.keras` reader takes.
    static func normalize(_ raw: JSON, display: String) throws -> JSON {
        guard case .object = raw else { throw KerasImportError("\(display): the model_config attribute does not hold a JSON object.") }
        guard let cls = raw["class_name"]?.string else {
            throw KerasImportError("\(display): the model_config has no 'class_name', so it does not describe a Keras model.")
        }
        var cfg = raw["config"] ?? .null
        // Keras 1 and early Keras 2 wrote a Sequential model's config as the bare list of layers.
        if cls == "Sequential", let list = cfg.array {
            cfg = .object([("name", .string("sequential")), ("layers", .array(list))])
        }
        return .object([("class_name", .string(cls)), ("config", try layerContainer(cfg, depth: 0, display: display))])
    }

    /// A model config: each entry of its `layers` normalized.
    static func layerContainer(_ cfg: JSON, depth: Int, display: String) throws -> JSON {
        guard depth < 32, case .object(var items) = cfg else { return cfg }
        for k in items.indices where items[k].0 == "layers" {
            if let list = items[k].1.array { items[k].1 = .array(try list.map { try layerEntry($0, depth: depth + 1, display: display) }) }
        }
        return .object(items)
    }

    /// One `{"class_name", "config", ...}` entry.
    static func layerEntry(_ e: JSON, depth: Int, display: String) throws -> JSON {
        guard depth < 32, case .object(var items) = e, let cls = e["class_name"]?.string else { return e }
        for k in items.indices where items[k].0 == "config" {
            guard case .object(var c) = items[k].1 else { continue }
            c = try layerConfig(cls, c, depth: depth, display: display)
            items[k].1 = .object(c)
        }
        return .object(items)
    }

    /// Keras 2 options that Keras 3 dropped, with the value that means "not used".
    static let keras2Only: [(key: String, off: JSON, what: String)] = [
        ("time_major", .bool(false), "time_major=False (batch first)"),
        ("virtual_batch_size", .null, "virtual_batch_size None"),
        ("adjustment", .null, "adjustment None"),
    ]

    static func layerConfig(_ cls: String, _ c0: [(String, JSON)], depth: Int, display: String) throws -> [(String, JSON)] {
        var c = c0
        func has(_ k: String) -> Bool { c.contains { $0.0 == k } }
        for opt in keras2Only {
            if let v = c.first(where: { $0.0 == opt.key })?.1, v != opt.off {
                let name = c.first { $0.0 == "name" }?.1.string ?? "?"
                throw KerasImportError("\(display): layer '\(name)' (\(cls)) sets Keras 2's \(opt.key) to \(v.serialized); Kiln supports \(opt.what).")
            }
        }
        // Keras 1: input_dtype; InputLayer's input_dtype too.
        if let k = c.firstIndex(where: { $0.0 == "input_dtype" }) {
            let v = c.remove(at: k).1
            if !has("dtype") { c.append(("dtype", v)) }
        }
        if cls == "InputLayer", let k = c.firstIndex(where: { $0.0 == "batch_input_shape" }), !has("batch_shape") {
            c[k].0 = "batch_shape"
        }
        // Wrappers (Bidirectional, TimeDistributed) and RNN cells: the nested layer.
        for k in c.indices where ["layer", "backward_layer", "cell"].contains(c[k].0) {
            c[k].1 = try layerEntry(c[k].1, depth: depth + 1, display: display)
        }
        if ["Sequential", "Functional", "Model"].contains(cls) {
            return try layerContainer(.object(c), depth: depth + 1, display: display).object ?? c
        }
        return c
    }

    /// tf.keras records TensorFlow functions applied to Keras tensors (`x * 2.0`, `tf.concat`)
    /// as TFOpLambda layers: TensorFlow code Kiln does not run.
    static func refuseTensorFlowOps(_ v: JSON, display: String, depth: Int = 0) throws {
        guard depth < 64 else { return }
        if let cls = v["class_name"]?.string, ["TFOpLambda", "SlicingOpLambda", "TensorFlowOpLayer"].contains(cls) {
            let name = v["config"]?["name"]?.string ?? v["name"]?.string ?? "?"
            let fn = v["config"]?["function"]?.string.map { " '\($0)'" } ?? ""
            throw KerasImportError("\(display): layer '\(name)' is a TensorFlow operation\(fn) that tf.keras recorded (\(cls)), which Kiln does not run; write it with Keras layers (e.g. Rescaling, Add, Multiply, Concatenate) and save the model again.")
        }
        if let a = v.array { for e in a { try refuseTensorFlowOps(e, display: display, depth: depth + 1) } }
        if let o = v.object { for (_, e) in o { try refuseTensorFlowOps(e, display: display, depth: depth + 1) } }
    }

    /// A legacy `training_config` as the compile_config of a `.keras` file.
    static func compileConfig(_ tc: JSON, display: String) throws -> JSON? {
        guard case .object = tc else { throw KerasImportError("\(display): the training_config attribute does not hold a JSON object.") }
        guard let loss = tc["loss"], !loss.isNull else { return nil }
        var items: [(String, JSON)] = [("loss", lossJSON(loss))]
        if let lw = tc["loss_weights"] { items.append(("loss_weights", lw)) }
        if let m = tc["metrics"], !m.isNull { items.append(("metrics", .array(flatMetrics(m)))) }
        guard let opt = tc["optimizer_config"], case .object = opt else {
            throw KerasImportError("\(display): the training_config has a loss but no optimizer_config.")
        }
        items.append(("optimizer", try optimizerJSON(opt, display: display)))
        return .object(items)
    }

    /// Keras 2 loss objects: reduction "auto" is Keras 3's "sum_over_batch_size".
    static func lossJSON(_ j: JSON) -> JSON {
        switch j {
        case .array(let a): return .array(a.map(lossJSON))
        case .object(let items):
            guard j["class_name"] != nil else { return .object(items.map { ($0.0, lossJSON($0.1)) }) }
            return .object(items.map { k, v in
                guard k == "config", case .object(let c) = v else { return (k, v) }
                return (k, .object(c.map { ($0.0 == "reduction" && $0.1.string == "auto") ? ($0.0, .string("sum_over_batch_size")) : $0 }))
            })
        default: return j
        }
    }

    /// Metrics as a flat list (Keras 2 could nest them per output).
    static func flatMetrics(_ j: JSON) -> [JSON] {
        if let a = j.array { return a.flatMap(flatMetrics) }
        if let o = j.object, j["class_name"] == nil { return o.flatMap { flatMetrics($0.1) } }
        return [j]
    }

    /// Keras 2 optimizer configs: "lr" for the learning rate, a "decay" Kiln cannot follow,
    /// and class names with a "Custom>" or module prefix.
    static func optimizerJSON(_ opt: JSON, display: String) throws -> JSON {
        var cls = opt["class_name"]?.string ?? ""
        if let r = cls.range(of: ">", options: .backwards) { cls = String(cls[r.upperBound...]) }
        if let r = cls.range(of: ".", options: .backwards) { cls = String(cls[r.upperBound...]) }
        var c = opt["config"]?.object ?? []
        if let k = c.firstIndex(where: { $0.0 == "lr" }) {
            let v = c.remove(at: k).1
            if !c.contains(where: { $0.0 == "learning_rate" }) { c.append(("learning_rate", v)) }
        }
        if let d = c.first(where: { $0.0 == "decay" })?.1.double, d != 0 {
            throw KerasImportError("\(display): the optimizer \(cls) uses Keras 2's learning-rate decay (decay=\(d)), which Kiln does not support; Kiln supports a constant learning rate.")
        }
        return .object([("class_name", .string(cls)), ("config", .object(c))])
    }
}

// MARK: - HDF5 attributes

extension HDF5File {
    /// The string attribute `name` of the object at `path` ("" for the root) as a list
    /// (one entry for a scalar), nil when absent. Lists split by Keras over `name0`,
    /// `name1`, ... are joined. An empty numeric attribute (h5py's empty list) is [].
    func stringAttribute(_ name: String, at path: String, display: String) throws -> [String]? {
        if let whole = try readStringAttribute(name, at: path, display: display) { return whole }
        guard try readStringAttribute(name + "0", at: path, display: display) != nil else { return nil }
        var out: [String] = []
        var k = 0
        while k < 100_000, let part = try readStringAttribute(name + String(k), at: path, display: display) {
            out += part
            k += 1
        }
        return out
    }

    private func readStringAttribute(_ name: String, at path: String, display: String) throws -> [String]? {
        let obj = path.isEmpty ? "/" : path
        let fail = { (what: String) in
            KerasImportError("\(display): the attribute '\(name)' of \(path.isEmpty ? "the file" : "'\(path)'") \(what).")
        }
        return try HDF5Lib.withLock { () throws -> [String]? in
            if H5Aexists_by_name(fileID, obj, name, 0) <= 0 { return nil }
            let aid = H5Aopen_by_name(fileID, obj, name, 0, 0)
            if aid < 0 { throw fail("cannot be opened (the file is damaged or truncated)") }
            defer { H5Aclose(aid) }
            let space = H5Aget_space(aid)
            if space < 0 { throw fail("has an unreadable shape") }
            defer { H5Sclose(space) }
            let n = H5Sget_simple_extent_npoints(space)
            if n < 0 || n > 1_000_000 { throw fail("has an unreadable shape") }
            let ftype = H5Aget_type(aid)
            if ftype < 0 { throw fail("has an unreadable type") }
            defer { H5Tclose(ftype) }
            let cls = H5Tget_class(ftype)
            if cls != H5T_STRING {
                if n == 0 { return [] }   // h5py writes an empty list as an empty float array
                throw fail("is not a string")
            }
            if n == 0 { return [] }
            let count = Int(n)
            if H5Tis_variable_str(ftype) > 0 {
                try checkStringReferences(obj, display: display)
                let mtype = H5Tcopy(H5T_C_S1_g)
                if mtype < 0 { throw fail("cannot be read") }
                defer { H5Tclose(mtype) }
                H5Tset_size(mtype, -1)   // H5T_VARIABLE, (size_t)-1 (size_t is Int in Swift)
                H5Tset_cset(mtype, H5Tget_cset(ftype))
                var ptrs = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
                let rc = ptrs.withUnsafeMutableBytes { H5Aread(aid, mtype, $0.baseAddress) }
                if rc < 0 { throw fail("cannot be read (the file is damaged or truncated)") }
                defer { _ = ptrs.withUnsafeMutableBytes { H5Dvlen_reclaim(mtype, space, 0, $0.baseAddress) } }
                return ptrs.map { p in p.map { String(cString: $0) } ?? "" }
            }
            let size = H5Tget_size(ftype)
            let (total, overflow) = count.multipliedReportingOverflow(by: size)
            if size == 0 || overflow || total > image.count { throw fail("is larger than the file could hold") }
            var buf = [UInt8](repeating: 0, count: total)
            let rc = buf.withUnsafeMutableBytes { H5Aread(aid, ftype, $0.baseAddress) }
            if rc < 0 { throw fail("cannot be read (the file is damaged or truncated)") }
            return (0..<count).map { i in
                var s = buf[(i * size)..<((i + 1) * size)]
                if let z = s.firstIndex(of: 0) { s = s[s.startIndex..<z] }
                while s.last == 0x20 { s = s.dropLast() }   // space-padded strings
                return String(decoding: s, as: UTF8.self)
            }
        }
    }
}

// MARK: - Checking variable-length string references before libhdf5 follows them

extension HDF5File {
    /// libhdf5 1.10 follows a variable-length string's global heap ID without checking it: an
    /// ID naming an object its collection does not hold makes it read through a null pointer,
    /// and an object larger than the string's length overruns its buffer. So before reading
    /// the string attributes of an object, Kiln reads the object's header itself (the version 1
    /// header h5py writes: its messages and continuation blocks), takes the heap IDs of its
    /// variable-length attributes, and checks each against the collection it names. A header of
    /// another version is left to libhdf5 (the collections were still walked on opening).
    func checkStringReferences(_ path: String, display: String) throws {
        let damaged = { (what: String) in
            KerasImportError("\(display): is damaged: \(what) of '\(path)' cannot be read.")
        }
        var info = H5O_info_t()
        if H5Oget_info_by_name2(fileID, path, &info, 1 /* H5O_INFO_BASIC */, 0) < 0 { throw damaged("the object header") }
        let n = image.count
        // Offsets and lengths of 8 bytes (what h5py writes) are read here; other sizes are left to libhdf5.
        let sizesAt = image[8] < 2 ? 13 : 9
        guard n > 16, image[sizesAt] == 8, image[sizesAt + 1] == 8 else { return }
        guard info.addr < UInt64(n) else { throw damaged("the object header") }
        func u16(_ at: Int) -> Int { Int(image[at]) | Int(image[at + 1]) << 8 }
        func u32(_ at: Int) -> UInt64 { (0..<4).reversed().reduce(0) { $0 << 8 | UInt64(image[at + $1]) } }
        func u64(_ at: Int) -> UInt64 { (0..<8).reversed().reduce(0) { $0 << 8 | UInt64(image[at + $1]) } }
        let start = Int(info.addr)
        guard start + 16 <= n else { throw damaged("the object header") }
        guard image[start] == 1 else { return }   // not a version 1 header
        var blocks = [(start + 16, Int(u32(start + 8)))]
        var refs: [(len: UInt64, addr: UInt64, idx: UInt64)] = []
        var b = 0
        while b < blocks.count {
            guard b < 1000 else { throw damaged("the object header") }
            let (from, size) = blocks[b]
            b += 1
            guard size >= 0, from + size <= n else { throw damaged("the object header") }
            var p = from
            while p + 8 <= from + size {
                let type = u16(p), msize = u16(p + 2), flags = image[p + 4]
                let data = p + 8
                guard data + msize <= from + size else { throw damaged("the object header") }
                if type == 0x10 {   // continuation: another block of messages
                    guard msize >= 16 else { throw damaged("the object header") }
                    let (off, len) = (u64(data), u64(data + 8))
                    guard off < UInt64(n), len <= UInt64(n) - off else { throw damaged("the object header") }
                    blocks.append((Int(off), Int(len)))
                } else if type == 0x0C, flags & 0x02 == 0, msize >= 8 {   // an attribute, not shared
                    let version = image[data]
                    let nameSize = u16(data + 2), dtSize = u16(data + 4), dsSize = u16(data + 6)
                    let pad = { (k: Int) in version == 1 ? (k + 7) & ~7 : k }
                    let dt = data + (version == 3 ? 9 : 8) + pad(nameSize)
                    let values = dt + pad(dtSize) + pad(dsSize)
                    guard (1...3).contains(version), values <= data + msize else { throw damaged("an attribute") }
                    if image[dt] & 0x0F == 9 {   // variable-length: (length, collection address, index) per value
                        var q = values
                        while q + 16 <= data + msize {
                            refs.append((u32(q), u64(q + 4), u32(q + 12)))
                            q += 16
                        }
                    }
                }
                p = data + msize
            }
        }
        var collections: [UInt64: [UInt64: UInt64]] = [:]
        for r in refs where r.len > 0 {
            if collections[r.addr] == nil { collections[r.addr] = try heapObjects(at: r.addr, display: display) }
            guard let size = collections[r.addr]?[r.idx], size == r.len else {
                throw damaged("a string (global heap object \(r.idx) at byte \(r.addr))")
            }
        }
    }

    /// The objects (index: size) of the global heap collection at `addr`, walked as libhdf5 walks it.
    func heapObjects(at addr: UInt64, display: String) throws -> [UInt64: UInt64] {
        let damaged = KerasImportError("\(display): is damaged: its global heap at byte \(addr) (which holds its strings) cannot be read.")
        let n = image.count
        guard addr <= UInt64(n - 16) else { throw damaged }
        let start = Int(addr)
        func u64(_ at: Int) -> UInt64 { (0..<8).reversed().reduce(0) { $0 << 8 | UInt64(image[at + $1]) } }
        guard Array(image[start..<(start + 8)]) == Array("GCOL".utf8) + [1, 0, 0, 0] else { throw damaged }
        let size = u64(start + 8)
        guard size >= 16, size <= UInt64(n - start) else { throw damaged }
        let end = start + Int(size)
        var objects: [UInt64: UInt64] = [:]
        var p = start + 16
        while p + 16 <= end {
            let idx = UInt64(image[p]) | UInt64(image[p + 1]) << 8
            let objSize = u64(p + 8)
            guard objSize <= UInt64(end - p) else { throw damaged }
            let need = idx > 0 ? 16 + ((Int(objSize) + 7) & ~7) : Int(objSize)
            guard need > 0, p + need <= end else { throw damaged }
            if idx > 0 { objects[idx] = objSize }
            p += need
        }
        return objects
    }
}
