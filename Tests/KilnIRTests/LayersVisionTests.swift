// The 2-D vision layers of the layer table (issue 10): shape rules and refusals, gradients of
// their lowered forms against float64 finite differences, values of the lowered forms against
// direct loops, and SpatialDropout2D's masks. Keras-made cases (tools/case_sets/vision.py)
// check predict and fit end to end.

import XCTest
import KilnIR
import KilnLayers
import KilnPasses
import KilnReference
import KilnSupport

private func f32(_ dims: Dim...) -> TensorType { .f32(dims) }
private func fx(_ k: Int) -> Dim { .fixed(k) }
private let N = Dim.n

final class LayersVisionTests: XCTestCase {
    // MARK: - Shapes

    func testConv2DShapes() throws {
        func k(_ kind: Conv2DKind) -> KindCheck { KindCheck(kind: kind, name: "c") }
        let x = f32(N, fx(9), fx(9), fx(2))
        // Dilation 2 makes a 3x3 kernel span 5x5.
        XCTAssertEqual(try k(Conv2DKind(filters: 3, kernel: [3, 3], dilation: [2, 2])).infer([x]), [f32(N, fx(5), fx(5), fx(3))])
        XCTAssertEqual(try k(Conv2DKind(filters: 3, kernel: [2, 3], padding: .same, dilation: [2, 1])).infer([x]), [f32(N, fx(9), fx(9), fx(3))])
        // channels_first: (C, H, W) in and out; the kernel stays (kh, kw, C, F).
        let cf = Conv2DKind(filters: 4, kernel: [3, 3], strides: [2, 1], format: .channelsFirst)
        XCTAssertEqual(try cf.weights(for: [f32(N, fx(2), fx(9), fx(8))]).map(\.shape), [[3, 3, 2, 4], [4]])
        XCTAssertEqual(try k(cf).infer([f32(N, fx(2), fx(9), fx(8))]), [f32(N, fx(4), fx(4), fx(6))])
        // A dilated kernel larger than the input: the message gives both sizes.
        k(Conv2DKind(filters: 3, kernel: [3, 3], dilation: [3, 3])).refuses([f32(N, fx(6), fx(9), fx(2))],
            ["Conv2D 'c'", "3x3 (dilated to 7x7) 'valid' convolution", "(None, 6, 9, 2)", "its height 6 is smaller than the kernel's 7 rows"])
        k(Conv2DKind(filters: 3, kernel: [3, 3])).refuses([f32(N, fx(8))], ["Conv2D 'c'", "rank 4", "(None, 8)"])
        k(Conv2DKind(filters: 3, kernel: [3, 3], format: .channelsFirst)).refuses([f32(N, fx(8), fx(2))], ["channels_first", "(batch, channels, height, width)"])
        XCTAssertEqual(Conv2DKind(filters: 3, kernel: [3, 3], dilation: [2, 2], format: .channelsFirst, useBias: false).description,
                       "conv2d<filters=3, kernel=[3, 3], strides=[1, 1], valid, linear, dilation=[2, 2], channels_first, no_bias>")
    }

