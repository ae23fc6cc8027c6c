// The recurrent layers: LSTM, GRU, SimpleRNN (one kind) and their Bidirectional wrapper. Each
// lowers to one matrix product for the input projection of every step and a scan over the
// steps (KilnIR/RecurrentLowering.swift, Scan.swift); the number of steps may be free.

import KilnIR
import KilnSupport

/// Reads a recurrent layer's settings from its Keras config.
private func recurrentSpec(_ c: KerasConfig, _ kind: RecurrentKind) throws -> RecurrentSpec {
    var spec = RecurrentSpec(
        kind: kind, units: try c.positive("units"), activation: try c.activation("activation", .tanh),
        recurrentActivation: kind == .simpleRNN ? .sigmoid : try c.activation("recurrent_activation", .sigmoid),
        useBias: try c.bool("use_bias", true), returnSequences: try c.bool("return_sequences", false),
        goBackwards: try c.bool("go_backwards", false), resetAfter: try c.bool("reset_after", true),
        zeroOutputForMask: try c.bool("zero_output_for_mask", false),
        dropout: try c.float("dropout", 0), recurrentDropout: try c.float("recurrent_dropout", 0),
        returnState: try c.bool("return_state", false))
    spec.stateful = try c.bool("stateful", false)
    return spec
}

/// The sequence (batch, time, features) a recurrent layer reads, or the error that says what it got.
private func sequence(_ x: TensorType, _ layer: String) throws -> (t: Dim, f: Int) {
    guard x.rank == 3, x.shape[0] == .n, x.shape[1].fixedValue != nil || x.shape[1] == .t, let f = x.shape[2].fixedValue else {
        if x.rank > 3, x.shape[0] == .n, !x.shape.dropFirst(2).contains(where: \.isSteps) {
            let step = x.shape.dropFirst(2).map(\.factor)
            let t = x.shape[1] == .t ? "None" : "\(x.shape[1])"
            throw ShapeError(layer: layer, "expects a 3-D input (batch, time, features), got \(x.kerasDescription): each of its \(t) steps is \(formatShape(step)), not a vector of features",
                             hint: "flatten each step with TimeDistributed(Flatten()) before it, which gives (None, \(t), \(step.reduce(1, *)))")
        }
        if x.rank == 2 {
            // Graph.add names the layer that dropped the time axis (Diagnosis.swift).
            throw ShapeError(layer: layer, "expects a 3-D input (batch, time, features), got the 2-D \(x.kerasDescription), which has no time axis",
                             hint: "keep the time axis in the layers before it (wrap them in TimeDistributed), or Reshape to (timesteps, features)")
        }
        throw ShapeError(layer: layer, "expects a 3-D input (batch, time, features), got \(x.kerasDescription)")
    }
    return (x.shape[1], f)
}

private func checkWeights(_ spec: RecurrentSpec, _ ws: ArraySlice<TensorType>, x: TensorType, features: Int, _ layer: String) throws {
    for (w, shape) in zip(ws, spec.weightShapes(features: features)) where w.shape != shape.map({ .fixed($0) }) {
        throw ShapeError(layer: layer, "weight of shape \(w.kerasDescription) does not fit input \(x.kerasDescription)",
                         hint: "expected \(formatShape(shape))")
    }
}

private func checkMask(_ ins: [TensorType], _ masked: Bool, expected count: Int, t: Dim, _ layer: String) throws {
    guard masked else { return }
    guard ins.count == count + 1, ins[count].shape == [.n, t] else {
        throw ShapeError(layer: layer, "expects a mask of shape (None, \(t)), got \(ins.count > count ? ins[count].kerasDescription : "none")")
    }
}

/// Keras' weights of one recurrent layer: kernel (F, G), recurrent_kernel (u, G), [bias].
private func recurrentWeights(_ spec: RecurrentSpec, features: Int, prefix: String = "") -> [LayerWeight] {
    let names = ["kernel", "recurrent_kernel", "bias"]
    let inits: [WeightInit] = [.glorotUniform, .orthogonal, spec.kind == .lstm ? .unitForgetBias : .zeros]
    return zip(spec.weightShapes(features: features), zip(names, inits)).map { LayerWeight(prefix + $1.0, $0, $1.1) }
}

