import CLLVM
import KilnIR

/// Emits one loop kernel as an LLVM function
///   void kernel(ptr b0, ..., ptr bk, i64 n, i64 seed, i64 iteration, i64 t, i64 t_prev, i64 t_out,
///               i64 steps, i64 lo, i64 hi)
/// (t, t_prev and t_out are a scan step's indices, 0 outside scans; steps is the free number
/// of time steps T of the call) of nested counted loops, the outermost over [lo, hi) (a chunk
/// of its extent, or all of it); LLVM's optimizer vectorizes the innermost ones.
struct KernelEmitter {
    let m: ModuleBuilder
    let kernel: LoopKernel
    var fn: LLVMValueRef! = nil
    var buffers: [LLVMValueRef] = []
    var n: LLVMValueRef! = nil
    var seed: LLVMValueRef! = nil
    var iteration: LLVMValueRef! = nil
    /// The free number of time steps T.
    var steps: LLVMValueRef! = nil
    /// A scan step's t, t_prev and t_out.
    var scan: [LLVMValueRef] = []
    /// Values already emitted at the current point (kernels with several stores).
    var memo: [KExpr: (LLVMValueRef, Kind)] = [:]
    var indices: [LLVMValueRef] = []
    var acc: LLVMValueRef? = nil

    enum Kind { case real, int, bool }

    init(_ m: ModuleBuilder, _ kernel: LoopKernel) { self.m = m; self.kernel = kernel }

    static func signature(_ m: ModuleBuilder, buffers: Int) -> [LLVMTypeRef] {
        Array(repeating: m.ptr, count: buffers) + Array(repeating: m.i64, count: 9)
    }

    mutating func emit(name: String) -> (LLVMValueRef, LLVMTypeRef) {
        let params = KernelEmitter.signature(m, buffers: kernel.buffers.count)
        let f = m.function(name, m.void, params, local: true)
        fn = f.0
        // Kernels stay functions: an unrolled recurrence calls the same few kernels thousands of
        // times, and inlining them all would make one enormous entry function for LLVM to optimize.
        m.addAttribute(fn, index: UInt32(bitPattern: -1), "noinline")
        for k in 0..<kernel.buffers.count {
            buffers.append(LLVMGetParam(fn, UInt32(k)))
            if !kernel.inPlace { m.addAttribute(fn, index: UInt32(k + 1), "noalias") }
            m.addAttribute(fn, index: UInt32(k + 1), "nocapture")
        }
        n = LLVMGetParam(fn, UInt32(kernel.buffers.count))
        seed = LLVMGetParam(fn, UInt32(kernel.buffers.count + 1))
        iteration = LLVMGetParam(fn, UInt32(kernel.buffers.count + 2))
        scan = (3..<6).map { LLVMGetParam(fn, UInt32(kernel.buffers.count + $0)) }
        steps = LLVMGetParam(fn, UInt32(kernel.buffers.count + 6))
        let entry = LLVMAppendBasicBlockInContext(m.ctx, fn, "entry")
        LLVMPositionBuilderAtEnd(m.b, entry)
        if !kernel.reduceLoops.isEmpty { acc = LLVMBuildAlloca(m.b, m.f32, "acc") }
        // The outermost loop runs over [lo, hi); the others over their whole extent.
        let (lo, hi) = (LLVMGetParam(fn, UInt32(kernel.buffers.count + 7))!, LLVMGetParam(fn, UInt32(kernel.buffers.count + 8))!)
        let lower = kernel.loops.indices.map { $0 == 0 ? lo : m.constI(0) }
        let upper = kernel.loops.indices.map { $0 == 0 ? hi : emitInt(kernel.loops[$0]) }
        nest(lower, upper, depth: 0) { me in me.emitPoint() }
        LLVMBuildRetVoid(m.b)
        return f
    }

