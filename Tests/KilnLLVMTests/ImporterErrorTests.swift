// Bad model files through Compiler.load, and the `kiln` command's exit status
// and messages for a bad model and for a wrongly shaped input.

import Foundation
import XCTest
import ZIPFoundation
import Kiln
import KilnIR
import KilnRuntime

final class ImporterErrorTests: XCTestCase {
    /// A file named model.weights.h5 in the current folder is not what a .keras archive holds:
    /// kiln reads the archive's entry (libhdf5 once opened the folder's file instead).
    func testWeightsFileInTheCurrentFolderIsNotRead() throws {
        let dir = try makeTempDir(self)
        try Data("not an HDF5 file".utf8).write(to: URL(fileURLWithPath: dir + "/model.weights.h5"))
        let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("cases/cropping1d/model.keras").path
        let r = try runProcess("/bin/sh", ["-c", "cd '\(dir)' && '\(try kilnBinary())' summary '\(model)'"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("cropping1d (Cropping1D)"), r.stdout)
    }

    static let denseRelu = packageRoot.appendingPathComponent("Tests/conformance/cases/dense_relu/model.keras").path
    static let reshapeCase = packageRoot.appendingPathComponent("Tests/cases_invalid/reshape_mismatch")

    /// Compiler.load(path) must throw an error whose message contains every part.
    func expectLoadError(_ path: String, _ parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        assertThrows(parts, "Compiler.load(\((path as NSString).lastPathComponent))", file: file, line: line) {
            _ = try Compiler.load(path)
        }
    }

    /// The entries of a .keras file, in order.
    func entries(_ path: String) throws -> [(String, Data)] {
        let archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read)
        return try archive.map { e in
            var out = Data()
            _ = try archive.extract(e) { out.append($0) }
            return (e.path, out)
        }
    }

