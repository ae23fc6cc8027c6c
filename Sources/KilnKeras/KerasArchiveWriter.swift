// Writes a `KerasModelSpec` as a Keras 3 `.keras` file: a zip (entries
// stored, as Keras writes them) holding
//   metadata.json     {"keras_version": ..., "date_saved": ...}
//   config.json       the model as Keras' `serialize_keras_object` gives it:
//                     module / class_name / config / registered_name /
//                     build_config / compile_config; a Functional model's
//                     layers carry "name" and "inbound_nodes"
//   model.weights.h5  layers/<key>/vars/<i> float32 datasets (the key rule
//                     is the reader's, see KerasArchive.swift), a `vars`
//                     group under every layer group with the layer name as
//                     its "name" attribute, the model's own empty `vars`
//                     group, and for a compiled model an empty
//                     `optimizer/vars` group (the optimizer has not been
//                     built, so Keras starts a fresh one on load)
// The spec is first built into Kiln's graph (which validates it and gives
// the layers' input shapes for `build_config`), so whatever is written can be
// read back by `KerasArchive.read` + `KerasGraphBuilder.build`. The file
// appears atomically: it is written to a temporary file in the destination
// folder and renamed; on error nothing is left behind.

@preconcurrency internal import CHDF5
import Foundation
import KilnIR
import ZIPFoundation

/// An error saving a model file: one sentence naming the file and the problem.
public struct KerasSaveError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

public enum KerasArchiveWriter {
    /// The Keras version written to metadata.json (the one Kiln's files mirror).
    public static let kerasVersion = "3.15.1"

