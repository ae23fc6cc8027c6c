import KilnIR
import KilnSupport
import KilnLayers

/// Builds Kiln's layer graph from a Keras model file's spec: each layer's kind (the layer
/// table, KilnLayers) reads its config keys and says its weights. Everything is validated
/// here; nothing from the file is executed.
public enum KerasGraphBuilder {
    /// Keras classes Kiln imports.
    public static var supported: [String] { LayerTable.byKerasClass.keys.sorted() }

    public static func build(_ spec: KerasModelSpec, file: String) throws -> Model {
        var b = Builder(file: file, graph: Graph(name: spec.name))
        try b.run(spec)
        let training = try spec.compileConfig.flatMap { try KerasCompileConfig.parse($0, outputNames: b.graph.outputNames, file: file) }
        var model = Model(graph: b.graph, layers: b.layers, training: training, isSequential: spec.kind == .sequential)
        model.optimizerParamCount = spec.optimizerParamCount
        if model.training != nil, spec.optimizerVars.count >= 2 {
            // vars/0 is Keras' iteration count, vars/1 its learning rate; the slots follow.
            guard spec.optimizerVars[0].count == 1, spec.optimizerVars[1].count == 1 else {
                throw KerasImportError("\(file): the saved optimizer variables do not start with the iteration count and the learning rate, so Kiln cannot resume from them.")
            }
            // A model saved before any step (compile without fit) keeps a fresh state.
            let iterations = Int(spec.optimizerVars[0][0].rounded())
            if iterations > 0 {
                model.training!.optimizer.resume = OptimizerResume(iterations: iterations, slots: Array(spec.optimizerVars.dropFirst(2)))
            }
        }
        return model
    }

    /// The layer being imported: its spec (config and weights) and the file, for messages.
    struct Context {
        var layer: KerasLayerSpec
        var file: String
        var config: JSON { layer.config }
        func fail(_ msg: String) -> KerasImportError {
            KerasImportError("\(file): layer '\(layer.name)' (\(layer.className)) \(msg)")
        }

        /// The largest size a layer's config may give (units, strides, paddings, shapes,
        /// axes): Keras' shapes are 32-bit on JAX's default, and Kiln's shape arithmetic stays
        /// far from 64-bit overflow below it.
        static let maxConfigSize = Int(Int32.max)

        /// The config keys that hold sizes, shapes or axes (integers, or lists of them). Float
        /// keys (a Normalization layer's variance, a ReLU's max_value) may hold any number.
        static let sizeKeys: Set<String> = [
            "batch_shape", "batch_input_shape", "input_shape", "shape", "units", "filters", "kernel_size",
            "strides", "dilation_rate", "pool_size", "size", "padding", "cropping", "output_padding",
            "target_shape", "n", "input_dim", "output_dim", "input_length", "num_heads", "key_dim",
            "value_dim", "groups", "depth_multiplier", "dims", "axis", "axes", "attention_axes",
            "shared_axes", "num_tokens", "max_tokens", "sequence_length", "output_shape", "repeats",
        ]

        /// Refuses a size beyond ±`maxConfigSize` in the config (a crafted or mistaken file),
        /// naming the key, before any shape is computed from it.
        func checkIntegers() throws {
            func walk(_ j: JSON, _ key: String?) throws {
                switch j {
                case .number(let d):
                    if let key, d.magnitude > Double(Context.maxConfigSize) {
                        let text = d.magnitude < 9.2e18 && d == d.rounded() ? String(Int(d)) : j.serialized
                        throw fail("has \(key) \(text); Kiln takes sizes up to \(Context.maxConfigSize)")
                    }
                case .array(let a): for v in a { try walk(v, key) }
                case .object(let o): for (k, v) in o { try walk(v, Context.sizeKeys.contains(k) ? k : nil) }
                default: break
                }
            }
            try walk(config, nil)
        }
    }

    struct Builder {
        var file: String
        var graph: Graph
        var layers: [LayerInfo] = []
        var tensors: [String: [Value]] = [:]   // "layer:node" -> outputs

