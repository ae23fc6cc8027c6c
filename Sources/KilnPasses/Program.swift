import KilnIR

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
    /// Where the parameters live (shared by every program of the model).
    public var state: StateLayout
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
