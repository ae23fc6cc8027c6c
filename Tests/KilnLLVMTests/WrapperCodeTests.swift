// What `kiln compile` writes around the library for its users (issue 13): NAME.pc and a C
// build through pkg-config, NAME_info() (Kiln's version, the model's name, the model file's
// SHA-256), `kiln --version`, the Python and Swift wrappers' text; `kiln graph` pictures and
// `kiln plot`'s round ticks. The wrappers in use: Tests/wrappers/test_python_wrapper.py
// (Python) and samples/swift (Swift), both run by `make test`.

import Foundation
import XCTest
import Kiln
import KilnLLVM
import KilnSupport

final class WrapperCodeTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    func testSHA256KnownDigests() {
        XCTAssertEqual(SHA256.hex([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // Two blocks (56 bytes: the length no longer fits the first).
        XCTAssertEqual(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex([UInt8](repeating: 0x61, count: 1000)),
                       "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    func testPkgConfigText() {
        let t = PkgConfigWriter.text(name: "m", prefix: "/tmp/a b", version: "1.2.3")
        XCTAssertTrue(t.contains("prefix=/tmp/a\\ b\n"), t)
        XCTAssertTrue(t.contains("Libs: -L${libdir} -lm -Wl,-rpath,${libdir}\n"), t)
        XCTAssertTrue(t.contains("Cflags: -I${includedir}\n"), t)
        XCTAssertTrue(t.contains("Version: 1.2.3\n"), t)
    }

    func testSwiftClassNames() {
        XCTAssertEqual(SwiftWrapper.className("mnist_cnn"), "MnistCnn")
        XCTAssertEqual(SwiftWrapper.className("Net"), "NetModel")      // the C module is Net
        XCTAssertEqual(SwiftWrapper.className("_3d_net"), "Model3dNet")
    }

    /// The generated texts describe the model as the header does: dtypes, shapes with -1, the
    /// free steps, the weights in order, the outputs as a labelled tuple.
    func testWrapperTextsDescribeTheModel() {
        var g = GlueModel(name: "tagger",
                          inputs: [GlueTensor(name: "tokens", dtype: "i32", shape: [-1, -1]), GlueTensor(name: "extra", dtype: "f32", shape: [-1, 3])],
                          outputs: [GlueTensor(name: "tags", dtype: "f32", shape: [-1, -1, 5]), GlueTensor(name: "class", dtype: "f32", shape: [-1, 2])],
                          targets: [GlueTensor(name: "tags", dtype: "i32", shape: [-1, -1]), GlueTensor(name: "class", dtype: "f32", shape: [-1, 2])],
                          weights: [GlueWeight(name: "embedding/embeddings", shape: [10, 4], offset: 0)], stateBytes: 160,
                          hasTraining: true, loss: "sparse_categorical_crossentropy", optimizer: "Adam")
        g.freeSteps = true
        g.metrics = ["accuracy"]
        let py = PythonWrapper.source(g)
        XCTAssertTrue(py.contains("INPUTS = [\n    (\"tokens\", \"int32\", (-1, -1)),\n    (\"extra\", \"float32\", (-1, 3)),\n]"), py)
        XCTAssertTrue(py.contains("WEIGHTS = [\n    (\"embedding/embeddings\", (10, 4), True),\n]"), py)
        XCTAssertTrue(py.contains("FREE_STEPS = True") && py.contains("METRICS = [\"accuracy\"]"), py)
        XCTAssertTrue(py.contains("fn(\"predict_seq_v\""), py)
        let sw = SwiftWrapper.source(g)
        XCTAssertTrue(sw.contains("public final class Tagger {"), sw)
        XCTAssertTrue(sw.contains("import tagger\n"), sw)
        XCTAssertTrue(sw.contains("public func predict(_ x0: Tensor<Int32>, _ x1: Tensor<Float>) throws -> (tags: Tensor<Float>, class_: Tensor<Float>)"), sw)
        XCTAssertTrue(sw.contains("public func trainStep(_ x0: Tensor<Int32>, _ x1: Tensor<Float>, _ y0: Tensor<Int32>, _ y1: Tensor<Float>) throws -> Float"), sw)
        XCTAssertTrue(sw.contains("Spec(name: \"tokens\", dtype: \"int32\", shape: [-1, -1])"), sw)
        // No training step: no trainStep or evaluate in Swift; Python refuses with a sentence.
        g.hasTraining = false; g.targets = []
        XCTAssertFalse(SwiftWrapper.source(g).contains("func trainStep"))
        XCTAssertTrue(PythonWrapper.source(g).contains("HAS_TRAINING = False"))
    }

    /// kiln compile writes NAME.pc; a C program built with pkg-config's flags alone calls
    /// NAME_info(), which reports Kiln's version (as `kiln --version` prints it), the model's
    /// name and the SHA-256 of the model file; --python and --swift write their wrappers.
    func testCompileWritesPkgConfigInfoAndWrappers() throws {
        let kiln = try kilnBinary()
        let dir = try makeTempDir(self, "wrap")
        let model = Self.root + "/Tests/cases/bn_dense_relu/model.keras"
        let r = try runProgram(kiln, ["compile", model, "-o", dir + "/out", "--name", "net", "--python", "--swift"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for f in ["libnet.so", "net.h", "net.pc", "net.py", "net.swift", "module.modulemap"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/out/" + f), "no \(f) in \(r.stdout)")
        }
        let v = try runProgram(kiln, ["--version"])
        XCTAssertEqual(v.status, 0)
        XCTAssertEqual(v.stdout, KilnVersion.string + "\n")

        try """
        #include <stdio.h>
        #include "net.h"
        int main(void) {
            const net_info_t *i = net_info();
            net_model *m = net_create();
            if (!m) return 1;
            printf("%s %s %s %lld\\n", i->kiln_version, i->model, i->source_sha256, (long long)net_num_weights(m));
            net_destroy(m);
            return 0;
        }
        """.write(toFile: dir + "/app.c", atomically: true, encoding: .utf8)
        let pc = try runProcess("/bin/sh", ["-c", "PKG_CONFIG_PATH='\(dir)/out' pkg-config --cflags --libs net"])
        XCTAssertEqual(pc.status, 0, pc.stderr)
        let flags = pc.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        let cc = try runProcess("/usr/bin/env", ["cc", dir + "/app.c"] + flags + ["-o", dir + "/app"])
        XCTAssertEqual(cc.status, 0, cc.stderr)
        let run = try runProcess(dir + "/app", [])
        XCTAssertEqual(run.status, 0, run.stderr)
        let hash = SHA256.hex([UInt8](FileManager.default.contents(atPath: model)!))
        XCTAssertEqual(run.stdout, "\(KilnVersion.string) net \(hash) 8\n")
    }

    /// Swift wrappers of models of other forms (two outputs: a labelled tuple; two int32
    /// inputs; free time steps), written into one folder, compile together (swiftc -typecheck)
    /// with a program that calls them. The single-model wrapper runs in samples/swift.
    func testSwiftWrappersOfSeveralFormsCompile() throws {
        let kiln = try kilnBinary()
        let dir = try makeTempDir(self, "swiftwrap")
        for c in ["functional_two_outputs", "attention_masked", "free_embedding_bilstm_tagger"] {
            let r = try runProgram(kiln, ["compile", Self.root + "/Tests/cases/\(c)/model.keras", "-o", dir, "--name", c, "--swift"])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        try """
        let two = try FunctionalTwoOutputs()
        let (cls, reg) = try two.predict(.init(shape: [2, 6], values: [Float](repeating: 0.5, count: 12)))
        print(cls.shape, reg.values)
        let loss: Float = try two.trainStep(.init(shape: [2, 6], values: [Float](repeating: 0.5, count: 12)),
                                            .init(shape: [2, 3], values: [1, 0, 0, 0, 1, 0]), .init(shape: [2, 1], values: [0.5, 1]))
        print(loss, try two.lastMetrics())
        let att = try AttentionMasked()
        let y = try att.predict(.init(shape: [1, 5], values: [Int32](repeating: 1, count: 5)), .init(shape: [1, 6], values: [Int32](repeating: 2, count: 6)))
        print(y.shape)
        let tagger = try FreeEmbeddingBilstmTagger()
        var out = [Float](repeating: 0, count: 1000)
        let ids: [Int32] = [3, 4, 5]
        let shapes = try ids.withUnsafeBufferPointer { p in
            try out.withUnsafeMutableBufferPointer { q in try tagger.predict(p, shape: [1, 3], into: q) }
        }
        print(shapes, FreeEmbeddingBilstmTagger.info.sourceSHA256)
        """.write(toFile: dir + "/main.swift", atomically: true, encoding: .utf8)
        let files = ["main", "functional_two_outputs", "attention_masked", "free_embedding_bilstm_tagger"].map { dir + "/\($0).swift" }
        let r = try runProcess("/usr/bin/env", ["swiftc", "-typecheck", "-I", dir] + files)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
    }

    /// kiln graph: the layer graph as Keras' plot_model draws it (names, types, shapes on the
    /// edges), as SVG through Graphviz or as dot text; --after PASS: the primitive graph.
    func testGraphDrawsLayersAndPasses() throws {
        let kiln = try kilnBinary()
        let dir = try makeTempDir(self, "graph")
        let model = Self.root + "/samples/models/mnist_cnn.keras"
        let dot = try runProgram(kiln, ["graph", model, "-o", dir + "/m.dot"])
        XCTAssertEqual(dot.status, 0, dot.stderr)
        let text = try String(contentsOfFile: dir + "/m.dot", encoding: .utf8)
        let m = try Compiler.load(model)
        for l in m.layers where l.className != "InputLayer" {
            XCTAssertTrue(text.contains("\"\(l.name) (\(l.className))\""), "\(l.name) missing in\n\(text)")
        }
        XCTAssertTrue(text.contains("label=\"(None, 28, 28, 1)\""), text)
        XCTAssertTrue(text.contains("label=\"(None, 10)\""), text)

        let svg = try runProgram(kiln, ["graph", model, "-o", dir + "/m.svg"])
        XCTAssertEqual(svg.status, 0, svg.stderr)
        let picture = try String(contentsOfFile: dir + "/m.svg", encoding: .utf8)
        XCTAssertTrue(picture.contains("<svg"), picture)
        for l in m.layers where l.className != "InputLayer" {
            XCTAssertTrue(picture.contains(">\(l.name) (\(l.className))<"), "\(l.name) missing in the SVG")
        }

        let fused = try runProgram(kiln, ["graph", model, "-o", dir + "/f.dot", "--after", "fuse-elementwise"])
        XCTAssertEqual(fused.status, 0, fused.stderr)
        let ftext = try String(contentsOfFile: dir + "/f.dot", encoding: .utf8)
        XCTAssertTrue(ftext.contains("after fuse-elementwise"), ftext)
        XCTAssertTrue(ftext.contains("fillcolor=\"#d9ead3\""), "no fused kernel drawn:\n\(ftext)")

        let bad = try runProgram(kiln, ["graph", model, "-o", dir + "/x.svg", "--after", "nonsense"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("--after takes a pass of the predict pipeline"), bad.stderr)
        let ext = try runProgram(kiln, ["graph", model, "-o", dir + "/x.txt"])
        XCTAssertEqual(ext.status, 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/x.txt"))
    }

    func testPlotTicksAreRound() {
        let a = LossPlot.ticks(lo: 0.123, hi: 0.987)
        XCTAssertEqual(a.step, 0.2, accuracy: 1e-12)
        XCTAssertEqual(a.values.count, 6)
        for (v, w) in zip(a.values, [0, 0.2, 0.4, 0.6, 0.8, 1.0]) { XCTAssertEqual(v, w, accuracy: 1e-12) }
        XCTAssertEqual(a.values.map { LossPlot.tickText($0, step: a.step) }, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"])
        let b = LossPlot.ticks(lo: 1, hi: 100)
        XCTAssertEqual(b.step, 20)
        XCTAssertEqual(b.values, [0, 20, 40, 60, 80, 100])
        XCTAssertEqual(LossPlot.tickText(40, step: 20), "40")
        let c = LossPlot.ticks(lo: 2.3061, hi: 2.3102)
        XCTAssertEqual(c.step, 0.001, accuracy: 1e-15)
        XCTAssertEqual(c.values.first!, 2.306, accuracy: 1e-12)
        XCTAssertEqual(c.values.last!, 2.311, accuracy: 1e-12)
        XCTAssertEqual(LossPlot.tickText(c.values.last!, step: c.step), "2.311")
        let d = LossPlot.ticks(lo: 0.5, hi: 0.5)   // one value: a range around it
        XCTAssertTrue(d.values.first! < 0.5 && d.values.last! > 0.5, "\(d)")
        XCTAssertEqual(LossPlot.epochTicks(count: 5), [1, 2, 3, 4, 5])
        XCTAssertEqual(LossPlot.epochTicks(count: 37), [1, 5, 10, 15, 20, 25, 30, 35])
        XCTAssertEqual(LossPlot.epochTicks(count: 1), [1])
    }

    /// --key draws other history keys: val_loss dashed beside loss in one panel, accuracy in its own.
    func testPlotDrawsHistoryKeys() throws {
        let kiln = try kilnBinary()
        let dir = try makeTempDir(self, "plot")
        try "{\"loss\": [1.0, 0.5, 0.3], \"accuracy\": [0.5, 0.7, 0.8], \"val_loss\": [1.1, 0.7, 0.6]}"
            .write(toFile: dir + "/h.json", atomically: true, encoding: .utf8)
        let r = try runProgram(kiln, ["plot", dir + "/h.json", "-o", dir + "/p.svg", "--key", "accuracy", "--key", "val_loss"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let svg = try String(contentsOfFile: dir + "/p.svg", encoding: .utf8)
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 3)
        XCTAssertEqual(svg.components(separatedBy: "class=\"panel\"").count - 1, 2)
        XCTAssertEqual(svg.components(separatedBy: "stroke-dasharray").count - 1, 2)   // val_loss's curve and legend line
        XCTAssertTrue(svg.contains(">val_loss<") && svg.contains(">accuracy<"), svg)
        let missing = try runProgram(kiln, ["plot", dir + "/h.json", "-o", dir + "/q.svg", "--key", "val_accuracy"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("has no \"val_accuracy\" list"), missing.stderr)
    }
}