        mutating func run(_ spec: KerasModelSpec) throws {
            var last: Value? = nil
            var lastName = ""
            var lastOutputs: [Value]? = nil   // every output of the last layer (more than one with return_state)
            for layer in spec.layers {
                let c = Context(layer: layer, file: file)
                try c.checkIntegers()
                if layer.className == "InputLayer" {
                    let v = try input(c)
                    tensors["\(layer.name):0"] = [v]
                    last = v; lastName = layer.name
                    layers.append(LayerInfo(name: layer.name, className: "InputLayer", outputs: [v], paramCount: 0, trainableCount: 0, inbound: []))
                    continue
                }
                if spec.kind == .sequential {
                    if last == nil {
                        // A Sequential model without an InputLayer: its first layer carries batch_shape.
                        guard let shape = layer.config["batch_shape"]?.intsOrNulls ?? layer.config["batch_input_shape"]?.intsOrNulls else {
                            throw c.fail("comes first but the model has no input shape")
                        }
                        last = try addInput(c, name: "input", shape: shape, dtype: layer.config["dtype"]?.string ?? "float32")
                        lastName = "input"
                    }
                    if let prev = lastOutputs, prev.count > 1 {
                        throw c.fail("follows layer '\(lastName)', which returns \(prev.count) tensors (return_state=True); in a Sequential model only the last layer may, use the functional API to pass one of them on")
                    }
                    let outs = try apply(c, inputs: [last!], inbound: ["\(lastName)[0][0]"])
                    tensors["\(layer.name):0"] = outs
                    last = outs[0]; lastName = layer.name; lastOutputs = outs
                } else {
                    for (k, call) in layer.calls.enumerated() {
                        // Keyword tensors a table layer takes as further data inputs (MultiHeadAttention's attention_mask).
                        let keywords = LayerTable.byKerasClass[layer.className]?.tensorKeywords ?? []
                        let other = call.kwargs.filter {
                            ($0.0 != "mask" || LayerTable.byKerasClass[layer.className] == nil) && !keywords.contains($0.0)
                        }
                        if !other.isEmpty {
                            throw c.fail("is called with \(other.map(\.0).joined(separator: ", ")) arguments, which Kiln does not support yet")
                        }
                        var ins = try call.inputs.map { try resolve($0, c) }
                        for key in keywords { if let r = call.kwargs.first(where: { $0.0 == key }) { ins.append(try resolve(r.1, c)) } }
                        if let out = try maskOp(c, call: k, inputs: ins) {
                            tensors["\(layer.name):\(k)"] = [out]
                            continue
                        }
                        // mask= one tensor, or a list with one entry per input (None where an input has none).
                        var masks: [Value?] = []
                        if let raw = layer.rawCallArguments(k)?.kwargs.first(where: { $0.0 == "mask" })?.1, let list = raw.array {
                            masks = try list.map { j in try j.kerasTensorRef.map { try resolve($0, c) } }
                        } else if let m = try call.kwargs.first(where: { $0.0 == "mask" }).map({ try resolve($0.1, c) }) {
                            masks = [m]
                        }
                        tensors["\(layer.name):\(k)"] = try apply(c, inputs: ins, inbound: call.inputs.map { "\($0.layer)[\($0.nodeIndex)][\($0.tensorIndex)]" }, masks: masks)
                    }
                }
            }
            if spec.kind == .sequential {
                guard let out = last else { throw KerasImportError("\(file): the model has no layers") }
                let name = spec.layers.last?.name ?? "output"
                for (k, v) in (lastOutputs ?? [out]).enumerated() { graph.addOutput(v, name: k == 0 ? name : "\(name)_\(k)") }
            } else {
                graph.inputs = []
                graph.inputNames = []
                // Model inputs in the order of input_layers.
                var inputs: [(Value, String)] = []
                for r in spec.inputs { inputs.append((try resolve(r, nil), r.layer)) }
                graph.inputs = inputs.map(\.0)
                graph.inputNames = inputs.map(\.1)
                for r in spec.outputs {
                    // A layer's further outputs (return_state) are told apart by their index.
                    graph.addOutput(try resolve(r, nil), name: r.tensorIndex == 0 ? r.layer : "\(r.layer)_\(r.tensorIndex)")
                }
            }
        }

