// The linear-chain CRF by enumeration, in float64: every one of the n^L tag paths of a row's
// L unmasked steps scored one by one. The tests' independent reference for the CRF primitives
// and layer (nothing here shares code with KilnIR's recursions or the runtime's).

import Foundation

public struct BruteForceCRF {
    /// n, and the weights: transitions [i * n + j] (tag i followed by tag j), start (n), end (n).
    public var tags: Int
    public var transitions: [Double], start: [Double], end: [Double]

    public init(tags: Int, transitions: [Double], start: [Double], end: [Double]) {
        self.tags = tags; self.transitions = transitions; self.start = start; self.end = end
    }

    /// The score of `path` (one tag per unmasked step) on a row's emissions e (steps x n,
    /// row-major) at the unmasked steps `at`.
    public func score(_ e: [Double], at: [Int], path: [Int]) -> Double {
        var s = start[path[0]] + end[path[path.count - 1]]
        for (k, t) in at.enumerated() {
            s += e[t * tags + path[k]]
            if k > 0 { s += transitions[path[k - 1] * tags + path[k]] }
        }
        return s
    }

    /// Every path of length L, in lexicographic order.
    public func paths(_ length: Int) -> [[Int]] {
        var all: [[Int]] = [[]]
        for _ in 0..<length { all = all.flatMap { p in (0..<tags).map { p + [$0] } } }
        return all
    }

    /// The unmasked steps of a row (every step without a mask).
    public static func unmasked(_ mask: [Bool]?, steps: Int) -> [Int] { (0..<steps).filter { mask?[$0] ?? true } }

    /// log Σ exp(score) over all paths, nil for a row without unmasked steps.
    public func logZ(_ e: [Double], mask: [Bool]?) -> Double? {
        let at = Self.unmasked(mask, steps: e.count / tags)
        guard !at.isEmpty else { return nil }
        let scores = paths(at.count).map { score(e, at: at, path: $0) }
        let m = scores.max()!
        return m + log(scores.reduce(0) { $0 + exp($1 - m) })
    }

    /// logZ - score(y), with y given at every step (read at the unmasked ones); 0 without unmasked steps.
    public func nll(_ e: [Double], mask: [Bool]?, y: [Int]) -> Double {
        let at = Self.unmasked(mask, steps: e.count / tags)
        guard let z = logZ(e, mask: mask) else { return 0 }
        return z - score(e, at: at, path: at.map { y[$0] })
    }

    /// The highest-scoring path, 0 at masked steps, and its lead over the runner-up (so that a test
    /// can tell that the maximum is not a near tie).
    public func best(_ e: [Double], mask: [Bool]?) -> (path: [Int], margin: Double) {
        let steps = e.count / tags
        let at = Self.unmasked(mask, steps: steps)
        var out = [Int](repeating: 0, count: steps)
        guard !at.isEmpty else { return (out, .infinity) }
        let scored = paths(at.count).map { ($0, score(e, at: at, path: $0)) }.sorted { $0.1 > $1.1 }
        for (k, t) in at.enumerated() { out[t] = scored[0].0[k] }
        return (out, scored.count > 1 ? scored[0].1 - scored[1].1 : .infinity)
    }
}
