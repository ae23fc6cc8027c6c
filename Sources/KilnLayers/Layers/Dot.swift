// Dot: the batched dot product of two tensors along one axis each.

import KilnIR
import KilnSupport

/// Keras' `Dot(axes, normalize)`: x (N, X...) and y (N, Y...) contracted over x's axis a and
/// y's axis b (sizes equal) -> (N, X without a..., Y without b...), or (N, 1) when nothing is
/// left; `normalize` L2-normalizes both along those axes first (cosine similarity). Like
/// Keras, its output has no mask.
public struct DotKind: LayerKind {
    public static let kerasClasses = ["Dot"]
    /// The axis of each input (counting the batch as 0; negative from the end).
    public var axes: [Int]
    /// Whether `axes` was one integer (Keras writes it back as given).
    public var single: Bool
    public var normalize: Bool

    public init(axes: [Int], normalize: Bool = false) {
        self.axes = axes.count == 1 ? [axes[0], axes[0]] : axes
        self.single = axes.count == 1
        self.normalize = normalize
    }

    public init(keras c: KerasConfig) throws {
        let raw = c["axes"]
        guard let a = raw?.int.map({ [$0] }) ?? raw?.ints, a.count == 1 || a.count == 2 else {
            throw c.fail("has axes \(raw?.serialized ?? "null"); expected an integer or two integers")
        }
        self.init(axes: a, normalize: try c.bool("normalize", false))
    }

    public var arity: ClosedRange<Int> { 2...2 }
    public var description: String { "dot<axes \(single ? "\(axes[0])" : "\(axes)")\(normalize ? ", normalize" : "")>" }

    /// The contracted axis of each input, as Keras resolves them.
    func resolved(_ ranks: [Int]) -> [Int] {
        zip(axes, ranks).map { a, r in a < 0 ? ((a % r) + r) % r : a }
    }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 2...2, layer)
        let (x, y) = (ins[0], ins[1])
        for t in ins {
            guard t.dtype == .f32, t.rank >= 2, t.shape[0] == .n, t.shape.dropFirst().allSatisfy({ $0.fixedValue != nil }) else {
                throw ShapeError(layer: layer, "takes float tensors (batch, fixed sizes...), got \(t.kerasDescription)",
                                 hint: "Kiln's Dot needs every axis but the batch fixed")
            }
        }
        let ax = resolved([x.rank, y.rank])
        guard ax.allSatisfy({ $0 >= 1 }), ax[0] < x.rank, ax[1] < y.rank else {
            throw ShapeError(layer: layer, "has axes \(axes) for inputs \(x.kerasDescription) and \(y.kerasDescription); the axes must be 1 ... rank-1 (not the batch)")
        }
        guard x.shape[ax[0]] == y.shape[ax[1]] else {
            throw ShapeError(layer: layer, "contracts axis \(ax[0]) of \(x.kerasDescription) (size \(x.shape[ax[0]])) with axis \(ax[1]) of \(y.kerasDescription) (size \(y.shape[ax[1]])); the sizes must be equal")
        }
        var out = Array(x.shape.dropFirst()); out.remove(at: ax[0] - 1)
        var rest = Array(y.shape.dropFirst()); rest.remove(at: ax[1] - 1)
        out += rest
        if out.isEmpty { out = [.fixed(1)] }
        return [.f32([.n] + out)]
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        var (x, y) = (ins[0], ins[1])
        let (xt, yt) = (b.type(x), b.type(y))
        let ax = resolved([xt.rank, yt.rank])
        if normalize {
            // Keras' normalize(x, axis): x * min(rsqrt(sum(x², axis)), 1 / epsilon).
            func l2(_ v: Value, _ axis: Int) throws -> Value {
                let ss = try b.reduce(.sum, try b.unary(.square, v), axes: [axis], keepDims: true)
                return try b.mul(v, try b.binary(.min, try b.unary(.rsqrt, ss), try b.const(1e7)))
            }
            x = try l2(x, ax[0]); y = try l2(y, ax[1])
        }
        // x -> (N, rest of x, k), y -> (N, k, rest of y); then (N, P, k, 1) * (N, 1, k, Q) summed over k.
        let xRest = (1..<xt.rank).filter { $0 != ax[0] }, yRest = (1..<yt.rank).filter { $0 != ax[1] }
        let k = xt.shape[ax[0]].factor
        let p = xRest.reduce(1) { $0 * xt.shape[$1].factor }, q = yRest.reduce(1) { $0 * yt.shape[$1].factor }
        let xPerm = [0] + xRest + [ax[0]], yPerm = [0, ax[1]] + yRest
        if xPerm != Array(0..<xt.rank) { x = try b.p(.transpose(xPerm), x) }
        if yPerm != Array(0..<yt.rank) { y = try b.p(.transpose(yPerm), y) }
        let x4 = try b.reshape(x, [.n, .fixed(p), .fixed(k), .fixed(1)])
        let y4 = try b.reshape(y, [.n, .fixed(1), .fixed(k), .fixed(q)])
        let prod = try b.reduce(.sum, try b.mul(x4, y4), axes: [2])
        let out = try infer([xt, yt], layer: b.layer)[0]
        return [try b.reshape(prod, out.shape)]
    }

    public func kerasConfig() -> [(String, JSON)] {
        [("axes", single ? KerasJSON.int(axes[0]) : KerasJSON.ints(axes)), ("normalize", .bool(normalize))]
    }
}

/// The dot product of two tensors along an axis of each (Keras' `Dot`).
///
///     let score = Dot(axes: 1, normalize: true)([a, b])   // cosine similarity, (N, 1)
public final class Dot: Layer {
    /// - Parameters:
    ///   - axes: the contracted axis of both inputs (counting the batch as 0; negative from the end).
    ///   - normalize: whether to L2-normalize both along it first.
    ///   - name: the layer name (default `dot`, ...).
    public init(axes: Int, normalize: Bool = false, name: String? = nil) {
        super.init(kind: DotKind(axes: [axes], normalize: normalize), name: name)
    }

    /// - Parameters:
    ///   - axes: the contracted axis of each input.
    public init(axes: (Int, Int), normalize: Bool = false, name: String? = nil) {
        super.init(kind: DotKind(axes: [axes.0, axes.1], normalize: normalize), name: name)
    }
}
