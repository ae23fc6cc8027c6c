// Shared helpers of the IR tests: a seeded random source and the gradient
// check (autodiff evaluated by the float64 reference vs central differences).

import XCTest
@_exported import KilnTestSupport
import KilnIR
import KilnPasses
import KilnReference

/// Seeded test values from Kiln's splitmix64 (KilnSupport).
struct RNG {
    var source: SplitMix64
    init(_ seed: UInt64) { source = SplitMix64(state: seed &* 0x9E37_79B9_7F4A_7C15 &+ 1) }
    mutating func next() -> UInt64 { source.next() }
    /// Uniform in [lo, hi).
    mutating func uniform(_ lo: Double = -1, _ hi: Double = 1) -> Double {
        lo + (hi - lo) * Double(next() >> 11) / Double(1 << 53)
    }
    mutating func uniforms(_ count: Int, _ lo: Double = -1, _ hi: Double = 1) -> [Double] {
        (0..<count).map { _ in uniform(lo, hi) }
    }
    /// Magnitude in [lo, hi) with a random sign: keeps away from kinks at 0.
    mutating func signed(_ count: Int, _ lo: Double = 0.2, _ hi: Double = 2) -> [Double] {
        (0..<count).map { _ in (next() & 1 == 0 ? 1.0 : -1.0) * uniform(lo, hi) }
    }
}

/// An operand of a gradient check: a graph input (may scale with N) or a parameter.
struct Operand {
    var type: TensorType
    var isParam: Bool
    var values: [Double]
    /// Whether the check differentiates with respect to it (int ids are not).
    var differentiable: Bool
    static func param(_ shape: [Int], _ values: [Double]) -> Operand {
        Operand(type: .f32(shape.map { .fixed($0) }), isParam: true, values: values, differentiable: true)
    }
    static func input(_ type: TensorType, _ values: [Double], differentiable: Bool = true) -> Operand {
        Operand(type: type, isParam: false, values: values, differentiable: differentiable)
    }
}

/// The largest mismatch found by a gradient check, for the failure message.
struct GradReport {
    var worst: Double = 0
    var detail = ""
    var checked = 0
}

/// Builds `loss = reduce_sum(weights ⊙ build(operands))` with random fixed
/// weights, differentiates it with the compiler's autodiff, evaluates the
/// gradient graph with the reference interpreter and compares each partial
/// derivative against a central finite difference of the forward graph.
@discardableResult
func checkGradient(_ name: String, n: Int = 2, seed: UInt64 = 7, h: Double = 1e-6, rtol: Double = 1e-5, atol: Double = 1e-7,
                   _ operands: [Operand], file: StaticString = #filePath, line: UInt = #line,
                   _ build: (inout PrimBuilder, [Value]) throws -> Value) throws -> GradReport {
    var g = Graph(name: "grad_" + name)
    var vals: [Value] = []
    for (k, o) in operands.enumerated() {
        if o.isParam {
            vals.append(g.addParam("p\(k)", o.type, initial: [Float](repeating: 0, count: o.type.staticCount)))
        } else {
            vals.append(g.addInput("x\(k)", o.type))
        }
        XCTAssertEqual(o.values.count, o.type.count(n: n), "\(name): operand \(k) has the wrong number of values", file: file, line: line)
    }
    var b = PrimBuilder(graph: g, layer: name)
    let y = try build(&b, vals)
    let yt = b.type(y)
    let w = b.graph.addInput("weights", yt)
    var rng = RNG(seed)
    let weights = rng.uniforms(yt.count(n: n), -1.5, 1.5)
    let prod = try b.mul(w, y)
    let loss = yt.rank == 0 ? prod : try b.reduce(.sum, prod, axes: Array(0..<yt.rank))
    var forward = b.graph
    forward.outputs = [loss]; forward.outputNames = ["loss"]
    let diffOps = operands.indices.filter { operands[$0].differentiable }
    let grads = try differentiate(&b, loss: loss, wrt: diffOps.map { vals[$0] })
    try b.graph.verify()

    func feeds(_ ops: [Operand]) -> ([[Double]], [[Double]]) {
        (ops.filter { !$0.isParam }.map(\.values) + [weights], ops.filter(\.isParam).map(\.values))
    }
    let (ins, ps) = feeds(operands)
    let all = try Interpreter.run(b.graph, inputs: ins, params: ps, n: n)
    func lossAt(_ ops: [Operand]) throws -> Double {
        let (i, p) = feeds(ops)
        return try Interpreter.run(forward, inputs: i, params: p, n: n)[loss]![0]
    }
    var report = GradReport()
    for (j, k) in diffOps.enumerated() {
        let count = operands[k].values.count
        let analytic = grads[j].map { all[$0]! } ?? [Double](repeating: 0, count: count)
        XCTAssertEqual(analytic.count, count, "\(name): gradient of operand \(k) has the wrong size", file: file, line: line)
        for e in 0..<count {
            var plus = operands, minus = operands
            plus[k].values[e] += h
            minus[k].values[e] -= h
            let numeric = (try lossAt(plus) - lossAt(minus)) / (2 * h)
            let err = Swift.abs(analytic[e] - numeric)
            let bound = atol + rtol * Swift.max(Swift.abs(analytic[e]), Swift.abs(numeric))
            report.checked += 1
            if err / bound > report.worst {
                report.worst = err / bound
                report.detail = "operand \(k) element \(e): autodiff \(analytic[e]) vs finite difference \(numeric)"
            }
        }
    }
    XCTAssertLessThanOrEqual(report.worst, 1, "\(name): \(report.detail)", file: file, line: line)
    return report
}


/// The window the lowering pass builds for a kernel, strides and padding.
func window(h: Int, w: Int, k: (Int, Int), s: (Int, Int), _ p: Padding) -> (Window2D, Int, Int) {
    let (oh, pt) = Window2D.outSize(h, kernel: k.0, stride: s.0, padding: p)
    let (ow, pl) = Window2D.outSize(w, kernel: k.1, stride: s.1, padding: p)
    return (Window2D(kh: k.0, kw: k.1, sh: s.0, sw: s.1, padTop: pt, padLeft: pl), oh, ow)
}
