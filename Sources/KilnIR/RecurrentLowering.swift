// Recurrent layers in primitives: the input projection x·W + b of every step as one matrix
// product, then a scan (Scan.swift) that runs the cell over the steps. The recurrent layer
// kinds (KilnLayers/Layers/Recurrent.swift) lower through these; the unroll pass turns a
// scan into straight-line cells (KilnPasses/LowerRecurrent.swift).

extension PrimBuilder {
    /// Slices `length` entries at `start` along `axis`.
    public mutating func slice(_ x: Value, axis: Int, _ start: Int, _ length: Int) throws -> Value {
        if start == 0 && type(x).shape[axis] == .fixed(length) { return x }
        return try p(.slice(axis: axis, start: start, length: length), x)
    }

    /// One recurrent layer over x (N, T, F) as a scan: the input projection of every step
    /// at once, (N*T, F)·(F, G) + b -> (N, T, G), then the scan over the steps.
    /// - Returns: the output sequence (N, T, u) and the last output (N, u).
    public mutating func recurrence(_ spec: RecurrentSpec, x: Value, weights: [Value], mask: Value?,
                             flipOutput: Bool = false, dropout: RecurrentDropoutMasks? = nil, initial: [Value] = []) throws -> ScanOutputs {
        let (proj, rb) = try projection(spec, x: x, weights: weights, inputDropout: dropout?.input ?? [])
        return try scan(spec, proj: proj, recurrent: weights[1], recurrentBias: rb, mask: mask, flipOutput: flipOutput,
                        recurrentDropout: dropout?.recurrent, initial: initial)
    }

    /// Keras' dropout masks of one recurrent layer in one training call (keras/src/layers/rnn/
    /// dropout_rnn_cell.py): drawn once per call, used at every step, each entry 0 or 1 / (1 - rate).
    public struct RecurrentDropoutMasks {
        /// (N, F): one for every gate, or (LSTM and GRU with recurrent dropout, Keras'
        /// implementation 1) one per gate block.
        public var input: [Value]
        /// (N, G): gate block k of the recurrent product reads h ⊙ block k (SimpleRNN: G = u).
        public var recurrent: Value?
        public init(input: [Value], recurrent: Value?) { self.input = input; self.recurrent = recurrent }
    }

    /// Draws a recurrent layer's dropout masks for x (N, T, F), or nil when its rates drop nothing
    /// (Keras applies a rate only inside (0, 1)).
    public mutating func recurrentDropoutMasks(_ spec: RecurrentSpec, x: Value, _ ctx: inout LoweringContext) throws -> RecurrentDropoutMasks? {
        let active = { (r: Float) in r > 0 && r < 1 }
        guard active(spec.dropout) || active(spec.recurrentDropout) else { return nil }
        guard let f = type(x).shape.last?.fixedValue else { return nil }
        // Keras' LSTM and GRU switch to implementation 1 (a mask per gate) when recurrent_dropout is set.
        let perGate = spec.kind != .simpleRNN && spec.recurrentDropout != 0
        let count = perGate ? spec.kind.gates : 1
        func keep(_ rate: Float, _ width: Int) throws -> Value {
            let u = try p(.randomUniform(salt: ctx.nextSalt()), try zeros([.n, .fixed(width)]))
            return try mul(try cast(try compare(.ge, u, try const(rate)), .f32), 1 / (1 - rate))
        }
        var input: [Value] = []
        if active(spec.dropout) {
            let all = try keep(spec.dropout, count * f)
            input = try (0..<count).map { try slice(all, axis: 1, $0 * f, f) }
        }
        let recurrent = active(spec.recurrentDropout) ? try keep(spec.recurrentDropout, count * spec.units) : nil
        // One recurrent mask for all gates (SimpleRNN) covers its single gate block.
        return RecurrentDropoutMasks(input: input, recurrent: recurrent)
    }

