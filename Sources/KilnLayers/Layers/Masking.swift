// Masking: marks the steps whose features all equal mask_value as padding.

import KilnIR
import KilnSupport

/// x (N, T, F) -> x with masked steps zeroed, and the mask "some feature differs from the value".
public struct MaskingKind: LayerKind {
    public static let kerasClasses = ["Masking"]
    public var value: Float
    public init(value: Float = 0) { self.value = value }
    public init(keras c: KerasConfig) throws { try self.init(value: c.float("mask_value", 0)) }
    public var description: String { "masking<\(value)>" }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 1...1, layer)
        guard ins[0].rank >= 3 else {
            throw ShapeError(layer: layer, "expects a sequence (batch, timesteps, features), got \(ins[0].kerasDescription)")
        }
        return [ins[0]]
    }

    public func outputMask(_ b: inout PrimBuilder, inputs: [Value], masks: [Value?], outputs: [Value]) throws -> Value? {
        try b.maskOf(masking: inputs[0], value: value)
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        [try b.mul(ins[0], try b.cast(try b.maskOf(masking: ins[0], value: value, keepLast: true), .f32))]
    }

    public func kerasConfig() -> [(String, JSON)] { [("mask_value", KerasJSON.float(value))] }
}

/// Marks padding steps: those whose features all equal `maskValue` (Keras' `Masking`).
public final class Masking: Layer {
    /// - Parameters:
    ///   - maskValue: the padding value (default 0).
    ///   - name: the layer name (default `masking`, ...).
    public init(maskValue: Float = 0, name: String? = nil) { super.init(kind: MaskingKind(value: maskValue), name: name) }
}
