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
        // One epoch: no "Epoch 1/1" line (Keras prints it only for more than one); the first
        // batch is always drawn, the last closes the line with the elapsed time.
        let green = "\u{1B}[32m", white = "\u{1B}[37m", bold = "\u{1B}[1m", reset = "\u{1B}[0m"
        XCTAssertTrue(text.hasPrefix("\r\(bold) 1/10\(reset) \(green)━━\(reset)\(white)" + String(repeating: "━", count: 18) + reset), text)
        XCTAssertTrue(text.hasSuffix("\n"), text)
        let last = text.dropLast().reversed().drop(while: { $0 == " " }).reversed()   // less any padding over a longer line
        XCTAssertTrue(String(last).hasSuffix(" - loss: \(ProgressBar.formatValue(h.loss[0]))"), text)
        XCTAssertTrue(text.contains("\r\(bold)10/10\(reset) \(green)" + String(repeating: "━", count: 20) + "\(reset)\(white)\(reset) \(bold)0s\(reset) "), text)
    }

    func testProgressBarFollowsKerasProgbar() {
        var now = 100.0
        var bar = ProgressBar(batches: 40, verbosity: 1, clock: { now })
        XCTAssertEqual(bar.startEpoch(2, of: 5), "Epoch 2/5\n")
        func plain(_ s: String) -> String { s.replacingOccurrences(of: "\u{1B}[", with: "^").replacingOccurrences(of: "^0m", with: "")
            .replacingOccurrences(of: "^1m", with: "").replacingOccurrences(of: "^32m", with: "").replacingOccurrences(of: "^37m", with: "") }
        now = 100.5   // the first step took 0.5 s: its own estimate
        XCTAssertEqual(plain(bar.update(batch: 1, values: [("loss", 0.5), ("accuracy", 0.25)])),
                       "\r 1/40 " + String(repeating: "━", count: 20) + " 19s 500ms/step - loss: 0.5000 - accuracy: 0.2500")
        now = 100.52  // within 50 ms of the last redraw: nothing
        XCTAssertEqual(bar.update(batch: 2, values: [("loss", 0.4)]), "")
        now = 101.38  // 11 steps after the first took 0.88 s: 80 ms a step, the first left out; 28 to go
        XCTAssertEqual(plain(bar.update(batch: 12, values: [("loss", 0.41234), ("accuracy", 0.875)])),
                       "\r12/40 " + String(repeating: "━", count: 20) + " 2s 80ms/step - loss: 0.4123 - accuracy: 0.8750  ")   // over the 2 longer characters before
        now = 103.0   // final: elapsed time instead of the ETA, newline; padded over the longer previous line
        XCTAssertEqual(plain(bar.finish(values: [("loss", 0.00012)])),
                       "\r40/40 " + String(repeating: "━", count: 20) + " 3s 64ms/step - loss: 1.2000e-04" + String(repeating: " ", count: 15) + "\n")
        XCTAssertEqual(ProgressBar.formatTime(2.4), " 2s/step")
        XCTAssertEqual(ProgressBar.formatTime(0.0004), " 400us/step")
        var slow = ProgressBar(batches: 1000, verbosity: 1, clock: { now })
        _ = slow.startEpoch(1, of: 1)
        now += 4
        XCTAssertTrue(bar.startEpoch(1, of: 1).isEmpty)
        XCTAssertTrue(plain(slow.update(batch: 1, values: [])).contains(" 1:06:36 4s/step"))
        var lines = ProgressBar(batches: 3, verbosity: 2, clock: { now })
        _ = lines.startEpoch(1, of: 2)
        XCTAssertEqual(lines.update(batch: 1, values: [("loss", 1)]), "")
        XCTAssertEqual(lines.finish(values: [("loss", 0.5), ("val_loss", 0.25)]), "Epoch 1/2 - loss: 0.500000 - val_loss: 0.250000\n")
    }

    func testValidationSplitHoldsOutTheLastRowsBeforeShuffling() throws {
        let (x, y) = data(10)
        var o = FitOptions(epochs: 2, batchSize: 3, shuffle: true, seed: 4)
        o.validationSplit = 0.25      // floor(10 * 0.75) = 7 rows train, rows 7-9 validate
        let lib = try load()
        let h = try fit(lib, x: [x], y: [y], options: o)
        let ref = try load()
        var plain = FitOptions(epochs: 2, batchSize: 3, shuffle: true, seed: 4)
        plain.verbose = false
        let hr = try fit(ref, x: [rows(x, 0..<7)], y: [rows(y, 0..<7)], options: plain)
        XCTAssertEqual(h.loss, hr.loss)
        XCTAssertEqual(lib.getWeights(), ref.getWeights())
        XCTAssertEqual(h.metricNames, ["val_loss"])
        // The last epoch's val_loss: the trained model on rows 7-9, in one batch of 3.
        XCTAssertEqual(h.metrics["val_loss"]?.last, Double(try ref.evaluate(x: [rows(x, 7..<10)], y: [rows(y, 7..<10)])))
        XCTAssertEqual(h.json().hasPrefix("{\"loss\": ["), true)
        o.validationSplit = 0.05      // floor(9.5) = 9: one row held out
        XCTAssertEqual(try fit(try load(), x: [x], y: [y], options: o).metrics["val_loss"]?.count, 2)
        o.validationSplit = 0.999     // floor(0.01) = 0 rows left to train on
        XCTAssertThrowsError(try fit(try load(), x: [x], y: [y], options: o)) { e in
            XCTAssertTrue("\(e)".contains("too few to hold out a validation split"), "\(e)")
        }
    }

    func testEvaluateWeightsBatchesByTheirRows() throws {
        let (x, y) = data(7)
        let lib = try load()
        let e = try evaluate(lib, x: [x], y: [y], batchSize: 3)
        var sum = 0.0
        for r in [0..<3, 3..<6, 6..<7] { sum += Double(try lib.evaluate(x: [rows(x, r)], y: [rows(y, r)])) * Double(r.count) }
        XCTAssertEqual(e.names, ["loss"])
        XCTAssertEqual(e.values, [sum / 7])
        XCTAssertEqual(lib.iterations, 0, "evaluate does not train")
        XCTAssertEqual(Evaluation(names: ["loss", "accuracy"], values: [0.5, .nan]).json(), "{\"loss\": 0.5, \"accuracy\": null}")
        XCTAssertEqual(Evaluation(names: ["loss", "accuracy"], values: [0.5, 0.25]).line, "loss: 0.500000 - accuracy: 0.250000")
    }

    func testEarlyStoppingFollowsKerasRules() throws {
        let (x, y) = data(12)
        let vx = HostTensor(shape: [4, 3], floats: x.floats.prefix(12).map { -$0 }), vy = rows(y, 0..<4)
        // Patience 0 on the training loss, which falls every epoch: never stops.
        var o = FitOptions(epochs: 4, batchSize: 4, shuffle: false, verbose: false)
        o.earlyStopping = EarlyStopping(monitor: "loss", patience: 0)
        let h = try fit(try load(), x: [x], y: [y], options: o)
        XCTAssertEqual(h.loss.count, 4)
        XCTAssertNil(h.stoppedEpoch)
        XCTAssertEqual(h.loss, h.loss.sorted(by: >), "the fake model's loss falls each epoch")
        // mode max on that loss: epoch 2 is no improvement; patience 0 stops there (not at epoch 1: Keras needs epoch > 0).
        o.earlyStopping = EarlyStopping(monitor: "loss", patience: 0, mode: .max, restoreBestWeights: true)
        let lib = try load()
        let hm = try fit(lib, x: [x], y: [y], options: o)
        XCTAssertEqual(hm.stoppedEpoch, 2)
        XCTAssertEqual(hm.restoredEpoch, 1)
        let one = try load()
        var o1 = FitOptions(epochs: 1, batchSize: 4, shuffle: false, verbose: false)
        _ = try fit(one, x: [x], y: [y], options: o1)
        XCTAssertEqual(lib.getWeights(), one.getWeights(), "the weights of epoch 1 were put back")
        // A huge min_delta: nothing counts as an improvement after the first epoch.
        o.earlyStopping = EarlyStopping(monitor: "val_loss", patience: 2, minDelta: -100)
        XCTAssertEqual(o.earlyStopping?.minDelta, 100, "as Keras, the sign of min_delta is dropped")
        let hd = try fit(try load(), x: [x], y: [y], validation: ([vx], [vy]), options: o)
        XCTAssertEqual(hd.stoppedEpoch, 3)
        XCTAssertEqual(hd.metricNames, ["val_loss"])
        // Monitors must be reported, and their direction known.
        o1.earlyStopping = EarlyStopping(monitor: "val_loss", patience: 1)
        XCTAssertThrowsError(try fit(try load(), x: [x], y: [y], options: o1)) { e in
            XCTAssertTrue("\(e)".contains("(give validation data or a validation split)"), "\(e)")
        }
        XCTAssertTrue(try lowerIsBetter("val_dense_loss", .auto))
        XCTAssertFalse(try lowerIsBetter("val_accuracy", .auto))
        XCTAssertFalse(try lowerIsBetter("out_sparse_categorical_accuracy", .auto))
        XCTAssertThrowsError(try lowerIsBetter("mae", .auto))
        XCTAssertFalse(try lowerIsBetter("mae", .max))
    }

    func testCheckpointKeepsTheBestEpoch() throws {
        let (x, y) = data(12)
        let dir = NSTemporaryDirectory() + "kiln-checkpoint-\(getpid())/a/b"
        defer { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "kiln-checkpoint-\(getpid())") }
        var o = FitOptions(epochs: 3, batchSize: 4, shuffle: false, verbose: false)
        o.checkpoint = Checkpoint(directory: dir, monitor: "loss", mode: .max)   // the first epoch's loss is the highest
        let lib = try load()
        _ = try fit(lib, x: [x], y: [y], options: o)
        let one = try load()
        _ = try fit(one, x: [x], y: [y], options: FitOptions(epochs: 1, batchSize: 4, shuffle: false, verbose: false))
        let saved = try (0..<one.weights.count).map { try NPY.read(path: dir + String(format: "/%03d.npy", $0)) }
        XCTAssertEqual(saved, one.getWeights())
        let info = try String(contentsOfFile: dir + "/checkpoint.json", encoding: .utf8)
        XCTAssertTrue(info.hasPrefix("{\"epoch\": 1, \"monitor\": \"loss\", \"value\": "), info)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/000.npy.tmp"))
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
