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

/// The shape rule of the legacy TimeDistributed op (wrapping a legacy layer op).
func inferRecurrent(_ op: LayerOp, _ ins: [TensorType], layer: String) throws -> TensorType {
    let x = ins[0]
    switch op {
    case .timeDistributed(let inner):
        guard x.rank >= 3, x.shape[0] == .n, x.shape[1].fixedValue != nil || x.shape[1] == .t else {
            throw ShapeError(layer: layer, "expects (batch, time, ...), got \(x.kerasDescription), which has no time axis")
        }
        // The wrapped layer sees (batch * timesteps, ...); its messages speak of one step's input.
        let inside = TensorType(x.dtype, [.n] + Array(x.shape.dropFirst(2)))
        let out = try inferLayer(inner.op, [inside] + ins.dropFirst(), layer: "\(layer) (\(inner.op.kerasClass) on each step)")
        return TensorType(out.dtype, [.n, x.shape[1]] + Array(out.shape.dropFirst()))
    default:
        fatalError("inferRecurrent: \(op) is not TimeDistributed")
    }
}
