// The CRF layer of the kiln_crf Python package (python/kiln_crf), for tagging: a linear-chain
// conditional random field over one tag per step.

import KilnIR
import KilnRuntime

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
    public init(name: String? = nil) { super.init(name: name, prefix: "crf") }

    public override var className: String { "CRF" }
    override package var op: LayerOp? { .crf(masked: false) }

    override package func weightSpecs(_ inputs: [TensorType]) throws -> [LayerWeight] {
        let n = try crfTagCount(inputs.first ?? .f32([]), layer: "CRF '\(name)'")
        // Saved as "transitions" (tags, tags), [i, j] the score of tag i followed by tag j,
        // "start_transitions" and "end_transitions" (tags,): the package's initialisers.
        return [LayerWeight("transitions", [n, n], .glorotUniform), LayerWeight("start_transitions", [n], .zeros), LayerWeight("end_transitions", [n], .zeros)]
    }
}
