// The Swift model API's symbolic side: `Input`, the tensors layers are called
// on, default layer names and the seeded weight initialisers.
//
//     let x = Input(shape: [28, 28, 1])
//     let y = Dense(10, activation: .softmax)(Flatten()(x))
//     let model = try FunctionalModel(inputs: x, outputs: y)

import KilnRuntime
import Foundation
import KilnIR

/// A symbolic tensor: what `Input` returns and what calling a layer gives.
///
/// It holds no values, only the per-sample shape and the layer call that
/// produces it. A shape error in a layer call is kept in the tensor (and in
/// every tensor computed from it) and thrown when a model is made from it.
public final class KerasTensor: CustomStringConvertible {
    /// Keras-style shape: `nil` for the batch dimension, then the fixed sizes.
    public let shape: [Int?]
    /// Element type: `.float32`, or `.int32` for token ids.
    public let dtype: HostDType
    /// The call that produced this tensor.
    package let node: LayerNode
    /// The graph type; nil when `error` is set.
    package let type: TensorType?
    /// The first error on the way to this tensor.
    package let error: Error?
    /// Which output of its call this is (0 but for layers with several outputs: ``Layer/callMulti(_:)-...``).
    package let index: Int

    package init(node: LayerNode, type: TensorType, index: Int = 0) {
        self.node = node; self.type = type; self.error = nil; self.index = index
        self.dtype = type.dtype == .i32 ? .int32 : .float32
        self.shape = [nil] + type.shape.dropFirst().map { Optional($0.factor) }
    }

    package init(node: LayerNode, error: Error, dtype: HostDType = .float32) {
        self.node = node; self.type = nil; self.error = error; self.dtype = dtype; self.shape = []; self.index = 0
    }

    /// The layer that produced this tensor (an ``InputLayer`` for model inputs).
    public var layer: Layer { node.layer }

    public var description: String {
        let dims = shape.map { $0.map(String.init) ?? "None" }.joined(separator: ", ")
        return "<KerasTensor shape=(\(dims)\(shape.count == 1 ? "," : "")), dtype=\(dtype.rawValue), name=\(node.layer.name)>"
    }
}

/// One application of a layer to input tensors.
package final class LayerNode {
    package let layer: Layer
    package let inputs: [KerasTensor]
    /// nil for an input layer's node.
    package let op: LayerOp?
    package init(layer: Layer, inputs: [KerasTensor], op: LayerOp?) {
        self.layer = layer; self.inputs = inputs; self.op = op
    }
}

/// A model input, as Keras' `keras.Input`.
/// - Parameters:
///   - shape: the per-sample shape, without the batch dimension, e.g. `[28, 28, 1]`.
///   - dtype: `.float32` (default) or `.int32` (token ids for ``Embedding``).
///   - name: the input's name (default `input_layer`, `input_layer_1`, ...).
/// - Returns: a symbolic tensor of shape `(None, ...shape)`.
public func Input(shape: [Int], dtype: HostDType = .float32, name: String? = nil) -> KerasTensor {
    InputLayer(shape: shape, dtype: dtype, name: name).makeOutput()
}

/// An error from the Swift model API; the message is one sentence.
public struct KerasAPIError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Process-wide Keras state: default names and the initialiser seed.
public enum Keras {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var counters: [String: Int] = [:]
    nonisolated(unsafe) private static var random = SplitMix64(state: 0x4B49_4C4E)

    /// Forgets the default names handed out so far (the next `Dense()` is
    /// `dense` again) and reseeds the initialisers, like
    /// `keras.backend.clear_session()` followed by `keras.utils.set_random_seed`.
    /// - Parameters:
    ///   - seed: the seed of the weight initialisers.
    public static func clearSession(seed: UInt64 = 0x4B49_4C4E) {
        lock.lock(); defer { lock.unlock() }
        counters = [:]
        random = SplitMix64(state: seed)
    }

    /// Seeds the weight initialisers of the layers built from now on.
    /// - Parameters:
    ///   - seed: any value; the same seed and the same layers give the same weights.
    public static func setRandomSeed(_ seed: UInt64) {
        lock.lock(); defer { lock.unlock() }
        random = SplitMix64(state: seed)
    }

    /// `prefix` the first time, then `prefix_1`, `prefix_2`, ... (Keras' auto names).
    package static func uniqueName(_ prefix: String) -> String {
        lock.lock(); defer { lock.unlock() }
        let k = counters[prefix, default: 0]
        counters[prefix] = k + 1
        return k == 0 ? prefix : "\(prefix)_\(k)"
    }

    /// `count` uniform numbers in [lo, hi) from the global splitmix64 stream.
    package static func uniform(_ count: Int, _ lo: Float, _ hi: Float) -> [Float] {
        lock.lock(); defer { lock.unlock() }
        var out = [Float]()
        out.reserveCapacity(count)
        for _ in 0..<count { out.append(lo + (hi - lo) * random.unitFloat()) }
        return out
    }
}

