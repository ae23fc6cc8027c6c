import Foundation
import XCTest
import Kiln
import KilnIR
@testable import KilnKeras
import KilnRuntime
import KilnSupport

/// Legacy HDF5 model files and weight files (LegacyH5.swift), on the Keras-made files of
/// Tests/cases (tools/case_sets/legacy.py, tools/gen_keras2_cases.py) and Tests/Fixtures.
final class LegacyH5Tests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func casePath(_ name: String, _ file: String) -> String {
        root.appendingPathComponent("Tests/cases/\(name)/\(file)").path
    }

    func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-legacy-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    func errorText(_ body: () throws -> Any) -> String {
        do { _ = try body() } catch let e as KerasImportError { return e.description } catch {
            return "unexpected error type: \(error)"
        }
        return "no error"
    }

    /// The case's weights/*.npy, in get_weights() order.
    func savedWeights(_ name: String) throws -> [[Float]] {
        let dir = root.appendingPathComponent("Tests/cases/\(name)/weights")
        return try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted().map {
            try NPY.read(path: dir.appendingPathComponent($0).path).floats
        }
    }

    func assertWeights(_ spec: KerasModelSpec, equal name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let got = spec.layers.flatMap(\.weights).map(\.values)
        let want = try savedWeights(name)
        XCTAssertEqual(got.count, want.count, "weight count", file: file, line: line)
        for (k, (g, w)) in zip(got, want).enumerated() { XCTAssertEqual(g, w, "weight \(k)", file: file, line: line) }
    }

    // MARK: model files

    func testKeras3LegacyModelFile() throws {
        let spec = try KerasModelFile.read(path: casePath("legacy_h5_dense_bn", "model.h5"))
        XCTAssertEqual(spec.kind, .sequential)
        XCTAssertEqual(spec.layers.map(\.className), ["InputLayer", "Dense", "BatchNormalization", "Dropout", "Dense"])
        try assertWeights(spec, equal: "legacy_h5_dense_bn")
        let cc = try XCTUnwrap(spec.compileConfig)
        XCTAssertEqual(cc["loss"]?.string, "categorical_crossentropy")
        XCTAssertEqual(cc["optimizer"]?["class_name"]?.string, "Adam")
        XCTAssertEqual(cc["optimizer"]?["config"]?["learning_rate"]?.float ?? 0, 0.01, accuracy: 1e-7)
    }

    func testKeras2FilesBothLayouts() throws {
        // tf.keras 2.15: a Functional model with list-of-lists inbound_nodes, and a Sequential one.
        let f = try KerasModelFile.read(path: casePath("k2_functional_masked_lstm_bigru", "model.h5"))
        XCTAssertEqual(f.kind, .functional)
        XCTAssertEqual(f.layers.first { $0.className == "LSTM" }?.calls.first?.inputs.first?.layer, "embedding")
        try assertWeights(f, equal: "k2_functional_masked_lstm_bigru")
        let s = try KerasModelFile.read(path: casePath("k2_sequential_cnn_bn", "model.h5"))
        try assertWeights(s, equal: "k2_sequential_cnn_bn")
    }

    func testAKeras2SequentialWithoutInputLayer() throws {
        // Keras 2 before 2.4 wrote no InputLayer: the first layer carries batch_input_shape.
        var spec = try KerasModelFile.read(path: casePath("k2_sequential_cnn_bn", "model.h5"))
        XCTAssertEqual(spec.layers.first?.className, "InputLayer")
        let whole = try KerasGraphBuilder.build(spec, file: "model.h5")
        spec.layers.removeFirst()
        XCTAssertEqual(spec.layers.first?.config["batch_input_shape"]?.intsOrNulls, [nil, 8, 8, 1])
        let bare = try KerasGraphBuilder.build(spec, file: "model.h5")
        XCTAssertEqual(bare.graph.outputs.map { bare.graph.type($0) }, whole.graph.outputs.map { whole.graph.type($0) })
        XCTAssertEqual(bare.graph.params.map(\.initial), whole.graph.params.map(\.initial))
    }

    func testFixedLengthStringsReadAsVariableLengthOnes() throws {
        // h5py 2 wrote fixed-length strings; h5py 3 writes variable-length ones.
        let fixed = try KerasModelFile.read(path: root.appendingPathComponent("Tests/Fixtures/legacy_fixed_strings.h5").path)
        let vlen = try KerasModelFile.read(path: casePath("legacy_h5_dense_bn", "model.h5"))
        XCTAssertEqual(fixed.layers.map(\.name), vlen.layers.map(\.name))
        XCTAssertEqual(fixed.layers.flatMap(\.weights).map(\.values), vlen.layers.flatMap(\.weights).map(\.values))
        XCTAssertEqual(fixed.compileConfig, vlen.compileConfig)
        XCTAssertEqual(fixed.optimizerVars, vlen.optimizerVars)
    }

    func testTruncatedFilesAreRefusedEverywhere() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: casePath("legacy_h5_lstm_gru_masked", "model.h5")))
        let dir = try tempDir()
        for k in 1..<24 {
            let path = dir.appendingPathComponent("cut\(k).h5").path
            try data.prefix(data.count * k / 24).write(to: URL(fileURLWithPath: path))
            let msg = errorText { try KerasModelFile.read(path: path) }
            XCTAssertTrue(msg.hasPrefix("cut\(k).h5: "), "cut at \(k)/24: \(msg)")
        }
    }

    func testADamagedGlobalHeapIsRefusedNotLoopedOn() throws {
        // The first object of the strings' heap collection made an index-0 object of size 0:
        // libhdf5 1.10 parses it forever; Kiln walks the collection first.
        var data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: casePath("legacy_h5_dense_bn", "model.h5"))))
        let sig: [UInt8] = Array("GCOL".utf8) + [1, 0, 0, 0]
        let at = try XCTUnwrap((0..<(data.count - 8)).first { Array(data[$0..<($0 + 8)]) == sig })
        for k in (at + 16)..<(at + 32) { data[k] = 0 }
        let path = try tempDir().appendingPathComponent("heap.h5").path
        try Data(data).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(errorText { try KerasModelFile.read(path: path) },
                       "heap.h5: is damaged: its global heap at byte \(at) (which holds its strings) cannot be read.")
    }

    func testAStringNamingAMissingHeapObjectIsRefused() throws {
        // The collection's first object renumbered: the strings naming it point at nothing, which
        // libhdf5 1.10 would read through a null pointer.
        var data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: casePath("legacy_weights_mlp", "weights.h5"))))
        let sig: [UInt8] = Array("GCOL".utf8) + [1, 0, 0, 0]
        let at = try XCTUnwrap((0..<(data.count - 8)).first { Array(data[$0..<($0 + 8)]) == sig })
        XCTAssertEqual(Int(data[at + 16]) | Int(data[at + 17]) << 8, 1)
        data[at + 16] = 200
        let path = try tempDir().appendingPathComponent("ids.h5").path
        try Data(data).write(to: URL(fileURLWithPath: path))
        let msg = errorText { try KerasModelFile.read(path: self.casePath("legacy_weights_mlp", "model.keras"), weights: path) }
        XCTAssertTrue(msg.hasPrefix("ids.h5: is damaged: a string (global heap object 1 at byte \(at))"), msg)
    }

    func testDirectoriesEmptyAndMissingFilesNamedH5() throws {
        let dir = try tempDir()
        let folder = dir.appendingPathComponent("folder.h5")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let empty = dir.appendingPathComponent("empty.h5")
        try Data().write(to: empty)
        XCTAssertEqual(errorText { try KerasModelFile.read(path: folder.path) }, "folder.h5: is a directory, not an HDF5 file.")
        XCTAssertEqual(errorText { try KerasModelFile.read(path: empty.path) }, "empty.h5: the file is empty, not an HDF5 file.")
        XCTAssertEqual(errorText { try KerasModelFile.read(path: dir.appendingPathComponent("none.h5").path) }, "none.h5: no such file.")
        let model = casePath("legacy_weights_mlp", "model.keras")
        XCTAssertEqual(errorText { try KerasModelFile.read(path: model, weights: folder.path) }, "folder.h5: is a directory, not an HDF5 file.")
        XCTAssertEqual(errorText { try KerasModelFile.read(path: model, weights: empty.path) }, "empty.h5: the file is empty, not an HDF5 file.")
    }

    func testWeightFilesAreNotModels() {
        XCTAssertTrue(errorText { try KerasModelFile.read(path: self.casePath("legacy_weights_mlp", "weights.h5")) }
            .contains("weights-only HDF5 file"))
        XCTAssertTrue(errorText { try KerasModelFile.read(path: self.casePath("weights_h5_cnn_bn", "model.weights.h5")) }
            .contains("Keras 3 weights file"))
    }

    // MARK: --weights

    func testWeightFilesReplaceTheModelsWeights() throws {
        for (name, model, weights) in [("legacy_weights_mlp", "model.keras", "weights.h5"),
                                       ("weights_h5_functional_gru", "model.keras", "model.weights.h5"),
                                       ("legacy_h5_with_weights_h5", "model.h5", "model.weights.h5"),
                                       ("k2_weights_only_td", "model.h5", "weights.h5")] {
            let own = try KerasModelFile.read(path: casePath(name, model))
            let spec = try KerasModelFile.read(path: casePath(name, model), weights: casePath(name, weights))
            try assertWeights(spec, equal: name)
            XCTAssertNotEqual(own.layers.flatMap(\.weights).map(\.values), spec.layers.flatMap(\.weights).map(\.values), name)
        }
    }

    func testWeightsOntoASwiftAPIModel() throws {
        // The architecture of legacy_weights_mlp, written with the Swift API and saved by it.
        let m = try Sequential([Dense(6, activation: .relu), Dense(2, activation: .sigmoid)], input: Input(shape: [5]))
        let path = try tempDir().appendingPathComponent("swift.keras").path
        try m.save(path)
        let spec = try KerasModelFile.read(path: path, weights: casePath("legacy_weights_mlp", "weights.h5"))
        try assertWeights(spec, equal: "legacy_weights_mlp")
        // Compiler.load takes the same option.
        let model = try Compiler.load(path, weights: casePath("legacy_weights_mlp", "weights.h5"))
        XCTAssertEqual(model.graph.params.count, 4)
    }

    func testAWholeLegacyModelServesAsWeights() throws {
        // model.h5 of the same architecture given with --weights: its model_weights group is read.
        let spec = try KerasModelFile.read(path: casePath("legacy_h5_with_weights_h5", "model.h5"),
                                           weights: casePath("legacy_h5_with_weights_h5", "model.h5"))
        let own = try KerasModelFile.read(path: casePath("legacy_h5_with_weights_h5", "model.h5"))
        XCTAssertEqual(own.layers.flatMap(\.weights).map(\.values), spec.layers.flatMap(\.weights).map(\.values))
    }

    func testWeightsOfAnotherModelAreRefused() {
        // Another architecture: the legacy file's layer count, then the Keras 3 file's missing groups.
        let a = errorText { try KerasModelFile.read(path: self.casePath("legacy_weights_mlp", "model.keras"),
                                                    weights: self.casePath("legacy_h5_dense_bn", "model.h5")) }
        XCTAssertTrue(a.hasPrefix("model.h5: holds weights for 3 layers"), a)
        let b = errorText { try KerasModelFile.read(path: self.casePath("legacy_weights_mlp", "model.keras"),
                                                    weights: self.casePath("weights_h5_cnn_bn", "model.weights.h5")) }
        XCTAssertTrue(b.hasPrefix("model.weights.h5: "), b)
        let c = errorText { try KerasModelFile.read(path: self.casePath("legacy_weights_mlp", "model.keras"),
                                                    weights: self.casePath("legacy_weights_mlp", "x0.npy")) }
        XCTAssertTrue(c.contains("not an HDF5 file"), c)
        let d = errorText { try KerasModelFile.read(path: self.casePath("legacy_weights_mlp", "model.keras"),
                                                    weights: self.casePath("legacy_weights_mlp", "missing.h5")) }
        XCTAssertEqual(d, "missing.h5: no such file.")
    }

    // MARK: Keras 2 spellings

    func testKeras2ConfigSpellings() throws {
        let raw = try JSON.parse("""
            {"class_name": "Sequential", "config": [
              {"class_name": "InputLayer", "config": {"name": "in", "batch_input_shape": [null, 3], "input_dtype": "float32"}},
              {"class_name": "Bidirectional", "config": {"name": "bi", "layer": {"class_name": "LSTM",
                "config": {"name": "l", "units": 2, "input_dtype": "float32"}}}}]}
            """)
        let n = try LegacyConfig.normalize(raw, display: "m.h5")
        let layers = try XCTUnwrap(n["config"]?["layers"]?.array)
        XCTAssertEqual(n["config"]?["name"]?.string, "sequential")
        XCTAssertEqual(layers[0]["config"]?["batch_shape"]?.intsOrNulls, [nil, 3])
        XCTAssertNil(layers[0]["config"]?["batch_input_shape"])
        XCTAssertEqual(layers[0]["config"]?["dtype"]?.string, "float32")
        XCTAssertEqual(layers[1]["config"]?["layer"]?["config"]?["dtype"]?.string, "float32")
        XCTAssertNil(layers[1]["config"]?["layer"]?["config"]?["input_dtype"])
    }

    func testKeras2OnlyOptionsAreRefused() throws {
        let raw = try JSON.parse("""
            {"class_name": "Sequential", "config": {"name": "s", "layers": [
              {"class_name": "InputLayer", "config": {"name": "in", "batch_input_shape": [null, 4, 3]}},
              {"class_name": "Bidirectional", "config": {"name": "bi", "layer": {"class_name": "LSTM",
                "config": {"name": "l", "units": 2, "time_major": true}}}}]}}
            """)
        XCTAssertEqual(errorText { try LegacyConfig.normalize(raw, display: "m.h5") },
                       "m.h5: layer 'l' (LSTM) sets Keras 2's time_major to true; Kiln supports time_major=False (batch first).")
    }

    func testTensorFlowOpsAreRefused() throws {
        // tf.keras 2.15 saves `Dense(2)(x) * 2.0` so.
        let raw = try JSON.parse("""
            {"class_name": "Functional", "config": {"name": "model", "layers": [
              {"class_name": "InputLayer", "config": {"batch_input_shape": [null, 3], "dtype": "float32", "name": "in"}, "name": "in", "inbound_nodes": []},
              {"class_name": "TFOpLambda", "config": {"name": "tf.math.multiply", "dtype": "float32", "function": "math.multiply"},
               "name": "tf.math.multiply", "inbound_nodes": [["in", 0, 0, {"y": 2.0, "name": null}]]}],
             "input_layers": [["in", 0, 0]], "output_layers": [["tf.math.multiply", 0, 0]]}}
            """)
        XCTAssertEqual(errorText { try LegacyConfig.refuseTensorFlowOps(raw, display: "m.h5") as Any },
                       "m.h5: layer 'tf.math.multiply' is a TensorFlow operation 'math.multiply' that tf.keras recorded (TFOpLambda), which Kiln does not run; write it with Keras layers (e.g. Rescaling, Add, Multiply, Concatenate) and save the model again.")
    }

    func testKeras2TrainingConfig() throws {
        let tc = try JSON.parse("""
            {"loss": {"class_name": "MeanSquaredError", "config": {"reduction": "auto", "name": "mse"}},
             "metrics": [["accuracy"]], "loss_weights": null,
             "optimizer_config": {"class_name": "Custom>Adam", "config": {"lr": 0.005, "decay": 0.0, "beta_1": 0.8}}}
            """)
        let cc = try XCTUnwrap(try LegacyConfig.compileConfig(tc, display: "m.h5"))
        let training = try XCTUnwrap(try KerasCompileConfig.parse(cc, outputNames: ["out"], file: "m.h5"))
        XCTAssertEqual(training.losses.map(\.name), ["mean_squared_error"])
        XCTAssertEqual(training.optimizer.name, "Adam")
        XCTAssertEqual(training.optimizer.learningRate, 0.005, accuracy: 1e-9)
        XCTAssertEqual(training.optimizer.settings["beta_1"] ?? 0, 0.8, accuracy: 1e-7)
        XCTAssertEqual(training.metrics, ["accuracy"])

        let decay = try JSON.parse("""
            {"loss": "mse", "optimizer_config": {"class_name": "SGD", "config": {"lr": 0.1, "decay": 0.001}}}
            """)
        XCTAssertTrue(errorText { try LegacyConfig.compileConfig(decay, display: "m.h5") as Any }.contains("decay"))
        let noOptimizer = try JSON.parse(#"{"loss": "mse"}"#)
        XCTAssertEqual(errorText { try LegacyConfig.compileConfig(noOptimizer, display: "m.h5") as Any },
                       "m.h5: the training_config has a loss but no optimizer_config.")
    }
}
