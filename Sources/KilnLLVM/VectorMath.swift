import CLLVM

// Vectorizable math for the kernels: exp, log, log1p, tanh, sigmoid, erf, softplus and pow
// written as straight-line scalar IR (range reduction + polynomial, selects instead of
// branches), so that LLVM's loop vectorizer turns a kernel's loop into <16 x float> code.
// Calls to libm (tanhf, expf via llvm.exp, ...) stop the vectorizer and cost a call per element.
//
// Why not a vector math library: LLVM can map scalar calls to glibc's libmvec, but only through
// the global `-vector-library` option (no C API), LLVM 19's libmvec table covers exp, log, pow,
// sin, cos, tan and no tanh, log1p or erf, at 8 lanes at most, and the library would then
// depend on libmvec. Inline code has none of that and lets the optimizer fuse it with the
// surrounding arithmetic (a sigmoid is one exp, one add and one division).
//
// The polynomials are minimax fits (Lawson's algorithm on Chebyshev points against double
// references, coefficients rounded to float one at a time from the highest degree and the
// rest refitted). Accuracy over the whole float range, measured by VectorMathTests against
// double references, in ulps of the float-rounded result (AVX-512 host): exp 1.0, log 0.9,
// log1p 1.1, tanh 1.4, sigmoid 2.3, erf 0.9, softplus 1.6, pow 0.5 (pow works in double).
// Special values follow C99: NaN propagates, exp overflows to +inf and underflows through the
// subnormals to 0, log(0) = -inf, log(x < 0) = NaN, tanh/sigmoid/erf saturate.

/// Shorthands for building scalar IR on one floating-point type and the integer type of its width.
private struct Ops {
    let m: ModuleBuilder
    let t: LLVMTypeRef, it: LLVMTypeRef
    let double: Bool
    init(_ m: ModuleBuilder, double: Bool = false) {
        self.m = m; self.double = double
        t = double ? m.f64 : m.f32
        it = double ? m.i64 : m.i32
    }
    var b: LLVMBuilderRef { m.b }

    /// A constant; on f32 rounded to float first.
    func c(_ v: Double) -> LLVMValueRef { LLVMConstReal(t, double ? v : Double(Float(v))) }
    func ci(_ v: Int) -> LLVMValueRef { LLVMConstInt(it, UInt64(bitPattern: Int64(v)), 1) }

    func add(_ p: LLVMValueRef, _ q: LLVMValueRef) -> LLVMValueRef { LLVMBuildFAdd(b, p, q, "")! }
    func sub(_ p: LLVMValueRef, _ q: LLVMValueRef) -> LLVMValueRef { LLVMBuildFSub(b, p, q, "")! }
    func mul(_ p: LLVMValueRef, _ q: LLVMValueRef) -> LLVMValueRef { LLVMBuildFMul(b, p, q, "")! }
    func div(_ p: LLVMValueRef, _ q: LLVMValueRef) -> LLVMValueRef { LLVMBuildFDiv(b, p, q, "")! }
    func neg(_ p: LLVMValueRef) -> LLVMValueRef { LLVMBuildFNeg(b, p, "")! }
    /// p·q + r, fused where the target has FMA.
    func fma(_ p: LLVMValueRef, _ q: LLVMValueRef, _ r: LLVMValueRef) -> LLVMValueRef {
        m.intrinsic("llvm.fmuladd", [p, q, r], type: t)
    }
    /// Horner's scheme; coefficients from the highest degree down.
    func poly(_ x: LLVMValueRef, _ cs: [Double]) -> LLVMValueRef {
        var y = c(cs[0])
        for k in cs.dropFirst() { y = fma(y, x, c(k)) }
        return y
    }
    func abs(_ p: LLVMValueRef) -> LLVMValueRef { m.intrinsic("llvm.fabs", [p], type: t) }
    func copysign(_ p: LLVMValueRef, _ sign: LLVMValueRef) -> LLVMValueRef { m.intrinsic("llvm.copysign", [p, sign], type: t) }
    func roundeven(_ p: LLVMValueRef) -> LLVMValueRef { m.intrinsic("llvm.roundeven", [p], type: t) }

