// Attention layers: Attention (Luong, dot-product or concat scores), AdditiveAttention
// (Bahdanau) and MultiHeadAttention, with the masks Keras 3 gives them.
//
// Query-key products are written as a broadcast product and a sum (the matmul primitive is
// rank 2 and cannot scale with the batch on both sides), so the numbers of time steps of
// query and value must be fixed.

import KilnIR
import KilnSupport

/// Keras reads `use_causal_mask` from the call, not the config: the importer keeps a
/// Functional layer's calls under this key of its config (KerasLayerSpec.inboundNodesKey).
let inboundNodesKey = "__inbound_nodes__"

/// A boolean keyword argument of a layer's calls (false when absent); refused when the calls
/// of a shared layer disagree.
func callFlag(_ c: KerasConfig, _ key: String) throws -> Bool {
    let nodes = c[inboundNodesKey]?.array ?? []
    let flags = nodes.map { $0["kwargs"]?[key]?.bool ?? false }
    guard Set(flags).count <= 1 else {
        throw c.fail("is called with \(key)=True in some calls and not in others; Kiln needs one setting per layer")
    }
    return flags.first ?? false
}

/// Whether the layer's calls pass a tensor for a keyword argument; refused when the calls of a
/// shared layer disagree.
func callHasTensor(_ c: KerasConfig, _ key: String) throws -> Bool {
    let nodes = c[inboundNodesKey]?.array ?? []
    let given = nodes.map { n -> Bool in
        guard let v = n["kwargs"]?[key] else { return false }
        return !v.isNull
    }
    guard Set(given).count <= 1 else {
        throw c.fail("is called with \(key) in some calls and without it in others; Kiln needs one setting per layer")
    }
    return given.first ?? false
}

/// return_attention_scores=True makes the call return the scores too, which Kiln does not.
func refuseScores(_ c: KerasConfig) throws {
    if try callFlag(c, "return_attention_scores") {
        throw c.fail("is called with return_attention_scores=True; Kiln returns the attention output only")
    }
}

/// Checks a (batch, steps, features) input of an attention layer with a fixed number of steps.
func attentionInput(_ t: TensorType, _ what: String, layer: String) throws {
    guard t.dtype == .f32, t.rank == 3, t.shape[0] == .n, t.shape[2].fixedValue != nil else {
        throw ShapeError(layer: layer, "expects its \(what) as a float sequence (batch, steps, features), got \(t.kerasDescription)")
    }
    guard t.shape[1].fixedValue != nil else {
        throw ShapeError(layer: layer, "cannot attend over \(what) \(t.kerasDescription): its time axis is free (None), and Kiln needs the number of steps to size the scores",
                         hint: "give the Input a fixed number of steps, e.g. Input((T, \(t.shape[2].factor)))")
    }
}

func checkMask(_ m: TensorType, for x: TensorType, _ what: String, layer: String) throws {
    guard m.dtype == .bool, m.shape == Array(x.shape.prefix(2)) else {
        throw ShapeError(layer: layer, "has a \(what) mask \(m) that does not fit its \(what) \(x.kerasDescription); expected bool (batch, steps)")
    }
}

extension PrimBuilder {
    /// softmax along one axis (max-shifted, as jax.nn.softmax).
    mutating func softmax(_ x: Value, axis: Int) throws -> Value {
        let m = try reduce(.max, x, axes: [axis], keepDims: true)
        let e = try unary(.exp, try sub(x, m))
        return try div(e, try reduce(.sum, e, axes: [axis], keepDims: true))
    }

    /// The causal mask (Tq, Tv): key step j is seen from query step i when i >= j.
    mutating func causalMask(_ tq: Int, _ tv: Int) throws -> Value {
        let rows = try reshape(try p(.iota(tq)), [.fixed(tq), .fixed(1)])
        let cols = try reshape(try p(.iota(tv)), [.fixed(1), .fixed(tv)])
        return try compare(.ge, rows, cols)
    }

    /// a and b (broadcasting); b alone when a is nil.
    mutating func and(_ a: Value?, _ b: Value) throws -> Value {
        guard let a else { return b }
        return try compare(.gt, try mul(try cast(a, .f32), try cast(b, .f32)), try const(0))
    }
}

