// Keras' weight regularizers and constraints, as a parameter carries them (Param.regularizer,
// Param.constraint): read from a layer config's `<weight>_regularizer` / `<weight>_constraint`
// keys, used by the training step (the penalty joins the loss, the constraint follows each
// optimizer update).

import KilnSupport

/// Keras' L1, L2 and L1L2 regularizers: l1 * sum(|w|) + l2 * sum(w²).
public struct Regularizer: Hashable, Sendable, CustomStringConvertible {
    public var l1: Float
    public var l2: Float
    public init(l1: Float = 0, l2: Float = 0) { self.l1 = l1; self.l2 = l2 }

    public var description: String { "l1_l2<\(l1), \(l2)>" }

    /// Reads a serialized Keras regularizer (an object or a name); nil for null. `fail` makes
    /// the one-sentence refusal of anything else from a fragment ("OrthogonalRegularizer; Kiln
    /// supports L1, L2 and L1L2") the caller completes with the layer and the key.
    public static func parse(_ j: JSON?, fail: (String) -> Error) throws -> Regularizer? {
        guard let j, !j.isNull else { return nil }
        if let name = j.string {
            switch name {
            case "l1": return Regularizer(l1: 0.01)
            case "l2": return Regularizer(l2: 0.01)
            case "l1_l2", "l1l2": return Regularizer(l1: 0.01, l2: 0.01)
            default: throw fail("'\(name)'; Kiln supports L1, L2 and L1L2")
            }
        }
        let cls = j["class_name"]?.string ?? "?"
        let cfg = j["config"]
        func factor(_ key: String, _ fallback: Float) throws -> Float {
            guard let v = cfg?[key], !v.isNull else { return fallback }
            guard let f = v.float, f >= 0 else { throw fail("\(cls) with \(key)=\(v.serialized); expected a number >= 0") }
            return f
        }
        switch cls {
        case "L1": return Regularizer(l1: try factor("l1", 0.01))
        case "L2": return Regularizer(l2: try factor("l2", 0.01))
        case "L1L2": return Regularizer(l1: try factor("l1", 0), l2: try factor("l2", 0))
        default: throw fail("\(cls); Kiln supports L1, L2 and L1L2")
        }
    }

    /// The penalty of w, a scalar (Keras' `L1L2.__call__`).
    public func penalty(_ w: Value, _ b: inout PrimBuilder) throws -> Value? {
        let all = Array(0..<b.type(w).rank)
        var terms: [Value] = []
        if l1 != 0 {
            // |w| as select(w >= 0, w, -w): its gradient at 0 is +1, as JAX's abs has it (a NonNeg
            // constraint leaves weights at exactly 0).
            let absW = try b.select(try b.compare(.ge, w, try b.const(0)), w, try b.unary(.neg, w))
            terms.append(try b.mul(try b.reduce(.sum, absW, axes: all), l1))
        }
        if l2 != 0 { terms.append(try b.mul(try b.reduce(.sum, try b.unary(.square, w), axes: all), l2)) }
        guard var s = terms.first else { return nil }
        for t in terms.dropFirst() { s = try b.add(s, t) }
        return s
    }
}

/// Keras' weight constraints, applied to a weight after each optimizer update.
public enum Constraint: Hashable, Sendable, CustomStringConvertible {
    /// w * clip(norm, 0, maxValue) / (eps + norm), the norm over `axes`.
    case maxNorm(maxValue: Float, axes: [Int])
    /// max(w, 0).
    case nonNeg
    /// w / (eps + norm).
    case unitNorm(axes: [Int])
    /// w * (rate * clip(norm, min, max) + (1 - rate) * norm) / (eps + norm).
    case minMaxNorm(minValue: Float, maxValue: Float, rate: Float, axes: [Int])

    public var description: String {
        switch self {
        case let .maxNorm(m, a): return "max_norm<\(m), axis \(a)>"
        case .nonNeg: return "non_neg"
        case let .unitNorm(a): return "unit_norm<axis \(a)>"
        case let .minMaxNorm(lo, hi, r, a): return "min_max_norm<\(lo), \(hi), rate \(r), axis \(a)>"
        }
    }

