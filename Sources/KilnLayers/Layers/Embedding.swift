// Embedding: row `id` of a table for every integer id.

import KilnIR
import KilnSupport

/// ids (N, …) int, table (inputDim, outputDim) -> (N, …, outputDim). With mask_zero, id 0 is
/// padding: the output carries the mask ids != 0.
public struct EmbeddingKind: LayerKind {
    public static let kerasClasses = ["Embedding"]
    public var inputDim: Int
    public var outputDim: Int
    public var maskZero: Bool

    public init(inputDim: Int, outputDim: Int, maskZero: Bool = false) {
        self.inputDim = inputDim; self.outputDim = outputDim; self.maskZero = maskZero
    }

    public init(keras c: KerasConfig) throws {
        try self.init(inputDim: c.positive("input_dim"), outputDim: c.positive("output_dim"), maskZero: c.bool("mask_zero", false))
        try c.require("lora_rank", .null, "no LoRA")
    }

    public var description: String { "embedding<\(inputDim), \(outputDim)\(maskZero ? ", mask_zero" : "")>" }

    public func weights(for inputs: [TensorType]) throws -> [LayerWeight] {
        guard inputDim >= 1, outputDim >= 1 else {
            throw ShapeError(layer: "Embedding", "input_dim=\(inputDim) and output_dim=\(outputDim) must be positive")
        }
        // Saved as "embeddings" (inputDim, outputDim); Keras starts it uniform in ±0.05.
        return [LayerWeight("embeddings", [inputDim, outputDim], .uniform(0.05))]
    }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        guard inputDim >= 1, outputDim >= 1 else {
            throw ShapeError(layer: layer, "input_dim=\(inputDim) and output_dim=\(outputDim) must be positive")
        }
        try expectArity(ins, 2...2, layer)
        let x = ins[0]
        guard let first = x.shape.first, first.isBatch, !x.shape.dropFirst().contains(where: \.isBatch) else {
            throw ShapeError(layer: layer, "expects batched token ids (None, ...), got \(x.kerasDescription)")
        }
        if ins[1].shape != [.fixed(inputDim), .fixed(outputDim)] {
            throw ShapeError(layer: layer, "table of shape \(ins[1].kerasDescription) is not (\(inputDim), \(outputDim))")
        }
        return [.f32(x.shape + [.fixed(outputDim)])]
    }

    public func outputMask(_ b: inout PrimBuilder, inputs: [Value], masks: [Value?], outputs: [Value]) throws -> Value? {
        maskZero ? try b.compare(.ne, inputs[0], try b.const(0)) : nil
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        [try b.p(.gather, ins[1], try b.cast(ins[0], .i32))]
    }

    public func kerasConfig() -> [(String, JSON)] {
        let uniform = KerasJSON.initializer("RandomUniform", [("seed", .null), ("minval", .number(-0.05)), ("maxval", .number(0.05))])
        return [("input_dim", KerasJSON.int(inputDim)), ("output_dim", KerasJSON.int(outputDim)),
                ("embeddings_initializer", uniform), ("embeddings_regularizer", .null),
                ("activity_regularizer", .null), ("embeddings_constraint", .null),
                ("mask_zero", .bool(maskZero)), ("quantization_config", .null)]
    }
}

/// Turns integer ids into dense vectors: row `id` of a table (Keras' `Embedding`).
public final class Embedding: Layer {
    private var embedding: EmbeddingKind { kind as! EmbeddingKind }
    public var inputDim: Int { embedding.inputDim }
    public var outputDim: Int { embedding.outputDim }
    public var maskZero: Bool { embedding.maskZero }

    /// - Parameters:
    ///   - inputDim: the vocabulary size (ids are 0 ..< inputDim).
    ///   - outputDim: the size of each vector.
    ///   - maskZero: whether id 0 is padding to be masked, as Keras' `mask_zero`.
    ///   - name: the layer name (default `embedding`, ...).
    public init(inputDim: Int, outputDim: Int, maskZero: Bool = false, name: String? = nil) {
        super.init(kind: EmbeddingKind(inputDim: inputDim, outputDim: outputDim, maskZero: maskZero), name: name)
    }
}