// MARK: - Attention, AdditiveAttention

/// Attention([query, value]) or ([query, value, key]); key defaults to value. Scores (N, Tq, Tv):
/// Luong's dot product q·k (times the learned scalar `scale` with use_scale), or with
/// score_mode "concat" concat_score_weight * sum(tanh(scale * (q + k))); Bahdanau's
/// (AdditiveAttention) sum(scale * tanh(q + k)) with a learned scale per feature. Masked value
/// steps (and later steps with use_causal_mask) get score - 1e9; softmax over Tv; the weighted
/// sum of value; query steps that are masked give 0. The output carries the query's mask.
public struct AttentionKind: LayerKind {
    public static let kerasClasses = ["Attention", "AdditiveAttention"]
    /// Bahdanau's additive scores (AdditiveAttention).
    public var additive: Bool
    public var useScale: Bool
    /// score_mode "concat" (Attention only).
    public var concat: Bool
    public var dropout: Float
    /// The call's use_causal_mask.
    public var causal: Bool
    /// Whether the layer takes the query's / the value's mask as (one of) its last inputs.
    public var queryMasked = false
    public var valueMasked = false

    public init(additive: Bool = false, useScale: Bool? = nil, concat: Bool = false, dropout: Float = 0, causal: Bool = false) {
        self.additive = additive; self.useScale = useScale ?? additive; self.concat = concat && !additive
        self.dropout = dropout; self.causal = causal
    }

    public init(keras c: KerasConfig) throws {
        let additive = c.className == "AdditiveAttention"
        try refuseScores(c)
        let mode = additive ? "dot" : try c.choice("score_mode", ["dot", "concat"], "dot")
        let rate = try c.float("dropout", 0)
        guard rate >= 0 && rate < 1 else { throw c.fail("has dropout \(rate); expected 0 <= dropout < 1") }
        self.init(additive: additive, useScale: try c.bool("use_scale", additive), concat: mode == "concat", dropout: rate,
                  causal: try callFlag(c, "use_causal_mask"))
    }

    public var kerasClass: String { additive ? "AdditiveAttention" : "Attention" }
    public var arity: ClosedRange<Int> { 2...3 }

    public var description: String {
        var opts: [String] = []
        if !additive && concat { opts.append("concat") }
        if useScale { opts.append("scale") }
        if dropout > 0 { opts.append("dropout \(dropout)") }
        if causal { opts.append("causal") }
        if queryMasked { opts.append("query mask") }
        if valueMasked { opts.append("value mask") }
        return (additive ? "additive_attention" : "attention") + (opts.isEmpty ? "" : "<\(opts.joined(separator: ", "))>")
    }

    public func weights(for inputs: [TensorType]) throws -> [LayerWeight] {
        if additive {
            guard let q = inputs.first, let d = q.shape.last?.fixedValue else { return [] }
            return useScale ? [LayerWeight("scale", [d], .glorotUniform)] : []
        }
        return (useScale ? [LayerWeight("scale", [], .ones)] : []) + (concat ? [LayerWeight("concat_score_weight", [], .ones)] : [])
    }

    var weightCount: Int { additive ? (useScale ? 1 : 0) : (useScale ? 1 : 0) + (concat ? 1 : 0) }
    var maskCount: Int { (queryMasked ? 1 : 0) + (valueMasked ? 1 : 0) }

