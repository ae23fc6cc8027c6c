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
                             flipOutput: Bool = false) throws -> ScanOutputs {
        let (proj, rb) = try projection(spec, x: x, weights: weights)
        return try scan(spec, proj: proj, recurrent: weights[1], recurrentBias: rb, mask: mask, flipOutput: flipOutput)
    }

    /// The input projection x·W + b of every step, (N, T, G), and GRU's recurrent bias.
    public mutating func projection(_ spec: RecurrentSpec, x: Value, weights: [Value]) throws -> (Value, Value?) {
        let xs = type(x).shape
        let g = spec.kind.gates * spec.units
        var proj = try reshape(try p(.matmul(transA: false, transB: false), try reshape(x, [Dim.product([.n, xs[1]])!, xs[2]]), weights[0]),
                               [.n, xs[1], .fixed(g)])
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
    public mutating func scan(_ spec: RecurrentSpec, proj: Value, recurrent: Value, recurrentBias: Value?, mask: Value?,
                       flipOutput: Bool) throws -> ScanOutputs {
        let cell = ScanCell(kind: spec.kind, units: spec.units, activation: spec.activation, recurrentActivation: spec.recurrentActivation,
                            goBackwards: spec.goBackwards, flipOutput: flipOutput, zeroOutputForMask: spec.zeroOutputForMask,
                            masked: mask != nil, recurrentBias: recurrentBias != nil, records: true, resetAfter: spec.resetAfter)
        let outs = try graph.add(.prim(.scan(cell)), [proj, recurrent] + [recurrentBias, mask].compactMap { $0 }, layer: layer)
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
