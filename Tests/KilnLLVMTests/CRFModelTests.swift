// CRF taggers as whole models: from the Swift API and as a layer graph (Bidirectional LSTM),
// trained, saved and reloaded, and through the `kiln` command; and the errors of a misplaced
// CRF or CRF loss. (The numerics against enumeration are in CRFTests.swift.)

import Foundation
import XCTest
import Kiln
import KilnIR
import KilnKeras
import KilnRuntime

final class CRFModelTests: XCTestCase {
    // MARK: - Whole models

    /// Right-padded token sequences (0 = padding, lengths 2 ... steps) and their tags: a tag per
    /// token, 0 at padding.
    func taggingData(rows: Int, steps: Int, vocab: Int, _ r: inout TestRNG, tag: (Int32) -> Int32) -> (HostTensor, HostTensor) {
        var ids = [Int32](), tags = [Int32]()
        for _ in 0..<rows {
            let length = 2 + r.int(steps - 1)
            for t in 0..<steps {
                let token = t < length ? Int32(1 + r.int(vocab - 1)) : 0
                ids.append(token)
                tags.append(t < length ? tag(token) : 0)
            }
        }
        return (HostTensor(shape: [rows, steps], ints: ids), HostTensor(shape: [rows, steps], ints: tags))
    }

    /// The share of real (non-padding) steps tagged right, and whether every padding step got 0.
    func accuracy(_ predicted: HostTensor, _ x: HostTensor, _ y: HostTensor) -> (Double, Bool) {
        let real = x.ints.indices.filter { x.ints[$0] != 0 }
        let right = real.filter { predicted.ints[$0] == y.ints[$0] }.count
        return (Double(right) / Double(real.count), x.ints.indices.allSatisfy { x.ints[$0] != 0 || predicted.ints[$0] == 0 })
    }

    /// A Swift API tagger, Embedding(mask_zero) -> Dense -> CRF: int32 predictions, training that
    /// lowers the loss, and the same predictions after saving as .keras and compiling the file.
    func testSwiftAPITaggerTrainsSavesAndReloads() throws {
        var r = TestRNG(4103)
        let (steps, vocab, n) = (6, 10, 3)
        let (x, y) = taggingData(rows: 48, steps: steps, vocab: vocab, &r) { $0 % 3 }
        let tokens = Input(shape: [steps], dtype: .int32)
        let crf = CRF()
        let model = try FunctionalModel(inputs: tokens, outputs: crf(Dense(n)(Embedding(inputDim: vocab, outputDim: 8, maskZero: true)(tokens))))
        XCTAssertEqual(crf.weightNames, ["transitions", "start_transitions", "end_transitions"])
        XCTAssertEqual(crf.weightShapes, [[n, n], [n], [n]])
        XCTAssertEqual(crf.countParams(), n * n + 2 * n)
        let summary = model.summary()
        XCTAssertTrue(summary.contains("\(crf.name) (CRF)"), summary)
        XCTAssertTrue(summary.split(separator: "\n").contains { $0.contains("(CRF)") && $0.contains("(None, 6)") && $0.contains(" 15 ") }, summary)

        try model.compile(loss: "crf", optimizer: .adam(learningRate: 0.05))
        let p0 = try model.predict(x)
        XCTAssertEqual(p0.dtype, .int32)
        XCTAssertEqual(p0.shape, [48, steps])
        let history = try model.fit(x: x, y: y, epochs: 12, batchSize: 16, shuffle: false, verbose: false)
        XCTAssertLessThan(history.loss.last!, 0.25 * history.loss.first!, "losses \(history.loss)")
        let p = try model.predict(x)
        let (acc, padded) = accuracy(p, x, y)
        XCTAssertGreaterThan(acc, 0.95, "losses \(history.loss)")
        XCTAssertTrue(padded, "padding steps must be tagged 0")

        let dir = try makeTempDir(self)
        try model.save(dir + "/tagger.keras")
        let loaded = try Compiler.load(dir + "/tagger.keras")
        XCTAssertEqual(loaded.training?.losses.map(\.name), ["crf"])
        XCTAssertEqual(loaded.training?.losses.first?.crfLayer, crf.name)
        let lib = try compileAndLoad(loaded, name: "tagger", dir: dir)
        XCTAssertEqual(try lib.predict([x])[0], p)
        XCTAssertEqual(Double(try lib.evaluate(x: [x], y: [y])), try model.evaluate(x: x, y: y, batchSize: 48), accuracy: 1e-5)
    }

