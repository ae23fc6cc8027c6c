// The CRF layer's shape rule. The layer is a linear-chain CRF over the tags of each step (the
// kiln_crf package's CRF): its input is the emission scores (batch, steps, tags), its weights
// transitions (tags, tags), start_transitions and end_transitions (tags), and its output the
// Viterbi tags (batch, steps) i32. It consumes the mask given to it. Lowering makes it a
// crf_viterbi primitive (Ops/CRF.swift), whose inputs the CRF loss reads.

/// The number of tags of a CRF layer's input, emission scores (batch, steps, tags) of floats;
/// otherwise a ShapeError naming the layer and the shape found.
public func crfTagCount(_ x: TensorType, layer: String) throws -> Int {
    guard x.rank == 3, x.dtype == .f32, x.shape[0].isBatch, !x.shape[1].isBatch, let n = x.shape[2].fixedValue, n >= 1 else {
        throw ShapeError(layer: layer, "expects emission scores of shape (batch, steps, tags) of floats, got \(x.kerasDescription)"
                            + (x.dtype == .f32 ? "" : " of \(x.dtype.rawValue)"),
                         hint: "give it one score per tag at every step, e.g. Dense(tags) or TimeDistributed(Dense(tags)) after a recurrent layer with return_sequences=True")
    }
    guard n <= ChainCRF.maxTags else {
        throw ShapeError(layer: layer, "has \(n) tags (its input \(x.kerasDescription)); Kiln's CRF takes at most \(ChainCRF.maxTags)")
    }
    return n
}