    func cmp(_ pred: LLVMRealPredicate, _ p: LLVMValueRef, _ q: LLVMValueRef) -> LLVMValueRef { LLVMBuildFCmp(b, pred, p, q, "")! }
    func lt(_ p: LLVMValueRef, _ q: LLVMValueRef) -> LLVMValueRef { cmp(LLVMRealOLT, p, q) }
    func gt(_ p: LLVMValueRef, _ q: LLVMValueRef) -> LLVMValueRef { cmp(LLVMRealOGT, p, q) }
    func eq(_ p: LLVMValueRef, _ q: LLVMValueRef) -> LLVMValueRef { cmp(LLVMRealOEQ, p, q) }
    /// Either is NaN.
    func uno(_ p: LLVMValueRef, _ q: LLVMValueRef) -> LLVMValueRef { cmp(LLVMRealUNO, p, q) }
    func select(_ cond: LLVMValueRef, _ p: LLVMValueRef, _ q: LLVMValueRef) -> LLVMValueRef { LLVMBuildSelect(b, cond, p, q, "")! }
    func and(_ p: LLVMValueRef, _ q: LLVMValueRef) -> LLVMValueRef { LLVMBuildAnd(b, p, q, "")! }
    func or(_ p: LLVMValueRef, _ q: LLVMValueRef) -> LLVMValueRef { LLVMBuildOr(b, p, q, "")! }

    // Integers of the same width.
    func bits(_ p: LLVMValueRef) -> LLVMValueRef { LLVMBuildBitCast(b, p, it, "")! }
    func float(bits p: LLVMValueRef) -> LLVMValueRef { LLVMBuildBitCast(b, p, t, "")! }
    func iadd(_ p: LLVMValueRef, _ q: LLVMValueRef) -> LLVMValueRef { LLVMBuildAdd(b, p, q, "")! }
    func isub(_ p: LLVMValueRef, _ q: LLVMValueRef) -> LLVMValueRef { LLVMBuildSub(b, p, q, "")! }
    func ashr(_ p: LLVMValueRef, _ k: Int) -> LLVMValueRef { LLVMBuildAShr(b, p, ci(k), "")! }
    func shl(_ p: LLVMValueRef, _ k: Int) -> LLVMValueRef { LLVMBuildShl(b, p, ci(k), "")! }
    func icmp(_ pred: LLVMIntPredicate, _ p: LLVMValueRef, _ q: LLVMValueRef) -> LLVMValueRef { LLVMBuildICmp(b, pred, p, q, "")! }
    /// Truncating conversion; the value must be in range (NaN or out of range is poison).
    func toInt(_ p: LLVMValueRef) -> LLVMValueRef { LLVMBuildFPToSI(b, p, it, "")! }
    func toFloat(_ i: LLVMValueRef) -> LLVMValueRef { LLVMBuildSIToFP(b, i, t, "")! }

    /// 2^k for an integer k in the normal exponent range, built in the exponent bits.
    func pow2(_ k: LLVMValueRef) -> LLVMValueRef {
        let (bias, mantissa) = double ? (1023, 52) : (127, 23)
        return float(bits: shl(iadd(k, ci(bias)), mantissa))
    }

    /// (k, m − 1) with u = m·2^k, m in [√½, √2), for positive normal u (other u give garbage).
    func splitLog(_ u: LLVMValueRef) -> (k: LLVMValueRef, f: LLVMValueRef) {
        let (sqrtHalf, mantissa) = double ? (Int(Double(0.5).squareRoot().bitPattern), 52)
                                          : (Int(Float(0.5).squareRoot().bitPattern), 23)
        let i = isub(bits(u), ci(sqrtHalf))
        let k = ashr(i, mantissa)
        let m = float(bits: iadd(and(i, ci((1 << mantissa) - 1)), ci(sqrtHalf)))
        return (k, sub(m, c(1)))   // exact (Sterbenz)
    }
}

