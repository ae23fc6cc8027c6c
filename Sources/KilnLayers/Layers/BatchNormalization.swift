// BatchNormalization: normalizes each feature (the last axis) by batch statistics in training,
// by its moving statistics in inference, and updates the moving ones while training.

import KilnIR
import KilnSupport

/// Keras' `BatchNormalization` on the last axis. Weights, in Keras' order: gamma (if scale),
/// beta (if center), moving_mean, moving_variance (the two moving ones non-trainable).
/// Training: y = (x - mean) / sqrt(var + epsilon) * gamma + beta with the batch's mean and
/// biased variance over every axis but the last (masked steps left out when a mask comes in),
/// and each step writes moving = moving * momentum + batch * (1 - momentum). Inference (and a
/// frozen layer, trainable=False, in training too, as in Keras) uses the moving statistics.
/// Passes the mask on.
public struct BatchNormalizationKind: LayerKind {
    public static let kerasClasses = ["BatchNormalization"]
    /// The normalized axis as Keras' config gives it (-1, or the input's last axis counted from 0).
    public var axis: Int
    public var momentum: Float
    public var epsilon: Float
    public var center: Bool
    public var scale: Bool
    /// trainable=False in the config: the layer normalizes by its moving statistics in training too.
    public var frozen: Bool
    /// Whether the last input is the mask (masked moments).
    public var masked = false

    public init(axis: Int = -1, momentum: Float = 0.99, epsilon: Float = 0.001, center: Bool = true, scale: Bool = true, frozen: Bool = false) {
        self.axis = axis; self.momentum = momentum; self.epsilon = epsilon; self.center = center; self.scale = scale; self.frozen = frozen
    }

    public init(keras c: KerasConfig) throws {
        let raw = c["axis"]
        let axis = raw?.int ?? (raw?.ints?.count == 1 ? raw?.ints?[0] : nil) ?? (c.isAbsent("axis") ? -1 : nil)
        guard let axis, axis == -1 || axis >= 1 else {
            throw c.fail("has axis \(raw?.serialized ?? "null"); Kiln supports axis=-1 (the last axis, channels_last)")
        }
        if try c.bool("renorm", false) { throw c.fail("uses renorm=True; Kiln supports renorm=False") }
        if try c.bool("synchronized", false) { throw c.fail("uses synchronized=True; Kiln supports synchronized=False") }
        let eps = try c.float("epsilon", 0.001)
        guard eps > 0 else { throw c.fail("has epsilon=\(eps); expected a number > 0") }
        self.init(axis: axis, momentum: try c.float("momentum", 0.99), epsilon: eps, center: try c.bool("center", true),
                  scale: try c.bool("scale", true), frozen: !(try c.bool("trainable", true)))
    }

    public var description: String {
        "batch_normalization<\(axis == -1 ? "" : "axis \(axis), ")momentum \(momentum), epsilon \(epsilon)\(center ? "" : ", no center")\(scale ? "" : ", no scale")\(frozen ? ", frozen" : "")\(masked ? ", masked" : "")>"
    }

    func channels(_ x: TensorType, _ layer: String) throws -> Int {
        guard x.dtype == .f32, x.rank >= 2, x.shape[0] == .n, let c = x.shape.last?.fixedValue else {
            throw ShapeError(layer: layer, "normalizes float tensors (batch, ..., features) with a fixed last axis, got \(x.kerasDescription)")
        }
        guard axis == -1 || axis == x.rank - 1 else {
            throw ShapeError(layer: layer, "normalizes axis \(axis) of input \(x.kerasDescription); Kiln supports the last axis (axis=-1) only",
                             hint: "normalize channels_last data over its last axis")
        }
        return c
    }

    public func weights(for inputs: [TensorType]) throws -> [LayerWeight] {
        // Sized by the axis the config names, so that a file's weights fit and the shape rule
        // (which names the layer) is the one to refuse another axis than the last.
        let x = inputs[0]
        let c = axis >= 1 && axis < x.rank - 1 ? x.shape[axis].factor : try channels(x, "BatchNormalization")
        return (scale ? [LayerWeight("gamma", [c], .ones)] : []) + (center ? [LayerWeight("beta", [c], .zeros)] : [])
            + [LayerWeight("moving_mean", [c], .zeros, trainable: false), LayerWeight("moving_variance", [c], .ones, trainable: false)]
    }

