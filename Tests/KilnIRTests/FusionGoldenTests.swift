// Golden printed IR after lowering and fusion, and a check that fusion keeps
// the values (reference interpreter, float64).

import XCTest
import KilnIR
import KilnLayers
import KilnPasses
import KilnReference

final class FusionGoldenTests: XCTestCase {
    static func rand(_ count: Int, _ seed: UInt64) -> [Float] {
        var rng = RNG(seed)
        return rng.uniforms(count).map { Float($0) }
    }

    /// (a) Conv2D(relu), or (b) Conv2D(linear) followed by an Activation('relu') layer.
    static func convModel(separateActivation: Bool) throws -> Graph {
        var g = Graph(name: "conv")
        let x = g.addInput("x", .f32([.n, .fixed(5), .fixed(5), .fixed(2)]))
        let k = g.addParam("conv/kernel", .f32([.fixed(3), .fixed(3), .fixed(2), .fixed(4)]), initial: rand(72, 1))
        let bias = g.addParam("conv/bias", .f32([.fixed(4)]), initial: rand(4, 2))
        var y = try g.add(.layer(Conv2DKind(filters: 4, kernel: [3, 3], strides: [1, 1], padding: .same,
                                         activation: separateActivation ? .linear : .relu, useBias: true).op), [x, k, bias], layer: "conv")[0]
        if separateActivation { y = try g.add(.layer(ActivationKind(.relu, alpha: 0).op), [y], layer: "act")[0] }
        g.addOutput(y, name: separateActivation ? "act" : "conv")
        return g
    }

    /// (c) Dense(8, tanh) -> Dense(3) -> Activation('tanh').
    static func denseModel() throws -> Graph {
        var g = Graph(name: "mlp")
        let x = g.addInput("x", .f32([.n, .fixed(4)]))
        let k1 = g.addParam("d1/kernel", .f32([.fixed(4), .fixed(8)]), initial: rand(32, 3))
        let b1 = g.addParam("d1/bias", .f32([.fixed(8)]), initial: rand(8, 4))
        let k2 = g.addParam("d2/kernel", .f32([.fixed(8), .fixed(3)]), initial: rand(24, 5))
        let b2 = g.addParam("d2/bias", .f32([.fixed(3)]), initial: rand(3, 6))
        let h = try g.add(.layer(DenseKind(units: 8, activation: .tanh, useBias: true).op), [x, k1, b1], layer: "d1")[0]
        let o = try g.add(.layer(DenseKind(units: 3, activation: .linear, useBias: true).op), [h, k2, b2], layer: "d2")[0]
        let t = try g.add(.layer(ActivationKind(.tanh, alpha: 0).op), [o], layer: "out")[0]
        g.addOutput(t, name: "out")
        return g
    }

    static func fused(_ g: Graph) throws -> (lowered: Graph, fused: Graph) {
        let lowered = try Pipeline.run([verify, lowerLayers, inference], g)
        let fused = try Pipeline.run([fuseConvBiasActivation, fuseElementwise], lowered)
        try fused.verify()
        return (lowered, fused)
    }

    func check(_ g: Graph, golden: String, n: Int = 2, file: StaticString = #filePath, line: UInt = #line) throws {
        let (lowered, fused) = try Self.fused(g)
        XCTAssertEqual(fused.description, golden, file: file, line: line)
        // Fusion keeps the values.
        var rng = RNG(9)
        let ins = g.inputs.map { rng.uniforms(g.type($0).count(n: n), -2, 2) }
        let a = try Interpreter.run(lowered, inputs: ins, n: n)
        let b = try Interpreter.run(fused, inputs: ins, n: n)
        for (u, v) in zip(lowered.outputs, fused.outputs) {
            assertClose(a[u]!, b[v]!, rtol: 1e-12, atol: 1e-12, "fused vs unfused", file: file, line: line)
        }
    }

    func testConvReluGolden() throws {
        try check(try Self.convModel(separateActivation: false), golden: """
            graph conv(%0: f32[N, 5, 5, 2] "x")
              params(%1: f32[3, 3, 2, 4] "conv/kernel",
                     %2: f32[4] "conv/bias")
              %5 = conv2d_bias<3x3 pad 1,1>{relu(%0)} %0, %1, %2 : f32[N, 5, 5, 4] ; conv
              return %5 "conv"

            """)
    }

    func testConvThenActivationLayerGolden() throws {
        // The separate Activation layer folds into the convolution just the same.
        try check(try Self.convModel(separateActivation: true), golden: """
            graph conv(%0: f32[N, 5, 5, 2] "x")
              params(%1: f32[3, 3, 2, 4] "conv/kernel",
                     %2: f32[4] "conv/bias")
              %5 = conv2d_bias<3x3 pad 1,1>{relu(%0)} %0, %1, %2 : f32[N, 5, 5, 4] ; act
              return %5 "act"

            """)
    }

    func testDenseTanhGolden() throws {
        try check(try Self.denseModel(), golden: """
            graph mlp(%0: f32[N, 4] "x")
              params(%1: f32[4, 8] "d1/kernel",
                     %2: f32[8] "d1/bias",
                     %3: f32[8, 3] "d2/kernel",
                     %4: f32[3] "d2/bias")
              %5 = matmul %0, %1 : f32[N, 8]                                ; d1
              %7 = fused{tanh(add(%0, %1))} %5, %2 : f32[N, 8]              ; d1
              %8 = matmul %7, %3 : f32[N, 3]                                ; d2
              %10 = fused{tanh(add(%0, %1))} %8, %4 : f32[N, 3]             ; out
              return %10 "out"

            """)
    }