    /// Embedding(mask_zero) -> Bidirectional(LSTM, return_sequences) -> Dense -> CRF as a layer
    /// graph (the Keras importer's form): the mask reaches the CRF through Bidirectional, the loss
    /// falls, padding is tagged 0. The tag of a token depends on the token before it, so the
    /// recurrent layer has to carry it.
    func testBidirectionalLSTMTaggerTrains() throws {
        var r = TestRNG(4104)
        let (steps, vocab, n, units, dim) = (7, 9, 3, 6, 5)
        var (x, y) = taggingData(rows: 40, steps: steps, vocab: vocab, &r) { _ in 0 }
        for i in x.ints.indices where x.ints[i] != 0 {
            let previous = i % steps == 0 ? 0 : x.ints[i - 1]
            y.ints[i] = (x.ints[i] + previous) % 3
        }
        var m = GraphMaker("bilstm_crf")
        let ids = m.input("tokens", [steps], dtype: .i32)
        let emb = try m.layer(EmbeddingKind(inputDim: vocab, outputDim: dim, maskZero: true).op, [ids, m.param("embedding/embeddings", [vocab, dim], r.floats(vocab * dim, -0.5, 0.5))], "embedding")
        let fw = RecurrentSpec(kind: .lstm, units: units, returnSequences: true, zeroOutputForMask: true)
        var bw = fw
        bw.goBackwards = true
        var weights: [Value] = []
        for side in ["forward", "backward"] {
            weights.append(m.param("\(side)/kernel", [dim, 4 * units], r.floats(dim * 4 * units, -0.4, 0.4)))
            weights.append(m.param("\(side)/recurrent_kernel", [units, 4 * units], r.floats(units * 4 * units, -0.4, 0.4)))
            weights.append(m.param("\(side)/bias", [4 * units], r.floats(4 * units, -0.1, 0.1)))
        }
        let seq = try m.layer(BidirectionalKind(forward: fw, backward: bw, merge: .concat, masked: false, innerName: "rnn").op, [emb] + weights, "bidirectional")
        let scores = try m.layer(DenseKind(units: n, activation: .linear, useBias: true).op,
                                 [seq, m.param("dense/kernel", [2 * units, n], r.floats(2 * units * n, -0.4, 0.4)), m.param("dense/bias", [n], [0, 0, 0])], "dense")
        let crf = try m.layer(CRFKind(masked: false).op, [scores, m.param("crf/transitions", [n, n], r.floats(n * n, -0.4, 0.4)),
                                                    m.param("crf/start_transitions", [n], [0, 0, 0]), m.param("crf/end_transitions", [n], [0, 0, 0])], "crf")
        m.output(crf, "crf")
        let dir = try makeTempDir(self)
        var options = CompileOptions()
        options.printAfter = ["masks"]
        var printed = ""
        let a = try Compiler.compile(m.model(training: TrainingConfig(losses: [.crf(layer: "crf")], optimizer: .adam(learningRate: 0.03))),
                                     name: "bilstm_crf", to: dir, options: options, log: { printed += $0 + "\n" })
        XCTAssertTrue(printed.contains("crf<masked>"), "the mask does not reach the CRF:\n\(printed)")
        let lib = try CompiledLibrary(path: a.library)
        let h = try fit(lib, x: [x], y: [y], options: FitOptions(epochs: 25, batchSize: 20, shuffle: false, seed: 0, verbose: false),
                        isTerminal: false) { _ in }
        XCTAssertLessThan(h.loss.last!, 0.4 * h.loss.first!, "losses \(h.loss)")
        let (acc, padded) = accuracy(try lib.predict([x])[0], x, y)
        XCTAssertGreaterThan(acc, 0.85, "losses \(h.loss)")
        XCTAssertTrue(padded, "padding steps must be tagged 0")
    }

