// Swift API calls of layers with several outputs (callMulti): LSTM/GRU with returnState,
// Bidirectional with mergeMode nil and with returnState. Each model is compiled and its
// predictions compared with the same model saved as .keras, loaded and compiled anew.

import Foundation
import XCTest
import Kiln
import KilnIR
import KilnKeras
import KilnRuntime

final class MultiOutputAPITests: XCTestCase {
    func randomize(_ m: KerasModel, seed: UInt64) throws {
        var rng = TestRNG(seed)
        try m.setWeights(m.weightShapes.map { rng.floats($0.reduce(1, *), -0.7, 0.7) })
    }

    /// Predicts with the model and with its saved .keras file compiled anew; returns the predictions.
    @discardableResult
    func check(_ m: KerasModel, _ tag: String, steps: Int, features: Int, file: StaticString = #filePath, line: UInt = #line) throws -> [HostTensor] {
        try m.compile(loss: "mse", optimizer: .adam(learningRate: 0.01))
        try randomize(m, seed: 5)
        var rng = TestRNG(17)
        let rows = 6
        let x = [HostTensor(shape: [rows, steps, features], floats: rng.floats(rows * steps * features))]
        let want = try m.predict(x)
        XCTAssertEqual(want.count, m.outputs.count, file: file, line: line)
        let dir = try makeTempDir(self, "multi")
        try m.save(dir + "/\(tag).keras")
        let loaded = try Compiler.load(dir + "/\(tag).keras")
        XCTAssertEqual(ModelSummary.render(loaded), m.summary(), "\(tag): summary", file: file, line: line)
        let lib = try compileAndLoad(loaded, name: tag, dir: dir + "/lib")
        let got = try lib.predict(x)
        XCTAssertEqual(got.map(\.shape), want.map(\.shape), "\(tag): output shapes", file: file, line: line)
        for (k, (g, w)) in zip(got, want).enumerated() {
            assertClose(g.floats, w.floats.map(Double.init), rtol: 0, atol: 1e-6, "\(tag): output \(k)", file: file, line: line)
        }
        if let dump = ProcessInfo.processInfo.environment["KILN_SAVE_DUMP"], !dump.isEmpty {
            try FileManager.default.createDirectory(atPath: dump, withIntermediateDirectories: true)
            try m.save(dump + "/\(tag).keras")
            try NPY.write(x[0], path: dump + "/\(tag)_x0.npy")
            for (i, t) in want.enumerated() { try NPY.write(t, path: dump + "/\(tag)_p\(i).npy") }
        }
        // Training runs through every output.
        let y = want.map { t in HostTensor(shape: t.shape, floats: t.floats.map { $0 * 0.5 }) }
        XCTAssertTrue(try m.fit(x: x, y: y, epochs: 1, batchSize: 3, shuffle: false, verbose: false).loss.allSatisfy(\.isFinite))
        return want
    }

    func testLSTMReturnState() throws {
        Keras.clearSession(seed: 3)
        let x = Input(shape: [5, 3])
        let outs = LSTM(4, returnState: true).callMulti(x)
        XCTAssertEqual(outs.count, 3)
        XCTAssertEqual(outs.map(\.shape), [[nil, 4], [nil, 4], [nil, 4]])
        let m = try FunctionalModel(inputs: [x], outputs: [Dense(2)(outs[0]), outs[1], outs[2]])
        let p = try check(m, "lstm_state", steps: 5, features: 3)
        // Without return_sequences, the output is the final h.
        XCTAssertEqual(p[1].floats.count, 6 * 4)
        let single = LSTM(4).callMulti(x)
        XCTAssertEqual(single.count, 1, "a layer with one output gives one tensor")
    }

    func testGRUStateFeedsAnotherLayer() throws {
        Keras.clearSession(seed: 4)
        let x = Input(shape: [4, 2])
        let outs = GRU(3, returnSequences: true, returnState: true).callMulti(x)
        XCTAssertEqual(outs.map(\.shape), [[nil, 4, 3], [nil, 3]])
        let h = Concatenate()([SimpleRNN(3)(outs[0]), outs[1]])
        let m = try FunctionalModel(inputs: [x], outputs: [Dense(2)(h)])
        try check(m, "gru_state", steps: 4, features: 2)
    }

    func testBidirectionalMergeNone() throws {
        Keras.clearSession(seed: 5)
        let x = Input(shape: [6, 3])
        let both = Bidirectional(GRU(3, returnSequences: true), mergeMode: nil).callMulti(x)
        XCTAssertEqual(both.map(\.shape), [[nil, 6, 3], [nil, 6, 3]])
        let m = try FunctionalModel(inputs: [x], outputs: [Dense(2)(Concatenate()([both[0], both[1]])), both[1]])
        let p = try check(m, "bidir_none", steps: 6, features: 3)
        XCTAssertNotEqual(p[1].floats, [Float](repeating: 0, count: p[1].floats.count))
    }

    func testBidirectionalReturnState() throws {
        Keras.clearSession(seed: 6)
        let x = Input(shape: [5, 2])
        let outs = Bidirectional(LSTM(2, returnState: true)).callMulti(x)
        XCTAssertEqual(outs.map(\.shape), [[nil, 4], [nil, 2], [nil, 2], [nil, 2], [nil, 2]])
        let m = try FunctionalModel(inputs: [x], outputs: [Concatenate()(outs)])
        try check(m, "bidir_state", steps: 5, features: 2)
    }
}
