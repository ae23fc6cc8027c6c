// Loop kernels: the level between primitive ops and LLVM. A kernel is a nest
// of parallel loops (one per output dimension) with an optional innermost
// reduction, whose body is a scalar expression of the loop indices and
// buffer loads. Codegen turns each into one LLVM function.

/// A scalar expression inside a loop kernel. Integers are 64-bit, reals f32,
/// booleans i1.
public indirect enum KExpr: Hashable, Sendable, CustomStringConvertible {
    case real(Float)
    case int(Int)
    /// Loop variable k: parallel loops first, then reduction loops.
    case index(Int)
    /// The number of rows N of the call.
    case n
    /// The 1-based optimizer step number.
    case iteration
    /// Loads element `at` of kernel argument `buffer` (f32 gives a real; i32 and
    /// bool give an int).
    case load(buffer: Int, at: KExpr)
    /// A load that yields `otherwise` (a real) where `valid` is false, without
    /// touching memory there.
    case guardedLoad(buffer: Int, at: KExpr, valid: KExpr, otherwise: Float)
    case unary(UnaryOp, KExpr)
    case binary(BinaryOp, KExpr, KExpr)
    /// Integer arithmetic.
    case iadd(KExpr, KExpr), imul(KExpr, KExpr), idiv(KExpr, KExpr), imod(KExpr, KExpr), isub(KExpr, KExpr)
    /// Comparison of two reals or two ints, giving a boolean.
    case compare(CompareOp, KExpr, KExpr)
    case and(KExpr, KExpr)
    case select(KExpr, KExpr, KExpr)
    case toReal(KExpr)
    case toInt(KExpr)
    /// The reduction accumulator (in an epilogue only).
    case acc
    /// Uniform [0, 1) from the step seed, the salt and an element index.
    case random(salt: Int, at: KExpr)

    public var description: String {
        switch self {
        case .real(let f): return formatFloat(f) + "f"
        case .int(let i): return String(i)
        case .index(let k): return "i\(k)"
        case .n: return "N"
        case .iteration: return "t"
        case let .load(b, at): return "b\(b)[\(at)]"
        case let .guardedLoad(b, at, v, o): return "(\(v) ? b\(b)[\(at)] : \(formatFloat(o)))"
        case let .unary(op, a): return "\(op.rawValue)(\(a))"
        case let .binary(op, a, b): return "\(op.rawValue)(\(a), \(b))"
        case let .iadd(a, b): return "(\(a) + \(b))"
        case let .isub(a, b): return "(\(a) - \(b))"
        case let .imul(a, b): return "\(a)*\(b)"
        case let .idiv(a, b): return "(\(a) / \(b))"
        case let .imod(a, b): return "(\(a) % \(b))"
        case let .compare(op, a, b): return "\(op.rawValue)(\(a), \(b))"
        case let .and(a, b): return "(\(a) && \(b))"
        case let .select(c, a, b): return "select(\(c), \(a), \(b))"
        case .toReal(let a): return "real(\(a))"
        case .toInt(let a): return "int(\(a))"
        case .acc: return "acc"
        case let .random(s, at): return "random<\(s)>(\(at))"
        }
    }

    // Integer helpers that fold constants, so indices stay readable and cheap.
    public static func + (a: KExpr, b: KExpr) -> KExpr {
        if case .int(0) = a { return b }
        if case .int(0) = b { return a }
        if case let .int(x) = a, case let .int(y) = b { return .int(x + y) }
        return .iadd(a, b)
    }
    public static func - (a: KExpr, b: KExpr) -> KExpr {
        if case .int(0) = b { return a }
        if case let .int(x) = a, case let .int(y) = b { return .int(x - y) }
        return .isub(a, b)
    }
    public static func * (a: KExpr, b: KExpr) -> KExpr {
        if case .int(0) = a { return .int(0) }
        if case .int(0) = b { return .int(0) }
        if case .int(1) = a { return b }
        if case .int(1) = b { return a }
        if case let .int(x) = a, case let .int(y) = b { return .int(x * y) }
        return .imul(a, b)
    }
}

/// How a reduction combines.
public enum KReduce: String, Hashable, Sendable { case sum, max }

/// One kernel argument.
public struct KBuffer: Hashable, Sendable {
    public var dtype: DType
    public var written: Bool
    public init(_ dtype: DType, written: Bool = false) { self.dtype = dtype; self.written = written }
}

/// A loop nest that writes one buffer.
public struct LoopKernel: Hashable, Sendable, CustomStringConvertible {
    public var buffers: [KBuffer]
    /// Extents of the parallel loops, outermost first (int expressions; may use N).
    public var loops: [KExpr]
    /// Extents of the reduction loops, innermost.
    public var reduceLoops: [KExpr]
    public var reduceOp: KReduce
    /// The value at each point (of parallel and reduction loops).
    public var body: KExpr
    /// Applied to the accumulator after the reduction (identity if nil).
    public var epilogue: KExpr?
    /// Output buffer and the element written at each parallel point.
    public var output: Int
    public var outputIndex: KExpr
    /// The output buffer may also be an input (an in-place update): buffers may alias.
    public var inPlace = false
    /// Adds the value to the output element instead of storing it (`output[outputIndex] += value`),
    /// in loop order: the output is read as well as written, and a step that zeroes it must come
    /// first. Several points may hit the same element (a scatter): the adds happen in loop order
    /// (LLVM vectorizes a loop only where it can tell its adds apart).
    public var accumulate = false

    public init(buffers: [KBuffer], loops: [KExpr], reduceLoops: [KExpr] = [], reduceOp: KReduce = .sum,
                body: KExpr, epilogue: KExpr? = nil, output: Int, outputIndex: KExpr) {
        self.buffers = buffers; self.loops = loops; self.reduceLoops = reduceLoops; self.reduceOp = reduceOp
        self.body = body; self.epilogue = epilogue; self.output = output; self.outputIndex = outputIndex
    }

    public var description: String {
        var s = "for " + loops.enumerated().map { "i\($0)<\($1)" }.joined(separator: ", ")
        if !reduceLoops.isEmpty {
            s += " \(reduceOp.rawValue) " + reduceLoops.enumerated().map { "i\($0 + loops.count)<\($1)" }.joined(separator: ", ")
        }
        s += ": b\(output)[\(outputIndex)] \(accumulate ? "+=" : "=") \(body)"
        if let epilogue { s += " then \(epilogue)" }
        return s
    }
}

/// Row-major strides of a shape, as int expressions (a batch dimension's
/// extent is k*N).
public func extents(_ shape: [Dim]) -> [KExpr] {
    shape.map { d in d.isBatch ? KExpr.n * .int(d.factor) : .int(d.factor) }
}

/// The linear index of a multi-index into a row-major shape, with broadcasting:
/// dimensions of size 1 contribute nothing. `indices` align to the right.
public func linearIndex(_ shape: [Dim], _ indices: [KExpr]) -> KExpr {
    let ext = extents(shape)
    let offset = indices.count - shape.count
    var idx = KExpr.int(0)
    var step = KExpr.int(1)
    for k in (0..<shape.count).reversed() {
        if shape[k] != .fixed(1) { idx = idx + indices[k + offset] * step }
        step = step * ext[k]
    }
    return idx
}
