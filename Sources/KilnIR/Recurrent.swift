// Recurrent layers (LSTM, GRU, SimpleRNN), their bidirectional wrapper and
// TimeDistributed: settings and shape rules. Lowering makes them scans
// (Scan.swift, LowerRecurrent.swift); the number of steps is fixed or free.

public enum RecurrentKind: String, Hashable, Sendable {
    case lstm = "LSTM", gru = "GRU", simpleRNN = "SimpleRNN"
    /// Gate blocks in the kernel: i, f, c, o (LSTM); z, r, h (GRU); one (SimpleRNN).
    public var gates: Int { self == .lstm ? 4 : self == .gru ? 3 : 1 }
}

/// One recurrent layer's settings, as Keras names them.
public struct RecurrentSpec: Hashable, Sendable {
    public var kind: RecurrentKind
    public var units: Int
    public var activation: Activation
    public var recurrentActivation: Activation
    public var useBias: Bool
    public var returnSequences: Bool
    public var goBackwards: Bool
    /// GRU only: apply the reset gate after the recurrent product (Keras' default).
    public var resetAfter: Bool
    /// Masked steps output zeros instead of repeating the previous output.
    public var zeroOutputForMask: Bool
    /// Training-time dropout rates (not supported in the training step yet).
    public var dropout: Float
    public var recurrentDropout: Float
    /// The final state (h, and c for LSTM) comes out after the output, as Keras' return_state.
    public var returnState: Bool

    public init(kind: RecurrentKind, units: Int, activation: Activation = .tanh, recurrentActivation: Activation = .sigmoid,
                useBias: Bool = true, returnSequences: Bool = false, goBackwards: Bool = false, resetAfter: Bool = true,
                zeroOutputForMask: Bool = false, dropout: Float = 0, recurrentDropout: Float = 0, returnState: Bool = false) {
        self.kind = kind; self.units = units; self.activation = activation; self.recurrentActivation = recurrentActivation
        self.useBias = useBias; self.returnSequences = returnSequences; self.goBackwards = goBackwards
        self.resetAfter = resetAfter; self.zeroOutputForMask = zeroOutputForMask
        self.dropout = dropout; self.recurrentDropout = recurrentDropout
        self.returnState = returnState
    }

    /// The states return_state adds after the output: h, and c for LSTM, each (batch, units).
    public var stateTypes: [TensorType] {
        returnState ? Array(repeating: .f32([.n, .fixed(units)]), count: kind == .lstm ? 2 : 1) : []
    }

    /// Weight shapes in Keras order: kernel, recurrent_kernel, [bias].
    public func weightShapes(features: Int) -> [[Int]] {
        let g = kind.gates * units
        var shapes = [[features, g], [units, g]]
        if useBias { shapes.append(kind == .gru && resetAfter ? [2, g] : [g]) }
        return shapes
    }
    public var weightCount: Int { useBias ? 3 : 2 }
}

/// A layer op inside a wrapper (TimeDistributed), held by reference so that
/// LayerOp stays a plain (non-indirect) enum.
public final class Wrapped: Hashable, Sendable, CustomStringConvertible {
    public let op: LayerOp
    public init(_ op: LayerOp) { self.op = op }
    public static func == (a: Wrapped, b: Wrapped) -> Bool { a.op == b.op }
    public func hash(into h: inout Hasher) { h.combine(op) }
    public var description: String { op.description }
}

/// How Bidirectional merges the forward and backward outputs.
public enum MergeMode: String, Hashable, Sendable { case concat, sum, mul, ave }

/// The outputs a layer adds after its main one: a recurrent layer's states with
/// return_state (Bidirectional: the forward layer's, then the backward one's).
public func layerStateTypes(_ op: LayerOp) -> [TensorType] {
    switch op {
    case let .recurrent(s, _): return s.stateTypes
    case let .bidirectional(f, b, _, _): return f.stateTypes + b.stateTypes
    default: return []
    }
}

