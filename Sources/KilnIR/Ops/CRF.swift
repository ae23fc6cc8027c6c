// A linear-chain conditional random field over tag paths (the CRF layer, KilnIR/CRF.swift), as
// three primitives that the runtime runs (Runtime/kiln_crf.c), because each is a recurrence over
// the steps that a loop kernel cannot express:
//   crf_nll(e, A, s, f, y, [m])          -> nll (N): logZ - score(y), the forward algorithm
//   crf_nll_grad(e, A, s, f, y, g, [m])  -> d e (N, T, n), and per row d A (N, n, n), d s (N, n), d f (N, n)
//   crf_viterbi(e, A, s, f, [m])         -> tags i32 (N, T), backpointers i32 (N, T, n)
// with emissions e (N, T, n), transitions A (n, n) (A[i, j]: tag i followed by tag j), start s (n),
// end f (n), tags y i32 (N, T) and the mask m bool (N, T). A masked step is skipped: the chain links
// consecutive unmasked steps v_0 < ... < v_{L-1}, and
//   score(y) = s[y_v0] + Σ_k e[v_k, y_vk] + Σ_{k≥1} A[y_v(k-1), y_vk] + f[y_v(L-1)],
//   logZ = log Σ over all n^L paths of exp(score);
// a row with L = 0 has NLL 0. Viterbi breaks ties towards the lower tag and writes 0 at masked steps.
// The gradient of the NLL is forward-backward: marginals minus the one-hot of y (per row; the
// gradient rule sums the rows of the weights' parts). An unmasked tag outside [0, n) makes the
// row's NLL and gradient NaN.

import Foundation

public enum ChainCRF: PrimitiveFamily {
    /// The most tags the runtime's kernels take (KILN_CRF_MAX_TAGS, Runtime/kiln_runtime.h): each
    /// row's scratch vectors are arrays of that size on the stack.
    public static let maxTags = 1024

    /// Input counts of each op, the mask (optional, last) included.
    static func arity(_ op: PrimOp) -> ClosedRange<Int> {
        switch op {
        case .crfNLL: return 5...6
        case .crfNLLGrad: return 6...7
        case .crfViterbi: return 4...5
        default: notInFamily(op, Self.self)
        }
    }

    public static func infer(_ op: PrimOp, _ ins: [TensorType], layer: String) throws -> [TensorType] {
        let counts = arity(op)
        try expectArity(ins, counts, layer)
        let e = ins[0]
        guard e.dtype == .f32, e.rank == 3, let n = e.shape[2].fixedValue, n >= 1, n <= maxTags else {
            throw primShapeError(op, layer: layer, "needs emissions (rows, steps, tags) of f32 with at most \(maxTags) tags, got \(e)")
        }
        let (rows, steps) = (e.shape[0], e.shape[1])
        var want: [(String, TensorType)] = [("transitions", .f32([.fixed(n), .fixed(n)])), ("start", .f32([.fixed(n)])),
                                            ("end", .f32([.fixed(n)]))]
        if op != .crfViterbi { want.append(("tags", TensorType(.i32, [rows, steps]))) }
        if op == .crfNLLGrad { want.append(("dnll", .f32([rows]))) }
        if ins.count == counts.upperBound { want.append(("mask", TensorType(.bool, [rows, steps]))) }
        for (k, (what, t)) in want.enumerated() where ins[k + 1] != t {
            throw primShapeError(op, layer: layer, "needs \(what) \(t) for emissions \(e), got \(ins[k + 1])")
        }
        switch op {
        case .crfNLL: return [.f32([rows])]
        case .crfNLLGrad: return [e, .f32([rows, .fixed(n), .fixed(n)]), .f32([rows, .fixed(n)]), .f32([rows, .fixed(n)])]
        case .crfViterbi: return [TensorType(.i32, [rows, steps]), TensorType(.i32, [rows, steps, .fixed(n)])]
        default: notInFamily(op, Self.self)
        }
    }

    /// d nll -> d emissions, and d transitions, d start, d end summed over the rows.
    public static func gradient(_ op: PrimOp, _ n: Node, _ dys: [Value?], _ b: inout PrimBuilder) throws -> [Value?] {
        switch op {
        case .crfNLL:
            let masked = n.inputs.count == arity(op).upperBound
            let ins = Array(n.inputs.prefix(5)) + [dys[0]!] + (masked ? [n.inputs[5]] : [])
            let d = try b.graph.add(.prim(.crfNLLGrad), ins, layer: b.layer)
            return [d[0], try b.reduce(.sum, d[1], axes: [0]), try b.reduce(.sum, d[2], axes: [0]), try b.reduce(.sum, d[3], axes: [0]), nil]
                + (masked ? [nil] : [])
        case .crfViterbi:
            // Tag ids: nothing flows back.
            return n.inputs.map { _ in nil }
        case .crfNLLGrad:
            throw ShapeError(layer: n.layer, "\(op) has no gradient rule (it should not appear before autodiff)")
        default: notInFamily(op, Self.self)
        }
    }

