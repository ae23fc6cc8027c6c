// A tensor in host memory: what .npy files hold and what a compiled library
// takes and returns.

/// Element types a compiled library exchanges.
public enum HostDType: String, Sendable, Equatable {
    case float32, int32
}

/// A dense, row-major tensor in host memory.
public struct HostTensor: Sendable, Equatable {
    public var shape: [Int]
    public var dtype: HostDType
    /// Elements when dtype == .float32 (empty otherwise).
    public var floats: [Float]
    /// Elements when dtype == .int32 (empty otherwise).
    public var ints: [Int32]

    public init(shape: [Int], floats: [Float]) {
        precondition(shape.reduce(1, *) == floats.count, "shape \(shape) does not hold \(floats.count) elements")
        self.shape = shape; self.dtype = .float32; self.floats = floats; self.ints = []
    }
    public init(shape: [Int], ints: [Int32]) {
        precondition(shape.reduce(1, *) == ints.count, "shape \(shape) does not hold \(ints.count) elements")
        self.shape = shape; self.dtype = .int32; self.floats = []; self.ints = ints
    }

    public var count: Int { shape.reduce(1, *) }
    /// Number of rows (the first dimension); 1 for a scalar.
    public var rows: Int { shape.first ?? 1 }
}