    /// `kiln predict` writes the tags as int32 .npy; `kiln fit` takes int64 tags.
    func testCommandLineInt32PredictionsAndInt64Targets() throws {
        let kiln = try kilnBinary()
        let dir = try makeTempDir(self)
        var r = TestRNG(4105)
        let (x, y) = taggingData(rows: 32, steps: 5, vocab: 8, &r) { $0 % 2 }
        let tokens = Input(shape: [5], dtype: .int32)
        let model = try FunctionalModel(inputs: tokens, outputs: CRF()(Dense(2)(Embedding(inputDim: 8, outputDim: 4, maskZero: true)(tokens))))
        try model.compile(loss: "crf", optimizer: .adam(learningRate: 0.05))
        try model.save(dir + "/m.keras")
        let compiled = try runProgram(kiln, ["compile", dir + "/m.keras", "-o", dir])
        XCTAssertEqual(compiled.status, 0, compiled.stderr)
        try NPY.write(x, path: dir + "/x.npy")
        let predicted = try runProgram(kiln, ["predict", dir + "/libm.so", "--input", dir + "/x.npy", "--output", dir + "/p.npy"])
        XCTAssertEqual(predicted.status, 0, predicted.stderr)
        let raw = try Data(contentsOf: URL(fileURLWithPath: dir + "/p.npy"))
        XCTAssertTrue(String(decoding: raw.prefix(128), as: UTF8.self).contains("'descr': '<i4'"))
        let p = try NPY.read(path: dir + "/p.npy")
        XCTAssertEqual(p, try model.predict(x))
        // The tags as int64, the way numpy writes them by default.
        var header = "{'descr': '<i8', 'fortran_order': False, 'shape': (32, 5), }"
        while (10 + header.count + 1) % 64 != 0 { header += " " }
        var bytes = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.count + 1), 0] + Array((header + "\n").utf8))
        for v in y.ints { withUnsafeBytes(of: Int64(v).littleEndian) { bytes.append(contentsOf: $0) } }
        try bytes.write(to: URL(fileURLWithPath: dir + "/y.npy"))
        let fitted = try runProgram(kiln, ["fit", dir + "/libm.so", "--x", dir + "/x.npy", "--y", dir + "/y.npy", "--epochs", "8",
                                           "--batch-size", "8", "--history", dir + "/h.json"])
        XCTAssertEqual(fitted.status, 0, fitted.stderr)
        let h = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/h.json"))) as! [String: Any]
        let losses = h["loss"] as! [Double]
        XCTAssertEqual(losses.count, 8)
        XCTAssertLessThan(losses.last!, 0.5 * losses.first!, "losses \(losses)")
    }

    // MARK: - Errors

    func testShapeErrorOnARank2Input() {
        let x = Input(shape: [4])
        let crf = CRF(name: "tagger")
        assertThrows(["CRF 'tagger'", "expects emission scores of shape (batch, steps, tags)", "got (None, 3)"], "CRF on (None, 3)") {
            _ = try FunctionalModel(inputs: x, outputs: crf(Dense(3)(x)))
        }
    }

    /// The CRF loss without a CRF, another loss on a CRF, a CRF that is not a model output, a
    /// metric on a CRF: each refused at compile time with one sentence.
    func testMisplacedCRFOrLossIsRefused() throws {
        var r = TestRNG(4106)
        func model(_ loss: LossConfig, metrics: [String] = [], crfFeedsOn: Bool = false, crfLast: Bool = true) throws -> Model {
            var m = GraphMaker("bad")
            let ids = m.input("tokens", [4], dtype: .i32)
            let emb = try m.layer(EmbeddingKind(inputDim: 5, outputDim: 3, maskZero: true).op, [ids, m.param("embedding/embeddings", [5, 3], r.floats(15))], "embedding")
            let scores = try m.layer(DenseKind(units: 3, activation: .linear, useBias: false).op, [emb, m.param("dense/kernel", [3, 3], r.floats(9))], "dense")
            if crfLast {
                let tags = try m.layer(CRFKind(masked: false).op, [scores, m.param("crf/transitions", [3, 3], r.floats(9)),
                                                             m.param("crf/start_transitions", [3], r.floats(3)), m.param("crf/end_transitions", [3], r.floats(3))], "crf")
                if crfFeedsOn {
                    // The tags as the ids of a further embedding: the CRF is no longer an output.
                    m.output(try m.layer(EmbeddingKind(inputDim: 3, outputDim: 2, maskZero: false).op, [tags, m.param("again/embeddings", [3, 2], r.floats(6))], "again"), "again")
                } else {
                    m.output(tags, "crf")
                }
            } else {
                m.output(scores, "dense")
            }
            return m.model(training: TrainingConfig(losses: [loss], optimizer: .sgd(learningRate: 0.1), metrics: metrics))
        }
        let dir = try makeTempDir(self)
        func refused(_ m: Model, _ parts: [String], file: StaticString = #filePath, line: UInt = #line) {
            assertThrows(parts, "compile", file: file, line: line) { _ = try Compiler.compile(m, name: "bad", to: dir, log: { _ in }) }
        }
        refused(try model(.crf(), crfLast: false), ["the CRF loss of output 'dense' needs a CRF layer there", "layer 'dense'"])
        refused(try model(LossConfig(name: "mean_squared_error"), crfFeedsOn: true), ["CRF 'crf'", "feeds layer 'again'", "only as a model output"])
        refused(try model(LossConfig(name: "sparse_categorical_crossentropy")), ["output 'crf' is the tags of CRF 'crf'", "CRF loss"])
        refused(try model(.crf(layer: "dense")), ["names layer 'dense', which is not a CRF layer"])
        refused(try model(.crf(), metrics: ["accuracy"]), ["metric 'accuracy' is not supported on output 'crf'"])
        // The Keras form of the loss: CRFLoss naming the layer.
        let cc = try JSON.parse(#"{"loss": {"module": "kiln_crf", "class_name": "CRFLoss", "config": {"name": "crf_loss", "reduction": "sum_over_batch_size", "crf": "crf"}, "registered_name": "kiln_crf>CRFLoss"}, "optimizer": "adam"}"#)
        XCTAssertEqual(try KerasCompileConfig.parse(cc, outputNames: ["crf"], file: "f")?.losses.first?.crfLayer, "crf")
        let bad = try JSON.parse(#"{"loss": {"class_name": "CRFLoss", "config": {"name": "crf_loss"}}, "optimizer": "adam"}"#)
        assertThrows(["CRFLoss", "names no CRF layer"], "CRFLoss without crf") { _ = try KerasCompileConfig.parse(bad, outputNames: ["crf"], file: "f") }
    }
}
