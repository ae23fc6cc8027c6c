// Keras' activations in primitives, and Masking's mask: shared by the layers' lowerings
// (Sources/KilnLayers/Layers) and the recurrent lowering.

extension PrimBuilder {
    /// An activation applied elementwise (softmax and log_softmax on the last axis).
    public mutating func activation(_ a: Activation, _ x: Value, alpha: Float = 0) throws -> Value {
        switch a {
        case .linear: return x
        case .relu:
            if alpha != 0 { return try activation(.leakyRelu, x, alpha: alpha) }
            return try unary(.relu, x)
        case .sigmoid: return try unary(.sigmoid, x)
        case .tanh: return try unary(.tanh, x)
        case .exponential: return try unary(.exp, x)
        case .softplus: return try unary(.softplus, x)
        case .softsign: return try div(x, try add(try unary(.abs, x), 1))
        case .swish: return try mul(x, try unary(.sigmoid, x))
        case .elu:
            let neg = try mul(try add(try unary(.exp, x), -1), alpha == 0 ? 1 : alpha)
            return try select(try compare(.gt, x, try const(0)), x, neg)
        case .selu:
            let (al, scale): (Float, Float) = (1.6732632423543772, 1.0507009873554805)
            let neg = try mul(try add(try unary(.exp, x), -1), al)
            return try mul(try select(try compare(.gt, x, try const(0)), x, neg), scale)
        case .gelu:
            let e = try unary(.erf, try mul(x, Float(1.0 / 2.0.squareRoot())))
            return try mul(try mul(x, try add(e, 1)), 0.5)
        case .hardSigmoid:
            return try binary(.min, try unary(.relu, try add(try mul(x, Float(1.0 / 6.0)), 0.5)), try const(1))
        case .hardSilu:
            return try mul(x, try activation(.hardSigmoid, x))
        case .leakyRelu:
            let slope = alpha == 0 ? 0.2 : alpha
            return try select(try compare(.ge, x, try const(0)), x, try mul(x, slope))
        case .relu6:
            return try binary(.min, try unary(.relu, x), try const(6))
        case .mish:
            return try mul(x, try unary(.tanh, try unary(.softplus, x)))
        case .celu:
            let a = alpha == 0 ? 1 : alpha
            let neg = try mul(try add(try unary(.exp, try mul(x, 1 / a)), -1), a)
            return try select(try compare(.gt, x, try const(0)), x, neg)
        case .hardShrink:
            return try select(try compare(.gt, try unary(.abs, x), try const(0.5)), x, try const(0))
        case .hardTanh:
            return try binary(.min, try binary(.max, x, try const(-1)), try const(1))
        case .logSigmoid:
            return try unary(.neg, try unary(.softplus, try unary(.neg, x)))
        case .softShrink:
            let zero = try const(0)
            let lower = try select(try compare(.lt, x, try const(-0.5)), try add(x, 0.5), zero)
            return try select(try compare(.gt, x, try const(0.5)), try add(x, -0.5), lower)
        case .sparsePlus:
            let mid = try mul(try unary(.square, try add(x, 1)), 0.25)
            let upper = try select(try compare(.ge, x, try const(1)), x, mid)
            return try select(try compare(.le, x, try const(-1)), try const(0), upper)
        case .squareplus:
            return try mul(try add(x, try unary(.sqrt, try add(try unary(.square, x), 4))), 0.5)
        case .tanhShrink:
            return try sub(x, try unary(.tanh, x))
        case .sparsemax:
            // Without sorting: z_i is in the support when 1 + c_i z_i > s_i, where c_i counts the
            // z_j >= z_i and s_i sums them (s_i is the cumulative sum at z_i's rank). As Keras' JAX
            // backend computes it, tau = (sum of those cumulative sums over the support - 1) / its size.
            let shape = type(x).shape
            let last = shape.count - 1
            let zi = try reshape(x, shape + [.fixed(1)])
            let zj = try reshape(x, Array(shape.dropLast()) + [.fixed(1), shape[last]])
            // z_j comes before z_i in a descending stable sort: greater, or equal and earlier.
            let k = shape[last].factor
            let iota = try p(.iota(k))
            let jIdx = try reshape(iota, [.fixed(1), .fixed(k)]), iIdx = try reshape(iota, [.fixed(k), .fixed(1)])
            let earlier = try cast(try compare(.le, jIdx, iIdx), .f32)
            let ge = try add(try cast(try compare(.gt, zj, zi), .f32), try mul(try cast(try compare(.eq, zj, zi), .f32), earlier))
            let c = try reduce(.sum, ge, axes: [last + 1])
            let s = try reduce(.sum, try mul(ge, zj), axes: [last + 1])
            let support = try cast(try compare(.gt, try add(try mul(c, x), 1), s), .f32)
            let size = try reduce(.sum, support, axes: [last], keepDims: true)
            let tau = try div(try add(try reduce(.sum, try mul(support, s), axes: [last], keepDims: true), -1), size)
            return try unary(.relu, try sub(x, tau))
        case .softmax, .logSoftmax:
            let last = type(x).rank - 1
            let m = try reduce(.max, x, axes: [last], keepDims: true)
            let shifted = try sub(x, m)
            let e = try unary(.exp, shifted)
            let s = try reduce(.sum, e, axes: [last], keepDims: true)
            return a == .softmax ? try div(e, s) : try sub(shifted, try unary(.log, s))
        }
    }

    /// Masking's mask: a step is kept when any feature differs from the value.
    /// keepLast: (N, T, 1) for multiplying; otherwise (N, T).
    public mutating func maskOf(masking x: Value, value: Float, keepLast: Bool = false) throws -> Value {
        let last = type(x).rank - 1
        let differs = try cast(try compare(.ne, x, try const(value)), .f32)
        return try compare(.gt, try reduce(.max, differs, axes: [last], keepDims: keepLast), try const(0))
    }
}
