// Tensor types: element type and shape, with the batch dimension symbolic.

/// Element types of graph values.
public enum DType: String, Sendable, Hashable {
    case f32, i32
    /// Boolean masks; stored as one byte per element.
    case bool

    /// Bytes one element takes in memory.
    public var byteSize: Int { self == .bool ? 1 : 4 }
}

/// One dimension of a shape. The batch dimension is symbolic: `.batch(k)` is
/// k times the number of rows N of the call (k = 1 for the usual leading batch
/// dimension; a reshape of (N, T, F) to (N*T, F) gives `.batch(T)`).
public enum Dim: Hashable, Sendable, CustomStringConvertible {
    case fixed(Int)
    case batch(Int)

    public static let n = Dim.batch(1)

    public var isBatch: Bool { if case .batch = self { return true } else { return false } }
    /// The static factor: the size for a fixed dimension, the multiple of N for a batch one.
    public var factor: Int {
        switch self {
        case .fixed(let k), .batch(let k): return k
        }
    }
    public var fixedValue: Int? { if case .fixed(let k) = self { return k } else { return nil } }

    public var description: String {
        switch self {
        case .fixed(let k): return String(k)
        case .batch(1): return "N"
        case .batch(let k): return "N*\(k)"
        }
    }
}

/// The type of a graph value.
public struct TensorType: Hashable, Sendable, CustomStringConvertible {
    public var dtype: DType
    public var shape: [Dim]

    public init(_ dtype: DType, _ shape: [Dim]) { self.dtype = dtype; self.shape = shape }
    public static func f32(_ shape: [Dim]) -> TensorType { TensorType(.f32, shape) }

    public var rank: Int { shape.count }
    /// Whether the element count scales with N.
    public var scalesWithBatch: Bool { shape.contains { $0.isBatch } }
    /// Element count per row of N when it scales with the batch, else the total count.
    public var staticCount: Int { shape.reduce(1) { $0 * $1.factor } }
    /// Element count for a given N.
    public func count(n: Int) -> Int { staticCount * (scalesWithBatch ? n : 1) }
    /// Shape with -1 for batch dimensions, as the C header shows it.
    public var externalShape: [Int] { shape.map { $0.isBatch ? -1 : $0.factor } }
    /// Per-sample shape (dims after a leading N), Keras style: "(None, 26, 5, 32)".
    public var kerasDescription: String {
        let parts = shape.map { d -> String in
            switch d { case .batch(1): return "None"; default: return d.description }
        }
        return "(" + parts.joined(separator: ", ") + (parts.count == 1 ? ",)" : ")")
    }
    public var description: String {
        "\(dtype.rawValue)[" + shape.map(\.description).joined(separator: ", ") + "]"
    }
}

/// Error from shape inference or verification. The message names the layer,
/// the shapes on both sides and, where one helps, a hint.
public struct ShapeError: Error, CustomStringConvertible, Sendable {
    public var layer: String
    public var message: String
    public var hint: String?
    public init(layer: String, _ message: String, hint: String? = nil) {
        self.layer = layer; self.message = message; self.hint = hint
    }
    public var description: String {
        var s = "\(layer): \(message)"
        if let hint { s += "; \(hint)" }
        return s
    }
}

/// Formats a per-sample shape like Keras does: (26, 5, 32), (784,).
public func formatShape(_ dims: [Int]) -> String {
    "(" + dims.map(String.init).joined(separator: ", ") + (dims.count == 1 ? ",)" : ")")
}
