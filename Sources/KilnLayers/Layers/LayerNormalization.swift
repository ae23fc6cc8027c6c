// LayerNormalization: normalises each sample over its feature axes.

import KilnIR
import KilnSupport

/// x -> (x - mean) / sqrt(var + epsilon) * gamma + beta, mean and variance over `axes` of each
/// sample (Keras 3's `ops.layer_normalization`: inv = rsqrt(var + eps) * gamma, then
/// x * inv + (beta - mean * inv)). With rms_scaling (deprecated in Keras) it is x * rsqrt(var +
/// eps) * gamma, without beta. gamma and beta have the sizes of the normalised axes. It passes
/// the mask on.
public struct LayerNormalizationKind: LayerKind {
    public static let kerasClasses = ["LayerNormalization"]
    /// The normalised axes as Keras writes them (negative counts from the end), sorted.
    public var axes: [Int]
    public var epsilon: Float
    public var center: Bool
    public var scale: Bool
    public var rmsScaling: Bool

    public init(axes: [Int] = [-1], epsilon: Float = 1e-3, center: Bool = true, scale: Bool = true, rmsScaling: Bool = false) {
        self.axes = axes.sorted(); self.epsilon = epsilon; self.center = center; self.scale = scale; self.rmsScaling = rmsScaling
    }

    public init(keras c: KerasConfig) throws {
        let raw = c["axis"]
        guard let axes = raw?.ints ?? raw?.int.map({ [$0] }) ?? (c.isAbsent("axis") ? [-1] : nil), !axes.isEmpty,
              Set(axes).count == axes.count else {
            throw c.fail("has axis \(raw?.serialized ?? "null"); expected an integer or a list of distinct integers")
        }
        guard !axes.contains(0) else { throw c.fail("normalises over axis 0, the batch; Kiln supports the axes of each sample") }
        let eps = try c.float("epsilon", 1e-3)
        guard eps > 0 else { throw c.fail("has epsilon \(eps); expected a positive number") }
        self.init(axes: axes, epsilon: eps, center: try c.bool("center", true), scale: try c.bool("scale", true),
                  rmsScaling: try c.bool("rms_scaling", false))
    }

    public var description: String {
        "layer_normalization<axes \(axes), eps \(formatKerasFloat(epsilon))\(center ? "" : ", no center")\(scale ? "" : ", no scale")\(rmsScaling ? ", rms" : "")>"
    }

    /// The axes as positive indices for input rank `rank`, or nil if one is out of range.
    func resolved(rank: Int) -> [Int]? {
        let r = axes.map { $0 < 0 ? $0 + rank : $0 }
        guard r.allSatisfy({ $0 >= 1 && $0 < rank }), Set(r).count == r.count else { return nil }
        return r.sorted()
    }

    func checked(_ x: TensorType, layer: String) throws -> [Int] {
        guard let r = resolved(rank: x.rank) else {
            throw ShapeError(layer: layer, "normalises over axis \(axes.count == 1 ? "\(axes[0])" : "\(axes)"), which input \(x.kerasDescription) does not have",
                             hint: "the axes count the batch as 0 and must name axes of each sample")
        }
        for a in r where x.shape[a].fixedValue == nil {
            throw ShapeError(layer: layer, "normalises over axis \(a) of input \(x.kerasDescription), whose size is free (None); its gamma and beta need a fixed size")
        }
        return r
    }

    /// The weights' shape: the sizes of the normalised axes.
    func paramShape(_ x: TensorType, layer: String) throws -> [Int] {
        try checked(x, layer: layer).map { x.shape[$0].factor }
    }

    var hasGamma: Bool { scale || rmsScaling }
    var hasBeta: Bool { center && !rmsScaling }

