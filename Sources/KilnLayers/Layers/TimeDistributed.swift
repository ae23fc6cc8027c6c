// TimeDistributed: a layer applied to every time step of a sequence.

import KilnIR
import KilnSupport

/// x (N, T, …) -> the wrapped layer on each (N·T, …) step, (N, T, …'). The weights are the
/// wrapped layer's; the mask is passed on, as Keras does. Keras' TimeDistributed.call takes the
/// mask (a Functional model's file may pass it as mask=) and hands each step's slice to a wrapped
/// layer whose call takes a mask; Kiln takes it (`masked`: the last input) and refuses it for
/// such a wrapped layer (one step's mask is not passed on), and otherwise leaves it unread.
public struct TimeDistributedKind: LayerKind {
    public static let kerasClasses = ["TimeDistributed"]
    public var inner: AnyLayer
    /// The wrapped layer's own name (Keras saves it in the config).
    public var innerName: String
    /// Whether the mask is the last input.
    public var masked: Bool

    public init(inner: any LayerKind, innerName: String, masked: Bool = false) {
        self.inner = AnyLayer(inner); self.innerName = innerName; self.masked = masked
    }

    public init(keras c: KerasConfig) throws {
        guard let layer = c["layer"], let cls = layer["class_name"]?.string else { throw c.fail("has no wrapped layer") }
        guard let type = LayerTable.byKerasClass[cls], cls != "TimeDistributed" else {
            throw c.fail("wraps a \(cls) layer, which Kiln does not support inside TimeDistributed")
        }
        let config = layer["config"] ?? .object([])
        let name = config["name"]?.string ?? c.name
        let kind = try type.init(keras: KerasConfig(name: name, className: cls, json: config, file: c.file))
        guard !kind.needsTimeAxis else { throw c.fail("wraps a \(cls) layer, which Kiln does not support inside TimeDistributed") }
        self.init(inner: kind, innerName: name)
    }

    public var description: String { "time_distributed<\(inner)\(masked ? ", masked" : "")>" }
    public var needsTimeAxis: Bool { true }

    /// One step's input: (N, …) for (N, T, …).
    private func inside(_ x: TensorType, _ layer: String) throws -> TensorType {
        guard x.rank >= 3, x.shape[0] == .n, x.shape[1].fixedValue != nil || x.shape[1] == .t else {
            throw ShapeError(layer: layer, "expects (batch, time, ...), got \(x.kerasDescription), which has no time axis")
        }
        return TensorType(x.dtype, [.n] + Array(x.shape.dropFirst(2)))
    }

    public func weights(for inputs: [TensorType]) throws -> [LayerWeight] {
        try inner.kind.weights(for: [try inside(inputs.first ?? .f32([]), "TimeDistributed")])
    }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        let x = ins[0]
        if masked {
            guard inner.kind.consumingMask() == nil else {
                throw ShapeError(layer: layer, "is given a mask, which Keras hands to the wrapped \(inner.kind.kerasClass) step by step; Kiln does not support a mask inside TimeDistributed")
            }
        }
        // The wrapped layer sees (batch * timesteps, ...); its messages speak of one step's input.
        let out = try inner.kind.infer([try inside(x, layer)] + ins.dropFirst().dropLast(masked ? 1 : 0), layer: "\(layer) (\(inner.kind.kerasClass) on each step)")[0]
        return [TensorType(out.dtype, [.n, x.shape[1]] + Array(out.shape.dropFirst()))]
    }

    public func consumingMask() -> TimeDistributedKind? {
        guard !masked else { return nil }
        var k = self
        k.masked = true
        return k
    }

    public var supportsMasking: Bool { true }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let x = ins[0]
        let xs = b.type(x).shape
        let steps = try b.reshape(x, [Dim.product([.n, xs[1]])!] + Array(xs.dropFirst(2)))
        let y = try inner.kind.lower(&b, [steps] + ins.dropFirst().dropLast(masked ? 1 : 0), &ctx)[0]
        return [try b.reshape(y, [.n, xs[1]] + Array(b.type(y).shape.dropFirst()))]
    }

    public func kerasConfig() -> [(String, JSON)] {
        let k = inner.kind
        let trainable: [(String, JSON)] = k.configHasTrainable ? [("trainable", .bool(true))] : []
        let config: [(String, JSON)] = [("name", .string(innerName))] + trainable + [("dtype", KerasJSON.dtypePolicy)] + k.kerasConfig()
        return [("layer", .object([("module", .string(KerasJSON.module(k.kerasClass))), ("class_name", .string(k.kerasClass)),
                                   ("config", .object(config)), ("registered_name", KerasJSON.registeredName(k.kerasClass))]))]
    }
}

/// Applies a layer to every time step: (batch, steps, ...) -> (batch, steps, ...') (Keras'
/// `TimeDistributed`). The wrapped layer's weights belong to this layer.
///
///     let tags = TimeDistributed(Dense(5))(sequence)
public final class TimeDistributed: Layer {
    /// - Parameters:
    ///   - layer: the layer to apply to each step (a layer of the layer table).
    ///   - name: the layer name (default `time_distributed`, ...).
    public init(_ layer: Layer, name: String? = nil) {
        super.init(kind: TimeDistributedKind(inner: layer.kind ?? UnwrappableKind(kerasClass: layer.className), innerName: layer.name), name: name)
    }
}

/// What TimeDistributed holds when given a layer outside the layer table: it refuses every call.
struct UnwrappableKind: LayerKind {
    static let kerasClasses = ["(unwrappable)"]
    var kerasClass: String
    init(kerasClass: String) { self.kerasClass = kerasClass }
    init(keras c: KerasConfig) throws { throw c.fail("cannot be wrapped") }
    var description: String { "unwrappable<\(kerasClass)>" }
    func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        throw ShapeError(layer: layer, "cannot apply \(kerasClass) on each step: Kiln's Swift API wraps only layers of the layer table in TimeDistributed")
    }
    func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] { [] }
    func kerasConfig() -> [(String, JSON)] { [] }
}
