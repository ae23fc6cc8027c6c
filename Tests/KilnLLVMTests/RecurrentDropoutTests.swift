// Recurrent dropout in compiled programs: the compiled scan's gradient with fixed masks (graph
// inputs) against the unrolled cells' (whose primitive rules the IR tests check in float64),
// a fixed seed reproducing a training, and predict ignoring the rates.

import Foundation
import XCTest
import Kiln
import KilnIR
import KilnLayers
import KilnPasses
import KilnRuntime
import KilnKeras

final class RecurrentDropoutTests: XCTestCase {
    let (t, f, rows) = (5, 3, 6)

    /// One SGD step (learning rate 1: the change of the weights is the gradient) of a scan whose
    /// dropout masks are inputs, compiled as a scan or unrolled.
    func gradient(_ spec: RecurrentSpec, unroll: UnrollPolicy, seed: UInt64) throws -> (weights: [[Float]], loss: Float) {
        var r = TestRNG(seed)
        var m = GraphMaker("rdrop")
        let x = m.input("x", [t, f])
        let perGate = spec.kind != .simpleRNN && spec.recurrentDropout != 0
        let g0 = spec.kind.gates * spec.units
        let inMasks = spec.dropout > 0 ? (0..<(perGate ? spec.kind.gates : 1)).map { m.input("m\($0)", [f]) } : []
        let recMask = spec.recurrentDropout > 0 ? m.input("rm", [g0]) : nil
        let ws = spec.weightShapes(features: f).enumerated().map { j, s in m.param("w\(j)", s, r.floats(s.reduce(1, *), -0.7, 0.7)) }
        var b = PrimBuilder(graph: m.g, layer: "rnn")
        let out = try b.recurrence(spec, x: x, weights: ws, mask: nil,
                                   dropout: PrimBuilder.RecurrentDropoutMasks(input: inMasks, recurrent: recMask)).outputs(spec).main
        m.g = b.graph
        m.output(out, "rnn")
        let training = TrainingConfig(losses: [LossConfig(name: "mean_squared_error")], optimizer: OptimizerConfig(name: "SGD", learningRate: 1))
        var options = CompileOptions()
        options.unroll = unroll
        let lib = try compileAndLoad(m.model(training: training), name: "rdrop", dir: try makeTempDir(self), options: options)
        func mask(_ count: Int, _ rate: Float) -> [Float] { (0..<count).map { _ in r.uniform(0, 1) < rate ? 0 : 1 / (1 - rate) } }
        var xs = [HostTensor(shape: [rows, t, f], floats: r.floats(rows * t * f))]
        xs += inMasks.map { _ in HostTensor(shape: [rows, f], floats: mask(rows * f, spec.dropout)) }
        if recMask != nil { xs.append(HostTensor(shape: [rows, g0], floats: mask(rows * g0, spec.recurrentDropout))) }
        let outShape = spec.returnSequences ? [rows, t, spec.units] : [rows, spec.units]
        let y = HostTensor(shape: outShape, floats: r.floats(outShape.reduce(1, *)))
        let before = lib.getWeights().map(\.floats)
        let loss = try lib.trainStep(x: xs, y: [y])
        return (zip(before, lib.getWeights().map(\.floats)).map { zip($0, $1).map { $0 - $1 } }, loss)
    }

    func testCompiledScanGradientWithMasks() throws {
        let specs = [
            RecurrentSpec(kind: .lstm, units: 3, returnSequences: true, dropout: 0.3, recurrentDropout: 0.4),
            RecurrentSpec(kind: .lstm, units: 4, goBackwards: true, recurrentDropout: 0.5),
            RecurrentSpec(kind: .gru, units: 3, returnSequences: true, dropout: 0.2, recurrentDropout: 0.5),
            RecurrentSpec(kind: .simpleRNN, units: 3, returnSequences: true, dropout: 0.5, recurrentDropout: 0.5),
        ]
        for (k, spec) in specs.enumerated() {
            let scan = try gradient(spec, unroll: .never, seed: UInt64(k + 1))
            let unrolled = try gradient(spec, unroll: .always, seed: UInt64(k + 1))
            XCTAssertEqual(scan.loss, unrolled.loss, accuracy: 1e-5 * Swift.max(1, Swift.abs(scan.loss)), "\(spec.kind): loss")
            for (j, (a, b)) in zip(scan.weights, unrolled.weights).enumerated() {
                assertClose(a, b.map(Double.init), rtol: 1e-3, atol: 1e-6, "\(spec.kind) (\(k)): gradient of weight \(j)")
            }
        }
    }

