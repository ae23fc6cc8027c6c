// The merge layers, BatchNormalization, the noise layers, ActivityRegularization, and weight
// regularizers / constraints: shape rules, refusals, gradients of the lowered layers, the
// noise's statistics, and the training step's state writes and penalties (the Keras-made
// cases in Tests/cases check predict and fit end to end: tools/case_sets/mergenorm.py).

import XCTest
import KilnIR
import KilnLayers
import KilnPasses
import KilnReference
import KilnSupport

private func f32(_ dims: Dim...) -> TensorType { .f32(dims) }
private func fx(_ k: Int) -> Dim { .fixed(k) }

final class LayersMergeNormTests: XCTestCase {
    // MARK: shapes and configs

    func testElementwiseMergeShapes() throws {
        let sub = KindCheck(kind: ElementwiseMergeKind(.subtract), name: "s")
        XCTAssertEqual(try sub.infer([f32(.n, fx(4)), f32(.n, fx(4))]), [f32(.n, fx(4))])
        // Keras' broadcasting: (4, 5) with (5,) and (1, 5) with (3, 1).
        XCTAssertEqual(try sub.infer([f32(.n, fx(4), fx(5)), f32(.n, fx(5))]), [f32(.n, fx(4), fx(5))])
        let mx = KindCheck(kind: ElementwiseMergeKind(.maximum), name: "m")
        XCTAssertEqual(try mx.infer([f32(.n, fx(1), fx(5)), f32(.n, fx(3), fx(1)), f32(.n, fx(5))]), [f32(.n, fx(3), fx(5))])
        XCTAssertEqual(try mx.infer([f32(.n, .t, fx(5)), f32(.n, .t, fx(5))]), [f32(.n, .t, fx(5))])
        mx.refuses([f32(.n, fx(4)), f32(.n, fx(3))], ["Maximum 'm'", "(None, 4) and (None, 3)", "neither is 1"])
        sub.refuses([f32(.n, fx(4)), f32(.n, fx(4)), f32(.n, fx(4))], ["'s'"])
        for op in ElementwiseMergeKind.Op.allCases {
            let k = try kerasKind(op.rawValue, "{}")
            XCTAssertEqual(k.kerasClass, op.rawValue)
            XCTAssertEqual(AnyLayer(k), AnyLayer(ElementwiseMergeKind(op)))
        }
        XCTAssertEqual(ElementwiseMergeKind(.subtract).arity, 2...2)
        XCTAssertEqual(Keras.snakeCase("Maximum"), "maximum")
    }

