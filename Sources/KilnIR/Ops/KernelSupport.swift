// What the kernel rules build on: a program's steps, and helpers for loop kernels
// over the shapes of primitives.

/// One step of a compiled program, in the order it runs.
public enum Step: Hashable, Sendable, CustomStringConvertible {
    /// A loop kernel; `args[k]` is the value bound to kernel buffer k.
    case loop(LoopKernel, args: [Value])
    /// C = op(A)·op(B) by the runtime (kiln_gemm), then the epilogue if any; M, N, K may scale with the batch.
    case gemm(a: Value, b: Value, c: Value, transA: Bool, transB: Bool, m: KExpr, n: KExpr, k: KExpr, epilogue: Epilogue?)
    /// Sets every element of a value to zero.
    case zero(Value)
    /// A scan over the time steps (ScanKernels.swift).
    case scan(ScanStep)
    /// dx = the input gradient of a convolution, by the runtime (kiln_conv2d_grad_input).
    case convGradInput(dy: Value, w: Value, dx: Value, ConvGeometry)
    /// dw = the filter gradient of a convolution, by the runtime (kiln_conv2d_grad_filter).
    case convGradFilter(x: Value, dy: Value, dw: Value, ConvGeometry)
    /// y = a convolution, by the runtime (kiln_conv2d), then the epilogue if any.
    case conv(x: Value, w: Value, y: Value, ConvGeometry, epilogue: Epilogue?)
    /// A function of the runtime on the storage of values, with sizes (RuntimeCall).
    case call(RuntimeCall)

    public var description: String {
        switch self {
        case let .loop(k, args): return "loop(" + args.map(\.description).joined(separator: ", ") + ") " + k.description
        case let .gemm(a, b, c, ta, tb, m, n, k, e):
            return "gemm \(c) = \(a)\(ta ? "ᵀ" : "")·\(b)\(tb ? "ᵀ" : "") [\(m)x\(n)x\(k)]" + (e.map { " " + $0.description } ?? "")
        case .zero(let v): return "zero \(v)"
        case .scan(let s): return s.description
        case let .convGradInput(dy, w, dx, geo): let win = geo.window; return "conv2d_grad_input \(dx) = \(dy) ⋆ \(w) \(win.kh)x\(win.kw)/\(win.sh)x\(win.sw)"
        case let .convGradFilter(x, dy, dw, geo): let win = geo.window; return "conv2d_grad_filter \(dw) = \(x) ⋆ \(dy) \(win.kh)x\(win.kw)/\(win.sh)x\(win.sw)"
        case let .conv(x, w, y, geo, e):
            let win = geo.window
            return "conv2d \(y) = \(x) ⋆ \(w) \(win.kh)x\(win.kw)/\(win.sh)x\(win.sw)" + (e.map { " " + $0.description } ?? "")
        case .call(let c): return c.description
        }
    }

    /// Values the step reads and writes.
    public var reads: [Value] {
        switch self {
        case let .loop(k, args):
            // An accumulating kernel reads its output too.
            return zip(k.buffers, args).filter { !$0.0.written }.map(\.1) + (k.accumulate ? [args[k.output]] : [])
        case let .gemm(a, b, _, _, _, _, _, _, e): return [a, b] + (e.map { [$0.bias] } ?? [])
        case .zero: return []
        case .scan(let s): return s.reads
        case let .convGradInput(dy, w, _, _): return [dy, w]
        case let .convGradFilter(x, dy, _, _): return [x, dy]
        case let .conv(x, w, _, _, e): return [x, w] + (e.map { [$0.bias] } ?? [])
        case .call(let c): return c.inputs.compactMap { $0 }
        }
    }
    public var writes: [Value] {
        switch self {
        case let .loop(k, args): return zip(k.buffers, args).filter { $0.0.written }.map(\.1)
        case let .gemm(_, _, c, _, _, _, _, _, _): return [c]
        case .zero(let v): return [v]
        case .scan(let s): return s.writes
        case let .convGradInput(_, _, dx, _): return [dx]
        case let .convGradFilter(_, _, dw, _): return [dw]
        case let .conv(_, _, y, _, _): return [y]
        case .call(let c): return c.outputs
        }
    }
}

/// `void function(inputs..., outputs..., sizes...)` of the runtime: a pointer to each value's storage
/// (NULL for an absent optional input), then each size as an int64 (expressions of N and T). The
/// function writes every output whole. For work the loop kernels cannot express, such as a CRF's
/// recurrences over the steps (Ops/CRF.swift, Runtime/kiln_crf.c).
public struct RuntimeCall: Hashable, Sendable, CustomStringConvertible {
    public var function: String
    public var inputs: [Value?]
    public var outputs: [Value]
    public var sizes: [KExpr]
    public init(_ function: String, inputs: [Value?], outputs: [Value], sizes: [KExpr]) {
        self.function = function; self.inputs = inputs; self.outputs = outputs; self.sizes = sizes
    }
    public var description: String {
        "call " + outputs.map(\.description).joined(separator: ", ") + " = " + function + "("
            + (inputs.map { $0?.description ?? "null" } + sizes.map(\.description)).joined(separator: ", ") + ")"
    }
}

/// A runtime convolution's window and sizes, (n, H, W, C) for the image side and
/// (n, OH, OW, F) for the maps, as its node typed them: the planner may bind a value to the
/// storage of a reshape's source, whose shape is another.
public struct ConvGeometry: Hashable, Sendable {
    public var window: Window2D
    public var image: [Dim], maps: [Dim]
    public init(_ window: Window2D, image: [Dim], maps: [Dim]) { self.window = window; self.image = image; self.maps = maps }
}

