// Resuming Keras' training: the saved optimizer variables (optimizer/vars/N) become
// the initial values of Kiln's optimizer slots, and the iteration count continues.
import Foundation
import XCTest
import KilnIR
import KilnKeras
import KilnPasses

final class ResumeImportTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Runs the optimizer update on weights of the given sizes; returns slot initial values by name.
    func slots(_ cfg: OptimizerConfig, _ sizes: [(String, Int)]) throws -> [String: [Float]] {
        var g = Graph(name: "t")
        var ws: [Value] = [], gs: [Value] = []
        for (name, n) in sizes {
            let t = TensorType.f32([.fixed(n)])
            ws.append(g.addParam(name, t, initial: Array(repeating: 0, count: n)))
            gs.append(g.addInput("grad_" + name, t))
        }
        var b = PrimBuilder(graph: g, layer: "opt")
        _ = try Optimizers.update(cfg, params: ws, grads: gs, &b)
        var out: [String: [Float]] = [:]
        for p in b.graph.params where p.role == .slot { out[p.name] = p.initial }
        return out
    }

    func cfg(_ name: String, settings: [String: Float] = [:], flags: [String: Bool] = [:], slots: [[Float]]) -> OptimizerConfig {
        var c = OptimizerConfig(name: name, learningRate: 0.01, settings: settings, flags: flags)
        c.resume = OptimizerResume(iterations: 6, slots: slots)
        return c
    }

    func testAdamSlotsInterleavePerWeightAndVelocityHatFollows() throws {
        // Keras: [m(a), v(a), m(b), v(b)] then amsgrad's [vh(a), vh(b)].
        let s = try slots(cfg("Adam", flags: ["amsgrad": true],
                              slots: [[1, 1], [2, 2], [3], [4], [5, 5], [6]]), [("a", 2), ("b", 1)])
        XCTAssertEqual(s["optimizer/a/momentum"], [1, 1]); XCTAssertEqual(s["optimizer/a/velocity"], [2, 2])
        XCTAssertEqual(s["optimizer/b/momentum"], [3]); XCTAssertEqual(s["optimizer/b/velocity"], [4])
        XCTAssertEqual(s["optimizer/a/velocity_hat"], [5, 5]); XCTAssertEqual(s["optimizer/b/velocity_hat"], [6])
    }

    func testRMSpropGroupsVelocityMomentumAverageGradient() throws {
        let s = try slots(cfg("RMSprop", settings: ["momentum": 0.5], flags: ["centered": true],
                              slots: [[1], [2], [3], [4], [5], [6]]), [("a", 1), ("b", 1)])
        XCTAssertEqual(s["optimizer/a/velocity"], [1]); XCTAssertEqual(s["optimizer/b/velocity"], [2])
        XCTAssertEqual(s["optimizer/a/momentum"], [3]); XCTAssertEqual(s["optimizer/b/momentum"], [4])
        XCTAssertEqual(s["optimizer/a/average_gradient"], [5]); XCTAssertEqual(s["optimizer/b/average_gradient"], [6])
    }

    func testNadamUProductIsLast() throws {
        let s = try slots(cfg("Nadam", slots: [[1], [2], [0.25]]), [("a", 1)])
        XCTAssertEqual(s["optimizer/a/momentum"], [1]); XCTAssertEqual(s["optimizer/a/velocity"], [2])
        XCTAssertEqual(s["optimizer/u_product"], [0.25])
    }

    func testNoResumeKeepsFreshState() throws {
        let s = try slots(OptimizerConfig(name: "Adagrad", learningRate: 0.1), [("a", 2)])
        XCTAssertEqual(s["optimizer/a/accumulator"], [0.1, 0.1])
    }

    func testWrongCountIsRefused() {
        XCTAssertThrowsError(try slots(cfg("Adam", slots: [[1], [2], [3]]), [("a", 1)])) { e in
            XCTAssertTrue("\(e)".contains("holds 3 saved Adam slot variables"), "\(e)")
            XCTAssertTrue("\(e)".contains("cannot resume"), "\(e)")
        }
    }

    func testWrongSizeIsRefused() {
        // SGD without momentum has no slots: momentum in the file but not in the config.
        XCTAssertThrowsError(try slots(cfg("SGD", settings: ["momentum": 0.9], slots: [[1, 2, 3]]), [("a", 2)])) { e in
            XCTAssertTrue("\(e)".contains("has 3 values but the momentum slot of 'a' has 2"), "\(e)")
        }
    }

    func testSavedAfterFitImportsIterationAndSlots() throws {
        let spec = try KerasArchive.read(path: root.appendingPathComponent("Tests/cases/resume_adam/model.keras").path)
        let m = try KerasGraphBuilder.build(spec, file: "m.keras")
        let r = try XCTUnwrap(m.training?.optimizer.resume)
        XCTAssertEqual(r.iterations, 6)
        // Two Dense layers: 4 weights x (momentum, velocity).
        XCTAssertEqual(r.slots.count, 8)
        XCTAssertEqual(r.slots.map(\.count), [30, 30, 6, 6, 18, 18, 3, 3])
    }
}

extension ResumeImportTests {
    /// Saved after compile but before fit (iteration 0, no slots): a fresh state, as before.
    func testSavedBeforeFitKeepsFreshState() throws {
        let spec = try KerasArchive.read(path: root.appendingPathComponent("Tests/cases/opt_nadam_betas/model.keras").path)
        XCTAssertEqual(spec.optimizerVars.count, 2)
        let m = try KerasGraphBuilder.build(spec, file: "m.keras")
        XCTAssertNotNil(m.training)
        XCTAssertNil(m.training?.optimizer.resume)
    }
}