    /// Writes `spec` (with its weights) as a `.keras` file at `path`,
    /// replacing any file there.
    public static func write(_ spec: KerasModelSpec, to path: String) throws {
        let display = (path as NSString).lastPathComponent
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            throw KerasSaveError("\(display): is a directory; give the path of a .keras file to write.")
        }
        let dir = (path as NSString).deletingLastPathComponent
        let folder = dir.isEmpty ? "." : dir
        guard fm.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
            throw KerasSaveError("\(display): the folder '\(folder)' does not exist.")
        }
        let bytes = try archiveBytes(spec, display: display)
        let err = writeFileAtomically(bytes, to: path)
        if err != 0 {
            throw KerasSaveError("\(display): cannot write in '\(folder)' (\(String(cString: strerror(err)))).")
        }
    }

    /// The bytes of the `.keras` zip for `spec`.
    public static func archiveBytes(_ spec: KerasModelSpec, display: String = "model.keras") throws -> Data {
        let config = try configJSON(spec, display: display)
        let weights = try weightsH5(spec, display: display)
        let fmt = DateFormatter()
        fmt.locale = Locale(identifier: "en_US_POSIX")
        fmt.dateFormat = "yyyy-MM-dd@HH:mm:ss"
        let metadata = JSON.object([("keras_version", .string(kerasVersion)),
                                    ("date_saved", .string(fmt.string(from: Date())))])
        var dosEpoch = DateComponents()
        dosEpoch.year = 1980; dosEpoch.month = 1; dosEpoch.day = 1
        let epoch = Calendar.current.date(from: dosEpoch) ?? Date()
        let entries: [(String, Data, Date)] = [
            ("metadata.json", Data(metadata.serialized.utf8), epoch),
            ("config.json", Data(serialize(config).utf8), epoch),
            ("model.weights.h5", Data(weights), Date()),
        ]
        do {
            let archive = try Archive(data: Data(), accessMode: .create)
            for (name, data, date) in entries {
                try archive.addEntry(with: name, type: .file, uncompressedSize: Int64(data.count), modificationDate: date,
                                     compressionMethod: .none) { pos, size in
                    data.subdata(in: Int(pos)..<Int(pos) + size)
                }
            }
            guard let out = archive.data else { throw KerasSaveError("\(display): the zip archive could not be made.") }
            return out
        } catch let e as KerasSaveError {
            throw e
        } catch {
            throw KerasSaveError("\(display): the zip archive could not be made (\(error)).")
        }
    }

    // MARK: - config.json

    /// config.json for `spec`, as Keras writes it.
    public static func configJSON(_ spec: KerasModelSpec, display: String = "model.keras") throws -> JSON {
        let shapes = try inputShapes(spec, display: display)
        var layerList: [JSON] = []
        for l in spec.layers {
            var config = l.config
            var rawNodes: JSON? = nil
            if case .object(let items) = config {
                rawNodes = items.first { $0.0 == KerasLayerSpec.inboundNodesKey }?.1
                config = .object(items.filter { $0.0 != KerasLayerSpec.inboundNodesKey })
            }
            var entry: [(String, JSON)] = [("module", .string(layerModule(l.className))), ("class_name", .string(l.className)),
                                           ("config", config), ("registered_name", KerasJSON.registeredName(l.className))]
            if l.className == "MultiHeadAttention", let s = shapes.byLayer[l.name]?.array, s.count >= 2 {
                // Keras builds it from build(query_shape, value_shape, key_shape).
                let names = ["query_shape", "value_shape", "key_shape"]
                entry.append(("build_config", .object([("shapes_dict", .object(zip(names, s).map { ($0, $1) }))])))
            } else if l.className != "InputLayer", let s = shapes.byLayer[l.name] {
                entry.append(("build_config", .object([("input_shape", s)])))
            }
            if spec.kind == .functional {
                entry.append(("name", .string(l.name)))
                entry.append(("inbound_nodes", rawNodes ?? .array(l.calls.map { node($0, className: l.className, shapes: shapes) })))
            }
            layerList.append(.object(entry))
        }
        var root: [(String, JSON)]
        let policy = JSON.object([("module", .string("keras")), ("class_name", .string("DTypePolicy")),
                                  ("config", .object([("name", .string("float32"))])), ("registered_name", .null)])
        switch spec.kind {
        case .sequential:
            let input = shapes.modelInput ?? .null
            root = [("module", .string("keras")), ("class_name", .string("Sequential")),
                    ("config", .object([("name", .string(spec.name)), ("trainable", .bool(true)), ("dtype", policy),
                                        ("layers", .array(layerList)), ("build_input_shape", input)])),
                    ("registered_name", .null), ("build_config", .object([("input_shape", input)]))]
        case .functional:
            func refs(_ r: [KerasTensorRef]) -> JSON {
                let triples = r.map { JSON.array([.string($0.layer), .number(Double($0.nodeIndex)), .number(Double($0.tensorIndex))]) }
                return triples.count == 1 ? triples[0] : .array(triples)
            }
            root = [("module", .string("keras.src.models.functional")), ("class_name", .string("Functional")),
                    ("config", .object([("name", .string(spec.name)), ("trainable", .bool(true)), ("layers", .array(layerList)),
                                        ("input_layers", refs(spec.inputs)), ("output_layers", refs(spec.outputs))])),
                    ("registered_name", .string("Functional")), ("build_config", .object([("input_shape", .null)]))]
        }
        if let cc = spec.compileConfig, !cc.isNull { root.append(("compile_config", cc)) }
        return .object(root)
    }

    static func layerModule(_ cls: String) -> String {
        switch cls {
        case "Sequential": return "keras"
        case "Functional": return "keras.src.models.functional"
        default: return KerasJSON.module(cls)
        }
    }

    /// Layers Keras calls on a list of tensors (`layer([a, b])`).
    static let listCallClasses: Set<String> = ["Concatenate", "Add", "Subtract", "Multiply", "Average", "Maximum",
                                               "Minimum", "Dot", "Attention", "AdditiveAttention"]

    /// Layers Keras calls on several positional tensors (`mha(query, value)`).
    static let positionalCallClasses: Set<String> = ["MultiHeadAttention"]

    /// Layers whose weights Keras keeps in sub-layers: the h5 groups under the layer's, each with
    /// an equal share of its weights in `get_weights()` order.
    /// (A path "a/b" makes nested groups, each with its own, possibly empty, "vars".)
    static func weightGroups(_ cls: String) -> [String]? {
        switch cls {
        case "MultiHeadAttention": return ["query_dense", "key_dense", "value_dense", "output_dense"]
        // Keras keeps a recurrent layer's weights in its cell.
        case "LSTM", "GRU", "SimpleRNN": return ["cell"]
        case "Bidirectional": return ["forward_layer/cell", "backward_layer/cell"]
        default: return nil
        }
    }

    /// One `inbound_nodes` entry (Keras 3 format) for a call.
    static func node(_ call: KerasNodeCall, className: String, shapes: Shapes) -> JSON {
        let tensors = call.inputs.map { r -> JSON in
            let t = shapes.tensors["\(r.layer):\(r.nodeIndex):\(r.tensorIndex)"]
            return .object([("class_name", .string("__keras_tensor__")),
                            ("config", .object([("shape", t?.shape ?? .null), ("dtype", .string(t?.dtype ?? "float32")),
                                                ("keras_history", .array([.string(r.layer), .number(Double(r.nodeIndex)),
                                                                          .number(Double(r.tensorIndex))]))]))])
        }
        let args: [JSON] = ((tensors.count == 1 && !listCallClasses.contains(className)) || positionalCallClasses.contains(className))
            ? tensors : [.array(tensors)]
        var kwargs: [(String, JSON)] = []
        for (k, r) in call.kwargs {
            let t = shapes.tensors["\(r.layer):\(r.nodeIndex):\(r.tensorIndex)"]
            kwargs.append((k, .object([("class_name", .string("__keras_tensor__")),
                                       ("config", .object([("shape", t?.shape ?? .null), ("dtype", .string(t?.dtype ?? "float32")),
                                                           ("keras_history", .array([.string(r.layer), .number(Double(r.nodeIndex)),
                                                                                     .number(Double(r.tensorIndex))]))]))])))
        }
        return .object([("args", .array(args)), ("kwargs", .object(kwargs))])
    }

    /// Shapes found by building the spec into Kiln's graph.
    struct Shapes {
        /// Layer name -> the `build_config` input shape of its first call.
        var byLayer: [String: JSON] = [:]
        /// "layer:node:tensor" -> shape and dtype.
        var tensors: [String: (shape: JSON, dtype: String)] = [:]
        /// A Sequential model's input shape.
        var modelInput: JSON? = nil
    }

    static func shapeJSON(_ t: TensorType) -> JSON {
        .array(t.shape.map { d in d.fixedValue.map { JSON.number(Double($0)) } ?? .null })
    }

    /// Builds the spec (validating it as the reader would) and collects each
    /// layer's input shapes.
    static func inputShapes(_ spec: KerasModelSpec, display: String) throws -> Shapes {
        let model: Model
        do {
            model = try KerasGraphBuilder.build(spec, file: display)
        } catch let e as KerasImportError {
            throw KerasSaveError("cannot save: \(e.description)")
        } catch {
            throw KerasSaveError("\(display): cannot save the model (\(error)).")
        }
        let g = model.graph
        var s = Shapes()
        func info(_ v: Value) -> (shape: JSON, dtype: String) {
            let t = g.type(v)
            return (shapeJSON(t), t.dtype == .i32 ? "int32" : "float32")
        }
        switch spec.kind {
        case .sequential:
            guard var prev = g.inputs.first else { return s }
            s.modelInput = shapeJSON(g.type(prev))
            for l in model.layers where l.className != "InputLayer" {
                s.byLayer[l.name] = s.byLayer[l.name] ?? shapeJSON(g.type(prev))
                if let out = l.outputs.first { prev = out }
            }
        case .functional:
            var outputsByLayer: [String: [Value]] = [:]
            for l in model.layers { outputsByLayer[l.name, default: []] += l.outputs }
            // A layer's outputs are its calls' in order, each call's outputs together (several with
            // return_state or Bidirectional's merge_mode None).
            let callCounts = Dictionary(spec.layers.map { ($0.name, max($0.calls.count, 1)) }, uniquingKeysWith: { a, _ in a })
            for (name, outs) in outputsByLayer {
                let perCall = max(outs.count / (callCounts[name] ?? 1), 1)
                for (k, v) in outs.enumerated() { s.tensors["\(name):\(k / perCall):\(k % perCall)"] = info(v) }
            }
            for l in spec.layers where l.className != "InputLayer" {
                guard let call = l.calls.first else { continue }
                let shapes = call.inputs.map { s.tensors["\($0.layer):\($0.nodeIndex):\($0.tensorIndex)"]?.shape ?? .null }
                s.byLayer[l.name] = (shapes.count == 1 && !listCallClasses.contains(l.className)) ? shapes[0] : .array(shapes)
            }
        }
        return s
    }

    // MARK: - JSON text

    /// Config keys whose values Keras holds as Python floats: an integral
    /// value there is written `1.0`, not `1` (Keras' SGD, for one, refuses
    /// an integer momentum).
    public static let floatKeys: Set<String> = [
        "learning_rate", "momentum", "rho", "epsilon", "beta_1", "beta_2", "initial_accumulator_value", "weight_decay",
        "clipnorm", "clipvalue", "global_clipnorm", "ema_momentum", "loss_scale_factor", "rate", "negative_slope",
        "alpha", "threshold", "max_value", "label_smoothing", "minval", "maxval", "mean", "stddev", "loss_weights",
    ]

    /// JSON text as Python's `json.dumps` writes it, with integral values under `floatKeys`
    /// written as floats.
    public static func serialize(_ v: JSON) -> String { v.serialized(floatKeys: floatKeys) }

    // MARK: - model.weights.h5

    /// The h5 image of the spec's weights.
    static func weightsH5(_ spec: KerasModelSpec, display: String) throws -> [UInt8] {
        var layerNames: [String] = []
        var layerClasses: [String] = []
        var layerWeights: [[KerasWeight]] = []
        for (i, l) in spec.layers.enumerated() {
            // A Sequential model's leading InputLayer is not in `model.layers`.
            if spec.kind == .sequential, i == 0, l.className == "InputLayer" { continue }
            layerNames.append(l.name); layerClasses.append(l.className); layerWeights.append(l.weights)
        }
        let keys = KerasArchive.containerKeys(layerClasses)
        var optimizerName: String? = nil
        if let cc = spec.compileConfig, !cc.isNull, let opt = cc["optimizer"], !opt.isNull {
            optimizerName = opt["config"]?["name"]?.string
                ?? (opt["class_name"]?.string ?? opt.string).map { KerasArchive.snakeCase($0) } ?? "optimizer"
        }
        for (w, name) in zip(layerWeights, layerNames) {
            for x in w where x.values.count != x.shape.reduce(1, *) || x.shape.contains(where: { $0 < 0 }) {
                throw KerasSaveError("\(display): a weight of layer '\(name)' holds \(x.values.count) values for shape \(x.shape).")
            }
        }
        return try HDF5Lib.withLock { () throws -> [UInt8] in
            let w = try H5Writer(display: display)
            defer { w.close() }
            let layers = try w.group(w.file, "layers")
            defer { H5Gclose(layers) }
            for (k, key) in keys.enumerated() {
                let lg = try w.group(layers, key)
                defer { H5Gclose(lg) }
                let vars = try w.group(lg, "vars")
                defer { H5Gclose(vars) }
                try w.stringAttribute(vars, "name", layerNames[k])
                if let groups = weightGroups(layerClasses[k]), layerWeights[k].count % groups.count == 0 {
                    let share = layerWeights[k].count / groups.count
                    for (j, sub) in groups.enumerated() {
                        let parts = sub.split(separator: "/").map(String.init)
                        var sg = lg
                        var opened: [hid_t] = []
                        defer { opened.reversed().forEach { H5Gclose($0) } }
                        for (i, part) in parts.enumerated() {
                            // A group the previous share made (Bidirectional's two halves share no level here).
                            sg = H5Lexists(sg, part, 0) > 0 ? H5Gopen2(sg, part, 0) : try w.group(sg, part)
                            guard sg >= 0 else { throw KerasSaveError("\(display): cannot write the weights of '\(layerNames[k])'.") }
                            opened.append(sg)
                            if i < parts.count - 1, H5Lexists(sg, "vars", 0) <= 0 { H5Gclose(try w.group(sg, "vars")) }
                        }
                        let sv = try w.group(sg, "vars")
                        defer { H5Gclose(sv) }
                        for (i, x) in layerWeights[k][(j * share)..<((j + 1) * share)].enumerated() {
                            try w.floatDataset(sv, String(i), shape: x.shape, values: x.values)
                        }
                    }
                    continue
                }
                for (i, x) in layerWeights[k].enumerated() {
                    try w.floatDataset(vars, String(i), shape: x.shape, values: x.values)
                }
            }
            if let opt = optimizerName {
                let og = try w.group(w.file, "optimizer")
                defer { H5Gclose(og) }
                let ov = try w.group(og, "vars")
                defer { H5Gclose(ov) }
                try w.stringAttribute(ov, "name", opt)
            }
            let top = try w.group(w.file, "vars")
            defer { H5Gclose(top) }
            try w.stringAttribute(top, "name", spec.name)
            return try w.image()
        }
    }
}

