// The Swift API's 1-D sequence layers (Conv1D, the 1-D poolings, ZeroPadding1D, UpSampling1D,
// RepeatVector, Permute, SpatialDropout1D): saved as .keras and read back every way
// (SaveTests.checkSaved), their default names, and SpatialDropout1D's config as Keras' own.

import Foundation
import XCTest
import Kiln
import KilnIR
import KilnKeras
import KilnRuntime

extension SaveTests {
    /// Every 1-D layer of the group in one model: Embedding(mask_zero) -> Conv1D(same) ->
    /// MaxPooling1D(same) -> SpatialDropout1D -> Conv1D(causal, dilation 2) -> ZeroPadding1D ->
    /// UpSampling1D -> AveragePooling1D(same) -> Permute -> Conv1D(channels_first) ->
    /// GlobalMaxPooling1D -> RepeatVector -> GlobalAveragePooling1D(keepdims) -> Flatten -> Dense.
    func seq1D() throws -> Sequential {
        Keras.clearSession(seed: 19)
        let m = try Sequential([
            Embedding(inputDim: 12, outputDim: 4, maskZero: true),
            Conv1D(6, kernelSize: 3, padding: .same, activation: .relu),
            MaxPooling1D(poolSize: 2, strides: 1, padding: .same),
            SpatialDropout1D(0.3),
            Conv1D(5, kernelSize: 2, padding: .causal, dilationRate: 2),
            ZeroPadding1D(padding: (1, 2)),
            UpSampling1D(size: 2),
            AveragePooling1D(poolSize: 3, strides: 2, padding: .same),
            Permute([2, 1]),
            Conv1D(3, kernelSize: 2, strides: 2, useBias: false, channelsFirst: true),
            GlobalMaxPooling1D(),
            RepeatVector(2),
            GlobalAveragePooling1D(keepdims: true),
            Flatten(),
            Dense(3, activation: .softmax),
        ], input: Input(shape: [8], dtype: .int32))
        try m.compile(loss: "categorical_crossentropy", optimizer: .adam(learningRate: 0.01))
        try randomize(m, seed: 4)
        return m
    }

    func testSeq1DLayersRoundTrip() throws {
        let m = try seq1D()
        let summary = m.summary()
        // (8 steps) -> conv same (8, 6) -> pool (8, 6) -> causal (8, 5) -> pad (11, 5) -> x2 (22, 5)
        // -> avg pool (11, 5) -> permute (5, 11) -> channels_first conv (3, 5) -> max (5,) -> ...
        for row in ["conv1d (Conv1D)", "(None, 8, 6)", "max_pooling1d (MaxPooling1D)", "spatial_dropout1d (SpatialDropout1D)",
                    "(None, 8, 5)", "zero_padding1d (ZeroPadding1D)", "(None, 11, 5)", "up_sampling1d (UpSampling1D)", "(None, 22, 5)",
                    "average_pooling1d (AveragePooling1D)", "permute (Permute)", "(None, 5, 11)", "conv1d_2 (Conv1D)", "(None, 3, 5)",
                    "global_max_pooling1d", "repeat_vector (RepeatVector)", "(None, 2, 5)", "global_average_pooling1d", "(None, 1, 5)"] {
            XCTAssertTrue(summary.contains(row), "'\(row)' not in:\n\(summary)")
        }
        XCTAssertEqual(m.weightShapes, [[12, 4], [3, 4, 6], [6], [2, 6, 5], [5], [2, 5, 3], [5, 3], [3]])
        try checkSaved(m, "seq1d")
    }

    /// Keras' SpatialDropout1D takes no `trainable` argument: its saved config has none.
    func testSpatialDropout1DConfigAsKeras() throws {
        let m = try seq1D()
        let dir = try makeTempDir(self, "save")
        try m.save(dir + "/m.keras")
        let spec = try KerasArchive.read(path: dir + "/m.keras")
        let drop = try XCTUnwrap(spec.layers.first { $0.className == "SpatialDropout1D" })
        XCTAssertNil(drop.config["trainable"])
        XCTAssertEqual(drop.config["rate"]?.float, 0.3)
        XCTAssertNotNil(spec.layers.first { $0.className == "Conv1D" }?.config["trainable"])
    }

    /// SpatialDropout1D(0.5) compiled: predict is the model without it (same weights, the same
    /// numbers), and training runs with the channels dropped (its losses are not the
    /// dropout-free model's).
    func testSpatialDropout1DCompiled() throws {
        Keras.clearSession(seed: 23)
        let drop = try Sequential([Conv1D(4, kernelSize: 2, activation: .tanh), SpatialDropout1D(0.5), GlobalAveragePooling1D(), Dense(2)],
                                  input: Input(shape: [6, 3]))
        let plain = try Sequential([Conv1D(4, kernelSize: 2, activation: .tanh), GlobalAveragePooling1D(), Dense(2)], input: Input(shape: [6, 3]))
        for m in [drop, plain] { try m.compile(loss: "mse", optimizer: .sgd(learningRate: 0.1)) }
        try randomize(drop, seed: 6)
        try plain.setWeights(drop.weights)
        let x = inputs(drop, rows: 16, seed: 5)[0]
        let (a, b) = (try drop.predict(x), try plain.predict(x))
        assertClose(a.floats, b.floats.map(Double.init), rtol: 0, atol: 0, "SpatialDropout1D in predict")
        var rng = TestRNG(8)
        let y = HostTensor(shape: [16, 2], floats: rng.floats(32))
        let before = drop.weights
        let hd = try drop.fit(x: x, y: y, epochs: 3, batchSize: 8, shuffle: false, verbose: false)
        let hp = try plain.fit(x: x, y: y, epochs: 3, batchSize: 8, shuffle: false, verbose: false)
        XCTAssertTrue(hd.loss.allSatisfy(\.isFinite), "\(hd.loss)")
        XCTAssertNotEqual(drop.weights, before)
        XCTAssertNotEqual(hd.loss, hp.loss, "the dropout was not applied in training")
    }
}