    func writeZip(_ entries: [(String, Data)], to path: String) throws {
        let archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .create)
        for (name, data) in entries {
            try archive.addEntry(with: name, type: .file, uncompressedSize: Int64(data.count), compressionMethod: .deflate) { pos, size in
                data.subdata(in: Int(pos)..<(Int(pos) + size))
            }
        }
    }

    /// dense_relu's model.keras with a layer appended to its (Sequential) config.json.
    func kerasWithExtraLayer(_ layer: [String: Any], at path: String) throws {
        var list = try entries(Self.denseRelu)
        guard let k = list.firstIndex(where: { $0.0 == "config.json" }),
              var root = try JSONSerialization.jsonObject(with: list[k].1) as? [String: Any],
              var config = root["config"] as? [String: Any], var layers = config["layers"] as? [[String: Any]] else {
            return XCTFail("dense_relu's config.json is not a Sequential config")
        }
        layers.append(layer)
        config["layers"] = layers
        root["config"] = config
        list[k].1 = try JSONSerialization.data(withJSONObject: root)
        try writeZip(list, to: path)
    }

    // MARK: - Damaged files

    func testTheUnmodifiedCopyLoads() throws {
        // The baseline the other tests edit: copied through ZIPFoundation it still loads.
        let dir = try makeTempDir(self)
        let path = dir + "/copy.keras"
        try writeZip(try entries(Self.denseRelu), to: path)
        let m = try Compiler.load(path)
        XCTAssertEqual(m.graph.outputs.count, 1)
    }

    func testTruncatedKeras() throws {
        let dir = try makeTempDir(self)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Self.denseRelu))
        for (i, keep) in [bytes.count / 2, bytes.count - 30, 200].enumerated() {
            let path = dir + "/truncated\(i).keras"
            try bytes.prefix(keep).write(to: URL(fileURLWithPath: path))
            expectLoadError(path, ["truncated\(i).keras", "truncated or damaged"])
        }
        let empty = dir + "/empty.keras"
        try Data().write(to: URL(fileURLWithPath: empty))
        expectLoadError(empty, ["empty.keras", "empty"])
    }

    func testCorruptedWeightsEntry() throws {
        let dir = try makeTempDir(self)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Self.denseRelu)))
        let sig: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]
        guard let at = (0..<(bytes.count - 8)).first(where: { Array(bytes[$0..<$0 + 8]) == sig }) else {
            return XCTFail("model.weights.h5 is not stored uncompressed in dense_relu's model.keras")
        }
        bytes[at + 4000] ^= 0xFF
        let path = dir + "/flipped.keras"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        expectLoadError(path, ["flipped.keras", "model.weights.h5", "damaged"])
    }

    func testNotAZip() throws {
        let dir = try makeTempDir(self)
        let path = dir + "/notes.keras"
        try "this is a text file, not a model\n".write(toFile: path, atomically: true, encoding: .utf8)
        expectLoadError(path, ["notes.keras", "not a zip archive"])
        expectLoadError(dir + "/missing.keras", ["missing.keras", "no such file"])
    }

    // MARK: - Config errors

    func testUnsupportedLayerClassNamesClassLayerAndSupportedOnes() throws {
        let dir = try makeTempDir(self)
        let path = dir + "/alpha.keras"
        try kerasWithExtraLayer(["module": "keras.layers", "class_name": "AlphaDropout", "registered_name": NSNull(),
                                 "config": ["name": "my_alpha_dropout", "trainable": true, "dtype": "float32", "rate": 0.1]], at: path)
        expectLoadError(path, ["AlphaDropout", "'my_alpha_dropout'", "not support", "supported:", "Dense", "Conv2D", "Embedding", "MaxPooling2D",
                               "GaussianNoise", "MultiHeadAttention"])
    }

    func testLambdaLayerIsRefused() throws {
        let dir = try makeTempDir(self)
        let path = dir + "/lambda.keras"
        try kerasWithExtraLayer(["module": "keras.layers", "class_name": "Lambda", "registered_name": NSNull(),
                                 "config": ["name": "my_lambda", "trainable": true, "dtype": "float32",
                                            "function": ["class_name": "__lambda__", "config": ["code": "4wEAAAAAAAAA", "defaults": NSNull(), "closure": NSNull()]],
                                            "arguments": [String: Any]()]], at: path)
        expectLoadError(path, ["'my_lambda'", "Lambda", "refuses"])
    }

    /// A Keras-made Masking -> LSTM(4, sequences) -> Cropping1D((3, 0)) on 8 steps whose cropping is
    /// edited to remove every step: refused naming the layer, the input and the empty output.
    func testCroppingLongerThanTheSequence() throws {
        let source = packageRoot.appendingPathComponent("Tests/cases/masking_lstm_cropping1d/model.keras").path
        var list = try entries(source)
        let k = try XCTUnwrap(list.firstIndex { $0.0 == "config.json" })
        let text = try XCTUnwrap(String(data: list[k].1, encoding: .utf8))
        XCTAssertTrue(text.contains("\"cropping\": [3, 0]"), "the case's config.json has changed")
        list[k].1 = Data(text.replacingOccurrences(of: "\"cropping\": [3, 0]", with: "\"cropping\": [6, 3]").utf8)
        let dir = try makeTempDir(self)
        try writeZip(list, to: dir + "/crop.keras")
        expectLoadError(dir + "/crop.keras", ["Cropping1D 'cropping1d'", "cropping (6, 3)", "(None, 8, 4)", "(None, -1, 4)", "at most 7 steps"])
        // A negative crop is refused by the importer, naming the layer and the value.
        list[k].1 = Data(text.replacingOccurrences(of: "\"cropping\": [3, 0]", with: "\"cropping\": [-1, 0]").utf8)
        try FileManager.default.removeItem(atPath: dir + "/crop.keras")
        try writeZip(list, to: dir + "/crop.keras")
        expectLoadError(dir + "/crop.keras", ["'cropping1d' (Cropping1D)", "cropping [-1, 0]", "two integers >= 0"])
    }

    func testReshapeMismatchMessage() throws {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.reshapeCase.appendingPathComponent("case.json"))) as? [String: Any]
        let expected = try XCTUnwrap(json?["expect_error"] as? [String])
        XCTAssertFalse(expected.isEmpty)
        expectLoadError(Self.reshapeCase.appendingPathComponent("model.keras").path, expected)
    }

    func testCNNLSTMMistakesTeach() throws {
        // The invalid models of tools/make_cnn_lstm_sample.py: an LSTM after a Flatten that is not
        // wrapped in TimeDistributed, 'valid' 3x3 convolutions on 4x4 tiles, a channels_first input.
        for name in ["cnn_lstm_flatten_unwrapped", "cnn_lstm_conv_kernel_too_big", "cnn_channels_first_input"] {
            let dir = packageRoot.appendingPathComponent("Tests/cases_invalid/\(name)")
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("case.json"))) as? [String: Any]
            let expected = try XCTUnwrap(json?["expect_error"] as? [String], name)
            XCTAssertGreaterThan(expected.count, 3, name)
            expectLoadError(dir.appendingPathComponent("model.keras").path, expected)
        }
    }

    // MARK: - The kiln command


    func testCLISummaryOfReshapeMismatchExitsOne() throws {
        let kiln = try kilnBinary()
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.reshapeCase.appendingPathComponent("case.json"))) as? [String: Any]
        let expected = try XCTUnwrap(json?["expect_error"] as? [String])
        let r = try runProgram(kiln, ["summary", Self.reshapeCase.appendingPathComponent("model.keras").path])
        XCTAssertEqual(r.status, 1, "stderr: \(r.stderr)")
        for part in expected {
            XCTAssertTrue(r.stderr.contains(part), "kiln summary's stderr '\(r.stderr)' lacks '\(part)'")
        }
        XCTAssertFalse(r.stderr.contains("Fatal error"), r.stderr)
    }

    func testCLIPredictWithWronglyShapedInput() throws {
        let kiln = try kilnBinary()
        let dir = try makeTempDir(self)
        var m = GraphMaker("cli")
        let x = m.input("features", [3])
        var r = TestRNG(101)
        m.output(try m.layer(DenseKind(units: 2, activation: .relu, useBias: true).op,
                             [x, m.param("dense/kernel", [3, 2], r.floats(6)), m.param("dense/bias", [2], r.floats(2))], "dense"), "dense")
        let a = try Compiler.compile(m.model(), name: "cli", to: dir, log: { _ in })

        // A wrongly shaped input: exit 1, a message naming the input and both shapes, no output file.
        let bad = dir + "/bad.npy", out = dir + "/out.npy"
        try NPY.write(HostTensor(shape: [4, 5], floats: r.floats(20)), path: bad)
        let res = try runProgram(kiln, ["predict", a.library, "--input", bad, "--output", out])
        XCTAssertEqual(res.status, 1, "stderr: \(res.stderr)")
        for part in ["input 'features'", "(-1, 3)", "(4, 5)"] {
            XCTAssertTrue(res.stderr.contains(part), "kiln predict's stderr '\(res.stderr)' lacks '\(part)'")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "kiln predict wrote \(out) despite the error")

        // The same call with a good input works and agrees with CompiledLibrary.
        let good = dir + "/good.npy"
        let gx = HostTensor(shape: [5, 3], floats: r.floats(15))
        try NPY.write(gx, path: good)
        let ok = try runProgram(kiln, ["predict", a.library, "--input", good, "--output", out])
        XCTAssertEqual(ok.status, 0, "stderr: \(ok.stderr)")
        let y = try NPY.read(path: out)
        XCTAssertEqual(y, try CompiledLibrary(path: a.library).predict([gx])[0])
    }
}