        func resolve(_ r: KerasTensorRef, _ c: Context?) throws -> Value {
            guard let outs = tensors["\(r.layer):\(r.nodeIndex)"], r.tensorIndex < outs.count else {
                throw KerasImportError("\(file): \(c.map { "layer '\($0.layer.name)' " } ?? "the model ")refers to tensor \(r.layer)[\(r.nodeIndex)][\(r.tensorIndex)], which no earlier layer produces")
            }
            return outs[r.tensorIndex]
        }

        mutating func input(_ c: Context) throws -> Value {
            guard let shape = c.config["batch_shape"]?.intsOrNulls ?? c.config["batch_input_shape"]?.intsOrNulls else {
                throw c.fail("has no batch_shape")
            }
            let dtype = c.config["dtype"]?.string ?? c.config["dtype"]?["config"]?["name"]?.string ?? "float32"
            return try addInput(c, name: c.layer.name, shape: shape, dtype: dtype)
        }

        mutating func addInput(_ c: Context, name: String, shape: [Int?], dtype: String) throws -> Value {
            guard shape.count >= 2, shape[0] == nil || shape[0]! > 0 else { throw c.fail("has input shape \(shape); Kiln needs (None, ...) with a batch dimension first") }
            if let batch = shape[0] {
                // A fixed batch size (batch_shape (B, ...)): stateful recurrent layers carry B rows of state.
                if let other = graph.batchSize, other != batch {
                    throw c.fail("has batch size \(batch) but another input has \(other); a model's inputs share one batch size")
                }
                graph.batchSize = batch
            }
            let text = "(" + shape.map { $0.map(String.init) ?? "None" }.joined(separator: ", ") + ")"
            let dims = try shape.dropFirst().enumerated().map { k, d -> Dim in
                // Axis 1 may be free: sequences of any length (the number of time steps is given with each call).
                if d == nil && k == 0 && shape.count <= 3 { return .t }
                guard let d, d > 0 else {
                    throw c.fail("has input shape \(text); Kiln takes a free (None) size only on the time axis of (None, None) token ids or (None, None, features) sequences")
                }
                return .fixed(d)
            }
            let t: DType
            switch dtype {
            case "float32", "float64", "float16", "bfloat16": t = .f32
            case "int32", "int64", "int16", "int8", "uint8": t = .i32
            default: throw c.fail("has input dtype '\(dtype)'; Kiln supports float and int inputs")
            }
            return graph.addInput(name, TensorType(t, [.n] + dims))
        }

        /// Keras ops that a Functional model saves for its masks: NotEqual(x, c), Any(x, axis).
        mutating func maskOp(_ c: Context, call: Int, inputs: [Value]) throws -> Value? {
            guard ["NotEqual", "Any", "LogicalOr"].contains(c.layer.className) else { return nil }
            if c.layer.className == "LogicalOr" {
                // Merge layers' masks (Keras' Merge.compute_mask): the OR of two boolean masks.
                guard inputs.count == 2, inputs.allSatisfy({ graph.type($0).dtype == .bool }) else {
                    throw c.fail("combines something other than two boolean masks; Kiln supports LogicalOr of masks")
                }
                let f = try inputs.map { try graph.prim(.cast(.f32), $0, layer: c.layer.name) }
                let zero = try graph.prim(.constant(0), layer: c.layer.name)
                return try graph.prim(.compare(.gt), try graph.prim(.binary(.max), f[0], f[1], layer: c.layer.name), zero, layer: c.layer.name)
            }
            guard let x = inputs.first, let raw = c.layer.rawCallArguments(call) else { throw c.fail("has no arguments") }
            if c.layer.className == "NotEqual" {
                guard raw.args.count == 2, let value = raw.args[1].float else {
                    throw c.fail("compares with something other than a constant; Kiln supports NotEqual(x, number)")
                }
                return try graph.add(.layer(.notEqual(value)), [x], layer: c.layer.name)[0]
            }
            // The axis may sit in the op's config, its call's positional arguments or its keywords.
            let axisJSON = c.config["axis"] ?? (raw.args.count > 1 ? raw.args[1] : raw.kwargs.first { $0.0 == "axis" }?.1)
            let keep = c.config["keepdims"]?.bool ?? raw.kwargs.first(where: { $0.0 == "keepdims" })?.1.bool ?? false
            let rank = graph.type(x).rank
            guard let a = axisJSON?.int, a == -1 || a == rank - 1, !keep else {
                throw c.fail("reduces over an axis other than the last; Kiln supports Any(x, axis=-1)")
            }
            return try graph.add(.layer(.anyLastAxis), [x], layer: c.layer.name)[0]
        }

