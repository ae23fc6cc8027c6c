// The layer table's contract. A Keras layer (or a family of them) is one value type
// conforming to `LayerKind`, declared in one file of Sources/KilnLayers/Layers/ together
// with its Swift API class, and listed once in `LayerTable.kinds`. Everything the rest of
// Kiln knows about the layer comes from here:
//   import      `kerasClasses`, `init(keras:)`   (config keys, Keras' defaults, refusals)
//   weights     `weights(for:)`                  (names, shapes, get_weights() order, initialisers, trainable)
//   shapes      `infer(_:layer:)`                (errors name the layer and both shapes)
//   masks       `consumingMask()`, `outputMask`  (pass on, drop, consume, make)
//   lowering    `lower(_:_:_:)`                  (training form; inference form by Graph.inferenceForms,
//                                                state writes by Graph.stateUpdates, loss terms by Graph.lossTerms)
//   printing    `description`, summary row       (`kerasClass`)
//   writing     `kerasConfig()`                  (the .keras writer's config keys)
// The graph holds a layer as `LayerOp.table(AnyLayer)`; shape inference, the printer, mask
// propagation and lowering dispatch through the protocol and have no per-layer code.

import KilnSupport

/// One Keras layer kind: its settings (the stored properties) and its rules.
public protocol LayerKind: Hashable, Sendable, CustomStringConvertible {
    /// The Keras class names this kind imports (the first is the one it writes).
    static var kerasClasses: [String] { get }

    /// The settings from a Keras config, with Keras' defaults for missing keys; an option
    /// Kiln does not support is refused by `config.fail`, naming the layer and the option.
    init(keras config: KerasConfig) throws

    /// The Keras class of this value (summary rows, messages, the writer).
    var kerasClass: String { get }

    /// How many data inputs a call takes (merge layers: 2 or more; attention: 2 or 3).
    var arity: ClosedRange<Int> { get }

    /// The weights a layer with these data input types makes, in Keras' `get_weights()` order.
    /// A refusal is a ShapeError whose `layer` the caller replaces by the layer's name.
    func weights(for inputs: [TensorType]) throws -> [LayerWeight]

    /// Output types from the data inputs, then the weights, then the mask if `consumingMask()`
    /// made this value. `layer` is "Class 'name'", for messages.
    func infer(_ ins: [TensorType], layer: String) throws -> [TensorType]

    /// A copy that takes the incoming mask as its last input, or nil when the layer does not
    /// read the mask (it then only decides the output's mask, by `outputMask`) or this value
    /// already takes one (a Functional model's file passed it explicitly).
    func consumingMask() -> Self?

    /// For a layer that reads the masks of several data inputs (attention: the query's and the
    /// value's): a copy that takes the masks it reads as its last inputs, in input order, and the
    /// data inputs they belong to; `present[k]` says whether data input k has a mask. nil: it
    /// takes none. The default takes the first input's mask by `consumingMask()`.
    func consumingMasks(_ present: [Bool]) -> (kind: any LayerKind, inputs: [Int])?

    /// Keyword tensor arguments of a Keras call that the layer takes as further data inputs, after
    /// the positional ones and in this order (MultiHeadAttention: attention_mask).
    static var tensorKeywords: [String] { get }

    /// Whether the layer removes the masks of the tensors it is called on, so that layers using
    /// them after it see none (Keras 3's MultiHeadAttention does: `set_keras_mask(x, None)`).
    var clearsInputMasks: Bool { get }

    /// Keras' `supports_masking` for layers with no mask rule of their own: the first input's
    /// mask goes on (see `outputMask`'s default).
    var supportsMasking: Bool { get }

    /// The mask of the first output, from the masks of the data inputs (nil: none). Keras'
    /// `compute_mask`; the default passes the mask on when `supportsMasking` and drops it otherwise.
    func outputMask(_ b: inout PrimBuilder, inputs: [Value], masks: [Value?], outputs: [Value]) throws -> Value?

