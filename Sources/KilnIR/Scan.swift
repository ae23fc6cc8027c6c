// Recurrence as a scan: one recurrent cell (LSTM, GRU with the reset gate
// after the recurrent product, SimpleRNN) run over the time steps as a
// compiled loop. The input projection x·W + b of every step is computed
// before the scan (one big product); the scan reads step t of it in place,
// carries the state (h, and c for LSTM), and per step does one product h·U
// for all gates and one elementwise pass for the gate math, the state update
// and the mask select. Its gradient is a reverse scan (`scanGrad`) over what
// the forward scan recorded.

/// The cell a scan runs, and how it walks the sequence.
public struct ScanCell: Hashable, Sendable, CustomStringConvertible {
    public var kind: RecurrentKind
    public var units: Int
    public var activation: Activation
    public var recurrentActivation: Activation
    /// Processing step s reads input step T-1-s (Keras' go_backwards).
    public var goBackwards: Bool
    /// Processing step s writes output position T-1-s instead of s (Bidirectional's
    /// backward layer, whose outputs are put back in time order).
    public var flipOutput: Bool
    /// Masked steps output zeros instead of repeating the previous output.
    public var zeroOutputForMask: Bool
    /// A mask (N, T) bool is the last input.
    public var masked: Bool
    /// GRU: a recurrent bias (G) follows U.
    public var recurrentBias: Bool
    /// The scan records what its gradient needs (training).
    public var records: Bool
    /// GRU: the reset gate applies after the recurrent product (Keras' default). Scans run
    /// only this form; the other is unrolled.
    public var resetAfter: Bool
    /// Recurrent dropout (training): an (N, G) f32 mask follows [rb]; gate block k of the
    /// recurrent product reads h ⊙ mask[:, k block] (Keras' one recurrent mask per gate, drawn
    /// once per call and used at every step).
    public var recurrentDropout: Bool
    /// The scan starts from given states (a stateful layer's carried h, and c for LSTM, each
    /// (N, u)) that follow [rdrop], instead of zeros.
    public var initialState: Bool

    public init(kind: RecurrentKind, units: Int, activation: Activation, recurrentActivation: Activation, goBackwards: Bool,
                flipOutput: Bool, zeroOutputForMask: Bool, masked: Bool, recurrentBias: Bool, records: Bool, resetAfter: Bool = true,
                recurrentDropout: Bool = false, initialState: Bool = false) {
        self.kind = kind; self.units = units; self.activation = activation; self.recurrentActivation = recurrentActivation
        self.goBackwards = goBackwards; self.flipOutput = flipOutput; self.zeroOutputForMask = zeroOutputForMask
        self.masked = masked; self.recurrentBias = recurrentBias; self.records = records
        self.resetAfter = resetAfter; self.recurrentDropout = recurrentDropout
        self.initialState = initialState
    }

    /// The index of the recurrent dropout mask among the scan's inputs (after proj, U, [rb]).
    public var recurrentDropoutInput: Int { 2 + (recurrentBias ? 1 : 0) }
    /// The index of the initial h (then c for LSTM) among the scan's inputs.
    public var initialStateInput: Int { recurrentDropoutInput + (recurrentDropout ? 1 : 0) }
    /// How many initial states the scan takes.
    public var stateInputCount: Int { initialState ? (kind == .lstm ? 2 : 1) : 0 }
    /// The number of the scan's inputs (the mask, when there is one, is the last).
    public var inputCount: Int { initialStateInput + stateInputCount + (masked ? 1 : 0) }

    /// Gate blocks: i, f, c, o (LSTM); z, r, h (GRU); one (SimpleRNN).
    public var gates: Int { kind.gates * units }

    /// Activations whose derivative the reverse scan computes from the activation's value.
    public static let activations: Set<Activation> = [.tanh, .sigmoid, .hardSigmoid, .relu, .linear]

    /// Whether the compiled scan loop can run this cell (otherwise it must be unrolled).
    public var compilable: Bool {
        Self.activations.contains(activation) && Self.activations.contains(recurrentActivation) && !(kind == .gru && !resetAfter)
    }

