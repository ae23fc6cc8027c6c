import CLLVM
import KilnIR
import KilnPasses

/// Emits the entry function of a program: computes where each value lives
/// (caller arrays, state, arena), then calls the kernels in order.
final class ProgramEmitter {
    let m: ModuleBuilder
    var kernelCache: [LoopKernel: (LLVMValueRef, LLVMTypeRef)] = [:]

    init(_ m: ModuleBuilder) { self.m = m }

    func kernelFunction(_ k: LoopKernel) -> (LLVMValueRef, LLVMTypeRef) {
        if let f = kernelCache[k] { return f }
        let saved = LLVMGetInsertBlock(m.b)
        var e = KernelEmitter(m, k)
        let f = e.emit(name: "kiln_k\(kernelCache.count)")
        kernelCache[k] = f
        if let saved { LLVMPositionBuilderAtEnd(m.b, saved) }
        return f
    }

    /// `void kiln_rangeN(ptr ctx, i64 lo, i64 hi)`: kernel k over [lo, hi) of its outermost
    /// loop, its arguments read from ctx (buffer pointers, then n, seed, iteration, steps; 8 bytes each).
    /// The task kiln_parallel_loop runs.
    func rangeFunction(_ k: LoopKernel) -> LLVMValueRef {
        if let f = rangeCache[k] { return f }
        let kernel = kernelFunction(k)
        let saved = LLVMGetInsertBlock(m.b)
        let f = m.function("kiln_range\(rangeCache.count)", m.void, [m.ptr, m.i64, m.i64], local: true)
        LLVMPositionBuilderAtEnd(m.b, LLVMAppendBasicBlockInContext(m.ctx, f.0, "entry"))
        let ctx = LLVMGetParam(f.0, 0)!
        let count = k.buffers.count
        var args = (0..<count).map { LLVMBuildLoad2(m.b, m.ptr, m.gep(ctx, m.i64, m.constI($0)), "")! }
        let scalars = (count..<count + 4).map { LLVMBuildLoad2(m.b, m.i64, m.gep(ctx, m.i64, m.constI($0)), "")! }
        args += scalars.prefix(3) + [m.constI(0), m.constI(0), m.constI(0), scalars[3]]
        _ = m.call(kernel, args + [LLVMGetParam(f.0, 1), LLVMGetParam(f.0, 2)])
        LLVMBuildRetVoid(m.b)
        rangeCache[k] = f.0
        if let saved { LLVMPositionBuilderAtEnd(m.b, saved) }
        return f.0
    }
    var rangeCache: [LoopKernel: LLVMValueRef] = [:]

    struct Frame {
        var arena: LLVMValueRef, state: LLVMValueRef, inputs: LLVMValueRef, n: LLVMValueRef
        var seed: LLVMValueRef, iteration: LLVMValueRef
        /// The free number of time steps T of the call (1 for models without one).
        var steps: LLVMValueRef
        /// Arguments of a parallel loop (see rangeFunction), room for the program's widest kernel.
        var loopContext: LLVMValueRef
    }

    /// The loop context of an entry function, allocated in its entry block.
    func loopContext(_ p: Program) -> LLVMValueRef {
        let widest = p.steps.map { if case let .loop(k, _) = $0 { return k.buffers.count } else { return 0 } }.max() ?? 0
        return LLVMBuildAlloca(m.b, LLVMArrayType2(m.i64, UInt64(widest + 4)), "loop_ctx")
    }

    /// void NAME__predict(ptr arena, ptr state, ptr inputs, ptr outputs, i64 n, i64 steps)
    func emitPredict(_ p: Program, name: String) {
        let f = m.function(name, m.void, [m.ptr, m.ptr, m.ptr, m.ptr, m.i64, m.i64])
        markLarge(f.0, p)
        let entry = LLVMAppendBasicBlockInContext(m.ctx, f.0, "entry")
        LLVMPositionBuilderAtEnd(m.b, entry)
        let frame = Frame(arena: LLVMGetParam(f.0, 0), state: LLVMGetParam(f.0, 1), inputs: LLVMGetParam(f.0, 2),
                          n: LLVMGetParam(f.0, 4), seed: m.constI(0), iteration: m.constI(0), steps: LLVMGetParam(f.0, 5),
                          loopContext: loopContext(p))
        body(p, frame)
        let outputs = LLVMGetParam(f.0, 3)!
        for (k, v) in p.outputs.enumerated() {
            let dst = LLVMBuildLoad2(m.b, m.ptr, m.gep(outputs, m.ptr, m.constI(k)), "")!
            let t = p.graph.type(v)
            let bytes = byteCount(t, frame)
            LLVMBuildMemCpy(m.b, dst, 4, address(p, v, frame), 4, bytes)
        }
        LLVMBuildRetVoid(m.b)
    }

