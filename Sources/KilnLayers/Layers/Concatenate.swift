// Concatenate: joins tensors along an axis.

import KilnIR
import KilnSupport

/// Inputs of one rank, equal outside `axis` -> their concatenation along it, with the mask
/// Keras' Concatenate.compute_mask gives.
public struct ConcatenateKind: LayerKind {
    public static let kerasClasses = ["Concatenate"]
    public var axis: Int
    public init(axis: Int = -1) { self.axis = axis }
    public init(keras c: KerasConfig) throws { try self.init(axis: c.int("axis", -1)) }
    public var description: String { "concatenate<axis=\(axis)>" }
    public var arity: ClosedRange<Int> { 2...Int.max }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        guard ins.count >= 2 else { throw ShapeError(layer: layer, "needs at least 2 inputs, got \(ins.count)") }
        let x = ins[0], r = x.rank
        let ax = axis < 0 ? r + axis : axis
        guard ax >= 1 && ax < r else { throw ShapeError(layer: layer, "axis \(axis) is out of range for inputs of rank \(r)") }
        var total = 0
        for t in ins {
            guard t.rank == r else { throw ShapeError(layer: layer, "inputs \(x.kerasDescription) and \(t.kerasDescription) have different ranks") }
            guard t.shape[ax].fixedValue != nil else {
                throw ShapeError(layer: layer, "cannot concatenate along the free (None) dimension of \(t.kerasDescription)")
            }
            var a = t.shape, b = x.shape
            a[ax] = .fixed(0); b[ax] = .fixed(0)
            if a != b {
                throw ShapeError(layer: layer, "inputs \(x.kerasDescription) and \(t.kerasDescription) differ outside the concatenation axis \(axis)")
            }
            total += t.shape[ax].factor
        }
        var out = x.shape; out[ax] = .fixed(total)
        return [.f32(out)]
    }

    public func outputMask(_ b: inout PrimBuilder, inputs: [Value], masks: [Value?], outputs: [Value]) throws -> Value? {
        // Keras: each mask (an unmasked input's all true) widened to its input's shape, joined
        // along the axis, then any() over the last axis. Kiln's masks are (N, T) on sequences.
        guard masks.contains(where: { $0 != nil }) else { return nil }
        let rank = b.type(inputs[0]).rank
        guard rank == 3 else { return nil }
        switch axis < 0 ? rank + axis : axis {
        case 2:
            // Along the features: a step is real when it is in any input (an unmasked input: always).
            guard masks.allSatisfy({ $0 != nil }) else { return nil }
            var acc = try b.cast(masks[0]!, .f32)
            for m in masks.dropFirst() { acc = try b.binary(.max, acc, try b.cast(m!, .f32)) }
            return try b.compare(.gt, acc, try b.const(0))
        case 1:
            // Along the time axis: the masks one after the other.
            let parts = try zip(inputs, masks).map { x, m -> Value in
                if let m { return try b.cast(m, .f32) }
                return try b.add(try b.zeros([.n, b.type(x).shape[1]]), 1)
            }
            let joined = try b.graph.add(.prim(.concat(axis: 1)), parts, layer: b.layer)[0]
            return try b.compare(.gt, joined, try b.const(0))
        default:
            return nil
        }
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let r = b.type(ins[0]).rank
        return try b.graph.add(.prim(.concat(axis: axis < 0 ? r + axis : axis)), ins, layer: b.layer)
    }

    public func kerasConfig() -> [(String, JSON)] { [("axis", KerasJSON.int(axis))] }
}

/// Joins tensors along an axis (Keras' `Concatenate`).
///
///     let merged = Concatenate()([a, b])
public final class Concatenate: Layer {
    public var axis: Int { (kind as! ConcatenateKind).axis }

    /// - Parameters:
    ///   - axis: the axis to join along, counting the batch as 0; negative counts
    ///     from the end (default -1, the last).
    ///   - name: the layer name (default `concatenate`, ...).
    public init(axis: Int = -1, name: String? = nil) {
        super.init(kind: ConcatenateKind(axis: axis), name: name)
    }
}