    public var description: String {
        var s = "\(kind.rawValue.lowercased())<\(units), \(activation.rawValue)/\(recurrentActivation.rawValue)"
        if goBackwards { s += ", backwards" }
        if flipOutput { s += ", flip" }
        if zeroOutputForMask { s += ", zero_masked" }
        if masked { s += ", masked" }
        if recurrentBias { s += ", rbias" }
        if records { s += ", records" }
        if kind == .gru && !resetAfter { s += ", reset_before" }
        if recurrentDropout { s += ", rdrop" }
        if initialState { s += ", initial" }
        return s + ">"
    }

    /// Inputs of `scan`: proj (N, T, G), U (u, G), [rb (G)], [recurrent dropout mask (N, G)], [initial h, c (N, u)],
    /// [mask (N, T) bool]; T fixed or free.
    /// Outputs: sequence (N, T, u), last output (N, u), final h (N, u), final c (N, u), scratch h·U (N, G);
    /// with `records`: gates (N, T, G) after activation, aux (N, T, u) (LSTM: c_t;
    /// GRU: the recurrent product's h block with its bias), h_{t-1} (N, T, u).
    func inferScan(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        let (u, g) = (units, gates)
        let expected = inputCount
        guard ins.count == expected else { throw ShapeError(layer: layer, "scan \(self) takes \(expected) inputs, got \(ins.count)") }
        if recurrentDropout, ins[recurrentDropoutInput] != .f32([.n, .fixed(g)]) {
            throw ShapeError(layer: layer, "scan \(self): recurrent dropout mask \(ins[recurrentDropoutInput]) is not (N, \(g))")
        }
        for i in 0..<stateInputCount where ins[initialStateInput + i] != .f32([.n, .fixed(u)]) {
            throw ShapeError(layer: layer, "scan \(self): initial state \(ins[initialStateInput + i]) is not (N, \(u))")
        }
        let proj = ins[0]
        guard proj.rank == 3, proj.shape[0] == .n, proj.shape[1].fixedValue != nil || proj.shape[1] == .t, proj.shape[2] == .fixed(g) else {
            throw ShapeError(layer: layer, "scan \(self): projection \(proj) is not (N, T, \(g))")
        }
        guard ins[1] == .f32([.fixed(u), .fixed(g)]) else { throw ShapeError(layer: layer, "scan \(self): recurrent kernel \(ins[1]) is not (\(u), \(g))") }
        if recurrentBias, ins[2] != .f32([.fixed(g)]) { throw ShapeError(layer: layer, "scan \(self): recurrent bias \(ins[2]) is not (\(g))") }
        let t = proj.shape[1]
        if masked, ins.last! != TensorType(.bool, [.n, t]) { throw ShapeError(layer: layer, "scan \(self): mask \(ins.last!) is not (N, \(t)) bool") }
        let state = TensorType.f32([.n, .fixed(u)])
        var outs: [TensorType] = [.f32([.n, t, .fixed(u)]), state, state, state, .f32([.n, .fixed(g)])]
        if records { outs += [.f32([.n, t, .fixed(g)]), .f32([.n, t, .fixed(u)]), .f32([.n, t, .fixed(u)])] }
        return outs
    }

    /// Inputs of `scanGrad`: d sequence (N, T, u), d last output, d final h, d final c (N, u), U, [rb], [rdrop], [h0, c0], [mask]
    /// (the scan's inputs after proj, at index 3 + their index in the scan),
    /// then the forward scan's records: gates, aux, h_{t-1}.
    /// Outputs: d proj (N, T, G), d of the recurrent product (N, T, G) (GRU's differs from
    /// d proj in the h block), the carried dh and dc (N, u) (scratch; dh ends as d h_{-1}).
    func inferScanGrad(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        let (u, g) = (units, gates)
        let expected = 6 + inputCount
        guard ins.count == expected, ins[0].rank == 3 else {
            throw ShapeError(layer: layer, "scan_grad \(self) takes \(expected) inputs, got \(ins.count)")
        }
        let t = ins[0].shape[1]
        let seq = TensorType.f32([.n, t, .fixed(u)]), state = TensorType.f32([.n, .fixed(u)])
        let gt = TensorType.f32([.n, t, .fixed(g)])
        let k = 3 + inputCount
        guard ins[0] == seq, ins[1] == state, ins[2] == state, ins[3] == state, ins[4] == .f32([.fixed(u), .fixed(g)]),
              ins[k] == gt, ins[k + 1] == seq, ins[k + 2] == seq else {
            throw ShapeError(layer: layer, "scan_grad \(self): inputs \(ins) do not fit T = \(t)")
        }
        return [gt, gt, state, state]
    }
}