/// A new HDF5 file held in memory (core driver, no backing store). Use with
/// `HDF5Lib.lock` held.
private final class H5Writer {
    let display: String
    var file: hid_t = -1

    init(display: String) throws {
        self.display = display
        let fapl = H5Pcreate(H5P_CLS_FILE_ACCESS_ID_g)
        guard fapl >= 0 else { throw KerasSaveError("\(display): libhdf5 cannot make a file (property list).") }
        defer { H5Pclose(fapl) }
        guard H5Pset_fapl_core(fapl, 64 << 10, false) >= 0 else {
            throw KerasSaveError("\(display): libhdf5 cannot make an in-memory file.")
        }
        // A unique name: libhdf5 refuses to truncate a file it holds open.
        file = H5Fcreate("kiln-save-\(UUID().uuidString).h5", 2 /* H5F_ACC_TRUNC */, 0, fapl)
        guard file >= 0 else { throw KerasSaveError("\(display): libhdf5 cannot make the weights file.") }
    }

    func close() {
        if file >= 0 { H5Fclose(file); file = -1 }
    }

    func fail(_ what: String) -> KerasSaveError {
        KerasSaveError("\(display): libhdf5 failed to write \(what) in model.weights.h5.")
    }

    func group(_ parent: hid_t, _ name: String) throws -> hid_t {
        let g = H5Gcreate2(parent, name, 0, 0, 0)
        guard g >= 0 else { throw fail("group '\(name)'") }
        return g
    }