/// ln 2 = ln2Hi + ln2Lo (Cody–Waite): ln2Hi has 9 significant bits, so k·ln2Hi is exact for |k| < 2^15.
private let ln2Hi: Double = 0.693359375, ln2Lo: Double = -2.12194440e-4
private let log2e: Double = 1.4426950408889634

/// exp(r) ≈ 1 + r + r²·P(r) on |r| ≤ ln2/2: relative error 3e-9.
private let expP: [Double] = [0.0013814602, 0.008368716, 0.04166839, 0.16666521, 0.49999994]
/// log1p(f) ≈ f − f²/2 + f³·P(f) on [√½ − 1, √2 − 1]: relative error 6e-9.
private let logP: [Double] = [-0.076344974, 0.12761578, -0.13160183, 0.14201757, -0.16623357,
                              0.20001227, -0.2500082, 0.3333333]
/// tanh(x) ≈ x + x³·P(x²) on [0, 0.55]: relative error 1e-9.
private let tanhP: [Double] = [-0.0062742396, 0.02107168, -0.05385231, 0.13332586, -0.33333316]
/// erf(x) ≈ x + x·P(x²) on [0, 0.9]: relative error 6e-10.
private let erfSmallP: [Double] = [8.513116e-05, -0.00081756426, 0.0052038594, -0.026860509, 0.11283715,
                                   -0.37612635, 0.12837917]
/// erfc(x)·e^(x²) ≈ P((x − 2.45)/1.55) on [0.9, 4]: error in erf below 0.09 ulp.
private let erfLargeP: [Double] = [0.0044873846, 0.006911231, 0.009992453, -0.005876121, 0.01407697,
                                   -0.032445047, 0.06278738, -0.11918846, 0.21458906]

extension ModuleBuilder {
    /// e^x on f32: n = round(x·log2 e), r = x − n·ln 2 (two constants), polynomial, times 2^n
    /// applied as two factors 2^(n/2) so that results reach the subnormals and +inf correctly.
    func vexp(_ x: LLVMValueRef) -> LLVMValueRef {
        let o = Ops(self)
        // Past these bounds the result is +inf or 0 anyway; clamping keeps 2^n representable.
        // The comparisons send NaN to a bound (no poison in the conversion); it is restored last.
        var xs = o.select(o.lt(x, o.c(89)), x, o.c(89))
        xs = o.select(o.gt(xs, o.c(-104)), xs, o.c(-104))
        let n = o.roundeven(o.mul(xs, o.c(log2e)))
        var r = o.fma(n, o.c(-ln2Hi), xs)       // exact
        r = o.fma(n, o.c(-ln2Lo), r)
        let p = o.add(o.fma(o.poly(r, expP), o.mul(r, r), r), o.c(1))
        let ni = o.toInt(n)
        let n1 = o.ashr(ni, 1)
        let y = o.mul(o.mul(p, o.pow2(n1)), o.pow2(o.isub(ni, n1)))
        return o.select(o.uno(x, x), x, y)
    }

    /// k·ln 2 + log1p(f) with f in [√½ − 1, √2 − 1] (exact), plus c, a small correction.
    private func logCore(_ o: Ops, k: LLVMValueRef, f: LLVMValueRef, c: LLVMValueRef?) -> LLVMValueRef {
        let q = o.fma(o.poly(f, logP), f, o.c(-0.5))
        var y = o.fma(q, o.mul(f, f), f)
        if let c { y = o.add(y, c) }
        let kf = o.toFloat(k)
        return o.fma(kf, o.c(ln2Hi), o.fma(kf, o.c(ln2Lo), y))   // k·ln2Hi exact, one rounding
    }

