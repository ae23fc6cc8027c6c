// A naive float64 interpreter of primitive graphs: the independent numerical
// reference the tests compare the compiler's rules and kernels against. It walks
// the graph and asks each primitive's family for its float64 meaning (the
// `evaluate` rules in KilnIR/Ops/*.swift, written the textbook way with plain
// nested loops; none reuses a loop kernel).
//
// Values of every dtype are held as [Double] in row-major order: f32 as is,
// i32 as whole numbers, bool as 0/1.

import Foundation
import KilnIR

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
                           iteration: Int = 1, stepSeed: UInt64 = 0) throws -> [Value: [Double]] {
        let r = try evaluate(g, inputs: inputs, params: params, n: n, steps: steps, iteration: iteration, stepSeed: stepSeed)
        var values = r.values
        for (p, v) in r.assigned { values[p] = v }
        return values
    }

    /// Runs g and returns the values and the assignments separately.
    /// - Parameters:
    ///   - steps: the free number of time steps T, for graphs that have one.
    ///   - iteration: the 1-based optimizer step.
    ///   - stepSeed: the seed of the step's random draws, as the runtime derives it from the
    ///     instance's seed and the step (`stepSeed(seed:iteration:)`); predict uses 0.
    public static func evaluate(_ g: Graph, inputs: [[Double]], params: [[Double]]? = nil, n: Int, steps: Int = 1,
                                iteration: Int = 1, stepSeed: UInt64 = 0) throws -> Result {
        var env: [Value: [Double]] = [:]
        var ctx = EvalContext(n: n, steps: steps, iteration: iteration, stepSeed: stepSeed)
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
            let outs = try op.family.evaluate(op, node, ins, outDims, &ctx)
            guard outs.count == node.outputs.count else {
                throw InterpreterError("\(op) (\(node.layer)) produced \(outs.count) outputs, expected \(node.outputs.count)")
            }
            for (k, (v, out)) in zip(node.outputs, outs).enumerated() {
                let want = outDims[k].reduce(1, *)
                guard out.count == want else {
                    throw InterpreterError("\(op) (\(node.layer)) produced \(out.count) values, expected \(want)")
                }
                env[v] = out
            }
        }
        return Result(values: env, assigned: ctx.assigned)
    }

    /// Concrete dimensions of a type for a batch of n rows of t steps.
    public static func dims(_ t: TensorType, _ n: Int, _ steps: Int = 1) -> [Int] {
        t.shape.map { $0.size(n: n, t: steps) }
    }
}

