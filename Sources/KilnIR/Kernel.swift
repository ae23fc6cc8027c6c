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
    /// The number of time steps T of the call (a free sequence length).
    case steps
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
    /// Inside a scan's step kernel: the input step t, the input step of the previous
    /// processing step (-1 at the first), and the output position of this step.
    case scanStep, scanPrevious, scanOutput

    public var description: String {
        switch self {
        case .real(let f): return formatFloat(f) + "f"
        case .int(let i): return String(i)
        case .index(let k): return "i\(k)"
        case .n: return "N"
        case .steps: return "T"
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
        case .scanStep: return "t"
        case .scanPrevious: return "t_prev"
        case .scanOutput: return "t_out"
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

extension KExpr {
    /// The expression with every buffer number k replaced by f(k).
    public func mapBuffers(_ f: (Int) -> Int) -> KExpr {
        func m(_ e: KExpr) -> KExpr { e.mapBuffers(f) }
        switch self {
        case .real, .int, .index, .n, .steps, .iteration, .acc, .scanStep, .scanPrevious, .scanOutput: return self
        case let .load(b, at): return .load(buffer: f(b), at: m(at))
        case let .guardedLoad(b, at, v, o): return .guardedLoad(buffer: f(b), at: m(at), valid: m(v), otherwise: o)
        case let .unary(op, a): return .unary(op, m(a))
        case let .binary(op, a, b): return .binary(op, m(a), m(b))
        case let .iadd(a, b): return .iadd(m(a), m(b))
        case let .isub(a, b): return .isub(m(a), m(b))
        case let .imul(a, b): return .imul(m(a), m(b))
        case let .idiv(a, b): return .idiv(m(a), m(b))
        case let .imod(a, b): return .imod(m(a), m(b))
        case let .compare(op, a, b): return .compare(op, m(a), m(b))
        case let .and(a, b): return .and(m(a), m(b))
        case let .select(c, a, b): return .select(m(c), m(a), m(b))
        case .toReal(let a): return .toReal(m(a))
        case .toInt(let a): return .toInt(m(a))
        case let .random(s, at): return .random(salt: s, at: m(at))
        }
    }
}

extension LoopKernel {
    /// Binds each distinct value to one buffer: a value passed twice (an update written in
    /// place over its input) becomes one buffer that is read and written, so every buffer
    /// stays distinct (noalias) and the loop vectorizes without run-time overlap checks.
    /// Only for kernels whose every access to such a value is at the output index.
    public static func mergingDuplicateArguments<V: Hashable>(_ k: LoopKernel, _ args: [V]) -> (LoopKernel, [V]) {
        var first: [V: Int] = [:]
        var map: [Int] = []
        var kept: [Int] = []
        for (i, a) in args.enumerated() {
            if let j = first[a] { map.append(map[j]) } else { first[a] = i; map.append(kept.count); kept.append(i) }
        }
        guard kept.count < args.count else { return (k, args) }
        var out = k
        out.buffers = kept.map { i in
            var b = k.buffers[i]
            b.written = args.indices.contains { args[$0] == args[i] && k.buffers[$0].written }
            return b
        }
        out.body = k.body.mapBuffers { map[$0] }
        out.epilogue = k.epilogue?.mapBuffers { map[$0] }
        out.output = map[k.output]
        out.outputIndex = k.outputIndex.mapBuffers { map[$0] }
        out.extraStores = k.extraStores.map { KStore(map[$0.buffer], $0.index.mapBuffers { map[$0] }, $0.value.mapBuffers { map[$0] }) }
        out.inPlace = false
        return (out, kept.map { args[$0] })
    }
}

/// One store of a multi-output kernel.
public struct KStore: Hashable, Sendable {
    public var buffer: Int
    public var index: KExpr
    public var value: KExpr
    public init(_ buffer: Int, _ index: KExpr, _ value: KExpr) { self.buffer = buffer; self.index = index; self.value = value }
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
    /// Further stores at each parallel point (kernels without reduction loops): every value
    /// is computed before any store, so a buffer may be read and written at the same element.
    public var extraStores: [KStore] = []
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
        for st in extraStores { s += "; b\(st.buffer)[\(st.index)] = \(st.value)" }
        return s
    }
}

/// Row-major strides of a shape, as int expressions (a batch dimension's
/// extent is k*N).
public func extents(_ shape: [Dim]) -> [KExpr] {
    shape.map(extent)
}

/// The size of one dimension as an int expression.
public func extent(_ d: Dim) -> KExpr {
    var e = KExpr.int(d.factor)
    if d.isSteps { e = .steps * e }
    if d.isBatch { e = .n * e }
    return e
}

/// The element count of a type as an int expression.
public func elementCount(_ t: TensorType) -> KExpr {
    var e = KExpr.int(t.staticCount)
    if t.scalesWithSteps { e = .steps * e }
    if t.scalesWithBatch { e = .n * e }
    return e
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