/// One direction of a recurrent layer in the training form: the scan without dropout (what
/// inference runs) and, when the layer's rates drop something, the scan with Keras' masks
/// drawn once for the call, whose outputs have the plain ones as their inference forms.
/// A stateful direction (Keras' stateful=True) starts from the state it carries (h, and c for LSTM,
/// parameters of the fixed batch's rows, zero until the first call and after reset_states) and
/// writes its final state back, in training and predict alike.
private func directions(_ b: inout PrimBuilder, _ specs: [RecurrentSpec], x: Value, weights: [[Value]], mask: Value?,
                        flips: [Bool], names: [String] = [""], _ ctx: inout LoweringContext) throws -> [PrimBuilder.ScanOutputs] {
    let carried = try specs.indices.map { i -> [Value] in
        let s = specs[i]
        guard s.stateful else { return [] }
        guard let batch = b.graph.batchSize else {
            throw ShapeError(layer: b.layer, "is stateful, which needs a fixed batch size: give the model's Input a batch_shape (batch, steps, features)")
        }
        return try (s.kind == .lstm ? ["h", "c"] : ["h"]).map { which in
            let p = b.graph.addParam("\(b.layer)/\(names[i])state_\(which)", .f32([.fixed(batch), .fixed(s.units)]),
                                     initial: [Float](repeating: 0, count: batch * s.units), trainable: false, role: .carried)
            return try b.p(.batchRows, p)
        }
    }
    let results = try directionScans(&b, specs, x: x, weights: weights, mask: mask, flips: flips, initial: carried, &ctx)
    for (r, states) in zip(results, carried) {
        for (view, final) in zip(states, r.states) { b.graph.stateUpdates.append(StateUpdate(param: view, value: final, inference: true)) }
    }
    return results
}

private func directionScans(_ b: inout PrimBuilder, _ specs: [RecurrentSpec], x: Value, weights: [[Value]], mask: Value?,
                            flips: [Bool], initial: [[Value]], _ ctx: inout LoweringContext) throws -> [PrimBuilder.ScanOutputs] {
    // Both projections first, then the scans side by side: the program runs two adjacent
    // independent scans at once, one per thread.
    func run(_ drops: [PrimBuilder.RecurrentDropoutMasks?]) throws -> [PrimBuilder.ScanOutputs] {
        let projs = try specs.indices.map { try b.projection(specs[$0], x: x, weights: weights[$0], inputDropout: drops[$0]?.input ?? []) }
        return try specs.indices.map { i in
            try b.scan(specs[i], proj: projs[i].0, recurrent: weights[i][1], recurrentBias: projs[i].1, mask: mask, flipOutput: flips[i],
                       recurrentDropout: drops[i]?.recurrent, initial: initial[i])
        }
    }
    let plain = try run(specs.map { _ in nil })
    let drops = try specs.map { try b.recurrentDropoutMasks($0, x: x, &ctx) }
    guard drops.contains(where: { $0 != nil }) else { return plain }
    let dropped = try run(drops)
    for (d, p) in zip(dropped, plain) {
        for (dv, pv) in zip([d.sequence, d.last] + d.states, [p.sequence, p.last] + p.states) { b.graph.inferenceForms[dv] = pv }
    }
    return dropped
}

/// A recurrent layer's Keras config keys (after name, trainable, dtype).
private func recurrentConfig(_ s: RecurrentSpec) -> [(String, JSON)] {
    var c: [(String, JSON)] = [
        ("return_sequences", .bool(s.returnSequences)), ("return_state", .bool(s.returnState)),
        ("go_backwards", .bool(s.goBackwards)), ("stateful", .bool(s.stateful)), ("unroll", .bool(false)),
        ("zero_output_for_mask", .bool(s.zeroOutputForMask)), ("units", KerasJSON.int(s.units)),
        ("activation", .string(s.activation.rawValue))]
    if s.kind != .simpleRNN { c.append(("recurrent_activation", .string(s.recurrentActivation.rawValue))) }
    c += [("use_bias", .bool(s.useBias)), ("kernel_initializer", KerasJSON.glorotUniform),
          ("recurrent_initializer", KerasJSON.initializer("Orthogonal", [("seed", .null), ("gain", .number(1))])),
          ("bias_initializer", KerasJSON.zeros)]
    if s.kind == .lstm { c.append(("unit_forget_bias", .bool(true))) }
    c += [("kernel_regularizer", .null), ("recurrent_regularizer", .null), ("bias_regularizer", .null),
          ("activity_regularizer", .null), ("kernel_constraint", .null), ("recurrent_constraint", .null),
          ("bias_constraint", .null), ("dropout", KerasJSON.float(s.dropout)), ("recurrent_dropout", KerasJSON.float(s.recurrentDropout))]
    if s.kind == .gru { c.append(("reset_after", .bool(s.resetAfter))) }
    c.append(("seed", .null))
    return c
}

