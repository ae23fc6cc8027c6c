// The fit loop on the fake model: batching, epoch losses, shuffling, NaN
// handling and progress text.

import Foundation
import XCTest
@testable import KilnRuntime

final class TrainerTests: XCTestCase {
    func load() throws -> CompiledLibrary { try CompiledLibrary(path: FakeModel.library()) }

    func data(_ n: Int) -> (HostTensor, HostTensor) {
        let x = HostTensor(shape: [n, 3], floats: (0..<3 * n).map { Float(($0 * 37) % 11) / 10 - 0.5 })
        let y = HostTensor(shape: [n, 2], floats: (0..<2 * n).map { Float(($0 * 13) % 7) / 7 })
        return (x, y)
    }

    func rows(_ t: HostTensor, _ r: Range<Int>) -> HostTensor {
        let e = t.count / t.rows
        return HostTensor(shape: [r.count] + t.shape.dropFirst(), floats: Array(t.floats[r.lowerBound * e..<r.upperBound * e]))
    }

    func testEpochLossIsBatchSizeWeightedWithAShortLastBatch() throws {
        let (x, y) = data(5)
        // By hand: steps on rows 0-1, 2-3, 4 (sizes 2, 2, 1) on a second instance.
        let ref = try load()
        var epochs: [Double] = []
        for _ in 0..<2 {
            var sum = 0.0
            for r in [0..<2, 2..<4, 4..<5] {
                sum += Double(try ref.trainStep(x: [rows(x, r)], y: [rows(y, r)])) * Double(r.count)
            }
            epochs.append(sum / 5)
        }
        let lib = try load()
        let h = try fit(lib, x: [x], y: [y], options: FitOptions(epochs: 2, batchSize: 2, shuffle: false))
        XCTAssertEqual(h.loss, epochs)
        XCTAssertEqual(lib.getWeights(), ref.getWeights())
        XCTAssertEqual(lib.iterations, 6)
    }

    func testNaNLossStopsWithEpochAndBatch() throws {
        let (x, y0) = data(10)
        var t = y0.floats
        t[5 * 2] = .nan   // row 5: batch 3 with batch size 2
        let lib = try load()
        XCTAssertThrowsError(try fit(lib, x: [x], y: [HostTensor(shape: [10, 2], floats: t)],
                                     options: FitOptions(epochs: 3, batchSize: 2, shuffle: false))) { e in
            XCTAssertTrue("\(e)".hasPrefix("loss became NaN at epoch 1, batch 3; "), "\(e)")
        }
        XCTAssertEqual(lib.iterations, 3, "the step that produced NaN ran; no further step did")
        t[5 * 2] = .infinity
        XCTAssertThrowsError(try fit(try load(), x: [x], y: [HostTensor(shape: [10, 2], floats: t)],
                                     options: FitOptions(epochs: 1, batchSize: 4, shuffle: false))) { e in
            XCTAssertTrue("\(e)".hasPrefix("loss became infinite at epoch 1, batch 2; "), "\(e)")
        }
    }

    func testShuffleIsRepeatableFromTheSeed() throws {
        let (x, y) = data(23)
        func run(_ seed: UInt64) throws -> (History, [HostTensor]) {
            let lib = try load()
            let h = try fit(lib, x: [x], y: [y], options: FitOptions(epochs: 3, batchSize: 4, shuffle: true, seed: seed))
            return (h, lib.getWeights())
        }
        let a = try run(42), b = try run(42), c = try run(43)
        XCTAssertEqual(a.0, b.0)
        XCTAssertEqual(a.1, b.1)
        XCTAssertNotEqual(a.1, c.1)
        XCTAssertEqual(a.0.loss.count, 3)

        let p1 = shuffledRows(100, seed: 42, epoch: 1), p2 = shuffledRows(100, seed: 42, epoch: 2)
        XCTAssertEqual(p1.sorted(), Array(0..<100))
        XCTAssertNotEqual(p1, Array(0..<100))
        XCTAssertNotEqual(p1, p2)
        XCTAssertEqual(p1, shuffledRows(100, seed: 42, epoch: 1))
        XCTAssertEqual(shuffledRows(1, seed: 0, epoch: 1), [0])
        XCTAssertEqual(shuffledRows(0, seed: 0, epoch: 1), [])
    }