    /// An LSTM and a Bidirectional(GRU) with both rates, trained through the layer table.
    func model(rates: Bool) -> Model {
        var r = TestRNG(3)
        var m = GraphMaker("drop_model")
        let x = m.input("x", [t, f])
        let lstm = RecurrentSpec(kind: .lstm, units: 4, returnSequences: true, dropout: rates ? 0.3 : 0, recurrentDropout: rates ? 0.3 : 0)
        var gru = RecurrentSpec(kind: .gru, units: 3, dropout: rates ? 0.2 : 0, recurrentDropout: rates ? 0.4 : 0)
        let lw = lstm.weightShapes(features: f).enumerated().map { j, s in m.param("lstm/w\(j)", s, r.floats(s.reduce(1, *), -0.5, 0.5)) }
        let h = try! m.layer(RNNKind(lstm).op, [x] + lw, "lstm")
        let bw = (gru.weightShapes(features: 4) + gru.weightShapes(features: 4)).enumerated().map { j, s in
            m.param("bidi/w\(j)", s, r.floats(s.reduce(1, *), -0.5, 0.5))
        }
        var back = gru
        back.goBackwards = true
        gru.zeroOutputForMask = false
        let y = try! m.layer(BidirectionalKind(forward: gru, backward: back, merge: .concat, innerName: "gru").op, [h] + bw, "bidirectional")
        m.output(y, "out")
        return m.model(training: TrainingConfig(losses: [LossConfig(name: "mean_squared_error")],
                                                optimizer: OptimizerConfig(name: "Adam", learningRate: 0.01)))
    }

    func testSeedReproducesTrainingAndPredictIgnoresRates() throws {
        let dir = try makeTempDir(self)
        let a = try Compiler.compile(model(rates: true), name: "dropped", to: dir, options: CompileOptions(), log: { _ in })
        let z = try Compiler.compile(model(rates: false), name: "plain", to: dir, options: CompileOptions(), log: { _ in })
        var r = TestRNG(8)
        let x = HostTensor(shape: [rows, t, f], floats: r.floats(rows * t * f))
        let y = HostTensor(shape: [rows, 6], floats: r.floats(rows * 6))
        func train(_ path: String, seed: UInt64) throws -> (losses: [Float], weights: [[Float]], predict: [Float]) {
            let lib = try CompiledLibrary(path: path)
            lib.setSeed(seed)
            let losses = try (0..<4).map { _ in try lib.trainStep(x: [x], y: [y]) }
            return (losses, lib.getWeights().map(\.floats), try lib.predict([x])[0].floats)
        }
        let first = try train(a.library, seed: 5), again = try train(a.library, seed: 5), other = try train(a.library, seed: 6)
        XCTAssertEqual(first.losses, again.losses, "the same seed reproduces the training")
        XCTAssertEqual(first.weights, again.weights)
        XCTAssertNotEqual(first.losses, other.losses, "another seed draws other masks")
        // The masks change the training: the model without rates trains otherwise.
        let plain = try train(z.library, seed: 5)
        XCTAssertEqual(first.losses.count, plain.losses.count)
        XCTAssertNotEqual(first.losses[0], plain.losses[0])
        // Predict ignores the rates: the two libraries agree on the same weights.
        let dropped = try CompiledLibrary(path: a.library), zero = try CompiledLibrary(path: z.library)
        assertClose(try dropped.predict([x])[0].floats, try zero.predict([x])[0].floats.map(Double.init), rtol: 0, atol: 0, "predict")
        try zero.setWeights(first.weights.enumerated().map { HostTensor(shape: dropped.getWeights()[$0.offset].shape, floats: $0.element) })
        assertClose(first.predict, try zero.predict([x])[0].floats.map(Double.init), rtol: 0, atol: 0, "predict after training")
    }

    /// The Swift API's rates: saved as Keras' dropout / recurrent_dropout, ignored by predict, applied in training.
    func testSwiftAPIRates() throws {
        func model(_ rates: Bool) throws -> FunctionalModel {
            Keras.clearSession(seed: 9)
            let x = Input(shape: [t, f])
            let h = LSTM(4, returnSequences: true, dropout: rates ? 0.3 : 0, recurrentDropout: rates ? 0.25 : 0)(x)
            let m = try FunctionalModel(inputs: [x], outputs: [Dense(2)(GRU(3, dropout: rates ? 0.5 : 0)(h))])
            try m.compile(loss: "mse", optimizer: .sgd(learningRate: 0.1))
            return m
        }
        let (dropped, plain) = (try model(true), try model(false))
        XCTAssertEqual(dropped.weights, plain.weights)
        var r = TestRNG(4)
        let x = HostTensor(shape: [rows, t, f], floats: r.floats(rows * t * f))
        let y = HostTensor(shape: [rows, 2], floats: r.floats(rows * 2))
        XCTAssertEqual(try dropped.predict(x).floats, try plain.predict(x).floats)
        let dir = try makeTempDir(self)
        try dropped.save(dir + "/d.keras")
        let lstm = try XCTUnwrap(try KerasArchive.read(path: dir + "/d.keras").layers.first { $0.className == "LSTM" })
        XCTAssertEqual(lstm.config["dropout"]?.float, 0.3)
        XCTAssertEqual(lstm.config["recurrent_dropout"]?.float, 0.25)
        let a = try dropped.fit(x: x, y: y, epochs: 2, batchSize: 3, shuffle: false, seed: 1, verbose: false).loss
        let b = try plain.fit(x: x, y: y, epochs: 2, batchSize: 3, shuffle: false, seed: 1, verbose: false).loss
        XCTAssertNotEqual(a, b, "the rates change the training")
    }
}