    public func weights(for inputs: [TensorType]) throws -> [LayerWeight] {
        // Axes the input lacks: none here; `infer` names the layer and the shapes.
        guard let x = inputs.first, let r = resolved(rank: x.rank), r.allSatisfy({ x.shape[$0].fixedValue != nil }) else { return [] }
        let s = r.map { x.shape[$0].factor }
        return (hasGamma ? [LayerWeight("gamma", s, .ones)] : []) + (hasBeta ? [LayerWeight("beta", s, .zeros)] : [])
    }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        guard let x = ins.first, x.dtype == .f32 else { throw ShapeError(layer: layer, "expects a float input, got \(ins.first?.description ?? "none")") }
        let s = try paramShape(x, layer: layer)
        let count = 1 + (hasGamma ? 1 : 0) + (hasBeta ? 1 : 0)
        try expectArity(ins, count...count, layer)
        for w in ins.dropFirst() where w.shape != s.map({ .fixed($0) }) {
            throw ShapeError(layer: layer, "has a weight of shape \(w.kerasDescription); for input \(x.kerasDescription) it needs \(formatShape(s))")
        }
        return [x]
    }

    public var supportsMasking: Bool { true }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let x = ins[0]
        let xt = b.type(x)
        let r = try checked(xt, layer: b.layer)
        // gamma and beta broadcast against x: their axes in place, 1 elsewhere.
        var bshape = [Dim](repeating: .fixed(1), count: xt.rank)
        for a in r { bshape[a] = xt.shape[a] }
        var k = 1
        func weight() throws -> Value { defer { k += 1 }; return try b.reshape(ins[k], bshape) }
        let gamma = hasGamma ? try weight() : nil
        let beta = hasBeta ? try weight() : nil
        let mean = try b.reduce(.mean, x, axes: r, keepDims: true)
        let centered = try b.sub(x, mean)
        let variance = try b.reduce(.mean, try b.unary(.square, centered), axes: r, keepDims: true)
        var inv = try b.unary(.rsqrt, try b.add(variance, epsilon))
        if rmsScaling {
            var y = try b.mul(x, inv)
            if let g = gamma { y = try b.mul(y, g) }
            return [y]
        }
        if let g = gamma { inv = try b.mul(inv, g) }
        var res = try b.unary(.neg, try b.mul(mean, inv))
        if let be = beta { res = try b.add(res, be) }
        return [try b.add(try b.mul(x, inv), res)]
    }

    public func kerasConfig() -> [(String, JSON)] {
        [("axis", KerasJSON.ints(axes)), ("epsilon", KerasJSON.float(epsilon)), ("center", .bool(center)), ("scale", .bool(scale)),
         ("rms_scaling", .bool(rmsScaling)),
         ("beta_initializer", KerasJSON.zeros), ("gamma_initializer", KerasJSON.ones),
         ("beta_regularizer", .null), ("gamma_regularizer", .null), ("beta_constraint", .null), ("gamma_constraint", .null)]
    }
}

/// A float for a printed form: 0.001, not 0.0010000000474974513.
func formatKerasFloat(_ v: Float) -> String { "\(v)" }

/// Normalises each sample over its last axis (or the given axes) to mean 0 and variance 1,
/// then scales by gamma and shifts by beta (Keras' `LayerNormalization`). It passes the mask on.
///
///     let y = LayerNormalization(epsilon: 1e-6)(x)
public final class LayerNormalization: Layer {
    /// - Parameters:
    ///   - axes: the normalised axes, counting the batch as 0; negative counts from the end (default the last).
    ///   - epsilon: added to the variance (Keras' default 0.001).
    ///   - center: whether to add the learned offset beta.
    ///   - scale: whether to multiply by the learned gamma.
    ///   - name: the layer name (default `layer_normalization`, ...).
    public init(axes: [Int] = [-1], epsilon: Float = 1e-3, center: Bool = true, scale: Bool = true, name: String? = nil) {
        super.init(kind: LayerNormalizationKind(axes: axes, epsilon: epsilon, center: center, scale: scale), name: name)
    }
}
