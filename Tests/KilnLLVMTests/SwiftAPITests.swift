// The Swift model API end to end: models built in Swift that mirror Keras
// conformance cases give Keras' predictions and trained weights; a
// functional two-input model agrees with a naive computation; names, the
// initialisers, shape errors and the Swift module map.

import Foundation
import XCTest
import Kiln
import KilnIR
import KilnLLVM
import KilnRuntime

final class SwiftAPITests: XCTestCase {
    static let cases = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("conformance/cases").path

    func npy(_ name: String, _ file: String) throws -> HostTensor {
        try NPY.read(path: "\(Self.cases)/\(name)/\(file)")
    }

    /// weights/000.npy, 001.npy, ... of a case.
    func weightDump(_ name: String, _ dir: String) throws -> [HostTensor] {
        let path = "\(Self.cases)/\(name)/\(dir)"
        return try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".npy") }.sorted()
            .map { try NPY.read(path: path + "/" + $0) }
    }

    /// Runs a conformance case through a model built in Swift: the same
    /// summary and training settings as the .keras file, Keras' predictions,
    /// and after `fit` Keras' epoch losses and trained weights.
    func checkCase(_ name: String, _ model: KerasModel, optimizer: OptimizerConfig) throws {
        let spec = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(Self.cases)/\(name)/case.json"))) as! [String: Any]
        let train = spec["train"] as! [String: Any]
        var keras = try Compiler.load("\(Self.cases)/\(name)/model.keras")
        // The file also holds the optimizer's saved variables, which the summary counts; the Swift model has none yet.
        XCTAssertEqual(keras.optimizerParamCount, 2, "\(name): SGD saves iterations and learning_rate")
        keras.optimizerParamCount = 0

        try model.setWeights(try weightDump(name, "weights"))
        try model.compile(loss: "mse", optimizer: optimizer)
        XCTAssertEqual(model.training, keras.training, "\(name): compile settings")
        XCTAssertEqual(model.summary(), ModelSummary.render(keras), "\(name): summary")

        let p = try model.predict([try npy(name, "x0.npy")])
        assertClose(p[0].floats, try npy(name, "p0.npy").floats, rtol: 1e-4, atol: 1e-5, "\(name) predict")

        let history = try model.fit(x: [try npy(name, "train_x0.npy")], y: [try npy(name, "train_y0.npy")],
                                    epochs: train["epochs"] as! Int, batchSize: train["batch_size"] as! Int,
                                    shuffle: false, verbose: false)
        assertClose(history.loss.map(Float.init), (train["loss"] as! [Double]).map(Float.init), rtol: 2e-4, atol: 2e-5, "\(name) loss")
        let after = try weightDump(name, "weights_after")
        let trained = model.getWeights()
        XCTAssertEqual(trained.map(\.shape), after.map(\.shape))
        for (i, (t, w)) in zip(trained, after).enumerated() {
            assertClose(t.floats, w.floats, rtol: 2e-4, atol: 2e-5, "\(name) weight \(i) after fit")
        }
        // The layers hold the trained values too.
        XCTAssertEqual(model.layers.flatMap(\.weights), trained.map(\.floats))
    }

    func testDenseReluCase() throws {
        let model = try Sequential([
            Dense(10, activation: .relu, name: "dense"),
            Dense(3, name: "dense_1"),
        ], input: Input(shape: [6], name: "input_layer"), name: "sequential")
        try checkCase("dense_relu", model, optimizer: .sgd(learningRate: 0.05))
    }

    func testConv2DStridesCase() throws {
        let model = try Sequential([
            Conv2D(3, kernelSize: 3, strides: 2, padding: .same, activation: .relu, name: "conv2d"),
            Conv2D(4, kernelSize: [3, 2], strides: [2, 1], name: "conv2d_1"),
            Flatten(name: "flatten"),
            Dense(2, name: "dense"),
        ], input: Input(shape: [9, 8, 2], name: "input_layer"), name: "sequential")
        try checkCase("conv2d_strides", model, optimizer: .sgd(learningRate: 0.03))
    }

    /// Two inputs, Add and Concatenate: Keras' layer order, the summary, and
    /// predict, fit and evaluate against a naive computation.
    func testFunctionalTwoInputs() throws {
        Keras.clearSession(seed: 7)
        let a = Input(shape: [4], name: "a"), b = Input(shape: [3], name: "b")
        let ha = Dense(5, activation: .relu)(a)
        let hb = Dense(5, activation: .tanh)(b)
        let sum = Add()([ha, hb])
        let joined = Concatenate()([sum, a])
        let out = Dense(2)(joined)
        let model = try FunctionalModel(inputs: [a, b], outputs: [out])
        XCTAssertEqual(model.name, "functional")
        XCTAssertEqual(model.layers.map(\.name), ["a", "b", "dense", "dense_1", "add", "concatenate", "dense_2"])
        XCTAssertEqual(out.shape, [nil, 2])
        XCTAssertEqual(joined.shape, [nil, 9])

        let summary = model.summary()
        for text in ["Model: \"functional\"", "Connected to", "add (Add)", "(None, 5)", "concatenate (Concatenate)",
                     "(None, 9)", "dense[0][0], dense_1[0][0]", "Total params: 65 (260.00 B)"] {
            XCTAssertTrue(summary.contains(text), "summary lacks \(text):\n\(summary)")
        }
        XCTAssertEqual(model.countParams(), 65)
        XCTAssertEqual(model.weightShapes, [[4, 5], [5], [3, 5], [5], [9, 2], [2]])

        // Non-zero biases, so that they are exercised.
        var w = model.weights
        for i in [1, 3, 5] { w[i] = (0..<w[i].count).map { Float($0) * 0.1 - 0.2 } }
        try model.setWeights(w)

        let n = 5
        let xa = HostTensor(shape: [n, 4], floats: (0..<n * 4).map { sin(Float($0)) })
        let xb = HostTensor(shape: [n, 3], floats: (0..<n * 3).map { cos(Float($0) * 0.7) })
        func naive(_ w: [[Float]]) -> [Float] {
            func dense(_ x: [Float], _ k: [Float], _ bias: [Float], _ inDim: Int, _ units: Int) -> [Float] {
                (0..<units).map { j in (0..<inDim).reduce(bias[j]) { $0 + x[$1] * k[$1 * units + j] } }
            }
            var y: [Float] = []
            for r in 0..<n {
                let ra = Array(xa.floats[r * 4..<r * 4 + 4]), rb = Array(xb.floats[r * 3..<r * 3 + 3])
                let h1 = dense(ra, w[0], w[1], 4, 5).map { max($0, 0) }
                let h2 = dense(rb, w[2], w[3], 3, 5).map { tanh($0) }
                y += dense(zip(h1, h2).map(+) + ra, w[4], w[5], 9, 2)
            }
            return y
        }
        let p = try model.predict([xa, xb])
        XCTAssertEqual(p[0].shape, [n, 2])
        assertClose(p[0].floats, naive(model.weights), rtol: 1e-5, atol: 1e-5, "functional predict")

        // Train: the weights move, stay in step with the library, and evaluate is the MSE.
        try model.compile(loss: "mse", optimizer: .sgd(learningRate: 0.1))
        let target = HostTensor(shape: [n, 2], floats: (0..<n * 2).map { Float($0 % 3) - 1 })
        let before = model.weights
        let history = try model.fit(x: [xa, xb], y: [target], epochs: 3, batchSize: 2, shuffle: true, verbose: false)
        XCTAssertEqual(history.loss.count, 3)
        XCTAssertNotEqual(model.weights, before)
        let trained = naive(model.weights)
        assertClose(try model.predict([xa, xb])[0].floats, trained, rtol: 1e-5, atol: 1e-5, "predict after fit")
        let mse = zip(trained, target.floats).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / Double(n * 2)
        XCTAssertEqual(try model.evaluate(x: [xa, xb], y: [target]), mse, accuracy: 1e-5)

        // Weights set after loading reach the library.
        try model.setWeights(before)
        assertClose(try model.predict([xa, xb])[0].floats, naive(before), rtol: 1e-5, atol: 1e-5, "predict after setWeights")
    }

    /// Keras orders layers by depth from the outputs, not by call order
    /// (checked with Keras 3: ['x', 'r', 'p', 'q', 's']).
    func testLayerOrderFollowsKeras() throws {
        let x = Input(shape: [3], name: "x")
        let p = Dense(2, name: "p")(x)
        let q = Dense(2, name: "q")(Dense(2, name: "r")(x))
        let model = try FunctionalModel(inputs: x, outputs: Add(name: "s")([p, q]))
        XCTAssertEqual(model.layers.map(\.name), ["x", "r", "p", "q", "s"])
        XCTAssertEqual(model.build().graph.params.map(\.name), ["r/kernel", "r/bias", "p/kernel", "p/bias", "q/kernel", "q/bias"])
    }

    func testDefaultNamesAndInitialisers() throws {
        Keras.clearSession(seed: 1)
        XCTAssertEqual(Dense(1).name, "dense")
        XCTAssertEqual(Dense(1).name, "dense_1")
        XCTAssertEqual(Dense(1, name: "mine").name, "mine")
        XCTAssertEqual(Dense(1).name, "dense_2")
        XCTAssertEqual(Conv2D(1, kernelSize: 3).name, "conv2d")
        XCTAssertEqual(MaxPooling2D().name, "max_pooling2d")
        XCTAssertEqual(GlobalAveragePooling2D().name, "global_average_pooling2d")
        XCTAssertEqual(Activation(.relu).className, "Activation")

        func make() throws -> Sequential {
            try Sequential([Conv2D(4, kernelSize: 3), Flatten(), Dense(30)], input: Input(shape: [6, 6, 2]))
        }
        Keras.clearSession(seed: 42)
        let m = try make()
        XCTAssertEqual(m.name, "sequential")
        XCTAssertEqual(m.layers.map(\.name), ["conv2d", "flatten", "dense"])
        let w = m.weights
        let convLimit = (6 / Float(2 * 9 + 4 * 9)).squareRoot(), denseLimit = (6 / Float(64 + 30)).squareRoot()
        XCTAssertTrue(w[0].allSatisfy { abs($0) <= convLimit } && w[0].contains { abs($0) > convLimit / 2 })
        XCTAssertTrue(w[2].allSatisfy { abs($0) <= denseLimit } && Set(w[2]).count > 100)
        XCTAssertEqual(w[1], [Float](repeating: 0, count: 4))
        XCTAssertEqual(w[3], [Float](repeating: 0, count: 30))
        Keras.clearSession(seed: 42)
        XCTAssertEqual(try make().weights, w, "the same seed gives the same weights")

        let e = Embedding(inputDim: 10, outputDim: 3)
        let ids = Input(shape: [5], dtype: .int32)
        XCTAssertEqual(e(ids).shape, [nil, 5, 3])
        XCTAssertTrue(e.weights[0].allSatisfy { abs($0) <= 0.05 })
    }

    func testErrorsNameTheLayer() throws {
        XCTAssertThrowsError(try Sequential([Dense(4, name: "d"), Reshape([3], name: "r")], input: Input(shape: [2]))) { e in
            XCTAssertTrue("\(e)".contains("Reshape 'r'"), "\(e)")
        }
        XCTAssertThrowsError(try Sequential([Conv2D(2, kernelSize: 3, name: "c")], input: Input(shape: [8]))) { e in
            XCTAssertTrue("\(e)".contains("Conv2D 'c'"), "\(e)")
        }
        let a = Input(shape: [2]), b = Input(shape: [2], name: "other")
        XCTAssertThrowsError(try FunctionalModel(inputs: [a], outputs: [Add()([a, b])])) { e in
            XCTAssertTrue("\(e)".contains("'other'"), "\(e)")
        }
        XCTAssertThrowsError(try FunctionalModel(inputs: a, outputs: Add(name: "lonely")(a))) { e in
            XCTAssertTrue("\(e)".contains("'lonely' takes 2 or more inputs"), "\(e)")
        }
        let m = try Sequential([Dense(2)], input: Input(shape: [3]))
        XCTAssertThrowsError(try m.setWeights([[1, 2, 3]])) { e in XCTAssertTrue("\(e)".contains("2 weights"), "\(e)") }
        XCTAssertThrowsError(try m.compile(loss: "nonsense")) { e in XCTAssertTrue("\(e)".contains("nonsense"), "\(e)") }
        XCTAssertThrowsError(try m.fit(x: HostTensor(shape: [1, 3], floats: [1, 2, 3]), y: HostTensor(shape: [1, 2], floats: [0, 0]),
                                       verbose: false)) { e in
            XCTAssertTrue("\(e)".contains("compile"), "\(e)")
        }
    }

    func testSwiftModuleMapKeepsOtherModels() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-modmap-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try SwiftModuleWriter.write(name: "first", outDir: dir)
        try SwiftModuleWriter.write(name: "second", outDir: dir)
        try SwiftModuleWriter.write(name: "first", outDir: dir)
        let text = try String(contentsOfFile: dir + "/module.modulemap", encoding: .utf8)
        XCTAssertEqual(text, SwiftModuleWriter.entry(name: "second") + "\n" + SwiftModuleWriter.entry(name: "first"))
        XCTAssertTrue(text.contains("module first {\n    header \"first.h\"\n    link \"first\"\n    export *\n}"))
        XCTAssertThrowsError(try SwiftModuleWriter.write(name: "not valid", outDir: dir))
    }
}
