import KilnIR

/// Keras losses as primitives. Each returns the per-sample loss (the last
/// axis reduced), before the "sum_over_batch_size" mean.
public enum Losses {
    static let eps: Float = 1e-7

    /// The target type Keras expects for a loss and an output type.
    public static func targetType(_ loss: LossConfig, output: TensorType) -> TensorType {
        if loss.name == "sparse_categorical_crossentropy" {
            return TensorType(.i32, Array(output.shape.dropLast()))
        }
        if loss.name == "crf" { return TensorType(.i32, output.shape) }
        return .f32(output.shape)
    }

    public static func perSample(_ cfg: LossConfig, yTrue t0: Value, yPred p: Value, _ b: inout PrimBuilder) throws -> Value {
        let last = b.type(p).rank - 1
        func mean(_ v: Value) throws -> Value { try b.reduce(.mean, v, axes: [last]) }
        func sum(_ v: Value) throws -> Value { try b.reduce(.sum, v, axes: [last]) }
        func clip(_ v: Value, _ lo: Float, _ hi: Float) throws -> Value {
            try b.binary(.min, try b.binary(.max, v, try b.const(lo)), try b.const(hi))
        }
        let one = try b.const(1)
        var t = t0
        switch cfg.name {
        case "mean_squared_error":
            return try mean(try b.unary(.square, try b.sub(t, p)))
        case "mean_absolute_error":
            return try mean(try b.unary(.abs, try b.sub(t, p)))
        case "mean_absolute_percentage_error":
            let d = try b.unary(.abs, try b.div(try b.sub(t, p), try b.binary(.max, try b.unary(.abs, t), try b.const(eps))))
            return try b.mul(try mean(d), 100)
        case "mean_squared_logarithmic_error":
            let a = try b.unary(.log, try b.add(try b.binary(.max, p, try b.const(eps)), 1))
            let c = try b.unary(.log, try b.add(try b.binary(.max, t, try b.const(eps)), 1))
            return try mean(try b.unary(.square, try b.sub(a, c)))
        case "hinge", "squared_hinge":
            t = try binaryToSigned(t, &b)
            let h = try b.unary(.relu, try b.sub(one, try b.mul(t, p)))
            return try mean(cfg.name == "hinge" ? h : try b.unary(.square, h))
        case "categorical_hinge":
            let pos = try sum(try b.mul(t, p))
            let neg = try b.reduce(.max, try b.mul(try b.sub(one, t), p), axes: [last])
            return try b.binary(.max, try b.add(try b.sub(neg, pos), 1), try b.const(0))
        case "binary_crossentropy":
            if cfg.labelSmoothing > 0 { t = try b.add(try b.mul(t, 1 - cfg.labelSmoothing), 0.5 * cfg.labelSmoothing) }
            if cfg.fromLogits {
                // -t*log_sigmoid(x) - (1-t)*log_sigmoid(-x) = softplus(-x)*t + softplus(x)*(1-t)
                let a = try b.mul(t, try b.unary(.softplus, try b.unary(.neg, p)))
                let c = try b.mul(try b.sub(one, t), try b.unary(.softplus, p))
                return try mean(try b.add(a, c))
            }
            let q = try clip(p, eps, 1 - eps)
            let bce = try b.add(try b.mul(t, try b.unary(.log, q)), try b.mul(try b.sub(one, t), try b.unary(.log, try b.sub(one, q))))
            return try mean(try b.unary(.neg, bce))
        case "categorical_crossentropy", "sparse_categorical_crossentropy":
            if cfg.name == "sparse_categorical_crossentropy" {
                t = try oneHot(t, classes: b.type(p).shape[last].factor, &b)
            }
            if cfg.labelSmoothing > 0 {
                let k = Float(b.type(p).shape[last].factor)
                t = try b.add(try b.mul(t, 1 - cfg.labelSmoothing), cfg.labelSmoothing / k)
            }
            let logp: Value
            if cfg.fromLogits {
                logp = try b.activation(.logSoftmax, p)
            } else {
                let q = try b.div(p, try b.reduce(.sum, p, axes: [last], keepDims: true))
                logp = try b.unary(.log, try clip(q, eps, 1 - eps))
            }
            return try b.unary(.neg, try sum(try b.mul(t, logp)))
        case "log_cosh":
            let x = try b.sub(p, t)
            let v = try b.add(try b.add(x, try b.unary(.softplus, try b.mul(x, -2))), Float(-0.6931471805599453))
            return try mean(v)
        case "kl_divergence":
            let tc = try clip(t, eps, 1), pc = try clip(p, eps, 1)
            return try sum(try b.mul(tc, try b.unary(.log, try b.div(tc, pc))))
        case "poisson":
            return try mean(try b.sub(p, try b.mul(t, try b.unary(.log, try b.add(p, eps)))))
        case "crf":
            return try crf(yTrue: t0, yPred: p, &b)
        case "cosine_similarity":
            func normalize(_ v: Value) throws -> Value {
                let ss = try b.reduce(.sum, try b.unary(.square, v), axes: [last], keepDims: true)
                return try b.mul(v, try b.binary(.min, try b.unary(.rsqrt, ss), try b.const(1 / eps)))
            }
            return try b.unary(.neg, try sum(try b.mul(try normalize(t), try normalize(p))))
        default:
            throw ShapeError(layer: "loss", "loss '\(cfg.name)' is not supported")
        }
    }

    /// Hinge losses: labels that are all 0 or 1 in the batch become -1/+1.
    static func binaryToSigned(_ t: Value, _ b: inout PrimBuilder) throws -> Value {
        let zero = try b.const(0), one = try b.const(1)
        let off = try b.mul(try b.cast(try b.compare(.ne, t, zero), .f32), try b.cast(try b.compare(.ne, t, one), .f32))
        let rank = b.type(t).rank
        let count = try b.reduce(.sum, off, axes: Array(0..<rank))
        let isBinary = try b.compare(.eq, count, zero)
        return try b.select(isBinary, try b.sub(try b.mul(t, 2), one), t)
    }

    /// One-hot of int labels (…) -> (…, classes).
    static func oneHot(_ ids: Value, classes: Int, _ b: inout PrimBuilder) throws -> Value {
        let shape = b.type(ids).shape
        let ids1 = try b.reshape(ids, shape + [.fixed(1)])
        // iota over the class axis: a tiny constant built from a parameter-free expression.
        let iota = try b.p(.iota(classes))
        return try b.cast(try b.compare(.eq, try b.cast(ids1, .f32), iota), .f32)
    }
}
