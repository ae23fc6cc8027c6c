// What the float64 rules (each family's `evaluate`) build on: the tensor and the
// context of an evaluation, index helpers and the scalar functions, written the
// textbook way with plain loops; nothing here reuses the loop kernels.

import Foundation

public struct InterpreterError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "interpreter: \(message)" }
}

/// What a float64 evaluation knows besides its inputs: the call's sizes, the optimizer
/// step, the step seed of the random draws, and the state writes made so far.
public struct EvalContext: Sendable {
    /// Rows N and free time steps T of the call.
    public var n: Int
    public var steps: Int
    /// The 1-based optimizer step.
    public var iteration: Int
    /// The seed of this step's random draws, as the runtime derives it (`stepSeed(seed:iteration:)`).
    public var stepSeed: UInt64
    /// Parameters written by `assign`, with the value written.
    public var assigned: [Value: [Double]] = [:]
    public init(n: Int, steps: Int = 1, iteration: Int = 1, stepSeed: UInt64 = 0) {
        self.n = n; self.steps = steps; self.iteration = iteration; self.stepSeed = stepSeed
    }
}

/// A float64 tensor: values of every dtype as [Double] in row-major order (f32 as is,
/// i32 as whole numbers, bool as 0/1).
public struct Tensor: Sendable {
    public var dims: [Int]
    public var data: [Double]
    public init(_ dims: [Int], _ data: [Double]) { self.dims = dims; self.data = data }
    public var count: Int { dims.reduce(1, *) }
}

// MARK: - Index helpers

func rowMajorStrides(_ dims: [Int]) -> [Int] {
    var s = [Int](repeating: 1, count: dims.count)
    var acc = 1
    for k in stride(from: dims.count - 1, through: 0, by: -1) { s[k] = acc; acc *= dims[k] }
    return s
}

func unravel(_ flat: Int, _ dims: [Int]) -> [Int] {
    var idx = [Int](repeating: 0, count: dims.count)
    var r = flat
    for k in stride(from: dims.count - 1, through: 0, by: -1) {
        idx[k] = r % dims[k]
        r /= dims[k]
    }
    return idx
}

func ravel(_ idx: [Int], _ dims: [Int]) -> Int {
    var flat = 0
    for k in 0..<dims.count { flat = flat * dims[k] + idx[k] }
    return flat
}

/// For each element of `outDims`, the flat index of the element of a tensor of
/// `inDims` that numpy broadcasting reads (dims aligned to the right).
func broadcastSource(_ inDims: [Int], to outDims: [Int]) throws -> [Int] {
    let lead = outDims.count - inDims.count
    guard lead >= 0 else { throw InterpreterError("cannot broadcast \(inDims) to \(outDims)") }
    for k in 0..<inDims.count where inDims[k] != 1 && inDims[k] != outDims[k + lead] {
        throw InterpreterError("cannot broadcast \(inDims) to \(outDims)")
    }
    let total = outDims.reduce(1, *)
    var src = [Int](repeating: 0, count: total)
    for flat in 0..<total {
        let o = unravel(flat, outDims)
        var i = [Int](repeating: 0, count: inDims.count)
        for k in 0..<inDims.count { i[k] = inDims[k] == 1 ? 0 : o[k + lead] }
        src[flat] = ravel(i, inDims)
    }
    return src
}

// MARK: - Scalar functions

func applyUnary(_ u: UnaryOp, _ x: Double) -> Double {
    switch u {
    case .neg: return -x
    case .abs: return Swift.abs(x)
    case .sign: return x > 0 ? 1 : (x < 0 ? -1 : 0)
    case .exp: return Foundation.exp(x)
    case .log: return Foundation.log(x)
    case .log1p: return Foundation.log1p(x)
    case .sqrt: return x.squareRoot()
    case .rsqrt: return 1 / x.squareRoot()
    case .square: return x * x
    case .reciprocal: return 1 / x
    case .tanh: return Foundation.tanh(x)
    case .sigmoid: return 1 / (1 + Foundation.exp(-x))
    case .relu: return x > 0 ? x : 0
    case .erf: return Foundation.erf(x)
    case .floor: return Foundation.floor(x)
    case .softplus: return Swift.max(x, 0) + Foundation.log1p(Foundation.exp(-Swift.abs(x)))
    case .step: return x > 0 ? 1 : 0
    }
}

func applyBinary(_ o: BinaryOp, _ a: Double, _ b: Double) -> Double {
    switch o {
    case .add: return a + b
    case .sub: return a - b
    case .mul: return a * b
    case .div: return a / b
    case .max: return a >= b ? a : b
    case .min: return a <= b ? a : b
    case .pow: return Foundation.pow(a, b)
    }
}

func applyCompare(_ c: CompareOp, _ a: Double, _ b: Double) -> Double {
    let r: Bool
    switch c {
    case .eq: r = a == b
    case .ne: r = a != b
    case .lt: r = a < b
    case .le: r = a <= b
    case .gt: r = a > b
    case .ge: r = a >= b
    }
    return r ? 1 : 0
}

func applyCast(_ t: DType, _ x: Double) -> Double {
    switch t {
    case .f32: return x
    case .i32: return x.isFinite ? x.rounded(.towardZero) : 0
    case .bool: return x != 0 ? 1 : 0
    }
}

func evalFused(_ e: FusedExpr, _ args: [Double], _ ctx: EvalContext) -> Double {
    switch e {
    case .arg(let k): return args[k]
    case .const(let c): return Double(c)
    case .batchSize: return Double(ctx.n)
    case .stepCount: return Double(ctx.steps)
    case .iteration: return Double(ctx.iteration)
    case let .unary(u, a): return applyUnary(u, evalFused(a, args, ctx))
    case let .binary(o, a, b): return applyBinary(o, evalFused(a, args, ctx), evalFused(b, args, ctx))
    case let .compare(c, a, b): return applyCompare(c, evalFused(a, args, ctx), evalFused(b, args, ctx))
    case let .select(c, a, b): return evalFused(c, args, ctx) != 0 ? evalFused(a, args, ctx) : evalFused(b, args, ctx)
    case let .cast(t, a): return applyCast(t, evalFused(a, args, ctx))
    }
}

/// Applies f elementwise over inputs broadcast to outDims.
func elementwise(_ ins: [Tensor], _ outDims: [Int], _ f: ([Double]) -> Double) throws -> [Double] {
    let maps = try ins.map { try broadcastSource($0.dims, to: outDims) }
    let total = outDims.reduce(1, *)
    var out = [Double](repeating: 0, count: total)
    var args = [Double](repeating: 0, count: ins.count)
    for i in 0..<total {
        for k in 0..<ins.count { args[k] = ins[k].data[maps[k][i]] }
        out[i] = f(args)
    }
    return out
}