    var weightCount: Int { (scale ? 1 : 0) + (center ? 1 : 0) + 2 }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        let count = 1 + weightCount + (masked ? 1 : 0)
        try expectArity(ins, count...count, layer)
        let x = ins[0]
        let c = try channels(x, layer)
        for (k, w) in ins[1...weightCount].enumerated() where w != .f32([.fixed(c)]) {
            throw ShapeError(layer: layer, "has weight \(k) of shape \(w.kerasDescription) for input \(x.kerasDescription); it needs (\(c),)")
        }
        if masked {
            let m = ins.last!
            guard m.rank == x.rank - 1, Array(m.shape) == Array(x.shape.dropLast()) else {
                throw ShapeError(layer: layer, "is given a mask of shape \(m.kerasDescription) for input \(x.kerasDescription); Keras expects the input's shape without its last axis")
            }
        }
        return [x]
    }

    public func consumingMask() -> BatchNormalizationKind? {
        var k = self; k.masked = true; return k
    }

    public var supportsMasking: Bool { true }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let x = ins[0]
        var k = 1
        let gamma = scale ? ins[k] : nil; if scale { k += 1 }
        let beta = center ? ins[k] : nil; if center { k += 1 }
        let movingMean = ins[k], movingVariance = ins[k + 1]
        let mask = masked ? ins.last : nil
        let shape = b.type(x).shape
        let axes = Array(0..<(shape.count - 1))

        // Keras' ops.batch_normalization: inv = rsqrt(var + eps) * gamma; x * inv + (beta - mean * inv).
        func normalize(_ mean: Value, _ variance: Value, _ b: inout PrimBuilder) throws -> Value {
            var inv = try b.unary(.rsqrt, try b.add(variance, epsilon))
            if let gamma { inv = try b.mul(inv, gamma) }
            var res = try b.mul(try b.unary(.neg, mean), inv)
            if let beta { res = try b.add(res, beta) }
            return try b.add(try b.mul(x, inv), res)
        }
        let inference = try normalize(movingMean, movingVariance, &b)
        // A frozen layer (trainable=False) runs in inference mode while training, as Keras does.
        let trainableGamma = gamma.map { b.graph.param($0)?.trainable ?? true } ?? true
        let trainableBeta = beta.map { b.graph.param($0)?.trainable ?? true } ?? true
        if frozen || !trainableGamma || !trainableBeta { return [inference] }

        let mean: Value, variance: Value
        if let mask {
            // Keras' masked moments: sums over the unmasked positions, over their count + epsilon.
            let m = try b.p(.broadcast(shape), try b.reshape(try b.cast(mask, .f32), Array(shape.dropLast()) + [.fixed(1)]))
            let weight = try b.add(try b.reduce(.sum, m, axes: axes), 1e-7)
            mean = try b.div(try b.reduce(.sum, try b.mul(x, m), axes: axes), weight)
            let d = try b.mul(try b.sub(x, mean), m)
            variance = try b.div(try b.reduce(.sum, try b.unary(.square, d), axes: axes), weight)
        } else {
            // jnp.mean and jnp.var (the biased variance: the mean of squared deviations).
            mean = try b.reduce(.mean, x, axes: axes)
            variance = try b.reduce(.mean, try b.unary(.square, try b.sub(x, mean)), axes: axes)
        }
        let y = try normalize(mean, variance, &b)
        b.graph.inferenceForms[y] = inference
        // 1 - momentum as Keras computes it (in double from the decimal setting, then float32).
        let keep = momentum, take = Float(1 - (Double("\(momentum)") ?? Double(momentum)))
        b.graph.stateUpdates.append(StateUpdate(param: movingMean, value: try b.add(try b.mul(movingMean, keep), try b.mul(mean, take))))
        b.graph.stateUpdates.append(StateUpdate(param: movingVariance, value: try b.add(try b.mul(movingVariance, keep), try b.mul(variance, take))))
        return [y]
    }

    public func kerasConfig() -> [(String, JSON)] {
        [("axis", KerasJSON.int(axis)), ("momentum", KerasJSON.float(momentum)), ("epsilon", KerasJSON.float(epsilon)),
         ("center", .bool(center)), ("scale", .bool(scale)),
         ("beta_initializer", KerasJSON.zeros), ("gamma_initializer", KerasJSON.ones),
         ("moving_mean_initializer", KerasJSON.zeros), ("moving_variance_initializer", KerasJSON.ones),
         ("beta_regularizer", .null), ("gamma_regularizer", .null), ("beta_constraint", .null), ("gamma_constraint", .null),
         ("synchronized", .bool(false))]
    }
}

/// Normalizes each feature by batch statistics while training and by moving statistics
/// in predict (Keras' `BatchNormalization`, on the last axis).
///
///     let h = BatchNormalization()(Dense(16)(x))
public final class BatchNormalization: Layer {
    /// - Parameters:
    ///   - momentum: the moving statistics' decay per training step.
    ///   - epsilon: added to the variance.
    ///   - center: whether to add a learned offset (beta).
    ///   - scale: whether to multiply by a learned scale (gamma).
    ///   - name: the layer name (default `batch_normalization`, ...).
    public init(momentum: Float = 0.99, epsilon: Float = 0.001, center: Bool = true, scale: Bool = true, name: String? = nil) {
        super.init(kind: BatchNormalizationKind(momentum: momentum, epsilon: epsilon, center: center, scale: scale), name: name)
    }
}
