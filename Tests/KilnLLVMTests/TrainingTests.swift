// Training through real compiled libraries: models built by hand with a
// TrainingConfig, compiled, loaded, and driven with trainStep / evaluate / fit.

import Foundation
import XCTest
import Kiln
import KilnIR
import KilnRuntime

final class TrainingTests: XCTestCase {
    static let mse = LossConfig(name: "mean_squared_error")

    /// The weights of Dense(inDim -> hidden, act) -> [Dropout] -> Dense(hidden -> out).
    struct MLP {
        var inDim: Int, hidden: Int, out: Int
        var w1: [Float], b1: [Float], w2: [Float], b2: [Float]
        init(inDim: Int, hidden: Int, out: Int, seed: UInt64) {
            self.inDim = inDim; self.hidden = hidden; self.out = out
            var r = TestRNG(seed)
            w1 = r.floats(inDim * hidden, -0.8, 0.8); b1 = r.floats(hidden, -0.2, 0.2)
            w2 = r.floats(hidden * out, -0.8, 0.8); b2 = r.floats(out, -0.2, 0.2)
        }

        func model(act: Activation = .tanh, dropout: Float? = nil, frozenFirst: Bool = false, training: TrainingConfig) throws -> Model {
            var m = GraphMaker("mlp")
            let x = m.input("x", [inDim])
            var h = try m.layer(DenseKind(units: hidden, activation: act, useBias: true).op,
                                [x, m.param("dense_1/kernel", [inDim, hidden], w1, trainable: !frozenFirst),
                                 m.param("dense_1/bias", [hidden], b1, trainable: !frozenFirst)], "dense_1")
            if let rate = dropout { h = try m.layer(DropoutKind(rate: rate).op, [h], "dropout") }
            let y = try m.layer(DenseKind(units: out, activation: .linear, useBias: true).op,
                                [h, m.param("dense_2/kernel", [hidden, out], w2), m.param("dense_2/bias", [out], b2)], "dense_2")
            m.output(y, "out")
            return m.model(training: training)
        }
    }

    func batch(_ rows: Int, _ inDim: Int, _ out: Int, seed: UInt64) -> (x: HostTensor, y: HostTensor) {
        var r = TestRNG(seed)
        return (HostTensor(shape: [rows, inDim], floats: r.floats(rows * inDim)), HostTensor(shape: [rows, out], floats: r.floats(rows * out)))
    }

    // MARK: - Threads

