// A naive float64 interpreter of primitive graphs: the independent numerical
// reference the tests compare the compiler's rules and kernels against.
// Every op is written the textbook way with plain nested loops; nothing here
// reuses the loop kernels of KilnPasses.
//
// Values of every dtype are held as [Double] in row-major order: f32 as is,
// i32 as whole numbers, bool as 0/1.

import Foundation
import KilnIR

public struct InterpreterError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "interpreter: \(message)" }
}

public enum Interpreter {
    /// Everything one run computes.
    public struct Result: Sendable {
        /// Every value of the graph (inputs, parameters before the step, node outputs).
        public var values: [Value: [Double]]
        /// Parameters written by `assign` nodes, with the value written.
        public var assigned: [Value: [Double]]
    }

    /// Runs g with the given inputs (in g.inputs order) and parameter values
    /// (in g.params order; nil uses the parameters' initial values).
    /// Returns every value; a parameter written by an `assign` holds, in the
    /// returned map, the value assigned to it (its state after the step).
    /// Use `evaluate` to see the old and new parameter values separately.
    public static func run(_ g: Graph, inputs: [[Double]], params: [[Double]]? = nil, n: Int, steps: Int = 1,
                           iteration: Int = 1, seed: UInt64 = 0) throws -> [Value: [Double]] {
        let r = try evaluate(g, inputs: inputs, params: params, n: n, steps: steps, iteration: iteration, seed: seed)
        var values = r.values
        for (p, v) in r.assigned { values[p] = v }
        return values
    }

    /// Runs g and returns the values and the assignments separately.
    /// - Parameter steps: the free number of time steps T, for graphs that have one.
    public static func evaluate(_ g: Graph, inputs: [[Double]], params: [[Double]]? = nil, n: Int, steps: Int = 1,
                                iteration: Int = 1, seed: UInt64 = 0) throws -> Result {
        _ = seed
        var env: [Value: [Double]] = [:]
        var assigned: [Value: [Double]] = [:]
        guard inputs.count == g.inputs.count else {
            throw InterpreterError("graph \(g.name) has \(g.inputs.count) inputs, got \(inputs.count)")
        }
        for (k, v) in g.inputs.enumerated() {
            let want = g.type(v).count(n: n, t: steps)
            guard inputs[k].count == want else {
                throw InterpreterError("input \(k) (\(g.inputNames[k])) needs \(want) values, got \(inputs[k].count)")
            }
            env[v] = inputs[k]
        }
        if let params, params.count != g.params.count {
            throw InterpreterError("graph \(g.name) has \(g.params.count) parameters, got \(params.count)")
        }
        for (k, p) in g.params.enumerated() {
            let data = params?[k] ?? p.initial.map(Double.init)
            guard data.count == p.type.staticCount else {
                throw InterpreterError("parameter \(p.name) needs \(p.type.staticCount) values, got \(data.count)")
            }
            env[p.value] = data
        }
        for node in g.nodes {
            guard case .prim(let op) = node.op else {
                throw InterpreterError("layer op \(node.op) (\(node.layer)): lower the graph first")
            }
            var ins: [Tensor] = []
            for v in node.inputs {
                guard let d = env[v] else { throw InterpreterError("\(v) used before it is defined (\(node.layer))") }
                ins.append(Tensor(dims(g.type(v), n, steps), d))
            }
            let outDims = node.outputs.map { dims(g.type($0), n, steps) }
            let ctx = Context(n: n, steps: steps, iteration: iteration)
            if case .assign = op {
                assigned[node.inputs[0]] = ins[1].data
                continue
            }
            if case let .scan(cell) = op {
                for (o, d) in zip(node.outputs, try evalScan(cell, ins, n: n)) { env[o] = d }
                continue
            }
            if case let .split(axis, sizes) = op {
                var start = 0
                for (o, size) in zip(node.outputs, sizes) {
                    env[o] = slice(ins[0], axis: axis, start: start, length: size)
                    start += size
                }
                continue
            }
            let out = try evalPrim(op, ins, outDims.first ?? [], ctx)
            guard let v = node.outputs.first else { continue }
            let want = outDims[0].reduce(1, *)
            guard out.count == want else {
                throw InterpreterError("\(op) (\(node.layer)) produced \(out.count) values, expected \(want)")
            }
            env[v] = out
        }
        return Result(values: env, assigned: assigned)
    }

    /// Concrete dimensions of a type for a batch of n rows of t steps.
    public static func dims(_ t: TensorType, _ n: Int, _ steps: Int = 1) -> [Int] {
        t.shape.map { $0.size(n: n, t: steps) }
    }
}

struct Context {
    var n: Int
    var steps: Int = 1
    var iteration: Int
}

struct Tensor {
    var dims: [Int]
    var data: [Double]
    init(_ dims: [Int], _ data: [Double]) { self.dims = dims; self.data = data }
    var count: Int { dims.reduce(1, *) }
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

func evalFused(_ e: FusedExpr, _ args: [Double], _ ctx: Context) -> Double {
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
