// The 1-D sequence layers of the layer table (Conv1D, the 1-D poolings, ZeroPadding1D,
// UpSampling1D, RepeatVector, Permute, SpatialDropout1D): shape rules, refusals, masks, the
// lowered forms' values against loops written here, and their gradients by finite differences.
// Their Keras-made cases (tools/case_sets/seq1d.py) check predict and fit against Keras.

import XCTest
import KilnIR
import KilnLayers
import KilnPasses
import KilnReference
import KilnSupport

private func t32(_ dims: Dim...) -> TensorType { .f32(dims) }
private func k(_ v: Int) -> Dim { .fixed(v) }

/// A graph of one lowered layer kind: inputs (data, then weights as parameters), its output.
private func lowered(_ kind: any LayerKind, _ types: [TensorType], params: Int = 0) throws -> (Graph, Value) {
    var g = Graph(name: "seq1d")
    var vals: [Value] = []
    for (i, t) in types.enumerated() {
        vals.append(i >= types.count - params ? g.addParam("w\(i)", t, initial: [Float](repeating: 0, count: t.staticCount)) : g.addInput("x\(i)", t))
    }
    var b = PrimBuilder(graph: g, layer: "L")
    var ctx = LoweringContext()
    let y = try kind.lower(&b, vals, &ctx)[0]
    b.graph.outputs = [y]; b.graph.outputNames = ["y"]
    return (b.graph, y)
}

/// conv1d the textbook way: x (n, t, c), w (k, c, f) -> (n, out, f), zero steps `before` in front.
private func naiveConv1D(_ x: [Double], n: Int, t: Int, c: Int, _ w: [Double], k: Int, f: Int, _ bias: [Double],
                         stride: Int, dilation: Int, before: Int, out: Int) -> [Double] {
    var y = [Double](repeating: 0, count: n * out * f)
    for r in 0..<n {
        for o in 0..<out {
            for ff in 0..<f {
                var s = bias.isEmpty ? 0 : bias[ff]
                for j in 0..<k {
                    let step = o * stride + j * dilation - before
                    guard step >= 0 && step < t else { continue }
                    for cc in 0..<c { s += x[(r * t + step) * c + cc] * w[(j * c + cc) * f + ff] }
                }
                y[(r * out + o) * f + ff] = s
            }
        }
    }
    return y
}

/// (n, a, b) -> (n, b, a).
private func swapLast(_ x: [Double], n: Int, a: Int, b: Int) -> [Double] {
    var y = x
    for r in 0..<n { for i in 0..<a { for j in 0..<b { y[(r * b + j) * a + i] = x[(r * a + i) * b + j] } } }
    return y
}

final class LayersSeq1DTests: XCTestCase {
    /// Every kind writes a config it reads back as the same value.
    func testConfigsRoundTrip() throws {
        let samples: [any LayerKind] = [
            Conv1DKind(filters: 4, kernelSize: 3, strides: 2, padding: .causal, activation: .relu, useBias: false, channelsFirst: true),
            Conv1DKind(filters: 2, kernelSize: 5, padding: .same, dilation: 3),
            Pooling1DKind(.max, poolSize: 3, strides: 1, padding: .same), Pooling1DKind(.avg, poolSize: 2, channelsFirst: true),
            GlobalPooling1DKind(.max, keepDims: true), GlobalPooling1DKind(.avg, channelsFirst: true),
            ZeroPadding1DKind(before: 2, after: 0, channelsFirst: true), UpSampling1DKind(size: 3),
            RepeatVectorKind(n: 4), PermuteKind(dims: [2, 1]), PermuteKind(dims: [3, 1, 2]),
            SpatialDropout1DKind(rate: 0.3, seed: 7), SpatialDropout1DKind(rate: 0.25),
        ]
        for kind in samples {
            let json = JSON.object([("name", .string("L"))] + kind.kerasConfig())
            let back = try type(of: kind).init(keras: KerasConfig(name: "L", className: kind.kerasClass, json: json, file: ""))
            XCTAssertEqual(AnyLayer(back), AnyLayer(kind), "\(kind.kerasClass) did not read back its own config")
        }
        XCTAssertEqual(Keras.snakeCase("UpSampling1D"), "up_sampling1d")
        XCTAssertEqual(Keras.snakeCase("SpatialDropout1D"), "spatial_dropout1d")
        XCTAssertEqual(Keras.snakeCase("GlobalMaxPooling1D"), "global_max_pooling1d")
    }