    /// Splits the inputs: data, weights, masks.
    func parts<T>(_ ins: [T], layer: String) throws -> (data: [T], weights: [T], masks: [T]) {
        let dataCount = ins.count - weightCount - maskCount
        guard (2...3).contains(dataCount) else {
            throw ShapeError(layer: layer, "takes [query, value] or [query, value, key], got \(max(dataCount, 0)) inputs")
        }
        return (Array(ins.prefix(dataCount)), Array(ins[dataCount..<(dataCount + weightCount)]), Array(ins.suffix(maskCount)))
    }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        let (data, weights, masks) = try parts(ins, layer: layer)
        let q = data[0], v = data[1], k = data.count > 2 ? data[2] : data[1]
        try attentionInput(q, "query", layer: layer)
        try attentionInput(v, "value", layer: layer)
        try attentionInput(k, "key", layer: layer)
        guard k.shape[1] == v.shape[1] else {
            throw ShapeError(layer: layer, "has key \(k.kerasDescription) and value \(v.kerasDescription) of different numbers of steps")
        }
        guard q.shape[2] == k.shape[2] else {
            throw ShapeError(layer: layer, "has query \(q.kerasDescription) and key \(k.kerasDescription) of different feature sizes; the scores need them equal")
        }
        for (w, spec) in zip(weights, try self.weights(for: data)) where w.shape != spec.shape.map({ .fixed($0) }) {
            throw ShapeError(layer: layer, "has weight '\(spec.name)' of shape \(w.kerasDescription); it needs \(formatShape(spec.shape))")
        }
        var m = masks.makeIterator()
        if queryMasked { try checkMask(m.next()!, for: q, "query", layer: layer) }
        if valueMasked { try checkMask(m.next()!, for: v, "value", layer: layer) }
        return [.f32([q.shape[0], q.shape[1], v.shape[2]])]
    }

    public func consumingMasks(_ present: [Bool]) -> (kind: any LayerKind, inputs: [Int])? {
        guard !queryMasked && !valueMasked else { return nil }
        var k = self, taken: [Int] = []
        if present.count > 0 && present[0] { k.queryMasked = true; taken.append(0) }
        // Keras reads mask[1], the value's; a key's mask is not used.
        if present.count > 1 && present[1] { k.valueMasked = true; taken.append(1) }
        return taken.isEmpty ? nil : (k, taken)
    }

    public func outputMask(_ b: inout PrimBuilder, inputs: [Value], masks: [Value?], outputs: [Value]) throws -> Value? {
        // Keras' compute_mask: the query's mask. Masks given in the call are this node's last inputs.
        if queryMasked, let p = try? parts(inputs, layer: b.layer), p.data.count + weightCount + maskCount == inputs.count,
           !p.masks.isEmpty, b.type(p.masks[0]).dtype == .bool, masks.count == p.data.count + maskCount {
            return p.masks[0]
        }
        return masks.first ?? nil
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let (data, weights, masks) = try parts(ins, layer: b.layer)
        let q = data[0], v = data[1], k = data.count > 2 ? data[2] : data[1]
        let qt = b.type(q), vt = b.type(v)
        let tq = qt.shape[1].factor, tv = vt.shape[1].factor, d = qt.shape[2].factor, dv = vt.shape[2].factor
        let q4 = try b.reshape(q, [.n, .fixed(tq), .fixed(1), .fixed(d)])
        let k4 = try b.reshape(k, [.n, .fixed(1), .fixed(tv), .fixed(d)])
        var scores: Value
        if additive {
            var t = try b.unary(.tanh, try b.add(q4, k4))
            if useScale { t = try b.mul(t, weights[0]) }
            scores = try b.reduce(.sum, t, axes: [3])
        } else if concat {
            var s = try b.add(q4, k4)
            if useScale { s = try b.mul(weights[0], s) }
            scores = try b.mul(weights[useScale ? 1 : 0], try b.reduce(.sum, try b.unary(.tanh, s), axes: [3]))
        } else {
            scores = try b.reduce(.sum, try b.mul(q4, k4), axes: [3])
            if useScale { scores = try b.mul(scores, weights[0]) }
        }
        // Value steps that may be seen: the value's mask (N, 1, Tv), and the causal mask (Tq, Tv).
        var m = masks.makeIterator()
        let qMask = queryMasked ? m.next()! : nil
        var seen: Value? = valueMasked ? try b.reshape(m.next()!, [.n, .fixed(1), .fixed(tv)]) : nil
        if causal { seen = try b.and(seen, try b.causalMask(tq, tv)) }
        if let s = seen { scores = try b.select(s, scores, try b.sub(scores, try b.const(1e9))) }
        var w = try b.softmax(scores, axis: 2)
        if dropout > 0 {
            let u = try b.p(.randomUniform(salt: ctx.nextSalt()), w)
            let keep = try b.cast(try b.compare(.ge, u, try b.const(dropout)), .f32)
            let dropped = try b.mul(try b.mul(w, keep), 1 / (1 - dropout))
            b.graph.inferenceForms[dropped] = w
            w = dropped
        }
        let w4 = try b.reshape(w, [.n, .fixed(tq), .fixed(tv), .fixed(1)])
        let v4 = try b.reshape(v, [.n, .fixed(1), .fixed(tv), .fixed(dv)])
        var out = try b.reduce(.sum, try b.mul(w4, v4), axes: [2])
        if let qm = qMask {
            out = try b.select(try b.reshape(qm, [.n, .fixed(tq), .fixed(1)]), out, try b.const(0))
        }
        return [out]
    }

    public func kerasConfig() -> [(String, JSON)] {
        if additive { return [("use_scale", .bool(useScale)), ("dropout", KerasJSON.float(dropout))] }
        return [("use_scale", .bool(useScale)), ("score_mode", .string(concat ? "concat" : "dot")),
                ("dropout", KerasJSON.float(dropout)), ("seed", .null)]
    }
}