/// The advice when a recurrent layer returning only its last step fed a layer that wants steps.
private func lastStepHint(_ cls: String, _ name: String, _ before: TensorType, _ after: TensorType, units: Int, onLayer: Bool) -> String {
    let t = before.shape[1] == .t ? "None" : "\(before.shape[1])"
    return "\(cls) '\(name)' returns only its last step, \(after.kerasDescription) (return_sequences=False): "
        + "set return_sequences=True on \(onLayer ? "its layer" : "it") to pass on every step, (None, \(t), \(units))"
}

// MARK: - LSTM, GRU, SimpleRNN

/// x (N, T, F), kernel, recurrent_kernel, [bias], [mask (N, T)] -> the output sequence
/// (N, T, u) or the last output (N, u), then with return_state the final h (and c for LSTM).
/// It consumes the mask (a masked step keeps the state) and passes it on with return_sequences.
public struct RNNKind: LayerKind {
    public static let kerasClasses = ["LSTM", "GRU", "SimpleRNN"]
    public var spec: RecurrentSpec
    public var masked: Bool

    public init(_ spec: RecurrentSpec, masked: Bool = false) { self.spec = spec; self.masked = masked }

    public init(keras c: KerasConfig) throws {
        self.init(try recurrentSpec(c, RecurrentKind(rawValue: c.className) ?? .lstm))
    }

    public var kerasClass: String { spec.kind.rawValue }
    public var needsTimeAxis: Bool { true }

    public var description: String {
        let s = spec
        return "\(s.kind.rawValue.lowercased())<\(s.units)\(s.returnSequences ? ", sequences" : "")\(s.goBackwards ? ", backwards" : "")\(s.returnState ? ", state" : "")\(s.stateful ? ", stateful" : "")\(masked ? ", masked" : "")>"
    }

    /// Sized by the input's last axis; a wrong input is refused by the shape rule, in the graph,
    /// where the refusal can say which earlier layer dropped the time axis.
    public func weights(for inputs: [TensorType]) throws -> [LayerWeight] {
        recurrentWeights(spec, features: inputs.first?.shape.last?.fixedValue ?? 1)
    }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        let x = ins[0]
        let (t, f) = try sequence(x, layer)
        guard ins.count == 1 + spec.weightCount + (masked ? 1 : 0) else {
            throw ShapeError(layer: layer, "takes \(1 + spec.weightCount) inputs and weights, got \(ins.count)")
        }
        try checkWeights(spec, ins[1...spec.weightCount], x: x, features: f, layer)
        try checkMask(ins, masked, expected: 1 + spec.weightCount, t: t, layer)
        return [.f32(spec.returnSequences ? [.n, t, .fixed(spec.units)] : [.n, .fixed(spec.units)])] + spec.stateTypes
    }

    public func consumingMask() -> RNNKind? { masked ? nil : RNNKind(spec, masked: true) }

    public func outputMask(_ b: inout PrimBuilder, inputs: [Value], masks: [Value?], outputs: [Value]) throws -> Value? {
        spec.returnSequences ? masks.first ?? nil : nil
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let r = try directions(&b, [spec], x: ins[0], weights: [Array(ins[1...spec.weightCount])], mask: masked ? ins.last : nil,
                               flips: [false], &ctx)[0].outputs(spec)
        return [r.main] + r.states
    }

    public func droppedTimeAxisHint(name: String, before: TensorType, after: TensorType) -> String? {
        spec.returnSequences ? nil : lastStepHint(kerasClass, name, before, after, units: spec.units, onLayer: false)
    }

    public func kerasConfig() -> [(String, JSON)] { recurrentConfig(spec) }
}

// MARK: - Bidirectional