    /// Keras' configs as Keras 3 saves them, and its defaults.
    func testReadsKerasConfigs() throws {
        let conv = try kerasKind("Conv1D", #"{"filters": 8, "kernel_size": [3], "strides": [1], "padding": "causal", "data_format": "channels_last", "dilation_rate": [2], "groups": 1, "activation": "tanh", "use_bias": true, "kernel_regularizer": null}"#)
        XCTAssertEqual(conv as? Conv1DKind, Conv1DKind(filters: 8, kernelSize: 3, padding: .causal, dilation: 2, activation: .tanh))
        XCTAssertEqual(try kerasKind("MaxPooling1D", #"{"pool_size": [3], "padding": "valid", "strides": null, "data_format": "channels_first"}"#) as? Pooling1DKind,
                       Pooling1DKind(.max, poolSize: 3, strides: 3, channelsFirst: true))
        XCTAssertEqual(try kerasKind("AveragePooling1D", "{}") as? Pooling1DKind, Pooling1DKind(.avg, poolSize: 2, strides: 2))
        XCTAssertEqual(try kerasKind("GlobalAveragePooling1D", #"{"keepdims": true}"#) as? GlobalPooling1DKind, GlobalPooling1DKind(.avg, keepDims: true))
        XCTAssertEqual(try kerasKind("ZeroPadding1D", #"{"padding": 2}"#) as? ZeroPadding1DKind, ZeroPadding1DKind(before: 2, after: 2))
        XCTAssertEqual(try kerasKind("UpSampling1D", "{}") as? UpSampling1DKind, UpSampling1DKind(size: 2))
        XCTAssertEqual(try kerasKind("SpatialDropout1D", #"{"rate": 0.5, "seed": null}"#) as? SpatialDropout1DKind, SpatialDropout1DKind(rate: 0.5))
    }

    func testRefusedConfigs() {
        refusesConfig("Conv1D", #"{"filters": 4, "kernel_size": 3, "groups": 2}"#, ["layer 'L' (Conv1D)", "groups=2", "groups=1"])
        refusesConfig("Conv1D", #"{"filters": 4, "kernel_size": 3, "strides": 2, "dilation_rate": 2}"#, ["(Conv1D)", "strides=2", "dilation_rate=2"])
        refusesConfig("Conv1D", #"{"filters": 4, "kernel_size": 3, "padding": "full"}"#, ["(Conv1D)", "padding 'full'", "'causal'"])
        refusesConfig("Conv1D", #"{"filters": 4, "kernel_size": 3, "data_format": "channels_middle"}"#, ["(Conv1D)", "channels_middle", "'channels_first'"])
        refusesConfig("Conv1D", #"{"filters": 4, "kernel_size": 3, "kernel_regularizer": {"class_name": "L2", "config": {"l2": 0.01}}}"#,
                      ["(Conv1D)", "kernel_regularizer", "none"])
        refusesConfig("Conv1D", #"{"filters": 0, "kernel_size": 3}"#, ["(Conv1D)", "filters=0"])
        refusesConfig("Conv1D", #"{"filters": 2, "kernel_size": [3, 3]}"#, ["(Conv1D)", "kernel_size"])
        refusesConfig("MaxPooling1D", #"{"pool_size": 2, "padding": "causal"}"#, ["(MaxPooling1D)", "padding 'causal'"])
        refusesConfig("ZeroPadding1D", #"{"padding": [1, -1]}"#, ["(ZeroPadding1D)", "[1, -1]", ">= 0"])
        refusesConfig("RepeatVector", #"{"n": 0}"#, ["(RepeatVector)", "n=0"])
        refusesConfig("Permute", #"{"dims": [1, 3]}"#, ["(Permute)", "[1, 3]", "permutation"])
        refusesConfig("SpatialDropout1D", #"{"rate": 1.0}"#, ["(SpatialDropout1D)", "rate 1.0", "0 <= rate < 1"])
    }

    func testConv1DShapes() throws {
        func out(_ kind: Conv1DKind, _ x: TensorType) throws -> TensorType { try KindCheck(kind: kind, name: "c").infer([x])[0] }
        let x = t32(.n, k(10), k(3))
        XCTAssertEqual(try out(Conv1DKind(filters: 4, kernelSize: 3), x), t32(.n, k(8), k(4)))
        XCTAssertEqual(try out(Conv1DKind(filters: 4, kernelSize: 3, padding: .same), x), t32(.n, k(10), k(4)))
        XCTAssertEqual(try out(Conv1DKind(filters: 4, kernelSize: 3, padding: .causal), x), t32(.n, k(10), k(4)))
        XCTAssertEqual(try out(Conv1DKind(filters: 4, kernelSize: 3, strides: 3), x), t32(.n, k(3), k(4)))
        XCTAssertEqual(try out(Conv1DKind(filters: 4, kernelSize: 3, strides: 3, padding: .same), x), t32(.n, k(4), k(4)))
        XCTAssertEqual(try out(Conv1DKind(filters: 4, kernelSize: 3, strides: 4, padding: .causal), x), t32(.n, k(3), k(4)))
        XCTAssertEqual(try out(Conv1DKind(filters: 4, kernelSize: 3, dilation: 4), x), t32(.n, k(2), k(4)))
        XCTAssertEqual(try out(Conv1DKind(filters: 4, kernelSize: 3, useBias: false, channelsFirst: true), t32(.n, k(3), k(10))), t32(.n, k(4), k(8)))
        XCTAssertEqual(try Conv1DKind(filters: 4, kernelSize: 3, channelsFirst: true).weights(for: [t32(.n, k(3), k(10))]).map(\.shape), [[3, 3, 4], [4]])
        XCTAssertEqual(Conv1DKind(filters: 4, kernelSize: 3, padding: .causal, dilation: 2).geometry(steps: 6).before, 4)
        XCTAssertEqual(Conv1DKind(filters: 4, kernelSize: 4, strides: 2, padding: .same).geometry(steps: 7).before, 1)

        let c = KindCheck(kind: Conv1DKind(filters: 4, kernelSize: 3, dilation: 5), name: "c")
        c.refuses([t32(.n, k(10), k(3))], ["Conv1D 'c'", "kernel_size 3", "dilation_rate 5", "span of 11 steps", "10 steps", "(None, 10, 3)", "(None, 0, 4)", "'same' or 'causal'"])
        KindCheck(kind: Conv1DKind(filters: 4, kernelSize: 3), name: "c").refuses([t32(.n, .t, k(3))], ["Conv1D 'c'", "(None, None, 3)", "free (None)"])
        KindCheck(kind: Conv1DKind(filters: 4, kernelSize: 3), name: "c").refuses([t32(.n, k(10))], ["Conv1D 'c'", "(batch, steps, channels)", "(None, 10)"])
        KindCheck(kind: Conv1DKind(filters: 4, kernelSize: 3), name: "c").refuses([t32(.n, k(4), k(5), k(3))], ["Conv1D 'c'", "(None, 4, 5, 3)"])
        // A kernel of the wrong shape (a file's weight against the input) names both shapes.
        XCTAssertThrowsError(try inferTypes(.layer(Conv1DKind(filters: 4, kernelSize: 3).op),
                                            [t32(.n, k(10), k(3)), t32(k(3), k(2), k(4)), t32(k(4))], layer: "c")) { e in
            XCTAssertTrue("\(e)".contains("(3, 2, 4)") && "\(e)".contains("(3, 3, 4)"), "\(e)")
        }
    }

    func testPoolingShapes() throws {
        func out(_ kind: any LayerKind, _ ins: [TensorType]) throws -> TensorType { try KindCheck(kind: kind, name: "p").infer(ins)[0] }
        let x = t32(.n, k(9), k(4))
        XCTAssertEqual(try out(Pooling1DKind(.max), [x]), t32(.n, k(4), k(4)))
        XCTAssertEqual(try out(Pooling1DKind(.max, padding: .same), [x]), t32(.n, k(5), k(4)))
        XCTAssertEqual(try out(Pooling1DKind(.avg, poolSize: 3, strides: 2, padding: .same), [x]), t32(.n, k(5), k(4)))
        XCTAssertEqual(try out(Pooling1DKind(.avg, poolSize: 3, strides: 1), [x]), t32(.n, k(7), k(4)))
        XCTAssertEqual(try out(Pooling1DKind(.max, poolSize: 2, channelsFirst: true), [t32(.n, k(4), k(9))]), t32(.n, k(4), k(4)))
        XCTAssertEqual(try out(GlobalPooling1DKind(.max), [x]), t32(.n, k(4)))
        XCTAssertEqual(try out(GlobalPooling1DKind(.avg, keepDims: true), [x]), t32(.n, k(1), k(4)))
        XCTAssertEqual(try out(GlobalPooling1DKind(.avg, keepDims: true, channelsFirst: true), [x]), t32(.n, k(9), k(1)))
        XCTAssertEqual(try out(GlobalPooling1DKind(.max), [t32(.n, .t, k(4))]), t32(.n, k(4)))
        let maskedAvg = GlobalPooling1DKind(.avg).consumingMask()!
        XCTAssertEqual(try out(maskedAvg, [t32(.n, .t, k(4)), TensorType(.bool, [.n, .t])]), t32(.n, k(4)))
        KindCheck(kind: maskedAvg, name: "p").refuses([x, TensorType(.bool, [.n, k(8)])], ["GlobalAveragePooling1D 'p'", "mask (None, 8)", "(None, 9, 4)"])
        KindCheck(kind: Pooling1DKind(.max, poolSize: 5), name: "p").refuses([t32(.n, k(4), k(2))], ["MaxPooling1D 'p'", "pool_size 5", "4 steps", "(None, 4, 2)"])
        KindCheck(kind: Pooling1DKind(.avg), name: "p").refuses([t32(.n, .t, k(2))], ["AveragePooling1D 'p'", "free (None)"])
        KindCheck(kind: GlobalPooling1DKind(.max), name: "p").refuses([t32(.n, k(4), k(4), k(2))], ["GlobalMaxPooling1D 'p'", "(None, 4, 4, 2)"])
    }

    func testReshapingShapes() throws {
        func out(_ kind: any LayerKind, _ x: TensorType) throws -> TensorType { try KindCheck(kind: kind, name: "r").infer([x])[0] }
        XCTAssertEqual(try out(ZeroPadding1DKind(before: 2, after: 1), t32(.n, k(5), k(3))), t32(.n, k(8), k(3)))
        XCTAssertEqual(try out(ZeroPadding1DKind(before: 0, after: 3, channelsFirst: true), t32(.n, k(5), k(3))), t32(.n, k(5), k(6)))
        XCTAssertEqual(try out(UpSampling1DKind(size: 3), t32(.n, k(5), k(2))), t32(.n, k(15), k(2)))
        XCTAssertEqual(try out(UpSampling1DKind(size: 2), t32(.n, .t, k(2))), t32(.n, .steps(2), k(2)))
        XCTAssertEqual(try out(RepeatVectorKind(n: 4), t32(.n, k(3))), t32(.n, k(4), k(3)))
        XCTAssertEqual(try out(PermuteKind(dims: [2, 1]), t32(.n, k(5), k(3))), t32(.n, k(3), k(5)))
        XCTAssertEqual(try out(PermuteKind(dims: [3, 1, 2]), t32(.n, k(5), k(3), k(2))), t32(.n, k(2), k(5), k(3)))
        XCTAssertEqual(try out(SpatialDropout1DKind(rate: 0.5), t32(.n, .t, k(3))), t32(.n, .t, k(3)))
        KindCheck(kind: ZeroPadding1DKind(before: 1, after: 1), name: "r").refuses([t32(.n, .t, k(3))], ["ZeroPadding1D 'r'", "free (None)"])
        KindCheck(kind: RepeatVectorKind(n: 2), name: "r").refuses([t32(.n, k(4), k(3))], ["RepeatVector 'r'", "(batch, features)", "(None, 4, 3)"])
        KindCheck(kind: PermuteKind(dims: [2, 1]), name: "r").refuses([t32(.n, k(4), k(3), k(2))], ["Permute 'r'", "[2, 1]", "(None, 4, 3, 2)", "3 after the batch"])
        KindCheck(kind: PermuteKind(dims: [2, 2]), name: "r").refuses([t32(.n, k(4), k(3))], ["Permute 'r'", "not a permutation"])
        KindCheck(kind: UpSampling1DKind(size: 2), name: "r").refuses([t32(.n, k(4))], ["UpSampling1D 'r'", "(None, 4)"])
        KindCheck(kind: SpatialDropout1DKind(rate: 0.5), name: "r").refuses([t32(.n, k(4))], ["SpatialDropout1D 'r'", "(None, 4)"])
    }

    /// Keras 3: only GlobalAveragePooling1D reads the mask (and gives none on) and SpatialDropout1D
    /// passes it on; the others (no compute_mask) drop it.
    func testMasks() throws {
        var g = Graph(name: "m")
        let x = g.addInput("x", t32(.n, k(6), k(3)))
        let m = g.addInput("m", TensorType(.bool, [.n, k(6)]))
        var b = PrimBuilder(graph: g, layer: "L")
        let dropping: [any LayerKind] = [Conv1DKind(filters: 2, kernelSize: 2), Pooling1DKind(.max), Pooling1DKind(.avg),
                                         GlobalPooling1DKind(.max), GlobalPooling1DKind(.avg, keepDims: true), ZeroPadding1DKind(before: 1, after: 1),
                                         UpSampling1DKind(size: 2), PermuteKind(dims: [2, 1])]
        for kind in dropping {
            XCTAssertNil(try kind.outputMask(&b, inputs: [x], masks: [m], outputs: [x]), "\(kind.kerasClass) passed a mask on")
        }
        XCTAssertEqual(try SpatialDropout1DKind(rate: 0.2).outputMask(&b, inputs: [x], masks: [m], outputs: [x]), m)
        XCTAssertNotNil(GlobalPooling1DKind(.avg).consumingMask())
        // One that already takes a mask (the importer gave it, mask=) takes no second one.
        XCTAssertNil(GlobalPooling1DKind(.avg).consumingMask()!.consumingMask())
        for kind in dropping where !(kind is GlobalPooling1DKind && (kind as! GlobalPooling1DKind).pool == .avg) {
            XCTAssertNil(kind.consumingMask() as (any LayerKind)?, "\(kind.kerasClass) reads the mask")
        }
    }

    /// The mean of the real steps: sum of unmasked steps / their count, per row and channel.
    func testMaskedGlobalAverageValues() throws {
        for channelsFirst in [false, true] {
            let kind = GlobalPooling1DKind(.avg, channelsFirst: channelsFirst).consumingMask()!
            let xt = channelsFirst ? t32(.n, k(2), k(4)) : t32(.n, k(4), k(2))
            let (g, y) = try lowered(kind, [xt, TensorType(.bool, [.n, k(4)])])
            var rng = RNG(3)
            let xl = rng.uniforms(16)   // (2 rows, 4 steps, 2 channels)
            let mask: [Double] = [1, 0, 1, 1, 0, 1, 0, 0]
            let x = channelsFirst ? swapLast(xl, n: 2, a: 4, b: 2) : xl
            let got = try Interpreter.run(g, inputs: [x, mask], n: 2)[y]!
            var want: [Double] = []
            for r in 0..<2 {
                for c in 0..<2 {
                    let steps = (0..<4).filter { mask[r * 4 + $0] == 1 }
                    want.append(steps.map { xl[(r * 4 + $0) * 2 + c] }.reduce(0, +) / Double(steps.count))
                }
            }
            assertClose(got, want, rtol: 1e-12, atol: 1e-12, "masked GlobalAveragePooling1D channelsFirst=\(channelsFirst)")
        }
    }

    /// The lowered Conv1D against loops over Keras' definition, for each padding and format.
    func testConv1DValues() throws {
        var rng = RNG(21)
        let (n, t, c, f) = (2, 9, 3, 2)
        let configs: [(Int, Int, Conv1DPadding, Int, Bool)] = [
            (3, 1, .valid, 1, false), (3, 2, .valid, 1, true), (4, 3, .same, 1, false), (2, 1, .same, 1, true),
            (3, 1, .causal, 1, false), (3, 2, .causal, 1, true), (3, 1, .causal, 2, false), (2, 1, .same, 3, true),
            (3, 1, .valid, 2, false), (4, 1, .same, 2, false),
        ]
        for (ks, s, pad, d, cf) in configs {
            let kind = Conv1DKind(filters: f, kernelSize: ks, strides: s, padding: pad, dilation: d, channelsFirst: cf)
            let span = (ks - 1) * d + 1
            let out: Int, before: Int
            switch pad {
            case .valid: out = (t - span) / s + 1; before = 0
            case .same: out = (t + s - 1) / s; before = max((out - 1) * s + span - t, 0) / 2
            case .causal: out = (t - 1) / s + 1; before = span - 1
            }
            let xt = cf ? t32(.n, k(c), k(t)) : t32(.n, k(t), k(c))
            let (g, y) = try lowered(kind, [xt, t32(k(ks), k(c), k(f)), t32(k(f))], params: 2)
            let x = rng.uniforms(n * t * c), w = rng.uniforms(ks * c * f), bias = rng.uniforms(f)
            let got = try Interpreter.run(g, inputs: [cf ? swapLast(x, n: n, a: t, b: c) : x], params: [w, bias], n: n)[y]!
            let want = naiveConv1D(x, n: n, t: t, c: c, w, k: ks, f: f, bias, stride: s, dilation: d, before: before, out: out)
            assertClose(got, cf ? swapLast(want, n: n, a: out, b: f) : want, rtol: 1e-12, atol: 1e-12, "\(kind)")
        }
    }

    /// Max pooling's gradient goes to a window's first maximal step, global max's is shared
    /// equally among the tied steps: Keras' JAX backend (max_pool's select-and-scatter, max's
    /// tie rule), which a text CNN meets at every run of padding tokens.
    func testMaxTiesAsKeras() throws {
        func gradient(_ kind: any LayerKind, _ x: [Double], _ weights: [Double]) throws -> ([Double], [Double]) {
            var g = Graph(name: "ties")
            let xv = g.addInput("x", t32(.n, k(6), k(1)))
            var b = PrimBuilder(graph: g, layer: "L")
            var ctx = LoweringContext()
            let y = try kind.lower(&b, [xv], &ctx)[0]
            let wc = b.graph.addInput("w", b.type(y))
            let loss = try b.reduce(.sum, try b.mul(y, wc), axes: Array(0..<b.type(y).rank))
            let dx = try differentiate(&b, loss: loss, wrt: [xv])[0]!
            let r = try Interpreter.run(b.graph, inputs: [x, weights], n: 1)
            return (r[y]!, r[dx]!)
        }
        // MaxPooling1D(3, strides 2, 'same') on 6 steps: windows {0,1,2}, {2,3,4}, {4,5,pad}.
        let pool = Pooling1DKind(.max, poolSize: 3, strides: 2, padding: .same)
        var (y, dx) = try gradient(pool, [1, 1, 0, 2, 2, 2], [1, 10, 100])
        XCTAssertEqual(y, [1, 2, 2]); XCTAssertEqual(dx, [1, 0, 0, 10, 100, 0])
        (y, dx) = try gradient(pool, [3, 1, 3, 2, 2, 2], [1, 10, 100])
        XCTAssertEqual(y, [3, 3, 2]); XCTAssertEqual(dx, [1, 0, 10, 0, 100, 0])
        // GlobalMaxPooling1D: three tied steps get a third each.
        (y, dx) = try gradient(GlobalPooling1DKind(.max), [1, 1, 0, 2, 2, 2], [3])
        XCTAssertEqual(y, [2]); assertClose(dx, [0, 0, 0, 1, 1, 1], rtol: 1e-12, atol: 1e-12, "global max ties")
        (y, dx) = try gradient(GlobalPooling1DKind(.max, keepDims: true), [1, 5, 0, 2, 2, 2], [3])
        XCTAssertEqual(y, [5]); XCTAssertEqual(dx, [0, 3, 0, 0, 0, 0])
    }

    /// Every lowered layer's gradient against finite differences.
    func testGradients() throws {
        var rng = RNG(31)
        func check(_ name: String, _ kind: any LayerKind, _ operands: [Operand]) throws {
            try checkGradient(name, operands) { b, v in
                var ctx = LoweringContext()
                return try kind.lower(&b, v, &ctx)[0]
            }
        }
        let convs: [Conv1DKind] = [
            Conv1DKind(filters: 2, kernelSize: 3, activation: .tanh), Conv1DKind(filters: 2, kernelSize: 2, strides: 2, padding: .same),
            Conv1DKind(filters: 3, kernelSize: 3, padding: .causal, dilation: 2, activation: .sigmoid),
            Conv1DKind(filters: 2, kernelSize: 2, padding: .same, dilation: 3, useBias: false, channelsFirst: true),
            Conv1DKind(filters: 2, kernelSize: 3, strides: 2, padding: .causal, channelsFirst: true),
        ]
        for (i, kind) in convs.enumerated() {
            let x = Operand.input(kind.channelsFirst ? t32(.n, k(2), k(7)) : t32(.n, k(7), k(2)), rng.uniforms(28))
            let w = Operand.param([kind.kernelSize, 2, kind.filters], rng.uniforms(kind.kernelSize * 2 * kind.filters))
            try check("conv1d_\(i)", kind, [x, w] + (kind.useBias ? [.param([kind.filters], rng.uniforms(kind.filters))] : []))
        }
        let seqX = { (rng: inout RNG) in Operand.input(t32(.n, k(7), k(3)), rng.uniforms(42)) }
        let pools: [any LayerKind] = [
            Pooling1DKind(.max), Pooling1DKind(.max, poolSize: 3, strides: 2, padding: .same), Pooling1DKind(.max, poolSize: 3, strides: 1, padding: .same),
            Pooling1DKind(.avg, poolSize: 3, strides: 2, padding: .same), Pooling1DKind(.avg, poolSize: 2, strides: 1),
            Pooling1DKind(.max, poolSize: 2, strides: 3, channelsFirst: true),
            GlobalPooling1DKind(.max), GlobalPooling1DKind(.avg, keepDims: true), GlobalPooling1DKind(.max, channelsFirst: true),
            ZeroPadding1DKind(before: 2, after: 1), ZeroPadding1DKind(before: 0, after: 2, channelsFirst: true),
            UpSampling1DKind(size: 3), PermuteKind(dims: [2, 1]),
        ]
        for (i, kind) in pools.enumerated() { try check("seq1d_\(i)_\(kind.kerasClass)", kind, [seqX(&rng)]) }
        try check("repeat_vector", RepeatVectorKind(n: 3), [.input(t32(.n, k(4)), rng.uniforms(8))])
        let mask = Operand.input(TensorType(.bool, [.n, k(7)]), [1, 1, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1], differentiable: false)
        try check("global_avg_masked", GlobalPooling1DKind(.avg).consumingMask()!, [seqX(&rng), mask])
        try check("spatial_dropout_training", SpatialDropout1DKind(rate: 0.5), [seqX(&rng)])
    }

    /// SpatialDropout1D's training form: per row and channel one keep-or-drop for all steps,
    /// kept with probability 1 - rate and scaled by 1 / (1 - rate); predict takes the input.
    func testSpatialDropoutStatistics() throws {
        let (rows, steps, channels) = (200, 5, 16)
        for rate in [Float(0.25), 0.6] {
            let (g, y) = try lowered(SpatialDropout1DKind(rate: rate), [t32(.n, k(steps), k(channels))])
            XCTAssertEqual(g.inferenceForms[y], g.inputs[0], "predict must take the input as it is")
            var kept = 0
            for seed in [UInt64(11), 12] {
                let out = try Interpreter.run(g, inputs: [[Double](repeating: 1, count: rows * steps * channels)], n: rows,
                                              stepSeed: Random.stepSeed(seed: seed, iteration: 1))[y]!
                let scale = Double(1 / (1 - rate))
                for r in 0..<rows {
                    for c in 0..<channels {
                        let v = (0..<steps).map { out[(r * steps + $0) * channels + c] }
                        XCTAssertTrue(v.allSatisfy { $0 == v[0] }, "row \(r) channel \(c): steps differ \(v)")
                        XCTAssertTrue(v[0] == 0 || Swift.abs(v[0] - scale) < 1e-6, "row \(r) channel \(c): \(v[0])")
                        if v[0] != 0 { kept += 1 }
                    }
                }
            }
            // 6400 channel draws: the kept fraction's standard deviation is below 0.0062.
            let fraction = Double(kept) / Double(2 * rows * channels)
            XCTAssertEqual(fraction, Double(1 - rate), accuracy: 0.03, "rate \(rate)")
        }
        // Rate 0 is the identity in training too (as Keras, which draws nothing).
        let (g0, y0) = try lowered(SpatialDropout1DKind(rate: 0), [t32(.n, k(3), k(2))])
        XCTAssertEqual(y0, g0.inputs[0])
        // Two draws of one program differ (each layer its own salt).
        var g = Graph(name: "two")
        let x = g.addInput("x", t32(.n, k(3), k(8)))
        var b = PrimBuilder(graph: g, layer: "L")
        var ctx = LoweringContext()
        let a = try SpatialDropout1DKind(rate: 0.5).lower(&b, [x], &ctx)[0]
        let c = try SpatialDropout1DKind(rate: 0.5).lower(&b, [x], &ctx)[0]
        let r = try Interpreter.run(b.graph, inputs: [[Double](repeating: 1, count: 4 * 24)], n: 4, stepSeed: 99)
        XCTAssertNotEqual(r[a]!, r[c]!)
    }
}
