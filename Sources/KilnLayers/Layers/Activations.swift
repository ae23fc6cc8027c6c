// The activation layers: Activation, ReLU, LeakyReLU, ELU, Softmax (one kind, the class
// it came from kept for the summary and the writer).

import KilnIR
import KilnSupport

/// An elementwise activation (softmax: over the last axis); passes the mask on.
public struct ActivationKind: LayerKind {
    public static let kerasClasses = ["Activation", "ReLU", "LeakyReLU", "ELU", "Softmax"]
    public var kerasClass: String
    public var activation: Activation
    /// LeakyReLU's slope, ELU's alpha, ReLU's negative_slope.
    public var alpha: Float
    /// ReLU's max_value and threshold.
    public var maxValue: Float?
    public var threshold: Float

    public init(_ activation: Activation, kerasClass: String = "Activation", alpha: Float = 0, maxValue: Float? = nil, threshold: Float = 0) {
        self.kerasClass = kerasClass; self.activation = activation; self.alpha = alpha; self.maxValue = maxValue; self.threshold = threshold
    }

    public init(keras c: KerasConfig) throws {
        switch c.className {
        case "ReLU":
            let maxValue: Float? = c.isAbsent("max_value") ? nil : try c.float("max_value")
            try self.init(.relu, kerasClass: "ReLU", alpha: c.float("negative_slope", 0), maxValue: maxValue, threshold: c.float("threshold", 0))
        case "LeakyReLU":
            // Keras 3 writes negative_slope; Keras 2 wrote alpha.
            let slope = c.isAbsent("negative_slope") ? try c.float("alpha", 0.3) : try c.float("negative_slope")
            self.init(.leakyRelu, kerasClass: "LeakyReLU", alpha: slope)
        case "ELU":
            try self.init(.elu, kerasClass: "ELU", alpha: c.float("alpha", 1))
        case "Softmax":
            if let axis = c["axis"]?.int, axis != -1 { throw c.fail("uses axis \(axis); Kiln supports the last axis") }
            self.init(.softmax, kerasClass: "Softmax")
        default:
            try self.init(c.activation(), kerasClass: "Activation")
        }
    }

    public var description: String {
        if kerasClass == "ReLU" { return "relu<max=\(maxValue.map { "\($0)" } ?? "none"), slope=\(alpha), threshold=\(threshold)>" }
        return "activation<\(activation.rawValue)\(alpha != 0 ? ", alpha=\(alpha)" : "")>"
    }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 1...1, layer)
        return [ins[0]]
    }

    public var supportsMasking: Bool { true }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let x = ins[0]
        guard kerasClass == "ReLU" else { return [try b.activation(activation, x, alpha: alpha)] }
        // As Keras' relu(x, negative_slope, max_value, threshold).
        let slope = alpha
        if slope != 0 && maxValue == nil && threshold == 0 { return [try b.activation(.leakyRelu, x, alpha: slope)] }
        let negPart = slope != 0 ? try b.unary(.relu, try b.add(try b.unary(.neg, x), threshold)) : nil
        var y = threshold != 0 ? try b.mul(x, try b.cast(try b.compare(.gt, x, try b.const(threshold)), .f32)) : try b.unary(.relu, x)
        if let m = maxValue { y = try b.binary(.min, try b.binary(.max, y, try b.const(0)), try b.const(m)) }
        if let n = negPart { y = try b.sub(y, try b.mul(n, slope)) }
        return [y]
    }

    public func kerasConfig() -> [(String, JSON)] {
        switch kerasClass {
        case "ReLU": return [("max_value", maxValue.map(KerasJSON.float) ?? .null), ("negative_slope", KerasJSON.float(alpha)),
                             ("threshold", KerasJSON.float(threshold))]
        case "LeakyReLU": return [("negative_slope", KerasJSON.float(alpha))]
        case "ELU": return [("alpha", KerasJSON.float(alpha))]
        case "Softmax": return [("axis", .number(-1))]
        default: return [("activation", .string(activation.rawValue))]
        }
    }
}

/// Applies an activation function (Keras' `Activation`, `ReLU`, `LeakyReLU`,
/// `Softmax` and `ELU` layers). Make one with ``Activation(_:name:)``.
///
/// The type is not called `Activation` because `KilnIR.Activation` names the
/// functions themselves (`.relu`, `.softmax`, ...).
public final class ActivationLayer: Layer {
    public var activation: KilnIR.Activation { (kind as! ActivationKind).activation }
    /// The slope or scale of `.leakyRelu` and `.elu`.
    public var alpha: Float { (kind as! ActivationKind).alpha }

    init(_ kind: ActivationKind, name: String?) { super.init(kind: kind, name: name) }
}

/// Keras' `Activation` layer.
/// - Parameters:
///   - activation: the function, e.g. `.relu`, `.softmax`, `.tanh`.
///   - name: the layer name (default `activation`, ...).
public func Activation(_ activation: KilnIR.Activation, name: String? = nil) -> ActivationLayer {
    ActivationLayer(ActivationKind(activation), name: name)
}

/// Keras' `ReLU` layer: max(x, 0).
/// - Parameters:
///   - name: the layer name (default `re_lu`, ...).
public func ReLU(name: String? = nil) -> ActivationLayer {
    ActivationLayer(ActivationKind(.relu, kerasClass: "ReLU"), name: name)
}

/// Keras' `LeakyReLU` layer: x for x > 0, else negativeSlope · x.
/// - Parameters:
///   - negativeSlope: the slope below 0 (Keras' default 0.3).
///   - name: the layer name (default `leaky_re_lu`, ...).
public func LeakyReLU(negativeSlope: Float = 0.3, name: String? = nil) -> ActivationLayer {
    ActivationLayer(ActivationKind(.leakyRelu, kerasClass: "LeakyReLU", alpha: negativeSlope), name: name)
}

/// Keras' `ELU` layer: x for x > 0, else alpha · (exp(x) - 1).
/// - Parameters:
///   - alpha: the scale below 0 (default 1).
///   - name: the layer name (default `elu`, ...).
public func ELU(alpha: Float = 1, name: String? = nil) -> ActivationLayer {
    ActivationLayer(ActivationKind(.elu, kerasClass: "ELU", alpha: alpha), name: name)
}

/// Keras' `Softmax` layer, over the last axis.
/// - Parameters:
///   - name: the layer name (default `softmax`, ...).
public func Softmax(name: String? = nil) -> ActivationLayer {
    ActivationLayer(ActivationKind(.softmax, kerasClass: "Softmax"), name: name)
}
