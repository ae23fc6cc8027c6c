// Keras' elementwise merge layers besides Add: Subtract, Multiply, Average, Maximum, Minimum.

import KilnIR
import KilnSupport

/// The elementwise merges, one kind for the five classes. As Keras' `Merge`: the per-sample
/// shapes broadcast (right-aligned, size 1 stretches), an input of lower rank gets size-1 axes
/// after the batch; the output mask is the OR of the inputs' masks when every input has one.
/// Multiply, Maximum and Minimum also change the values at masked steps, as Keras' do: Multiply
/// gives 0 there, Maximum and Minimum the first input (Kiln supports inputs that all carry the
/// same mask, as branches of one masked sequence do).
public struct ElementwiseMergeKind: LayerKind {
    public enum Op: String, Hashable, Sendable, CaseIterable {
        case subtract = "Subtract", multiply = "Multiply", average = "Average", maximum = "Maximum", minimum = "Minimum"
    }
    public static let kerasClasses = Op.allCases.map(\.rawValue)
    public var op: Op
    /// Whether the last input is the inputs' (common) mask (Multiply, Maximum, Minimum).
    public var masked = false

    public init(_ op: Op) { self.op = op }

    public init(keras c: KerasConfig) throws {
        guard let op = Op(rawValue: c.className) else { throw c.fail("is not an elementwise merge layer") }
        self.init(op)
    }

    public var kerasClass: String { op.rawValue }
    public var arity: ClosedRange<Int> { op == .subtract ? 2...2 : 2...Int.max }
    public var description: String { op.rawValue.lowercased() + (masked ? "<masked>" : "") }

    /// Whether Keras' merge function reads the masks (not only compute_mask).
    var readsMasks: Bool { op == .multiply || op == .maximum || op == .minimum }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        var ins = ins
        if masked {
            let m = ins.removeLast()
            for x in ins where m.dtype != .bool || x.rank != 3 || Array(x.shape.prefix(2)) != m.shape {
                throw ShapeError(layer: layer, "is given a mask \(m.kerasDescription) for input \(x.kerasDescription); Kiln supports masks of (batch, steps) on (batch, steps, features) inputs here")
            }
        }
        try expectArity(ins, arity, layer)
        for x in ins {
            guard x.dtype == .f32, x.rank >= 2, x.shape[0] == .n else {
                throw ShapeError(layer: layer, "merges float tensors with a batch axis first, got \(x.kerasDescription) (\(x.dtype.rawValue))")
            }
        }
        var shape = Array(ins[0].shape.dropFirst())
        for x in ins.dropFirst() {
            guard let s = broadcastShapes(shape, Array(x.shape.dropFirst())) else {
                throw ShapeError(layer: layer, "cannot merge inputs of shapes \(ins.map(\.kerasDescription).joined(separator: " and ")): their sizes differ where neither is 1",
                                 hint: "elementwise merges need equal sizes or 1 on each axis (counted from the last)")
            }
            shape = s
        }
        return [.f32([.n] + shape)]
    }

    public func consumingMask() -> ElementwiseMergeKind? {
        guard readsMasks else { return nil }
        var k = self; k.masked = true; return k
    }

    public func outputMask(_ b: inout PrimBuilder, inputs: [Value], masks: [Value?], outputs: [Value]) throws -> Value? {
        guard masks.contains(where: { $0 != nil }) else { return nil }
        if readsMasks {
            // The layer took the first input's mask; Keras' rules for inputs with different masks
            // or without one (values taken from the previous inputs) are not implemented.
            guard let m = masks[0], masks.allSatisfy({ $0 == m }) else {
                throw ShapeError(layer: "\(kerasClass) '\(b.layer)'", "is given inputs with different masks (or some without one); Kiln supports \(kerasClass) of inputs that all carry the same mask",
                                 hint: "merge tensors of one masked sequence, or merge before the masks are made")
            }
            return m
        }
        // Keras' Merge.compute_mask: no mask unless every input has one, then their OR.
        guard masks.allSatisfy({ $0 != nil }) else { return nil }
        var m = try b.cast(masks[0]!, .f32)
        for other in masks.dropFirst() { m = try b.binary(.max, m, try b.cast(other!, .f32)) }
        return try b.compare(.gt, m, try b.const(0))
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        var ins = ins
        let mask = masked ? ins.removeLast() : nil
        // Lower-rank inputs get size-1 axes after the batch (Keras' expand_dims(x, 1)).
        let rank = ins.map { b.type($0).rank }.max()!
        let xs = try ins.map { x -> Value in
            let s = b.type(x).shape
            return try b.reshape(x, [s[0]] + Array(repeating: .fixed(1), count: rank - s.count) + Array(s.dropFirst()))
        }
        var acc = xs[0]
        for x in xs.dropFirst() {
            switch op {
            case .subtract: acc = try b.sub(acc, x)
            case .multiply: acc = try b.mul(acc, x)
            case .average: acc = try b.add(acc, x)
            case .maximum: acc = try b.binary(.max, acc, x)
            case .minimum: acc = try b.binary(.min, acc, x)
            }
        }
        if op == .average { acc = try b.div(acc, try b.const(Float(xs.count))) }
        if let mask {
            // Keras with one mask m on every input: Multiply puts 1 in the masked steps of each
            // input, then 0 in the output's; Maximum and Minimum keep the first input there.
            let s = b.type(mask).shape
            let m = try b.reshape(mask, s + [.fixed(1)])
            acc = try b.select(m, acc, op == .multiply ? try b.const(0) : xs[0])
        }
        return [acc]
    }

    public func kerasConfig() -> [(String, JSON)] { [] }
}

/// The difference of two tensors (Keras' `Subtract`); shapes broadcast as in Keras.
///
///     let d = Subtract()([a, b])   // a - b
public final class Subtract: Layer {
    /// - Parameters:
    ///   - name: the layer name (default `subtract`, ...).
    public init(name: String? = nil) { super.init(kind: ElementwiseMergeKind(.subtract), name: name) }
}

/// The elementwise product of tensors (Keras' `Multiply`).
///
///     let p = Multiply()([a, b])
public final class Multiply: Layer {
    /// - Parameters:
    ///   - name: the layer name (default `multiply`, ...).
    public init(name: String? = nil) { super.init(kind: ElementwiseMergeKind(.multiply), name: name) }
}

/// The elementwise mean of tensors (Keras' `Average`).
///
///     let m = Average()([a, b, c])
public final class Average: Layer {
    /// - Parameters:
    ///   - name: the layer name (default `average`, ...).
    public init(name: String? = nil) { super.init(kind: ElementwiseMergeKind(.average), name: name) }
}

/// The elementwise maximum of tensors (Keras' `Maximum`).
///
///     let m = Maximum()([a, b])
public final class Maximum: Layer {
    /// - Parameters:
    ///   - name: the layer name (default `maximum`, ...).
    public init(name: String? = nil) { super.init(kind: ElementwiseMergeKind(.maximum), name: name) }
}

/// The elementwise minimum of tensors (Keras' `Minimum`).
///
///     let m = Minimum()([a, b])
public final class Minimum: Layer {
    /// - Parameters:
    ///   - name: the layer name (default `minimum`, ...).
    public init(name: String? = nil) { super.init(kind: ElementwiseMergeKind(.minimum), name: name) }
}
