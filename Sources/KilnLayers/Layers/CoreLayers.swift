// Keras' core layers: Dense, Embedding, Flatten, Reshape, Dropout and the
// activation layers.

import KilnIR
import KilnRuntime

/// A densely connected layer: `activation(x · kernel + bias)` (Keras' `Dense`).
public final class Dense: Layer {
    public let units: Int
    public let activation: KilnIR.Activation
    public let useBias: Bool

    /// - Parameters:
    ///   - units: the size of the output's last dimension.
    ///   - activation: applied to the output (default `.linear`, none).
    ///   - useBias: whether to add a bias vector.
    ///   - name: the layer name (default `dense`, `dense_1`, ...).
    public init(_ units: Int, activation: KilnIR.Activation = .linear, useBias: Bool = true, name: String? = nil) {
        self.units = units; self.activation = activation; self.useBias = useBias
        super.init(name: name, prefix: "dense")
    }

    public override var className: String { "Dense" }
    override package var op: LayerOp? { .dense(units: units, activation: activation, useBias: useBias) }

    override package func weightSpecs(_ inputs: [TensorType]) throws -> [LayerWeight] {
        guard units > 0 else { throw KerasAPIError("Dense '\(name)' needs a positive number of units, got \(units).") }
        guard let x = inputs.first, x.rank >= 2, let last = x.shape.last?.fixedValue else {
            throw KerasAPIError("Dense '\(name)' expects an input of rank 2 or more (the batch first), got \(inputs.first?.kerasDescription ?? "none").")
        }
        // Saved as "kernel" (in, units) and "bias" (units,).
        return [LayerWeight("kernel", [last, units], .glorotUniform)] + (useBias ? [LayerWeight("bias", [units], .zeros)] : [])
    }
}

/// Turns integer ids into dense vectors: row `id` of a table (Keras' `Embedding`).
public final class Embedding: Layer {
    public let inputDim: Int
    public let outputDim: Int
    public let maskZero: Bool

    /// - Parameters:
    ///   - inputDim: the vocabulary size (ids are 0 ..< inputDim).
    ///   - outputDim: the size of each vector.
    ///   - maskZero: whether id 0 is padding to be masked, as Keras' `mask_zero`.
    ///   - name: the layer name (default `embedding`, ...).
    public init(inputDim: Int, outputDim: Int, maskZero: Bool = false, name: String? = nil) {
        self.inputDim = inputDim; self.outputDim = outputDim; self.maskZero = maskZero
        super.init(name: name, prefix: "embedding")
    }

    public override var className: String { "Embedding" }
    override package var op: LayerOp? { .embedding(inputDim: inputDim, outputDim: outputDim, maskZero: maskZero) }

    override package func weightSpecs(_ inputs: [TensorType]) throws -> [LayerWeight] {
        guard inputDim > 0, outputDim > 0 else {
            throw KerasAPIError("Embedding '\(name)' needs positive inputDim and outputDim, got \(inputDim) and \(outputDim).")
        }
        // Saved as "embeddings" (inputDim, outputDim); Keras starts it uniform in ±0.05.
        return [LayerWeight("embeddings", [inputDim, outputDim], .uniform(0.05))]
    }
}

/// Flattens each sample to one dimension: (N, ...) -> (N, prod(...)) (Keras' `Flatten`).
public final class Flatten: Layer {
    /// - Parameters:
    ///   - name: the layer name (default `flatten`, ...).
    public init(name: String? = nil) { super.init(name: name, prefix: "flatten") }
    public override var className: String { "Flatten" }
    override package var op: LayerOp? { .flatten }
}

/// Reshapes each sample (Keras' `Reshape`).
public final class Reshape: Layer {
    public let targetShape: [Int]

    /// - Parameters:
    ///   - targetShape: the per-sample shape, without the batch; one entry may be -1.
    ///   - name: the layer name (default `reshape`, ...).
    public init(_ targetShape: [Int], name: String? = nil) {
        self.targetShape = targetShape
        super.init(name: name, prefix: "reshape")
    }
    public override var className: String { "Reshape" }
    override package var op: LayerOp? { .reshape(target: targetShape) }
}