    /// float NAME__train(ptr arena, ptr state, ptr inputs, i64 n, ptr info)
    /// info: { i64 iteration (steps before this one); u64 seed; ptr metrics; i64 steps (T); ... }
    func emitTrain(_ p: Program, name: String) {
        let f = m.function(name, m.f32, [m.ptr, m.ptr, m.ptr, m.i64, m.ptr])
        markLarge(f.0, p)
        let entry = LLVMAppendBasicBlockInContext(m.ctx, f.0, "entry")
        LLVMPositionBuilderAtEnd(m.b, entry)
        let info = LLVMGetParam(f.0, 4)!
        let before = LLVMBuildLoad2(m.b, m.i64, info, "")!
        let iteration = LLVMBuildAdd(m.b, before, m.constI(1), "")!
        let seed = LLVMBuildLoad2(m.b, m.i64, m.gep(info, m.i64, m.constI(1)), "")!
        let steps = LLVMBuildLoad2(m.b, m.i64, m.gep(info, m.i64, m.constI(3)), "")!
        let frame = Frame(arena: LLVMGetParam(f.0, 0), state: LLVMGetParam(f.0, 1), inputs: LLVMGetParam(f.0, 2),
                          n: LLVMGetParam(f.0, 3), seed: seed, iteration: iteration, steps: steps, loopContext: loopContext(p))
        body(p, frame)
        if !p.metrics.isEmpty {
            // info->metrics (offset 16), when the caller gave one.
            let dst = LLVMBuildLoad2(m.b, m.ptr, m.gep(info, m.i64, m.constI(2)), "")!
            let have = LLVMBuildIsNotNull(m.b, dst, "")!
            let fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(m.b))
            let store = LLVMAppendBasicBlockInContext(m.ctx, fn, "metrics")
            let done = LLVMAppendBasicBlockInContext(m.ctx, fn, "ret")
            LLVMBuildCondBr(m.b, have, store, done)
            LLVMPositionBuilderAtEnd(m.b, store)
            for (k, v) in p.metrics.enumerated() {
                let value = LLVMBuildLoad2(m.b, m.f32, address(p, v, frame), "")!
                LLVMBuildStore(m.b, value, m.gep(dst, m.f32, m.constI(k)))
            }
            LLVMBuildBr(m.b, done)
            LLVMPositionBuilderAtEnd(m.b, done)
        }
        if let r = p.result {
            LLVMBuildRet(m.b, LLVMBuildLoad2(m.b, m.f32, address(p, r, frame), ""))
        } else {
            LLVMBuildRet(m.b, m.constF(0))
        }
    }

    /// An entry function of thousands of kernel calls (an unrolled recurrence) is only address
    /// arithmetic and calls: optimizing it costs LLVM far more time than it saves, so it is left as is.
    func markLarge(_ fn: LLVMValueRef, _ p: Program) {
        guard p.steps.count > 512 else { return }
        m.addAttribute(fn, index: UInt32(bitPattern: -1), "noinline")
        m.addAttribute(fn, index: UInt32(bitPattern: -1), "optnone")
    }

    func body(_ p: Program, _ frame: Frame) {
        var paired = false
        let pairs = pairedScans(p.steps)
        for (i, step) in p.steps.enumerated() {
            if paired { paired = false; continue }
            // Two adjacent independent scans (pairedScans) run at once.
            if pairs.contains(i), case .scan(let a) = step, case .scan(let b) = p.steps[i + 1] {
                let args = [scanArguments(p, frame, a), scanArguments(p, frame, b)]
                _ = m.call(m.function("kiln_scan_pair", m.void, [m.ptr, m.ptr]), args)
                paired = true
                continue
            }
            switch step {
            case let .loop(k, args):
                emitLoop(k, args.map { address(p, $0, frame) }, frame)
            case let .gemm(a, b, c, ta, tb, mm, nn, kk, e):
                emitGemm(p, frame, a: a, b: b, c: c, ta: ta, tb: tb, m: mm, n: nn, k: kk, epilogue: e)
            case .zero(let v):
                LLVMBuildMemSet(m.b, address(p, v, frame), LLVMConstInt(m.i8, 0, 0), byteCount(p.graph.type(v), frame), 4)
            case .scan(let s):
                emitScan(p, frame, s)
            case let .convGradInput(dy, w, dx, geo):
                emitConv("kiln_conv2d_grad_input", p, frame, from: dy, w, to: dx, geo)
            case let .convGradFilter(x, dy, dw, geo):
                emitConv("kiln_conv2d_grad_filter", p, frame, from: x, dy, to: dw, geo)
            case let .conv(x, w, y, geo, e):
                emitConv("kiln_conv2d", p, frame, from: x, w, to: y, geo, epilogue: e)
            case .call(let c):
                emitCall(p, frame, c)
            }
        }
    }

    /// A scan: the runtime's driver (kiln_scan) runs the steps; it calls the step kernel through
    /// a thunk that takes the buffers as an array.
    func emitScan(_ p: Program, _ frame: Frame, _ s: ScanStep) {
        _ = m.call(m.function("kiln_scan", m.void, [m.ptr]), [scanArguments(p, frame, s)])
    }

    /// The kiln_scan_args of a scan, on the stack.
    func scanArguments(_ p: Program, _ frame: Frame, _ s: ScanStep) -> LLVMValueRef {
        let thunk = scanThunk(s.kernel)
        let bufs = LLVMBuildArrayAlloca(m.b, m.ptr, m.constI(s.args.count), "")!
        for (k, v) in s.args.enumerated() { LLVMBuildStore(m.b, address(p, v, frame), m.gep(bufs, m.ptr, m.constI(k))) }
        func ptr(_ v: Value?) -> LLVMValueRef { v.map { address(p, $0, frame) } ?? LLVMConstNull(m.ptr) }
        // struct kiln_scan_args: every field 8 bytes, in this order (kiln_runtime.h).
        let fields: [LLVMValueRef] = [
            thunk, bufs, frame.n, frame.seed, frame.iteration, s.length == nil ? frame.steps : m.constI(s.length!),
            m.constI(s.cell.goBackwards ? 1 : 0), m.constI(s.cell.flipOutput ? 1 : 0), m.constI(s.backward ? 1 : 0),
            ptr(s.mask), ptr(s.a), ptr(s.b), ptr(s.c), m.constI(s.cell.units), m.constI(s.cell.gates),
            ptr(s.carries[0]), ptr(s.carries[1]), ptr(s.initial[0]), ptr(s.initial[1]),
            m.constI(s.args.count), m.constI(s.rowOrder?.rowMap ?? -1), m.constI(s.rowOrder?.sequence ?? -1),
            m.constI(s.rowOrder?.last ?? -1), m.constI(s.cell.zeroOutputForMask ? 1 : 0), ptr(s.recurrentDropout),
        ]
        let args = LLVMBuildArrayAlloca(m.b, m.i64, m.constI(fields.count), "")!
        for (k, f) in fields.enumerated() { LLVMBuildStore(m.b, f, m.gep(args, m.i64, m.constI(k))) }
        return args
    }

    var thunkCache: [LoopKernel: LLVMValueRef] = [:]

    /// void function(ptr inputs..., ptr outputs..., i64 sizes...) of the runtime (RuntimeCall).
    func emitCall(_ p: Program, _ frame: Frame, _ c: RuntimeCall) {
        let pointers = c.inputs.count + c.outputs.count
        let fn = m.function(c.function, m.void, Array(repeating: m.ptr, count: pointers) + Array(repeating: m.i64, count: c.sizes.count))
        let args = c.inputs.map { $0.map { address(p, $0, frame) } ?? LLVMConstNull(m.ptr)! }
            + c.outputs.map { address(p, $0, frame) } + c.sizes.map { intValue($0, frame) }
        _ = m.call(fn, args)
    }

    /// fn(from, w, to, n, H, W, C, OH, OW, F, kh, kw, sh, sw, pad_top, pad_left): a convolution or its
    /// input or filter gradient by the runtime (kiln_conv.c; the filter gradient's second operand is dy), with the
    /// sizes the geometry holds.
    /// (The forward convolution takes the epilogue's bias, or NULL, and its relu flag last.)
    func emitConv(_ name: String, _ p: Program, _ frame: Frame, from: Value, _ w: Value, to: Value, _ geo: ConvGeometry,
                  epilogue: Epilogue? = nil) {
        let (xs, ys, win) = (geo.image, geo.maps, geo.window)
        let forward = name == "kiln_conv2d"
        let fn = m.function(name, m.void, [m.ptr, m.ptr, m.ptr] + Array(repeating: m.i64, count: 13) + (forward ? [m.ptr, m.i32] : []))
        let sizes = [xs[1], xs[2], xs[3], ys[1], ys[2], ys[3]].map { m.constI($0.factor) }
        let geometry = [win.kh, win.kw, win.sh, win.sw, win.padTop, win.padLeft].map { m.constI($0) }
        let bias: LLVMValueRef = epilogue.map { address(p, $0.bias, frame) } ?? LLVMConstNull(m.ptr)!
        let tail: [LLVMValueRef] = forward ? [bias, m.constI32(epilogue?.relu == true ? 1 : 0)] : []
        _ = m.call(fn, [address(p, from, frame), address(p, w, frame), address(p, to, frame), intValue(extent(xs[0]), frame)]
                   + sizes + geometry + tail)
    }

    /// void thunk(ptr bufs, i64 n, i64 seed, i64 iteration, i64 t, i64 t_prev, i64 t_out, i64 steps, i64 lo, i64 hi):
    /// calls the kernel over rows [lo, hi) of the batch (its outermost loop is over the rows).
    func scanThunk(_ k: LoopKernel) -> LLVMValueRef {
        if let f = thunkCache[k] { return f }
        precondition(k.loops.first == .n, "a scan step kernel's outermost loop runs over the batch rows")
        let kernel = kernelFunction(k)
        let saved = LLVMGetInsertBlock(m.b)
        let f = m.function("kiln_scan_step\(thunkCache.count)", m.void, [m.ptr] + Array(repeating: m.i64, count: 9), local: true)
        LLVMPositionBuilderAtEnd(m.b, LLVMAppendBasicBlockInContext(m.ctx, f.0, "entry"))
        let bufs = LLVMGetParam(f.0, 0)!
        let ptrs = (0..<k.buffers.count).map { LLVMBuildLoad2(m.b, m.ptr, m.gep(bufs, m.ptr, m.constI($0)), "")! }
        let scalars = (1...9).map { LLVMGetParam(f.0, UInt32($0))! }
        _ = m.call(kernel, ptrs + scalars)
        LLVMBuildRetVoid(m.b)
        if let saved { LLVMPositionBuilderAtEnd(m.b, saved) }
        thunkCache[k] = f.0
        return f.0
    }

    func byteCount(_ t: TensorType, _ frame: Frame) -> LLVMValueRef {
        scaled(t.staticCount * t.dtype.byteSize, t.scale, frame)
    }

    /// k times N, T or N·T as the scale says.
    func scaled(_ k: Int, _ s: Scale, _ frame: Frame) -> LLVMValueRef {
        var v = m.constI(k)
        if s.n { v = LLVMBuildMul(m.b, v, frame.n, "")! }
        if s.t { v = LLVMBuildMul(m.b, v, frame.steps, "")! }
        return v
    }

    /// Address of a value's storage.
    func address(_ p: Program, _ v: Value, _ frame: Frame) -> LLVMValueRef {
        guard let home = p.homes[v] else { fatalError("value \(v) has no home") }
        switch home {
        case .input(let k):
            return LLVMBuildLoad2(m.b, m.ptr, m.gep(frame.inputs, m.ptr, m.constI(k)), "")!
        case .state(let off):
            return m.gep(frame.state, m.i8, m.constI(off))
        case let .arena(pool, off):
            // The pools lie one after another (Program.poolOrder), each scaled by its N, T or N·T.
            var at = scaled(off, pool, frame)
            for before in Program.poolOrder.prefix(while: { $0 != pool }) where (p.arena[before] ?? 0) > 0 {
                at = LLVMBuildAdd(m.b, at, scaled(p.arena[before]!, before, frame), "")!
            }
            return m.gep(frame.arena, m.i8, at)
        }
    }

    /// An int expression of N, T (and the iteration) as an i64 in the entry function.
    func intValue(_ e: KExpr, _ frame: Frame) -> LLVMValueRef {
        var ke = KernelEmitter(m, LoopKernel(buffers: [], loops: [], body: .int(0), output: 0, outputIndex: .int(0)))
        ke.n = frame.n
        ke.steps = frame.steps
        ke.iteration = frame.iteration
        return ke.emitInt(e)
    }

    /// A call of kernel k on the buffers at ptrs: directly, or, for a loop that may be large
    /// enough to pay (see ParallelLoops), through kiln_parallel_loop in chunks of its outermost loop.
    func emitLoop(_ k: LoopKernel, _ ptrs: [LLVMValueRef], _ frame: Frame) {
        let fn = kernelFunction(k)
        let extent = k.loops.first.map { intValue($0, frame) } ?? m.constI(1)
        let zero = m.constI(0)
        let direct = { self.m.call(fn, ptrs + [frame.n, frame.seed, frame.iteration, zero, zero, zero, frame.steps, zero, extent]) }
        guard let work = ParallelLoops.work(k) else { _ = direct(); return }
        if case .int(let w) = work, w < ParallelLoops.minimumWork { _ = direct(); return }
        let parallel = {
            let ctx = frame.loopContext
            for (i, ptr) in ptrs.enumerated() { LLVMBuildStore(self.m.b, ptr, self.m.gep(ctx, self.m.i64, self.m.constI(i))) }
            for (i, v) in [frame.n, frame.seed, frame.iteration, frame.steps].enumerated() {
                LLVMBuildStore(self.m.b, v, self.m.gep(ctx, self.m.i64, self.m.constI(ptrs.count + i)))
            }
            let run = self.m.function("kiln_parallel_loop", self.m.void, [self.m.i64, self.m.i64, self.m.ptr, self.m.ptr])
            _ = self.m.call(run, [extent, self.intValue(work, frame), self.rangeFunction(k), ctx])
        }
        if case .int = work { parallel(); return }
        // The work depends on N: decide at run time.
        let here = LLVMGetBasicBlockParent(LLVMGetInsertBlock(m.b))
        let big = LLVMAppendBasicBlockInContext(m.ctx, here, "parallel")
        let small = LLVMAppendBasicBlockInContext(m.ctx, here, "serial")
        let join = LLVMAppendBasicBlockInContext(m.ctx, here, "next")
        let isBig = LLVMBuildICmp(m.b, LLVMIntSGE, intValue(work, frame), m.constI(ParallelLoops.minimumWork), "")
        LLVMBuildCondBr(m.b, isBig, big, small)
        LLVMPositionBuilderAtEnd(m.b, big)
        parallel()
        LLVMBuildBr(m.b, join)
        LLVMPositionBuilderAtEnd(m.b, small)
        _ = direct()
        LLVMBuildBr(m.b, join)
        LLVMPositionBuilderAtEnd(m.b, join)
    }

    /// kiln_gemm(transA, transB, M, N, K, A, lda, B, ldb, 0, C, ldc): C = op(A)·op(B) through the
    /// runtime's kernels (kiln_gemm.c), a large product split over the thread pool.
    func emitGemm(_ p: Program, _ frame: Frame, a: Value, b: Value, c: Value, ta: Bool, tb: Bool, m mm: KExpr, n nn: KExpr, k kk: KExpr,
                  epilogue: Epilogue?) {
        let (i32, i64) = (m.i32, m.i64)
        let (M, N, K) = (intValue(mm, frame), intValue(nn, frame), intValue(kk, frame))
        let operands = [m.constI32(ta ? 1 : 0), m.constI32(tb ? 1 : 0), M, N, K,
                        address(p, a, frame), ta ? M : K, address(p, b, frame), tb ? K : N]
        if let e = epilogue {
            let fn = m.function("kiln_gemm_bias", m.void, [i32, i32, i64, i64, i64, m.ptr, i64, m.ptr, i64, m.ptr, i64, m.ptr, i32])
            _ = m.call(fn, operands + [address(p, c, frame), N, address(p, e.bias, frame), m.constI32(e.relu ? 1 : 0)])
        } else {
            let fn = m.function("kiln_gemm", m.void, [i32, i32, i64, i64, i64, m.ptr, i64, m.ptr, i64, m.f32, m.ptr, i64])
            _ = m.call(fn, operands + [m.constF(0), address(p, c, frame), N])
        }
    }

    /// const unsigned char NAME[] = { ... }  (the initial state image)
    func emitBlob(_ image: [UInt8], name: String) {
        let bytes = image.isEmpty ? [0] : image
        let ty = LLVMArrayType2(m.i8, UInt64(bytes.count))
        let g = LLVMAddGlobal(m.module, ty, name)!
        let s = bytes.withUnsafeBufferPointer { buf in
            buf.baseAddress!.withMemoryRebound(to: CChar.self, capacity: max(bytes.count, 1)) {
                LLVMConstStringInContext2(m.ctx, $0, bytes.count, 1)
            }
        }
        LLVMSetInitializer(g, s)
        LLVMSetGlobalConstant(g, 1)
        LLVMSetAlignment(g, 64)
    }
}

