// LayerNormalization, Attention, AdditiveAttention and MultiHeadAttention: configs, shape
// rules, masks, forward values against plain loops, and gradients of the lowered layers
// (their Keras-made cases in Tests/cases check predict and fit end to end).

import XCTest
import KilnIR
import KilnLayers
import KilnPasses
import KilnReference
import KilnSupport

private func f32(_ dims: Dim...) -> TensorType { .f32(dims) }
private func fx(_ k: Int) -> Dim { .fixed(k) }
private func mask(_ dims: Dim...) -> TensorType { TensorType(.bool, dims) }

/// The lowered kind on operands (data, weights, masks), as the gradient check builds it.
private func lowered(_ kind: any LayerKind) -> (inout PrimBuilder, [Value]) throws -> Value {
    { b, v in
        var ctx = LoweringContext()
        return try kind.lower(&b, v, &ctx)[0]
    }
}

/// Runs the lowered kind forward through the float64 interpreter.
private func forward(_ kind: any LayerKind, n: Int, _ operands: [Operand]) throws -> [Double] {
    var g = Graph(name: "fwd")
    var vals: [Value] = []
    for (k, o) in operands.enumerated() {
        vals.append(o.isParam ? g.addParam("p\(k)", o.type, initial: [Float](repeating: 0, count: o.type.staticCount)) : g.addInput("x\(k)", o.type))
    }
    var b = PrimBuilder(graph: g, layer: "L")
    let y = try lowered(kind)(&b, vals)
    b.graph.outputs = [y]; b.graph.outputNames = ["y"]
    let ins = operands.filter { !$0.isParam }.map(\.values), ps = operands.filter(\.isParam).map(\.values)
    return try Interpreter.run(b.graph, inputs: ins, params: ps, n: n)[y]!
}

private func softmax(_ x: [Double]) -> [Double] {
    let m = x.max()!
    let e = x.map { Foundation.exp($0 - m) }
    let s = e.reduce(0, +)
    return e.map { $0 / s }
}

final class LayersAttentionTests: XCTestCase {
    // MARK: LayerNormalization

    func testLayerNormalizationShapes() throws {
        let k = KindCheck(kind: LayerNormalizationKind(), name: "ln")
        XCTAssertEqual(try k.infer([f32(.n, .t, fx(4))]), [f32(.n, .t, fx(4))])
        XCTAssertEqual(try LayerNormalizationKind(axes: [-2, -1]).weights(for: [f32(.n, fx(5), fx(4))]).map(\.shape), [[5, 4], [5, 4]])
        XCTAssertEqual(try LayerNormalizationKind(axes: [1], center: false).weights(for: [f32(.n, fx(6), fx(3))]).map(\.name), ["gamma"])
        XCTAssertEqual(try LayerNormalizationKind(rmsScaling: true).weights(for: [f32(.n, fx(3))]).map(\.name), ["gamma"])
        XCTAssertEqual(try LayerNormalizationKind(scale: false).weights(for: [f32(.n, fx(3))]).map(\.name), ["beta"])
        KindCheck(kind: LayerNormalizationKind(axes: [3]), name: "ln").refuses([f32(.n, fx(5), fx(4))], ["LayerNormalization 'ln'", "axis 3", "(None, 5, 4)"])
        KindCheck(kind: LayerNormalizationKind(axes: [1]), name: "ln").refuses([f32(.n, .t, fx(4))], ["axis 1", "(None, None, 4)", "free"])
    }

