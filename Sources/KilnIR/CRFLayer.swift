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

/// CRF: x (N, T, n), transitions (n, n), start (n), end (n), [mask (N, T) bool] -> (N, T) i32.
func inferCRF(masked: Bool, _ ins: [TensorType], layer: String) throws -> TensorType {
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
    return TensorType(.i32, [x.shape[0], x.shape[1]])
}
