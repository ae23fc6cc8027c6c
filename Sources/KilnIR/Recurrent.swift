// Recurrent layers' settings (LSTM, GRU, SimpleRNN, Bidirectional's merge): the layer kinds
// (KilnLayers/Layers/Recurrent.swift) hold them, and lowering makes them scans (Scan.swift,
// RecurrentLowering.swift); the number of steps is fixed or free.

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
    /// Training-time dropout rates (Keras applies each inside (0, 1)).
    public var dropout: Float
    public var recurrentDropout: Float
    /// The final state (h, and c for LSTM) comes out after the output, as Keras' return_state.
    public var returnState: Bool
    /// Keras' stateful=True: the final state of a call is the next call's initial state.
    public var stateful = false

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

/// How Bidirectional merges the forward and backward outputs.
public enum MergeMode: String, Hashable, Sendable { case concat, sum, mul, ave }