        mutating func apply(_ c: Context, inputs: [Value], inbound: [String], masks: [Value?] = []) throws -> [Value] {
            if let kindType = LayerTable.byKerasClass[c.layer.className] {
                return try applyKind(kindType, c, inputs: inputs, inbound: inbound, masks: masks)
            }
            throw KerasImportError("\(file): layer '\(c.layer.name)' has class \(c.layer.className), which Kiln does not support; supported: \(KerasGraphBuilder.supported.joined(separator: ", "))")
        }

        /// A layer of the layer table: its kind reads the config and says its weights.
        mutating func applyKind(_ kindType: any LayerKind.Type, _ c: Context, inputs: [Value], inbound: [String], masks: [Value?]) throws -> [Value] {
            var kind: any LayerKind
            do {
                kind = try kindType.init(keras: KerasConfig(name: c.layer.name, className: c.layer.className, json: c.config, file: file))
            } catch let e as LayerConfigError {
                throw KerasImportError(e.description)
            }
            var extra: [Value] = []
            let given = masks.indices.filter { masks[$0] != nil }
            if !given.isEmpty {
                guard let (consuming, taken) = kind.consumingMasks(masks.map { $0 != nil }), taken.allSatisfy(given.contains) else {
                    throw c.fail("is given a mask, which it does not take")
                }
                kind = consuming; extra = taken.map { masks[$0]! }
            }
            let trainable = c.config["trainable"]?.bool ?? true
            var params: [Value] = []
            var count = 0, trainableCount = 0
            let shared = layers.contains { $0.name == c.layer.name }
            do {
                if shared {
                    params = graph.params.filter { $0.name.hasPrefix(c.layer.name + "/") }.map(\.value)
                } else {
                    let specs: [LayerWeight]
                    do { specs = try kind.weights(for: inputs.map { graph.type($0) }) } catch let e as ShapeError {
                        throw ShapeError(layer: "\(c.layer.className) '\(c.layer.name)'", e.message, hint: e.hint)
                    }
                    guard c.layer.weights.count == specs.count else {
                        throw c.fail("has \(c.layer.weights.count) weight arrays in the file; Kiln expects \(specs.count) (\(specs.map(\.name).joined(separator: ", ")))")
                    }
                    // The file's shapes go into the graph: a wrong input is refused by the layer's shape
                    // rule (with the graph's advice); what the rule lets through must still be the
                    // shapes the kind asks for (checked below).
                    for (w, spec) in zip(c.layer.weights, specs) {
                        let t = TensorType.f32(w.shape.map { .fixed($0) })
                        guard w.values.count == t.staticCount else { throw c.fail("weight '\(spec.name)' holds \(w.values.count) values for shape \(w.shape)") }
                        let train = trainable && spec.trainable
                        params.append(graph.addParam("\(c.layer.name)/\(spec.name)", t, initial: w.values, trainable: train))
                        count += w.values.count
                        if train { trainableCount += w.values.count }
                    }
                    try attachPenalties(c, params: params, weights: specs.map(\.name))
                }
                let outs = try graph.add(.layer(kind.op), inputs + params + extra, layer: c.layer.name)
                if !shared {
                    for (w, spec) in zip(c.layer.weights, try kind.weights(for: inputs.map { graph.type($0) })) where w.shape != spec.shape {
                        throw c.fail("has weight '\(spec.name)' of shape \(formatShape(w.shape)) in the file; for its input \(inputs.map { graph.type($0).kerasDescription }.joined(separator: ", ")) it needs \(formatShape(spec.shape))")
                    }
                }
                if let k = layers.firstIndex(where: { $0.name == c.layer.name }) {
                    layers[k].outputs += outs
                    layers[k].shared = true
                    layers[k].inbound += inbound
                } else {
                    layers.append(LayerInfo(name: c.layer.name, className: c.layer.className, outputs: outs, paramCount: count,
                                            trainableCount: trainableCount, inbound: inbound))
                }
                return try applyActivityRegularizer(c, outs)
            } catch let e as ShapeError {
                throw KerasImportError(e.description)
            }
        }
    }
}