/// x (N, T, F), the forward layer's weights, the backward layer's, [mask] -> the two outputs
/// merged (concat, sum, mul, ave) or, with merge_mode None, both (forward, backward), then with return_state the forward layer's states and the
/// backward one's.
public struct BidirectionalKind: LayerKind {
    public static let kerasClasses = ["Bidirectional"]
    public var forward: RecurrentSpec
    public var backward: RecurrentSpec
    /// nil: Keras' merge_mode None, the two outputs apart.
    public var merge: MergeMode?
    public var masked: Bool
    /// The wrapped layer's name ("lstm"; Keras saves the halves as forward_lstm, backward_lstm).
    public var innerName: String

    public init(forward: RecurrentSpec, backward: RecurrentSpec, merge: MergeMode?, masked: Bool = false, innerName: String) {
        self.forward = forward; self.backward = backward; self.merge = merge; self.masked = masked; self.innerName = innerName
    }

    public init(keras c: KerasConfig) throws {
        func spec(_ j: JSON, _ what: String) throws -> (RecurrentSpec, String) {
            guard let cls = j["class_name"]?.string, let kind = RecurrentKind(rawValue: cls) else {
                throw c.fail("wraps \(what) Kiln does not support in Bidirectional; supported: LSTM, GRU, SimpleRNN")
            }
            let config = j["config"] ?? .object([])
            let name = config["name"]?.string ?? kind.rawValue.lowercased()
            return (try recurrentSpec(KerasConfig(name: "\(c.name)/\(name)", className: cls, json: config, file: c.file), kind), name)
        }
        guard let inner = c["layer"] else { throw c.fail("has no wrapped layer") }
        let (fw, name) = try spec(inner, "a layer")
        var bw = fw
        if let back = c["backward_layer"], !back.isNull {
            bw = try spec(back, "a backward layer").0
        } else {
            // Keras makes the backward layer from the forward one's config, reading backwards.
            bw.goBackwards.toggle()
        }
        var mode: MergeMode? = nil
        if let m = c["merge_mode"], !m.isNull {
            guard let modeName = m.string, let known = MergeMode(rawValue: modeName) else {
                throw c.fail("has merge_mode \(m.serialized); Kiln supports concat, sum, mul, ave and None")
            }
            mode = known
        }
        let prefixes = ["forward_", "backward_"]
        let base = prefixes.reduce(name) { $0.hasPrefix($1) ? String($0.dropFirst($1.count)) : $0 }
        self.init(forward: fw, backward: bw, merge: mode, innerName: base)
    }

    public var needsTimeAxis: Bool { true }

    public var description: String {
        let f = forward
        return "bidirectional<\(f.kind.rawValue.lowercased()) \(f.units), \(merge?.rawValue ?? "none")\(f.returnSequences ? ", sequences" : "")\(f.returnState ? ", state" : "")\(masked ? ", masked" : "")>"
    }