    public static func evaluate(_ op: PrimOp, _ n: Node, _ ins: [Tensor], _ outDims: [[Int]], _ ctx: inout EvalContext) throws -> [[Double]] {
        let masked = ins.count == arity(op).upperBound
        let chain = CRFReference(ins[0], transitions: ins[1].data, start: ins[2].data, end: ins[3].data, mask: masked ? ins.last : nil)
        let (rows, steps, tags) = (chain.rows, chain.steps, chain.tags)
        switch op {
        case .crfNLL:
            return [(0..<rows).map { chain.nll(row: $0, path: ins[4]) }]
        case .crfNLLGrad:
            var outs = [[Double](repeating: 0, count: rows * steps * tags), [Double](repeating: 0, count: rows * tags * tags),
                        [Double](repeating: 0, count: rows * tags), [Double](repeating: 0, count: rows * tags)]
            for r in 0..<rows {
                let d = chain.gradient(row: r, path: ins[4], scale: ins[5].data[r])
                outs[0].replaceSubrange(r * steps * tags..<(r + 1) * steps * tags, with: d.emissions)
                outs[1].replaceSubrange(r * tags * tags..<(r + 1) * tags * tags, with: d.transitions)
                outs[2].replaceSubrange(r * tags..<(r + 1) * tags, with: d.start)
                outs[3].replaceSubrange(r * tags..<(r + 1) * tags, with: d.end)
            }
            return outs
        case .crfViterbi:
            var path = [Double](), pointers = [Double]()
            for r in 0..<rows {
                let v = chain.viterbi(row: r)
                path += v.path.map(Double.init)
                pointers += v.pointers.map(Double.init)
            }
            return [path, pointers]
        default: notInFamily(op, Self.self)
        }
    }

    /// One runtime call (kiln_crf.c): the inputs (NULL for an absent mask), the outputs, then rows,
    /// steps and tags.
    public static func kernel(_ op: PrimOp, _ n: Node, in g: Graph) -> [Step] {
        let counts = arity(op)
        let e = g.type(n.inputs[0])
        let masked = n.inputs.count == counts.upperBound
        let inputs: [Value?] = Array(n.inputs.prefix(counts.lowerBound)) + [masked ? n.inputs.last! : nil]
        let function: String
        switch op {
        case .crfNLL: function = "kiln_crf_nll"
        case .crfNLLGrad: function = "kiln_crf_nll_grad"
        case .crfViterbi: function = "kiln_crf_viterbi"
        default: notInFamily(op, Self.self)
        }
        return [.call(RuntimeCall(function, inputs: inputs, outputs: n.outputs,
                                  sizes: [extent(e.shape[0]), extent(e.shape[1]), .int(e.shape[2].factor)]))]
    }

    public static func describe(_ op: PrimOp) -> String {
        switch op {
        case .crfNLL: return "crf_nll"
        case .crfNLLGrad: return "crf_nll_grad"
        case .crfViterbi: return "crf_viterbi"
        default: notInFamily(op, Self.self)
        }
    }

    public static func fusedForm(_ op: PrimOp) -> FusedExpr? { nil }

    public static func effects(_ op: PrimOp) -> PrimEffects { .none }
}

/// The float64 meaning of the CRF primitives, written the textbook way: the forward and backward
/// recursions over each row's unmasked steps, kept whole.
struct CRFReference {
    let emissions: Tensor, transitions: [Double], start: [Double], end: [Double], mask: Tensor?
    let rows: Int, steps: Int, tags: Int

    init(_ emissions: Tensor, transitions: [Double], start: [Double], end: [Double], mask: Tensor?) {
        self.emissions = emissions; self.transitions = transitions; self.start = start; self.end = end; self.mask = mask
        (rows, steps, tags) = (emissions.dims[0], emissions.dims[1], emissions.dims[2])
    }

    func e(_ r: Int, _ t: Int, _ j: Int) -> Double { emissions.data[(r * steps + t) * tags + j] }
    func a(_ i: Int, _ j: Int) -> Double { transitions[i * tags + j] }

    /// The unmasked steps of row r, in order.
    func unmasked(_ r: Int) -> [Int] { (0..<steps).filter { mask == nil || mask!.data[r * steps + $0] != 0 } }

    func logSumExp(_ xs: [Double]) -> Double {
        let m = xs.reduce(-Double.infinity, max)
        guard m.isFinite else { return m }
        return m + log(xs.reduce(0) { $0 + exp($1 - m) })
    }