    /// Reads a serialized Keras constraint (an object or a name); nil for null.
    public static func parse(_ j: JSON?, fail: (String) -> Error) throws -> Constraint? {
        guard let j, !j.isNull else { return nil }
        let cls: String
        let cfg: JSON?
        if let name = j.string {
            let names = ["max_norm": "MaxNorm", "non_neg": "NonNeg", "unit_norm": "UnitNorm", "min_max_norm": "MinMaxNorm"]
            guard let c = names[name] else { throw fail("'\(name)'; Kiln supports MaxNorm, NonNeg, UnitNorm and MinMaxNorm") }
            cls = c; cfg = nil
        } else {
            cls = j["class_name"]?.string ?? "?"; cfg = j["config"]
        }
        func number(_ key: String, _ fallback: Float) throws -> Float {
            guard let v = cfg?[key], !v.isNull else { return fallback }
            guard let f = v.float else { throw fail("\(cls) with \(key)=\(v.serialized); expected a number") }
            return f
        }
        func axes() throws -> [Int] {
            guard let v = cfg?["axis"], !v.isNull else { return [0] }
            if let a = v.int { return [a] }
            if let a = v.ints { return a }
            throw fail("\(cls) with axis=\(v.serialized); expected an integer or a list of integers")
        }
        switch cls {
        case "MaxNorm": return .maxNorm(maxValue: try number("max_value", 2), axes: try axes())
        case "NonNeg": return .nonNeg
        case "UnitNorm": return .unitNorm(axes: try axes())
        case "MinMaxNorm":
            return .minMaxNorm(minValue: try number("min_value", 0), maxValue: try number("max_value", 1),
                               rate: try number("rate", 1), axes: try axes())
        default: throw fail("\(cls); Kiln supports MaxNorm, NonNeg, UnitNorm and MinMaxNorm")
        }
    }

    /// The axes of a weight of rank `rank` (negative ones from the end), or nil when out of range.
    public func resolvedAxes(rank: Int) -> [Int]? {
        let raw: [Int]
        switch self {
        case .nonNeg: return []
        case let .maxNorm(_, a), let .unitNorm(a), let .minMaxNorm(_, _, _, a): raw = a
        }
        let r = raw.map { $0 < 0 ? $0 + rank : $0 }
        guard r.allSatisfy({ $0 >= 0 && $0 < rank }) else { return nil }
        return Array(Set(r)).sorted()
    }

    /// The constrained weight, as Keras' `Constraint.__call__` computes it.
    public func apply(_ w: Value, _ b: inout PrimBuilder) throws -> Value {
        let eps: Float = 1e-7   // keras.backend.epsilon()
        let rank = b.type(w).rank
        guard let axes = resolvedAxes(rank: rank) else {
            throw ShapeError(layer: b.layer, "constraint \(self) does not fit a weight of rank \(rank)")
        }
        func norms() throws -> Value {
            try b.unary(.sqrt, try b.reduce(.sum, try b.unary(.square, w), axes: axes, keepDims: true))
        }
        func clip(_ x: Value, _ lo: Float, _ hi: Float) throws -> Value {
            try b.binary(.min, try b.binary(.max, x, try b.const(lo)), try b.const(hi))
        }
        switch self {
        case .nonNeg:
            return try b.binary(.max, w, try b.const(0))
        case let .maxNorm(m, _):
            let n = try norms()
            return try b.mul(w, try b.div(try clip(n, 0, m), try b.add(n, eps)))
        case .unitNorm:
            return try b.div(w, try b.add(try norms(), eps))
        case let .minMaxNorm(lo, hi, rate, _):
            let n = try norms()
            let desired = try b.add(try b.mul(try clip(n, lo, hi), rate), try b.mul(n, 1 - rate))
            return try b.mul(w, try b.div(desired, try b.add(n, eps)))
        }
    }
}
