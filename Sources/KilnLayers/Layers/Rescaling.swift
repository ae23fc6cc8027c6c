// Rescaling: x * scale + offset (Keras' preprocessing layer, e.g. Rescaling(1/255) before a CNN).

import KilnIR
import KilnSupport

/// Any input -> x * scale + offset, same shape, float; passes the mask on (Keras' supports_masking).
public struct RescalingKind: LayerKind {
    public static let kerasClasses = ["Rescaling"]
    public var scale: Float
    public var offset: Float

    public init(scale: Float, offset: Float = 0) { self.scale = scale; self.offset = offset }

    public init(keras c: KerasConfig) throws {
        // Keras also takes a list (one scale per channel); Kiln takes one number each.
        for key in ["scale", "offset"] where !c.isAbsent(key) && c[key]?.float == nil {
            throw c.fail("has \(key) \(c[key]!.serialized); Kiln supports one number")
        }
        try self.init(scale: c.float("scale"), offset: c.float("offset", 0))
    }

    public var description: String { "rescaling<\(scale), \(offset)>" }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 1...1, layer)
        return [.f32(ins[0].shape)]
    }

    public var supportsMasking: Bool { true }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        [try b.add(try b.mul(try b.cast(ins[0], .f32), scale), offset)]
    }

    public func kerasConfig() -> [(String, JSON)] { [("scale", KerasJSON.float(scale)), ("offset", KerasJSON.float(offset))] }
}

/// Multiplies by `scale` and adds `offset` (Keras' `Rescaling`), e.g. `Rescaling(scale: 1 / 255)`
/// to take pixel values to [0, 1].
public final class Rescaling: Layer {
    /// - Parameters:
    ///   - scale: the factor.
    ///   - offset: added after scaling (default 0).
    ///   - name: the layer name (default `rescaling`, ...).
    public init(scale: Float, offset: Float = 0, name: String? = nil) {
        super.init(kind: RescalingKind(scale: scale, offset: offset), name: name)
    }
}
