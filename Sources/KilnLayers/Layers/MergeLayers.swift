// Keras' merge layers: called on a list of tensors.

import KilnIR
import KilnRuntime

/// Joins tensors along an axis (Keras' `Concatenate`).
///
///     let merged = Concatenate()([a, b])
public final class Concatenate: Layer {
    public let axis: Int

    /// - Parameters:
    ///   - axis: the axis to join along, counting the batch as 0; negative counts
    ///     from the end (default -1, the last).
    ///   - name: the layer name (default `concatenate`, ...).
    public init(axis: Int = -1, name: String? = nil) {
        self.axis = axis
        super.init(name: name, prefix: "concatenate")
    }

    public override var className: String { "Concatenate" }
    override package var op: LayerOp? { .concatenate(axis: axis) }
    override package var arity: ClosedRange<Int> { 2...Int.max }
}

/// The elementwise sum of tensors of one shape (Keras' `Add`).
///
///     let sum = Add()([a, b])
public final class Add: Layer {
    /// - Parameters:
    ///   - name: the layer name (default `add`, ...).
    public init(name: String? = nil) { super.init(name: name, prefix: "add") }

    public override var className: String { "Add" }
    override package var op: LayerOp? { .add }
    override package var arity: ClosedRange<Int> { 2...Int.max }
}