    /// Predict and a few Adam steps of a small CNN and an LSTM model give bit-identical
    /// outputs, losses and weights with 1, 2 and 3 threads. The sizes are chosen so that
    /// matrix products are split (by rows and by columns) and loops run in chunks.
    func testThreadCountDoesNotChangeResults() throws {
        let adam = OptimizerConfig(name: "Adam", learningRate: 0.01)
        var r = TestRNG(77)
        let rows = 64

        var cnn = GraphMaker("cnn")
        let image = cnn.input("x", [16, 16, 3])
        var h = try cnn.layer(Conv2DKind(filters: 16, kernel: [3, 3], strides: [1, 1], padding: .valid, activation: .relu, useBias: true).op,
                              [image, cnn.param("conv/kernel", [3, 3, 3, 16], r.floats(432, -0.3, 0.3)), cnn.param("conv/bias", [16], r.floats(16, -0.1, 0.1))], "conv")
        h = try cnn.layer(Pooling2DKind(.max, pool: [2, 2], strides: [2, 2], padding: .valid).op, [h], "pool")
        h = try cnn.layer(FlattenKind().op, [h], "flatten")
        h = try cnn.layer(DenseKind(units: 10, activation: .softmax, useBias: true).op,
                          [h, cnn.param("dense/kernel", [784, 10], r.floats(7840, -0.1, 0.1)), cnn.param("dense/bias", [10], r.floats(10, -0.1, 0.1))], "dense")
        cnn.output(h, "y")
        let cnnModel = cnn.model(training: TrainingConfig(losses: [LossConfig(name: "categorical_crossentropy")], optimizer: adam))
        let cnnData = (0..<3).map { _ in
            (HostTensor(shape: [rows, 16, 16, 3], floats: r.floats(rows * 768)),
             HostTensor(shape: [rows, 10], floats: (0..<rows).flatMap { i in (0..<10).map { Float($0 == i % 10 ? 1 : 0) } }))
        }

        var rnn = GraphMaker("lstm")
        let seq = rnn.input("x", [8, 16])
        let spec = RecurrentSpec(kind: .lstm, units: 96)
        let lstmWeights = spec.weightShapes(features: 16).enumerated().map { j, shape in
            rnn.param("lstm/w\(j)", shape, r.floats(shape.reduce(1, *), -0.2, 0.2))
        }
        var g = try rnn.layer(RNNKind(spec, masked: false).op, [seq] + lstmWeights, "lstm")
        g = try rnn.layer(DenseKind(units: 4, activation: .linear, useBias: true).op,
                          [g, rnn.param("out/kernel", [96, 4], r.floats(384, -0.3, 0.3)), rnn.param("out/bias", [4], r.floats(4))], "out")
        rnn.output(g, "y")
        let rnnModel = rnn.model(training: TrainingConfig(losses: [Self.mse], optimizer: adam))
        let rnnData = (0..<3).map { _ in
            (HostTensor(shape: [rows, 8, 16], floats: r.floats(rows * 128)), HostTensor(shape: [rows, 4], floats: r.floats(rows * 4)))
        }

        for (name, model, data) in [("cnn", cnnModel, cnnData), ("lstm", rnnModel, rnnData)] {
            let dir = try makeTempDir(self)
            let path = try Compiler.compile(model, name: name, to: dir, log: { _ in }).library
            var runs: [(predict: [[UInt32]], losses: [UInt32], weights: [[UInt32]], after: [[UInt32]])] = []
            for threads in [1, 2, 3] {
                let lib = try CompiledLibrary(path: path)
                try lib.setNumThreads(threads)
                let before = bits(try lib.predict([data[0].0], batchSize: rows))
                let losses = try data.map { try lib.trainStep(x: [$0.0], y: [$0.1]).bitPattern }
                runs.append((before, losses, bits(lib.getWeights()), bits(try lib.predict([data[0].0], batchSize: rows))))
            }
            for (k, run) in runs.enumerated().dropFirst() {
                XCTAssertTrue(run.predict == runs[0].predict, "\(name): predictions with \(k + 1) threads")
                XCTAssertTrue(run.losses == runs[0].losses, "\(name): losses with \(k + 1) threads")
                XCTAssertTrue(run.weights == runs[0].weights, "\(name): weights after 3 steps with \(k + 1) threads")
                XCTAssertTrue(run.after == runs[0].after, "\(name): predictions after training with \(k + 1) threads")
            }
            XCTAssertTrue(runs[0].predict != runs[0].after, "\(name): training changed nothing")
        }
    }

    func testNumberOfThreadsOutOfRangeIsRefused() throws {
        let dir = try makeTempDir(self)
        let lib = try compileAndLoad(try MLP(inDim: 3, hidden: 4, out: 2, seed: 5).model(training: TrainingConfig(losses: [Self.mse], optimizer: OptimizerConfig(name: "SGD", learningRate: 0.1))),
                                     name: "threads", dir: dir)
        for bad in [-1, 65] {
            assertThrows(["number of threads must be 1 to 64", "got \(bad)"], "setNumThreads(\(bad))") { try lib.setNumThreads(bad) }
        }
        try lib.setNumThreads(0)
        try lib.setNumThreads(64)
    }

    // MARK: - Frozen weights

