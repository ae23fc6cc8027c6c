// Cropping1D: drops steps at the beginning and the end of the time axis.

import KilnIR
import KilnSupport

/// (N, T, F) -> (N, T - start - end, F). Like Keras 3, it passes no mask on (a loss after it
/// counts every kept step).
public struct Cropping1DKind: LayerKind {
    public static let kerasClasses = ["Cropping1D"]
    public var start: Int
    public var end: Int

    public init(start: Int, end: Int) { self.start = start; self.end = end }

    public init(keras c: KerasConfig) throws {
        // Keras saves (start, end); an int crops both ends alike.
        let raw = c["cropping"]
        guard let v = raw?.ints ?? raw?.int.map({ [$0, $0] }) ?? (c.isAbsent("cropping") ? [1, 1] : nil),
              v.count == 2, v.allSatisfy({ $0 >= 0 }) else {
            throw c.fail("has cropping \(raw?.serialized ?? "null"); expected an integer or two integers >= 0")
        }
        self.init(start: v[0], end: v[1])
    }

    public var description: String { "cropping1d<\(start), \(end)>" }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 1...1, layer)
        let x = ins[0]
        guard start >= 0, end >= 0 else { throw ShapeError(layer: layer, "cropping (\(start), \(end)) must be two integers >= 0") }
        guard x.rank == 3, x.shape[0] == .n, x.shape[1].fixedValue != nil || x.shape[1] == .t, x.shape[2].fixedValue != nil else {
            throw ShapeError(layer: layer, "expects a sequence (batch, timesteps, features), got \(x.kerasDescription)",
                             hint: "Cropping1D crops axis 1 of 3-D input")
        }
        guard let steps = x.shape[1].fixedValue else {
            throw ShapeError(layer: layer, "cannot crop input \(x.kerasDescription): its time axis is free (None), and Kiln needs the number of steps to size the cropped output",
                             hint: "give the Input a fixed number of steps, e.g. Input((T, \(x.shape[2].factor)))")
        }
        let kept = steps - start - end
        guard kept >= 1 else {
            var out = x.shape; out[1] = .fixed(kept)
            throw ShapeError(layer: layer, "cropping (\(start), \(end)) removes \(start + end) steps from input \(x.kerasDescription), which has \(steps); the output \(TensorType(x.dtype, out).kerasDescription) would have no steps",
                             hint: "crop at most \(steps - 1) steps in total")
        }
        return [TensorType(x.dtype, [x.shape[0], .fixed(kept), x.shape[2]])]
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        // A slice of the time axis; its gradient puts dy back between zeros.
        let x = ins[0]
        let steps = b.type(x).shape[1].factor
        return [start + end == 0 ? x : try b.p(.slice(axis: 1, start: start, length: steps - start - end), x)]
    }

    public func kerasConfig() -> [(String, JSON)] { [("cropping", KerasJSON.ints([start, end]))] }
}

/// Drops steps at the beginning and the end of a sequence: (N, T, F) ->
/// (N, T - start - end, F) (Keras' `Cropping1D`). Like Keras, it passes no
/// mask on.
///
///     let y = Cropping1D(cropping: (2, 0))(x)   // every step but the first two
public final class Cropping1D: Layer {
    /// The number of steps dropped at the beginning and at the end.
    public var cropping: (start: Int, end: Int) { let k = kind as! Cropping1DKind; return (k.start, k.end) }

    /// - Parameters:
    ///   - cropping: the steps to drop at the beginning and at the end (Keras' default (1, 1)).
    ///   - name: the layer name (default `cropping1d`, ...).
    public init(cropping: (start: Int, end: Int) = (1, 1), name: String? = nil) {
        super.init(kind: Cropping1DKind(start: cropping.start, end: cropping.end), name: name)
    }

    /// - Parameters:
    ///   - both: the steps to drop at each end, as Keras' `Cropping1D(n)`.
    ///   - name: the layer name (default `cropping1d`, ...).
    public convenience init(_ both: Int, name: String? = nil) {
        self.init(cropping: (both, both), name: name)
    }
}