/// Keras' default names: "MaxPooling1D" -> "max_pooling1d", "PReLU" -> "p_re_lu", "LSTM" ->
/// "lstm": Keras' `to_snake_case`, its two substitutions done as the regex engine does them.
extension Keras {
    package static func snakeCase(_ name: String) -> String {
        func upper(_ c: Character) -> Bool { c.isASCII && c.isUppercase }
        func lower(_ c: Character) -> Bool { c.isASCII && c.isLowercase }
        // (.)([A-Z][a-z]+) -> \1_\2, matches not overlapping.
        let s = Array(name)
        var a: [Character] = []
        var i = 0
        while i < s.count {
            if i + 2 < s.count, upper(s[i + 1]), lower(s[i + 2]) {
                var j = i + 2
                while j + 1 < s.count, lower(s[j + 1]) { j += 1 }
                a += [s[i], "_"] + s[(i + 1)...j]
                i = j + 1
            } else {
                a.append(s[i]); i += 1
            }
        }
        // ([a-z])([A-Z]) -> \1_\2.
        var out = ""
        i = 0
        while i < a.count {
            if i + 1 < a.count, lower(a[i]), upper(a[i + 1]) {
                out += String(a[i]) + "_" + String(a[i + 1]); i += 2
            } else {
                out.append(a[i]); i += 1
            }
        }
        return out.lowercased()
    }
}

extension WeightInit {
    /// Initial values for a weight of this shape, from Keras' seeded stream.
    package func values(_ shape: [Int]) -> [Float] {
        let count = shape.reduce(1, *)
        switch self {
        case .zeros:
            return [Float](repeating: 0, count: count)
        case .ones:
            return [Float](repeating: 1, count: count)
        case .constant(let c):
            return [Float](repeating: c, count: count)
        case .uniform(let limit):
            return Keras.uniform(count, -limit, limit)
        case .unitForgetBias:
            let u = count / 4
            return (0..<count).map { $0 >= u && $0 < 2 * u ? 1 : 0 }
        case .orthogonal:
            // Rows (or columns, whichever are fewer) made orthonormal by Gram-Schmidt from uniform draws.
            let rows = shape.dropLast().reduce(1, *), cols = shape.last ?? 1
            let (n, len) = rows <= cols ? (rows, cols) : (cols, rows)
            var v = (0..<n).map { _ in Keras.uniform(len, -1, 1).map(Double.init) }
            for i in 0..<n {
                for j in 0..<i {
                    let d = zip(v[i], v[j]).reduce(0) { $0 + $1.0 * $1.1 }
                    for k in 0..<len { v[i][k] -= d * v[j][k] }
                }
                let norm = v[i].reduce(0) { $0 + $1 * $1 }.squareRoot()
                for k in 0..<len { v[i][k] /= max(norm, 1e-12) }
            }
            var out = [Float](repeating: 0, count: count)
            for i in 0..<n { for k in 0..<len { out[rows <= cols ? i * cols + k : k * cols + i] = Float(v[i][k]) } }
            return out
        case .glorotUniform:
            let (fanIn, fanOut) = WeightInit.fans(shape)
            let limit = (6 / Float(max(fanIn + fanOut, 1))).squareRoot()
            return Keras.uniform(count, -limit, limit)
        }
    }

    /// Keras' `compute_fans`: (in, out) for a dense kernel; for a conv kernel
    /// (kh, kw, C, F), C and F times the receptive field.
    package static func fans(_ shape: [Int]) -> (Int, Int) {
        switch shape.count {
        case 0: return (1, 1)
        case 1: return (shape[0], shape[0])
        case 2: return (shape[0], shape[1])
        default:
            let field = shape.dropLast(2).reduce(1, *)
            return (shape[shape.count - 2] * field, shape[shape.count - 1] * field)
        }
    }
}

/// A pair of sizes (height, width) written as one number or two:
/// `kernelSize: 3` or `kernelSize: [3, 2]`.
public struct Size2D: ExpressibleByIntegerLiteral, ExpressibleByArrayLiteral, Hashable, Sendable {
    public var height: Int
    public var width: Int

    /// - Parameters:
    ///   - height: rows.
    ///   - width: columns.
    public init(_ height: Int, _ width: Int) { self.height = height; self.width = width }
    public init(integerLiteral value: Int) { self.init(value, value) }
    /// One element means both sizes; otherwise (height, width).
    public init(arrayLiteral elements: Int...) {
        precondition(elements.count == 1 || elements.count == 2, "a 2-D size takes 1 or 2 numbers, got \(elements.count)")
        self.init(elements[0], elements.count == 2 ? elements[1] : elements[0])
    }

    package var list: [Int] { [height, width] }
}
