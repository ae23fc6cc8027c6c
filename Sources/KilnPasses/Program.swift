import KilnIR

/// One step of a compiled program, in the order it runs.
public enum Step: Hashable, Sendable, CustomStringConvertible {
    /// A loop kernel; `args[k]` is the value bound to kernel buffer k.
    case loop(LoopKernel, args: [Value])
    /// C = op(A)·op(B) through cblas_sgemm; M, N, K may scale with the batch.
    case gemm(a: Value, b: Value, c: Value, transA: Bool, transB: Bool, m: KExpr, n: KExpr, k: KExpr)
    /// Sets every element of a value to zero.
    case zero(Value)

    public var description: String {
        switch self {
        case let .loop(k, args): return "loop(" + args.map(\.description).joined(separator: ", ") + ") " + k.description
        case let .gemm(a, b, c, ta, tb, m, n, k):
            return "gemm \(c) = \(a)\(ta ? "ᵀ" : "")·\(b)\(tb ? "ᵀ" : "") [\(m)x\(n)x\(k)]"
        case .zero(let v): return "zero \(v)"
        }
    }

    /// Values the step reads and writes.
    public var reads: [Value] {
        switch self {
        case let .loop(k, args):
            // An accumulating kernel reads its output too.
            return zip(k.buffers, args).filter { !$0.0.written }.map(\.1) + (k.accumulate ? [args[k.output]] : [])
        case let .gemm(a, b, _, _, _, _, _, _): return [a, b]
        case .zero: return []
        }
    }
    public var writes: [Value] {
        switch self {
        case let .loop(k, args): return zip(k.buffers, args).filter { $0.0.written }.map(\.1)
        case let .gemm(_, _, c, _, _, _, _, _): return [c]
        case .zero(let v): return [v]
        }
    }
}

/// Where a value lives at run time.
public enum Home: Hashable, Sendable {
    /// The caller's input array k (read-only).
    case input(Int)
    /// The instance's state block at a byte offset (weights, optimizer slots).
    case state(Int)
    /// The arena, at perSample * N + fixed bytes (see `Program.arenaFixedBase`).
    case arena(perSample: Int, fixed: Int)
}

/// A scheduled, planned program: what codegen turns into one entry function.
public struct Program: Sendable {
    public var name: String
    public var graph: Graph
    public var steps: [Step]
    public var homes: [Value: Home]
    /// Arena bytes per row of N, and fixed bytes (placed after the per-row part).
    public var arenaPerSample: Int
    public var arenaFixed: Int
    /// Values copied to the caller's output arrays at the end (predict).
    public var outputs: [Value]
    /// The scalar returned (the loss of a training step), if any.
    public var result: Value?
    /// Scalars written to the step's metrics array, in order.
    public var metrics: [Value] = []

    public var description: String {
        var s = ""
        for st in steps { s += st.description + "\n" }
        return s
    }
}
