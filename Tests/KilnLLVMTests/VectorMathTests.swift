// The inline math of Sources/KilnLLVM/VectorMath.swift: every function compiled into a kernel,
// run over about a million float32 points (the whole float range, dense [-10, 10], the edges)
// and compared with Foundation's double functions in ulps of the float-rounded result; and
// the kernels' loops checked to be vectorized, with no libm call left.

import Foundation
import XCTest
import Kiln
import KilnIR
import KilnRuntime

final class VectorMathTests: XCTestCase {
    static let cols = 1024, rows = 1000

    struct Function {
        var name: String
        var reference: (Double, Double) -> Double
        /// Largest error accepted, in ulps: the measured error (see VectorMath.swift) rounded up to
        /// the next whole ulp, a margin for hosts without FMA (llvm.fmuladd is not fused there).
        /// Mistakes show above it: log1p without its rounding correction is 2.5 ulps off, a wrong
        /// coefficient or a lost Cody–Waite term tens of ulps or more.
        var bound: Double
    }

    static func sigmoid(_ x: Double) -> Double { x < 0 ? exp(x) / (1 + exp(x)) : 1 / (1 + exp(-x)) }

    static let unaries: [(UnaryOp, Function)] = [
        (.exp, Function(name: "exp", reference: { x, _ in exp(x) }, bound: 2)),
        (.log, Function(name: "log", reference: { x, _ in log(x) }, bound: 2)),
        (.log1p, Function(name: "log1p", reference: { x, _ in log1p(x) }, bound: 2)),
        (.tanh, Function(name: "tanh", reference: { x, _ in tanh(x) }, bound: 2)),
        // e/(1 + e) for x < 0: the error of e (1 ulp) plus two roundings.
        (.sigmoid, Function(name: "sigmoid", reference: { x, _ in sigmoid(x) }, bound: 3)),
        (.erf, Function(name: "erf", reference: { x, _ in erf(x) }, bound: 2)),
        (.softplus, Function(name: "softplus", reference: { x, _ in max(x, 0) + log1p(exp(-abs(x))) }, bound: 2)),
    ]
    // pow works in double and rounds once.
    static let pow = Function(name: "pow", reference: { x, y in Foundation.pow(x, y) }, bound: 1)

    /// Edge inputs: zeros, infinities, NaN, subnormals, the thresholds of exp (overflow at
    /// 88.72, subnormal results below -87.34, 0 below -103.97), the switch points of the
    /// approximations, and huge magnitudes where tanh, sigmoid and erf saturate.
    static let edges: [Float] = {
        var e: [Float] = [0, -0.0, .infinity, -.infinity, .nan, .leastNonzeroMagnitude, -.leastNonzeroMagnitude,
                          1e-40, -1e-40, .leastNormalMagnitude, -.leastNormalMagnitude, .greatestFiniteMagnitude,
                          -.greatestFiniteMagnitude, 1, -1, 2, -2, 0.5, -0.5, 1e-8, -1e-8, 1e-20, -1e-20,
                          88.72283, 88.72284, 88.7229, 88.8, 89, 90, -87.3365, -87.34, -88.7, -100, -103.2,
                          -103.27, -103.28, -103.97, -103.973, -104, -150, 1e10, -1e10, 1e30, -1e30,
                          0.55, -0.55, 0.9, -0.9, 3.9, 3.92, 4, -4, 4.5, 9, -9, 10, 44, 45,
                          Float(2).squareRoot() - 1, Float(0.5).squareRoot() - 1, -0.999999, -0.9999999, 1e6, 1e20]
        // Neighbours of each finite edge.
        e += e.filter { $0.isFinite }.flatMap { [$0.nextUp, $0.nextDown] }
        return e
    }()

    /// About a million points: the edges, every bit pattern region (log-spaced magnitudes of both
    /// signs, subnormals included), a dense sweep of [-110, 110] and uniform [-10, 10].
    static func points() -> (x: [Float], y: [Float]) {
        let count = cols * rows
        var rng = TestRNG(2024)
        var x = edges
        // pow's special cases: every pair of these.
        let special: [Float] = [0, -0.0, 1, -1, 2, -2, 0.5, -0.5, 3, -3, .infinity, -.infinity, .nan, 1e-45, -1e-45,
                                1e38, -1e38, 0x1p24, 0x1p24 + 2, 1.5, -1.5, 7, -7]
        var y = [Float](repeating: 2, count: x.count)
        for a in special { for b in special { x.append(a); y.append(b) } }
        let sweep = 100_000
        for i in 0..<sweep { x.append(-110 + 220 * Float(i) / Float(sweep)) }
        while x.count < count / 2 {
            let v = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
            if v.isFinite { x.append(v) }
        }
        while x.count < count { x.append(rng.uniform(-10, 10)) }
        // y for pow: integers (negative bases then have real results), small and large reals.
        while y.count < count {
            switch rng.int(4) {
            case 0: y.append(Float(rng.int(61) - 30))
            case 1: y.append(rng.uniform(-3, 3))
            case 2: y.append(rng.uniform(-40, 40))
            default: y.append(rng.uniform(-0.01, 0.01))
            }
        }
        return (x, y)
    }