    /// Emits `for i in lower..<upper` loops around `body`, outermost first.
    mutating func nest(_ lower: [LLVMValueRef], _ upper: [LLVMValueRef], depth: Int, _ body: (inout KernelEmitter) -> Void) {
        if depth == upper.count { body(&self); return }
        let header = LLVMAppendBasicBlockInContext(m.ctx, fn, "loop")
        let exit = LLVMAppendBasicBlockInContext(m.ctx, fn, "done")
        let pre = LLVMGetInsertBlock(m.b)!
        // Skip an empty range (N may be 0).
        let nonEmpty = LLVMBuildICmp(m.b, LLVMIntSLT, lower[depth], upper[depth], "")
        LLVMBuildCondBr(m.b, nonEmpty, header, exit)
        LLVMPositionBuilderAtEnd(m.b, header)
        let iv = LLVMBuildPhi(m.b, m.i64, "i\(indices.count)")!
        indices.append(iv)
        nest(lower, upper, depth: depth + 1, body)
        let latch = LLVMGetInsertBlock(m.b)!
        let next = LLVMBuildNSWAdd(m.b, iv, m.constI(1), "")!
        let more = LLVMBuildICmp(m.b, LLVMIntSLT, next, upper[depth], "")
        LLVMBuildCondBr(m.b, more, header, exit)
        var vals: [LLVMValueRef?] = [lower[depth], next]
        var blocks: [LLVMBasicBlockRef?] = [pre, latch]
        LLVMAddIncoming(iv, &vals, &blocks, 2)
        indices.removeLast()
        LLVMPositionBuilderAtEnd(m.b, exit)
    }

    /// At one point of the parallel loops: reduce (if any), apply the epilogue, store.
    mutating func emitPoint() {
        var value: LLVMValueRef
        if let acc {
            let initial: Float = kernel.reduceOp == .max ? -.infinity : 0
            LLVMBuildStore(m.b, m.constF(initial), acc)
            let ext = kernel.reduceLoops.map { emitInt($0) }
            nest(ext.map { _ in m.constI(0) }, ext, depth: 0) { me in
                let v = me.emitReal(me.kernel.body)
                let old = LLVMBuildLoad2(me.m.b, me.m.f32, acc, "")!
                let new: LLVMValueRef
                if me.kernel.reduceOp == .sum {
                    new = LLVMBuildFAdd(me.m.b, old, v, "")!
                    LLVMSetFastMathFlags(new, LLVMFastMathFlags(LLVMFastMathAllowReassoc))
                } else {
                    new = me.m.intrinsic("llvm.maxnum", [old, v])
                }
                LLVMBuildStore(me.m.b, new, acc)
            }
            let total = LLVMBuildLoad2(m.b, m.f32, acc, "")!
            if let epi = kernel.epilogue {
                let saved = self.accValue
                self.accValue = total
                value = emitReal(epi)
                self.accValue = saved
            } else {
                value = total
            }
        } else if !kernel.extraStores.isEmpty {
            // Every value first (shared parts once), then the stores: a buffer may be read and
            // written at the same element.
            memo = [:]
            let all = [KStore(kernel.output, kernel.outputIndex, kernel.body)] + kernel.extraStores
            let values = all.map { coerce(emitAny($0.value), to: kernel.buffers[$0.buffer].dtype) }
            for (st, v) in zip(all, values) { store(v, into: st.buffer, at: st.index) }
            memo = [:]
            return
        } else {
            store(coerce(emitAny(kernel.body), to: kernel.buffers[kernel.output].dtype))
            return
        }
        store(coerce((value, .real), to: kernel.buffers[kernel.output].dtype))
    }

    var accValue: LLVMValueRef? = nil

    mutating func store(_ v: LLVMValueRef) { store(v, into: kernel.output, at: kernel.outputIndex) }

    mutating func store(_ v: LLVMValueRef, into out: Int, at index: KExpr) {
        let idx = emitInt(index)
        let ty = elementType(kernel.buffers[out].dtype)
        let p = m.gep(buffers[out], ty, idx)
        guard kernel.accumulate else { LLVMBuildStore(m.b, v, p); return }
        let old = LLVMBuildLoad2(m.b, ty, p, "")!
        let sum = kernel.buffers[out].dtype == .f32 ? LLVMBuildFAdd(m.b, old, v, "")! : LLVMBuildAdd(m.b, old, v, "")!
        LLVMBuildStore(m.b, sum, p)
    }

    func elementType(_ t: DType) -> LLVMTypeRef {
        switch t { case .f32: return m.f32; case .i32: return m.i32; case .bool: return m.i8 }
    }

    /// Converts a value for storing into a buffer of dtype t.
    mutating func coerce(_ v: (LLVMValueRef, Kind), to t: DType) -> LLVMValueRef {
        switch t {
        case .f32: return asReal(v)
        case .i32: return LLVMBuildTrunc(m.b, asInt(v), m.i32, "")
        case .bool: return LLVMBuildZExt(m.b, asBool(v), m.i8, "")
        }
    }

