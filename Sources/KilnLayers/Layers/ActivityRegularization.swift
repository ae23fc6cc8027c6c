// ActivityRegularization: the identity, adding a penalty on its input to the loss.

import KilnIR
import KilnSupport

/// Keras' `ActivityRegularization(l1, l2)`: passes x (and its mask) on unchanged and adds
/// (l1 * sum(|x|) + l2 * sum(x²)) / batch size to the training and evaluation loss, as Keras 3's
/// activity regularizers do. The importer also puts one after a layer whose config has an
/// `activity_regularizer` (Keras' `Layer(activity_regularizer=...)` penalizes its outputs alike).
public struct ActivityRegularizationKind: LayerKind {
    public static let kerasClasses = ["ActivityRegularization"]
    public var regularizer: Regularizer

    public init(l1: Float = 0, l2: Float = 0) { regularizer = Regularizer(l1: l1, l2: l2) }

    public init(keras c: KerasConfig) throws {
        let l1 = try c.float("l1", 0), l2 = try c.float("l2", 0)
        guard l1 >= 0, l2 >= 0 else { throw c.fail("has l1=\(l1), l2=\(l2); expected numbers >= 0") }
        self.init(l1: l1, l2: l2)
    }

    public var description: String { "activity_regularization<\(regularizer.l1), \(regularizer.l2)>" }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 1...1, layer)
        guard ins[0].dtype == .f32 else {
            throw ShapeError(layer: layer, "regularizes float tensors, got \(ins[0].dtype.rawValue) \(ins[0].kerasDescription)")
        }
        return [ins[0]]
    }

    public var supportsMasking: Bool { true }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let x = ins[0]
        if let penalty = try regularizer.penalty(x, &b) {
            // Keras 3 divides an activity penalty by the batch size.
            b.graph.lossTerms.append(try b.div(penalty, try b.p(.batchSize)))
        }
        return [x]
    }

    public func kerasConfig() -> [(String, JSON)] { [("l1", KerasJSON.float(regularizer.l1)), ("l2", KerasJSON.float(regularizer.l2))] }
}

/// Adds an L1/L2 penalty on the activity passing through to the training loss (Keras'
/// `ActivityRegularization`); its output is its input.
///
///     let h = ActivityRegularization(l1: 0.01)(x)
public final class ActivityRegularization: Layer {
    /// - Parameters:
    ///   - l1: the factor of sum(|x|).
    ///   - l2: the factor of sum(x²).
    ///   - name: the layer name (default `activity_regularization`, ...).
    public init(l1: Float = 0, l2: Float = 0, name: String? = nil) {
        super.init(kind: ActivityRegularizationKind(l1: l1, l2: l2), name: name)
    }
}