    /// ln x on f32: x = m·2^k from the bits (subnormals scaled by 2^23 first).
    func vlog(_ x: LLVMValueRef) -> LLVMValueRef {
        let o = Ops(self)
        let sub = o.lt(x, o.c(Double(Float.leastNormalMagnitude)))
        let (k, f) = o.splitLog(o.select(sub, o.mul(x, o.c(0x1p23)), x))
        var y = logCore(o, k: o.isub(k, o.select(sub, o.ci(23), o.ci(0))), f: f, c: nil)
        y = o.select(o.eq(x, o.c(0)), o.c(-.infinity), y)
        y = o.select(o.eq(x, o.c(.infinity)), x, y)
        return o.select(o.cmp(LLVMRealULT, x, o.c(0)), o.c(.nan), y)   // x < 0 or NaN
    }

    /// ln(1 + x) on f32, accurate for small |x|: u = 1 + x; when u is in [√½, √2) the reduced
    /// argument is x itself, otherwise m − 1 from u plus the rounding error of u, (x − (u − 1))/u.
    func vlog1p(_ x: LLVMValueRef) -> LLVMValueRef {
        let o = Ops(self)
        let u = o.add(x, o.c(1))
        let (k, g) = o.splitLog(u)
        let central = o.icmp(LLVMIntEQ, k, o.ci(0))
        // The rounding error of u, computed exactly (u − x is exact for u ≥ 2, u − 1 below).
        let err = o.select(o.icmp(LLVMIntSGE, k, o.ci(2)), o.sub(o.c(1), o.sub(u, x)), o.sub(x, o.sub(u, o.c(1))))
        let c = o.select(central, o.c(0), o.div(err, u))
        var y = logCore(o, k: k, f: o.select(central, x, g), c: c)
        y = o.select(o.eq(u, o.c(.infinity)), u, y)
        y = o.select(o.eq(x, o.c(-1)), o.c(-.infinity), y)
        y = o.select(o.cmp(LLVMRealULT, x, o.c(-1)), o.c(.nan), y)     // x < -1 or NaN
        return o.select(o.eq(x, o.c(0)), x, y)                          // keeps -0
    }

    /// tanh on f32: an odd polynomial below 0.55 (where tanh < 0.5), else 1 − 2/(e^(2|x|) + 1),
    /// which saturates to 1 when the exponential overflows; the sign of x last.
    func vtanh(_ x: LLVMValueRef) -> LLVMValueRef {
        let o = Ops(self)
        let a = o.abs(x)
        let z = o.mul(x, x)
        let small = o.fma(o.poly(z, tanhP), o.mul(z, a), a)
        let e = vexp(o.add(a, a))
        let large = o.sub(o.c(1), o.div(o.c(2), o.add(e, o.c(1))))
        return o.copysign(o.select(o.lt(a, o.c(0.55)), small, large), x)
    }

    /// 1/(1 + e^-x) on f32 with e = e^-|x|: 1/(1 + e) for x ≥ 0, e/(1 + e) below, so that
    /// large negative x keeps its tiny (down to subnormal) result instead of 0.
    func vsigmoid(_ x: LLVMValueRef) -> LLVMValueRef {
        let o = Ops(self)
        let e = vexp(o.neg(o.abs(x)))
        return o.div(o.select(o.lt(x, o.c(0)), e, o.c(1)), o.add(o.c(1), e))
    }

    /// max(x, 0) + log1p(e^-|x|) on f32.
    func vsoftplus(_ x: LLVMValueRef) -> LLVMValueRef {
        let o = Ops(self)
        let t = vlog1p(vexp(o.neg(o.abs(x))))
        return o.add(o.select(o.gt(x, o.c(0)), x, o.c(0)), t)
    }