/// Luong-style dot-product attention (Keras' `Attention`): called on [query, value] or
/// [query, value, key], it returns the value steps weighted by the softmax of the
/// query-key scores. Masks of the inputs (Embedding(mask_zero)) are applied as Keras 3 does.
///
///     let context = Attention(useScale: true)([query, value])
public final class Attention: Layer {
    /// - Parameters:
    ///   - useScale: whether the scores are multiplied by a learned scalar.
    ///   - scoreMode: "dot" (q·k) or "concat" (sum(tanh(q + k))).
    ///   - dropout: the rate at which training drops attention weights.
    ///   - name: the layer name (default `attention`, ...).
    public init(useScale: Bool = false, scoreMode: String = "dot", dropout: Float = 0, name: String? = nil) {
        precondition(["dot", "concat"].contains(scoreMode), "Attention: scoreMode must be \"dot\" or \"concat\"")
        super.init(kind: AttentionKind(useScale: useScale, concat: scoreMode == "concat", dropout: dropout), name: name)
    }
}

/// Bahdanau-style additive attention (Keras' `AdditiveAttention`): scores
/// sum(scale * tanh(q + k)) over the features.
///
///     let context = AdditiveAttention()([query, value])
public final class AdditiveAttention: Layer {
    /// - Parameters:
    ///   - useScale: whether the tanh terms are weighted by a learned vector (default true).
    ///   - dropout: the rate at which training drops attention weights.
    ///   - name: the layer name (default `additive_attention`, ...).
    public init(useScale: Bool = true, dropout: Float = 0, name: String? = nil) {
        super.init(kind: AttentionKind(additive: true, useScale: useScale, dropout: dropout), name: name)
    }
}

// MARK: - MultiHeadAttention

/// MultiHeadAttention(query, value[, key]) on (batch, steps, features) inputs: per head,
/// q = query·Wq + bq (num_heads, key_dim), likewise k and v (value_dim); scores
/// q·k / sqrt(key_dim) over the key steps; masked scores become -0.7 * float32.max (as
/// jax.nn.dot_product_attention, which Keras 3 calls); softmax; the weighted sum of v; the heads
/// projected back to the query's features by Wo + bo. The mask: the query's (N, Tq, 1), the
/// value's and the key's (N, 1, Tv), the causal one and the call's attention_mask (N, Tq, Tv),
/// combined by and. The output carries the query's mask, and (as in Keras 3) the inputs lose
/// theirs for the layers after it. Weights in Keras' order: query kernel (Dq, H, key_dim), bias (H, key_dim),
/// key kernel and bias, value kernel (Dv, H, value_dim) and bias, output kernel (H, value_dim,
/// Dq), bias (Dq).
public struct MultiHeadAttentionKind: LayerKind {
    public static let kerasClasses = ["MultiHeadAttention"]
    public var heads: Int
    public var keyDim: Int
    public var valueDim: Int
    public var useBias: Bool
    /// The call's use_causal_mask.
    public var causal: Bool
    /// Whether the call passes attention_mask (a (batch, Tq, Tv) tensor, nonzero where a query
    /// step may see a key step), taken as the last data input.
    public var attentionMasked: Bool
    public var queryMasked = false
    public var valueMasked = false
    public var keyMasked = false

