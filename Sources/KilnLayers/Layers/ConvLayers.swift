// Keras' 2-D convolution and pooling layers (channels_last: N, H, W, C).

import KilnIR
import KilnRuntime

/// A 2-D convolution: `activation(conv(x, kernel) + bias)` (Keras' `Conv2D`).
public final class Conv2D: Layer {
    public let filters: Int
    public let kernelSize: Size2D
    public let strides: Size2D
    public let padding: Padding
    public let activation: KilnIR.Activation
    public let useBias: Bool

    /// - Parameters:
    ///   - filters: the number of output channels.
    ///   - kernelSize: the window, `3` or `[3, 2]` (height, width).
    ///   - strides: the step of the window (default 1).
    ///   - padding: `.valid` (no padding, default) or `.same` (output = ceil(input / stride)).
    ///   - activation: applied to the output (default `.linear`, none).
    ///   - useBias: whether to add a bias per filter.
    ///   - name: the layer name (default `conv2d`, `conv2d_1`, ...).
    public init(_ filters: Int, kernelSize: Size2D, strides: Size2D = 1, padding: Padding = .valid,
                activation: KilnIR.Activation = .linear, useBias: Bool = true, name: String? = nil) {
        self.filters = filters; self.kernelSize = kernelSize; self.strides = strides
        self.padding = padding; self.activation = activation; self.useBias = useBias
        super.init(name: name, prefix: "conv2d")
    }

    public override var className: String { "Conv2D" }
    override package var op: LayerOp? {
        .conv2D(filters: filters, kernel: kernelSize.list, strides: strides.list, padding: padding,
                activation: activation, useBias: useBias)
    }

    override package func weightSpecs(_ inputs: [TensorType]) throws -> [LayerWeight] {
        guard filters > 0, kernelSize.list.allSatisfy({ $0 > 0 }), strides.list.allSatisfy({ $0 > 0 }) else {
            throw KerasAPIError("Conv2D '\(name)' needs positive filters, kernel size and strides.")
        }
        guard let x = inputs.first, x.rank == 4, let channels = x.shape[3].fixedValue else {
            throw KerasAPIError("Conv2D '\(name)' expects an input of rank 4 (batch, height, width, channels), got \(inputs.first?.kerasDescription ?? "none").")
        }
        // Saved as "kernel" (kh, kw, C, filters) and "bias" (filters,).
        return [LayerWeight("kernel", kernelSize.list + [channels, filters], .glorotUniform)]
            + (useBias ? [LayerWeight("bias", [filters], .zeros)] : [])
    }
}

/// The maximum over each window (Keras' `MaxPooling2D`).
public final class MaxPooling2D: Layer {
    public let poolSize: Size2D
    public let strides: Size2D
    public let padding: Padding

    /// - Parameters:
    ///   - poolSize: the window (default 2).
    ///   - strides: the step (default: the pool size).
    ///   - padding: `.valid` (default) or `.same`.
    ///   - name: the layer name (default `max_pooling2d`, ...).
    public init(poolSize: Size2D = 2, strides: Size2D? = nil, padding: Padding = .valid, name: String? = nil) {
        self.poolSize = poolSize; self.strides = strides ?? poolSize; self.padding = padding
        super.init(name: name, prefix: "max_pooling2d")
    }

    public override var className: String { "MaxPooling2D" }

    override package func weightSpecs(_ inputs: [TensorType]) throws -> [LayerWeight] {
        try checkWindow(poolSize, strides, "MaxPooling2D", name)
        return []
    }
    override package var op: LayerOp? { .maxPool2D(pool: poolSize.list, strides: strides.list, padding: padding) }
}

/// The mean over each window; padded cells are not counted (Keras' `AveragePooling2D`).
public final class AveragePooling2D: Layer {
    public let poolSize: Size2D
    public let strides: Size2D
    public let padding: Padding

    /// - Parameters:
    ///   - poolSize: the window (default 2).
    ///   - strides: the step (default: the pool size).
    ///   - padding: `.valid` (default) or `.same`.
    ///   - name: the layer name (default `average_pooling2d`, ...).
    public init(poolSize: Size2D = 2, strides: Size2D? = nil, padding: Padding = .valid, name: String? = nil) {
        self.poolSize = poolSize; self.strides = strides ?? poolSize; self.padding = padding
        super.init(name: name, prefix: "average_pooling2d")
    }

    public override var className: String { "AveragePooling2D" }

    override package func weightSpecs(_ inputs: [TensorType]) throws -> [LayerWeight] {
        try checkWindow(poolSize, strides, "AveragePooling2D", name)
        return []
    }
    override package var op: LayerOp? { .avgPool2D(pool: poolSize.list, strides: strides.list, padding: padding) }
}

/// The mean over height and width: (N, H, W, C) -> (N, C) (Keras' `GlobalAveragePooling2D`).
public final class GlobalAveragePooling2D: Layer {
    /// - Parameters:
    ///   - name: the layer name (default `global_average_pooling2d`, ...).
    public init(name: String? = nil) { super.init(name: name, prefix: "global_average_pooling2d") }
    public override var className: String { "GlobalAveragePooling2D" }
    override package var op: LayerOp? { .globalAvgPool2D }
}

/// Throws unless a pooling window and its strides are positive.
private func checkWindow(_ pool: Size2D, _ strides: Size2D, _ cls: String, _ name: String) throws {
    guard (pool.list + strides.list).allSatisfy({ $0 > 0 }) else {
        throw KerasAPIError("\(cls) '\(name)' needs a positive pool size and strides, got \(pool.list) and \(strides.list).")
    }
}
