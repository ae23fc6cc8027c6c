// Scans (KilnIR/Scan.swift): a recurrent cell run over the time steps as one
// compiled loop (scan), and its reverse for backprop through time (scanGrad).
// The step kernels are in ScanKernel.swift, the float64 cell in ScanReference.swift.

public enum Scan: PrimitiveFamily {
    public static func infer(_ op: PrimOp, _ ins: [TensorType], layer: String) throws -> [TensorType] {
        switch op {
        case .scan(let cell): return try cell.inferScan(ins, layer: layer)
        case .scanGrad(let cell): return try cell.inferScanGrad(ins, layer: layer)
        default: notInFamily(op, Self.self)
        }
    }

    /// Backprop through time for a scan: a reverse scan gives d proj and the gradient of
    /// each step's recurrent product; then dU = Σ_t h_{t-1}ᵀ·dInner_t is one product over
    /// all rows and steps, and the recurrent bias's gradient one sum.
    public static func gradient(_ op: PrimOp, _ n: Node, _ dys: [Value?], _ b: inout PrimBuilder) throws -> [Value?] {
        guard case .scan(let cell) = op else {
            throw ShapeError(layer: n.layer, "\(op) has no gradient rule (it should not appear before autodiff)")
        }
        // Only the sequence, the last output and the final h and c carry gradients.
        guard dys.prefix(4).contains(where: { $0 != nil }) else { return n.inputs.map { _ in nil } }
        guard cell.records else { throw ShapeError(layer: n.layer, "scan \(cell) was lowered for inference; it has no gradient") }
        let outs = n.outputs
        let given = try zip(outs, dys).prefix(4).map { o, d in try d ?? b.zeros(b.type(o).shape) }
        let (u, gates) = (cell.units, cell.gates)
        let rows = Dim.product([.n, b.type(n.inputs[0]).shape[1]])!
        let rb: Value? = cell.recurrentBias ? n.inputs[2] : nil
        // The scan's inputs after proj come again, at 3 + their index (Scan.inferScanGrad).
        let inputs = given + Array(n.inputs[1...]) + Array(outs[5...7])
        let grads = try b.graph.add(.prim(.scanGrad(cell)), inputs, layer: b.layer)
        let dProj = grads[0], dInner = cell.kind == .gru ? grads[1] : grads[0]
        let dRows = try b.reshape(dInner, [rows, .fixed(gates)])
        let dU: Value
        if cell.recurrentDropout {
            // Gate block k of the product read h ⊙ mask block k: dU_k = Σ (h_{t-1} ⊙ m_k)ᵀ · dInner_k.
            let m = n.inputs[cell.recurrentDropoutInput]
            let blocks = try (0..<(gates / u)).map { k -> Value in
                let mk = try b.reshape(try b.slice(m, axis: 1, k * u, u), [.n, .fixed(1), .fixed(u)])
                let hk = try b.reshape(try b.mul(outs[7], mk), [rows, .fixed(u)])
                return try b.p(.matmul(transA: true, transB: false), hk, try b.slice(dRows, axis: 1, k * u, u))
            }
            dU = blocks.count == 1 ? blocks[0] : try b.graph.add(.prim(.concat(axis: 1)), blocks, layer: b.layer)[0]
        } else {
            let hPrev = try b.reshape(outs[7], [rows, .fixed(u)])
            dU = try b.p(.matmul(transA: true, transB: false), hPrev, dRows)
        }
        let dRb = try rb.map { _ in try b.reduce(.sum, dRows, axes: [0]) }
        // Inputs: proj, U, [rb], then the dropout mask, initial states and mask carry none.
        return [dProj, dU] + (cell.recurrentBias ? [dRb] : []) + Array(repeating: nil, count: cell.inputCount - cell.recurrentDropoutInput)
    }

    public static func evaluate(_ op: PrimOp, _ n: Node, _ ins: [Tensor], _ outDims: [[Int]], _ ctx: inout EvalContext) throws -> [[Double]] {
        switch op {
        case .scan(let cell): return try evalScan(cell, ins, n: ctx.n)
        case .scanGrad:
            throw InterpreterError("scan_grad has no float64 reference: scans' gradients are checked against finite differences of scan")
        default: notInFamily(op, Self.self)
        }
    }

    public static func kernel(_ op: PrimOp, _ n: Node, in g: Graph) -> [Step] {
        [.scan(scanStep(n, in: g))]
    }

    public static func describe(_ op: PrimOp) -> String {
        switch op {
        case .scan(let c): return "scan<\(c)>"
        case .scanGrad(let c): return "scan_grad<\(c)>"
        default: notInFamily(op, Self.self)
        }
    }

    public static func fusedForm(_ op: PrimOp) -> FusedExpr? { nil }

    public static func effects(_ op: PrimOp) -> PrimEffects { .none }
}