    /// Sized by the input's last axis; a wrong input is refused by the shape rule (see RNNKind).
    public func weights(for inputs: [TensorType]) throws -> [LayerWeight] {
        let f = inputs.first?.shape.last?.fixedValue ?? 1
        return recurrentWeights(forward, features: f, prefix: "forward_") + recurrentWeights(backward, features: f, prefix: "backward_")
    }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        let x = ins[0]
        let (t, f) = try sequence(x, layer)
        let n = 1 + forward.weightCount + backward.weightCount
        guard ins.count == n + (masked ? 1 : 0) else { throw ShapeError(layer: layer, "takes \(n) inputs and weights, got \(ins.count)") }
        try checkWeights(forward, ins[1...forward.weightCount], x: x, features: f, layer)
        try checkWeights(backward, ins[(1 + forward.weightCount)..<n], x: x, features: f, layer)
        try checkMask(ins, masked, expected: n, t: t, layer)
        guard forward.units == backward.units, forward.returnSequences == backward.returnSequences else {
            throw ShapeError(layer: layer, "forward and backward layers differ in units or return_sequences")
        }
        let u = merge == .concat ? 2 * forward.units : forward.units
        let out = TensorType.f32(forward.returnSequences ? [.n, t, .fixed(u)] : [.n, .fixed(u)])
        return (merge == nil ? [out, out] : [out]) + forward.stateTypes + backward.stateTypes
    }

    public func consumingMask() -> BidirectionalKind? {
        guard !masked else { return nil }
        var k = self
        k.masked = true
        return k
    }

    public func outputMask(_ b: inout PrimBuilder, inputs: [Value], masks: [Value?], outputs: [Value]) throws -> Value? {
        forward.returnSequences ? masks.first ?? nil : nil
    }

    /// Keras' compute_mask gives both outputs of merge_mode None the mask.
    public var maskedOutputCount: Int { merge == nil ? 2 : 1 }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let mask = masked ? ins.last : nil
        let n = forward.weightCount
        // The backward layer's outputs come in its processing order; they are written back in
        // time order (flipOutput) when its direction differs from the forward layer's.
        // Each direction draws its own dropout masks (Keras' two layers have a cell each).
        let (fws, bws) = (Array(ins[1...n]), Array(ins[(n + 1)...(n + backward.weightCount)]))
        let both = try directions(&b, [forward, backward], x: ins[0], weights: [fws, bws], mask: mask,
                                  flips: [false, backward.goBackwards != forward.goBackwards], names: ["forward_", "backward_"], &ctx)
        let f = both[0].outputs(forward), r = both[1].outputs(backward)
        let (x, y) = (f.main, r.main)
        let merged: Value
        switch merge {
        case nil: return [x, y] + f.states + r.states
        case .concat?: merged = try b.graph.add(.prim(.concat(axis: b.type(x).rank - 1)), [x, y], layer: b.layer)[0]
        case .sum?: merged = try b.add(x, y)
        case .mul?: merged = try b.mul(x, y)
        case .ave?: merged = try b.mul(try b.add(x, y), 0.5)
        }
        return [merged] + f.states + r.states
    }

    public func droppedTimeAxisHint(name: String, before: TensorType, after: TensorType) -> String? {
        forward.returnSequences ? nil
            : lastStepHint("Bidirectional", name, before, after, units: merge == .concat ? 2 * forward.units : forward.units, onLayer: true)
    }

    public func kerasConfig() -> [(String, JSON)] {
        func layer(_ s: RecurrentSpec, _ name: String) -> JSON {
            .object([("module", .string("keras.layers")), ("class_name", .string(s.kind.rawValue)),
                     ("config", .object([("name", .string(name)), ("trainable", .bool(true)), ("dtype", KerasJSON.dtypePolicy)]
                                        + recurrentConfig(s))),
                     ("registered_name", .null)])
        }
        return [("merge_mode", merge.map { .string($0.rawValue) } ?? .null), ("layer", layer(forward, "forward_" + innerName)),
                ("backward_layer", layer(backward, "backward_" + innerName))]
    }
}

// MARK: - Swift API

/// The settings shared by the recurrent layers' Swift constructors.
public class RecurrentLayer: Layer {
    /// The layer's settings.
    public var spec: RecurrentSpec { (kind as! RNNKind).spec }
    init(_ spec: RecurrentSpec, name: String?) { super.init(kind: RNNKind(spec), name: name) }
}

/// Long short-term memory (Keras' `LSTM`).
///
///     let h = LSTM(32, returnSequences: true)(Embedding(inputDim: 1000, outputDim: 16, maskZero: true)(tokens))
public final class LSTM: RecurrentLayer {
    /// - Parameters:
    ///   - units: the size of the state and the output.
    ///   - activation: of the cell and the output (default tanh).
    ///   - recurrentActivation: of the gates (default sigmoid).
    ///   - useBias: whether the gates have a bias.
    ///   - returnSequences: output every step (batch, steps, units) instead of the last (batch, units).
    ///   - returnState: also output the final h and c.
    ///   - goBackwards: read the steps from the last to the first.
    ///   - dropout: in training, the fraction of the input's features dropped (one mask per call, used at every step).
    ///   - recurrentDropout: in training, the fraction of the state's units dropped before the recurrent product.
    ///   - name: the layer name (default `lstm`, ...).
    public init(_ units: Int, activation: KilnIR.Activation = .tanh, recurrentActivation: KilnIR.Activation = .sigmoid,
                useBias: Bool = true, returnSequences: Bool = false, returnState: Bool = false, goBackwards: Bool = false,
                dropout: Float = 0, recurrentDropout: Float = 0, name: String? = nil) {
        super.init(RecurrentSpec(kind: .lstm, units: units, activation: activation, recurrentActivation: recurrentActivation,
                                 useBias: useBias, returnSequences: returnSequences, goBackwards: goBackwards,
                                 dropout: dropout, recurrentDropout: recurrentDropout, returnState: returnState),
                   name: name)
    }
}