    /// How many leading outputs carry the mask `outputMask` gives (1; Bidirectional with
    /// merge_mode None: 2, its forward and backward outputs).
    var maskedOutputCount: Int { get }

    /// The layer in primitives, in its training form (inputs: data, weights, [mask]). What
    /// differs in inference is recorded in `b.graph.inferenceForms`; state the training step
    /// writes besides the optimizer (BatchNormalization's moving statistics) in
    /// `b.graph.stateUpdates`; scalars added to the loss (activity regularization) in
    /// `b.graph.lossTerms`.
    func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value]

    /// The Keras config keys after name, trainable and dtype, in Keras' order.
    func kerasConfig() -> [(String, JSON)]

    /// Whether the writer puts `trainable` in the config (Keras' SpatialDropout constructors
    /// take none, and refuse a config that has it).
    var configHasTrainable: Bool { get }

    /// Whether the layer reads a time axis (batch, time, ...): refused on a 2-D input, it is
    /// told which earlier layer dropped that axis (Diagnosis.swift).
    var needsTimeAxis: Bool { get }

    /// What to tell a user whose sequence `before` (rank 3 or more) this layer, named `name`,
    /// turned into the 2-D `after`; nil for the generic advice (wrap it in TimeDistributed).
    func droppedTimeAxisHint(name: String, before: TensorType, after: TensorType) -> String?

    /// Why a model with this layer cannot be trained by Kiln yet (nil: it can); compiling for
    /// prediction still works.
    var trainingRefusal: String? { get }
}

extension LayerKind {
    public var kerasClass: String { Self.kerasClasses[0] }
    public var arity: ClosedRange<Int> { 1...1 }
    public func weights(for inputs: [TensorType]) throws -> [LayerWeight] { [] }
    public func consumingMask() -> Self? { nil }
    public var needsTimeAxis: Bool { false }
    public var trainingRefusal: String? { nil }
    public func droppedTimeAxisHint(name: String, before: TensorType, after: TensorType) -> String? { nil }
    public var clearsInputMasks: Bool { false }
    public var maskedOutputCount: Int { 1 }
    public static var tensorKeywords: [String] { [] }
    public func consumingMasks(_ present: [Bool]) -> (kind: any LayerKind, inputs: [Int])? {
        guard present.first == true, let k = consumingMask() else { return nil }
        return (k, [0])
    }
    public var supportsMasking: Bool { false }
    public var configHasTrainable: Bool { true }
    /// Keras' rule: a layer with `supports_masking` passes the mask on, any other stops it here.
    public func outputMask(_ b: inout PrimBuilder, inputs: [Value], masks: [Value?], outputs: [Value]) throws -> Value? {
        supportsMasking ? passOnMask(b, masks: masks, outputs: outputs) : nil
    }

    /// Keras' rule for layers with `supports_masking`: the first input's mask goes on while the
    /// output still has its time axis.
    public func passOnMask(_ b: PrimBuilder, masks: [Value?], outputs: [Value]) -> Value? {
        guard let m = masks.first ?? nil, let out = outputs.first, b.type(out).rank >= 3 else { return nil }
        return m
    }
}

/// What lowering passes to every layer.
public struct LoweringContext {
    /// Bumped for each random draw, so that every draw of a program is different.
    public var salt = 0
    public init(salt: Int = 0) { self.salt = salt }
    public mutating func nextSalt() -> Int { salt += 1; return salt }
}

/// One weight of a layer, as Keras makes it.
public struct LayerWeight: Hashable, Sendable {
    /// Keras' variable name: "kernel", "bias", "gamma", "moving_mean".
    public var name: String
    public var shape: [Int]
    public var initializer: WeightInit
    /// False for weights training does not change by gradient (BatchNormalization's moving
    /// statistics); a frozen layer (trainable=False) makes all of them non-trainable.
    public var trainable: Bool
    public init(_ name: String, _ shape: [Int], _ initializer: WeightInit = .glorotUniform, trainable: Bool = true) {
        self.name = name; self.shape = shape; self.initializer = initializer; self.trainable = trainable
    }
}

