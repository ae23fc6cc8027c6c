// Stateful recurrent layers (Keras' stateful=True): several consecutive calls of one instance
// against Keras' numbers (Tests/stateful, made by tools/gen_stateful.py), reset_states, the fixed
// batch size, and training carrying the state as predict does.

import Foundation
import XCTest
import Kiln
import KilnRuntime

final class StatefulTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("stateful")

    struct KerasCase {
        var calls: [String]
        var x: HostTensor
        var y: [HostTensor]
    }

    func keras(_ name: String) throws -> KerasCase {
        let dir = root.appendingPathComponent(name)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("case.json"))) as! [String: Any]
        let outputs = json["outputs"] as! Int
        return KerasCase(calls: json["calls"] as! [String], x: try NPY.read(path: dir.appendingPathComponent("x.npy").path),
                         y: try (0..<outputs).map { try NPY.read(path: dir.appendingPathComponent("y\($0).npy").path) })
    }

    /// Call k of a stacked (calls, batch, ...) array.
    func call(_ t: HostTensor, _ k: Int) -> HostTensor { rows(t, k..<(k + 1), flatten: false) }

    /// Calls `range` of a stacked array: one call's (batch, ...) or, flattened, the calls' rows one after another.
    func rows(_ t: HostTensor, _ range: Range<Int>, flatten: Bool) -> HostTensor {
        let per = t.shape.dropFirst().reduce(1, *)
        let shape = flatten ? [range.count * t.shape[1]] + t.shape.dropFirst(2) : Array(t.shape.dropFirst())
        if t.dtype == .int32 { return HostTensor(shape: shape, ints: Array(t.ints[(range.lowerBound * per)..<(range.upperBound * per)])) }
        return HostTensor(shape: shape, floats: Array(t.floats[(range.lowerBound * per)..<(range.upperBound * per)]))
    }

    func compile(_ name: String, options: CompileOptions = CompileOptions()) throws -> String {
        let model = try Compiler.load(root.appendingPathComponent(name).appendingPathComponent("model.keras").path)
        return try Compiler.compile(model, name: "st", to: try makeTempDir(self), options: options, log: { _ in }).library
    }

    func testKerasCallSequences() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: root.path).filter { !$0.hasPrefix(".") }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 4)
        for name in names {
            let c = try keras(name)
            let lib = try CompiledLibrary(path: try compile(name))
            XCTAssertEqual(lib.fixedBatch, c.x.shape[1], name)
            var k = 0
            for op in c.calls {
                if op == "reset" { try lib.resetStates(); continue }
                let outs = try lib.predict([call(c.x, k)])
                for (j, o) in outs.enumerated() {
                    assertClose(o.floats, call(c.y[j], k).floats.map(Double.init), rtol: 1e-4, atol: 1e-5, "\(name): call \(k), output \(j)")
                }
                k += 1
            }
            // Predict over all calls' rows at once (the batches in row order, as kiln predict runs them)
            // carries the state from batch to batch like the calls before the first reset.
            let firstRun = c.calls.prefix { $0 != "reset" }.count
            try lib.resetStates()
            let all = try lib.predict([rows(c.x, 0..<firstRun, flatten: true)], batchSize: 1000)
            let yPer = c.y[0].floats.count / c.y[0].shape[0]
            assertClose(all[0].floats, c.y[0].floats[0..<(firstRun * yPer)].map(Double.init), rtol: 1e-4, atol: 1e-5, "\(name): one predict over \(firstRun) batches")
        }
    }

    func testFixedBatchIsRequired() throws {
        let c = try keras("stateful_lstm_seq")
        let lib = try CompiledLibrary(path: try compile("stateful_lstm_seq"))
        let x = call(c.x, 0)
        let per = x.floats.count / x.shape[0]
        let fewer = HostTensor(shape: [2] + x.shape.dropFirst(), floats: Array(x.floats[0..<(2 * per)]))   // 2 rows of 3
        XCTAssertThrowsError(try lib.predict([fewer])) { e in
            XCTAssertTrue("\(e)".contains("exactly 3 rows"), "\(e)")
        }
    }

    /// A training step carries the state as predict does: with learning rate 0 (weights unchanged),
    /// train on batch 1 then predict batch 2 equals predict batch 1 then batch 2; reset_states clears it.
    func testTrainingCarriesTheState() throws {
        let c = try keras("stateful_gru_simple_rnn")
        var options = CompileOptions()
        options.loss = "mean_squared_error"; options.optimizer = "SGD"; options.learningRate = 0
        let path = try compile("stateful_gru_simple_rnn", options: options)
        let (x1, x2) = (call(c.x, 0), call(c.x, 1))
        let y1 = call(c.y[0], 0)
        let trained = try CompiledLibrary(path: path), predicted = try CompiledLibrary(path: path), fresh = try CompiledLibrary(path: path)
        let loss1 = try trained.trainStep(x: [x1], y: [y1])
        XCTAssertEqual(loss1, 0, accuracy: 1e-9, "Keras' own output of call 1 is the target: zero loss from the zero state")
        _ = try predicted.predict([x1])
        let afterTrain = try trained.predict([x2])[0].floats
        XCTAssertEqual(afterTrain, try predicted.predict([x2])[0].floats)
        assertClose(afterTrain, call(c.y[0], 1).floats.map(Double.init), rtol: 1e-4, atol: 1e-5, "train then predict: Keras' call 2")
        let zero = try fresh.predict([x2])[0].floats
        XCTAssertNotEqual(afterTrain, zero, "the carried state changes the output")
        try trained.resetStates()
        XCTAssertEqual(try trained.predict([x2])[0].floats, zero, "reset_states clears the carried state")
        // The second training step starts from the state the first left.
        let again = try CompiledLibrary(path: path)
        _ = try again.trainStep(x: [x1], y: [y1])
        XCTAssertEqual(try again.trainStep(x: [x2], y: [call(c.y[0], 1)]), 0, accuracy: 1e-9, "batch 2 from the carried state is Keras' call 2")
    }

    /// A stateful layer with dropout trains (the masks apply, the carried state follows).
    func testStatefulWithDropoutTrains() throws {
        let c = try keras("stateful_lstm_return_state")
        var options = CompileOptions()
        options.loss = "mean_squared_error"; options.optimizer = "Adam"
        let lib = try CompiledLibrary(path: try compile("stateful_lstm_return_state", options: options))
        lib.setSeed(3)
        let ys = c.y.map { call($0, 0) }
        let losses = try (0..<3).map { _ in try lib.trainStep(x: [call(c.x, 0)], y: ys) }
        XCTAssertTrue(losses.allSatisfy(\.isFinite))
        XCTAssertEqual(lib.iterations, 3)
    }
}
