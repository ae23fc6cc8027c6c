// The attention layers and LayerNormalization through the Swift API: saved as a .keras file and
// read back (KILN_SAVE_DUMP=DIR then tools/check_saved_with_keras.py checks the file with Keras).

import XCTest
import Kiln

extension SaveTests {
    /// Embedding(mask_zero) -> MultiHeadAttention(self) -> Add -> LayerNormalization ->
    /// Attention([h, e]) -> AdditiveAttention([c, h, e]) -> Flatten -> Dense; the masks go
    /// as Keras 3 has them: the MultiHeadAttention takes e's, then removes it, so the Add (one
    /// input without a mask) gives none, and the checks with Keras agree on it.
    func attentionModel() throws -> FunctionalModel {
        Keras.clearSession(seed: 19)
        let ids = Input(shape: [5], dtype: .int32, name: "ids")
        let e = Embedding(inputDim: 10, outputDim: 4, maskZero: true)(ids)
        let a = MultiHeadAttention(numHeads: 2, keyDim: 3)(e, e)
        let h = LayerNormalization(epsilon: 1e-5)(Add()([e, a]))
        let c = Attention(useScale: true, scoreMode: "concat")([h, e])
        let d = AdditiveAttention()([c, h, e])
        let o = Dense(2)(Flatten()(d))
        let m = try FunctionalModel(inputs: [ids], outputs: [o])
        try m.compile(loss: "mse", optimizer: .sgd(learningRate: 0.05))
        try randomize(m, seed: 4)
        return m
    }

    func testAttentionLayersRoundTrip() throws {
        let m = try attentionModel()
        XCTAssertEqual(m.weightShapes.count, 1 + 8 + 2 + 2 + 1 + 2)
        XCTAssertTrue(m.summary().contains("MultiHeadAttention"), m.summary())
        try checkSaved(m, "attention_layers")
    }
}
