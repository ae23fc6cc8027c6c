import KilnIR

/// One step of a compiled program, in the order it runs.
public enum Step: Hashable, Sendable, CustomStringConvertible {
    /// A loop kernel; `args[k]` is the value bound to kernel buffer k.
    case loop(LoopKernel, args: [Value])
    /// C = op(A)·op(B) by the runtime (kiln_gemm), then the epilogue if any; M, N, K may scale with the batch.
    case gemm(a: Value, b: Value, c: Value, transA: Bool, transB: Bool, m: KExpr, n: KExpr, k: KExpr, epilogue: Epilogue?)
    /// Sets every element of a value to zero.
    case zero(Value)
    /// A scan over the time steps (ScanKernels.swift).
    case scan(ScanStep)
    /// dx = the input gradient of a convolution, by the runtime (kiln_conv2d_grad_input).
    case convGradInput(dy: Value, w: Value, dx: Value, Window2D)
    /// y = a convolution, by the runtime (kiln_conv2d), then the epilogue if any.
    case conv(x: Value, w: Value, y: Value, Window2D, epilogue: Epilogue?)

    public var description: String {
        switch self {
        case let .loop(k, args): return "loop(" + args.map(\.description).joined(separator: ", ") + ") " + k.description
        case let .gemm(a, b, c, ta, tb, m, n, k, e):
            return "gemm \(c) = \(a)\(ta ? "ᵀ" : "")·\(b)\(tb ? "ᵀ" : "") [\(m)x\(n)x\(k)]" + (e.map { " " + $0.description } ?? "")
        case .zero(let v): return "zero \(v)"
        case .scan(let s): return s.description
        case let .convGradInput(dy, w, dx, win): return "conv2d_grad_input \(dx) = \(dy) ⋆ \(w) \(win.kh)x\(win.kw)/\(win.sh)x\(win.sw)"
        case let .conv(x, w, y, win, e):
            return "conv2d \(y) = \(x) ⋆ \(w) \(win.kh)x\(win.kw)/\(win.sh)x\(win.sw)" + (e.map { " " + $0.description } ?? "")
        }
    }

    /// Values the step reads and writes.
    public var reads: [Value] {
        switch self {
        case let .loop(k, args):
            // An accumulating kernel reads its output too.
            return zip(k.buffers, args).filter { !$0.0.written }.map(\.1) + (k.accumulate ? [args[k.output]] : [])
        case let .gemm(a, b, _, _, _, _, _, _, e): return [a, b] + (e.map { [$0.bias] } ?? [])
        case .zero: return []
        case .scan(let s): return s.reads
        case let .convGradInput(dy, w, _, _): return [dy, w]
        case let .conv(x, w, _, _, e): return [x, w] + (e.map { [$0.bias] } ?? [])
        }
    }
    public var writes: [Value] {
        switch self {
        case let .loop(k, args): return zip(k.buffers, args).filter { $0.0.written }.map(\.1)
        case let .gemm(_, _, c, _, _, _, _, _, _): return [c]
        case .zero(let v): return [v]
        case .scan(let s): return s.writes
        case let .convGradInput(_, _, dx, _): return [dx]
        case let .conv(_, _, y, _, _): return [y]
        }
    }
}

/// What a product or convolution applies to each element of its result before storing it: the
/// bias of its column (channel) added, then relu when asked, as the loop it replaces did
/// (Planner.fuseEpilogues).
public struct Epilogue: Hashable, Sendable, CustomStringConvertible {
    public var bias: Value
    public var relu: Bool
    public init(bias: Value, relu: Bool) { self.bias = bias; self.relu = relu }
    public var description: String { relu ? "then relu(+ \(bias))" : "then + \(bias)" }
}

/// Where a value lives at run time.
public enum Home: Hashable, Sendable {
    /// The caller's input array k (read-only).
    case input(Int)
    /// The instance's state block at a byte offset (weights, optimizer slots).
    case state(Int)
    /// The arena: a byte offset within the pool of values that scale the same way (see `Program.arena`).
    case arena(Scale, Int)
}

/// A scheduled, planned program: what codegen turns into one entry function.
public struct Program: Sendable {
    public var name: String
    public var graph: Graph
    public var steps: [Step]
    public var homes: [Value: Home]
    /// Arena bytes of each pool per unit of its scale. The pools lie in the order of
    /// `Program.poolOrder`: per row-step (N·T), per row (N), per step (T), fixed.
    public var arena: [Scale: Int]
    public static let poolOrder = [Scale(n: true, t: true), Scale(n: true, t: false), Scale(n: false, t: true), Scale.fixed]
    public var arenaPerSample: Int { arena[Scale(n: true, t: false)] ?? 0 }
    public var arenaPerSampleStep: Int { arena[Scale(n: true, t: true)] ?? 0 }
    public var arenaPerStep: Int { arena[Scale(n: false, t: true)] ?? 0 }
    public var arenaFixed: Int { arena[.fixed] ?? 0 }
    /// The arena's size for n rows of t steps.
    public func arenaBytes(n: Int, t: Int) -> Int {
        arenaPerSampleStep * n * t + arenaPerSample * n + arenaPerStep * t + arenaFixed
    }
    /// A one-line description of the arena's pools.
    public var arenaDescription: String {
        Program.poolOrder.filter { (arena[$0] ?? 0) > 0 }.map { "\(arena[$0]!) bytes per \($0 == .fixed ? "call" : $0.description)" }
            .joined(separator: " + ")
    }
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

/// Indices i where steps i and i + 1 are independent scans (the second reads nothing the first
/// writes, and the other way round) that the program runs at once, one per thread (a
/// Bidirectional layer's two directions). The planner keeps their memory apart.
public func pairedScans(_ steps: [Step]) -> Set<Int> {
    var pairs = Set<Int>()
    var i = 0
    while i + 1 < steps.count {
        if case .scan(let a) = steps[i], case .scan(let b) = steps[i + 1],
           Set(b.reads + b.writes).isDisjoint(with: a.writes), Set(a.reads).isDisjoint(with: b.writes) {
            pairs.insert(i)
            i += 2
        } else {
            i += 1
        }
    }
    return pairs
}