    /// A scalar variable-length UTF-8 string attribute, as h5py writes `attrs[k] = "..."`.
    func stringAttribute(_ obj: hid_t, _ name: String, _ value: String) throws {
        let tid = H5Tcopy(H5T_C_S1_g)
        guard tid >= 0 else { throw fail("attribute '\(name)'") }
        defer { H5Tclose(tid) }
        guard H5Tset_size(tid, -1 /* H5T_VARIABLE */) >= 0, H5Tset_cset(tid, H5T_CSET_UTF8) >= 0 else {
            throw fail("attribute '\(name)'")
        }
        let sid = H5Screate(H5S_SCALAR)
        guard sid >= 0 else { throw fail("attribute '\(name)'") }
        defer { H5Sclose(sid) }
        let aid = H5Acreate2(obj, name, tid, sid, 0, 0)
        guard aid >= 0 else { throw fail("attribute '\(name)'") }
        defer { H5Aclose(aid) }
        let rc = value.withCString { cstr -> herr_t in
            var ptr: UnsafePointer<CChar>? = cstr
            return withUnsafeMutablePointer(to: &ptr) { H5Awrite(aid, tid, $0) }
        }
        guard rc >= 0 else { throw fail("attribute '\(name)'") }
    }

    /// A float32 (little-endian IEEE) dataset; rank 0 for a scalar.
    func floatDataset(_ parent: hid_t, _ name: String, shape: [Int], values: [Float]) throws {
        let sid: hid_t
        if shape.isEmpty {
            sid = H5Screate(H5S_SCALAR)
        } else {
            let dims = shape.map { hsize_t($0) }
            sid = H5Screate_simple(Int32(dims.count), dims, nil)
        }
        guard sid >= 0 else { throw fail("the shape of dataset '\(name)'") }
        defer { H5Sclose(sid) }
        let did = H5Dcreate2(parent, name, H5T_IEEE_F32LE_g, sid, 0, 0, 0)
        guard did >= 0 else { throw fail("dataset '\(name)'") }
        defer { H5Dclose(did) }
        if values.isEmpty { return }
        let rc = values.withUnsafeBytes { H5Dwrite(did, H5T_NATIVE_FLOAT_g, 0, 0, 0, $0.baseAddress) }
        guard rc >= 0 else { throw fail("dataset '\(name)'") }
    }

    /// The finished file's bytes.
    func image() throws -> [UInt8] {
        guard H5Fflush(file, H5F_SCOPE_GLOBAL) >= 0 else { throw fail("the file") }
        let size = H5Fget_file_image(file, nil, 0)
        guard size > 0 else { throw fail("the file image") }
        var out = [UInt8](repeating: 0, count: size)
        let got = out.withUnsafeMutableBytes { H5Fget_file_image(file, $0.baseAddress, size) }
        guard got == size else { throw fail("the file image") }
        return out
    }
}
