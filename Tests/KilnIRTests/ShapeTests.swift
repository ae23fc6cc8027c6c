// Shape rules of every layer op and primitive, and their refusals.

import XCTest
import KilnIR
import KilnLayers
import KilnPasses
import KilnSupport
import Foundation

private func f32(_ dims: Dim...) -> TensorType { .f32(dims) }
private func fx(_ k: Int) -> Dim { .fixed(k) }
private let N = Dim.n

final class ShapeTests: XCTestCase {
    func layer(_ op: LayerOp, _ ins: [TensorType], name: String = "L") throws -> TensorType {
        let out = try inferTypes(.layer(op), ins, layer: name)
        XCTAssertEqual(out.count, 1)
        return out[0]
    }
    func prim(_ op: PrimOp, _ ins: [TensorType]) throws -> TensorType { try inferTypes(.prim(op), ins, layer: "p")[0] }

    /// Asserts the op is refused with a message containing every fragment.
    func refuses(_ op: Op, _ ins: [TensorType], name: String = "L", _ fragments: [String],
                 file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try inferTypes(op, ins, layer: name), file: file, line: line) { e in
            let text = "\(e)"
            for f in fragments { XCTAssertTrue(text.contains(f), "'\(f)' not in: \(text)", file: file, line: line) }
        }
    }

    // MARK: - The classic mistake

    func testReshapeAfterConvolutionsNamesTheShapes() throws {
        var g = Graph(name: "classic")
        func param(_ name: String, _ shape: [Int]) -> Value {
            g.addParam(name, .f32(shape.map(fx)), initial: [Float](repeating: 0, count: shape.reduce(1, *)))
        }
        let x = g.addInput("input", f32(N, fx(56), fx(14), fx(1)))
        let c1 = try g.add(.layer(Conv2DKind(filters: 32, kernel: [3, 3], strides: [1, 1], padding: .valid, activation: .relu, useBias: true).op),
                           [x, param("conv1/kernel", [3, 3, 1, 32]), param("conv1/bias", [32])], layer: "conv1")[0]
        let c2 = try g.add(.layer(Conv2DKind(filters: 32, kernel: [3, 3], strides: [1, 1], padding: .valid, activation: .relu, useBias: true).op),
                           [c1, param("conv2/kernel", [3, 3, 32, 32]), param("conv2/bias", [32])], layer: "conv2")[0]
        let p = try g.add(.layer(Pooling2DKind(.max, pool: [2, 2], strides: [2, 2], padding: .valid).op), [c2], layer: "pool")[0]
        XCTAssertEqual(g.type(c1).kerasDescription, "(None, 54, 12, 32)")
        XCTAssertEqual(g.type(p).kerasDescription, "(None, 26, 5, 32)")
        XCTAssertThrowsError(try g.add(.layer(ReshapeKind(target: [784]).op), [p], layer: "to_vector")) { e in
            XCTAssertTrue(e is ShapeError)
            let text = "\(e)"
            for f in ["Reshape 'to_vector'", "4160", "784", "(26, 5, 32)", "(784,)"] {
                XCTAssertTrue(text.contains(f), "'\(f)' not in: \(text)")
            }
        }
        XCTAssertEqual(g.nodes.count, 3, "a refused node is not added")
    }

    // MARK: - Layer ops

    func testDense() throws {
        XCTAssertEqual(try layer(DenseKind(units: 8, activation: .relu, useBias: true).op, [f32(N, fx(4)), f32(fx(4), fx(8)), f32(fx(8))]), f32(N, fx(8)))
        XCTAssertEqual(try layer(DenseKind(units: 8, activation: .linear, useBias: false).op, [f32(N, fx(5), fx(4)), f32(fx(4), fx(8))]),
                       f32(N, fx(5), fx(8)))
        refuses(.layer(DenseKind(units: 8, activation: .relu, useBias: false).op), [f32(N, fx(4)), f32(fx(5), fx(8))], name: "d",
                ["Dense 'd'", "(5, 8)", "(None, 4)", "expected kernel (4, 8)"])
        refuses(.layer(DenseKind(units: 8, activation: .relu, useBias: true).op), [f32(N, fx(4)), f32(fx(4), fx(8))], ["takes 3 inputs, got 2"])
        refuses(.layer(DenseKind(units: 8, activation: .relu, useBias: false).op), [f32(fx(4)), f32(fx(4), fx(8))], ["rank 2 or more"])
    }

    func testConv2D() throws {
        func conv(_ f: Int, _ k: Int, _ s: Int, _ p: Padding) -> LayerOp {
            Conv2DKind(filters: f, kernel: [k, k], strides: [s, s], padding: p, activation: .linear, useBias: false).op
        }
        let x = f32(N, fx(28), fx(28), fx(3))
        XCTAssertEqual(try layer(conv(16, 3, 1, .valid), [x, f32(fx(3), fx(3), fx(3), fx(16))]), f32(N, fx(26), fx(26), fx(16)))
        XCTAssertEqual(try layer(conv(16, 3, 1, .same), [x, f32(fx(3), fx(3), fx(3), fx(16))]), f32(N, fx(28), fx(28), fx(16)))
        XCTAssertEqual(try layer(conv(16, 3, 2, .same), [x, f32(fx(3), fx(3), fx(3), fx(16))]), f32(N, fx(14), fx(14), fx(16)))
        XCTAssertEqual(try layer(conv(16, 5, 2, .valid), [x, f32(fx(5), fx(5), fx(3), fx(16))]), f32(N, fx(12), fx(12), fx(16)))
        XCTAssertEqual(try layer(conv(4, 2, 2, .same), [f32(N, fx(7), fx(7), fx(1)), f32(fx(2), fx(2), fx(1), fx(4))]), f32(N, fx(4), fx(4), fx(4)))
        // Too small for the kernel.
        refuses(.layer(conv(8, 3, 1, .valid)), [f32(N, fx(2), fx(2), fx(1)), f32(fx(3), fx(3), fx(1), fx(8))], name: "c",
                ["Conv2D 'c'", "3x3 'valid' convolution does not fit input (None, 2, 2, 1)", "padding='same'"])
        // Same padding always fits.
        XCTAssertEqual(try layer(conv(8, 3, 1, .same), [f32(N, fx(2), fx(2), fx(1)), f32(fx(3), fx(3), fx(1), fx(8))]), f32(N, fx(2), fx(2), fx(8)))
        refuses(.layer(conv(8, 3, 1, .valid)), [f32(N, fx(28), fx(28)), f32(fx(3), fx(3), fx(1), fx(8))], ["rank 4", "(batch, height, width, channels)"])
        refuses(.layer(conv(8, 3, 1, .valid)), [x, f32(fx(3), fx(3), fx(1), fx(8))], ["expected kernel (3, 3, 3, 8)"])
        refuses(.layer(conv(8, 3, 1, .valid)), [f32(fx(28), fx(28), fx(3), fx(1)), f32(fx(3), fx(3), fx(1), fx(8))], ["expects a batched input"])
    }

    func testPoolingAndGlobal() throws {
        let x = f32(N, fx(5), fx(5), fx(3))
        XCTAssertEqual(try layer(Pooling2DKind(.max, pool: [2, 2], strides: [2, 2], padding: .valid).op, [x]), f32(N, fx(2), fx(2), fx(3)))
        XCTAssertEqual(try layer(Pooling2DKind(.max, pool: [2, 2], strides: [2, 2], padding: .same).op, [x]), f32(N, fx(3), fx(3), fx(3)))
        XCTAssertEqual(try layer(Pooling2DKind(.avg, pool: [3, 3], strides: [1, 1], padding: .valid).op, [x]), f32(N, fx(3), fx(3), fx(3)))
        XCTAssertEqual(try layer(Pooling2DKind(.avg, pool: [3, 2], strides: [2, 1], padding: .same).op, [x]), f32(N, fx(3), fx(5), fx(3)))
        refuses(.layer(Pooling2DKind(.max, pool: [6, 6], strides: [1, 1], padding: .valid).op), [x], name: "mp", ["MaxPooling2D 'mp'", "6x6 pool", "(None, 5, 5, 3)"])
        XCTAssertEqual(try layer(GlobalPooling2DKind(.avg).op, [x]), f32(N, fx(3)))
        XCTAssertEqual(try layer(GlobalPooling2DKind(.max).op, [x]), f32(N, fx(3)))
        refuses(.layer(GlobalPooling2DKind(.avg).op), [f32(N, fx(3))], ["rank 4"])
    }

    func testFlattenReshape() throws {
        XCTAssertEqual(try layer(FlattenKind().op, [f32(N, fx(3), fx(4), fx(5))]), f32(N, fx(60)))
        XCTAssertEqual(try layer(ReshapeKind(target: [6, 10]).op, [f32(N, fx(3), fx(4), fx(5))]), f32(N, fx(6), fx(10)))
        XCTAssertEqual(try layer(ReshapeKind(target: [-1, 4]).op, [f32(N, fx(3), fx(4), fx(5))]), f32(N, fx(15), fx(4)))
        refuses(.layer(ReshapeKind(target: [-1, 7]).op), [f32(N, fx(60))], ["60 elements", "cannot divide"])
        refuses(.layer(ReshapeKind(target: [-1, -1]).op), [f32(N, fx(60))], ["not valid", "at most one -1"])
        refuses(.layer(ReshapeKind(target: [0, 60]).op), [f32(N, fx(60))], ["not valid"])
        refuses(.layer(ReshapeKind(target: [61]).op), [f32(N, fx(60))], name: "r", ["Reshape 'r'", "(60,)", "needs 61"])
    }

    func testElementwiseLayers() throws {
        let x = f32(N, fx(3), fx(4))
        XCTAssertEqual(try layer(DropoutKind(rate: 0.5).op, [x]), x)
        XCTAssertEqual(try layer(ActivationKind(.softmax, alpha: 0).op, [x]), x)
        XCTAssertEqual(try layer(ActivationKind(.relu, kerasClass: "ReLU", alpha: 0.1, maxValue: 6, threshold: 0).op, [x]), x)
        XCTAssertEqual(try layer(PReLUKind().op, [x, f32(fx(1), fx(4))]), x)
        XCTAssertEqual(try layer(PReLUKind().op, [x, f32(fx(3), fx(4))]), x)
        refuses(.layer(PReLUKind().op), [x, f32(fx(4), fx(3))], name: "pr", ["PReLU 'pr'", "alpha of shape (4, 3)"])
        refuses(.layer(DropoutKind(rate: 0.5).op), [x, x], ["takes 1 inputs, got 2"])
    }

    func testEmbedding() throws {
        XCTAssertEqual(try layer(EmbeddingKind(inputDim: 100, outputDim: 16, maskZero: false).op, [f32(N, fx(7)), f32(fx(100), fx(16))]),
                       f32(N, fx(7), fx(16)))
        refuses(.layer(EmbeddingKind(inputDim: 100, outputDim: 16, maskZero: false).op), [f32(N, fx(7)), f32(fx(99), fx(16))], ["(99, 16)", "(100, 16)"])
    }

    func testConcatenateAndAdd() throws {
        XCTAssertEqual(try layer(ConcatenateKind(axis: -1).op, [f32(N, fx(3)), f32(N, fx(4)), f32(N, fx(1))]), f32(N, fx(8)))
        XCTAssertEqual(try layer(ConcatenateKind(axis: 1).op, [f32(N, fx(2), fx(5)), f32(N, fx(3), fx(5))]), f32(N, fx(5), fx(5)))
        refuses(.layer(ConcatenateKind(axis: -1).op), [f32(N, fx(3), fx(2)), f32(N, fx(4), fx(3))], name: "cat",
                ["Concatenate 'cat'", "(None, 3, 2)", "(None, 4, 3)", "differ outside the concatenation axis"])
        refuses(.layer(ConcatenateKind(axis: -1).op), [f32(N, fx(3)), f32(N, fx(3), fx(1))], ["different ranks"])
        refuses(.layer(ConcatenateKind(axis: 0).op), [f32(N, fx(3)), f32(N, fx(3))], ["axis 0 is out of range"])
        refuses(.layer(ConcatenateKind(axis: 1).op), [f32(N, fx(3))], ["at least 2 inputs"])
        XCTAssertEqual(try layer(AddKind().op, [f32(N, fx(3)), f32(N, fx(3)), f32(N, fx(3))]), f32(N, fx(3)))
        refuses(.layer(AddKind().op), [f32(N, fx(3)), f32(N, fx(4))], name: "sum", ["Add 'sum'", "(None, 3)", "(None, 4)"])
    }

    // MARK: - Broadcasting

    func testBroadcastRules() {
        let cases: [([Dim], [Dim], [Dim]?)] = [
            ([], [fx(2), fx(3)], [fx(2), fx(3)]),
            ([fx(3)], [N, fx(2), fx(3)], [N, fx(2), fx(3)]),
            ([N, fx(1)], [fx(4)], [N, fx(4)]),
            ([fx(2), fx(1)], [fx(1), fx(3)], [fx(2), fx(3)]),
            ([fx(1)], [N], [N]),
            ([N, fx(3)], [N, fx(3)], [N, fx(3)]),
            ([fx(2), fx(3)], [fx(3), fx(2)], nil),
            ([fx(3)], [fx(4)], nil),
            ([N], [.batch(2)], nil),
            ([N, fx(3)], [fx(2), fx(3)], nil),
        ]
        for (a, b, want) in cases {
            XCTAssertEqual(broadcastShapes(a, b), want, "\(a) with \(b)")
            XCTAssertEqual(broadcastShapes(b, a), want, "\(b) with \(a)")
        }
    }

    // MARK: - Primitive ops

    func testPad() throws {
        XCTAssertEqual(try prim(.pad(axis: 2, before: 1, after: 3, value: 0), [f32(N, fx(5), fx(2))]), f32(N, fx(5), fx(6)))
        XCTAssertEqual(try prim(.pad(axis: 0, before: 2, after: 0, value: 1), [f32(fx(3))]), f32(fx(5)))
        refuses(.prim(.pad(axis: 0, before: 1, after: 1, value: 0)), [f32(N, fx(2))], ["pad<axis=0, 1, 1>", "cannot pad"])
        refuses(.prim(.pad(axis: 2, before: 1, after: 1, value: 0)), [f32(N, fx(2))], ["cannot pad"])
        refuses(.prim(.pad(axis: 1, before: -1, after: 1, value: 0)), [f32(N, fx(2))], ["cannot pad"])
        XCTAssertEqual(PrimOp.pad(axis: 1, before: 2, after: 0, value: 0).description, "pad<axis=1, 2, 0>")
        XCTAssertEqual(PrimOp.pad(axis: 3, before: 0, after: 1, value: -0.5).description, "pad<axis=3, 0, 1, value=-0.5>")
    }

    func testElementwisePrims() throws {
        XCTAssertEqual(try prim(.unary(.exp), [f32(N, fx(3))]), f32(N, fx(3)))
        XCTAssertEqual(try prim(.binary(.add), [f32(N, fx(1), fx(3)), f32(fx(4), fx(1))]), f32(N, fx(4), fx(3)))
        refuses(.prim(.binary(.mul)), [f32(fx(2), fx(3)), f32(fx(3), fx(2))], ["do not broadcast"])
        XCTAssertEqual(try prim(.compare(.lt), [f32(N, fx(3)), f32()]), TensorType(.bool, [N, fx(3)]))
        XCTAssertEqual(try prim(.select, [TensorType(.bool, [N, fx(3)]), f32(), f32(fx(3))]), f32(N, fx(3)))
        XCTAssertEqual(try prim(.select, [TensorType(.bool, [fx(3)]), TensorType(.i32, [fx(3)]), TensorType(.i32, [])]), TensorType(.i32, [fx(3)]))
        XCTAssertEqual(try prim(.cast(.i32), [f32(N)]), TensorType(.i32, [N]))
        for op in [PrimOp.constant(2), .batchSize, .iteration] { XCTAssertEqual(try prim(op, []), f32()) }
        refuses(.prim(.constant(1)), [f32()], ["takes 0 inputs, got 1"])
        XCTAssertEqual(try prim(.iota(5), []), f32(fx(5)))
        XCTAssertEqual(try prim(.randomUniform(salt: 1), [f32(N, fx(2))]), f32(N, fx(2)))
        let e = FusedExpr.compare(.gt, .binary(.add, .arg(0), .arg(1)), .const(0))
        XCTAssertEqual(try prim(.fused(e), [f32(N, fx(3)), f32(fx(3))]), TensorType(.bool, [N, fx(3)]))
        refuses(.prim(.fused(e)), [f32(N, fx(3)), f32(fx(4))], ["do not broadcast"])
        XCTAssertEqual(try inferTypes(.prim(.assign), [f32(fx(3)), f32(fx(3))], layer: "a"), [])
        refuses(.prim(.assign), [f32(fx(3)), f32(fx(4))], ["assigns"])
    }

    func testReduceReshapeTransposeBroadcast() throws {
        let x = f32(N, fx(3), fx(4))
        XCTAssertEqual(try prim(.reduce(.sum, axes: [1], keepDims: false), [x]), f32(N, fx(4)))
        XCTAssertEqual(try prim(.reduce(.mean, axes: [0, 2], keepDims: true), [x]), f32(fx(1), fx(3), fx(1)))
        XCTAssertEqual(try prim(.reduce(.max, axes: [0, 1, 2], keepDims: false), [x]), f32())
        refuses(.prim(.reduce(.sum, axes: [2, 1], keepDims: false)), [x], ["not valid"])
        refuses(.prim(.reduce(.sum, axes: [3], keepDims: false)), [x], ["not valid"])
        refuses(.prim(.reduce(.sum, axes: [1, 1], keepDims: false)), [x], ["not valid"])
        XCTAssertEqual(try prim(.reshape([N, fx(12)]), [x]), f32(N, fx(12)))
        XCTAssertEqual(try prim(.reshape([.batch(3), fx(4)]), [x]), f32(.batch(3), fx(4)))
        refuses(.prim(.reshape([fx(12)])), [x], ["cannot reshape"])
        refuses(.prim(.reshape([N, fx(13)])), [x], ["cannot reshape"])
        XCTAssertEqual(try prim(.transpose([2, 0, 1]), [x]), f32(fx(4), N, fx(3)))
        refuses(.prim(.transpose([0, 0, 1])), [x], ["not a permutation"])
        XCTAssertEqual(try prim(.broadcast([N, fx(2), fx(3)]), [f32(fx(3))]), f32(N, fx(2), fx(3)))
        refuses(.prim(.broadcast([fx(3)])), [f32(fx(2))], ["cannot broadcast"])
        refuses(.prim(.broadcast([fx(3)])), [f32(fx(1), fx(3))], ["cannot broadcast"])
    }

    func testMatmul() throws {
        let mm = { (ta: Bool, tb: Bool) in PrimOp.matmul(transA: ta, transB: tb) }
        XCTAssertEqual(try prim(mm(false, false), [f32(N, fx(3)), f32(fx(3), fx(4))]), f32(N, fx(4)))
        XCTAssertEqual(try prim(mm(true, false), [f32(N, fx(3)), f32(N, fx(4))]), f32(fx(3), fx(4)))
        XCTAssertEqual(try prim(mm(false, true), [f32(N, fx(4)), f32(fx(3), fx(4))]), f32(N, fx(3)))
        XCTAssertEqual(try prim(mm(true, true), [f32(fx(3), fx(2)), f32(fx(4), fx(3))]), f32(fx(2), fx(4)))
        refuses(.prim(mm(false, false)), [f32(N, fx(3)), f32(fx(4), fx(5))], ["inner dimensions", "f32[N, 3]", "f32[4, 5]"])
        refuses(.prim(mm(false, true)), [f32(N, fx(3)), f32(fx(3), fx(4))], ["inner dimensions"])
        refuses(.prim(mm(false, true)), [f32(N, fx(3)), f32(N, fx(3))], ["both result dimensions scale with the batch"])
        refuses(.prim(mm(false, false)), [f32(N, fx(3), fx(1)), f32(fx(3), fx(4))], ["rank-2"])
    }

    func testWindowPrims() throws {
        let win = Window2D(kh: 3, kw: 3, sh: 1, sw: 1, padTop: 1, padLeft: 1)
        let x = f32(N, fx(5), fx(5), fx(2)), w = f32(fx(3), fx(3), fx(2), fx(4)), y = f32(N, fx(5), fx(5), fx(4))
        XCTAssertEqual(try prim(.conv2D(win, outH: 5, outW: 5), [x, w]), y)
        refuses(.prim(.conv2D(win, outH: 5, outW: 5)), [x, f32(fx(3), fx(3), fx(3), fx(4))], ["do not fit"])
        XCTAssertEqual(try prim(.convBiasAct(win, outH: 5, outW: 5, act: nil), [x, w, f32(fx(4))]), y)
        refuses(.prim(.convBiasAct(win, outH: 5, outW: 5, act: nil)), [x, w, f32(fx(2))], ["bias"])
        XCTAssertEqual(try prim(.conv2DGradInput(win, inH: 5, inW: 5), [y, w]), x)
        XCTAssertEqual(try prim(.conv2DGradFilter(win), [x, y]), w)
        XCTAssertEqual(try prim(.im2col(win, outH: 5, outW: 5), [x]), f32(.batch(25), fx(18)))
        XCTAssertEqual(try prim(.col2im(win, inH: 5, inW: 5, channels: 2, outH: 5, outW: 5), [f32(.batch(25), fx(18))]), x)
        refuses(.prim(.col2im(win, inH: 5, inW: 5, channels: 2, outH: 5, outW: 5)), [f32(.batch(25), fx(9))], ["do not fit"])
        let pw = Window2D(kh: 2, kw: 2, sh: 2, sw: 2)
        XCTAssertEqual(try prim(.pool2D(.max, pw, outH: 2, outW: 2), [x]), f32(N, fx(2), fx(2), fx(2)))
        refuses(.prim(.pool2D(.avg, pw, outH: 2, outW: 2)), [f32(N, fx(5))], ["needs rank 4"])
        XCTAssertEqual(try prim(.pool2DGrad(.avg, pw), [x, f32(N, fx(2), fx(2), fx(2)), f32(N, fx(2), fx(2), fx(2))]), x)
    }

    func testIndexingPrims() throws {
        let ids = TensorType(.i32, [N, fx(7)])
        XCTAssertEqual(try prim(.gather, [f32(fx(10), fx(4)), ids]), f32(N, fx(7), fx(4)))
        refuses(.prim(.gather), [f32(fx(10), fx(4)), f32(N, fx(7))], ["int ids"])
        XCTAssertEqual(try prim(.scatterAdd(rows: 10), [ids, f32(N, fx(7), fx(4))]), f32(fx(10), fx(4)))
        XCTAssertEqual(try prim(.concat(axis: 1), [f32(N, fx(2)), f32(N, fx(5))]), f32(N, fx(7)))
        XCTAssertEqual(try prim(.slice(axis: 1, start: 2, length: 3), [f32(N, fx(7))]), f32(N, fx(3)))
        refuses(.prim(.slice(axis: 1, start: 5, length: 3)), [f32(N, fx(7))], ["out of range"])
        refuses(.prim(.slice(axis: 0, start: 0, length: 1)), [f32(N, fx(7))], ["out of range"])
    }

    func testGraphAddNamesTheLayer() throws {
        var g = Graph(name: "g")
        let a = g.addInput("a", f32(N, fx(3))), b = g.addInput("b", f32(fx(4)))
        XCTAssertThrowsError(try g.prim(.binary(.add), a, b, layer: "my_layer")) { e in
            XCTAssertEqual((e as? ShapeError)?.layer, "my_layer")
        }
        XCTAssertTrue(g.nodes.isEmpty)
        XCTAssertEqual(formatShape([784]), "(784,)")
        XCTAssertEqual(formatShape([26, 5, 32]), "(26, 5, 32)")
        XCTAssertEqual(f32(N, fx(3)).kerasDescription, "(None, 3)")
        XCTAssertEqual(f32(.batch(4), fx(3)).description, "f32[N*4, 3]")
    }

    // MARK: - Sizes a config may declare (issue 12)

    func testValuesOverTheMemoryLimitAreRefusedNamingTheLayer() throws {
        var g = Graph(name: "huge")
        // 2^40 x 2^40 values per sample: the count itself overflows Int.
        let x = g.addInput("x", f32(N, fx(1 << 40), fx(1 << 40)))
        XCTAssertNil(g.type(x).checkedStaticCount)
        XCTAssertThrowsError(try g.prim(.unary(.relu), x, layer: "huge_relu")) { e in
            XCTAssertEqual("\(e)", "huge_relu: its output of shape (None, 1099511627776, 1099511627776) would take more than 8 EiB "
                + "per sample, more than Kiln allows (the limit is \(KilnLimits.describe(KilnLimits.maxBytes)); set KILN_MAX_BYTES to change it)")
        }
        XCTAssertThrowsError(try g.verify()) { e in XCTAssertTrue("\(e)".hasPrefix("x: the input of shape (None, 1099511627776, 1099511627776)"), "\(e)") }

        // At the limit and one value over it (KILN_MAX_BYTES=4K: 1024 floats per sample).
        setenv("KILN_MAX_BYTES", "4K", 1)
        defer { unsetenv("KILN_MAX_BYTES") }
        var h = Graph(name: "limit")
        let a = h.addInput("a", f32(N, fx(32), fx(32)))
        _ = try h.prim(.unary(.relu), a, layer: "fits")
        try h.verify()
        let b = h.addInput("b", f32(N, fx(1025)))
        XCTAssertThrowsError(try h.prim(.unary(.relu), b, layer: "over")) { e in
            XCTAssertTrue("\(e)".hasPrefix("over: its output of shape (None, 1025) would take 4.0 KiB per sample, more than Kiln allows"), "\(e)")
        }
        XCTAssertThrowsError(try h.verify())
    }
}
