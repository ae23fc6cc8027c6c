// The kernels of `scan` and `scanGrad`: one loop kernel per step over
// (row n, unit j) that does all the gate math of the cell, reading the step's
// slice of the sequences where they lie (t, t_prev and t_out are parameters of
// the call), plus one matrix product per step that the runtime's scan driver
// makes (kiln_scan in Runtime/kiln_runtime.c):
//   forward:  scratch = h·U (skipped at the first step, where h = 0, and at
//             steps where every row is masked), then the kernel;
//   backward: the kernel, then dh += dInner_t·Uᵀ (skipped likewise).

/// A scan as the program runs it.
public struct ScanStep: Hashable, Sendable, CustomStringConvertible {
    public var cell: ScanCell
    /// The reverse scan of backprop through time.
    public var backward: Bool
    /// Time steps T (nil: the call's free number of steps).
    public var length: Int?
    /// The per-step kernel and the values bound to its buffers.
    public var kernel: LoopKernel
    public var args: [Value]
    public var mask: Value?
    /// The recurrent dropout mask (N, G): the product of gate block k reads h ⊙ its block
    /// (forward), and block k's dInner·Uᵀ is multiplied by it (backward).
    public var recurrentDropout: Value? = nil
    /// The product of each step: forward c = a·b (h·U into the scratch); backward
    /// c += a_t·bᵀ (dInner at step t times Uᵀ into the carried dh).
    public var a: Value, b: Value, c: Value
    /// The carried state (h, c; dh, dc) and what it starts as (nil: zeros).
    public var carries: [Value]
    public var initial: [Value?]
    /// Kernel buffer slots of a scan whose rows the driver may reorder (masked, forward, inference):
    /// the row map it fills, and the sequence and last outputs it completes for the rows it leaves out.
    public struct RowOrder: Hashable, Sendable { public var rowMap, sequence, last: Int }
    public var rowOrder: RowOrder? = nil

    public var reads: [Value] {
        var r = zip(kernel.buffers, args).filter { !$0.0.written }.map(\.1) + [b] + initial.compactMap { $0 }
        if let mask { r.append(mask) }
        if let recurrentDropout { r.append(recurrentDropout) }
        return r
    }
    public var writes: [Value] {
        zip(kernel.buffers, args).filter { $0.0.written }.map(\.1) + carries + [c]
    }

    public var description: String {
        "scan\(backward ? "_grad" : "")<\(cell), T=\(length.map(String.init) ?? "T")>(" + args.map(\.description).joined(separator: ", ")
            + ") product \(c) \(backward ? "+=" : "=") \(a)·\(b)\(backward ? "ᵀ" : ""); step: " + kernel.description
    }
}

/// The derivative of a scan activation, from its value y.
func activationGrad(_ a: Activation, _ y: KExpr) -> KExpr {
    switch a {
    case .tanh: return .binary(.sub, .real(1), .binary(.mul, y, y))
    case .sigmoid: return .binary(.mul, y, .binary(.sub, .real(1), y))
    case .linear: return .real(1)
    case .relu: return .select(.compare(.gt, y, .real(0)), .real(1), .real(0))
    case .hardSigmoid:
        return .select(.and(.compare(.gt, y, .real(0)), .compare(.lt, y, .real(1))), .real(1.0 / 6.0), .real(0))
    default: fatalError("activationGrad: \(a) is not a scan activation (ScanCell.activations)")
    }
}

/// A scan activation, computed as PrimBuilder.activation computes it.
func activationExpr(_ a: Activation, _ x: KExpr) -> KExpr {
    switch a {
    case .tanh: return .unary(.tanh, x)
    case .sigmoid: return .unary(.sigmoid, x)
    case .linear: return x
    case .relu: return .unary(.relu, x)
    case .hardSigmoid:
        return .binary(.min, .unary(.relu, .binary(.add, .binary(.mul, x, .real(Float(1.0 / 6.0))), .real(0.5))), .real(1))
    default: fatalError("activationExpr: \(a) is not a scan activation (ScanCell.activations)")
    }
}

