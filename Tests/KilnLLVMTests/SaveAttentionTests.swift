// The attention layers and LayerNormalization through the Swift API: saved as a .keras file and
// read back (KILN_SAVE_DUMP=DIR then tools/check_saved_with_keras.py checks the file with Keras).

import XCTest
import Kiln

extension SaveTests {
    /// Embedding(mask_zero) -> MultiHeadAttention(self) -> LayerNormalization ->
    /// Attention([h, e]) -> AdditiveAttention([c, h, e]) -> Flatten -> Dense; the masks pass
    /// through every attention layer (no Add: Kiln's Add does not merge masks yet, Keras' does).
    func attentionModel() throws -> FunctionalModel {
        Keras.clearSession(seed: 19)
        let ids = Input(shape: [5], dtype: .int32, name: "ids")
        let e = Embedding(inputDim: 10, outputDim: 4, maskZero: true)(ids)
        let a = MultiHeadAttention(numHeads: 2, keyDim: 3)(e, e)
        let h = LayerNormalization(epsilon: 1e-5)(a)
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