/// Sets a fraction of the inputs to 0 while training, scaling the rest by
/// 1 / (1 - rate); the identity in `predict` (Keras' `Dropout`).
public final class Dropout: Layer {
    public let rate: Float

    /// - Parameters:
    ///   - rate: the fraction of inputs to drop, in [0, 1).
    ///   - name: the layer name (default `dropout`, ...).
    public init(_ rate: Float, name: String? = nil) {
        self.rate = rate
        super.init(name: name, prefix: "dropout")
    }
    public override var className: String { "Dropout" }
    override package var op: LayerOp? { .dropout(rate: rate) }

    override package func weightSpecs(_ inputs: [TensorType]) throws -> [LayerWeight] {
        guard rate >= 0, rate < 1 else { throw KerasAPIError("Dropout '\(name)' needs a rate in [0, 1), got \(rate).") }
        return []
    }
}

/// Applies an activation function (Keras' `Activation`, `ReLU`, `LeakyReLU`,
/// `Softmax` and `ELU` layers). Make one with ``Activation(_:name:)``.
///
/// The type is not called `Activation` because `KilnIR.Activation` names the
/// functions themselves (`.relu`, `.softmax`, ...).
public final class ActivationLayer: Layer {
    public let activation: KilnIR.Activation
    /// The slope or scale of `.leakyRelu` and `.elu`.
    public let alpha: Float
    private let kerasClass: String

    init(_ activation: KilnIR.Activation, alpha: Float, kerasClass: String, prefix: String, name: String?) {
        self.activation = activation; self.alpha = alpha; self.kerasClass = kerasClass
        super.init(name: name, prefix: prefix)
    }

    public override var className: String { kerasClass }
    override package var op: LayerOp? { .activation(activation, alpha: alpha) }
}

/// Keras' `Activation` layer.
/// - Parameters:
///   - activation: the function, e.g. `.relu`, `.softmax`, `.tanh`.
///   - name: the layer name (default `activation`, ...).
public func Activation(_ activation: KilnIR.Activation, name: String? = nil) -> ActivationLayer {
    ActivationLayer(activation, alpha: 0, kerasClass: "Activation", prefix: "activation", name: name)
}

/// Keras' `ReLU` layer: max(x, 0).
/// - Parameters:
///   - name: the layer name (default `re_lu`, ...).
public func ReLU(name: String? = nil) -> ActivationLayer {
    ActivationLayer(.relu, alpha: 0, kerasClass: "ReLU", prefix: "re_lu", name: name)
}

/// Keras' `LeakyReLU` layer: x for x > 0, else negativeSlope · x.
/// - Parameters:
///   - negativeSlope: the slope below 0 (Keras' default 0.3).
///   - name: the layer name (default `leaky_re_lu`, ...).
public func LeakyReLU(negativeSlope: Float = 0.3, name: String? = nil) -> ActivationLayer {
    ActivationLayer(.leakyRelu, alpha: negativeSlope, kerasClass: "LeakyReLU", prefix: "leaky_re_lu", name: name)
}

/// Keras' `ELU` layer: x for x > 0, else alpha · (exp(x) - 1).
/// - Parameters:
///   - alpha: the scale below 0 (default 1).
///   - name: the layer name (default `elu`, ...).
public func ELU(alpha: Float = 1, name: String? = nil) -> ActivationLayer {
    ActivationLayer(.elu, alpha: alpha, kerasClass: "ELU", prefix: "elu", name: name)
}

/// Keras' `Softmax` layer, over the last axis.
/// - Parameters:
///   - name: the layer name (default `softmax`, ...).
public func Softmax(name: String? = nil) -> ActivationLayer {
    ActivationLayer(.softmax, alpha: 0, kerasClass: "Softmax", prefix: "softmax", name: name)
}