/// The program step of a `scan` or `scanGrad` node.
func scanStep(_ n: Node, in g: Graph) -> ScanStep {
    let (cell, backward): (ScanCell, Bool)
    switch n.op {
    case .prim(.scan(let c)): (cell, backward) = (c, false)
    case .prim(.scanGrad(let c)): (cell, backward) = (c, true)
    default: preconditionFailure("scanStep: \(n.op) is not a scan")
    }
    precondition(cell.compilable, "scan \(cell) cannot be compiled; the unroll pass must unroll it")
    let time = g.type(n.inputs[0]).shape[1]
    let t = extent(time)
    let (u, gates) = (cell.units, cell.gates)
    let row = KExpr.index(0), j = KExpr.index(1)
    var buffers: [KBuffer] = []
    var args: [Value] = []
    func bind(_ v: Value, written: Bool = false) -> Int {
        buffers.append(KBuffer(g.type(v).dtype, written: written)); args.append(v); return buffers.count - 1
    }
    func at(_ b: Int, _ i: KExpr) -> KExpr { .load(buffer: b, at: i) }
    // The mask is the scan's last input; scan_grad has the scan's inputs after proj at 3 + their index.
    let shift = backward ? 3 : 0
    let mask: Value? = cell.masked ? n.inputs[shift + cell.inputCount - 1] : nil
    let dropMask: Value? = cell.recurrentDropout ? n.inputs[shift + cell.recurrentDropoutInput] : nil
    let initial: [Value?] = (0..<2).map { i in i < cell.stateInputCount ? n.inputs[shift + cell.initialStateInput + i] : nil }
    // A masked scan for inference runs its rows in an order the driver picks (kiln_scan.c: rows whose
    // remaining steps are all masked are left out of the step): the state (h, c, the product) is kept
    // in that order, row i0 standing for batch row rowmap[i0]; the inputs and outputs in batch order.
    // The row map is an int32 buffer the driver supplies; its slot is bound to the mask as a stand-in.
    let rowMapSlot: Int? = mask != nil && !backward && !cell.records && !cell.initialState && !cell.recurrentDropout ? {
        buffers.append(KBuffer(.i32)); args.append(mask!); return buffers.count - 1
    }() : nil
    let batchRow = rowMapSlot.map { at($0, row) } ?? row
    // Element (n, step, k*u + j) of an (N, T, width) sequence (in batch order), and (n, k*u + j) of an
    // (N, width) matrix (in batch order when `batch`, else in the scan's row order).
    func seq(_ step: KExpr, _ width: Int, gate k: Int = 0) -> KExpr { (batchRow * t + step) * .int(width) + .int(k * u) + j }
    func mat(_ width: Int, gate k: Int = 0, batch: Bool = false) -> KExpr { (batch ? batchRow : row) * .int(width) + .int(k * u) + j }
    let maskBuf = mask.map { bind($0) }
    let keep: KExpr? = maskBuf.map { .compare(.ne, at($0, batchRow * t + .scanStep), .int(0)) }
    func masked(_ v: KExpr, else other: KExpr) -> KExpr { keep.map { .select($0, v, other) } ?? v }
    let rAct = { (x: KExpr) in activationExpr(cell.recurrentActivation, x) }
    let act = { (x: KExpr) in activationExpr(cell.activation, x) }
    var stores: [KStore] = []

    if !backward {
        // Inputs proj, U, [rb], [mask]; outputs seq, last, h, c, scratch, [gates, aux, hprev].
        let proj = bind(n.inputs[0])
        let rb = cell.recurrentBias ? bind(n.inputs[2]) : nil
        let (seqOut, lastOut, hOut, cOut, scratch) = (n.outputs[0], n.outputs[1], n.outputs[2], n.outputs[3], n.outputs[4])
        let (sb, lb) = (bind(seqOut, written: true), bind(lastOut, written: true))
        let (hb, cb, rbuf) = (bind(hOut, written: true), bind(cOut, written: true), bind(scratch))
        let rec = cell.records ? (bind(n.outputs[5], written: true), bind(n.outputs[6], written: true), bind(n.outputs[7], written: true)) : nil
        func x(_ k: Int) -> KExpr { at(proj, seq(.scanStep, gates, gate: k)) }
        func r(_ k: Int) -> KExpr {
            let v = at(rbuf, mat(gates, gate: k))
            return rb.map { .binary(.add, v, at($0, .int(k * u) + j)) } ?? v
        }
        let hOld = at(hb, mat(u)), cOld = at(cb, mat(u))
        var hNew: KExpr
        var gateValues: [KExpr] = []
        var aux: KExpr? = nil
        switch cell.kind {
        case .lstm:
            let i = rAct(.binary(.add, x(0), r(0))), f = rAct(.binary(.add, x(1), r(1)))
            let cc = act(.binary(.add, x(2), r(2))), o = rAct(.binary(.add, x(3), r(3)))
            let cNew = KExpr.binary(.add, .binary(.mul, f, cOld), .binary(.mul, i, cc))
            hNew = .binary(.mul, o, act(cNew))
            let cKept = masked(cNew, else: cOld)
            stores.append(KStore(cb, mat(u), cKept))
            gateValues = [i, f, cc, o]
            aux = cKept
        case .gru:
            let z = rAct(.binary(.add, x(0), r(0))), rr = rAct(.binary(.add, x(1), r(1)))
            let hh = act(.binary(.add, x(2), .binary(.mul, rr, r(2))))
            hNew = .binary(.add, .binary(.mul, z, hOld), .binary(.mul, .binary(.sub, .real(1), z), hh))
            gateValues = [z, rr, hh]
            aux = r(2)
        case .simpleRNN:
            hNew = act(.binary(.add, x(0), r(0)))
            gateValues = [hNew]
        }
        let hKept = masked(hNew, else: hOld)
        stores.append(KStore(hb, mat(u), hKept))
        let out = cell.zeroOutputForMask ? masked(hNew, else: .real(0)) : hKept
        stores.append(KStore(sb, seq(.scanOutput, u), out))
        // Each step's output overwrites the last one: what stays is the last step's.
        stores.append(KStore(lb, mat(u, batch: true), out))
        if let (gb, ab, pb) = rec {
            for (k, v) in gateValues.enumerated() { stores.append(KStore(gb, seq(.scanStep, gates, gate: k), v)) }
            if let aux { stores.append(KStore(ab, seq(.scanStep, u), aux)) }
            stores.append(KStore(pb, seq(.scanStep, u), hOld))
        }
        let first = stores.removeFirst()
        var k = LoopKernel(buffers: buffers, loops: [.n, .int(u)], body: first.value, output: first.buffer, outputIndex: first.index)
        k.extraStores = stores
        var step = ScanStep(cell: cell, backward: false, length: time.fixedValue, kernel: k, args: args, mask: mask,
                            a: hOut, b: n.inputs[1], c: scratch, carries: [hOut, cOut], initial: initial)
        step.recurrentDropout = dropMask
        if let rowMapSlot { step.rowOrder = ScanStep.RowOrder(rowMap: rowMapSlot, sequence: sb, last: lb) }
        return step
    }

    // Inputs dSeq, dLast, dH, dC, U, [rb], [mask], gates, aux, hprev; outputs dProj, dInner, dh, dc.
    let base = 3 + cell.inputCount
    let dSeq = bind(n.inputs[0]), dLast = bind(n.inputs[1])
    let (gb, ab, pb) = (bind(n.inputs[base]), bind(n.inputs[base + 1]), bind(n.inputs[base + 2]))
    let dProj = bind(n.outputs[0], written: true)
    let dInner = cell.kind == .gru ? bind(n.outputs[1], written: true) : nil
    let (dhb, dcb) = (bind(n.outputs[2], written: true), bind(n.outputs[3], written: true))
    func gate(_ k: Int) -> KExpr { at(gb, seq(.scanStep, gates, gate: k)) }
    // The last output is the output of the last processing step (position 0 when flipped).
    let lastPosition: KExpr = cell.flipOutput ? .int(0) : t - .int(1)
    let dSeqAt = KExpr.binary(.add, at(dSeq, seq(.scanOutput, u)),
                              .guardedLoad(buffer: dLast, at: mat(u), valid: .compare(.eq, .scanOutput, lastPosition), otherwise: 0))
    let dH = KExpr.binary(.add, at(dhb, mat(u)), cell.zeroOutputForMask ? masked(dSeqAt, else: .real(0)) : dSeqAt)
    let zero = KExpr.real(0)
    func mul(_ a: KExpr, _ b: KExpr) -> KExpr { .binary(.mul, a, b) }
    var dGates: [KExpr]
    switch cell.kind {
    case .lstm:
        let (i, f, cc, o) = (gate(0), gate(1), gate(2), gate(3))
        let cT = at(ab, seq(.scanStep, u))
        var cPrev = KExpr.guardedLoad(buffer: ab, at: seq(.scanPrevious, u), valid: .compare(.ge, .scanPrevious, .int(0)), otherwise: 0)
        // The first step's c_{-1}: the initial c when the scan starts from given states.
        if let c0 = initial[1] {
            cPrev = .binary(.add, cPrev, .guardedLoad(buffer: bind(c0), at: mat(u), valid: .compare(.lt, .scanPrevious, .int(0)), otherwise: 0))
        }
        let tc = act(cT)
        let dC = KExpr.binary(.add, at(dcb, mat(u)), mul(mul(dH, o), activationGrad(cell.activation, tc)))
        let rGrad = { (y: KExpr) in activationGrad(cell.recurrentActivation, y) }
        dGates = [mul(mul(dC, cc), rGrad(i)), mul(mul(dC, cPrev), rGrad(f)), mul(mul(dC, i), activationGrad(cell.activation, cc)),
                  mul(mul(dH, tc), rGrad(o))]
        stores.append(KStore(dcb, mat(u), masked(mul(dC, f), else: at(dcb, mat(u)))))
        stores.append(KStore(dhb, mat(u), masked(zero, else: dH)))
    case .gru:
        let (z, r, hh) = (gate(0), gate(1), gate(2))
        let ih = at(ab, seq(.scanStep, u)), hOld = at(pb, seq(.scanStep, u))
        let rGrad = { (y: KExpr) in activationGrad(cell.recurrentActivation, y) }
        let dz = mul(mul(dH, .binary(.sub, hOld, hh)), rGrad(z))
        let dhh = mul(mul(dH, .binary(.sub, .real(1), z)), activationGrad(cell.activation, hh))
        let dr = mul(mul(dhh, ih), rGrad(r))
        dGates = [dz, dr, dhh]
        for (k, v) in [dz, dr, mul(dhh, r)].enumerated() { stores.append(KStore(dInner!, seq(.scanStep, gates, gate: k), masked(v, else: zero))) }
        stores.append(KStore(dhb, mat(u), masked(mul(dH, z), else: dH)))
    case .simpleRNN:
        dGates = [mul(dH, activationGrad(cell.activation, gate(0)))]
        stores.append(KStore(dhb, mat(u), masked(zero, else: dH)))
    }
    for (k, v) in dGates.enumerated() { stores.append(KStore(dProj, seq(.scanStep, gates, gate: k), masked(v, else: zero))) }
    let first = stores.removeFirst()
    var k = LoopKernel(buffers: buffers, loops: [.n, .int(u)], body: first.value, output: first.buffer, outputIndex: first.index)
    k.extraStores = stores
    var step = ScanStep(cell: cell, backward: true, length: time.fixedValue, kernel: k, args: args, mask: mask,
                        a: n.outputs[dInner == nil ? 0 : 1], b: n.inputs[4], c: n.outputs[2], carries: [n.outputs[2], n.outputs[3]],
                        initial: [n.inputs[2], n.inputs[3]])
    step.recurrentDropout = dropMask
    return step
}