    /// The input projection x·W + b of every step, (N, T, G), and GRU's recurrent bias. With input
    /// dropout masks (N, F), x is multiplied by the mask (one), or gate block k reads x ⊙ mask k.
    public mutating func projection(_ spec: RecurrentSpec, x: Value, weights: [Value], inputDropout: [Value] = []) throws -> (Value, Value?) {
        let xs = type(x).shape
        let g = spec.kind.gates * spec.units, u = spec.units
        let rows = Dim.product([.n, xs[1]])!
        func project(_ x: Value, _ w: Value) throws -> Value { try p(.matmul(transA: false, transB: false), try reshape(x, [rows, xs[2]]), w) }
        func dropped(_ m: Value) throws -> Value { try mul(x, try reshape(m, [.n, .fixed(1), xs[2]])) }
        let product: Value
        switch inputDropout.count {
        case 0: product = try project(x, weights[0])
        case 1: product = try project(try dropped(inputDropout[0]), weights[0])
        default:
            let blocks = try inputDropout.enumerated().map { k, m in try project(try dropped(m), try slice(weights[0], axis: 1, k * u, u)) }
            product = try graph.add(.prim(.concat(axis: 1)), blocks, layer: layer)[0]
        }
        var proj = try reshape(product, [.n, xs[1], .fixed(g)])
        var recurrentBias: Value? = nil
        if spec.useBias {
            var inputBias = weights[2]
            if spec.kind == .gru && spec.resetAfter {
                inputBias = try reshape(try slice(weights[2], axis: 0, 0, 1), [.fixed(g)])
                recurrentBias = try reshape(try slice(weights[2], axis: 0, 1, 1), [.fixed(g)])
            }
            proj = try add(proj, inputBias)
        }
        return (proj, recurrentBias)
    }

    /// The scan of one recurrent layer over its projection.
    /// With recurrent dropout, the (N, G) mask; with `initial`, the scan starts from those states
    /// (h, and c for LSTM) instead of zeros.
    public mutating func scan(_ spec: RecurrentSpec, proj: Value, recurrent: Value, recurrentBias: Value?, mask: Value?,
                       flipOutput: Bool, recurrentDropout: Value? = nil, initial: [Value] = []) throws -> ScanOutputs {
        let cell = ScanCell(kind: spec.kind, units: spec.units, activation: spec.activation, recurrentActivation: spec.recurrentActivation,
                            goBackwards: spec.goBackwards, flipOutput: flipOutput, zeroOutputForMask: spec.zeroOutputForMask,
                            masked: mask != nil, recurrentBias: recurrentBias != nil, records: true, resetAfter: spec.resetAfter,
                            recurrentDropout: recurrentDropout != nil, initialState: !initial.isEmpty)
        precondition(initial.isEmpty || initial.count == cell.stateInputCount, "scan \(cell): \(initial.count) initial states")
        let ins = [proj, recurrent] + [recurrentBias, recurrentDropout].compactMap { $0 } + initial + [mask].compactMap { $0 }
        let outs = try graph.add(.prim(.scan(cell)), ins, layer: layer)
        return ScanOutputs(sequence: outs[0], last: outs[1], states: Array(outs[2..<(spec.kind == .lstm ? 4 : 3)]))
    }

    /// What a recurrent layer takes from its scan: the sequence, the last output and the final states
    /// (h, and c for LSTM), which return_state adds to the layer's outputs.
    public struct ScanOutputs {
        public var sequence: Value
        public var last: Value
        public var states: [Value]
        public func outputs(_ spec: RecurrentSpec) -> (main: Value, states: [Value]) {
            (spec.returnSequences ? sequence : last, spec.returnState ? states : [])
        }
    }

    /// Stacks per-step outputs (N, u) into (N, T, u), in the given order.
    public mutating func stack(_ steps: [Value]) throws -> Value {
        let u = type(steps[0]).shape[1]
        let rows = try steps.map { try reshape($0, [.n, .fixed(1), u]) }
        return rows.count == 1 ? rows[0] : try graph.add(.prim(.concat(axis: 1)), rows, layer: layer)[0]
    }
}
