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

/// Infers the output types of an op from its input types.
public func inferTypes(_ op: Op, _ ins: [TensorType], layer: String) throws -> [TensorType] {
    switch op {
    case .prim(let p): return try inferPrim(p, ins, layer: layer)
    case .layer(let l): return try inferLayer(l, ins, layer: "\(l.kerasClass) '\(layer)'")
    }
}

/// A layer of the table by its kind; Keras' saved mask ops here. `name` is "Class 'layer'".
private func inferLayer(_ l: LayerOp, _ ins: [TensorType], layer name: String) throws -> [TensorType] {
    switch l {
    case .table(let t):
        return try t.kind.infer(ins, layer: name)
    case .notEqual:
        try expectArity(ins, 1...1, name)
        return [TensorType(.bool, ins[0].shape)]
    case .anyLastAxis:
        try expectArity(ins, 1...1, name)
        let x = ins[0]
        guard x.rank >= 2 else { throw ShapeError(layer: name, "reduces the last axis of \(x.kerasDescription), which has no axis but the batch") }
        return [TensorType(.bool, Array(x.shape.dropLast()))]
    }
}

public func expectArity(_ ins: [TensorType], _ counts: ClosedRange<Int>, _ layer: String) throws {
    if !counts.contains(ins.count) {
        throw ShapeError(layer: layer, "takes \(counts.lowerBound == counts.upperBound ? "\(counts.lowerBound)" : "\(counts.lowerBound) to \(counts.upperBound)") inputs, got \(ins.count)")
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
