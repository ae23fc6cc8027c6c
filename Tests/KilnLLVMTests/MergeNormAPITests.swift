// The merge layers, BatchNormalization, the noise layers and ActivityRegularization through
// the Swift API: built, summarized, compiled, trained (the moving statistics move), saved
// as .keras and read back.

import Foundation
import XCTest
import Kiln
import KilnIR
import KilnKeras
import KilnRuntime

final class MergeNormAPITests: XCTestCase {
    func testMergesNormalizationAndNoiseThroughTheAPI() throws {
        Keras.clearSession(seed: 21)
        let a = Input(shape: [5], name: "a"), b = Input(shape: [5], name: "b")
        let ha = Dense(4, activation: .tanh)(a), hb = Dense(4)(b)
        let bn = BatchNormalization(momentum: 0.5)
        let merged = Concatenate()([Subtract()([ha, hb]), Multiply()([ha, hb]), Average()([ha, hb, ha]),
                                    Maximum()([ha, hb]), Minimum()([ha, hb]), Dot(axes: 1, normalize: true)([ha, hb])])
        let h = ActivityRegularization(l2: 0.01)(GaussianDropout(rate: 0.1)(GaussianNoise(stddev: 0.1)(bn(merged))))
        let m = try FunctionalModel(inputs: [a, b], outputs: [Dense(2)(h)])
        try m.compile(loss: "mse", optimizer: .sgd(learningRate: 0.05))
        let s = m.summary()
        for part in ["subtract (Subtract)", "dot (Dot)", "(None, 21)", "batch_normalization", "84",
                     "gaussian_noise (GaussianNoise)", "activity_regularization", "Non-trainable params: 42"] {
            XCTAssertTrue(s.contains(part), "'\(part)' not in:\n\(s)")
        }
        XCTAssertEqual(bn.weightNames, ["gamma", "beta", "moving_mean", "moving_variance"])

        var rng = TestRNG(4)
        let x = [HostTensor(shape: [12, 5], floats: rng.floats(60)), HostTensor(shape: [12, 5], floats: rng.floats(60))]
        let y = HostTensor(shape: [12, 2], floats: rng.floats(24))
        // Predict has no noise: the same numbers twice.
        let p1 = try m.predict(x)[0], p2 = try m.predict(x)[0]
        XCTAssertEqual(p1.floats, p2.floats)
        let before = bn.weights
        _ = try m.fit(x: x, y: [y], epochs: 1, batchSize: 6, shuffle: false, verbose: false)
        // Two steps of momentum 0.5 move the moving statistics toward the batches'.
        XCTAssertNotEqual(bn.weights[2], before[2], "moving_mean")
        XCTAssertNotEqual(bn.weights[3], before[3], "moving_variance")
        XCTAssertTrue(bn.weights[3].allSatisfy { $0 > 0 })

        // Saved as .keras and read back: the same summary, the same predictions.
        let dir = try makeTempDir(self, "mergenorm")
        try m.save(dir + "/m.keras")
        let loaded = try Compiler.load(dir + "/m.keras")
        XCTAssertEqual(ModelSummary.render(loaded), m.summary())
        let lib = try compileAndLoad(loaded, name: "mergenorm", dir: dir + "/lib")
        let want = try m.predict(x)[0]
        assertClose(try lib.predict(x)[0].floats, want.floats.map(Double.init), rtol: 0, atol: 1e-6, "predictions of the saved model")

        // For the by-hand check with real Keras (tools/check_saved_with_keras.py), as SaveTests:
        // KILN_SAVE_DUMP=DIR keeps the file, its inputs and the Swift model's predictions.
        if let dump = ProcessInfo.processInfo.environment["KILN_SAVE_DUMP"], !dump.isEmpty {
            try FileManager.default.createDirectory(atPath: dump, withIntermediateDirectories: true)
            try m.save(dump + "/mergenorm.keras")
            for (i, t) in x.enumerated() { try NPY.write(t, path: dump + "/mergenorm_x\(i).npy") }
            try NPY.write(want, path: dump + "/mergenorm_p0.npy")
        }
    }

    /// The compiled library's noise: x = 0 through GaussianNoise(0.5) and a fixed Dense whose
    /// kernel is 1/sqrt(200) everywhere gives N(0, 0.25) outputs, so the mse against 0 of one
    /// batch of 100 rows (the loss before the first update) is 0.25 within a few of its
    /// standard errors (0.035); predict has no noise.
    func testCompiledNoiseHasItsVariance() throws {
        Keras.clearSession(seed: 3)
        let x = Input(shape: [200])
        let dense = Dense(1)
        let m = try FunctionalModel(inputs: [x], outputs: [dense(GaussianNoise(stddev: 0.5)(x))])
        try m.compile(loss: "mse", optimizer: .sgd(learningRate: 0))
        try dense.setWeights([[Float](repeating: 1 / Float(200).squareRoot(), count: 200), [0]])
        let zeros = HostTensor(shape: [100, 200], floats: [Float](repeating: 0, count: 20000))
        let h = try m.fit(x: [zeros], y: [HostTensor(shape: [100, 1], floats: [Float](repeating: 0, count: 100))],
                          epochs: 3, batchSize: 100, shuffle: false, verbose: false)
        for l in h.loss { XCTAssertEqual(l, 0.25, accuracy: 0.12) }
        XCTAssertNotEqual(h.loss[0], h.loss[1], "each step draws anew")
        XCTAssertEqual(try m.predict(zeros).floats, [Float](repeating: 0, count: 100))
    }
}