/// Shape rules of the recurrent layer ops. Inputs: x (N, T, F), weights, then the mask (N, T) if masked.
func inferRecurrent(_ op: LayerOp, _ ins: [TensorType], layer: String) throws -> TensorType {
    let x = ins[0]
    // The time steps: fixed, or free (T, Keras' None).
    func sequence() throws -> (t: Dim, f: Int) {
        guard x.rank == 3, x.shape[0] == .n, x.shape[1].fixedValue != nil || x.shape[1] == .t, let f = x.shape[2].fixedValue else {
            if x.rank > 3, x.shape[0] == .n, !x.shape.dropFirst(2).contains(where: \.isSteps) {
                let step = x.shape.dropFirst(2).map(\.factor)
                throw ShapeError(layer: layer, "expects a 3-D input (batch, time, features), got \(x.kerasDescription): each of its \(x.shape[1] == .t ? "None" : "\(x.shape[1])") steps is \(formatShape(step)), not a vector of features",
                                 hint: "flatten each step with TimeDistributed(Flatten()) before it, which gives (None, \(x.shape[1] == .t ? "None" : "\(x.shape[1])"), \(step.reduce(1, *)))")
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
    func checkWeights(_ spec: RecurrentSpec, _ ws: ArraySlice<TensorType>, features: Int) throws {
        for (w, shape) in zip(ws, spec.weightShapes(features: features)) where w.shape != shape.map({ .fixed($0) }) {
            throw ShapeError(layer: layer, "weight of shape \(w.kerasDescription) does not fit input \(x.kerasDescription)",
                             hint: "expected \(formatShape(shape))")
        }
    }
    func checkMask(_ masked: Bool, expected count: Int, t: Dim) throws {
        guard masked else { return }
        guard ins.count == count + 1, ins[count].shape == [.n, t] else {
            throw ShapeError(layer: layer, "expects a mask of shape (None, \(t)), got \(ins.count > count ? ins[count].kerasDescription : "none")")
        }
    }
    switch op {
    case let .recurrent(spec, masked):
        let (t, f) = try sequence()
        guard ins.count == 1 + spec.weightCount + (masked ? 1 : 0) else {
            throw ShapeError(layer: layer, "takes \(1 + spec.weightCount) inputs and weights, got \(ins.count)")
        }
        try checkWeights(spec, ins[1...spec.weightCount], features: f)
        try checkMask(masked, expected: 1 + spec.weightCount, t: t)
        return .f32(spec.returnSequences ? [.n, t, .fixed(spec.units)] : [.n, .fixed(spec.units)])
    case let .bidirectional(fw, bw, merge, masked):
        let (t, f) = try sequence()
        let n = 1 + fw.weightCount + bw.weightCount
        guard ins.count == n + (masked ? 1 : 0) else { throw ShapeError(layer: layer, "takes \(n) inputs and weights, got \(ins.count)") }
        try checkWeights(fw, ins[1...fw.weightCount], features: f)
        try checkWeights(bw, ins[(1 + fw.weightCount)..<n], features: f)
        try checkMask(masked, expected: n, t: t)
        guard fw.units == bw.units, fw.returnSequences == bw.returnSequences else {
            throw ShapeError(layer: layer, "forward and backward layers differ in units or return_sequences")
        }
        let u = merge == .concat ? 2 * fw.units : fw.units
        return .f32(fw.returnSequences ? [.n, t, .fixed(u)] : [.n, .fixed(u)])
    case .timeDistributed(let inner):
        guard x.rank >= 3, x.shape[0] == .n, x.shape[1].fixedValue != nil || x.shape[1] == .t else {
            throw ShapeError(layer: layer, "expects (batch, time, ...), got \(x.kerasDescription), which has no time axis")
        }
        // The wrapped layer sees (batch * timesteps, ...); its messages speak of one step's input.
        let inside = TensorType(x.dtype, [.n] + Array(x.shape.dropFirst(2)))
        let out = try inferLayer(inner.op, [inside] + ins.dropFirst(), layer: "\(layer) (\(inner.op.kerasClass) on each step)")
        return TensorType(out.dtype, [.n, x.shape[1]] + Array(out.shape.dropFirst()))
    default:
        fatalError("inferRecurrent: \(op) is not a recurrent op")
    }
}