    func testFrozenWeightsStayBitIdentical() throws {
        let dir = try makeTempDir(self)
        let mlp = MLP(inDim: 3, hidden: 5, out: 2, seed: 21)
        let cfg = TrainingConfig(losses: [Self.mse], optimizer: OptimizerConfig(name: "Adam", learningRate: 0.05))
        let lib = try compileAndLoad(try mlp.model(frozenFirst: true, training: cfg), name: "frozen", dir: dir)
        XCTAssertEqual(lib.weights.map(\.trainable), [false, false, true, true])
        let before = lib.getWeights()
        let (x, y) = batch(6, 3, 2, seed: 22)
        for _ in 0..<4 { _ = try lib.trainStep(x: [x], y: [y]) }
        XCTAssertEqual(lib.iterations, 4)
        let after = lib.getWeights()
        XCTAssertEqual(bits(after[0].floats), bits(before[0].floats), "frozen dense_1/kernel changed")
        XCTAssertEqual(bits(after[1].floats), bits(before[1].floats), "frozen dense_1/bias changed")
        XCTAssertNotEqual(after[2].floats, before[2].floats, "trainable dense_2/kernel did not change")
        XCTAssertNotEqual(after[3].floats, before[3].floats, "trainable dense_2/bias did not change")
    }

    // MARK: - Save and load

    /// Two instances of one .so: A trains 3 steps and saves; B loads; both then take the same 2 steps.
    /// Adam (slots + step count) and Dropout (the seed) make the whole state matter.
    func testSaveLoadGivesIdenticalPredictionsAndContinuedTraining() throws {
        let dir = try makeTempDir(self)
        let mlp = MLP(inDim: 4, hidden: 8, out: 2, seed: 31)
        let cfg = TrainingConfig(losses: [Self.mse], optimizer: OptimizerConfig(name: "Adam", learningRate: 0.01))
        let artifacts = try Compiler.compile(try mlp.model(dropout: 0.3, training: cfg), name: "saveload", to: dir, log: { _ in })
        let a = try CompiledLibrary(path: artifacts.library)
        let b = try CompiledLibrary(path: artifacts.library)
        let (x, y) = batch(10, 4, 2, seed: 32)
        a.setSeed(1234)
        for _ in 0..<3 { _ = try a.trainStep(x: [x], y: [y]) }
        let file = dir + "/state.bin"
        try a.saveWeights(to: file)
        XCTAssertNotEqual(bits(b.getWeights()), bits(a.getWeights()), "B should start from the initial weights")
        try b.loadWeights(from: file)

        XCTAssertEqual(b.iterations, 3)
        XCTAssertEqual(bits(b.getWeights()), bits(a.getWeights()))
        let probe = batch(13, 4, 2, seed: 33).x
        XCTAssertEqual(bits(try b.predict([probe])), bits(try a.predict([probe])))

        var lossesA: [Float] = [], lossesB: [Float] = []
        for _ in 0..<2 {
            lossesA.append(try a.trainStep(x: [x], y: [y]))
            lossesB.append(try b.trainStep(x: [x], y: [y]))
        }
        XCTAssertEqual(bits(lossesA), bits(lossesB), "continued training differs: \(lossesA) vs \(lossesB)")
        XCTAssertEqual(bits(a.getWeights()), bits(b.getWeights()))
        XCTAssertEqual(a.iterations, 5)
        XCTAssertEqual(b.iterations, 5)
    }

    // MARK: - Non-finite losses

    func testNaNInDataStopsFitNamingEpochAndBatch() throws {
        let dir = try makeTempDir(self)
        let mlp = MLP(inDim: 3, hidden: 4, out: 2, seed: 41)
        let lib = try compileAndLoad(try mlp.model(training: TrainingConfig(losses: [Self.mse], optimizer: OptimizerConfig(name: "SGD", learningRate: 0.01))),
                                     name: "nan", dir: dir)
        var (x, y) = batch(12, 3, 2, seed: 42)
        x.floats[5 * 3 + 1] = .nan   // row 5: batch 2 of size 4
        assertThrows(["NaN", "epoch 1, batch 2"], "fit on NaN data") {
            _ = try fit(lib, x: [x], y: [y], options: FitOptions(epochs: 3, batchSize: 4, shuffle: false, seed: 0, verbose: false))
        }
    }

