// SpatialDropout1D: dropout of whole channels (one draw per row and channel, shared by all
// steps), identity in inference. Like Keras' Dropout it supports masking: the mask goes on.

import KilnIR
import KilnSupport

/// x (N, T, C) -> x * keep / (1 - rate) in training, keep (N, 1, C) being 1 with probability
/// 1 - rate; x in inference. Kiln's random numbers are not Keras' (the layer's training
/// numbers can match Keras' only with rate 0).
public struct SpatialDropout1DKind: LayerKind {
    public static let kerasClasses = ["SpatialDropout1D"]
    public var rate: Float
    /// Keras' seed, kept for the writer (Kiln's draws do not use it).
    public var seed: Int?

    public init(rate: Float, seed: Int? = nil) { self.rate = rate; self.seed = seed }

    public init(keras c: KerasConfig) throws {
        let rate = try c.float("rate")
        guard rate >= 0 && rate < 1 else { throw c.fail("has rate \(rate); expected 0 <= rate < 1") }
        self.init(rate: rate, seed: c.isAbsent("seed") ? nil : try c.int("seed"))
    }

    public var description: String { "spatial_dropout1d<\(rate)>" }
    public var configHasTrainable: Bool { false }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 1...1, layer)
        guard rate >= 0 && rate < 1 else { throw ShapeError(layer: layer, "rate=\(rate) must be in [0, 1)") }
        _ = try Seq1DAxes(channelsFirst: false).check(ins[0], layer: layer, cls: "SpatialDropout1D", fixedSteps: false)
        return [ins[0]]
    }

    public var supportsMasking: Bool { true }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let x = ins[0]
        guard rate > 0 else { return [x] }
        // One uniform number per (row, channel): a draw shaped like x's (N, 1, C) maximum over the steps.
        let perChannel = try b.reduce(.max, x, axes: [1], keepDims: true)
        let u = try b.p(.randomUniform(salt: ctx.nextSalt()), perChannel)
        let keep = try b.mul(try b.cast(try b.compare(.ge, u, try b.const(rate)), .f32), 1 / (1 - rate))
        let y = try b.mul(x, keep)
        b.graph.inferenceForms[y] = x
        return [y]
    }

    public func kerasConfig() -> [(String, JSON)] {
        [("rate", KerasJSON.float(rate)), ("seed", seed.map(KerasJSON.int) ?? .null)]
    }
}

/// Drops whole channels of a sequence in training (Keras' `SpatialDropout1D`): each row's
/// channel is kept at every step or at none, with probability 1 - rate, and scaled by
/// 1 / (1 - rate); the identity in predict and evaluate. A mask goes on unchanged.
public final class SpatialDropout1D: Layer {
    /// The fraction of channels dropped.
    public var rate: Float { (kind as! SpatialDropout1DKind).rate }

    /// - Parameters:
    ///   - rate: the fraction of channels to drop, in [0, 1).
    ///   - name: the layer name (default `spatial_dropout1d`, ...).
    public init(_ rate: Float, name: String? = nil) {
        super.init(kind: SpatialDropout1DKind(rate: rate), name: name)
    }
}