/// How a weight starts when the Swift API builds a layer, as Keras' initialisers.
public enum WeightInit: Hashable, Sendable {
    /// Uniform in ±sqrt(6 / (fan_in + fan_out)) (Keras' default kernel initialiser).
    case glorotUniform
    case zeros
    case ones
    /// Uniform in ±limit (Keras' `RandomUniform(-limit, limit)`; Embedding uses 0.05).
    case uniform(Float)
    case constant(Float)
    /// A random orthogonal matrix (Keras' `Orthogonal`, recurrent kernels).
    case orthogonal
    /// Zeros but ones for the forget gate's block, the second of four (LSTM's unit_forget_bias).
    case unitForgetBias
}

/// A layer of the table, as a `LayerOp` holds it.
public struct AnyLayer: Hashable, Sendable, CustomStringConvertible {
    public let kind: any LayerKind
    public init(_ kind: any LayerKind) { self.kind = kind }
    public static func == (a: AnyLayer, b: AnyLayer) -> Bool { AnyHashable(a.kind) == AnyHashable(b.kind) }
    public func hash(into h: inout Hasher) { h.combine(AnyHashable(kind)) }
    public var description: String { kind.description }
}

extension LayerKind {
    /// This layer as a graph op.
    public var op: LayerOp { .table(AnyLayer(self)) }
}

/// A Keras layer's config, read for `LayerKind.init(keras:)`: typed getters with Keras'
/// defaults, and refusals that name the file, the layer and the key.
public struct KerasConfig {
    /// The layer's name and Keras class.
    public var name: String
    public var className: String
    public var json: JSON
    /// The model file, for messages ("model.keras"); empty for the Swift API.
    public var file: String

    public init(name: String, className: String, json: JSON, file: String) {
        self.name = name; self.className = className; self.json = json; self.file = file
    }

    public subscript(key: String) -> JSON? { json[key] }

    /// A key that is absent or null.
    public func isAbsent(_ key: String) -> Bool { json[key] == nil || json[key]?.isNull == true }

    /// The error for this layer: "FILE: layer 'NAME' (CLASS) MESSAGE".
    public func fail(_ message: String) -> LayerConfigError {
        LayerConfigError("\(file.isEmpty ? "" : file + ": ")layer '\(name)' (\(className)) \(message)")
    }

    public func int(_ key: String, _ fallback: Int? = nil) throws -> Int {
        if let v = json[key]?.int { return v }
        if let f = fallback, isAbsent(key) { return f }
        throw fail("has no integer '\(key)' in its config")
    }

    /// An integer that must be at least 1 (units, filters, sizes).
    public func positive(_ key: String, _ fallback: Int? = nil) throws -> Int {
        let v = try int(key, fallback)
        guard v >= 1 else { throw fail("has \(key)=\(v); expected a positive integer") }
        return v
    }

    public func float(_ key: String, _ fallback: Float? = nil) throws -> Float {
        if let v = json[key]?.float { return v }
        if let f = fallback, isAbsent(key) { return f }
        throw fail("has no number '\(key)' in its config")
    }

    public func bool(_ key: String, _ fallback: Bool) throws -> Bool {
        if let v = json[key]?.bool { return v }
        if isAbsent(key) { return fallback }
        throw fail("has '\(key)' \(json[key]!.serialized); expected true or false")
    }

    public func string(_ key: String, _ fallback: String? = nil) throws -> String {
        if let v = json[key]?.string { return v }
        if let f = fallback, isAbsent(key) { return f }
        throw fail("has no string '\(key)' in its config")
    }