    /// A huge learning rate on mse makes the loss overflow after a few steps; fit names
    /// the epoch and batch where it happened (found again here by replaying the steps).
    func testDivergingLossStopsFitAtTheRightEpochAndBatch() throws {
        let dir = try makeTempDir(self)
        var m = GraphMaker("diverge")
        let x0 = m.input("x", [3])
        var r = TestRNG(51)
        m.output(try m.layer(DenseKind(units: 2, activation: .linear, useBias: true).op,
                             [x0, m.param("dense/kernel", [3, 2], r.floats(6)), m.param("dense/bias", [2], r.floats(2))], "dense"), "out")
        var options = CompileOptions()
        options.learningRate = 3e4   // overrides the config's
        let model = m.model(training: TrainingConfig(losses: [Self.mse], optimizer: OptimizerConfig(name: "SGD", learningRate: 0.01)))
        let artifacts = try Compiler.compile(model, name: "diverge", to: dir, options: options, log: { _ in })
        let (x, y) = batch(8, 3, 2, seed: 52)
        let fitOptions = FitOptions(epochs: 50, batchSize: 3, shuffle: false, seed: 0, verbose: false)

        // Replay: batches of 3, 3, 2 in row order until a loss is not finite.
        let replay = try CompiledLibrary(path: artifacts.library)
        var stop: (epoch: Int, batch: Int)? = nil
        outer: for epoch in 1...fitOptions.epochs {
            for (k, lo) in stride(from: 0, to: 8, by: 3).enumerated() {
                let hi = min(lo + 3, 8)
                let bx = HostTensor(shape: [hi - lo, 3], floats: Array(x.floats[lo * 3..<hi * 3]))
                let by = HostTensor(shape: [hi - lo, 2], floats: Array(y.floats[lo * 2..<hi * 2]))
                if !(try replay.trainStep(x: [bx], y: [by])).isFinite { stop = (epoch, k + 1); break outer }
            }
        }
        guard let stop else { return XCTFail("the learning rate override did not make the loss diverge within \(fitOptions.epochs) epochs") }
        XCTAssertGreaterThan(stop.epoch * 10 + stop.batch, 11, "diverged on the very first batch; the test wants an update first")

        let lib = try CompiledLibrary(path: artifacts.library)
        assertThrows(["epoch \(stop.epoch), batch \(stop.batch)", "lower the learning rate"], "fit with a huge learning rate") {
            _ = try fit(lib, x: [x], y: [y], options: fitOptions)
        }
    }

    // MARK: - Target validation

    func testWrongTargetShapeIsRefused() throws {
        let dir = try makeTempDir(self)
        let mlp = MLP(inDim: 3, hidden: 4, out: 2, seed: 61)
        let lib = try compileAndLoad(try mlp.model(training: TrainingConfig(losses: [Self.mse], optimizer: OptimizerConfig(name: "SGD", learningRate: 0.1))),
                                     name: "targets", dir: dir)
        XCTAssertEqual(lib.targets.count, 1)
        let target = lib.targets[0].name
        XCTAssertEqual(lib.targets[0].shape, [-1, 2])
        let (x, _) = batch(5, 3, 2, seed: 62)
        let before = lib.getWeights()
        let wide = HostTensor(shape: [5, 3], floats: [Float](repeating: 0, count: 15))
        let flat = HostTensor(shape: [5], floats: [Float](repeating: 0, count: 5))
        let deep = HostTensor(shape: [5, 2, 1, 2], floats: [Float](repeating: 0, count: 20))
        for (y, found) in [(wide, "(5, 3)"), (flat, "(5,)"), (deep, "(5, 2, 1, 2)")] {
            let parts = ["target", "'\(target)'", "(-1, 2)", found]
            assertThrows(parts, "trainStep with target \(found)") { _ = try lib.trainStep(x: [x], y: [y]) }
            assertThrows(parts, "evaluate with target \(found)") { _ = try lib.evaluate(x: [x], y: [y]) }
            assertThrows(parts, "fit with target \(found)") {
                _ = try fit(lib, x: [x], y: [y], options: FitOptions(epochs: 1, batchSize: 2, verbose: false))
            }
        }
        // Row counts that disagree.
        let short = HostTensor(shape: [4, 2], floats: [Float](repeating: 0, count: 8))
        assertThrows(["'\(target)'", "4 rows", "5"], "trainStep with 4 target rows for 5 input rows") { _ = try lib.trainStep(x: [x], y: [short]) }
        XCTAssertEqual(lib.iterations, 0)
        XCTAssertEqual(bits(lib.getWeights()), bits(before), "a refused step changed the weights")
    }