    func testUnshuffledFitDiffersFromShuffled() throws {
        let (x, y) = data(12)
        let a = try load(), b = try load()
        _ = try fit(a, x: [x], y: [y], options: FitOptions(epochs: 1, batchSize: 4, shuffle: false))
        _ = try fit(b, x: [x], y: [y], options: FitOptions(epochs: 1, batchSize: 4, shuffle: true, seed: 1))
        XCTAssertNotEqual(a.getWeights(), b.getWeights())
    }

    func testPlainProgressLines() throws {
        let (x, y) = data(6)
        var text = ""
        let h = try fit(try load(), x: [x], y: [y], options: FitOptions(epochs: 2, batchSize: 4, shuffle: false),
                        isTerminal: false) { text += $0 }
        XCTAssertEqual(text, "Epoch 1/2 - loss: \(fixed(h.loss[0], 6))\nEpoch 2/2 - loss: \(fixed(h.loss[1], 6))\n")
        var quiet = ""
        _ = try fit(try load(), x: [x], y: [y], options: FitOptions(epochs: 1, batchSize: 4, verbose: false)) { quiet += $0 }
        XCTAssertEqual(quiet, "")
    }

    func testTerminalProgressBar() throws {
        let (x, y) = data(30)
        var text = ""
        let h = try fit(try load(), x: [x], y: [y], options: FitOptions(epochs: 1, batchSize: 3, shuffle: false),
                        isTerminal: true) { text += $0 }
        XCTAssertTrue(text.hasPrefix("Epoch 1/1\n\r 1/10 [==>...........................] - loss: "), text)
        XCTAssertTrue(text.hasSuffix("\r10/10 [==============================] - loss: \(fixed(h.loss[0], 4))\n"), text)
        let bar = ProgressBar(batches: 40, isTerminal: true)
        XCTAssertEqual(bar.line(batch: 12, loss: 0.12345), "12/40 [========>.....................] - loss: 0.1235")
        XCTAssertEqual(bar.line(batch: 40, loss: 0.00012), "40/40 [==============================] - loss: 1.2000e-04")
    }

    func testHistoryJSON() {
        XCTAssertEqual(History(loss: [0.5, 1.2145789861679077]).json(), "{\"loss\": [0.5, 1.2145789861679077]}")
        XCTAssertEqual(History().json(), "{\"loss\": []}")
        // A loss that is not finite is null; metrics follow the loss in their compiled order.
        var h = History(loss: [1, .nan])
        h.metricNames = ["accuracy"]
        h.metrics = ["accuracy": [0.25, 0.75]]
        XCTAssertEqual(h.json(), "{\"loss\": [1, null], \"accuracy\": [0.25, 0.75]}")
    }

    func testFitRefusesBadArguments() throws {
        let (x, y) = data(4)
        let lib = try load()
        func msg(_ o: FitOptions, _ x: [HostTensor], _ y: [HostTensor]) -> String {
            do { _ = try fit(lib, x: x, y: y, options: o) } catch { return "\(error)" }
            return "(no error)"
        }
        XCTAssertEqual(msg(FitOptions(batchSize: 0), [x], [y]), "the batch size must be at least 1 (got 0).")
        XCTAssertEqual(msg(FitOptions(), [x], []), "model 'fake' takes 1 target, but 0 were given.")
        XCTAssertEqual(msg(FitOptions(), [HostTensor(shape: [0, 3], floats: [])], [HostTensor(shape: [0, 2], floats: [])]),
                       "there are no rows to train on.")
        XCTAssertEqual(msg(FitOptions(), [x], [HostTensor(shape: [4, 3], floats: .init(repeating: 0, count: 12))]),
                       "target 'y' expects shape (-1, 2), found (4, 3).")
        XCTAssertEqual(try fit(lib, x: [x], y: [y], options: FitOptions(epochs: 0)).loss, [])
        XCTAssertEqual(lib.iterations, 0)
        let predictOnly = try CompiledLibrary(path: FakeModel.library(training: false))
        do {
            _ = try fit(predictOnly, x: [x], y: [y], options: FitOptions())
            XCTFail("a predict-only library trained")
        } catch {
            XCTAssertTrue("\(error)".contains("compiled without a training step"))
        }
    }
}