/// Gated recurrent unit (Keras' `GRU`, reset gate after the product by default).
public final class GRU: RecurrentLayer {
    /// - Parameters:
    ///   - units: the size of the state and the output.
    ///   - activation: of the candidate state (default tanh).
    ///   - recurrentActivation: of the gates (default sigmoid).
    ///   - useBias: whether the gates have biases.
    ///   - returnSequences: output every step instead of the last.
    ///   - returnState: also output the final state.
    ///   - goBackwards: read the steps from the last to the first.
    ///   - resetAfter: apply the reset gate after the recurrent product (Keras' default, true).
    ///   - dropout: in training, the fraction of the input's features dropped (one mask per call, used at every step).
    ///   - recurrentDropout: in training, the fraction of the state's units dropped before the recurrent product.
    ///   - name: the layer name (default `gru`, ...).
    public init(_ units: Int, activation: KilnIR.Activation = .tanh, recurrentActivation: KilnIR.Activation = .sigmoid,
                useBias: Bool = true, returnSequences: Bool = false, returnState: Bool = false, goBackwards: Bool = false,
                resetAfter: Bool = true, dropout: Float = 0, recurrentDropout: Float = 0, name: String? = nil) {
        super.init(RecurrentSpec(kind: .gru, units: units, activation: activation, recurrentActivation: recurrentActivation,
                                 useBias: useBias, returnSequences: returnSequences, goBackwards: goBackwards, resetAfter: resetAfter,
                                 dropout: dropout, recurrentDropout: recurrentDropout, returnState: returnState),
                   name: name)
    }
}

/// A fully connected recurrent layer: h = activation(x·W + h·U + b) (Keras' `SimpleRNN`).
public final class SimpleRNN: RecurrentLayer {
    /// - Parameters:
    ///   - units: the size of the state and the output.
    ///   - activation: default tanh.
    ///   - useBias: whether to add a bias.
    ///   - returnSequences: output every step instead of the last.
    ///   - returnState: also output the final state.
    ///   - goBackwards: read the steps from the last to the first.
    ///   - dropout: in training, the fraction of the input's features dropped (one mask per call, used at every step).
    ///   - recurrentDropout: in training, the fraction of the state's units dropped before the recurrent product.
    ///   - name: the layer name (default `simple_rnn`, ...).
    public init(_ units: Int, activation: KilnIR.Activation = .tanh, useBias: Bool = true, returnSequences: Bool = false,
                returnState: Bool = false, goBackwards: Bool = false, dropout: Float = 0, recurrentDropout: Float = 0,
                name: String? = nil) {
        super.init(RecurrentSpec(kind: .simpleRNN, units: units, activation: activation, useBias: useBias,
                                 returnSequences: returnSequences, goBackwards: goBackwards, dropout: dropout,
                                 recurrentDropout: recurrentDropout, returnState: returnState),
                   name: name)
    }
}

/// Runs a recurrent layer forwards and a copy of it backwards and merges the two (Keras'
/// `Bidirectional`).
///
///     let h = Bidirectional(LSTM(32, returnSequences: true))(x)
public final class Bidirectional: Layer {
    /// - Parameters:
    ///   - layer: an ``LSTM``, ``GRU`` or ``SimpleRNN``; the backward copy reads the steps the other way.
    ///   - mergeMode: how the outputs are merged (default `.concat`); nil: the layer has two
    ///     outputs, forward and backward (then with `returnState` the states).
    ///   - name: the layer name (default `bidirectional`, ...).
    public init(_ layer: RecurrentLayer, mergeMode: MergeMode? = .concat, name: String? = nil) {
        var back = layer.spec
        back.goBackwards.toggle()
        var fw = layer.spec
        // Keras returns zeros at masked steps of both halves of a Bidirectional with return_sequences.
        if fw.returnSequences { fw.zeroOutputForMask = true; back.zeroOutputForMask = true }
        super.init(kind: BidirectionalKind(forward: fw, backward: back, merge: mergeMode, innerName: layer.name), name: name)
    }
}
