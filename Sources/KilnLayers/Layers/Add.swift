// Add: the elementwise sum of its inputs.

import KilnIR
import KilnSupport

/// Inputs that broadcast together -> their sum. The mask, as Keras 3's merge layers compute it
/// (Merge.compute_mask): none if an input has none, else the logical or of the inputs' masks.
public struct AddKind: LayerKind {
    public static let kerasClasses = ["Add"]
    public init() {}
    public init(keras c: KerasConfig) throws {}
    public var description: String { "add" }
    public var arity: ClosedRange<Int> { 2...Int.max }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        guard ins.count >= 2 else { throw ShapeError(layer: layer, "needs at least 2 inputs, got \(ins.count)") }
        var shape = ins[0].shape
        for t in ins.dropFirst() {
            guard let s = broadcastShapes(shape, t.shape) else {
                throw ShapeError(layer: layer, "inputs \(ins[0].kerasDescription) and \(t.kerasDescription) have different shapes")
            }
            shape = s
        }
        return [.f32(shape)]
    }

    public func outputMask(_ b: inout PrimBuilder, inputs: [Value], masks: [Value?], outputs: [Value]) throws -> Value? {
        // Keras 3's Merge.compute_mask: none when an input has none, else the logical or.
        guard b.type(outputs[0]).rank >= 3, !masks.isEmpty, !masks.contains(where: { $0 == nil }) else { return nil }
        var acc = masks[0]!
        for m in masks.dropFirst() {
            acc = try b.cast(try b.binary(.max, try b.cast(acc, .f32), try b.cast(m!, .f32)), .bool)
        }
        return acc
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        var acc = ins[0]
        for v in ins.dropFirst() { acc = try b.add(acc, v) }
        return [acc]
    }

    public func kerasConfig() -> [(String, JSON)] { [] }
}

/// The elementwise sum of tensors of one shape (Keras' `Add`).
///
///     let sum = Add()([a, b])
public final class Add: Layer {
    /// - Parameters:
    ///   - name: the layer name (default `add`, ...).
    public init(name: String? = nil) { super.init(kind: AddKind(), name: name) }
}
