// Keras' reshaping layers beyond Flatten and Reshape (CoreLayers.swift): Cropping1D.

import KilnIR

/// Drops steps at the beginning and the end of a sequence: (N, T, F) ->
/// (N, T - start - end, F) (Keras' `Cropping1D`). Like Keras, it passes no
/// mask on.
///
///     let y = Cropping1D(cropping: (2, 0))(x)   // every step but the first two
public final class Cropping1D: Layer {
    /// The number of steps dropped at the beginning and at the end.
    public let cropping: (start: Int, end: Int)

    /// - Parameters:
    ///   - cropping: the steps to drop at the beginning and at the end (Keras' default (1, 1)).
    ///   - name: the layer name (default `cropping1d`, ...).
    public init(cropping: (start: Int, end: Int) = (1, 1), name: String? = nil) {
        self.cropping = cropping
        super.init(name: name, prefix: "cropping1d")
    }

    /// - Parameters:
    ///   - both: the steps to drop at each end, as Keras' `Cropping1D(n)`.
    ///   - name: the layer name (default `cropping1d`, ...).
    public convenience init(_ both: Int, name: String? = nil) {
        self.init(cropping: (both, both), name: name)
    }

    public override var className: String { "Cropping1D" }
    override var op: LayerOp? { .cropping1D(start: cropping.start, end: cropping.end) }
}
