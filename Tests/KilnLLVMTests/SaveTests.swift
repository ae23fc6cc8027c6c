// Saving Swift-API models as Keras 3 `.keras` files: the file reads back
// through `Compiler.load` (same summary, same training settings, the same
// predictions when compiled), through `kiln compile`, and through
// `KerasArchive.read` (the same weights in order); read -> write -> read
// gives the same spec; a failed save leaves nothing behind.

import Foundation
import XCTest
import Kiln
import KilnIR
import KilnKeras
import KilnRuntime

final class SaveTests: XCTestCase {
    // MARK: - Models

    /// A small CNN classifier, compiled with categorical cross-entropy and Adam(0.01).
    func cnn() throws -> Sequential {
        Keras.clearSession(seed: 7)
        let m = try Sequential([
            Conv2D(4, kernelSize: 3, activation: .relu),
            MaxPooling2D(),
            Flatten(),
            Dropout(0.25),
            Dense(3, activation: .softmax),
        ], input: Input(shape: [8, 8, 1]))
        try m.compile(loss: "categorical_crossentropy", optimizer: .adam(learningRate: 0.01))
        try randomize(m, seed: 1)
        return m
    }

    /// Two inputs, Dense, Concatenate and Add.
    func twoInputs() throws -> FunctionalModel {
        Keras.clearSession(seed: 11)
        let a = Input(shape: [5], name: "a"), b = Input(shape: [4], name: "b")
        let h = Concatenate()([Dense(6, activation: .relu)(a), b])
        let o = Add()([Dense(3)(h), Dense(3, activation: .tanh)(a)])
        let m = try FunctionalModel(inputs: [a, b], outputs: [o])
        try m.compile(loss: "mse", optimizer: .sgd(learningRate: 0.05, momentum: 0.9))
        try randomize(m, seed: 2)
        return m
    }

    /// Every other savable layer: Embedding, Reshape, the activation layers,
    /// AveragePooling2D (same padding), GlobalAveragePooling2D.
    func otherLayers() throws -> Sequential {
        Keras.clearSession(seed: 13)
        let m = try Sequential([
            Embedding(inputDim: 10, outputDim: 4),
            Reshape([2, 3, 4]),
            AveragePooling2D(poolSize: 2, strides: 1, padding: .same),
            ReLU(),
            LeakyReLU(negativeSlope: 0.2),
            ELU(alpha: 0.5),
            Conv2D(5, kernelSize: [1, 2], strides: [1, 1], padding: .same, useBias: false),
            GlobalAveragePooling2D(),
            Activation(.tanh),
            Dense(3, useBias: false),
            Softmax(),
        ], input: Input(shape: [6], dtype: .int32))
        try m.compile(loss: .categoricalCrossentropy(fromLogits: false, labelSmoothing: 0.1),
                      optimizer: .rmsprop(learningRate: 0.002, momentum: 0.5, centered: true), metrics: ["accuracy"])
        try randomize(m, seed: 3)
        return m
    }

    /// Weights that are not the initialisers' (biases non-zero).
    func randomize(_ m: KerasModel, seed: UInt64) throws {
        var rng = TestRNG(seed)
        try m.setWeights(m.weightShapes.map { rng.floats($0.reduce(1, *), -0.7, 0.7) })
    }

    func inputs(_ m: KerasModel, rows: Int, seed: UInt64) -> [HostTensor] {
        var rng = TestRNG(seed)
        return m.inputs.map { t in
            let shape = [rows] + t.shape.dropFirst().map { $0! }
            let n = shape.reduce(1, *)
            if t.dtype == .int32 { return HostTensor(shape: shape, ints: (0..<n).map { _ in Int32(rng.int(10)) }) }
            return HostTensor(shape: shape, floats: rng.floats(n))
        }
    }

    // MARK: - Checks

