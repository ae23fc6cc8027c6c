// GaussianNoise and GaussianDropout: random noise in training, the identity in inference.

import KilnIR
import KilnSupport

extension PrimBuilder {
    /// Standard normal draws of x's shape: the inverse normal CDF (P. J. Acklam's rational
    /// approximation, relative error below 1.2e-9) of a uniform draw. Kiln's random stream is
    /// its own, so the numbers differ from Keras' (only their distribution is the same).
    mutating func standardNormal(like x: Value, salt: Int) throws -> Value {
        let u = try p(.randomUniform(salt: salt), x)
        let pr = try binary(.max, u, try const(1e-10))          // u in [0, 1): keep log finite
        func poly(_ c: [Double], _ v: Value) throws -> Value {
            var acc = try const(Float(c[0]))
            for k in c.dropFirst() { acc = try add(try mul(acc, v), Float(k)) }
            return acc
        }
        let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02,
                 -3.066479806614716e+01, 2.506628277459239e+00]
        let bc = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01,
                  -1.328068155288572e+01, 1]
        let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00,
                 4.374664141464968e+00, 2.938163982698783e+00]
        let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00, 1]
        // Central region: q = p - 0.5, r = q².
        let q = try add(pr, -0.5)
        let r = try mul(q, q)
        let central = try div(try mul(try poly(a, r), q), try poly(bc, r))
        // Tails: t = sqrt(-2 log(min(p, 1 - p))); the lower tail is negative, the upper its mirror.
        let low = try binary(.min, pr, try sub(try const(1), pr))
        let t = try unary(.sqrt, try mul(try unary(.log, low), -2))
        let tail = try div(try poly(c, t), try poly(d, t))
        let tails = try select(try compare(.lt, pr, try const(0.5)), tail, try unary(.neg, tail))
        return try select(try compare(.le, try unary(.abs, q), try const(0.5 - 0.02425)), central, tails)
    }
}

/// Keras' `GaussianNoise(stddev)`: x + N(0, stddev²) noise in training, x in inference.
/// Passes the mask on.
public struct GaussianNoiseKind: LayerKind {
    public static let kerasClasses = ["GaussianNoise"]
    public var stddev: Float

    public init(stddev: Float) { self.stddev = stddev }

    public init(keras c: KerasConfig) throws {
        let s = try c.float("stddev")
        guard s >= 0 else { throw c.fail("has stddev=\(s); expected a number >= 0") }
        self.init(stddev: s)
    }

    public var description: String { "gaussian_noise<\(stddev)>" }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 1...1, layer)
        guard ins[0].dtype == .f32 else { throw ShapeError(layer: layer, "adds noise to float tensors, got \(ins[0].dtype.rawValue) \(ins[0].kerasDescription)") }
        return [ins[0]]
    }

    public var supportsMasking: Bool { true }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let x = ins[0]
        guard stddev > 0 else { return [x] }
        let y = try b.add(x, try b.mul(try b.standardNormal(like: x, salt: ctx.nextSalt()), stddev))
        b.graph.inferenceForms[y] = x
        return [y]
    }

    public func kerasConfig() -> [(String, JSON)] { [("stddev", KerasJSON.float(stddev)), ("seed", .null)] }
}

/// Keras' `GaussianDropout(rate)`: x * N(1, rate / (1 - rate)) in training, x in inference.
/// Passes the mask on.
public struct GaussianDropoutKind: LayerKind {
    public static let kerasClasses = ["GaussianDropout"]
    public var rate: Float

    public init(rate: Float) { self.rate = rate }

    public init(keras c: KerasConfig) throws {
        let r = try c.float("rate")
        guard r >= 0 && r < 1 else { throw c.fail("has rate=\(r); expected 0 <= rate < 1") }
        self.init(rate: r)
    }

    public var description: String { "gaussian_dropout<\(rate)>" }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 1...1, layer)
        guard ins[0].dtype == .f32 else { throw ShapeError(layer: layer, "multiplies float tensors by noise, got \(ins[0].dtype.rawValue) \(ins[0].kerasDescription)") }
        return [ins[0]]
    }

    public var supportsMasking: Bool { true }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let x = ins[0]
        guard rate > 0 else { return [x] }
        let stddev = Float((Double(rate) / (1 - Double(rate))).squareRoot())
        let noise = try b.add(try b.mul(try b.standardNormal(like: x, salt: ctx.nextSalt()), stddev), 1)
        let y = try b.mul(x, noise)
        b.graph.inferenceForms[y] = x
        return [y]
    }

    public func kerasConfig() -> [(String, JSON)] { [("rate", KerasJSON.float(rate)), ("seed", .null)] }
}

/// Adds zero-mean Gaussian noise while training (Keras' `GaussianNoise`); the identity in
/// predict and evaluate.
///
///     let h = GaussianNoise(stddev: 0.1)(x)
public final class GaussianNoise: Layer {
    /// - Parameters:
    ///   - stddev: the noise's standard deviation.
    ///   - name: the layer name (default `gaussian_noise`, ...).
    public init(stddev: Float, name: String? = nil) { super.init(kind: GaussianNoiseKind(stddev: stddev), name: name) }
}

/// Multiplies by Gaussian noise of mean 1 and variance rate / (1 - rate) while training
/// (Keras' `GaussianDropout`); the identity in predict and evaluate.
///
///     let h = GaussianDropout(rate: 0.2)(x)
public final class GaussianDropout: Layer {
    /// - Parameters:
    ///   - rate: the drop probability the noise stands for (0 <= rate < 1).
    ///   - name: the layer name (default `gaussian_dropout`, ...).
    public init(rate: Float, name: String? = nil) { super.init(kind: GaussianDropoutKind(rate: rate), name: name) }
}