    // MARK: - Evaluate

    func testEvaluateLeavesWeightsAndEqualsTheLossBeforeTheUpdate() throws {
        let dir = try makeTempDir(self)
        let mlp = MLP(inDim: 4, hidden: 6, out: 3, seed: 71)
        let lib = try compileAndLoad(try mlp.model(training: TrainingConfig(losses: [Self.mse], optimizer: OptimizerConfig(name: "Adam", learningRate: 0.01))),
                                     name: "evaluate", dir: dir)
        let (x, y) = batch(9, 4, 3, seed: 72)
        for _ in 0..<2 { _ = try lib.trainStep(x: [x], y: [y]) }   // leave the initial point
        let before = lib.getWeights()
        let e1 = try lib.evaluate(x: [x], y: [y])
        let e2 = try lib.evaluate(x: [x], y: [y])
        XCTAssertEqual(bits(lib.getWeights()), bits(before), "evaluate changed the weights")
        XCTAssertEqual(lib.iterations, 2, "evaluate counted as a step")
        XCTAssertEqual(e1.bitPattern, e2.bitPattern)
        // The mse of predict's output, in Double.
        let p = try lib.predict([x])[0].floats
        let naive = zip(p, y.floats).reduce(0.0) { $0 + pow(Double($1.0) - Double($1.1), 2) } / Double(p.count)
        XCTAssertEqual(Double(e1), naive, accuracy: 1e-6 + 1e-5 * naive)
        let t = try lib.trainStep(x: [x], y: [y])
        XCTAssertEqual(t, e1, accuracy: 1e-6 * abs(e1), "trainStep reported \(t), evaluate \(e1)")
        XCTAssertNotEqual(bits(lib.getWeights()), bits(before))
    }

    // MARK: - Dropout

    func testDropoutInferenceIdentityAndSeededTraining() throws {
        let dir = try makeTempDir(self)
        let mlp = MLP(inDim: 4, hidden: 16, out: 2, seed: 81)
        let cfg = TrainingConfig(losses: [Self.mse], optimizer: OptimizerConfig(name: "SGD", learningRate: 0.05))
        let withDrop = try Compiler.compile(try mlp.model(act: .relu, dropout: 0.5, training: cfg), name: "drop", to: dir, log: { _ in })
        let plain = try compileAndLoad(try mlp.model(act: .relu, training: cfg), name: "nodrop", dir: dir)
        let (x, y) = batch(20, 4, 2, seed: 82)

        // Inference: no dropout, deterministic, the same as the model without the layer.
        let d = try CompiledLibrary(path: withDrop.library)
        let p1 = try d.predict([x]), p2 = try d.predict([x])
        XCTAssertEqual(bits(p1), bits(p2), "predict is not deterministic")
        assertClose(p1[0].floats, try plain.predict([x])[0].floats.map(Double.init), rtol: 0, atol: 0, "predict with Dropout vs without")
        let evalDrop = try d.evaluate(x: [x], y: [y])
        XCTAssertEqual(evalDrop, try plain.evaluate(x: [x], y: [y]), accuracy: 1e-6 * evalDrop, "evaluate must not drop units")

        // Training: the same seed gives the same losses and weights; another seed, other losses.
        func run(seed: UInt64) throws -> (losses: [Float], weights: [[UInt32]]) {
            let lib = try CompiledLibrary(path: withDrop.library)
            lib.setSeed(seed)
            let losses = try (0..<3).map { _ in try lib.trainStep(x: [x], y: [y]) }
            return (losses, bits(lib.getWeights()))
        }
        let a = try run(seed: 7), b = try run(seed: 7), c = try run(seed: 8)
        XCTAssertEqual(bits(a.losses), bits(b.losses), "same seed, different losses: \(a.losses) vs \(b.losses)")
        XCTAssertEqual(a.weights, b.weights)
        XCTAssertNotEqual(bits(a.losses), bits(c.losses), "seeds 7 and 8 gave the same losses \(a.losses)")
        XCTAssertNotEqual(a.losses[0], evalDrop, "the first training loss equals the no-dropout loss: dropout is not active in training")

        // fit seeds the RNG from its options.
        func fitLosses(_ seed: UInt64) throws -> [Double] {
            let lib = try CompiledLibrary(path: withDrop.library)
            return try fit(lib, x: [x], y: [y], options: FitOptions(epochs: 2, batchSize: 8, shuffle: true, seed: seed, verbose: false)).loss
        }
        XCTAssertEqual(try fitLosses(3), try fitLosses(3))
        XCTAssertNotEqual(try fitLosses(3), try fitLosses(4))
    }