    /// alpha[k][j]: log Σ exp(score) over paths through steps v_0 ... v_k that end in tag j.
    func forward(_ r: Int, _ v: [Int]) -> [[Double]] {
        var alpha = [(0..<tags).map { start[$0] + e(r, v[0], $0) }]
        for k in v.indices.dropFirst() {
            let prev = alpha[k - 1]
            alpha.append((0..<tags).map { j in logSumExp((0..<tags).map { prev[$0] + a($0, j) }) + e(r, v[k], j) })
        }
        return alpha
    }

    /// beta[k][i]: log Σ exp(score) over the rest of the path after steps v_0 ... v_k, given tag i at v_k.
    func backward(_ r: Int, _ v: [Int]) -> [[Double]] {
        var beta = [[Double]](repeating: [], count: v.count)
        beta[v.count - 1] = end
        for k in v.indices.dropLast().reversed() {
            beta[k] = (0..<tags).map { i in logSumExp((0..<tags).map { j in a(i, j) + e(r, v[k + 1], j) + beta[k + 1][j] }) }
        }
        return beta
    }

    /// Row r's tags at its unmasked steps, nil when one is out of range.
    func gold(_ r: Int, _ v: [Int], _ path: Tensor) -> [Int]? {
        let y = v.map { Int(path.data[r * steps + $0]) }
        return y.allSatisfy({ $0 >= 0 && $0 < tags }) ? y : nil
    }

    func nll(row r: Int, path: Tensor) -> Double {
        let v = unmasked(r)
        guard !v.isEmpty else { return 0 }
        guard let y = gold(r, v, path) else { return .nan }
        let alpha = forward(r, v)
        let logZ = logSumExp((0..<tags).map { alpha[v.count - 1][$0] + end[$0] })
        var score = start[y[0]] + end[y[v.count - 1]]
        for k in v.indices { score += e(r, v[k], y[k]) + (k > 0 ? a(y[k - 1], y[k]) : 0) }
        return logZ - score
    }

    /// scale · d nll / d (emissions of the row, transitions, start, end).
    func gradient(row r: Int, path: Tensor, scale g: Double) -> (emissions: [Double], transitions: [Double], start: [Double], end: [Double]) {
        var de = [Double](repeating: 0, count: steps * tags), da = [Double](repeating: 0, count: tags * tags)
        var ds = [Double](repeating: 0, count: tags), df = [Double](repeating: 0, count: tags)
        let v = unmasked(r)
        guard !v.isEmpty else { return (de, da, ds, df) }
        guard let y = gold(r, v, path) else {
            let nan = { (c: Int) in [Double](repeating: .nan, count: c) }
            return (nan(steps * tags), nan(tags * tags), nan(tags), nan(tags))
        }
        let (alpha, beta) = (forward(r, v), backward(r, v))
        let last = v.count - 1
        let logZ = logSumExp((0..<tags).map { alpha[last][$0] + end[$0] })
        for k in v.indices {
            for j in 0..<tags {
                let p = exp(alpha[k][j] + beta[k][j] - logZ) - (j == y[k] ? 1 : 0)
                de[v[k] * tags + j] = g * p
                if k == 0 { ds[j] = g * p }
                if k == last { df[j] = g * p }
            }
            guard k > 0 else { continue }
            for i in 0..<tags {
                for j in 0..<tags {
                    let pair = exp(alpha[k - 1][i] + a(i, j) + e(r, v[k], j) + beta[k][j] - logZ)
                    da[i * tags + j] += g * (pair - (i == y[k - 1] && j == y[k] ? 1 : 0))
                }
            }
        }
        return (de, da, ds, df)
    }

    /// The best path of row r (0 at masked steps) and the backpointers (0 at the first unmasked and
    /// the masked steps); ties go to the lower tag.
    func viterbi(row r: Int) -> (path: [Int], pointers: [Int]) {
        var path = [Int](repeating: 0, count: steps), pointers = [Int](repeating: 0, count: steps * tags)
        let v = unmasked(r)
        guard !v.isEmpty else { return (path, pointers) }
        var delta = (0..<tags).map { start[$0] + e(r, v[0], $0) }
        for t in v.dropFirst() {
            var next = [Double](repeating: 0, count: tags)
            for j in 0..<tags {
                var best = 0
                for i in 1..<tags where delta[i] + a(i, j) > delta[best] + a(best, j) { best = i }
                next[j] = delta[best] + a(best, j) + e(r, t, j)
                pointers[t * tags + j] = best
            }
            delta = next
        }
        var best = 0
        for j in 1..<tags where delta[j] + end[j] > delta[best] + end[best] { best = j }
        path[v.last!] = best
        for k in v.indices.dropFirst().reversed() { path[v[k - 1]] = pointers[v[k] * tags + path[v[k]]] }
        return (path, pointers)
    }
}