    /// A string among `allowed` (Keras' spelling).
    public func choice(_ key: String, _ allowed: [String], _ fallback: String) throws -> String {
        let v = try string(key, fallback)
        guard allowed.contains(v) else {
            throw fail("has \(key) '\(v)'; Kiln supports \(allowed.map { "'\($0)'" }.joined(separator: ", "))")
        }
        return v
    }

    /// `count` positive integers, given as a list of that length or one integer for all
    /// (kernel_size, strides, pool_size, dilation_rate).
    public func sizes(_ key: String, count: Int, _ fallback: [Int]? = nil, minimum: Int = 1) throws -> [Int] {
        var v: [Int]
        if let list = json[key]?.ints { v = list.count == 1 ? Array(repeating: list[0], count: count) : list }
        else if let one = json[key]?.int { v = Array(repeating: one, count: count) }
        else if let f = fallback, isAbsent(key) { v = f }
        else { throw fail("has no '\(key)' in its config") }
        guard v.count == count, v.allSatisfy({ $0 >= minimum }) else {
            throw fail("has \(key) \(v); expected \(count == 1 ? "an integer" : "\(count) integers") >= \(minimum)")
        }
        return v
    }

    /// A key that must hold Keras' default (an option Kiln does not implement): refused
    /// naming the value found and the supported one.
    public func require(_ key: String, _ supported: JSON, _ what: String? = nil) throws {
        guard let v = json[key], !v.isNull else { return }
        if v != supported && !(v.float != nil && v.float == supported.float) {
            throw fail("uses \(key)=\(v.serialized); Kiln supports \(what ?? supported.serialized)")
        }
    }

    /// An activation by Keras name (a string, or a serialized activation object).
    public func activation(_ key: String = "activation", _ fallback: Activation = .linear) throws -> Activation {
        guard let j = json[key], !j.isNull else { return fallback }
        let raw = j.string ?? j["config"]?["name"]?.string ?? j["class_name"]?.string ?? "?"
        let aliases = ["swish": "silu", "hard_swish": "hard_silu"]
        guard let a = Activation(rawValue: aliases[raw] ?? raw) else {
            throw fail("uses \(key) '\(raw)', which Kiln does not know; known: \(Activation.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return a
    }

    /// data_format: only channels_last is compiled.
    public func channelsLast() throws {
        if let f = json["data_format"]?.string, f != "channels_last" {
            throw fail("uses data_format '\(f)'; Kiln supports 'channels_last'")
        }
    }
}

/// A layer config Kiln cannot import: one sentence naming the layer and the key.
public struct LayerConfigError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// JSON values for `kerasConfig()`.
public enum KerasJSON {
    public static func int(_ v: Int) -> JSON { .number(Double(v)) }
    public static func ints(_ v: [Int]) -> JSON { .array(v.map { .number(Double($0)) }) }
    /// A float32 setting written as Keras writes it (0.1, not 0.10000000149).
    public static func float(_ v: Float) -> JSON { .number(Double("\(v)") ?? Double(v)) }
    /// A Keras initializer object by class name.
    public static func initializer(_ cls: String, _ config: [(String, JSON)] = []) -> JSON {
        .object([("module", .string("keras.initializers")), ("class_name", .string(cls)),
                 ("config", .object(config)), ("registered_name", .null)])
    }
    public static let glorotUniform = initializer("GlorotUniform", [("seed", .null)])
    /// The float32 dtype policy Keras writes for every layer.
    public static let dtypePolicy = JSON.object([("module", .string("keras")), ("class_name", .string("DTypePolicy")),
                                                 ("config", .object([("name", .string("float32"))])), ("registered_name", .null)])
    /// The module a layer class is saved under.
    public static func module(_ cls: String) -> String { cls == "CRF" ? "kiln_crf" : "keras.layers" }
    /// The name a layer class is registered under outside Keras (null for Keras' own).
    public static func registeredName(_ cls: String) -> JSON { cls == "CRF" ? .string("kiln_crf>CRF") : .null }
    public static let zeros = initializer("Zeros")
    public static let ones = initializer("Ones")
}