/// What a product or convolution applies to each element of its result before storing it: the
/// bias of its column (channel) added, then relu when asked, as the loop it replaces did
/// (Planner.fuseEpilogues).
public struct Epilogue: Hashable, Sendable, CustomStringConvertible {
    public var bias: Value
    public var relu: Bool
    public init(bias: Value, relu: Bool) { self.bias = bias; self.relu = relu }
    public var description: String { relu ? "then relu(+ \(bias))" : "then + \(bias)" }
}

/// Translates an elementwise expression over args into a kernel expression,
/// given how to load each argument.
func kexpr(_ e: FusedExpr, _ load: (Int) -> KExpr) -> KExpr {
    switch e {
    case .arg(let k): return load(k)
    case .const(let c): return .real(c)
    case .batchSize: return .toReal(.n)
    case .stepCount: return .toReal(.steps)
    case .iteration: return .toReal(.iteration)
    case let .unary(op, a): return .unary(op, kexpr(a, load))
    case let .binary(op, a, b): return .binary(op, kexpr(a, load), kexpr(b, load))
    case let .compare(op, a, b): return .compare(op, kexpr(a, load), kexpr(b, load))
    case let .select(c, a, b): return .select(kexpr(c, load), kexpr(a, load), kexpr(b, load))
    case let .cast(t, a):
        let x = kexpr(a, load)
        return t == .f32 ? .toReal(x) : .toInt(x)
    }
}

/// The one loop of an elementwise node of graph g computing expression e over its inputs
/// (numpy broadcasting): a flat loop when every input has the output's shape or is a
/// single element, else a loop nest over the output's dimensions.
func elementwiseSteps(_ e: FusedExpr, _ n: Node, in g: Graph) -> [Step] {
    let (ins, args, bufs) = kernelOperands(n, in: g)
    let outBuf = n.inputs.count
    let out = g.type(n.outputs[0])
    // Same shape everywhere (or a single element, broadcast): one flat loop.
    func isScalar(_ t: TensorType) -> Bool { t.scale == .fixed && t.staticCount == 1 }
    if ins.allSatisfy({ $0.shape == out.shape || isScalar($0) }) {
        let i = KExpr.index(0)
        let k = LoopKernel(buffers: bufs, loops: [elementCount(out)], body: kexpr(e) { .load(buffer: $0, at: ins[$0].shape == out.shape ? i : .int(0)) },
                           output: outBuf, outputIndex: i)
        return [.loop(k, args: args)]
    }
    let r = out.rank
    let ix = (0..<r).map(KExpr.index)
    let body = kexpr(e) { .load(buffer: $0, at: linearIndex(ins[$0].shape, ix)) }
    let k = LoopKernel(buffers: bufs, loops: extents(out.shape), body: body,
                       output: outBuf, outputIndex: linearIndex(out.shape, ix))
    return [.loop(k, args: args)]
}

/// A node's kernel buffers: its inputs, then its outputs (written), each of its value's dtype.
/// What a node's loop kernel starts from: its operands' types, its values in buffer order
/// (inputs, then outputs) and their buffers.
func kernelOperands(_ n: Node, in g: Graph) -> (ins: [TensorType], args: [Value], bufs: [KBuffer]) {
    (n.inputs.map { g.type($0) }, n.inputs + n.outputs, kernelBuffers(n, in: g))
}

func kernelBuffers(_ n: Node, in g: Graph) -> [KBuffer] {
    n.inputs.map { KBuffer(g.type($0).dtype) } + n.outputs.map { KBuffer(g.type($0).dtype, written: true) }
}

func inRange(_ a: KExpr, _ ha: Int, _ b: KExpr, _ hb: Int) -> KExpr {
    .and(.and(.compare(.ge, a, .int(0)), .compare(.lt, a, .int(ha))),
         .and(.compare(.ge, b, .int(0)), .compare(.lt, b, .int(hb))))
}

/// t = out*stride exactly, for an out in [0, limit), along both axes.
func windowValid(_ th: KExpr, _ sh: Int, _ oh: Int, _ tw: KExpr, _ sw: Int, _ ow: Int) -> KExpr {
    func one(_ t: KExpr, _ s: Int, _ o: Int) -> KExpr {
        var v = KExpr.and(.compare(.ge, t, .int(0)), .compare(.lt, t, .int(o * s)))
        if s != 1 { v = .and(v, .compare(.eq, .imod(t, .int(s)), .int(0))) }
        return v
    }
    return .and(one(th, sh, oh), one(tw, sw, ow))
}

/// Number of input cells of the pooling window at (oh, ow) inside the input.
func poolCount(_ win: Window2D, h: Int, w: Int, oh: KExpr = .index(1), ow: KExpr = .index(2)) -> KExpr {
    func along(_ o: KExpr, _ s: Int, _ pad: Int, _ k: Int, _ size: Int) -> KExpr {
        let lo = o * .int(s) - .int(pad)
        let hi = lo + .int(k)
        let clo = KExpr.select(.compare(.lt, lo, .int(0)), .int(0), lo)
        let chi = KExpr.select(.compare(.gt, hi, .int(size)), .int(size), hi)
        return chi - clo
    }
    return along(oh, win.sh, win.padTop, win.kh, h) * along(ow, win.sw, win.padLeft, win.kw, w)
}
