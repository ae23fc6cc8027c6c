// Tensor types: element type and shape, with the batch dimension symbolic.

// formatShape and the other shared helpers come from KilnSupport, for every module that imports KilnIR.
@_exported import KilnSupport

/// Element types of graph values.
public enum DType: String, Sendable, Hashable {
    case f32, i32
    /// Boolean masks; stored as one byte per element.
    case bool

    /// Bytes one element takes in memory.
    public var byteSize: Int { self == .bool ? 1 : 4 }
}

/// One dimension of a shape. Two sizes are known only at run time: the number
/// of rows N of the call and the number of time steps T of a sequence whose
/// length is free (Keras' `Input((None, F))`). `.batch(k)` is k·N (k = 1 for
/// the usual leading batch dimension; a reshape of (N, T, F) to (N*T, F) gives
/// `.batch(T)` when T is fixed), `.steps(k)` is k·T and `.batchSteps(k)` k·N·T.
public enum Dim: Hashable, Sendable, CustomStringConvertible {
    case fixed(Int)
    case batch(Int)
    case steps(Int)
    case batchSteps(Int)

    public static let n = Dim.batch(1)
    /// The free number of time steps.
    public static let t = Dim.steps(1)

    /// Whether the size is a multiple of N.
    public var isBatch: Bool { if case .batch = self { return true }; if case .batchSteps = self { return true }; return false }
    /// Whether the size is a multiple of the free number of steps T.
    public var isSteps: Bool { if case .steps = self { return true }; if case .batchSteps = self { return true }; return false }
    /// The static factor: the size for a fixed dimension, the multiple of N, T or N·T otherwise.
    public var factor: Int {
        switch self {
        case .fixed(let k), .batch(let k), .steps(let k), .batchSteps(let k): return k
        }
    }
    public var fixedValue: Int? { if case .fixed(let k) = self { return k } else { return nil } }

    /// A dimension of the given factor and symbols.
    public static func make(_ factor: Int, n: Bool, t: Bool) -> Dim {
        switch (n, t) {
        case (false, false): return .fixed(factor)
        case (true, false): return .batch(factor)
        case (false, true): return .steps(factor)
        case (true, true): return .batchSteps(factor)
        }
    }

    /// The product of dimensions (a flattening), nil when N or T would appear twice.
    public static func product(_ dims: [Dim]) -> Dim? {
        var (k, n, t) = (1, false, false)
        for d in dims {
            if d.isBatch { if n { return nil }; n = true }
            if d.isSteps { if t { return nil }; t = true }
            k *= d.factor
        }
        return make(k, n: n, t: t)
    }

    /// The size for given N and T.
    public func size(n: Int, t: Int) -> Int { factor * (isBatch ? n : 1) * (isSteps ? t : 1) }

    public var description: String {
        switch self {
        case .fixed(let k): return String(k)
        case .batch(1): return "N"
        case .batch(let k): return "N*\(k)"
        case .steps(1): return "T"
        case .steps(let k): return "T*\(k)"
        case .batchSteps(1): return "N*T"
        case .batchSteps(let k): return "N*T*\(k)"
        }
    }
}

/// How a value's element count scales with the run-time sizes.
public struct Scale: Hashable, Sendable, Comparable {
    public var n: Bool, t: Bool
    public init(n: Bool, t: Bool) { self.n = n; self.t = t }
    public static let fixed = Scale(n: false, t: false)
    var rank: Int { (n ? 2 : 0) + (t ? 1 : 0) }
    public static func < (a: Scale, b: Scale) -> Bool { a.rank < b.rank }
    public var description: String { self == .fixed ? "1" : [n ? "N" : nil, t ? "T" : nil].compactMap { $0 }.joined(separator: "*") }
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
    /// Whether the element count scales with the free number of steps T.
    public var scalesWithSteps: Bool { shape.contains { $0.isSteps } }
    /// How the element count scales.
    public var scale: Scale { Scale(n: scalesWithBatch, t: scalesWithSteps) }
    /// Element count per unit of the scale (per row, per row-step, ...).
    public var staticCount: Int { shape.reduce(1) { $0 * $1.factor } }
    /// `staticCount`, or nil when it overflows Int (a crafted or mistaken shape).
    public var checkedStaticCount: Int? {
        var c = 1
        for d in shape {
            let (r, o) = c.multipliedReportingOverflow(by: d.factor)
            if o { return nil }
            c = r
        }
        return c
    }
    /// Element count for a given N and T.
    public func count(n: Int, t: Int = 1) -> Int { staticCount * (scalesWithBatch ? n : 1) * (scalesWithSteps ? t : 1) }
    /// Shape with -1 for the batch and free dimensions, as the C header shows it.
    public var externalShape: [Int] { shape.map { $0.isBatch || $0.isSteps ? -1 : $0.factor } }
    /// Per-sample shape (dims after a leading N), Keras style: "(None, 26, 5, 32)".
    public var kerasDescription: String { kerasDescription(batch: nil) }
    /// Keras style, with the batch size a model fixes (an Input's batch_shape) in place of None.
    public func kerasDescription(batch: Int?) -> String {
        let parts = shape.map { d -> String in
            switch d {
            case .batch(let k): return batch.map { String($0 * k) } ?? "None"
            case .steps: return "None"
            default: return d.description
            }
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
