// The CRF layer of the kiln_crf Python package (python/kiln_crf), for tagging: a linear-chain
// conditional random field over one tag per step.

import KilnIR
import KilnSupport

/// x (N, T, n) emission scores, transitions (n, n), start (n), end (n), [mask (N, T) bool] ->
/// the Viterbi tags (N, T) i32. It consumes the mask before it (masked steps are skipped) and
/// passes none on. Lowering makes a crf_viterbi primitive (Ops/CRF.swift), whose inputs the
/// CRF loss reads.
public struct CRFKind: LayerKind {
    public static let kerasClasses = ["CRF"]
    public var masked: Bool
    public init(masked: Bool = false) { self.masked = masked }
    public init(keras c: KerasConfig) throws { self.init() }
    public var description: String { "crf" + (masked ? "<masked>" : "") }

    public func weights(for inputs: [TensorType]) throws -> [LayerWeight] {
        let n = try crfTagCount(inputs.first ?? .f32([]), layer: "CRF")
        // Saved as "transitions" (tags, tags), [i, j] the score of tag i followed by tag j,
        // "start_transitions" and "end_transitions" (tags,): the package's initialisers.
        return [LayerWeight("transitions", [n, n]), LayerWeight("start_transitions", [n], .zeros), LayerWeight("end_transitions", [n], .zeros)]
    }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, masked ? 5...5 : 4...4, layer)
        let x = ins[0]
        let n = try crfTagCount(x, layer: layer)
        for (k, (name, shape)) in [("transitions", [n, n]), ("start_transitions", [n]), ("end_transitions", [n])].enumerated()
        where ins[k + 1] != .f32(shape.map { .fixed($0) }) {
            throw ShapeError(layer: layer, "weight \(name) of shape \(formatShape(ins[k + 1].shape.map(\.factor))) does not fit \(n) tags",
                             hint: "expected \(formatShape(shape))")
        }
        if masked, ins[4] != TensorType(.bool, [x.shape[0], x.shape[1]]) {
            throw ShapeError(layer: layer, "mask \(ins[4]) does not fit input \(x.kerasDescription)")
        }
        return [TensorType(.i32, [x.shape[0], x.shape[1]])]
    }

    public func consumingMask() -> CRFKind? { masked ? nil : CRFKind(masked: true) }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        // Predict's form: the Viterbi path. The CRF loss (Losses.crf) reads this node's inputs.
        try b.graph.add(.prim(.crfViterbi), ins, layer: b.layer)
    }

    public func kerasConfig() -> [(String, JSON)] {
        // The kiln_crf package's config: its initialisers' names.
        [("transitions_initializer", .string("glorot_uniform")), ("boundary_initializer", .string("zeros"))]
    }
}

/// A linear-chain CRF on emission scores (batch, steps, tags), as the kiln_crf package's `CRF`:
/// `predict` gives the Viterbi tags (batch, steps) as int32 (0 at masked steps), and training
/// takes the CRF loss, the negative log-likelihood of the target tags (compile with the loss
/// "crf" or ``LossConfig/crf(layer:)``; targets are int tag ids (batch, steps)). It consumes the
/// mask of an `Embedding(maskZero: true)` before it: masked steps are skipped.
///
///     let tokens = Input(shape: [20], dtype: .int32)
///     let scores = Dense(5)(Embedding(inputDim: 100, outputDim: 16, maskZero: true)(tokens))
///     let model = try FunctionalModel(inputs: tokens, outputs: CRF()(scores))
///     try model.compile(loss: "crf", optimizer: .adam())
public final class CRF: Layer {
    /// - Parameters:
    ///   - name: the layer name (default `crf`, `crf_1`, ...).
    public init(name: String? = nil) { super.init(kind: CRFKind(), name: name) }
}