    /// Saves `m`, loads it back every way and compares.
    func checkSaved(_ m: KerasModel, _ tag: String, compareSummary: Bool = true,
                    file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try makeTempDir(self, "save")
        let path = dir + "/\(tag).keras"
        try m.save(path)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["\(tag).keras"],
                       "\(tag): only the model file is left", file: file, line: line)

        // Compiler.load: the same summary and training settings.
        let loaded = try Compiler.load(path)
        if compareSummary {
            XCTAssertEqual(ModelSummary.render(loaded), m.summary(), "\(tag): summary", file: file, line: line)
        }
        XCTAssertNotNil(loaded.training, "\(tag): training settings", file: file, line: line)
        XCTAssertEqual(loaded.training, m.training, "\(tag): training settings", file: file, line: line)

        // KerasArchive.read: the same weights, in get_weights() order.
        let spec = try KerasArchive.read(path: path)
        let saved = spec.layers.flatMap(\.weights)
        XCTAssertEqual(saved.map(\.shape), m.weightShapes, "\(tag): weight shapes", file: file, line: line)
        XCTAssertEqual(saved.map { bits($0.values) }, m.weights.map { bits($0) }, "\(tag): weight values", file: file, line: line)
        XCTAssertEqual(spec.optimizerParamCount, 0, file: file, line: line)

        // The same predictions, from the loaded file compiled anew.
        let x = inputs(m, rows: 7, seed: 99)
        let want = try m.predict(x)
        let lib = try compileAndLoad(loaded, name: "saved_\(tag)", dir: dir + "/lib")
        let got = try lib.predict(x)
        XCTAssertEqual(got.map(\.shape), want.map(\.shape), "\(tag): prediction shapes", file: file, line: line)
        for (g, w) in zip(got, want) {
            assertClose(g.floats, w.floats.map(Double.init), rtol: 0, atol: 1e-6, "\(tag): predictions", file: file, line: line)
        }

        // For the by-hand check with real Keras (tools/check_saved_with_keras.py):
        // KILN_SAVE_DUMP=DIR keeps the file, its inputs and the Swift model's predictions.
        if let dump = ProcessInfo.processInfo.environment["KILN_SAVE_DUMP"], !dump.isEmpty {
            try FileManager.default.createDirectory(atPath: dump, withIntermediateDirectories: true)
            try m.save(dump + "/\(tag).keras")
            for (i, t) in x.enumerated() { try NPY.write(t, path: dump + "/\(tag)_x\(i).npy") }
            for (i, t) in want.enumerated() { try NPY.write(t, path: dump + "/\(tag)_p\(i).npy") }
        }