    func asReal(_ v: (LLVMValueRef, Kind)) -> LLVMValueRef {
        switch v.1 {
        case .real: return v.0
        case .int: return LLVMBuildSIToFP(m.b, v.0, m.f32, "")
        case .bool: return LLVMBuildUIToFP(m.b, v.0, m.f32, "")
        }
    }
    func asInt(_ v: (LLVMValueRef, Kind)) -> LLVMValueRef {
        switch v.1 {
        case .real: return LLVMBuildFPToSI(m.b, v.0, m.i64, "")
        case .int: return v.0
        case .bool: return LLVMBuildZExt(m.b, v.0, m.i64, "")
        }
    }
    func asBool(_ v: (LLVMValueRef, Kind)) -> LLVMValueRef {
        switch v.1 {
        case .real: return LLVMBuildFCmp(m.b, LLVMRealUNE, v.0, m.constF(0), "")
        case .int: return LLVMBuildICmp(m.b, LLVMIntNE, v.0, m.constI(0), "")
        case .bool: return v.0
        }
    }

    mutating func emitReal(_ e: KExpr) -> LLVMValueRef { asReal(emitAny(e)) }
    mutating func emitInt(_ e: KExpr) -> LLVMValueRef { asInt(emitAny(e)) }
    mutating func emitBool(_ e: KExpr) -> LLVMValueRef { asBool(emitAny(e)) }

    mutating func load(_ buffer: Int, _ index: LLVMValueRef) -> (LLVMValueRef, Kind) {
        let t = kernel.buffers[buffer].dtype
        let p = m.gep(buffers[buffer], elementType(t), index)
        let v = LLVMBuildLoad2(m.b, elementType(t), p, "")!
        switch t {
        case .f32: return (v, .real)
        case .i32: return (LLVMBuildSExt(m.b, v, m.i64, ""), .int)
        case .bool: return (LLVMBuildZExt(m.b, v, m.i64, ""), .int)
        }
    }

    mutating func emitAny(_ e: KExpr) -> (LLVMValueRef, Kind) {
        if !kernel.extraStores.isEmpty {
            if let v = memo[e] { return v }
            let v = emitFresh(e)
            memo[e] = v
            return v
        }
        return emitFresh(e)
    }