/// Which loop kernels run in parallel chunks of their outermost loop (kiln_parallel_loop), and
/// how much work they are. A kernel qualifies when it does not accumulate (a scatter's points may
/// add to the same element; every other kernel writes each output element from one point of its
/// parallel loops) and can be large: its work, the number of points of all its loops times a
/// rough cost per point, reaches `minimumWork` (at run time, for
/// the N of the call; at compile time, kernels that would not even at N = 4096 are left out, so
/// that the many small kernels of an unrolled recurrence stay plain calls). The runtime cuts the
/// loop into chunks whose bounds depend only on its extent and work, so results do not depend on
/// the thread count.
enum ParallelLoops {
    /// Twice KILN_LOOP_CHUNK_WORK of kiln_runtime.c: about a 64K-element copy, some tens of
    /// microseconds, well above what handing a chunk to a waiting thread costs (a microsecond or two).
    static let minimumWork = 1 << 16

    /// The work of kernel k as an int expression of N, or nil when it cannot run in parallel
    /// or is never large enough.
    static func work(_ k: LoopKernel) -> KExpr? {
        guard !k.accumulate, !k.loops.isEmpty else { return nil }
        var w = KExpr.int(max(1, cost(k.body) + k.extraStores.reduce(0) { $0 + 1 + cost($1.value) }))
        for e in k.loops + k.reduceLoops { w = w * e }
        guard let atLarge = evaluate(w, n: 4096), atLarge >= minimumWork else { return nil }
        return w
    }

