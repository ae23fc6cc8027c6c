// Shape rules for layer ops (a primitive's is in its family's file, Ops/*.swift).
// Errors name the layer, both shapes and a hint.

extension LayerOp {
    /// The Keras class name, for messages and `kiln summary`.
    public var kerasClass: String {
        switch self {
        case .notEqual: return "NotEqual"
        case .anyLastAxis: return "Any"
        case .table(let t): return t.kind.kerasClass
        }
    }
}

/// Numpy broadcasting of two shapes; nil if they do not broadcast.
public func broadcastShapes(_ a: [Dim], _ b: [Dim]) -> [Dim]? {
    let r = max(a.count, b.count)
    let pa = [Dim](repeating: .fixed(1), count: r - a.count) + a
    let pb = [Dim](repeating: .fixed(1), count: r - b.count) + b
    var out: [Dim] = []
    for (x, y) in zip(pa, pb) {
        if x == y { out.append(x) }
        else if x == .fixed(1) { out.append(y) }
        else if y == .fixed(1) { out.append(x) }
        else { return nil }
    }
    return out
}

func perSample(_ t: TensorType) -> [Int] { Array(t.shape.dropFirst().map(\.factor)) }

/// Infers the output types of an op from its input types.
public func inferTypes(_ op: Op, _ ins: [TensorType], layer: String) throws -> [TensorType] {
    switch op {
    case .layer(.table(let t)): return try t.kind.infer(ins, layer: "\(t.kind.kerasClass) '\(layer)'")
    case .layer(let l): return [try inferLayer(l, ins, layer: "\(l.kerasClass) '\(layer)'")]
    case .prim(let p): return try inferPrim(p, ins, layer: layer)
    }
}

public func expectArity(_ ins: [TensorType], _ counts: ClosedRange<Int>, _ layer: String) throws {
    if !counts.contains(ins.count) {
        throw ShapeError(layer: layer, "takes \(counts.lowerBound == counts.upperBound ? "\(counts.lowerBound)" : "\(counts.lowerBound) to \(counts.upperBound)") inputs, got \(ins.count)")
    }
}

public func inferLayer(_ op: LayerOp, _ ins: [TensorType], layer: String) throws -> TensorType {
    guard let x = ins.first else { throw ShapeError(layer: layer, "has no input") }
    switch op {
    case .table(let t):
        return try t.kind.infer(ins, layer: layer)[0]
    case .notEqual:
        try expectArity(ins, 1...1, layer)
        return TensorType(.bool, x.shape)
    case .anyLastAxis:
        try expectArity(ins, 1...1, layer)
        guard x.rank >= 2 else { throw ShapeError(layer: layer, "reduces the last axis of \(x.kerasDescription), which has no axis but the batch") }
        return TensorType(.bool, Array(x.shape.dropLast()))
    }
}

extension FusedExpr {
    /// Element type of the result.
    public func resultType(_ args: [DType]) -> DType {
        switch self {
        case .arg(let k): return args[k]
        case .const, .batchSize, .stepCount, .iteration, .unary, .binary: return .f32
        case .compare: return .bool
        case let .select(_, a, _): return a.resultType(args)
        case .cast(let t, _): return t
        }
    }
}
