// Dropout: inverted dropout in training, the identity in predict.

import KilnIR
import KilnSupport

/// Sets a fraction `rate` of the inputs to 0 while training and scales the rest by
/// 1 / (1 - rate); passes the mask on.
public struct DropoutKind: LayerKind {
    public static let kerasClasses = ["Dropout"]
    public var rate: Float

    public init(rate: Float) { self.rate = rate }

    public init(keras c: KerasConfig) throws {
        let rate = try c.float("rate")
        guard rate >= 0 && rate < 1 else { throw c.fail("has rate \(rate); expected 0 <= rate < 1") }
        try c.require("noise_shape", .null, "noise_shape None")
        self.init(rate: rate)
    }

    public var description: String { "dropout<\(rate)>" }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        guard rate >= 0 && rate < 1 else { throw ShapeError(layer: layer, "rate=\(rate) must be in [0, 1)") }
        try expectArity(ins, 1...1, layer)
        return [ins[0]]
    }

    public var supportsMasking: Bool { true }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let x = ins[0]
        guard rate > 0 else { return [x] }
        let u = try b.p(.randomUniform(salt: ctx.nextSalt()), x)
        let keep = try b.cast(try b.compare(.ge, u, try b.const(rate)), .f32)
        let y = try b.mul(try b.mul(x, keep), 1 / (1 - rate))
        b.graph.inferenceForms[y] = x
        return [y]
    }

    public func kerasConfig() -> [(String, JSON)] { [("rate", KerasJSON.float(rate)), ("seed", .null), ("noise_shape", .null)] }
}

/// Sets a fraction of the inputs to 0 while training, scaling the rest by
/// 1 / (1 - rate); the identity in `predict` (Keras' `Dropout`).
public final class Dropout: Layer {
    public var rate: Float { (kind as! DropoutKind).rate }

    /// - Parameters:
    ///   - rate: the fraction of inputs to drop, in [0, 1).
    ///   - name: the layer name (default `dropout`, ...).
    public init(_ rate: Float, name: String? = nil) {
        super.init(kind: DropoutKind(rate: rate), name: name)
    }

    override package func weightSpecs(_ inputs: [TensorType]) throws -> [LayerWeight] {
        guard rate >= 0, rate < 1 else { throw KerasAPIError("Dropout '\(name)' needs a rate in [0, 1), got \(rate).") }
        return []
    }
}
