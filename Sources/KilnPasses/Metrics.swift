import KilnIR

/// Keras accuracy metrics, as batch means computed in the training step
/// (before the update, on the same forward pass as the loss).
public enum Metrics {
    public static let supported = ["accuracy", "acc", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy"]

    public static func value(_ name: String, yTrue t: Value, yPred p: Value, _ b: inout PrimBuilder) throws -> Value {
        let pt = b.type(p), tt = b.type(t)
        let last = pt.rank - 1
        var kind = name
        if name == "accuracy" || name == "acc" {
            // As Keras resolves "accuracy" from the shapes of target and prediction.
            if pt.shape.last == .fixed(1) { kind = "binary_accuracy" }
            else if tt.rank < pt.rank || (tt.shape.last == .fixed(1) && pt.shape.last != .fixed(1)) { kind = "sparse_categorical_accuracy" }
            else { kind = "categorical_accuracy" }
        }
        b.layer = "metric/" + name
        let perSample: Value
        switch kind {
        case "binary_accuracy":
            let predicted = try b.cast(try b.compare(.gt, p, try b.const(0.5)), .f32)
            perSample = try b.reduce(.mean, try b.cast(try b.compare(.eq, t, predicted), .f32), axes: [last])
        case "categorical_accuracy", "sparse_categorical_accuracy":
            // Correct when the prediction at the true class is the row's maximum.
            var onehot = t
            if kind == "sparse_categorical_accuracy" {
                var ids = t
                if tt.rank == pt.rank { ids = try b.reshape(t, Array(tt.shape.dropLast())) }
                onehot = try Losses.oneHot(try b.cast(ids, .i32), classes: pt.shape[last].factor, &b)
            } else {
                let tmax = try b.reduce(.max, t, axes: [last], keepDims: true)
                onehot = try b.cast(try b.compare(.eq, t, tmax), .f32)
            }
            let atTrue = try b.reduce(.max, try b.select(try b.compare(.gt, onehot, try b.const(0)), p, try b.const(-Float.infinity)), axes: [last])
            let best = try b.reduce(.max, p, axes: [last])
            perSample = try b.cast(try b.compare(.ge, atTrue, best), .f32)
        default:
            throw ShapeError(layer: "metric", "metric '\(name)' is not supported; supported: \(supported.joined(separator: ", "))")
        }
        return try b.reduce(.mean, perSample, axes: Array(0..<b.type(perSample).rank))
    }
}