    func testLayerNormalizationConfig() throws {
        let k = try kerasKind("LayerNormalization", #"{"axis": [-1], "epsilon": 1e-6, "center": true, "scale": false}"#) as? LayerNormalizationKind
        XCTAssertEqual(k, LayerNormalizationKind(axes: [-1], epsilon: 1e-6, scale: false))
        XCTAssertEqual((try kerasKind("LayerNormalization", #"{"axis": 2}"#) as? LayerNormalizationKind)?.axes, [2])
        XCTAssertEqual((try kerasKind("LayerNormalization", #"{"axis": [-1, -2]}"#) as? LayerNormalizationKind)?.axes, [-2, -1])
        refusesConfig("LayerNormalization", #"{"axis": 0}"#, ["layer 'L' (LayerNormalization)", "axis 0", "batch"])
        refusesConfig("LayerNormalization", #"{"axis": -1, "epsilon": 0}"#, ["epsilon"])
        for k in [LayerNormalizationKind(axes: [-2, -1], epsilon: 1e-5, center: false), LayerNormalizationKind(rmsScaling: true)] {
            let json = JSON.object([("name", .string("L"))] + k.kerasConfig())
            let back = try LayerNormalizationKind(keras: KerasConfig(name: "L", className: k.kerasClass, json: json, file: ""))
            XCTAssertEqual(back, k)
        }
    }

    func testLayerNormalizationValues() throws {
        // Each row normalised over its 4 features, then gamma and beta.
        var rng = RNG(3)
        let x = rng.uniforms(8, -2, 2), gamma = [1.5, -0.5, 2, 1], beta = [0.1, 0.2, -0.3, 0]
        let y = try forward(LayerNormalizationKind(epsilon: 1e-3), n: 2, [.input(f32(.n, fx(4)), x), .param([4], gamma), .param([4], beta)])
        for r in 0..<2 {
            let row = Array(x[(r * 4)..<(r * 4 + 4)])
            let mean = row.reduce(0, +) / 4
            let v = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 4
            for j in 0..<4 { XCTAssertEqual(y[r * 4 + j], (row[j] - mean) / (v + 1e-3).squareRoot() * gamma[j] + beta[j], accuracy: 1e-9) }
        }
    }

    func testLayerNormalizationGradients() throws {
        var rng = RNG(11)
        try checkGradient("layer_norm_last", [.input(f32(.n, fx(3), fx(4)), rng.uniforms(24, -2, 2)), .param([4], rng.signed(4)), .param([4], rng.uniforms(4))],
                          lowered(LayerNormalizationKind()))
        try checkGradient("layer_norm_axes", [.input(f32(.n, fx(3), fx(4)), rng.uniforms(24, -2, 2)), .param([3, 4], rng.signed(12))],
                          lowered(LayerNormalizationKind(axes: [1, 2], center: false)))
        try checkGradient("layer_norm_rms", [.input(f32(.n, fx(5)), rng.uniforms(10, -2, 2)), .param([5], rng.signed(5))],
                          lowered(LayerNormalizationKind(rmsScaling: true)))
    }

    // MARK: Attention, AdditiveAttention

    func testAttentionShapesAndConfig() throws {
        let q = f32(.n, fx(4), fx(3)), v = f32(.n, fx(6), fx(5)), k = f32(.n, fx(6), fx(3))
        XCTAssertEqual(try KindCheck(kind: AttentionKind(useScale: true)).infer([q, v, k]), [f32(.n, fx(4), fx(5))])
        XCTAssertEqual(try AttentionKind(useScale: true, concat: true).weights(for: [q, k]).map(\.name), ["scale", "concat_score_weight"])
        XCTAssertEqual(try AttentionKind(additive: true).weights(for: [q, k]).map(\.shape), [[3]])
        KindCheck(kind: AttentionKind(), name: "att").refuses([q, v], ["Attention 'att'", "query (None, 4, 3)", "key (None, 6, 5)", "feature sizes"])
        KindCheck(kind: AttentionKind(), name: "att").refuses([f32(.n, .t, fx(3)), k], ["Attention 'att'", "(None, None, 3)", "free"])
        KindCheck(kind: AttentionKind(), name: "att").refuses([q, f32(.n, fx(5), fx(3)), k], ["different numbers of steps"])

        let a = try kerasKind("Attention", #"{"use_scale": true, "score_mode": "concat", "dropout": 0.0, "__inbound_nodes__": [{"args": [], "kwargs": {"use_causal_mask": true}}]}"#) as? AttentionKind
        XCTAssertEqual(a, AttentionKind(useScale: true, concat: true, causal: true))
        let add = try kerasKind("AdditiveAttention", #"{"dropout": 0.0}"#)
        XCTAssertEqual(add as? AttentionKind, AttentionKind(additive: true))
        XCTAssertEqual(add.kerasClass, "AdditiveAttention")
        refusesConfig("Attention", #"{"score_mode": "general"}"#, ["layer 'L' (Attention)", "score_mode 'general'"])
        refusesConfig("Attention", #"{"__inbound_nodes__": [{"kwargs": {"use_causal_mask": true}}, {"kwargs": {}}]}"#, ["use_causal_mask", "some calls"])
        for k in [AttentionKind(useScale: true, concat: true), AttentionKind(additive: true, useScale: false)] {
            let json = JSON.object([("name", .string("L"))] + k.kerasConfig())
            XCTAssertEqual(try AttentionKind(keras: KerasConfig(name: "L", className: k.kerasClass, json: json, file: "")), k)
        }
    }

    func testAttentionMasksAsKerasTakesThem() throws {
        let kind = AttentionKind()
        // The query's and the value's masks; a key's mask is not read.
        let both = try XCTUnwrap(kind.consumingMasks([true, true, true]))
        XCTAssertEqual(both.inputs, [0, 1])
        let onlyValue = try XCTUnwrap(kind.consumingMasks([false, true]))
        XCTAssertEqual(onlyValue.inputs, [1])
        XCTAssertEqual((onlyValue.kind as? AttentionKind)?.valueMasked, true)
        XCTAssertEqual((onlyValue.kind as? AttentionKind)?.queryMasked, false)
        XCTAssertNil(kind.consumingMasks([false, false, true]))
        // A layer that has its masks already (given in the call) takes no others.
        XCTAssertNil((both.kind as! AttentionKind).consumingMasks([true, true]))
        let q = f32(.n, fx(2), fx(3)), v = f32(.n, fx(4), fx(3))
        XCTAssertEqual(try KindCheck(kind: both.kind).infer([q, v, mask(.n, fx(2)), mask(.n, fx(4))]), [f32(.n, fx(2), fx(3))])
        KindCheck(kind: both.kind, name: "att").refuses([q, v, mask(.n, fx(2)), mask(.n, fx(3))], ["value mask", "(None, 4, 3)"])
    }

    /// Attention's forward values with value mask, query mask and causal mask against plain loops.
    func testAttentionValues() throws {
        var rng = RNG(5)
        let (n, tq, tv, d) = (2, 3, 4, 2)
        let q = rng.uniforms(n * tq * d), v = rng.uniforms(n * tv * d)
        let qm: [Double] = [1, 0, 1, 1, 1, 1], vm: [Double] = [1, 1, 0, 1, 0, 1, 1, 1]
        var kind = AttentionKind(useScale: true, causal: true)
        kind.queryMasked = true; kind.valueMasked = true
        let scale = 0.7
        let y = try forward(kind, n: n, [.input(f32(.n, fx(tq), fx(d)), q), .input(f32(.n, fx(tv), fx(d)), v), .param([], [scale]),
                                         .input(mask(.n, fx(tq)), qm, differentiable: false), .input(mask(.n, fx(tv)), vm, differentiable: false)])
        for r in 0..<n {
            for i in 0..<tq {
                var s = [Double](repeating: 0, count: tv)
                for j in 0..<tv {
                    for c in 0..<d { s[j] += q[(r * tq + i) * d + c] * v[(r * tv + j) * d + c] }
                    s[j] *= scale
                    if vm[r * tv + j] == 0 || j > i { s[j] -= 1e9 }
                }
                let w = softmax(s)
                for c in 0..<d {
                    var want = 0.0
                    for j in 0..<tv { want += w[j] * v[(r * tv + j) * d + c] }
                    if qm[r * tq + i] == 0 { want = 0 }
                    XCTAssertEqual(y[(r * tq + i) * d + c], want, accuracy: 1e-9, "row \(r) step \(i) feature \(c)")
                }
            }
        }
    }

    func testAttentionGradients() throws {
        var rng = RNG(17)
        let q = f32(.n, fx(3), fx(2)), v = f32(.n, fx(4), fx(2)), k = f32(.n, fx(4), fx(2))
        try checkGradient("attention_dot", [.input(q, rng.uniforms(12)), .input(v, rng.uniforms(16)), .param([], [0.8])],
                          lowered(AttentionKind(useScale: true)))
        try checkGradient("attention_concat_key", [.input(q, rng.uniforms(12)), .input(v, rng.uniforms(16)), .input(k, rng.uniforms(16)),
                                                   .param([], [0.9]), .param([], [1.2])],
                          lowered(AttentionKind(useScale: true, concat: true)))
        var masked = AttentionKind(additive: true, causal: true)
        masked.queryMasked = true; masked.valueMasked = true
        try checkGradient("additive_attention_masked", [.input(q, rng.uniforms(12)), .input(v, rng.uniforms(16)), .param([2], rng.signed(2)),
                                                        .input(mask(.n, fx(3)), [1, 1, 0, 1, 0, 1], differentiable: false),
                                                        .input(mask(.n, fx(4)), [1, 0, 1, 1, 1, 1, 1, 0], differentiable: false)],
                          lowered(masked))
    }

    /// Add's mask as Keras 3's Merge.compute_mask makes it (the masked Transformer cases need it):
    /// none when an input has none, else the logical or.
    func testAddMaskAsKeras() throws {
        var g = Graph(name: "add_mask")
        let x = g.addInput("x", f32(.n, fx(3), fx(2))), m1 = g.addInput("m1", mask(.n, fx(3))), m2 = g.addInput("m2", mask(.n, fx(3)))
        var b = PrimBuilder(graph: g, layer: "add")
        XCTAssertNil(try AddKind().outputMask(&b, inputs: [x, x], masks: [m1, nil], outputs: [x]))
        let m = try XCTUnwrap(try AddKind().outputMask(&b, inputs: [x, x], masks: [m1, m2], outputs: [x]))
        b.graph.outputs = [m]; b.graph.outputNames = ["m"]
        let y = try Interpreter.run(b.graph, inputs: [[Double](repeating: 0, count: 6), [1, 0, 0], [0, 1, 0]], params: [], n: 1)[m]!
        XCTAssertEqual(y, [1, 1, 0])
    }

    // MARK: MultiHeadAttention

    func testMultiHeadAttentionShapesAndConfig() throws {
        let kind = MultiHeadAttentionKind(heads: 2, keyDim: 3, valueDim: 4)
        let q = f32(.n, fx(5), fx(6)), v = f32(.n, fx(7), fx(2)), k = f32(.n, fx(7), fx(3))
        XCTAssertEqual(try kind.weights(for: [q, v, k]).map(\.name),
                       ["query/kernel", "query/bias", "key/kernel", "key/bias", "value/kernel", "value/bias", "attention_output/kernel", "attention_output/bias"])
        XCTAssertEqual(try kind.weights(for: [q, v, k]).map(\.shape), [[6, 2, 3], [2, 3], [3, 2, 3], [2, 3], [2, 2, 4], [2, 4], [2, 4, 6], [6]])
        XCTAssertEqual(try MultiHeadAttentionKind(heads: 2, keyDim: 3, useBias: false).weights(for: [q, v]).map(\.shape), [[6, 2, 3], [2, 2, 3], [2, 2, 3], [2, 3, 6]])
        XCTAssertEqual(try KindCheck(kind: kind).infer([q, v, k]), [q])
        KindCheck(kind: kind, name: "mha").refuses([q, v, f32(.n, fx(6), fx(3))], ["MultiHeadAttention 'mha'", "different numbers of steps"])
        KindCheck(kind: kind, name: "mha").refuses([f32(.n, .t, fx(6)), v], ["MultiHeadAttention 'mha'", "free"])
        KindCheck(kind: kind, name: "mha").refuses([f32(.n, fx(6)), v], ["query", "(None, 6)"])

        let c = try kerasKind("MultiHeadAttention", #"{"num_heads": 4, "key_dim": 2, "value_dim": null, "dropout": 0.0, "use_bias": false, "output_shape": null, "attention_axes": null, "__inbound_nodes__": [{"kwargs": {"use_causal_mask": true}}]}"#)
        XCTAssertEqual(c as? MultiHeadAttentionKind, MultiHeadAttentionKind(heads: 4, keyDim: 2, useBias: false, causal: true))
        refusesConfig("MultiHeadAttention", #"{"num_heads": 2, "key_dim": 2, "output_shape": [3]}"#, ["(MultiHeadAttention)", "output_shape"])
        refusesConfig("MultiHeadAttention", #"{"num_heads": 2, "key_dim": 2, "attention_axes": [1, 2]}"#, ["attention_axes"])
        refusesConfig("MultiHeadAttention", #"{"num_heads": 2, "key_dim": 2, "dropout": 0.1}"#, ["dropout"])
        refusesConfig("MultiHeadAttention", #"{"num_heads": 2, "key_dim": 2, "use_gate": true}"#, ["use_gate"])
        refusesConfig("MultiHeadAttention", #"{"num_heads": 0, "key_dim": 2}"#, ["num_heads"])
        refusesConfig("MultiHeadAttention", #"{"num_heads": 1, "key_dim": 2, "__inbound_nodes__": [{"kwargs": {"return_attention_scores": true}}]}"#,
                      ["(MultiHeadAttention)", "return_attention_scores=True"])
        refusesConfig("Attention", #"{"__inbound_nodes__": [{"kwargs": {"return_attention_scores": true}}]}"#, ["(Attention)", "return_attention_scores"])
        let k2 = MultiHeadAttentionKind(heads: 3, keyDim: 2, valueDim: 5, useBias: false)
        let json = JSON.object([("name", .string("L"))] + k2.kerasConfig())
        XCTAssertEqual(try MultiHeadAttentionKind(keras: KerasConfig(name: "L", className: "MultiHeadAttention", json: json, file: "")), k2)
        // Implicit masks: the query's, the value's and the key's.
        XCTAssertEqual(MultiHeadAttentionKind(heads: 1, keyDim: 1).consumingMasks([true, false, true])?.inputs, [0, 2])
        // Keras removes its inputs' masks for the layers after it.
        XCTAssertTrue(kind.clearsInputMasks)
        XCTAssertFalse(AttentionKind().clearsInputMasks)
    }

    /// attention_mask, a keyword tensor of the call: the last data input.
    func testMultiHeadAttentionAttentionMask() throws {
        XCTAssertEqual(MultiHeadAttentionKind.tensorKeywords, ["attention_mask"])
        let c = try kerasKind("MultiHeadAttention", #"{"num_heads": 2, "key_dim": 2, "__inbound_nodes__": [{"args": [], "kwargs": {"attention_mask": {"class_name": "__keras_tensor__"}}}]}"#)
        let kind = try XCTUnwrap(c as? MultiHeadAttentionKind)
        XCTAssertTrue(kind.attentionMasked)
        XCTAssertEqual(kind.arity, 3...4)
        let q = f32(.n, fx(4), fx(3)), v = f32(.n, fx(5), fx(3))
        XCTAssertEqual(try kind.weights(for: [q, v, f32(.n, fx(4), fx(5))]).map(\.shape), [[3, 2, 2], [2, 2], [3, 2, 2], [2, 2], [3, 2, 2], [2, 2], [2, 2, 3], [3]])
        XCTAssertEqual(try KindCheck(kind: kind).infer([q, v, f32(.n, fx(4), fx(5))]), [q])
        XCTAssertEqual(try KindCheck(kind: kind).infer([q, v, TensorType(.i32, [.n, fx(1), fx(5)])]), [q])
        KindCheck(kind: kind, name: "mha").refuses([q, v, f32(.n, fx(5), fx(4))], ["attention_mask (None, 5, 4)", "(batch, 4, 5)"])
        // The mask of the attention_mask tensor is not a key's mask.
        XCTAssertEqual(kind.consumingMasks([true, true, true])?.inputs, [0, 1])
        refusesConfig("MultiHeadAttention", #"{"num_heads": 2, "key_dim": 2, "__inbound_nodes__": [{"kwargs": {"attention_mask": {}}}, {"kwargs": {}}]}"#, ["attention_mask", "some calls"])
        // A query step that sees no key averages the values, as jax.nn.dot_product_attention does.
        var rng = RNG(31)
        let small = MultiHeadAttentionKind(heads: 1, keyDim: 1, attentionMasked: true)
        let x = rng.uniforms(3), ones: [Double] = [1], zero: [Double] = [0]
        let y = try forward(small, n: 1, [.input(f32(.n, fx(1), fx(1)), [x[0]]), .input(f32(.n, fx(2), fx(1)), [x[1], x[2]]),
                                          .input(f32(.n, fx(1), fx(2)), [0, 0], differentiable: false),
                                          .param([1, 1, 1], ones), .param([1, 1], zero), .param([1, 1, 1], ones), .param([1, 1], zero),
                                          .param([1, 1, 1], ones), .param([1, 1], zero), .param([1, 1, 1], ones), .param([1], zero)])
        XCTAssertEqual(y[0], (x[1] + x[2]) / 2, accuracy: 1e-12)
    }

    /// MultiHeadAttention's forward values (masks as jax.nn.dot_product_attention applies them:
    /// a masked query step's row averages all values) against plain loops.
    func testMultiHeadAttentionValues() throws {
        var rng = RNG(23)
        let (n, t, dm, h, e) = (2, 3, 2, 2, 2)
        var kind = MultiHeadAttentionKind(heads: h, keyDim: e, useBias: true)
        kind.queryMasked = true; kind.valueMasked = true
        let x = rng.uniforms(n * t * dm)
        let w = (0..<3).map { _ in (rng.uniforms(dm * h * e), rng.uniforms(h * e)) }
        let wo = rng.uniforms(h * e * dm), bo = rng.uniforms(dm)
        let m: [Double] = [1, 1, 0, 1, 0, 1]
        // 1/sqrt(key_dim) as the float32 Keras multiplies the logits by.
        let scale = Double(Float(1 / Double(e).squareRoot()))
        var ops: [Operand] = [.input(f32(.n, fx(t), fx(dm)), x), .input(f32(.n, fx(t), fx(dm)), x)]
        for (k, b) in w { ops += [.param([dm, h, e], k), .param([h, e], b)] }
        ops += [.param([h, e, dm], wo), .param([dm], bo), .input(mask(.n, fx(t)), m, differentiable: false), .input(mask(.n, fx(t)), m, differentiable: false)]
        let y = try forward(kind, n: n, ops)
        func proj(_ p: Int, _ r: Int, _ s: Int, _ hd: Int, _ c: Int) -> Double {
            (0..<dm).map { x[(r * t + s) * dm + $0] * w[p].0[($0 * h + hd) * e + c] }.reduce(0, +) + w[p].1[hd * e + c]
        }
        for r in 0..<n {
            for i in 0..<t {
                var att = [Double](repeating: 0, count: h * e)
                for hd in 0..<h {
                    var s = (0..<t).map { j in (0..<e).map { proj(0, r, i, hd, $0) * proj(1, r, j, hd, $0) }.reduce(0, +) * scale }
                    for j in 0..<t where m[r * t + i] == 0 || m[r * t + j] == 0 { s[j] = Double(Float(-0.7 * Double(Float.greatestFiniteMagnitude))) }
                    let p = softmax(s)
                    for c in 0..<e { att[hd * e + c] = (0..<t).map { p[$0] * proj(2, r, $0, hd, c) }.reduce(0, +) }
                }
                for o in 0..<dm {
                    let want = (0..<(h * e)).map { att[$0] * wo[$0 * dm + o] }.reduce(0, +) + bo[o]
                    XCTAssertEqual(y[(r * t + i) * dm + o], want, accuracy: 1e-9, "row \(r) step \(i) output \(o)")
                }
            }
        }
    }

    func testMultiHeadAttentionGradients() throws {
        var rng = RNG(29)
        var kind = MultiHeadAttentionKind(heads: 2, keyDim: 2, valueDim: 1, causal: true)
        kind.valueMasked = true
        let q = f32(.n, fx(2), fx(3)), v = f32(.n, fx(3), fx(2))
        let ops: [Operand] = [.input(q, rng.uniforms(12)), .input(v, rng.uniforms(12)),
                              .param([3, 2, 2], rng.uniforms(12)), .param([2, 2], rng.uniforms(4)),
                              .param([2, 2, 2], rng.uniforms(8)), .param([2, 2], rng.uniforms(4)),
                              .param([2, 2, 1], rng.uniforms(4)), .param([2, 1], rng.uniforms(2)),
                              .param([2, 1, 3], rng.uniforms(6)), .param([3], rng.uniforms(3)),
                              .input(mask(.n, fx(3)), [1, 0, 1, 1, 1, 0], differentiable: false)]
        try checkGradient("mha_causal_value_mask", ops, lowered(kind))
    }
}
