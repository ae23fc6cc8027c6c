// PReLU: relu(x) - alpha * relu(-x), alpha learned per element (shared along shared_axes).

import KilnIR
import KilnSupport

/// x (N, …), alpha (the per-sample shape with 1 on shared axes) -> x's shape; passes the mask on.
public struct PReLUKind: LayerKind {
    public static let kerasClasses = ["PReLU"]
    /// Axes (1 = the first after the batch) along which alpha is shared.
    public var sharedAxes: [Int]

    public init(sharedAxes: [Int] = []) { self.sharedAxes = sharedAxes }

    public init(keras c: KerasConfig) throws {
        let raw = c["shared_axes"]
        guard raw == nil || raw!.isNull || raw!.ints != nil || raw!.int != nil else { throw c.fail("has shared_axes \(raw!.serialized); expected a list of axes") }
        self.init(sharedAxes: raw?.ints ?? raw?.int.map { [$0] } ?? [])
    }

    public var description: String { "prelu" + (sharedAxes.isEmpty ? "" : "<shared=\(sharedAxes)>") }

    public func weights(for inputs: [TensorType]) throws -> [LayerWeight] {
        guard let x = inputs.first, x.rank >= 2, x.shape.dropFirst().allSatisfy({ $0.fixedValue != nil }) else {
            throw ShapeError(layer: "PReLU", "expects an input with fixed sizes after the batch, got \(inputs.first?.kerasDescription ?? "none")")
        }
        var shape = x.shape.dropFirst().map(\.factor)
        for a in sharedAxes {
            guard a >= 1, a < x.rank else { throw ShapeError(layer: "PReLU", "shared axis \(a) is out of range for input \(x.kerasDescription)") }
            shape[a - 1] = 1
        }
        return [LayerWeight("alpha", shape, .zeros)]
    }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 2...2, layer)
        let x = ins[0]
        guard broadcastShapes(Array(x.shape.dropFirst()), ins[1].shape) == Array(x.shape.dropFirst()) else {
            throw ShapeError(layer: layer, "alpha of shape \(ins[1].kerasDescription) does not fit input \(x.kerasDescription)")
        }
        return [x]
    }

    public var supportsMasking: Bool { true }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let x = ins[0]
        let pos = try b.unary(.relu, x)
        let neg = try b.mul(ins[1], try b.unary(.relu, try b.unary(.neg, x)))
        return [try b.sub(pos, neg)]
    }

    public func kerasConfig() -> [(String, JSON)] {
        [("alpha_initializer", KerasJSON.zeros), ("alpha_regularizer", .null), ("alpha_constraint", .null),
         ("shared_axes", sharedAxes.isEmpty ? .null : KerasJSON.ints(sharedAxes))]
    }
}

/// A leaky ReLU whose slope below 0 is learned (Keras' `PReLU`).
public final class PReLU: Layer {
    /// - Parameters:
    ///   - sharedAxes: axes (1 = the first after the batch) sharing one slope, e.g. `[1, 2]` for
    ///     one slope per channel of an image.
    ///   - name: the layer name (default `p_re_lu`, ...).
    public init(sharedAxes: [Int] = [], name: String? = nil) {
        super.init(kind: PReLUKind(sharedAxes: sharedAxes), name: name)
    }
}