    // MARK: - One SGD step against hand-written backprop

    /// Dense(3 -> 4, tanh) -> Dense(4 -> 2), mse, SGD: the loss, the new weights and the
    /// gradient they imply against float64 backprop written out here.
    func testOneSGDStepMatchesNaiveBackprop() throws {
        let dir = try makeTempDir(self)
        let mlp = MLP(inDim: 3, hidden: 4, out: 2, seed: 91)
        let lr = 0.5
        let lib = try compileAndLoad(try mlp.model(training: TrainingConfig(losses: [Self.mse], optimizer: OptimizerConfig(name: "SGD", learningRate: Float(lr)))),
                                     name: "sgd", dir: dir)
        let n = 7
        let (x, t) = batch(n, 3, 2, seed: 92)

        // Forward.
        let d = { (a: [Float]) in a.map(Double.init) }
        let (xs, ts, w1, b1, w2, b2) = (d(x.floats), d(t.floats), d(mlp.w1), d(mlp.b1), d(mlp.w2), d(mlp.b2))
        var h = [Double](repeating: 0, count: n * 4), yv = [Double](repeating: 0, count: n * 2)
        for r in 0..<n {
            for j in 0..<4 {
                var s = b1[j]
                for i in 0..<3 { s += xs[r * 3 + i] * w1[i * 4 + j] }
                h[r * 4 + j] = tanh(s)
            }
            for k in 0..<2 {
                var s = b2[k]
                for j in 0..<4 { s += h[r * 4 + j] * w2[j * 2 + k] }
                yv[r * 2 + k] = s
            }
        }
        let loss = zip(yv, ts).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Double(n * 2)

        // Backward: dL/dy = 2 (y - t) / (n * 2).
        let dy = zip(yv, ts).map { 2 * ($0 - $1) / Double(n * 2) }
        var gw2 = [Double](repeating: 0, count: 8), gb2 = [Double](repeating: 0, count: 2)
        var gw1 = [Double](repeating: 0, count: 12), gb1 = [Double](repeating: 0, count: 4)
        for r in 0..<n {
            var dh = [Double](repeating: 0, count: 4)
            for k in 0..<2 {
                gb2[k] += dy[r * 2 + k]
                for j in 0..<4 {
                    gw2[j * 2 + k] += h[r * 4 + j] * dy[r * 2 + k]
                    dh[j] += dy[r * 2 + k] * w2[j * 2 + k]
                }
            }
            for j in 0..<4 {
                let dz = dh[j] * (1 - h[r * 4 + j] * h[r * 4 + j])
                gb1[j] += dz
                for i in 0..<3 { gw1[i * 4 + j] += xs[r * 3 + i] * dz }
            }
        }

        let got = try lib.trainStep(x: [x], y: [t])
        XCTAssertEqual(Double(got), loss, accuracy: 1e-6 + 1e-5 * loss, "loss")
        let after = lib.getWeights()
        let olds = [w1, b1, w2, b2], grads = [gw1, gb1, gw2, gb2]
        for (k, name) in ["dense_1/kernel", "dense_1/bias", "dense_2/kernel", "dense_2/bias"].enumerated() {
            XCTAssertEqual(lib.weights[k].name, name)
            let want = zip(olds[k], grads[k]).map { $0 - lr * $1 }
            assertClose(after[k].floats, want, "\(name) after one SGD step")
            // The gradient the step implies (float32 weights: ulp(w) / lr of slack).
            let implied = zip(olds[k], after[k].floats).map { ($0 - Double($1)) / lr }
            assertClose(implied.map { Float($0) }, grads[k], rtol: 1e-4, atol: 1e-6, "\(name) gradient")
        }
    }
}
