// Flatten and Reshape: a new per-sample shape over the same elements.

import KilnIR
import KilnSupport

/// Refuses inputs with a free dimension after the batch (Flatten and Reshape need sizes).
private func expectFixedSample(_ x: TensorType, _ layer: String) throws {
    guard let first = x.shape.first, first.isBatch, !x.shape.dropFirst().contains(where: \.isBatch) else {
        throw ShapeError(layer: layer, "expects a batched input (None, ...), got \(x.kerasDescription)")
    }
    if x.shape.dropFirst().contains(where: \.isSteps) {
        throw ShapeError(layer: layer, "cannot flatten or reshape input \(x.kerasDescription): its free (None) dimension has no size until run time",
                         hint: "give the Input a fixed number of steps")
    }
}

/// The advice when Flatten or Reshape turned a sequence or an image into (batch, features) before
/// a layer that needs a time axis.
private func flattenedHint(_ cls: String, name: String, before: TensorType, after: TensorType) -> String {
    let who = "\(cls) '\(name)' turned \(before.kerasDescription) into \(after.kerasDescription)"
    let t = before.shape[1] == .t ? "None" : "\(before.shape[1])"
    let step = before.shape.dropFirst(2).map(\.factor)
    let perStep = step.reduce(1, *)
    if cls == "Flatten" && before.rank >= 5 {
        // (batch, steps, height, width, channels): a sequence of images, as TimeDistributed layers make it.
        return "\(who), flattening the time axis (\(t) steps) together with each step's \(formatShape(step)): "
            + "wrap it as TimeDistributed(Flatten()) to flatten each step instead, which gives (None, \(t), \(perStep))"
    }
    if cls == "Flatten" && before.rank == 3 {
        return "\(who), folding its \(t) steps into one vector: remove it (each step already is \(perStep) features), "
            + "or keep the steps with TimeDistributed(Flatten())"
    }
    // An image (batch, height, width, channels): its rows can be the steps.
    return "\(who), dropping axis 1 (\(t)), the only one that could be the time axis: to read the rows as steps, "
        + "use Reshape((\(t), \(perStep))) instead; for a sequence of images, give the input (steps, height, width, channels) "
        + "and wrap the layers before it in TimeDistributed"
}

/// (N, …) -> (N, prod(…)).
public struct FlattenKind: LayerKind {
    public static let kerasClasses = ["Flatten"]
    public init() {}
    public init(keras c: KerasConfig) throws { try c.channelsLast() }
    public var description: String { "flatten" }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 1...1, layer)
        let x = ins[0]
        try expectFixedSample(x, layer)
        return [TensorType(x.dtype, [x.shape[0], .fixed(x.shape.dropFirst().map(\.factor).reduce(1, *))])]
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        [try b.reshape(ins[0], try infer([b.type(ins[0])], layer: b.layer)[0].shape)]
    }

    public func kerasConfig() -> [(String, JSON)] { [("data_format", .string("channels_last"))] }

    public func droppedTimeAxisHint(name: String, before: TensorType, after: TensorType) -> String? {
        flattenedHint("Flatten", name: name, before: before, after: after)
    }
}

/// (N, …) -> (N, target), one entry of the target may be -1.
public struct ReshapeKind: LayerKind {
    public static let kerasClasses = ["Reshape"]
    public var target: [Int]
    public init(target: [Int]) { self.target = target }

    public init(keras c: KerasConfig) throws {
        guard let t = c["target_shape"]?.ints else { throw c.fail("has no 'target_shape' list") }
        self.init(target: t)
    }

    public var description: String { "reshape<\(target)>" }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 1...1, layer)
        let x = ins[0]
        try expectFixedSample(x, layer)
        let sample = x.shape.dropFirst().map(\.factor)
        let have = sample.reduce(1, *)
        let known = target.filter { $0 != -1 }.reduce(1, *)
        var dims = target
        if target.filter({ $0 == -1 }).count > 1 || target.contains(where: { $0 < -1 || $0 == 0 }) {
            throw ShapeError(layer: layer, "target shape \(formatShape(target)) is not valid", hint: "use positive sizes and at most one -1")
        }
        if let k = target.firstIndex(of: -1) {
            if known == 0 || have % known != 0 {
                throw ShapeError(layer: layer, "input of shape \(formatShape(sample)) has \(have) elements per sample, which target shape \(formatShape(target)) cannot divide")
            }
            dims[k] = have / known
        } else if known != have {
            throw ShapeError(layer: layer, "input of shape \(formatShape(sample)) has \(have) elements per sample, but target shape \(formatShape(target)) needs \(known)",
                             hint: "did a convolution or pooling change the size? see `kiln summary`")
        }
        return [TensorType(x.dtype, [x.shape[0]] + dims.map { .fixed($0) })]
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        [try b.reshape(ins[0], try infer([b.type(ins[0])], layer: b.layer)[0].shape)]
    }

    public func kerasConfig() -> [(String, JSON)] { [("target_shape", KerasJSON.ints(target))] }

    public func droppedTimeAxisHint(name: String, before: TensorType, after: TensorType) -> String? {
        flattenedHint("Reshape", name: name, before: before, after: after)
    }
}

/// Flattens each sample to one dimension: (N, ...) -> (N, prod(...)) (Keras' `Flatten`).
public final class Flatten: Layer {
    /// - Parameters:
    ///   - name: the layer name (default `flatten`, ...).
    public init(name: String? = nil) { super.init(kind: FlattenKind(), name: name) }
}

/// Reshapes each sample (Keras' `Reshape`).
public final class Reshape: Layer {
    public var targetShape: [Int] { (kind as! ReshapeKind).target }

    /// - Parameters:
    ///   - targetShape: the per-sample shape, without the batch; one entry may be -1.
    ///   - name: the layer name (default `reshape`, ...).
    public init(_ targetShape: [Int], name: String? = nil) {
        super.init(kind: ReshapeKind(target: targetShape), name: name)
    }
}
