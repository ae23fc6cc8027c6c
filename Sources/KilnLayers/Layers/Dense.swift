// Dense: activation(x · kernel + bias) on the last axis.

import KilnIR
import KilnSupport

/// x (…, in), kernel (in, units), [bias (units)] -> (…, units). Passes the mask on (Keras'
/// supports_masking), so a Dense on every step of a masked sequence keeps it.
public struct DenseKind: LayerKind {
    public static let kerasClasses = ["Dense"]
    public var units: Int
    public var activation: Activation
    public var useBias: Bool

    public init(units: Int, activation: Activation = .linear, useBias: Bool = true) {
        self.units = units; self.activation = activation; self.useBias = useBias
    }

    public init(keras c: KerasConfig) throws {
        try self.init(units: c.positive("units"), activation: c.activation(), useBias: c.bool("use_bias", true))
        try c.require("lora_rank", .null, "no LoRA")
    }

    public var description: String { "dense<units=\(units), \(activation.rawValue)\(useBias ? "" : ", no_bias")>" }

    public func weights(for inputs: [TensorType]) throws -> [LayerWeight] {
        guard units >= 1 else { throw ShapeError(layer: "Dense", "units=\(units) must be positive") }
        guard let x = inputs.first, x.rank >= 2, let last = x.shape.last?.fixedValue else {
            throw ShapeError(layer: "Dense", "expects an input of rank 2 or more with a fixed last dimension, got \(inputs.first?.kerasDescription ?? "none")")
        }
        // Saved as "kernel" (in, units) and "bias" (units,).
        return [LayerWeight("kernel", [last, units])] + (useBias ? [LayerWeight("bias", [units], .zeros)] : [])
    }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        guard units >= 1 else { throw ShapeError(layer: layer, "units=\(units) must be positive") }
        try expectArity(ins, useBias ? 3...3 : 2...2, layer)
        let x = ins[0]
        guard x.rank >= 2, let last = x.shape.last?.fixedValue else {
            throw ShapeError(layer: layer, "expects an input of rank 2 or more with a fixed last dimension, got \(x.kerasDescription)")
        }
        if ins[1].shape != [.fixed(last), .fixed(units)] {
            throw ShapeError(layer: layer, "kernel of shape \(ins[1].kerasDescription) does not fit input \(x.kerasDescription) and \(units) units",
                             hint: "expected kernel (\(last), \(units))")
        }
        return [.f32(Array(x.shape.dropLast()) + [.fixed(units)])]
    }

    public var supportsMasking: Bool { true }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let x = ins[0], xt = b.type(x)
        let inDim = xt.shape.last!.factor
        let rows = Dim.product(Array(xt.shape.dropLast()))!
        let x2 = try b.reshape(x, [rows, .fixed(inDim)])
        var y = try b.reshape(try b.p(.matmul(transA: false, transB: false), x2, ins[1]), Array(xt.shape.dropLast()) + [.fixed(units)])
        if useBias { y = try b.add(y, ins[2]) }
        return [try b.activation(activation, y)]
    }

    public func kerasConfig() -> [(String, JSON)] {
        [("units", KerasJSON.int(units)), ("activation", .string(activation.rawValue)), ("use_bias", .bool(useBias)),
         ("kernel_initializer", KerasJSON.glorotUniform), ("bias_initializer", KerasJSON.zeros),
         ("kernel_regularizer", .null), ("bias_regularizer", .null), ("kernel_constraint", .null), ("bias_constraint", .null),
         ("quantization_config", .null)]
    }
}

/// A densely connected layer: `activation(x · kernel + bias)` (Keras' `Dense`).
public final class Dense: Layer {
    private var dense: DenseKind { kind as! DenseKind }
    public var units: Int { dense.units }
    public var activation: KilnIR.Activation { dense.activation }
    public var useBias: Bool { dense.useBias }

    /// - Parameters:
    ///   - units: the size of the output's last dimension.
    ///   - activation: applied to the output (default `.linear`, none).
    ///   - useBias: whether to add a bias vector.
    ///   - name: the layer name (default `dense`, `dense_1`, ...).
    public init(_ units: Int, activation: KilnIR.Activation = .linear, useBias: Bool = true, name: String? = nil) {
        super.init(kind: DenseKind(units: units, activation: activation, useBias: useBias), name: name)
    }
}