    /// Masks through merges: Subtract and Average OR them (Keras' Merge.compute_mask); Multiply,
    /// Maximum and Minimum take inputs that all carry the same mask (and refuse others).
    func testMergeMasks() throws {
        // The mask rule as mask propagation calls it, with the data inputs' masks.
        var g0 = Graph(name: "m")
        let x = g0.addInput("x", f32(.n, fx(4), fx(3)))
        let m1 = g0.addInput("m1", TensorType(.bool, [.n, fx(4)])), m2 = g0.addInput("m2", TensorType(.bool, [.n, fx(4)]))
        var b0 = PrimBuilder(graph: g0, layer: "merge")
        func mask(_ op: ElementwiseMergeKind.Op, _ masks: [Value?]) throws -> Value? {
            try ElementwiseMergeKind(op).outputMask(&b0, inputs: [x, x], masks: masks, outputs: [x])
        }
        let or = try XCTUnwrap(try mask(.subtract, [m1, m2]), "both masked: the OR")
        XCTAssertNil(try mask(.average, [m1, nil]), "one unmasked input: no mask, as Keras")
        XCTAssertEqual(try Interpreter.run(b0.graph, inputs: [[Double](repeating: 0, count: 12), [1, 0, 1, 0], [1, 1, 0, 0]], n: 1)[or]!, [1, 1, 1, 0])
        for op in [ElementwiseMergeKind.Op.multiply, .maximum, .minimum] {
            XCTAssertNotNil(ElementwiseMergeKind(op).consumingMask(), "\(op) reads the mask")
            XCTAssertEqual(try mask(op, [m1, m1]), m1)
            for masks in [[m1, m2], [m1, nil], [nil, m1]] as [[Value?]] {
                XCTAssertThrowsError(try mask(op, masks)) {
                    XCTAssertTrue("\($0)".contains("\(op.rawValue) 'merge': is given inputs with different masks (or some without one)"), "\($0)")
                }
            }
        }
        XCTAssertNil(ElementwiseMergeKind(.subtract).consumingMask(), "Subtract's values do not depend on masks")
        // Values at masked steps: Multiply 0, Maximum / Minimum the first input.
        var g = Graph(name: "v")
        let a = g.addInput("a", f32(.n, fx(2), fx(1))), c = g.addInput("c", f32(.n, fx(2), fx(1)))
        let m = g.addInput("m", TensorType(.bool, [.n, fx(2)]))
        var b = PrimBuilder(graph: g, layer: "merge")
        var ctx = LoweringContext()
        let outs = try [ElementwiseMergeKind.Op.multiply, .maximum, .minimum].map {
            try ElementwiseMergeKind($0).consumingMask()!.lower(&b, [a, c, m], &ctx)[0]
        }
        let r = try Interpreter.run(b.graph, inputs: [[2, -1], [3, 5], [1, 0]], n: 1)
        XCTAssertEqual(outs.map { r[$0]! }, [[6, 0], [3, -1], [2, -1]])
        var rng = RNG(8)
        let t = f32(.n, fx(3), fx(2))
        for op in [ElementwiseMergeKind.Op.multiply, .maximum, .minimum] {
            try checkGradient("merge_masked_\(op.rawValue)", [.input(t, rng.signed(12)), .input(t, rng.signed(12)),
                              Operand(type: TensorType(.bool, [.n, fx(3)]), isParam: false, values: [1, 0, 1, 1, 1, 0], differentiable: false)]) { b, xs in
                var ctx = LoweringContext()
                return try ElementwiseMergeKind(op).consumingMask()!.lower(&b, xs, &ctx)[0]
            }
        }
    }

