// Random well-typed primitive graphs compiled the whole way (passes, schedule,
// LLVM, the runtime) and compared with the float64 interpreter: elementwise
// ops with broadcasting, reductions over any non-batch axes, products,
// transposes, slices, pads, concatenations and a CRF's NLL and its gradient,
// in chains the fusion, CSE and epilogue passes rewrite. `make test` runs a few models with a fixed seed;
// KILN_DIFF_MODELS=N runs N models (each holds GRAPHS_PER_MODEL graphs).

import Foundation
import XCTest
import Kiln
import KilnIR
import KilnReference
import KilnRuntime

extension TestRNG: RandomNumberGenerator {}

final class DifferentialTests: XCTestCase {
    static let graphsPerModel = 10

    /// Builds one model of `graphsPerModel` random expressions over two inputs (N, a, b) and (N, a, b).
    func randomModel(_ r: inout TestRNG, index: Int) throws -> (Graph, [[Int]]) {
        var g = Graph(name: "diff\(index)")
        let (a, b) = (1 + r.int(5), 1 + r.int(6))
        let x = g.addInput("x", .f32([.n, .fixed(a), .fixed(b)]))
        let y = g.addInput("y", .f32([.n, .fixed(a), .fixed(b)]))
        var pool: [Value] = [x, y]
        var params = 0
        func shape(_ v: Value) -> [Int] { g.type(v).shape.dropFirst().map(\.factor) }
        func pick() -> Value { pool[r.int(pool.count)] }
        func add(_ op: PrimOp, _ ins: [Value]) throws -> Value { try g.add(.prim(op), ins, layer: "op\(g.nodes.count)")[0] }
        // Keeps a value in a range where float32 and float64 agree to a few ulps relative to 1.
        func bounded(_ v: Value) throws -> Value { try add(.unary(.tanh), [v]) }
        var outputs = 0
        while outputs < Self.graphsPerModel {
            var v: Value
            switch r.int(11) {
            case 0:
                let ops: [UnaryOp] = [.neg, .abs, .tanh, .sigmoid, .relu, .square, .softplus, .erf, .exp]
                let op = ops[r.int(ops.count)]
                v = try add(.unary(op), [try (op == .exp || op == .square) ? bounded(pick()) : pick()])
            case 1, 2:
                // Same shapes, or the second reduced (keepDims) so that it broadcasts.
                let p = pick()
                var q = pool.filter { shape($0) == shape(p) }.randomElement(using: &r) ?? p
                if r.int(3) == 0, shape(q).count > 1 {
                    q = try add(.reduce(.sum, axes: [1 + r.int(shape(q).count)], keepDims: true), [q])
                }
                let ops: [BinaryOp] = [.add, .sub, .mul, .max, .min]
                v = try add(.binary(ops[r.int(ops.count)]), [p, q])
            case 3:
                let p = pick(), rank = shape(p).count
                guard rank >= 1 else { continue }
                let axes = Array(Set((0..<(1 + r.int(rank))).map { _ in 1 + r.int(rank) })).sorted()
                let kinds: [ReduceOp] = [.sum, .max, .mean]
                v = try add(.reduce(kinds[r.int(3)], axes: axes, keepDims: r.int(2) == 0), [p])
            case 4:
                // A product with a weight over the last axis, as a Dense layer makes it.
                let p = pick(), s = shape(p)
                guard let k = s.last, !s.isEmpty else { continue }
                let m = 1 + r.int(40)
                let w = g.addParam("w\(params)", .f32([.fixed(k), .fixed(m)]), initial: r.floats(k * m, -0.5, 0.5))
                params += 1
                let rows = Dim.product([.n] + s.dropLast().map { .fixed($0) })!
                let flat = try add(.reshape([rows, .fixed(k)]), [p])
                let prod = try add(.matmul(transA: false, transB: false), [flat, w])
                v = try add(.reshape([.n] + s.dropLast().map { .fixed($0) } + [.fixed(m)]), [prod])
                if r.int(2) == 0 {
                    let bias = g.addParam("b\(params)", .f32([.fixed(m)]), initial: r.floats(m, -0.5, 0.5))
                    params += 1
                    v = try add(.binary(.add), [v, bias])
                    if r.int(2) == 0 { v = try add(.unary(.relu), [v]) }
                }
            case 5:
                let p = pick(), rank = shape(p).count
                guard rank >= 2 else { continue }
                v = try add(.transpose([0] + Array(1...rank).shuffled(using: &r)), [p])
            case 6:
                let p = pick(), s = shape(p)
                guard !s.isEmpty else { continue }
                let axis = 1 + r.int(s.count), extent = s[axis - 1]
                let start = r.int(extent)
                v = try add(.slice(axis: axis, start: start, length: 1 + r.int(extent - start)), [p])
            case 7:
                let p = pick()
                guard let q = pool.filter({ shape($0).count == shape(p).count && !shape($0).isEmpty }).randomElement(using: &r),
                      !shape(p).isEmpty else { continue }
                // Concatenate along an axis where the other dimensions agree.
                let rank = shape(p).count
                let (sp, sq) = (shape(p), shape(q))
                func fits(_ ax: Int) -> Bool {
                    for d in 1...rank where d != ax && sp[d - 1] != sq[d - 1] { return false }
                    return true
                }
                guard let axis = (1...rank).first(where: fits) else { continue }
                v = try add(.concat(axis: axis), [p, q])
            case 8:
                let p = pick(), s = shape(p)
                guard !s.isEmpty else { continue }
                let values: [Float] = [0, 1, -0.5]
                v = try add(.pad(axis: 1 + r.int(s.count), before: r.int(3), after: r.int(3), value: values[r.int(3)]), [p])
            case 9:
                // A CRF over p as emissions (N, steps, tags): the NLL of tags drawn from q, or the NLL's
                // gradient to the emissions, with a mask from q's sign.
                let p = pick(), s = shape(p)
                guard s.count == 2 else { continue }
                let q = try add(.reshape([.n] + s.map { .fixed($0) }), [pool.filter { shape($0) == s }.randomElement(using: &r) ?? p])
                let (steps, tags) = (s[0], s[1])
                func weight(_ dims: [Int]) -> Value {
                    params += 1
                    return g.addParam("crf\(params)", .f32(dims.map { .fixed($0) }), initial: r.floats(dims.reduce(1, *), -0.5, 0.5))
                }
                let (a, st, en) = (weight([tags, tags]), weight([tags]), weight([tags]))
                let first = try add(.reshape([.n, .fixed(steps)]), [try add(.slice(axis: 2, start: 0, length: 1), [q])])
                let y = try add(.cast(.i32), [try add(.unary(.floor), [try add(.binary(.mul), [try add(.unary(.sigmoid), [first]),
                                                                                              try add(.constant(Float(tags) * 0.999), [])])])])
                let mask = try add(.compare(.gt), [first, try add(.constant(-0.3), [])])
                let e = try bounded(p)
                if r.int(2) == 0 {
                    v = try add(.reshape([.n, .fixed(1)]), [try add(.crfNLL, [e, a, st, en, y, mask])])
                } else {
                    let dnll = try add(.reduce(.mean, axes: [1, 2], keepDims: false), [q])
                    v = try g.add(.prim(.crfNLLGrad), [e, a, st, en, y, dnll, mask], layer: "op\(g.nodes.count)")[0]
                }
            default:
                v = try bounded(pick())
            }
            pool.append(v)
            if r.int(3) == 0 && !shape(v).isEmpty {
                g.addOutput(v, name: "out\(outputs)")
                outputs += 1
            }
        }
        return (g, [[a, b], [a, b]])
    }

    func testRandomGraphsAgainstTheInterpreter() throws {
        let models = Int(ProcessInfo.processInfo.environment["KILN_DIFF_MODELS"] ?? "") ?? 4
        var r = TestRNG(20261202)
        let n = 3
        for index in 0..<models {
            let (g, inShapes) = try randomModel(&r, index: index)
            let lib = try compileAndLoad(Model(graph: g, layers: [], training: nil, isSequential: false), name: "diff\(index)",
                                         dir: try makeTempDir(self))
            let xs = inShapes.map { s in r.floats(n * s.reduce(1, *), -1.5, 1.5) }
            let got = try lib.predict(zip(xs, inShapes).map { HostTensor(shape: [n] + $1, floats: $0) })
            let want = try Interpreter.run(g, inputs: xs.map { $0.map(Double.init) }, n: n)
            for (k, v) in g.outputs.enumerated() {
                assertClose(got[k].floats, want[v]!, rtol: 1e-4, atol: 1e-4, "model \(index) output \(k) (\(g.type(v)))")
            }
        }
    }
}