        // Round trip: read -> write -> read gives the same spec and config.json.
        let again = dir + "/\(tag)_again.keras"
        try KerasArchiveWriter.write(spec, to: again)
        let spec2 = try KerasArchive.read(path: again)
        assertSameSpec(spec, spec2, tag, file: file, line: line)
        XCTAssertEqual(KerasArchiveWriter.serialize(try KerasArchiveWriter.configJSON(spec)),
                       KerasArchiveWriter.serialize(try KerasArchiveWriter.configJSON(try m.kerasSpec())),
                       "\(tag): config.json of the read spec", file: file, line: line)
    }

    func assertSameSpec(_ a: KerasModelSpec, _ b: KerasModelSpec, _ tag: String, file: StaticString, line: UInt) {
        XCTAssertEqual(a.kind, b.kind, "\(tag): kind", file: file, line: line)
        XCTAssertEqual(a.name, b.name, "\(tag): name", file: file, line: line)
        XCTAssertEqual(a.inputs, b.inputs, "\(tag): inputs", file: file, line: line)
        XCTAssertEqual(a.outputs, b.outputs, "\(tag): outputs", file: file, line: line)
        XCTAssertEqual(a.compileConfig, b.compileConfig, "\(tag): compile_config", file: file, line: line)
        XCTAssertEqual(a.optimizerParamCount, b.optimizerParamCount, file: file, line: line)
        XCTAssertEqual(a.layers.count, b.layers.count, "\(tag): layer count", file: file, line: line)
        for (x, y) in zip(a.layers, b.layers) {
            XCTAssertEqual(x.className, y.className, file: file, line: line)
            XCTAssertEqual(x.name, y.name, file: file, line: line)
            XCTAssertEqual(x.config, y.config, "\(tag): config of \(x.name)", file: file, line: line)
            XCTAssertEqual(x.calls.map(\.inputs), y.calls.map(\.inputs), "\(tag): calls of \(x.name)", file: file, line: line)
            XCTAssertEqual(x.calls.map { $0.kwargs.map(\.0) }, y.calls.map { $0.kwargs.map(\.0) }, file: file, line: line)
            XCTAssertEqual(x.weights.map(\.path), y.weights.map(\.path), "\(tag): weight paths of \(x.name)", file: file, line: line)
            XCTAssertEqual(x.weights.map(\.shape), y.weights.map(\.shape), file: file, line: line)
            XCTAssertEqual(x.weights.map { bits($0.values) }, y.weights.map { bits($0.values) }, file: file, line: line)
        }
    }

    // MARK: - Tests

    func testSequentialCNNRoundTrips() throws {
        let m = try cnn()
        try checkSaved(m, "cnn")
        XCTAssertEqual(m.training?.optimizer.name, "Adam")
        XCTAssertEqual(m.training?.optimizer.learningRate, 0.01)
    }

    /// Dense on every step, Cropping1D, Dense: saved and read back; and the cropped
    /// model's predictions are the uncropped one's steps 2..<5, weights alike.
    func testCropping1DRoundTripsAndCrops() throws {
        Keras.clearSession(seed: 17)
        let dense = Dense(3, activation: .tanh)
        let m = try Sequential([dense, Cropping1D(cropping: (2, 1)), Dense(2)], input: Input(shape: [6, 4]))
        try m.compile(loss: "mse", optimizer: .sgd(learningRate: 0.1))
        try randomize(m, seed: 5)
        XCTAssertTrue(m.summary().contains("(None, 3, 3)"), m.summary())
        try checkSaved(m, "cropping1d")

        let whole = try Sequential([Dense(3, activation: .tanh)], input: Input(shape: [6, 4]))
        try whole.setWeights(dense.weights)
        let x = inputs(m, rows: 5, seed: 3)
        let cropped = try Sequential([Dense(3, activation: .tanh, name: "d2"), Cropping1D(cropping: (2, 1))], input: Input(shape: [6, 4]))
        try cropped.setWeights(dense.weights)
        let (a, b) = (try whole.predict(x)[0], try cropped.predict(x)[0])
        XCTAssertEqual(b.shape, [5, 3, 3])
        let expected = (0..<5).flatMap { r in (2..<5).flatMap { t in (0..<3).map { k in Double(a.floats[(r * 6 + t) * 3 + k]) } } }
        assertClose(b.floats, expected, rtol: 0, atol: 0, "Cropping1D keeps steps 2..<5")
    }

    func testFunctionalTwoInputsRoundTrips() throws {
        try checkSaved(try twoInputs(), "two_inputs")
    }

    func testOtherLayersRoundTrip() throws {
        try checkSaved(try otherLayers(), "other_layers")
    }

    /// The recurrent layers and wrappers of the Swift API (LSTM, GRU, SimpleRNN, Bidirectional,
    /// TimeDistributed), with Masking and PReLU: saved, read back, compiled, the same predictions.
    func testRecurrentLayersRoundTrip() throws {
        Keras.clearSession(seed: 21)
        let m = try Sequential([
            Masking(maskValue: 0),
            Bidirectional(LSTM(4, returnSequences: true), mergeMode: .sum),
            GRU(5, returnSequences: true, resetAfter: false),
            TimeDistributed(Dense(3)),
            PReLU(sharedAxes: [1]),
            SimpleRNN(2, activation: .relu),
        ], input: Input(shape: [6, 3]))
        XCTAssertEqual(m.layers.map(\.name), ["masking", "bidirectional", "gru", "time_distributed", "p_re_lu", "simple_rnn"])
        XCTAssertEqual(m.layers[1].weightShapes, [[3, 16], [4, 16], [16], [3, 16], [4, 16], [16]])
        // LSTM's unit_forget_bias: the forget gate's block of the bias starts at one.
        XCTAssertEqual(m.layers[1].weights[2], [Float](repeating: 0, count: 4) + [Float](repeating: 1, count: 4) + [Float](repeating: 0, count: 8))
        try m.compile(loss: "mse", optimizer: .adam())
        try randomize(m, seed: 4)
        try checkSaved(m, "recurrent_layers")
    }

    /// The weight keys follow Keras' rule (snake_case class name, made unique
    /// over model.layers; a Functional model's input layers included).
    func testWeightPaths() throws {
        let dir = try makeTempDir(self, "save")
        let m = try twoInputs()
        try m.save(dir + "/f.keras")
        let spec = try KerasArchive.read(path: dir + "/f.keras")
        XCTAssertEqual(spec.layers.map(\.name), m.layers.map(\.name))
        XCTAssertEqual(spec.layers.map(\.className), ["InputLayer", "Dense", "InputLayer", "Concatenate", "Dense", "Dense", "Add"])
        XCTAssertEqual(spec.layers.flatMap(\.weights).map(\.path),
                       ["layers/dense/vars/0", "layers/dense/vars/1", "layers/dense_1/vars/0", "layers/dense_1/vars/1",
                        "layers/dense_2/vars/0", "layers/dense_2/vars/1"])
        XCTAssertEqual(spec.inputs.map(\.layer), ["a", "b"])
        XCTAssertEqual(spec.outputs.map(\.layer), ["add"])
    }

    /// A shared layer keeps its node indices; the file compiles and predicts the same.
    func testSharedLayerRoundTrips() throws {
        Keras.clearSession(seed: 5)
        let a = Input(shape: [4], name: "a"), b = Input(shape: [4], name: "b")
        let shared = Dense(4, activation: .tanh, name: "shared")
        let o = Add()([shared(a), shared(shared(b))])
        let m = try FunctionalModel(inputs: [a, b], outputs: [o, Dense(2)(o)])
        try m.compile(losses: [.meanSquaredError, .meanAbsoluteError], optimizer: .nadam(), lossWeights: [1, 0.5])
        try randomize(m, seed: 4)
        // (Not the summary: the importer lists a shared layer once per call,
        // the Swift API once with all its output shapes.)
        try checkSaved(m, "shared", compareSummary: false)
    }

    /// Every optimizer and loss option survives save and load.
    func testTrainingSettingsRoundTrip() throws {
        let dir = try makeTempDir(self, "save")
        Keras.clearSession(seed: 3)
        let m = try Sequential([Dense(2)], input: Input(shape: [3]))
        var optimizers: [OptimizerConfig] = [
            .sgd(learningRate: 0.1, momentum: 0.9, nesterov: true), .sgd(), .rmsprop(), .adam(amsgrad: true),
            .adamax(learningRate: 0.003), .nadam(beta1: 0.8), .adagrad(initialAccumulatorValue: 0.2), .adadelta(rho: 0.9),
        ]
        optimizers.append(try OptimizerConfig.named("AdamW"))
        var clipped = OptimizerConfig.adam(learningRate: 1)
        clipped.clipnorm = 1; clipped.clipvalue = 0.5; clipped.globalClipnorm = 2; clipped.weightDecay = 0.01
        optimizers.append(clipped)
        let losses: [LossConfig] = [.meanSquaredError, .categoricalCrossentropy(fromLogits: true),
                                    .binaryCrossentropy(labelSmoothing: 0.2), .sparseCategoricalCrossentropy(fromLogits: true),
                                    try .named("kld")]
        for (i, o) in optimizers.enumerated() {
            try m.compile(loss: losses[i % losses.count], optimizer: o)
            let p = dir + "/m\(i).keras"
            try m.save(p)
            XCTAssertEqual(try Compiler.load(p).training, m.training, "optimizer \(o.name) with \(losses[i % losses.count].name)")
        }
        // Keras holds these as Python floats (its SGD refuses an integer momentum).
        try m.compile(loss: "mse", optimizer: .sgd(learningRate: 1))
        let text = KerasArchiveWriter.serialize(try KerasArchiveWriter.configJSON(try m.kerasSpec()))
        XCTAssertTrue(text.contains("\"momentum\": 0.0, \"nesterov\": false"), text)
        XCTAssertTrue(text.contains("\"learning_rate\": 1.0, \"weight_decay\": null"), text)
        XCTAssertTrue(text.contains("\"units\": 2, "), text)
    }

    /// `kiln compile` takes the saved file; its library predicts as the Swift model does.
    func testKilnCompileTakesSavedFile() throws {
        let kiln = try kilnBinary()
        let dir = try makeTempDir(self, "save")
        for (m, tag) in [(try cnn() as KerasModel, "cnn"), (try twoInputs(), "two_inputs")] {
            let path = dir + "/\(tag).keras"
            try m.save(path)
            let r = try runProgram(kiln, ["compile", path, "-o", dir + "/out"])
            XCTAssertEqual(r.status, 0, "kiln compile \(tag): \(r.stderr)")
            let lib = try CompiledLibrary(path: dir + "/out/lib\(tag).so")
            let x = inputs(m, rows: 5, seed: 17)
            let want = try m.predict(x)
            let got = try lib.predict(x)
            for (g, w) in zip(got, want) {
                assertClose(g.floats, w.floats.map(Double.init), rtol: 0, atol: 1e-6, "kiln compile \(tag): predictions")
            }
        }
    }

    /// A model that has not been compiled has no compile_config and no optimizer group.
    func testUncompiledModel() throws {
        Keras.clearSession(seed: 9)
        let m = try Sequential([Dense(3, activation: .sigmoid)], input: Input(shape: [2]))
        let dir = try makeTempDir(self, "save")
        try m.save(dir + "/u.keras")
        let spec = try KerasArchive.read(path: dir + "/u.keras")
        XCTAssertNil(spec.compileConfig)
        XCTAssertNil(try Compiler.load(dir + "/u.keras").training)
        XCTAssertEqual(spec.layers.map(\.className), ["InputLayer", "Dense"])
    }

    // MARK: - Atomicity and errors

    func testFailedSaveLeavesNothing() throws {
        let dir = try makeTempDir(self, "save")
        let path = dir + "/m.keras"
        let m = try cnn()
        try m.save(path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))

        // A spec whose weights do not fit its config: refused, the old file intact.
        var spec = try m.kerasSpec()
        spec.layers[1].weights.removeLast()
        assertThrows(["conv2d"], "bad weights") { try KerasArchiveWriter.write(spec, to: path) }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["m.keras"])

        // No such folder; a directory in the way.
        assertThrows(["does not exist"], "missing folder") { try m.save(dir + "/nope/m.keras") }
        try FileManager.default.createDirectory(atPath: dir + "/d.keras", withIntermediateDirectories: false)
        assertThrows(["is a directory"], "directory") { try m.save(dir + "/d.keras") }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["d.keras", "m.keras"])

        // Saving again replaces the file with an equal one.
        try m.save(path)
        let spec2 = try KerasArchive.read(path: path)
        XCTAssertEqual(spec2.layers.flatMap(\.weights).map { bits($0.values) }, m.weights.map { bits($0) })
    }

}