    /// erf on f32: x + x·P(x²) below 0.9, else 1 − e^(−x²)·R(x) with |x| clamped to 4
    /// (erf rounds to 1 beyond); the sign of x last.
    func verf(_ x: LLVMValueRef) -> LLVMValueRef {
        let o = Ops(self)
        let a = o.abs(x)
        let small = o.fma(o.poly(o.mul(x, x), erfSmallP), a, a)
        let ac = o.select(o.gt(a, o.c(4)), o.c(4), a)                  // keeps NaN
        let r = o.poly(o.mul(o.sub(ac, o.c(2.45)), o.c(1 / 1.55)), erfLargeP)
        let large = o.fma(o.neg(vexp(o.neg(o.mul(ac, ac)))), r, o.c(1))
        return o.copysign(o.select(o.lt(a, o.c(0.9)), small, large), x)
    }

    /// x^y on f32 as exp(y·ln|x|) computed in double (so the error of ln|x| is not multiplied
    /// by y), with C99's special cases: x^0 = 1^y = 1, (−1)^±inf = 1, negative x with an odd
    /// integer y gives a negative result, with a non-integer y NaN.
    func vpow(_ x: LLVMValueRef, _ y: LLVMValueRef) -> LLVMValueRef {
        let o = Ops(self), d = Ops(self, double: true)
        let ax = LLVMBuildFPExt(b, o.abs(x), f64, "")!
        // ln|x| = k·ln 2 + 2·atanh(s), s = (m − 1)/(m + 1), |s| ≤ 0.172: a Taylor series to s^13.
        let (k, f) = d.splitLog(ax)                 // floats are normal doubles
        let s = d.div(f, d.add(f, d.c(2)))
        let s2 = d.add(s, s), z = d.mul(s, s)
        let atanh = d.fma(d.mul(s2, z), d.poly(z, [1.0 / 13, 1.0 / 11, 1.0 / 9, 1.0 / 7, 1.0 / 5, 1.0 / 3]), s2)
        let kf = d.toFloat(k)
        var ln = d.fma(kf, d.c(0.693147180369123816490), d.fma(kf, d.c(1.90821492927058770002e-10), atanh))
        ln = d.select(d.eq(ax, d.c(0)), d.c(-.infinity), ln)
        ln = d.select(d.eq(ax, d.c(.infinity)), ax, ln)
        // e^t, t clamped where the float result is 0 or +inf anyway (NaN goes to a bound, fixed below).
        var t = d.mul(LLVMBuildFPExt(b, y, f64, "")!, ln)
        t = d.select(d.lt(t, d.c(100)), t, d.c(100))
        t = d.select(d.gt(t, d.c(-110)), t, d.c(-110))
        let n = d.roundeven(d.mul(t, d.c(log2e)))
        let r = d.fma(n, d.c(-1.90821492927058770002e-10), d.fma(n, d.c(-0.693147180369123816490), t))
        let series = d.poly(r, (0...9).reversed().map { k in 1 / (1...max(k, 1)).reduce(1.0) { $0 * Double($1) } })
        // One rounding to float (to the subnormals or +inf as needed).
        var v = LLVMBuildFPTrunc(b, d.mul(series, d.pow2(d.toInt(n))), f32, "")!

        let ay = o.abs(y)
        let yInteger = o.eq(o.roundeven(y), y)                          // also ±inf
        let below24 = o.lt(ay, o.c(0x1p24))                             // larger floats are even
        let yi = o.toInt(o.select(below24, y, o.c(0)))
        let odd = o.and(o.and(yInteger, below24), LLVMBuildTrunc(b, yi, i1, "")!)
        let negative = o.icmp(LLVMIntSLT, o.bits(x), o.ci(0))             // sign bit: -0 too
        v = o.select(o.and(negative, odd), o.neg(v), v)
        let finiteNegative = o.and(o.lt(x, o.c(0)), o.gt(x, o.c(-.infinity)))
        v = o.select(o.and(finiteNegative, LLVMBuildNot(b, yInteger, "")!), o.c(.nan), v)
        v = o.select(o.uno(x, y), o.c(.nan), v)
        v = o.select(o.and(o.eq(o.abs(x), o.c(1)), o.eq(ay, o.c(.infinity))), o.c(1), v)
        return o.select(o.or(o.eq(x, o.c(1)), o.eq(y, o.c(0))), o.c(1), v)
    }
}