    func testDotShapesAndConfig() throws {
        func dot(_ axes: [Int], _ norm: Bool = false) -> KindCheck { KindCheck(kind: DotKind(axes: axes, normalize: norm), name: "d") }
        XCTAssertEqual(try dot([1]).infer([f32(.n, fx(4)), f32(.n, fx(4))]), [f32(.n, fx(1))])
        XCTAssertEqual(try dot([-1]).infer([f32(.n, fx(3), fx(4)), f32(.n, fx(5), fx(4))]), [f32(.n, fx(3), fx(5))])
        XCTAssertEqual(try dot([2, 1]).infer([f32(.n, fx(3), fx(4)), f32(.n, fx(4))]), [f32(.n, fx(3))])
        XCTAssertEqual(try dot([1, 2]).infer([f32(.n, fx(4), fx(3)), f32(.n, fx(6), fx(4))]), [f32(.n, fx(3), fx(6))])
        dot([1]).refuses([f32(.n, fx(4)), f32(.n, fx(5))], ["Dot 'd'", "(None, 4)", "(None, 5)", "must be equal"])
        dot([0]).refuses([f32(.n, fx(4)), f32(.n, fx(4))], ["Dot 'd'", "not the batch"])
        dot([1]).refuses([f32(.n, .t, fx(4)), f32(.n, .t, fx(4))], ["Dot 'd'", "fixed"])
        XCTAssertEqual(try kerasKind("Dot", #"{"axes": [2, 1], "normalize": true}"#) as? DotKind, DotKind(axes: [2, 1], normalize: true))
        XCTAssertEqual(try kerasKind("Dot", #"{"axes": -1}"#) as? DotKind, DotKind(axes: [-1]))
        refusesConfig("Dot", #"{"axes": [1, 2, 3]}"#, ["layer 'L' (Dot)", "[1, 2, 3]", "two integers"])
        for k in [DotKind(axes: [2, 1], normalize: true), DotKind(axes: [-1])] {
            let json = JSON.object([("name", .string("L"))] + k.kerasConfig())
            XCTAssertEqual(try DotKind(keras: KerasConfig(name: "L", className: "Dot", json: json, file: "")), k)
        }
    }

    func testBatchNormalizationWeightsShapesAndConfig() throws {
        let bn = BatchNormalizationKind()
        let w = try bn.weights(for: [f32(.n, fx(5), fx(4), fx(3))])
        XCTAssertEqual(w.map(\.name), ["gamma", "beta", "moving_mean", "moving_variance"])
        XCTAssertEqual(w.map(\.shape), [[3], [3], [3], [3]])
        XCTAssertEqual(w.map(\.trainable), [true, true, false, false])
        XCTAssertEqual(try BatchNormalizationKind(center: false).weights(for: [f32(.n, fx(2))]).map(\.name), ["gamma", "moving_mean", "moving_variance"])
        XCTAssertEqual(try KindCheck(kind: bn).infer([f32(.n, .t, fx(3))]), [f32(.n, .t, fx(3))])
        let k = try kerasKind("BatchNormalization", #"{"axis": -1, "momentum": 0.9, "epsilon": 0.01, "center": false, "scale": true, "trainable": false}"#)
        XCTAssertEqual(k as? BatchNormalizationKind, BatchNormalizationKind(momentum: 0.9, epsilon: 0.01, center: false, frozen: true))
        refusesConfig("BatchNormalization", #"{"axis": 0}"#, ["layer 'L' (BatchNormalization)", "axis 0", "axis=-1"])
        // axis as the last axis counted from 0 is the same layer; another axis is refused by the shape rule.
        XCTAssertEqual(try KindCheck(kind: try kerasKind("BatchNormalization", #"{"axis": [3]}"#)).infer([f32(.n, fx(2), fx(2), fx(3))]),
                       [f32(.n, fx(2), fx(2), fx(3))])
        KindCheck(kind: BatchNormalizationKind(axis: 1), name: "bn").refuses([f32(.n, fx(5), fx(3))],
                                                                         ["BatchNormalization 'bn'", "axis 1", "(None, 5, 3)", "last axis (axis=-1) only"])
        refusesConfig("BatchNormalization", #"{"axis": -1, "renorm": true}"#, ["(BatchNormalization)", "renorm=True"])
        refusesConfig("GaussianDropout", #"{"rate": 1.0}"#, ["(GaussianDropout)", "rate=1.0"])
        refusesConfig("GaussianNoise", #"{"stddev": -0.5}"#, ["(GaussianNoise)", "stddev=-0.5"])
        refusesConfig("ActivityRegularization", #"{"l1": -1}"#, ["(ActivityRegularization)", "l1=-1"])
        // The masked form takes the mask of the input's shape without its last axis.
        let masked = KindCheck(kind: bn.consumingMask()!, name: "bn")
        let wts = Array(repeating: f32(fx(3)), count: 4)
        XCTAssertEqual(try inferTypes(.layer(masked.kind.op), [f32(.n, fx(6), fx(3))] + wts + [TensorType(.bool, [.n, fx(6)])], layer: "bn"),
                       [f32(.n, fx(6), fx(3))])
        XCTAssertThrowsError(try inferTypes(.layer(masked.kind.op), [f32(.n, fx(6), fx(3))] + wts + [TensorType(.bool, [.n, fx(5)])], layer: "bn"))
        for kind in [bn, BatchNormalizationKind(momentum: 0.8, epsilon: 0.01, center: false, scale: false)] as [any LayerKind]
            + [GaussianNoiseKind(stddev: 0.3), GaussianDropoutKind(rate: 0.2), ActivityRegularizationKind(l1: 0.01, l2: 0.02)] {
            let json = JSON.object([("name", .string("L"))] + kind.kerasConfig())
            let back = try type(of: kind).init(keras: KerasConfig(name: "L", className: kind.kerasClass, json: json, file: ""))
            XCTAssertEqual(AnyLayer(back), AnyLayer(kind), kind.kerasClass)
        }
    }

    func testRegularizerAndConstraintConfigs() throws {
        func fail(_ s: String) -> Error { LayerConfigError(s) }
        let l2 = try JSON.parse(#"{"module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.05}, "registered_name": null}"#)
        XCTAssertEqual(try Regularizer.parse(l2, fail: fail), Regularizer(l2: 0.05))
        XCTAssertEqual(try Regularizer.parse(.string("l1"), fail: fail), Regularizer(l1: 0.01))
        XCTAssertEqual(try Regularizer.parse(try JSON.parse(#"{"class_name": "L1L2", "config": {"l1": 0.1}}"#), fail: fail), Regularizer(l1: 0.1))
        XCTAssertNil(try Regularizer.parse(.null, fail: fail))
        XCTAssertThrowsError(try Regularizer.parse(try JSON.parse(#"{"class_name": "OrthogonalRegularizer", "config": {"factor": 0.01}}"#), fail: fail)) {
            XCTAssertTrue("\($0)".contains("OrthogonalRegularizer; Kiln supports L1, L2 and L1L2"), "\($0)")
        }
        let mn = try JSON.parse(#"{"class_name": "MaxNorm", "config": {"max_value": 1.5, "axis": [0, 1, 2]}}"#)
        XCTAssertEqual(try Constraint.parse(mn, fail: fail), .maxNorm(maxValue: 1.5, axes: [0, 1, 2]))
        XCTAssertEqual(try Constraint.parse(.string("non_neg"), fail: fail), .nonNeg)
        XCTAssertEqual(try Constraint.parse(try JSON.parse(#"{"class_name": "MinMaxNorm", "config": {"min_value": 0.5}}"#), fail: fail),
                       .minMaxNorm(minValue: 0.5, maxValue: 1, rate: 1, axes: [0]))
        XCTAssertEqual(Constraint.unitNorm(axes: [-1]).resolvedAxes(rank: 3), [2])
        XCTAssertNil(Constraint.unitNorm(axes: [3]).resolvedAxes(rank: 2))
        XCTAssertThrowsError(try Constraint.parse(try JSON.parse(#"{"class_name": "Custom", "config": {}}"#), fail: fail)) {
            XCTAssertTrue("\($0)".contains("Custom; Kiln supports MaxNorm, NonNeg, UnitNorm and MinMaxNorm"), "\($0)")
        }
    }

    // MARK: gradients of the lowered layers

    func testMergeGradients() throws {
        var rng = RNG(11)
        let a = f32(.n, fx(3), fx(4)), v = f32(.n, fx(4))
        for op in ElementwiseMergeKind.Op.allCases {
            let ops: [Operand] = [.input(a, rng.signed(24)), .input(v, rng.signed(8))] + (op == .subtract ? [] : [.input(a, rng.signed(24))])
            try checkGradient("merge_\(op.rawValue)", ops) { b, xs in
                var ctx = LoweringContext()
                return try ElementwiseMergeKind(op).lower(&b, xs, &ctx)[0]
            }
        }
        for (axes, x, y) in [([1], f32(.n, fx(4)), f32(.n, fx(4))), ([2, 1], f32(.n, fx(3), fx(4)), f32(.n, fx(4))),
                             ([1, 2], f32(.n, fx(4), fx(3)), f32(.n, fx(2), fx(4)))] {
            for norm in [false, true] {
                try checkGradient("dot_\(axes)_\(norm)", [.input(x, rng.signed(x.staticCount * 2)), .input(y, rng.signed(y.staticCount * 2))]) { b, xs in
                    var ctx = LoweringContext()
                    return try DotKind(axes: axes, normalize: norm).lower(&b, xs, &ctx)[0]
                }
            }
        }
    }

    func testDotValues() throws {
        // (N, 2, 3) · (N, 3) over axes (2, 1) and the cosine form of (N, 3) · (N, 3).
        var g = Graph(name: "dot")
        let x = g.addInput("x", f32(.n, fx(2), fx(3))), y = g.addInput("y", f32(.n, fx(3)))
        var b = PrimBuilder(graph: g, layer: "d")
        var ctx = LoweringContext()
        let p = try DotKind(axes: [2, 1]).lower(&b, [x, y], &ctx)[0]
        let y2 = b.graph.addInput("y2", f32(.n, fx(3)))
        let cos = try DotKind(axes: [1], normalize: true).lower(&b, [y, y2], &ctx)[0]
        let r = try Interpreter.run(b.graph, inputs: [[1, 2, 3, 4, 5, 6], [1, 0, -1], [2, 1, 0]], n: 1)
        XCTAssertEqual(r[p]!, [1 - 3, 4 - 6])
        XCTAssertEqual(b.type(p), f32(.n, fx(2)))
        XCTAssertEqual(r[cos]![0], 2 / (2.0.squareRoot() * 5.0.squareRoot()), accuracy: 1e-6)
        XCTAssertEqual(b.type(cos), f32(.n, fx(1)))
    }

    func testBatchNormalizationGradientAndMoments() throws {
        var rng = RNG(5)
        let x = f32(.n, fx(3), fx(2))
        for kind in [BatchNormalizationKind(momentum: 0.9), BatchNormalizationKind(center: false)] {
            let weights: [Operand] = (kind.scale ? [.param([2], rng.signed(2, 0.5, 1.5))] : []) + (kind.center ? [.param([2], rng.signed(2))] : [])
                + [.param([2], rng.signed(2)), .param([2], rng.uniforms(2, 0.5, 1.5))]
            try checkGradient("bn_train", n: 3, [.input(x, rng.signed(18))] + weights) { b, xs in
                var ctx = LoweringContext()
                return try kind.lower(&b, xs, &ctx)[0]
            }
        }
        // Masked moments: the masked step takes no part.
        try checkGradient("bn_masked", n: 2, [.input(x, rng.signed(12)), .param([2], [1.2, 0.8]), .param([2], [0.1, -0.2]),
                                               .param([2], [0, 0]), .param([2], [1, 1]),
                                               Operand(type: TensorType(.bool, [.n, fx(3)]), isParam: false, values: [1, 1, 0, 1, 0, 1], differentiable: false)]) { b, xs in
            var ctx = LoweringContext()
            return try BatchNormalizationKind().consumingMask()!.lower(&b, xs, &ctx)[0]
        }
    }

    func testBatchNormalizationStateUpdatesAndInferenceForm() throws {
        var g = Graph(name: "bn")
        let x = g.addInput("x", f32(.n, fx(2)))
        let gamma = g.addParam("bn/gamma", f32(fx(2)), initial: [2, 1])
        let beta = g.addParam("bn/beta", f32(fx(2)), initial: [0.5, 0])
        let mm = g.addParam("bn/moving_mean", f32(fx(2)), initial: [1, -1], trainable: false)
        let mv = g.addParam("bn/moving_variance", f32(fx(2)), initial: [4, 0.25], trainable: false)
        let y = try g.add(.layer(BatchNormalizationKind(momentum: 0.75, epsilon: 0.001).op), [x, gamma, beta, mm, mv], layer: "bn")[0]
        g.addOutput(y, name: "bn")
        let lowered = try Pipeline.run(Pipeline.lowering, g)
        XCTAssertEqual(lowered.stateUpdates.count, 2)
        // x rows (1, 2), (3, 6): batch mean (2, 4), biased variance (1, 4).
        let xs: [Double] = [1, 2, 3, 6]
        let r = try Interpreter.run(lowered, inputs: [xs], n: 2)
        let upd = lowered.stateUpdates.map { r[$0.value]! }
        XCTAssertEqual(upd[0], [1 * 0.75 + 2 * 0.25, -1 * 0.75 + 4 * 0.25])
        XCTAssertEqual(upd[1][0], 4 * 0.75 + 1 * 0.25, accuracy: 1e-6)
        XCTAssertEqual(upd[1][1], 0.25 * 0.75 + 4 * 0.25, accuracy: 1e-6)
        let train = r[lowered.outputs[0]]!
        XCTAssertEqual(train[0], (1 - 2) / (1.001).squareRoot() * 2 + 0.5, accuracy: 1e-5)
        XCTAssertEqual(train[3], (6 - 4) / (4.001).squareRoot(), accuracy: 1e-5)
        // Inference: the moving statistics, no state writes.
        let inferred = try Pipeline.run(Pipeline.inferenceForm(unroll: .auto), lowered)
        XCTAssertTrue(inferred.stateUpdates.isEmpty)
        let p = try Interpreter.run(inferred, inputs: [xs], n: 2)[inferred.outputs[0]]!
        XCTAssertEqual(p[0], (1 - 1) / (4.001).squareRoot() * 2 + 0.5, accuracy: 1e-5)
        XCTAssertEqual(p[1], (2 + 1) / (0.251).squareRoot(), accuracy: 1e-5)
        XCTAssertFalse(inferred.nodes.contains { if case .prim(.reduce) = $0.op { return true } else { return false } },
                       "the batch statistics should be gone from the inference form")

        // The training step writes them next to the optimizer's updates; evaluation writes nothing.
        let cfg = TrainingConfig(losses: [LossConfig(name: "mean_squared_error")], optimizer: OptimizerConfig(name: "SGD", learningRate: 0.1))
        let (tr, ev) = try TrainingBuilder.build(layers: g, lowered: lowered, inferred: inferred, cfg)
        let step = try Interpreter.evaluate(tr.graph, inputs: [xs, [0, 0, 0, 0]], n: 2)
        func param(_ gr: Graph, _ name: String) -> Value { gr.params.first { $0.name == name }!.value }
        XCTAssertEqual(step.assigned[param(tr.graph, "bn/moving_mean")]!, upd[0])
        XCTAssertEqual(step.assigned[param(tr.graph, "bn/moving_variance")]![1], upd[1][1], accuracy: 1e-9)
        XCTAssertNotNil(step.assigned[param(tr.graph, "bn/gamma")])
        XCTAssertTrue(try Interpreter.evaluate(ev.graph, inputs: [xs, [0, 0, 0, 0]], n: 2).assigned.isEmpty)

        // A frozen layer normalizes by its moving statistics in training too and writes nothing.
        var frozen = Graph(name: "bn")
        let fx0 = frozen.addInput("x", f32(.n, fx(2)))
        let fps = [("gamma", [2.0, 1.0]), ("beta", [0.5, 0]), ("moving_mean", [1, -1]), ("moving_variance", [4, 0.25])].map {
            frozen.addParam("bn/\($0.0)", f32(fx(2)), initial: $0.1.map(Float.init), trainable: false)
        }
        frozen.addOutput(try frozen.add(.layer(BatchNormalizationKind(frozen: true).op), [fx0] + fps, layer: "bn")[0], name: "bn")
        let fl = try Pipeline.run(Pipeline.lowering, frozen)
        XCTAssertTrue(fl.stateUpdates.isEmpty)
        XCTAssertEqual(try Interpreter.run(fl, inputs: [xs], n: 2)[fl.outputs[0]]!, p)
    }

    // MARK: noise

    /// Mean, standard deviation and the share within one standard deviation of the mean.
    private func stats(_ v: [Double]) -> (mean: Double, std: Double, within1: Double) {
        let m = v.reduce(0, +) / Double(v.count)
        let s = (v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(v.count)).squareRoot()
        return (m, s, Double(v.filter { abs($0 - m) <= s }.count) / Double(v.count))
    }

    private func noiseRun(_ kind: any LayerKind, x: Double, n: Int, seed: UInt64) throws -> (train: [Double], predict: [Double]) {
        var g = Graph(name: "noise")
        let xin = g.addInput("x", f32(.n, fx(100)))
        g.addOutput(try g.add(.layer(kind.op), [xin], layer: "noise")[0], name: "noise")
        let lowered = try Pipeline.run(Pipeline.lowering, g)
        let inferred = try Pipeline.run(Pipeline.inferenceForm(unroll: .auto), lowered)
        let xs = [Double](repeating: x, count: 100 * n)
        return (try Interpreter.run(lowered, inputs: [xs], n: n, stepSeed: seed)[lowered.outputs[0]]!,
                try Interpreter.run(inferred, inputs: [xs], n: n, stepSeed: seed)[inferred.outputs[0]]!)
    }

    func testGaussianNoiseStatistics() throws {
        // 10000 draws: the mean within 4 standard errors of 0, the deviation within 3%, and
        // 68.3% of the draws within one deviation (a normal's share; a uniform's is 57.7%).
        let (train, predict) = try noiseRun(GaussianNoiseKind(stddev: 0.5), x: 2, n: 100, seed: 42)
        XCTAssertEqual(predict, [Double](repeating: 2, count: 10000), "predict must be the identity")
        let s = stats(train.map { $0 - 2 })
        XCTAssertEqual(s.mean, 0, accuracy: 4 * 0.5 / 10000.0.squareRoot())
        XCTAssertEqual(s.std, 0.5, accuracy: 0.015)
        XCTAssertEqual(s.within1, 0.6827, accuracy: 0.015)
        XCTAssertEqual(Double(train.map { abs($0 - 2) > 1 }.filter { $0 }.count) / 10000, 0.0455, accuracy: 0.0065, "two-sigma tails")
        // Another step draws other numbers.
        let (other, _) = try noiseRun(GaussianNoiseKind(stddev: 0.5), x: 2, n: 2, seed: 43)
        XCTAssertNotEqual(other, Array(train.prefix(200)))
        // stddev 0 adds nothing, in training either.
        XCTAssertEqual(try noiseRun(GaussianNoiseKind(stddev: 0), x: 2, n: 2, seed: 1).train, [Double](repeating: 2, count: 200))
    }

    func testGaussianDropoutStatistics() throws {
        let rate: Float = 0.2
        let (train, predict) = try noiseRun(GaussianDropoutKind(rate: rate), x: 3, n: 100, seed: 7)
        XCTAssertEqual(predict, [Double](repeating: 3, count: 10000))
        let s = stats(train.map { $0 / 3 })
        let want = (0.2 / 0.8).squareRoot()   // 0.5
        XCTAssertEqual(s.mean, 1, accuracy: 4 * want / 10000.0.squareRoot())
        XCTAssertEqual(s.std, want, accuracy: 0.03 * want)
        XCTAssertEqual(s.within1, 0.6827, accuracy: 0.015)
        XCTAssertEqual(try noiseRun(GaussianDropoutKind(rate: 0), x: 3, n: 2, seed: 1).train, [Double](repeating: 3, count: 200))
    }

    // MARK: activity regularization, regularizers, constraints in the training step

    func testActivityRegularizationLossTermAndGradient() throws {
        var g = Graph(name: "ar")
        let x = g.addInput("x", f32(.n, fx(3)))
        g.addOutput(try g.add(.layer(ActivityRegularizationKind(l1: 0.1, l2: 0.5).op), [x], layer: "ar")[0], name: "ar")
        let lowered = try Pipeline.run(Pipeline.lowering, g)
        XCTAssertEqual(lowered.lossTerms.count, 1)
        let xs: [Double] = [1, -2, 0.5, 3, 0, -1]
        let r = try Interpreter.run(lowered, inputs: [xs], n: 2)
        XCTAssertEqual(r[lowered.outputs[0]]!, xs)
        XCTAssertEqual(r[lowered.lossTerms[0]]![0], (0.1 * 7.5 + 0.5 * 15.25) / 2, accuracy: 1e-6)
        var rng = RNG(3)
        try checkGradient("activity", n: 2, [.input(f32(.n, fx(3)), rng.signed(6))]) { b, xs in
            var ctx = LoweringContext()
            _ = try ActivityRegularizationKind(l1: 0.1, l2: 0.5).lower(&b, xs, &ctx)
            return b.graph.lossTerms[0]
        }
        // The evaluation loss includes it; predict's program has no such term.
        let cfg = TrainingConfig(losses: [LossConfig(name: "mean_squared_error")], optimizer: OptimizerConfig(name: "SGD", learningRate: 0.1))
        let inferred = try Pipeline.run(Pipeline.inferenceForm(unroll: .auto), lowered)
        let (_, ev) = try TrainingBuilder.build(layers: g, lowered: lowered, inferred: inferred, cfg)
        let loss = try Interpreter.run(ev.graph, inputs: [xs, [0, 0, 0, 0, 0, 0]], n: 2)[ev.loss]![0]
        XCTAssertEqual(loss, xs.map { $0 * $0 }.reduce(0, +) / 6 + (0.1 * 7.5 + 0.5 * 15.25) / 2, accuracy: 1e-5)
    }

    /// One Dense-like weight w (3, 2): y = x·w, mse, SGD; with and without a penalty.
    private func denseStep(_ reg: Regularizer?, _ con: Constraint?) throws -> (loss: Double, w: [Double]) {
        var g = Graph(name: "reg")
        let x = g.addInput("x", f32(.n, fx(3)))
        let w = g.addParam("dense/kernel", f32(fx(3), fx(2)), initial: [0.5, -1.2, 0.3, 0.8, -0.4, 1.5])
        g.params[0].regularizer = reg
        g.params[0].constraint = con
        g.addOutput(try g.prim(.matmul(transA: false, transB: false), x, w, layer: "dense"), name: "dense")
        let lowered = try Pipeline.run(Pipeline.lowering, g)
        let inferred = try Pipeline.run(Pipeline.inferenceForm(unroll: .auto), lowered)
        let cfg = TrainingConfig(losses: [LossConfig(name: "mean_squared_error")], optimizer: OptimizerConfig(name: "SGD", learningRate: 0.5))
        let (tr, _) = try TrainingBuilder.build(layers: g, lowered: lowered, inferred: inferred, cfg)
        let r = try Interpreter.evaluate(tr.graph, inputs: [[1, 2, -1, 0.5, -0.3, 2], [0.2, -0.1, 0.4, 0.3]], n: 2)
        return (r.values[tr.loss]![0], r.assigned[tr.graph.params[0].value]!)
    }

    func testRegularizerPenaltyAndConstraintInTrainingStep() throws {
        let w0: [Double] = [0.5, -1.2, 0.3, 0.8, -0.4, 1.5]
        let (plain, wPlain) = try denseStep(nil, nil)
        let reg = Regularizer(l1: 0.1, l2: 0.2)
        let (penalized, wPen) = try denseStep(reg, nil)
        XCTAssertEqual(penalized - plain, 0.1 * w0.map(abs).reduce(0, +) + 0.2 * w0.map { $0 * $0 }.reduce(0, +), accuracy: 1e-5)
        // The penalty's gradient joins the step: lr * (l1 sign(w) + 2 l2 w).
        for k in w0.indices { XCTAssertEqual(wPlain[k] - wPen[k], 0.5 * (0.1 * (w0[k] > 0 ? 1 : -1) + 0.4 * w0[k]), accuracy: 1e-5) }
        // Constraints act on the updated weight, per column (axis 0) as Keras.
        let cols = { (w: [Double]) in [[w[0], w[2], w[4]], [w[1], w[3], w[5]]] }
        let (_, wNN) = try denseStep(nil, .nonNeg)
        XCTAssertEqual(wNN, wPlain.map { max($0, 0) })
        let (_, wUnit) = try denseStep(nil, .unitNorm(axes: [0]))
        for c in cols(wUnit) { XCTAssertEqual(c.map { $0 * $0 }.reduce(0, +).squareRoot(), 1, accuracy: 1e-5) }
        let (_, wMax) = try denseStep(nil, .maxNorm(maxValue: 1, axes: [0]))
        for (c, p) in zip(cols(wMax), cols(wPlain)) {
            let np = p.map { $0 * $0 }.reduce(0, +).squareRoot()
            XCTAssertEqual(c.map { $0 * $0 }.reduce(0, +).squareRoot(), min(np, 1), accuracy: 1e-5)
        }
        let (_, wMM) = try denseStep(nil, .minMaxNorm(minValue: 0.2, maxValue: 0.5, rate: 0.5, axes: [0]))
        for (c, p) in zip(cols(wMM), cols(wPlain)) {
            let np = p.map { $0 * $0 }.reduce(0, +).squareRoot()
            XCTAssertEqual(c.map { $0 * $0 }.reduce(0, +).squareRoot(), 0.5 * min(max(np, 0.2), 0.5) + 0.5 * np, accuracy: 1e-5)
        }
    }
}