    /// The conv-gemm pass (im2col/col2im + matmul) computes what the direct convolutions compute:
    /// forward with bias and activation, and both gradients, for valid/same padding and strides 1 and 2.
    func testConvToGemmKeepsValues() throws {
        var rng = RNG(31)
        for (pad, s) in [(Padding.valid, 1), (.same, 1), (.valid, 2), (.same, 2)] {
            let (win, oh, ow) = window(h: 6, w: 5, k: (3, 2), s: (s, s), pad)
            var g = Graph(name: "cg")
            let x = g.addInput("x", .f32([.n, .fixed(6), .fixed(5), .fixed(2)]))
            let dy = g.addInput("dy", .f32([.n, .fixed(oh), .fixed(ow), .fixed(3)]))
            let w = g.addParam("w", .f32([.fixed(3), .fixed(2), .fixed(2), .fixed(3)]), initial: Self.rand(36, 32))
            let bias = g.addParam("b", .f32([.fixed(3)]), initial: Self.rand(3, 33))
            let y = try g.prim(.convBiasAct(win, outH: oh, outW: ow, act: .unary(.tanh, .arg(0))), x, w, bias, layer: "c")
            let y2 = try g.prim(.conv2D(win, outH: oh, outW: ow), x, w, layer: "c")
            let dx = try g.prim(.conv2DGradInput(win, inH: 6, inW: 5), dy, w, layer: "c")
            let dw = try g.prim(.conv2DGradFilter(win), x, dy, layer: "c")
            for (v, name) in [(y, "y"), (y2, "y2"), (dx, "dx"), (dw, "dw")] { g.addOutput(v, name: name) }
            let gemm = try Pipeline.run([convToGemm, verify], g)
            XCTAssertFalse(gemm.nodes.contains { if case .prim(.conv2D) = $0.op { return true } else { return false } })
            let n = 2
            let ins = [rng.uniforms(n * 60), rng.uniforms(n * oh * ow * 3)]
            let a = try Interpreter.run(g, inputs: ins, n: n), b = try Interpreter.run(gemm, inputs: ins, n: n)
            for (u, v) in zip(g.outputs, gemm.outputs) {
                assertClose(a[u]!, b[v]!, rtol: 1e-12, atol: 1e-12, "conv-gemm \(pad) stride \(s)")
            }
        }
    }
}

/// The layer graph is lowered once, in the training form; the inference pass derives predict's
/// and evaluate's form from it.
final class InferenceFormTests: XCTestCase {
    func testDropoutAndRecordsGoOnlyInTheInferenceForm() throws {
        var g = Graph(name: "rnn")
        let x = g.addInput("x", .f32([.n, .fixed(5), .fixed(3)]))
        let spec = RecurrentSpec(kind: .lstm, units: 4, returnSequences: true)
        let w = [g.addParam("lstm/kernel", .f32([.fixed(3), .fixed(16)]), initial: FusionGoldenTests.rand(48, 1)),
                 g.addParam("lstm/recurrent_kernel", .f32([.fixed(4), .fixed(16)]), initial: FusionGoldenTests.rand(64, 2)),
                 g.addParam("lstm/bias", .f32([.fixed(16)]), initial: FusionGoldenTests.rand(16, 3))]
        let h = try g.add(.layer(RNNKind(spec, masked: false).op), [x] + w, layer: "lstm")[0]
        let y = try g.add(.layer(DropoutKind(rate: 0.5).op), [h], layer: "dropout")[0]
        g.addOutput(y, name: "dropout")
        let lowered = try Pipeline.run(Pipeline.lowering, g)
        func draws(_ g: Graph) -> Int { g.nodes.filter { if case .prim(.randomUniform) = $0.op { return true } else { return false } }.count }
        func recording(_ g: Graph) -> Int { g.nodes.filter { if case .prim(.scan(let c)) = $0.op { return c.records } else { return false } }.count }
        XCTAssertEqual(draws(lowered), 1)
        XCTAssertEqual(recording(lowered), 1)
        XCTAssertEqual(lowered.inferenceForms.count, 1)
        let inferred = try Pipeline.run([inference], lowered)
        XCTAssertEqual(draws(inferred), 0)
        XCTAssertEqual(recording(inferred), 0)
        XCTAssertTrue(inferred.inferenceForms.isEmpty)
        try inferred.verify()
        // The inference form computes what a graph lowered without dropout computes.
        var plain = g
        plain.nodes.removeLast()
        plain.outputs = [h]
        let reference = try Pipeline.run(Pipeline.lowering + [inference], plain)
        var rng = RNG(4)
        let ins = [rng.uniforms(2 * 15, -1, 1)]
        let a = try Interpreter.run(inferred, inputs: ins, n: 2), b = try Interpreter.run(reference, inputs: ins, n: 2)
        assertClose(a[inferred.outputs[0]]!, b[reference.outputs[0]]!, rtol: 0, atol: 0, "inference form vs no dropout")
    }
}
