import Foundation
import XCTest
import ZIPFoundation
@testable import KilnKeras
import KilnRuntime
import KilnSupport

final class KerasArchiveTests: XCTestCase {
    static let casesDir: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("conformance/cases")

    func caseNames() throws -> [String] {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.casesDir.path)
            .filter { FileManager.default.fileExists(atPath: Self.casesDir.appendingPathComponent($0).appendingPathComponent("model.keras").path) }
            .sorted()
        return names
    }

    func modelPath(_ name: String) -> String {
        Self.casesDir.appendingPathComponent(name).appendingPathComponent("model.keras").path
    }

    func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-archive-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    /// The bytes of one entry of a real .keras file.
    func entry(_ caseName: String, _ entry: String) throws -> Data {
        let archive = try Archive(url: URL(fileURLWithPath: modelPath(caseName)), accessMode: .read)
        guard let e = archive[entry] else { XCTFail("no \(entry)"); return Data() }
        var out = Data()
        _ = try archive.extract(e) { out.append($0) }
        return out
    }

    /// Writes a zip with the given entries.
    func makeZip(_ entries: [(String, Data)], at url: URL) throws {
        let archive = try Archive(url: url, accessMode: .create)
        for (name, data) in entries {
            try archive.addEntry(with: name, type: .file, uncompressedSize: Int64(data.count),
                                 compressionMethod: .deflate) { pos, size in
                data.subdata(in: Int(pos)..<(Int(pos) + size))
            }
        }
    }

    func expectError(_ path: String, contains parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try KerasArchive.read(path: path)
            XCTFail("expected an error", file: file, line: line)
        } catch let e as KerasImportError {
            for p in parts {
                XCTAssertTrue(e.description.contains(p), "'\(e.description)' does not contain '\(p)'", file: file, line: line)
            }
        } catch {
            XCTFail("unexpected error type \(error)", file: file, line: line)
        }
    }

    // MARK: Real files

    func testEveryConformanceCaseMatchesGetWeights() throws {
        let names = try caseNames()
        XCTAssertGreaterThanOrEqual(names.count, 48)
        var checkedArrays = 0
        for name in names {
            let spec = try KerasArchive.read(path: modelPath(name))
            let flat = spec.layers.flatMap(\.weights)
            let wdir = Self.casesDir.appendingPathComponent(name).appendingPathComponent("weights")
            let files = try FileManager.default.contentsOfDirectory(atPath: wdir.path)
                .filter { $0.hasSuffix(".npy") }.sorted()
            XCTAssertEqual(flat.count, files.count, "\(name): weight count")
            for (w, f) in zip(flat, files) {
                let t = try NPY.read(path: wdir.appendingPathComponent(f).path)
                XCTAssertEqual(w.shape, t.shape, "\(name) \(f) \(w.path): shape")
                XCTAssertEqual(w.values, t.floats, "\(name) \(f) \(w.path): values")
                checkedArrays += 1
            }
            // The model API tag in case.json agrees with the kind.
            let caseJSON = try JSON.parse([UInt8](Data(contentsOf: Self.casesDir.appendingPathComponent(name).appendingPathComponent("case.json"))))
            let covers = caseJSON["covers"]?.array?.compactMap(\.string) ?? []
            if covers.contains("api:Functional") { XCTAssertEqual(spec.kind, .functional, name) }
            if covers.contains("api:Sequential") { XCTAssertEqual(spec.kind, .sequential, name) }
            XCTAssertNotNil(spec.compileConfig, name)
            XCTAssertEqual(spec.layers.first?.className, "InputLayer", name)
            if spec.kind == .functional {
                XCTAssertFalse(spec.inputs.isEmpty, name)
                XCTAssertFalse(spec.outputs.isEmpty, name)
                for l in spec.layers where l.className != "InputLayer" {
                    XCTAssertEqual(l.calls.count, 1, "\(name) \(l.name)")
                }
            }
        }
        XCTAssertGreaterThan(checkedArrays, 150)
    }

    func testFunctionalMaskGraph() throws {
        let spec = try KerasArchive.read(path: modelPath("functional_mask_zero_lstm"))
        XCTAssertEqual(spec.kind, .functional)
        XCTAssertEqual(spec.layers.map(\.className), ["InputLayer", "Embedding", "NotEqual", "LSTM", "Dense"])
        XCTAssertEqual(spec.layers.map(\.name), ["tokens", "embedding", "not_equal", "lstm", "dense"])
        XCTAssertEqual(spec.inputs, [KerasTensorRef(layer: "tokens", nodeIndex: 0, tensorIndex: 0)])
        XCTAssertEqual(spec.outputs, [KerasTensorRef(layer: "dense", nodeIndex: 0, tensorIndex: 0)])
        let lstm = spec.layers[3]
        XCTAssertEqual(lstm.calls.count, 1)
        XCTAssertEqual(lstm.calls[0].inputs, [KerasTensorRef(layer: "embedding", nodeIndex: 0, tensorIndex: 0)])
        XCTAssertEqual(lstm.calls[0].kwargs.count, 1)
        XCTAssertEqual(lstm.calls[0].kwargs.first?.0, "mask")
        XCTAssertEqual(lstm.calls[0].kwargs.first?.1, KerasTensorRef(layer: "not_equal", nodeIndex: 0, tensorIndex: 0))
        XCTAssertEqual(lstm.config["units"]?.int, 5)
        XCTAssertEqual(lstm.config["return_sequences"]?.bool, true)
        XCTAssertEqual(lstm.weights.map(\.path), ["layers/lstm/cell/vars/0", "layers/lstm/cell/vars/1", "layers/lstm/cell/vars/2"])
        // The constant operand of the NotEqual op is reachable.
        let ne = spec.layers[2]
        XCTAssertEqual(ne.calls[0].inputs, [KerasTensorRef(layer: "tokens", nodeIndex: 0, tensorIndex: 0)])
        let raw = try XCTUnwrap(ne.rawCallArguments(0))
        XCTAssertEqual(raw.args.count, 2)
        XCTAssertEqual(raw.args[0].kerasTensorRef, KerasTensorRef(layer: "tokens", nodeIndex: 0, tensorIndex: 0))
        XCTAssertEqual(raw.args[1], .number(0))
        XCTAssertEqual(spec.compileConfig?["loss"]?.string, "mean_squared_error")
    }

    func testH5KeysAreClassNamesNotLayerNames() throws {
        // Layers named "hidden" and "out" are stored as layers/dense and layers/dense_1.
        let spec = try KerasArchive.read(path: modelPath("loss_mean_squared_error"))
        XCTAssertEqual(spec.layers.map(\.name), ["x", "hidden", "out"])
        XCTAssertEqual(spec.layers[1].weights.map(\.path), ["layers/dense/vars/0", "layers/dense/vars/1"])
        XCTAssertEqual(spec.layers[2].weights.map(\.path), ["layers/dense_1/vars/0", "layers/dense_1/vars/1"])
        XCTAssertEqual(spec.layers[1].weights[0].shape, [4, 6])
    }

    func testSequentialKeepsInputLayerAndWrapperOrder() throws {
        let spec = try KerasArchive.read(path: modelPath("bidir_ave"))
        XCTAssertEqual(spec.kind, .sequential)
        XCTAssertEqual(spec.name, "sequential")
        XCTAssertEqual(spec.layers.map(\.className), ["InputLayer", "Bidirectional", "LSTM", "Dense"])
        XCTAssertTrue(spec.layers.allSatisfy { $0.calls.isEmpty })
        XCTAssertEqual(spec.layers[1].weights.map(\.path), [
            "layers/bidirectional/forward_layer/cell/vars/0", "layers/bidirectional/forward_layer/cell/vars/1",
            "layers/bidirectional/forward_layer/cell/vars/2", "layers/bidirectional/backward_layer/cell/vars/0",
            "layers/bidirectional/backward_layer/cell/vars/1", "layers/bidirectional/backward_layer/cell/vars/2"])
        let td = try KerasArchive.read(path: modelPath("td_cnn_lstm"))
        XCTAssertEqual(td.layers[1].weights.map(\.path), ["layers/time_distributed/layer/vars/0", "layers/time_distributed/layer/vars/1"])
        XCTAssertTrue(td.layers[2].weights.isEmpty)
        XCTAssertEqual(td.layers[1].config["layer"]?["class_name"]?.string, "Conv2D")
    }

    // MARK: Errors

    func testMissingFile() throws {
        expectError("/nonexistent/dir/nothing.keras", contains: ["nothing.keras:", "no such file"])
    }

    func testNotAZip() throws {
        let d = try tempDir()
        let p = d.appendingPathComponent("junk.keras")
        try Data("this is plainly not a zip archive, just text\n".utf8).write(to: p)
        expectError(p.path, contains: ["junk.keras:", "not a zip"])
        let empty = d.appendingPathComponent("empty.keras")
        try Data().write(to: empty)
        expectError(empty.path, contains: ["empty.keras:", "empty"])
    }

    func testTruncatedCopy() throws {
        let d = try tempDir()
        let full = try Data(contentsOf: URL(fileURLWithPath: modelPath("dense_linear")))
        for cut in [full.count / 2, full.count - 30, 100] {
            let p = d.appendingPathComponent("cut\(cut).keras")
            try full.prefix(cut).write(to: p)
            expectError(p.path, contains: ["cut\(cut).keras:", "truncated"])
        }
    }

    func testZipWithoutConfig() throws {
        let d = try tempDir()
        let p = d.appendingPathComponent("noconfig.keras")
        try makeZip([("metadata.json", Data("{}".utf8)),
                     ("model.weights.h5", try entry("dense_linear", "model.weights.h5"))], at: p)
        expectError(p.path, contains: ["noconfig.keras:", "no config.json"])
    }

    func testZipWithoutWeights() throws {
        let d = try tempDir()
        let p = d.appendingPathComponent("noweights.keras")
        try makeZip([("config.json", try entry("dense_linear", "config.json"))], at: p)
        expectError(p.path, contains: ["noweights.keras:", "no model.weights.h5"])
    }

    func testDamagedWeightsFile() throws {
        let d = try tempDir()
        let h5 = try entry("dense_linear", "model.weights.h5")
        let p = d.appendingPathComponent("badh5.keras")
        try makeZip([("config.json", try entry("dense_linear", "config.json")),
                     ("model.weights.h5", h5.prefix(h5.count / 3))], at: p)
        do {
            _ = try KerasArchive.read(path: p.path)
            XCTFail("expected an error")
        } catch let e as KerasImportError {
            XCTAssertTrue(e.description.hasPrefix("badh5.keras: model.weights.h5"), e.description)
        }
        let q = d.appendingPathComponent("texth5.keras")
        try makeZip([("config.json", try entry("dense_linear", "config.json")),
                     ("model.weights.h5", Data("not hdf5".utf8))], at: q)
        expectError(q.path, contains: ["texth5.keras:", "model.weights.h5", "not an HDF5 file"])
    }

    func testMalformedJSON() throws {
        let d = try tempDir()
        let p = d.appendingPathComponent("badjson.keras")
        try makeZip([("config.json", Data("{\"class_name\": \"Sequential\", \"config\": {\"layers\": [1, 2,, 3]}}".utf8)),
                     ("model.weights.h5", try entry("dense_linear", "model.weights.h5"))], at: p)
        expectError(p.path, contains: ["badjson.keras:", "config.json is not valid JSON", "byte 56"])
    }

    /// dense_linear's config.json with `edit` applied to its layers list.
    func editedConfig(_ edit: (inout [JSON]) -> Void) throws -> Data {
        let root = try JSON.parse([UInt8](try entry("dense_linear", "config.json")))
        guard case .object(var top) = root, let ci = top.firstIndex(where: { $0.0 == "config" }),
              case .object(var cfg) = top[ci].1, let li = cfg.firstIndex(where: { $0.0 == "layers" }),
              case .array(var layers) = cfg[li].1 else { XCTFail("unexpected config"); return Data() }
        edit(&layers)
        cfg[li].1 = .array(layers)
        top[ci].1 = .object(cfg)
        return Data(JSON.object(top).serialized.utf8)
    }

    func testLambdaIsRefused() throws {
        let d = try tempDir()
        let lambda = try JSON.parse("""
        {"module": "keras.layers", "class_name": "Lambda", "config": {"name": "sneaky", "function":
          {"class_name": "__lambda__", "config": {"code": "4wEAAAAAAAAA", "defaults": null, "closure": null}}}}
        """)
        let cfg = try editedConfig { $0.insert(lambda, at: 1) }
        let p = d.appendingPathComponent("lambda.keras")
        try makeZip([("config.json", cfg), ("model.weights.h5", try entry("dense_linear", "model.weights.h5"))], at: p)
        expectError(p.path, contains: ["lambda.keras: layer 'sneaky' is a Lambda layer, which runs Python code from the file; Kiln refuses it."])

        // A serialized lambda elsewhere (say, as an activation) is refused too.
        let cfg2 = try editedConfig { layers in
            guard case .object(var l) = layers[1], let ci = l.firstIndex(where: { $0.0 == "config" }),
                  case .object(var c) = l[ci].1, let ai = c.firstIndex(where: { $0.0 == "activation" }) else { return }
            c[ai].1 = .object([("class_name", .string("__lambda__")), ("config", .object([("code", .string("xx"))]))])
            l[ci].1 = .object(c)
            layers[1] = .object(l)
        }
        let q = d.appendingPathComponent("lambda2.keras")
        try makeZip([("config.json", cfg2), ("model.weights.h5", try entry("dense_linear", "model.weights.h5"))], at: q)
        expectError(q.path, contains: ["lambda2.keras: layer 'dense'", "Python", "refuses"])
    }

    func testMissingWeightsForALayer() throws {
        let d = try tempDir()
        // A third Dense layer that the weights file knows nothing about.
        let cfg = try editedConfig { layers in
            guard case .object(var l) = layers[2], let ci = l.firstIndex(where: { $0.0 == "config" }),
                  case .object(var c) = l[ci].1, let ni = c.firstIndex(where: { $0.0 == "name" }) else { return }
            c[ni].1 = .string("extra")
            l[ci].1 = .object(c)
            layers.append(.object(l))
        }
        let p = d.appendingPathComponent("missing.keras")
        try makeZip([("config.json", cfg), ("model.weights.h5", try entry("dense_linear", "model.weights.h5"))], at: p)
        expectError(p.path, contains: ["missing.keras:", "no weights for layer 'extra' (Dense)", "needs 2"])
    }

    func testWeightCountMismatch() throws {
        let d = try tempDir()
        // use_bias false: the config calls for 1 array, the file has 2.
        let cfg = try editedConfig { layers in
            guard case .object(var l) = layers[1], let ci = l.firstIndex(where: { $0.0 == "config" }),
                  case .object(var c) = l[ci].1, let bi = c.firstIndex(where: { $0.0 == "use_bias" }) else { return }
            c[bi].1 = .bool(false)
            l[ci].1 = .object(c)
            layers[1] = .object(l)
        }
        let p = d.appendingPathComponent("count.keras")
        try makeZip([("config.json", cfg), ("model.weights.h5", try entry("dense_linear", "model.weights.h5"))], at: p)
        expectError(p.path, contains: ["count.keras:", "layer 'dense' (Dense) has 2 weight arrays", "calls for 1"])
    }

    func testWeightsThatBelongToNoLayer() throws {
        let d = try tempDir()
        let cfg = try editedConfig { layers in layers.removeLast() }
        let p = d.appendingPathComponent("extra.keras")
        try makeZip([("config.json", cfg), ("model.weights.h5", try entry("dense_linear", "model.weights.h5"))], at: p)
        expectError(p.path, contains: ["extra.keras:", "layers/dense_1/vars/0", "belong to no layer"])
    }

    func testSubclassedModelRefused() throws {
        let d = try tempDir()
        let p = d.appendingPathComponent("sub.keras")
        try makeZip([("config.json", Data("{\"class_name\": \"MyModel\", \"config\": {}}".utf8)),
                     ("model.weights.h5", try entry("dense_linear", "model.weights.h5"))], at: p)
        expectError(p.path, contains: ["sub.keras:", "'MyModel'", "not a Sequential or Functional"])
    }

    func testInMemoryRead() throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: modelPath("gru"))))
        let spec = try KerasArchive.read(data: bytes, name: "gru.keras")
        XCTAssertEqual(spec.layers.map(\.className), ["InputLayer", "GRU", "Dense"])
        XCTAssertEqual(spec.layers[1].weights.map(\.shape), [[3, 15], [5, 15], [2, 15]])
    }

    /// Damaged files of every kind give an error or a model, never a crash.
    func testCorruptedFilesNeverCrash() throws {
        var rng = SplitMix64(state: 1)
        func next(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
        let config = try entry("functional_mask_zero_lstm", "config.json")
        let h5 = try [UInt8](entry("functional_mask_zero_lstm", "model.weights.h5"))
        let whole = try [UInt8](Data(contentsOf: URL(fileURLWithPath: modelPath("bidir_ave"))))
        var errors = 0
        for i in 0..<150 {
            // 1. The zip itself (caught by the zip structure or CRCs).
            var z = whole
            for _ in 0...next(6) { z[next(z.count)] = UInt8(next(256)) }
            if i % 3 == 0 { z = Array(z.prefix(next(z.count))) }
            do { _ = try KerasArchive.read(data: z, name: "z.keras") } catch is KerasImportError { errors += 1 }
            // 2. The weights file inside a valid zip (mostly its metadata).
            var h = h5
            for _ in 0...next(6) { h[next(i % 2 == 0 ? min(4096, h.count) : h.count)] = UInt8(next(256)) }
            // 3. config.json inside a valid zip.
            var c = [UInt8](config)
            let junk = Array("{}[]\",0:n".utf8)
            for _ in 0...next(4) { c[next(c.count)] = junk[next(junk.count)] }
            for (cfg, weights) in [(Data(config), Data(h)), (Data(c), Data(h5))] {
                let archive = try Archive(data: Data(), accessMode: .create)
                for (name, data) in [("config.json", cfg), ("model.weights.h5", weights)] {
                    try archive.addEntry(with: name, type: .file, uncompressedSize: Int64(data.count)) { pos, size in
                        data.subdata(in: Int(pos)..<(Int(pos) + size))
                    }
                }
                let bytes = try [UInt8](XCTUnwrap(archive.data))
                do { _ = try KerasArchive.read(data: bytes, name: "c.keras") } catch is KerasImportError { errors += 1 }
            }
        }
        XCTAssertGreaterThan(errors, 150)
    }

    // MARK: Naming and JSON

    func testSnakeCaseMatchesKeras() {
        let cases: [(String, String)] = [
            ("Conv2D", "conv2d"), ("MaxPooling2D", "max_pooling2d"), ("SimpleRNN", "simple_rnn"),
            ("LSTM", "lstm"), ("NotEqual", "not_equal"), ("GlobalAveragePooling1D", "global_average_pooling1d"),
            ("Conv2DTranspose", "conv2d_transpose"), ("ConvLSTM2D", "conv_lstm2d"), ("PReLU", "p_re_lu"),
            ("BatchNormalization", "batch_normalization"), ("HTTPServerX", "http_server_x"),
            ("ABCDef", "abc_def"), ("aB", "a_b"), ("My-Layer.v2", "my_layerv2"), ("TFOpLambda", "tf_op_lambda"),
        ]
        for (input, want) in cases { XCTAssertEqual(KerasArchive.snakeCase(input), want, input) }
        XCTAssertEqual(KerasArchive.containerKeys(["InputLayer", "Dense", "Dense", "Conv2D", "Dense"]),
                       ["input_layer", "dense", "dense_1", "conv2d", "dense_2"])
    }

    func testJSONParser() throws {
        let j = try JSON.parse(#" {"z": 1, "a": [true, false, null, -2.5e3, "x\"\\\/\n\u00e9\ud83d\ude00"], "m": {}, "n": NaN, "i": -Infinity, "p": Infinity} "#)
        XCTAssertEqual(j.object?.map(\.0), ["z", "a", "m", "n", "i", "p"])
        XCTAssertEqual(j["z"]?.int, 1)
        XCTAssertEqual(j["a"]?[0]?.bool, true)
        XCTAssertEqual(j["a"]?[2]?.isNull, true)
        XCTAssertEqual(j["a"]?[3]?.double, -2500)
        XCTAssertEqual(j["a"]?[4]?.string, "x\"\\/\n\u{e9}\u{1F600}")
        XCTAssertEqual(j["a"]?[9], nil)
        XCTAssertEqual(j["n"]?.double?.isNaN, true)
        XCTAssertEqual(j["i"]?.double, -.infinity)
        XCTAssertEqual(j["p"]?.double, .infinity)
        XCTAssertEqual(j["m"], .object([]))
        // Round trip through the serializer keeps order and values.
        let k = try JSON.parse(JSON.object([("b", .number(1.5)), ("a", j["a"]!)]).serialized)
        XCTAssertEqual(k.object?.map(\.0), ["b", "a"])
        XCTAssertEqual(k["a"], j["a"])

        for (bad, offset) in [("{\"a\" 1}", 5), ("[1, 2", 5), ("\"abc", 0), ("tru", 0), ("{} x", 3), ("[01.]", 1), ("", 0)] {
            do {
                _ = try JSON.parse(bad)
                XCTFail("accepted \(bad)")
            } catch let e as JSONParseError {
                XCTAssertEqual(e.offset, offset, "\(bad): \(e)")
            }
        }
        // Deep nesting is an error, not a crash.
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        XCTAssertThrowsError(try JSON.parse(deep))
    }
}