    public static let tensorKeywords = ["attention_mask"]

    public init(heads: Int, keyDim: Int, valueDim: Int? = nil, useBias: Bool = true, causal: Bool = false, attentionMasked: Bool = false) {
        self.heads = heads; self.keyDim = keyDim; self.valueDim = valueDim ?? keyDim; self.useBias = useBias; self.causal = causal
        self.attentionMasked = attentionMasked
    }

    public init(keras c: KerasConfig) throws {
        try c.require("output_shape", .null, "output_shape None (the query's features)")
        try refuseScores(c)
        if let axes = c["attention_axes"], !axes.isNull, axes.ints != [1], axes.ints != [-2], axes.int != 1, axes.int != -2 {
            throw c.fail("uses attention_axes=\(axes.serialized); Kiln supports None (attention over the steps)")
        }
        try c.require("dropout", .number(0), "dropout 0")
        try c.require("use_gate", .bool(false))
        try c.require("sliding_window", .null, "sliding_window None")
        let keyDim = try c.positive("key_dim")
        self.init(heads: try c.positive("num_heads"), keyDim: keyDim, valueDim: c.isAbsent("value_dim") ? keyDim : try c.positive("value_dim"),
                  useBias: try c.bool("use_bias", true), causal: try callFlag(c, "use_causal_mask"),
                  attentionMasked: try callHasTensor(c, "attention_mask"))
    }

    public var arity: ClosedRange<Int> { attentionMasked ? 3...4 : 2...3 }

    public var description: String {
        var opts = ["heads \(heads)", "key_dim \(keyDim)"]
        if attentionMasked { opts.append("attention mask") }
        if valueDim != keyDim { opts.append("value_dim \(valueDim)") }
        if !useBias { opts.append("no bias") }
        if causal { opts.append("causal") }
        if queryMasked { opts.append("query mask") }
        if valueMasked { opts.append("value mask") }
        if keyMasked { opts.append("key mask") }
        return "multi_head_attention<\(opts.joined(separator: ", "))>"
    }

    public func weights(for all: [TensorType]) throws -> [LayerWeight] {
        let inputs = attentionMasked ? Array(all.dropLast()) : all
        guard inputs.count >= 2 else { return [] }
        let dq = inputs[0].shape.last!.factor, dv = inputs[1].shape.last!.factor
        let dk = inputs.count > 2 ? inputs[2].shape.last!.factor : dv
        func proj(_ name: String, _ din: Int, _ dh: Int) -> [LayerWeight] {
            [LayerWeight("\(name)/kernel", [din, heads, dh])] + (useBias ? [LayerWeight("\(name)/bias", [heads, dh], .zeros)] : [])
        }
        return proj("query", dq, keyDim) + proj("key", dk, keyDim) + proj("value", dv, valueDim)
            + [LayerWeight("attention_output/kernel", [heads, valueDim, dq])]
            + (useBias ? [LayerWeight("attention_output/bias", [dq], .zeros)] : [])
    }

    var weightCount: Int { useBias ? 8 : 4 }
    var maskCount: Int { (queryMasked ? 1 : 0) + (valueMasked ? 1 : 0) + (keyMasked ? 1 : 0) }

