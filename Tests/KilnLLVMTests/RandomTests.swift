// random_uniform compiled the whole way against the interpreter, whose reference
// (Random.uniform in KilnIR/Ops/Random.swift) is the same counter-based function of
// (step seed, salt, element index) written in Swift: predict draws with step seed
// 0, evaluate and train steps with kiln_step_seed(instance seed, steps taken).

import Foundation
import XCTest
import Kiln
import KilnIR
import KilnReference
import KilnRuntime

final class RandomTests: XCTestCase {
    /// x (N, 5, 7) -> random_uniform<salt>(x) ⊙ w, w (7) a weight of ones.
    func graph(salt: Int) throws -> Graph {
        var g = Graph(name: "rand\(salt)")
        let x = g.addInput("x", .f32([.n, .fixed(5), .fixed(7)]))
        let w = g.addParam("w", .f32([.fixed(7)]), initial: [Float](repeating: 1, count: 7))
        let u = try g.prim(.randomUniform(salt: salt), x, layer: "draw")
        g.addOutput(try g.prim(.binary(.mul), u, w, layer: "scale"), name: "y")
        return g
    }

    func testPredictDrawsEqualTheInterpreterElementForElement() throws {
        let n = 41
        for salt in [1, 2, 977] {
            let g = try graph(salt: salt)
            let lib = try compileAndLoad(Model(graph: g, layers: [], training: nil, isSequential: false), name: "rand\(salt)",
                                         dir: try makeTempDir(self))
            let x = [Float](repeating: 0.5, count: n * 35)
            // One call (the element index counts from 0 in each call).
            let got = try lib.predict([HostTensor(shape: [n, 5, 7], floats: x)], batchSize: n)[0].floats
            let want = try Interpreter.run(g, inputs: [x.map(Double.init)], n: n)[g.outputs[0]]!
            XCTAssertEqual(got.count, want.count)
            for i in got.indices where Double(got[i]) != want[i] {
                XCTFail("salt \(salt) element \(i): compiled \(got[i]), interpreter \(want[i])")
                break
            }
            XCTAssertGreaterThan(Set(got).count, got.count / 2, "salt \(salt): the draws repeat")
            XCTAssert(got.allSatisfy { $0 >= 0 && $0 < 1 })
        }
    }

    /// The loss of evaluate and of a train step (mean squared draws against zero targets)
    /// depends on every draw; the interpreter, given the runtime's step seed, gives the same.
    func testStepSeedDrawsEqualTheInterpreter() throws {
        let n = 9, salt = 5
        let g = try graph(salt: salt)
        let training = TrainingConfig(losses: [LossConfig(name: "mean_squared_error")], optimizer: OptimizerConfig(name: "SGD", learningRate: 0))
        let lib = try compileAndLoad(Model(graph: g, layers: [], training: training, isSequential: false), name: "randtrain",
                                     dir: try makeTempDir(self))
        let x = [Float](repeating: 0, count: n * 35)
        let xs = [HostTensor(shape: [n, 5, 7], floats: x)], ys = [HostTensor(shape: [n, 5, 7], floats: x)]
        func reference(seed: UInt64) throws -> Double {
            let stepSeed = Random.stepSeed(seed: seed, iteration: lib.iterations)
            let y = try Interpreter.run(g, inputs: [x.map(Double.init)], n: n, stepSeed: stepSeed)[g.outputs[0]]!
            return y.reduce(0) { $0 + $1 * $1 } / Double(y.count)
        }
        for seed: UInt64 in [0, 1, 0xDEAD_BEEF_1234] {
            lib.setSeed(seed)
            let want = try reference(seed: seed)
            XCTAssertEqual(Double(try lib.evaluate(x: xs, y: ys)), want, accuracy: 1e-6 * want, "evaluate, seed \(seed)")
            XCTAssertEqual(Double(try lib.trainStep(x: xs, y: ys)), want, accuracy: 1e-6 * want, "train step, seed \(seed)")
            // The next step draws anew.
            let next = try reference(seed: seed)
            XCTAssertNotEqual(next, want)
            XCTAssertEqual(Double(try lib.evaluate(x: xs, y: ys)), next, accuracy: 1e-6 * next, "evaluate after a step, seed \(seed)")
        }
    }

    /// The step seed as the runtime derives it (kiln_step_seed): splitmix64 of splitmix64(seed) ^ step.
    func testStepSeedDerivation() {
        XCTAssertEqual(Random.stepSeed(seed: 0, iteration: 0), 0xA706_DD2F_4D19_7E6F)
    }
}