    /// A library with one output per function of x (and pow(x, y)); its optimized LLVM IR.
    static func compileAll(_ test: XCTestCase) throws -> (CompiledLibrary, String) {
        let dir = try makeTempDir(test, "vmath")
        var m = GraphMaker("vmath")
        let x = m.input("x", [cols]), y = m.input("y", [cols])
        for (op, f) in unaries { m.output(try m.g.prim(.unary(op), x, layer: f.name), f.name) }
        m.output(try m.g.prim(.binary(.pow), x, y, layer: "pow"), "pow")
        var options = CompileOptions()
        options.emitLLVM = true
        let lib = try compileAndLoad(m.model(), name: "vmath", dir: dir, options: options)
        return (lib, try String(contentsOfFile: dir + "/vmath.ll", encoding: .utf8))
    }

    /// |got − want| in ulps of Float(want); 0 when got is Float(want) (infinities and the sign
    /// of zero included); infinite when NaN-ness, an infinity or the sign of a zero differs.
    static func ulps(_ got: Float, _ want: Double) -> Double {
        let w = Float(want)
        if got.isNaN || w.isNaN { return got.isNaN && w.isNaN ? 0 : .infinity }
        if got == w { return got.sign == w.sign ? 0 : .infinity }
        if got.isInfinite || w.isInfinite { return .infinity }
        return abs(Double(got) - want) / Double(w.ulp)
    }

    func testAccuracy() throws {
        let (lib, _) = try Self.compileAll(self)
        let (x, y) = Self.points()
        let shape = [Self.rows, Self.cols]
        let outs = try lib.predict([HostTensor(shape: shape, floats: x), HostTensor(shape: shape, floats: y)],
                                   batchSize: Self.rows)
        let functions = Self.unaries.map(\.1) + [Self.pow]
        var report = "VectorMath: max error over \(x.count) points, in ulps of the float-rounded double result\n"
        for (f, out) in zip(functions, outs) {
            let got = out.floats
            let binary = f.name == "pow"
            var worst = 0.0, at = 0
            for i in got.indices {
                let e = Self.ulps(got[i], f.reference(Double(x[i]), Double(y[i])))
                if e > worst { worst = e; at = i }
            }
            let input = binary ? "x = \(x[at]), y = \(y[at])" : "x = \(x[at])"
            let want = f.reference(Double(x[at]), Double(y[at]))
            report += "  " + f.name.padding(toLength: 9, withPad: " ", startingAt: 0)
                + String(format: "%6.3f ulp (bound %.0f)", worst, f.bound) + "  worst at \(input): got \(got[at]), expected \(want)\n"
            XCTAssertLessThanOrEqual(worst, f.bound, "\(f.name): \(worst) ulp at \(input): got \(got[at]), expected \(want)")
        }
        print(report, terminator: "")
    }

    /// The kernels' loops are vectorized (16 or 8 floats a vector) and call no libm function.
    func testKernelsVectorize() throws {
        let (_, ir) = try Self.compileAll(self)
        for libm in ["tanhf", "expf", "logf", "log1pf", "erff", "powf", "expm1f", "llvm.exp.", "llvm.log.", "llvm.pow."] {
            XCTAssertFalse(ir.contains("@\(libm)"), "the IR still calls \(libm)")
        }
        // Each kernel (internal kiln_kN) is one function; all must hold vector arithmetic.
        let kernels = ir.components(separatedBy: "\ndefine ").dropFirst()
            .filter { $0.hasPrefix("internal") && $0.prefix { $0 != "(" }.contains("@kiln_k") }
        XCTAssertEqual(kernels.count, Self.unaries.count + 1, "one kernel per function")
        for k in kernels {
            let name = k.prefix { $0 != "(" }
            XCTAssertTrue(k.contains("fmul <16 x float>") || k.contains("fmul <8 x float>") || k.contains("fmul <16 x double>")
                          || k.contains("fmul <8 x double>"), "\(name) is not vectorized")
        }
    }
}