    /// Rough cost of one point: a load 1, a division or square root 2, a transcendental
    /// function 8, pow 16; the rest is free beside them.
    static func cost(_ e: KExpr) -> Int {
        switch e {
        case .real, .int, .index, .n, .steps, .iteration, .acc, .scanStep, .scanPrevious, .scanOutput: return 0
        case let .load(_, at): return 1 + cost(at)
        case let .guardedLoad(_, at, valid, _): return 1 + cost(at) + cost(valid)
        case let .unary(op, a):
            switch op {
            case .exp, .log, .log1p, .tanh, .sigmoid, .erf, .softplus: return 8 + cost(a)
            case .sqrt, .rsqrt, .reciprocal: return 2 + cost(a)
            default: return cost(a)
            }
        case let .binary(op, a, b): return (op == .pow ? 16 : op == .div ? 2 : 0) + cost(a) + cost(b)
        case let .iadd(a, b), let .isub(a, b), let .imul(a, b), let .idiv(a, b), let .imod(a, b),
             let .compare(_, a, b), let .and(a, b):
            return cost(a) + cost(b)
        case let .select(c, a, b): return cost(c) + cost(a) + cost(b)
        case .toReal(let a), .toInt(let a): return cost(a)
        case let .random(_, at): return 2 + cost(at)
        }
    }

    /// The value of an int expression of N (nil if it uses more than N and constants).
    static func evaluate(_ e: KExpr, n: Int) -> Int? {
        switch e {
        case .int(let v): return v
        case .n: return n
        case .steps: return 64         // a free number of time steps: a typical length
        case let .iadd(a, b): return zip2(a, b, n, +)
        case let .isub(a, b): return zip2(a, b, n, -)
        case let .imul(a, b): return zip2(a, b, n, *)
        case let .idiv(a, b): return evaluate(b, n: n) == 0 ? nil : zip2(a, b, n, /)
        default: return nil
        }
    }

    private static func zip2(_ a: KExpr, _ b: KExpr, _ n: Int, _ f: (Int, Int) -> Int) -> Int? {
        guard let x = evaluate(a, n: n), let y = evaluate(b, n: n) else { return nil }
        return f(x, y)
    }
}
