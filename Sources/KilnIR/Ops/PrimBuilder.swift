// The builder that lowering, losses, optimizers and the gradient rules append
// primitives with.

/// Appends primitives to a graph on behalf of one layer.
public struct PrimBuilder {
    public var graph: Graph
    public var layer: String
    public init(graph: Graph, layer: String) { self.graph = graph; self.layer = layer }

    public func type(_ v: Value) -> TensorType { graph.type(v) }
    public mutating func p(_ op: PrimOp, _ ins: Value...) throws -> Value {
        try graph.add(.prim(op), ins, layer: layer)[0]
    }
    public mutating func const(_ c: Float) throws -> Value { try p(.constant(c)) }
    public mutating func unary(_ u: UnaryOp, _ x: Value) throws -> Value { try p(.unary(u), x) }
    public mutating func binary(_ o: BinaryOp, _ a: Value, _ b: Value) throws -> Value { try p(.binary(o), a, b) }
    public mutating func add(_ a: Value, _ b: Value) throws -> Value { try binary(.add, a, b) }
    public mutating func sub(_ a: Value, _ b: Value) throws -> Value { try binary(.sub, a, b) }
    public mutating func mul(_ a: Value, _ b: Value) throws -> Value { try binary(.mul, a, b) }
    public mutating func div(_ a: Value, _ b: Value) throws -> Value { try binary(.div, a, b) }
    public mutating func mul(_ a: Value, _ c: Float) throws -> Value { try mul(a, try const(c)) }
    public mutating func add(_ a: Value, _ c: Float) throws -> Value { try add(a, try const(c)) }
    public mutating func reshape(_ x: Value, _ shape: [Dim]) throws -> Value {
        type(x).shape == shape ? x : try p(.reshape(shape), x)
    }
    public mutating func reduce(_ op: ReduceOp, _ x: Value, axes: [Int], keepDims: Bool = false) throws -> Value {
        try p(.reduce(op, axes: axes, keepDims: keepDims), x)
    }
    public mutating func select(_ c: Value, _ a: Value, _ b: Value) throws -> Value { try p(.select, c, a, b) }
    public mutating func compare(_ op: CompareOp, _ a: Value, _ b: Value) throws -> Value { try p(.compare(op), a, b) }
    public mutating func cast(_ x: Value, _ t: DType) throws -> Value { type(x).dtype == t ? x : try p(.cast(t), x) }

    /// Sums a gradient over the dimensions that broadcasting added, back to `shape`.
    public mutating func sumTo(_ x: Value, _ shape: [Dim]) throws -> Value {
        let xs = type(x).shape
        if xs == shape { return x }
        let lead = xs.count - shape.count
        var axes = Array(0..<lead)
        for (k, d) in shape.enumerated() where d == .fixed(1) && xs[k + lead] != .fixed(1) { axes.append(k + lead) }
        let s = axes.isEmpty ? x : try reduce(.sum, x, axes: axes)
        return try reshape(s, shape)
    }

    /// A zero tensor of the given shape (broadcast from a scalar).
    public mutating func zeros(_ shape: [Dim]) throws -> Value {
        try p(.broadcast(shape), try const(0))
    }
}