    func testGroupedConv2D() throws {
        let g = Conv2DKind(filters: 6, kernel: [3, 3], padding: .same, groups: 2)
        XCTAssertEqual(try g.weights(for: [f32(N, fx(5), fx(5), fx(4))]).map(\.shape), [[3, 3, 2, 6], [6]])
        XCTAssertEqual(try KindCheck(kind: g).infer([f32(N, fx(5), fx(5), fx(4))]), [f32(N, fx(5), fx(5), fx(6))])
        KindCheck(kind: g, name: "g").refuses([f32(N, fx(5), fx(5), fx(3))], ["Conv2D 'g'", "3 channels", "groups=2"])
        refusesConfig("Conv2D", #"{"filters": 5, "kernel_size": 3, "groups": 2}"#, ["(Conv2D)", "filters=5", "groups=2"])
        XCTAssertEqual(try kerasKind("Conv2D", #"{"filters": 4, "kernel_size": 1, "groups": 4}"#) as? Conv2DKind,
                       Conv2DKind(filters: 4, kernel: [1, 1], groups: 4))
        try checkLowered("conv_groups", Conv2DKind(filters: 4, kernel: [2, 2], strides: [2, 1], activation: .tanh, groups: 2),
                         f32(N, fx(4), fx(3), fx(4)), seed: 15)
        // Values: y[b, i, j, f] = sum over the channels of f's group.
        var rng = RNG(16)
        let (n, h, w, c, f, groups) = (2, 3, 3, 6, 4, 2)
        let (cg, fg) = (c / groups, f / groups)
        let xv = rng.uniforms(n * h * w * c), wv = rng.uniforms(2 * 2 * cg * f)
        let got = try run(Conv2DKind(filters: f, kernel: [2, 2], useBias: false, groups: groups), f32(N, fx(h), fx(w), fx(c)), xv, [wv], n: n)
        var want: [Double] = []
        for b in 0..<n { for i in 0..<(h - 1) { for j in 0..<(w - 1) { for ff in 0..<f {
            var s = 0.0
            for p in 0..<2 { for q in 0..<2 { for k in 0..<cg {
                let xi: Int = ((b * h + i + p) * w + j + q) * c + (ff / fg) * cg + k
                let wi: Int = ((p * 2 + q) * cg + k) * f + ff
                s += xv[xi] * wv[wi]
            } } }
            want.append(s)
        } } } }
        XCTAssertEqual(got.count, want.count)
        for (a, e) in zip(got, want) { XCTAssertEqual(a, e, accuracy: 1e-9) }
    }

    func testPoolingShapes() throws {
        let cf = f32(N, fx(3), fx(5), fx(4))
        XCTAssertEqual(try KindCheck(kind: Pooling2DKind(.max, pool: [2, 2], format: .channelsFirst)).infer([cf]), [f32(N, fx(3), fx(2), fx(2))])
        XCTAssertEqual(try KindCheck(kind: Pooling2DKind(.avg, pool: [2, 2], strides: [1, 1], padding: .same, format: .channelsFirst)).infer([cf]),
                       [f32(N, fx(3), fx(5), fx(4))])
        XCTAssertEqual(try KindCheck(kind: GlobalPooling2DKind(.max, format: .channelsFirst)).infer([cf]), [f32(N, fx(3))])
        XCTAssertEqual(try KindCheck(kind: GlobalPooling2DKind(.avg, format: .channelsFirst, keepDims: true)).infer([cf]), [f32(N, fx(3), fx(1), fx(1))])
        XCTAssertEqual(try KindCheck(kind: GlobalPooling2DKind(.avg, keepDims: true)).infer([cf]), [f32(N, fx(1), fx(1), fx(4))])
        KindCheck(kind: Pooling2DKind(.max, pool: [4, 5], format: .channelsFirst), name: "p").refuses([cf],
            ["MaxPooling2D 'p'", "4x5 pool does not fit input (None, 3, 5, 4)", "its width 4 is smaller than the pool's 5 columns"])
        // Keras' class names and the names it gives.
        XCTAssertEqual(try kerasKind("MaxPooling2D", #"{"pool_size": [3, 3], "strides": null, "padding": "same"}"#) as? Pooling2DKind,
                       Pooling2DKind(.max, pool: [3, 3], strides: [3, 3], padding: .same))
        XCTAssertEqual(try kerasKind("AveragePooling2D", #"{"pool_size": 2, "strides": 1, "data_format": "channels_first"}"#) as? Pooling2DKind,
                       Pooling2DKind(.avg, pool: [2, 2], strides: [1, 1], format: .channelsFirst))
        XCTAssertEqual(Pooling2DKind(.avg, pool: [2, 2]).kerasClass, "AveragePooling2D")
        XCTAssertEqual(GlobalPooling2DKind(.max).kerasClass, "GlobalMaxPooling2D")
    }

    func testDepthwiseAndSeparableShapes() throws {
        let x = f32(N, fx(7), fx(7), fx(3))
        let dw = DepthwiseConv2DKind(kernel: [3, 3], padding: .same, depthMultiplier: 2)
        XCTAssertEqual(try dw.weights(for: [x]).map(\.shape), [[3, 3, 3, 2], [6]])
        XCTAssertEqual(try KindCheck(kind: dw).infer([x]), [f32(N, fx(7), fx(7), fx(6))])
        XCTAssertEqual(try KindCheck(kind: DepthwiseConv2DKind(kernel: [2, 3], strides: [2, 2], useBias: false)).infer([x]), [f32(N, fx(3), fx(3), fx(3))])
        let sep = SeparableConv2DKind(filters: 5, kernel: [3, 3], dilation: [2, 2], depthMultiplier: 2)
        XCTAssertEqual(try sep.weights(for: [f32(N, fx(8), fx(8), fx(4))]).map(\.name), ["depthwise_kernel", "pointwise_kernel", "bias"])
        XCTAssertEqual(try sep.weights(for: [f32(N, fx(8), fx(8), fx(4))]).map(\.shape), [[3, 3, 4, 2], [1, 1, 8, 5], [5]])
        XCTAssertEqual(try KindCheck(kind: sep).infer([f32(N, fx(8), fx(8), fx(4))]), [f32(N, fx(4), fx(4), fx(5))])
        // Weights from a file that do not fit.
        XCTAssertThrowsError(try inferTypes(.layer(dw.op), [x, f32(fx(3), fx(3), fx(3), fx(1)), f32(fx(6))], layer: "dw")) { e in
            for f in ["DepthwiseConv2D 'dw'", "kernel of shape (3, 3, 3, 1)", "(None, 7, 7, 3)", "expected kernel (3, 3, 3, 2)"] {
                XCTAssertTrue("\(e)".contains(f), "'\(f)' not in: \(e)")
            }
        }
    }

    func testConv2DTransposeShapes() throws {
        func out(_ h: Int, _ w: Int, k: [Int], s: [Int], _ p: Padding, op: [Int]? = nil) throws -> [TensorType] {
            try KindCheck(kind: Conv2DTransposeKind(filters: 2, kernel: k, strides: s, padding: p, outputPadding: op)).infer([f32(N, fx(h), fx(w), fx(3))])
        }
        // 'same': input * stride; 'valid': (input - 1) * stride + max(kernel, stride).
        XCTAssertEqual(try out(4, 4, k: [3, 3], s: [2, 2], .same), [f32(N, fx(8), fx(8), fx(2))])
        XCTAssertEqual(try out(3, 4, k: [3, 2], s: [2, 3], .valid), [f32(N, fx(7), fx(12), fx(2))])
        XCTAssertEqual(try out(3, 4, k: [3, 3], s: [1, 1], .valid), [f32(N, fx(5), fx(6), fx(2))])
        XCTAssertEqual(try Conv2DTransposeKind(filters: 2, kernel: [3, 3]).weights(for: [f32(N, fx(4), fx(4), fx(3))]).map(\.shape), [[3, 3, 2, 3], [2]])
        // Keras' leading pad of the adjoint convolution ('same'): floor((k - s) / 2), never below 0.
        XCTAssertEqual(Conv2DTransposeKind.geometry(4, kernel: 3, stride: 2, .same).padBefore, 0)
        XCTAssertEqual(Conv2DTransposeKind.geometry(4, kernel: 3, stride: 1, .same).padBefore, 1)
        XCTAssertEqual(Conv2DTransposeKind.geometry(4, kernel: 5, stride: 2, .same).padBefore, 1)
        XCTAssertEqual(Conv2DTransposeKind.geometry(4, kernel: 1, stride: 3, .same).padBefore, 0)
        // With output_padding: (h - 1) * s + k - 2 * pad + op, pad = k / 2 for 'same'.
        XCTAssertEqual(try out(4, 4, k: [3, 3], s: [2, 2], .same, op: [1, 0]), [f32(N, fx(8), fx(7), fx(2))])
        XCTAssertEqual(try out(3, 4, k: [3, 2], s: [2, 3], .valid, op: [1, 2]), [f32(N, fx(8), fx(13), fx(2))])
        XCTAssertEqual(try out(3, 3, k: [4, 4], s: [2, 2], .same, op: [0, 1]), [f32(N, fx(4), fx(5), fx(2))])
        // Dilation: the kernel spans (k - 1) * d + 1.
        XCTAssertEqual(try KindCheck(kind: Conv2DTransposeKind(filters: 2, kernel: [3, 2], dilation: [2, 3])).infer([f32(N, fx(3), fx(4), fx(3))]),
                       [f32(N, fx(7), fx(7), fx(2))])
    }

    func testCropPadUpsampleShapes() throws {
        let x = f32(N, fx(6), fx(7), fx(2))
        XCTAssertEqual(try KindCheck(kind: ZeroPadding2DKind(top: 1, bottom: 2, left: 0, right: 1)).infer([x]), [f32(N, fx(9), fx(8), fx(2))])
        XCTAssertEqual(try KindCheck(kind: Cropping2DKind(top: 1, bottom: 0, left: 2, right: 1)).infer([x]), [f32(N, fx(5), fx(4), fx(2))])
        XCTAssertEqual(try KindCheck(kind: UpSampling2DKind(size: [2, 3])).infer([x]), [f32(N, fx(12), fx(21), fx(2))])
        let cf = f32(N, fx(2), fx(5), fx(4))
        XCTAssertEqual(try KindCheck(kind: ZeroPadding2DKind(top: 1, bottom: 1, left: 1, right: 1, format: .channelsFirst)).infer([cf]),
                       [f32(N, fx(2), fx(7), fx(6))])
        XCTAssertEqual(try KindCheck(kind: UpSampling2DKind(size: [2, 1], format: .channelsFirst)).infer([cf]), [f32(N, fx(2), fx(10), fx(4))])
        KindCheck(kind: Cropping2DKind(top: 3, bottom: 3, left: 0, right: 0), name: "crop").refuses([x],
            ["Cropping2D 'crop'", "cropping ((3, 3), (0, 0))", "(None, 6, 7, 2)", "(None, 0, 7, 2)", "at most 5 rows and 6 columns"])
        KindCheck(kind: UpSampling2DKind(), name: "up").refuses([f32(N, fx(5), fx(3))], ["UpSampling2D 'up'", "rank 4", "(None, 5, 3)"])
        // Keras' spellings of the four sides.
        XCTAssertEqual(try kerasKind("Cropping2D", #"{"cropping": [[1, 0], [2, 1]]}"#) as? Cropping2DKind, Cropping2DKind(top: 1, bottom: 0, left: 2, right: 1))
        XCTAssertEqual(try kerasKind("Cropping2D", #"{"cropping": [2, 1]}"#) as? Cropping2DKind, Cropping2DKind(top: 2, bottom: 2, left: 1, right: 1))
        XCTAssertEqual(try kerasKind("ZeroPadding2D", #"{"padding": 3}"#) as? ZeroPadding2DKind, ZeroPadding2DKind(top: 3, bottom: 3, left: 3, right: 3))
        XCTAssertEqual(try kerasKind("SpatialDropout2D", #"{"rate": 0.25, "data_format": "channels_first"}"#) as? SpatialDropout2DKind,
                       SpatialDropout2DKind(rate: 0.25, format: .channelsFirst))
    }

    // MARK: - Refusals of Keras configs

    func testRefusedConfigs() {
        refusesConfig("UpSampling2D", #"{"size": [2, 2], "interpolation": "bicubic"}"#,
                      ["layer 'L' (UpSampling2D)", "interpolation 'bicubic'", "'nearest' and 'bilinear'"])
        refusesConfig("Conv2DTranspose", #"{"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": [1, 2]}"#,
                      ["(Conv2DTranspose)", "output_padding [1, 2]", "below its stride"])
        refusesConfig("Conv2DTranspose", #"{"filters": 2, "kernel_size": 3, "strides": 2, "dilation_rate": 2}"#,
                      ["(Conv2DTranspose)", "strides [2, 2] and dilation_rate [2, 2]"])
        refusesConfig("Conv2D", #"{"filters": 2, "kernel_size": 3, "strides": 2, "dilation_rate": 2}"#,
                      ["(Conv2D)", "strides [2, 2] and dilation_rate [2, 2]"])
                refusesConfig("Conv2D", #"{"filters": 4, "kernel_size": 3, "data_format": "channels_middle"}"#,
                      ["data_format 'channels_middle'", "'channels_last', 'channels_first'"])
        refusesConfig("DepthwiseConv2D", #"{"kernel_size": 3, "depth_multiplier": 0}"#, ["(DepthwiseConv2D)", "depth_multiplier=0"])
        refusesConfig("Cropping2D", #"{"cropping": [[1, -1], [0, 0]]}"#, ["(Cropping2D)", ">= 0"])
        refusesConfig("SpatialDropout2D", #"{"rate": 1.0}"#, ["(SpatialDropout2D)", "rate 1.0"])
        refusesConfig("MaxPooling2D", #"{"pool_size": [0, 2]}"#, ["(MaxPooling2D)", "pool_size [0, 2]"])
    }

    func testConfigsRoundTrip() throws {
        let samples: [any LayerKind] = [
            Conv2DKind(filters: 3, kernel: [3, 2], strides: [1, 1], padding: .same, dilation: [2, 1], format: .channelsFirst, activation: .relu, useBias: false),
            Conv2DKind(filters: 6, kernel: [1, 1], groups: 3),
            DepthwiseConv2DKind(kernel: [3, 3], strides: [2, 2], depthMultiplier: 3, activation: .tanh),
            SeparableConv2DKind(filters: 4, kernel: [3, 3], dilation: [2, 2], depthMultiplier: 2, format: .channelsFirst),
            Conv2DTransposeKind(filters: 2, kernel: [4, 3], strides: [2, 3], padding: .same, useBias: false),
            Conv2DTransposeKind(filters: 2, kernel: [3, 3], padding: .valid, outputPadding: [0, 0], dilation: [2, 1]),
            Pooling2DKind(.max, pool: [3, 2], strides: [1, 2], padding: .same, format: .channelsFirst), Pooling2DKind(.avg),
            GlobalPooling2DKind(.avg, format: .channelsFirst, keepDims: true), GlobalPooling2DKind(.max),
            Cropping2DKind(top: 1, bottom: 2, left: 3, right: 0), ZeroPadding2DKind(top: 0, bottom: 1, left: 2, right: 3, format: .channelsFirst),
            UpSampling2DKind(size: [3, 2]), UpSampling2DKind(size: [2, 2], format: .channelsFirst, interpolation: .bilinear),
            SpatialDropout2DKind(rate: 0.3),
        ]
        for k in samples {
            let json = JSON.object([("name", .string("L"))] + k.kerasConfig())
            let back = try type(of: k).init(keras: KerasConfig(name: "L", className: k.kerasClass, json: json, file: ""))
            XCTAssertEqual(AnyLayer(back), AnyLayer(k), "\(k.kerasClass) did not read back its own config")
        }
    }

    // MARK: - Gradients of the lowered layers

    /// checkGradient through `kind.lower` (inputs: x, then the kind's weights as parameters).
    func checkLowered(_ name: String, _ kind: any LayerKind, _ x: TensorType, seed: UInt64) throws {
        var rng = RNG(seed)
        let n = 2
        let xs = Interpreter.dims(x, n)
        var operands = [Operand.input(x, rng.uniforms(xs.reduce(1, *)))]
        for w in try kind.weights(for: [x]) { operands.append(.param(w.shape, rng.uniforms(w.shape.reduce(1, *)))) }
        try checkGradient(name, n: n, operands) { b, v in
            var ctx = LoweringContext()
            return try kind.lower(&b, v, &ctx)[0]
        }
    }

    func testLoweredConvolutionGradients() throws {
        try checkLowered("conv_dilated", Conv2DKind(filters: 2, kernel: [2, 3], padding: .same, dilation: [2, 2], activation: .tanh),
                         f32(N, fx(5), fx(6), fx(2)), seed: 1)
        try checkLowered("conv_dilated_valid_cf", Conv2DKind(filters: 3, kernel: [2, 2], dilation: [1, 2], format: .channelsFirst),
                         f32(N, fx(2), fx(4), fx(5)), seed: 2)
        try checkLowered("depthwise", DepthwiseConv2DKind(kernel: [3, 2], strides: [2, 1], padding: .same, depthMultiplier: 2),
                         f32(N, fx(5), fx(4), fx(3)), seed: 3)
        try checkLowered("separable", SeparableConv2DKind(filters: 3, kernel: [2, 2], dilation: [2, 2], depthMultiplier: 2, activation: .sigmoid),
                         f32(N, fx(5), fx(5), fx(2)), seed: 4)
        try checkLowered("transpose_same", Conv2DTransposeKind(filters: 2, kernel: [3, 3], strides: [2, 2], padding: .same),
                         f32(N, fx(3), fx(3), fx(2)), seed: 5)
        try checkLowered("transpose_valid_k_below_s", Conv2DTransposeKind(filters: 3, kernel: [3, 2], strides: [2, 3], format: .channelsFirst),
                         f32(N, fx(2), fx(3), fx(2)), seed: 6)
        try checkLowered("transpose_output_padding", Conv2DTransposeKind(filters: 2, kernel: [3, 4], strides: [2, 2], padding: .same, outputPadding: [1, 0]),
                         f32(N, fx(2), fx(3), fx(2)), seed: 17)
        try checkLowered("transpose_dilated", Conv2DTransposeKind(filters: 2, kernel: [2, 3], padding: .same, dilation: [2, 2], activation: .tanh),
                         f32(N, fx(3), fx(3), fx(2)), seed: 18)
    }

    func testLoweredReshapingGradients() throws {
        try checkLowered("pool_cf", Pooling2DKind(.avg, pool: [2, 2], strides: [1, 2], padding: .same, format: .channelsFirst),
                         f32(N, fx(2), fx(3), fx(5)), seed: 7)
        try checkLowered("crop", Cropping2DKind(top: 1, bottom: 0, left: 1, right: 2, format: .channelsFirst), f32(N, fx(2), fx(4), fx(5)), seed: 8)
        try checkLowered("pad", ZeroPadding2DKind(top: 2, bottom: 0, left: 1, right: 1), f32(N, fx(3), fx(2), fx(2)), seed: 9)
        try checkLowered("upsample", UpSampling2DKind(size: [2, 3]), f32(N, fx(2), fx(3), fx(2)), seed: 10)
        try checkLowered("upsample_cf", UpSampling2DKind(size: [3, 1], format: .channelsFirst), f32(N, fx(2), fx(2), fx(3)), seed: 11)
        try checkLowered("upsample_bilinear", UpSampling2DKind(size: [2, 3], interpolation: .bilinear), f32(N, fx(3), fx(2), fx(2)), seed: 19)
        try checkLowered("upsample_bilinear_cf", UpSampling2DKind(size: [3, 2], format: .channelsFirst, interpolation: .bilinear),
                         f32(N, fx(2), fx(2), fx(3)), seed: 20)
    }

    /// conv2d_grad_input's own gradient rule (Conv2DTranspose's primitive), in both operands.
    func testConv2DGradInputGradients() throws {
        var rng = RNG(12)
        for (k, (win, h, w, oh, ow)) in [(Window2D(kh: 3, kw: 3, sh: 2, sw: 2), 7, 7, 3, 3),
                                         (Window2D(kh: 2, kw: 3, sh: 3, sw: 1, padTop: 0, padLeft: 1), 6, 4, 2, 4)].enumerated() {
            let dy = Operand.input(f32(N, fx(oh), fx(ow), fx(2)), rng.uniforms(2 * oh * ow * 2))
            let f = Operand.param([win.kh, win.kw, 3, 2], rng.uniforms(win.kh * win.kw * 6))
            try checkGradient("conv2d_grad_input_\(k)", [dy, f]) { b, v in
                try b.p(.conv2DGradInput(win, inH: h, inW: w), v[0], v[1])
            }
        }
    }

    // MARK: - Values of the lowered layers against direct loops

    /// Runs a kind's lowered form on x (n rows) with the given weights, in the interpreter.
    func run(_ kind: any LayerKind, _ x: TensorType, _ xv: [Double], _ weights: [[Double]], n: Int) throws -> [Double] {
        var g = Graph(name: "v")
        let xin = g.addInput("x", x)
        let ws = try kind.weights(for: [x]).enumerated().map { k, w in
            g.addParam("w\(k)", .f32(w.shape.map { .fixed($0) }), initial: [Float](repeating: 0, count: w.shape.reduce(1, *)))
        }
        var b = PrimBuilder(graph: g, layer: "v")
        var ctx = LoweringContext()
        let y = try kind.lower(&b, [xin] + ws, &ctx)[0]
        return try Interpreter.run(b.graph, inputs: [xv], params: weights, n: n)[y]!
    }

    func testDilatedDepthwiseValues() throws {
        // y[b, i, j, c*M+m] = sum_{p,q} x[b, i + p*dh, j + q*dw, c] * w[p, q, c, m] ('valid').
        var rng = RNG(13)
        let (n, h, w, c, m, kh, kw, dh, dw) = (2, 6, 5, 2, 2, 2, 2, 2, 3)
        let xv = rng.uniforms(n * h * w * c), wv = rng.uniforms(kh * kw * c * m), bv = rng.uniforms(c * m)
        let kind = DepthwiseConv2DKind(kernel: [kh, kw], dilation: [dh, dw], depthMultiplier: m)
        let got = try run(kind, f32(N, fx(h), fx(w), fx(c)), xv, [wv, bv], n: n)
        let (oh, ow) = (h - (kh - 1) * dh, w - (kw - 1) * dw)
        var want: [Double] = []
        for b in 0..<n { for i in 0..<oh { for j in 0..<ow { for cc in 0..<c { for mm in 0..<m {
            var s = bv[cc * m + mm]
            for p in 0..<kh { for q in 0..<kw {
                let xi: Int = ((b * h + i + p * dh) * w + j + q * dw) * c + cc
                let wi: Int = ((p * kw + q) * c + cc) * m + mm
                s += xv[xi] * wv[wi]
            } }
            want.append(s)
        } } } } }
        XCTAssertEqual(got.count, want.count)
        for (a, e) in zip(got, want) { XCTAssertEqual(a, e, accuracy: 1e-9) }
    }

    func testTransposedConvolutionValues() throws {
        // Each input pixel scatters kernel * x into the output: y[b, i*s + p - pad, j*s + q - pad, f] += x[b, i, j, c] * w[p, q, f, c].
        var rng = RNG(14)
        for (padding, k, s, op) in [(Padding.same, 3, 2, nil), (.valid, 2, 3, nil), (.same, 4, 2, nil), (.same, 3, 2, 1), (.valid, 3, 3, 2), (.same, 4, 3, 1)] {
            let (n, h, w, c, f) = (2, 3, 2, 2, 3)
            let kind = Conv2DTransposeKind(filters: f, kernel: [k, k], strides: [s, s], padding: padding, outputPadding: op.map { [$0, $0] }, useBias: false)
            let xv = rng.uniforms(n * h * w * c), wv = rng.uniforms(k * k * f * c)
            let got = try run(kind, f32(N, fx(h), fx(w), fx(c)), xv, [wv], n: n)
            let (oh, pt) = Conv2DTransposeKind.geometry(h, kernel: k, stride: s, padding, outputPadding: op)
            let (ow, pl) = Conv2DTransposeKind.geometry(w, kernel: k, stride: s, padding, outputPadding: op)
            var want = [Double](repeating: 0, count: n * oh * ow * f)
            for b in 0..<n { for i in 0..<h { for j in 0..<w { for cc in 0..<c { for p in 0..<k { for q in 0..<k {
                let (y, x) = (i * s + p - pt, j * s + q - pl)
                guard y >= 0, y < oh, x >= 0, x < ow else { continue }
                for ff in 0..<f {
                    let xi: Int = ((b * h + i) * w + j) * c + cc
                    let wi: Int = ((p * k + q) * f + ff) * c + cc
                    let yi: Int = ((b * oh + y) * ow + x) * f + ff
                    want[yi] += xv[xi] * wv[wi]
                }
            } } } } } }
            XCTAssertEqual(got.count, want.count, "\(padding) k\(k) s\(s)")
            for (a, e) in zip(got, want) { XCTAssertEqual(a, e, accuracy: 1e-9, "\(padding) k\(k) s\(s)") }
        }
    }

    /// Bilinear upsampling against the interpolation written out: output o samples (o + 0.5) / f - 0.5,
    /// clamped to the input, between its two neighbours.
    func testBilinearUpsamplingValues() throws {
        var rng = RNG(21)
        let (n, h, w, c) = (2, 3, 4, 2)
        let xv = rng.uniforms(n * h * w * c)
        let got = try run(UpSampling2DKind(size: [2, 3], interpolation: .bilinear), f32(N, fx(h), fx(w), fx(c)), xv, [], n: n)
        func taps(_ o: Int, _ f: Int, _ size: Int) -> [(Int, Double)] {
            let t = min(max((Double(o) + 0.5) / Double(f) - 0.5, 0), Double(size - 1))
            let lo = Int(t.rounded(.down)), frac = t - Double(lo)
            return frac == 0 ? [(lo, 1)] : [(lo, 1 - frac), (lo + 1, frac)]
        }
        var want: [Double] = []
        for b in 0..<n { for i in 0..<(2 * h) { for j in 0..<(3 * w) { for cc in 0..<c {
            var v = 0.0
            for (y, wy) in taps(i, 2, h) { for (x, wx) in taps(j, 3, w) { v += wy * wx * xv[((b * h + y) * w + x) * c + cc] } }
            want.append(v)
        } } } }
        XCTAssertEqual(got.count, want.count)
        for (a, e) in zip(got, want) { XCTAssertEqual(a, e, accuracy: 1e-6) }
    }

    // MARK: - SpatialDropout2D

    /// In training, each (sample, channel) map is either all zero or all x / (1 - rate), the
    /// fraction zeroed is near the rate, and two steps draw different masks; inference is x.
    func testSpatialDropoutMasks() throws {
        for format in [DataFormat2D.channelsLast, .channelsFirst] {
            let (n, h, w, c, rate) = (200, 3, 2, 10, 0.3)
            let x = format == .channelsLast ? f32(N, fx(h), fx(w), fx(c)) : f32(N, fx(c), fx(h), fx(w))
            var g = Graph(name: "sd")
            let xin = g.addInput("x", x)
            var b = PrimBuilder(graph: g, layer: "sd")
            var ctx = LoweringContext()
            let kind = SpatialDropout2DKind(rate: Float(rate), format: format)
            let y = try kind.lower(&b, [xin], &ctx)[0]
            XCTAssertEqual(b.graph.inferenceForms[y], xin, "inference takes the input")
            let ones = [Double](repeating: 1, count: n * h * w * c)
            var masks: [[Bool]] = []
            for seed in [UInt64(1), 2] {
                let out = try Interpreter.run(b.graph, inputs: [ones], params: [], n: n, stepSeed: seed)[y]!
                var kept: [Bool] = []
                for s in 0..<n {
                    for ch in 0..<c {
                        let cells = (0..<(h * w)).map { p -> Double in
                            format == .channelsLast ? out[s * h * w * c + p * c + ch] : out[(s * c + ch) * h * w + p]
                        }
                        let v = cells[0]
                        XCTAssertTrue(cells.allSatisfy { $0 == v }, "a map is dropped or kept whole")
                        XCTAssertTrue(v == 0 || abs(v - 1 / (1 - rate)) < 1e-6, "kept maps are scaled by 1 / (1 - rate), got \(v)")
                        kept.append(v != 0)
                    }
                }
                let dropped = Double(kept.filter { !$0 }.count) / Double(kept.count)
                // 2000 draws: the standard deviation of the fraction is about 0.01.
                XCTAssertEqual(dropped, rate, accuracy: 0.05, "\(format): fraction of dropped maps")
                masks.append(kept)
            }
            XCTAssertNotEqual(masks[0], masks[1], "each step draws its own masks")
        }
    }
}