    mutating func emitFresh(_ e: KExpr) -> (LLVMValueRef, Kind) {
        let b = m.b
        switch e {
        case .real(let f): return (m.constF(f), .real)
        case .int(let i): return (m.constI(i), .int)
        case .index(let k): return (indices[k], .int)
        case .n: return (n, .int)
        case .steps: return (steps, .int)
        case .iteration: return (iteration, .int)
        case .acc: return (accValue!, .real)
        case let .load(buf, at):
            return load(buf, emitInt(at))
        case let .guardedLoad(buf, at, valid, otherwise):
            let ok = emitBool(valid)
            let idx = LLVMBuildSelect(b, ok, emitInt(at), m.constI(0), "")!
            let v = asReal(load(buf, idx))
            return (LLVMBuildSelect(b, ok, v, m.constF(otherwise), "")!, .real)
        case let .unary(op, a):
            return (unary(op, emitReal(a)), .real)
        case let .binary(op, x, y):
            let (p, q) = (emitReal(x), emitReal(y))
            switch op {
            case .add: return (LLVMBuildFAdd(b, p, q, "")!, .real)
            case .sub: return (LLVMBuildFSub(b, p, q, "")!, .real)
            case .mul: return (LLVMBuildFMul(b, p, q, "")!, .real)
            case .div: return (LLVMBuildFDiv(b, p, q, "")!, .real)
            case .max: return (LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealUGE, p, q, ""), p, q, "")!, .real)
            case .min: return (LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealULE, p, q, ""), p, q, "")!, .real)
            case .pow: return (m.vpow(p, q), .real)
            }
        case let .iadd(x, y): return (LLVMBuildAdd(b, emitInt(x), emitInt(y), "")!, .int)
        case let .isub(x, y): return (LLVMBuildSub(b, emitInt(x), emitInt(y), "")!, .int)
        case let .imul(x, y): return (LLVMBuildMul(b, emitInt(x), emitInt(y), "")!, .int)
        case let .idiv(x, y): return (LLVMBuildSDiv(b, emitInt(x), emitInt(y), "")!, .int)
        case let .imod(x, y): return (LLVMBuildSRem(b, emitInt(x), emitInt(y), "")!, .int)
        case let .compare(op, x, y):
            let (p, q) = (emitAny(x), emitAny(y))
            if p.1 != .real && q.1 != .real {
                let pred: LLVMIntPredicate
                switch op {
                case .eq: pred = LLVMIntEQ; case .ne: pred = LLVMIntNE; case .lt: pred = LLVMIntSLT
                case .le: pred = LLVMIntSLE; case .gt: pred = LLVMIntSGT; case .ge: pred = LLVMIntSGE
                }
                return (LLVMBuildICmp(b, pred, asInt(p), asInt(q), "")!, .bool)
            }
            let pred: LLVMRealPredicate
            switch op {
            case .eq: pred = LLVMRealOEQ; case .ne: pred = LLVMRealUNE; case .lt: pred = LLVMRealOLT
            case .le: pred = LLVMRealOLE; case .gt: pred = LLVMRealOGT; case .ge: pred = LLVMRealOGE
            }
            return (LLVMBuildFCmp(b, pred, asReal(p), asReal(q), "")!, .bool)
        case let .and(x, y): return (LLVMBuildAnd(b, emitBool(x), emitBool(y), "")!, .bool)
        case let .select(c, x, y):
            let cond = emitBool(c)
            let (p, q) = (emitAny(x), emitAny(y))
            if p.1 == q.1 { return (LLVMBuildSelect(b, cond, p.0, q.0, "")!, p.1) }
            if p.1 != .real && q.1 != .real { return (LLVMBuildSelect(b, cond, asInt(p), asInt(q), "")!, .int) }
            return (LLVMBuildSelect(b, cond, asReal(p), asReal(q), "")!, .real)
        case .toReal(let x): return (emitReal(x), .real)
        case .toInt(let x): return (emitInt(x), .int)
        case let .random(salt, at):
            return (random(salt: salt, emitInt(at)), .real)
        case .scanStep: return (scan[0], .int)
        case .scanPrevious: return (scan[1], .int)
        case .scanOutput: return (scan[2], .int)
        }
    }

    func unary(_ op: UnaryOp, _ x: LLVMValueRef) -> LLVMValueRef {
        let b = m.b
        let zero = m.constF(0), one = m.constF(1)
        switch op {
        case .neg: return LLVMBuildFNeg(b, x, "")
        case .abs: return m.intrinsic("llvm.fabs", [x])
        case .sign:
            let pos = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, x, zero, ""), one, zero, "")
            return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOLT, x, zero, ""), m.constF(-1), pos, "")
        // The transcendental functions are inline code the loop vectorizer can use (VectorMath.swift).
        case .exp: return m.vexp(x)
        case .log: return m.vlog(x)
        case .log1p: return m.vlog1p(x)
        case .sqrt: return m.intrinsic("llvm.sqrt", [x])
        case .rsqrt: return LLVMBuildFDiv(b, one, m.intrinsic("llvm.sqrt", [x]), "")
        case .square: return LLVMBuildFMul(b, x, x, "")
        case .reciprocal: return LLVMBuildFDiv(b, one, x, "")
        case .tanh: return m.vtanh(x)
        case .sigmoid: return m.vsigmoid(x)
        case .relu: return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, x, zero, ""), x, zero, "")
        case .step: return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, x, zero, ""), one, zero, "")
        case .erf: return m.verf(x)
        case .floor: return m.intrinsic("llvm.floor", [x])
        case .softplus: return m.vsoftplus(x)
        }
    }

    /// Uniform [0, 1) from (seed, salt, index): a splitmix64 finalizer, 24 bits.
    func random(salt: Int, _ index: LLVMValueRef) -> LLVMValueRef {
        let b = m.b
        func c(_ v: UInt64) -> LLVMValueRef { LLVMConstInt(m.i64, v, 0) }
        var x = LLVMBuildAdd(b, seed, LLVMBuildMul(b, index, c(0xD1B5_4A32_D192_ED03), ""), "")!
        x = LLVMBuildAdd(b, x, c(UInt64(salt) &* 0x9E37_79B9_7F4A_7C15), "")
        x = LLVMBuildXor(b, x, LLVMBuildLShr(b, x, c(30), ""), "")
        x = LLVMBuildMul(b, x, c(0xBF58_476D_1CE4_E5B9), "")
        x = LLVMBuildXor(b, x, LLVMBuildLShr(b, x, c(27), ""), "")
        x = LLVMBuildMul(b, x, c(0x94D0_49BB_1331_11EB), "")
        x = LLVMBuildXor(b, x, LLVMBuildLShr(b, x, c(31), ""), "")
        let top = LLVMBuildLShr(b, x, c(40), "")
        let f = LLVMBuildUIToFP(b, top, m.f32, "")
        return LLVMBuildFMul(b, f, m.constF(1.0 / 16_777_216.0), "")
    }
}