    /// The inputs: query, value, [key], the weights, [attention_mask], then the masks taken.
    func parts<T>(_ ins: [T], layer: String) throws -> (data: [T], weights: [T], attention: T?, masks: [T]) {
        let extra = attentionMasked ? 1 : 0
        let dataCount = ins.count - weightCount - maskCount - extra
        guard (2...3).contains(dataCount) else {
            throw ShapeError(layer: layer, "takes query, value and an optional key\(attentionMasked ? " and attention_mask" : ""), got \(max(dataCount + extra, 0)) inputs")
        }
        let w = Array(ins[(dataCount + extra)..<(dataCount + extra + weightCount)])
        return (Array(ins.prefix(dataCount)), w, attentionMasked ? ins[dataCount] : nil, Array(ins.suffix(maskCount)))
    }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        let (data, weights, attention, masks) = try parts(ins, layer: layer)
        let q = data[0], v = data[1], k = data.count > 2 ? data[2] : data[1]
        try attentionInput(q, "query", layer: layer)
        try attentionInput(v, "value", layer: layer)
        try attentionInput(k, "key", layer: layer)
        guard k.shape[1] == v.shape[1] else {
            throw ShapeError(layer: layer, "has key \(k.kerasDescription) and value \(v.kerasDescription) of different numbers of steps")
        }
        for (w, spec) in zip(weights, try self.weights(for: data + (attention.map { [$0] } ?? []))) where w.shape != spec.shape.map({ .fixed($0) }) {
            throw ShapeError(layer: layer, "has weight '\(spec.name)' of shape \(w.kerasDescription); for its inputs it needs \(formatShape(spec.shape))")
        }
        if let a = attention {
            let fits = a.rank == 3 && a.shape[0] == .n && (a.shape[1] == q.shape[1] || a.shape[1] == .fixed(1)) && (a.shape[2] == v.shape[1] || a.shape[2] == .fixed(1))
            guard fits else {
                throw ShapeError(layer: layer, "has an attention_mask \(a.kerasDescription) that does not fit query \(q.kerasDescription) and value \(v.kerasDescription); expected (batch, \(q.shape[1].factor), \(v.shape[1].factor))")
            }
        }
        var m = masks.makeIterator()
        if queryMasked { try checkMask(m.next()!, for: q, "query", layer: layer) }
        if valueMasked { try checkMask(m.next()!, for: v, "value", layer: layer) }
        if keyMasked { try checkMask(m.next()!, for: k, "key", layer: layer) }
        return [q]
    }

    public func consumingMasks(_ present: [Bool]) -> (kind: any LayerKind, inputs: [Int])? {
        guard maskCount == 0 else { return nil }
        // The masks of query, value and key (not of an attention_mask after them).
        let n = present.count - (attentionMasked ? 1 : 0)
        var k = self, taken: [Int] = []
        if n > 0 && present[0] { k.queryMasked = true; taken.append(0) }
        if n > 1 && present[1] { k.valueMasked = true; taken.append(1) }
        if n > 2 && present[2] { k.keyMasked = true; taken.append(2) }
        return taken.isEmpty ? nil : (k, taken)
    }

    public func outputMask(_ b: inout PrimBuilder, inputs: [Value], masks: [Value?], outputs: [Value]) throws -> Value? {
        masks.first ?? nil
    }

    /// Keras' call ends with set_keras_mask(None) on query, value and key: layers that use those
    /// tensors after it (in the order Keras runs the graph) see no mask.
    public var clearsInputMasks: Bool { true }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let (data, w, attention, masks) = try parts(ins, layer: b.layer)
        let q = data[0], v = data[1], k = data.count > 2 ? data[2] : data[1]
        let tq = b.type(q).shape[1].factor, tv = b.type(v).shape[1].factor
        var wi = 0
        func next() -> Value { defer { wi += 1 }; return w[wi] }
        // x (N, T, D) -> (N, T, H, e): an EinsumDense "abc,cde->abde" as one matmul.
        func project(_ x: Value, _ e: Int) throws -> Value {
            let t = b.type(x), steps = t.shape[1].factor, din = t.shape[2].factor
            let kernel = try b.reshape(next(), [.fixed(din), .fixed(heads * e)])
            let x2 = try b.reshape(x, [.batch(steps), .fixed(din)])
            var y = try b.reshape(try b.p(.matmul(transA: false, transB: false), x2, kernel), [.n, .fixed(steps), .fixed(heads), .fixed(e)])
            if useBias { y = try b.add(y, next()) }
            return y
        }
        let qh = try project(q, keyDim), kh = try project(k, keyDim), vh = try project(v, valueDim)
        // Scores (N, Tq, Tv, H) = sum over key_dim of q (N, Tq, 1, H, e) * k (N, 1, Tv, H, e), then scaled.
        let q5 = try b.reshape(qh, [.n, .fixed(tq), .fixed(1), .fixed(heads), .fixed(keyDim)])
        let k5 = try b.reshape(kh, [.n, .fixed(1), .fixed(tv), .fixed(heads), .fixed(keyDim)])
        var scores = try b.reduce(.sum, try b.mul(q5, k5), axes: [4])
        scores = try b.mul(scores, Float(1.0 / Double(keyDim).squareRoot()))
        var m = masks.makeIterator()
        var seen: Value? = nil
        if queryMasked { seen = try b.reshape(m.next()!, [.n, .fixed(tq), .fixed(1)]) }
        if valueMasked { seen = try b.and(seen, try b.reshape(m.next()!, [.n, .fixed(1), .fixed(tv)])) }
        if keyMasked { seen = try b.and(seen, try b.reshape(m.next()!, [.n, .fixed(1), .fixed(tv)])) }
        if causal { seen = try b.and(seen, try b.causalMask(tq, tv)) }
        if let a = attention {
            // Keras casts it to bool: nonzero is true.
            let am = b.type(a).dtype == .bool ? a : try b.compare(.ne, try b.cast(a, .f32), try b.const(0))
            seen = try b.and(seen, am)
        }
        if let s = seen {
            let s4 = try b.reshape(s, b.type(s).shape + [.fixed(1)])
            scores = try b.select(s4, scores, try b.const(Float(-0.7 * Double(Float.greatestFiniteMagnitude))))
        }
        let probs = try b.softmax(scores, axis: 2)
        // (N, Tq, Tv, H, 1) * (N, 1, Tv, H, e) summed over Tv -> (N, Tq, H, e).
        let p5 = try b.reshape(probs, [.n, .fixed(tq), .fixed(tv), .fixed(heads), .fixed(1)])
        let v5 = try b.reshape(vh, [.n, .fixed(1), .fixed(tv), .fixed(heads), .fixed(valueDim)])
        let att = try b.reduce(.sum, try b.mul(p5, v5), axes: [2])
        // The output projection "abcd,cde->abe".
        let dq = b.type(q).shape[2].factor
        let kernel = try b.reshape(next(), [.fixed(heads * valueDim), .fixed(dq)])
        let a2 = try b.reshape(att, [.batch(tq), .fixed(heads * valueDim)])
        var out = try b.reshape(try b.p(.matmul(transA: false, transB: false), a2, kernel), [.n, .fixed(tq), .fixed(dq)])
        if useBias { out = try b.add(out, next()) }
        return [out]
    }

    public func kerasConfig() -> [(String, JSON)] {
        [("num_heads", KerasJSON.int(heads)), ("key_dim", KerasJSON.int(keyDim)), ("value_dim", KerasJSON.int(valueDim)),
         ("dropout", KerasJSON.float(0)), ("use_bias", .bool(useBias)), ("use_gate", .bool(false)), ("output_shape", .null),
         ("attention_axes", .null), ("sliding_window", .null),
         ("kernel_initializer", KerasJSON.glorotUniform), ("bias_initializer", KerasJSON.zeros),
         ("kernel_regularizer", .null), ("bias_regularizer", .null), ("activity_regularizer", .null),
         ("kernel_constraint", .null), ("bias_constraint", .null), ("seed", .null)]
    }
}

/// Multi-head dot-product attention (Keras' `MultiHeadAttention`), called on query and value
/// (and optionally key) sequences: `MultiHeadAttention(numHeads: 2, keyDim: 8)(x, x)` is
/// self-attention. The output has the query's shape.
public final class MultiHeadAttention: Layer {
    /// - Parameters:
    ///   - numHeads: the number of heads.
    ///   - keyDim: the size of each head's query and key.
    ///   - valueDim: the size of each head's value (default keyDim).
    ///   - useBias: whether the projections add biases.
    ///   - name: the layer name (default `multi_head_attention`, ...).
    public init(numHeads: Int, keyDim: Int, valueDim: Int? = nil, useBias: Bool = true, name: String? = nil) {
        super.init(kind: MultiHeadAttentionKind(heads: numHeads, keyDim: keyDim, valueDim: valueDim, useBias: useBias), name: name)
    }

    /// Attends from `query` over `value` (keys: `key`, default the value).
    public func callAsFunction(_ query: KerasTensor, _ value: KerasTensor, key: KerasTensor? = nil) -> KerasTensor {
        callAsFunction([query, value] + (key.map { [$0] } ?? []))
    }
}
