// The op set, declared once. Two levels:
// - layer ops, as frontends (Keras importer, Swift API) produce them;
// - primitive ops, which the lowering pass produces and codegen understands.
// Each primitive family's rules (shape, gradient, float64 meaning, kernel, printed
// form, fusability, effects) sit together in one file of Ops/, behind the
// `PrimitiveFamily` protocol (Ops/Primitive.swift); `PrimOp.family` below says which
// family holds a primitive.

/// Keras activations, by their Keras names.
public enum Activation: String, Sendable, Hashable, CaseIterable {
    case linear, relu, sigmoid, tanh, softmax, elu, selu, softplus, softsign
    case swish = "silu", gelu, exponential
    case hardSigmoid = "hard_sigmoid", hardSilu = "hard_silu"
    case leakyRelu = "leaky_relu", relu6, logSoftmax = "log_softmax", mish
    case celu, hardShrink = "hard_shrink", hardTanh = "hard_tanh", logSigmoid = "log_sigmoid"
    case softShrink = "soft_shrink", sparsePlus = "sparse_plus", squareplus, tanhShrink = "tanh_shrink"
    case sparsemax
}

public enum Padding: String, Sendable, Hashable { case valid, same }

/// 2-D window geometry shared by convolution and pooling (channels_last).
public struct Window2D: Hashable, Sendable {
    public var size: (Int, Int) { (kh, kw) }
    public var kh: Int, kw: Int
    public var sh: Int, sw: Int
    /// Padding before (top, left); the rest is implied by the output size.
    public var padTop: Int, padLeft: Int
    public init(kh: Int, kw: Int, sh: Int, sw: Int, padTop: Int = 0, padLeft: Int = 0) {
        self.kh = kh; self.kw = kw; self.sh = sh; self.sw = sw; self.padTop = padTop; self.padLeft = padLeft
    }
    /// Output size and leading pad along one axis, as Keras computes them.
    public static func outSize(_ input: Int, kernel: Int, stride: Int, padding: Padding) -> (out: Int, padBefore: Int) {
        switch padding {
        case .valid:
            return ((input - kernel) / stride + 1, 0)
        case .same:
            let out = (input + stride - 1) / stride
            let total = max((out - 1) * stride + kernel - input, 0)
            return (out, total / 2)
        }
    }
}

/// Layer ops: Keras layers as the frontends produce them. Weights are inputs
/// (graph parameters) after the data inputs.
public enum LayerOp: Hashable, Sendable {
    /// Keras' NotEqual op, as a Functional model saves it to compute a mask: x != value, bool.
    case notEqual(Float)
    /// Keras' Any op over the last axis (keepdims false), as saved for a mask: bool, rank - 1.
    case anyLastAxis
    /// A layer of the layer table (LayerKind.swift): its rules are the kind's.
    case table(AnyLayer)
}

/// Elementwise unary functions on f32.
public enum UnaryOp: String, Hashable, Sendable, CaseIterable {
    case neg, abs, sign, exp, log, log1p, sqrt, rsqrt, square, reciprocal
    case tanh, sigmoid, relu, erf, floor, softplus
    /// Step(x > 0) as 0/1: the derivative of relu.
    case step
}

/// Elementwise binary functions on f32, numpy broadcasting.
public enum BinaryOp: String, Hashable, Sendable, CaseIterable {
    case add, sub, mul, div, max, min, pow
}

/// Comparisons, producing bool.
public enum CompareOp: String, Hashable, Sendable, CaseIterable {
    case eq, ne, lt, le, gt, ge
}

public enum ReduceOp: String, Hashable, Sendable { case sum, max, mean }

public enum PoolKind: String, Hashable, Sendable { case max, avg }

/// Primitive ops: what codegen understands.
public enum PrimOp: Hashable, Sendable {
    case unary(UnaryOp)
    case binary(BinaryOp)
    case compare(CompareOp)
    /// select(cond bool, a, b): a where cond else b (broadcasting).
    case select
    /// Cast between dtypes (bool -> f32 gives 0/1).
    case cast(DType)
    /// A scalar f32 constant, broadcastable everywhere.
    case constant(Float)
    /// The number of rows N of the call, as an f32 scalar.
    case batchSize
    /// The free number of time steps T of the call, as an f32 scalar.
    case stepCount
    /// The 1-based number of the optimizer step being taken, as an f32 scalar.
    case iteration
    /// Reduce over the given axes (sorted, no duplicates), optionally keeping them as size 1.
    case reduce(ReduceOp, axes: [Int], keepDims: Bool)
    /// Reshape; the element count is unchanged.
    case reshape([Dim])
    /// The rows of a fixed (B, ...) tensor as a batch (N, ...): a stateful layer's carried state,
    /// read (and, as an assign's target, written) in place. N = B at run time: the runtime
    /// refuses other row counts for models with carried state (kiln_model_desc.fixed_batch).
    case batchRows
    /// Permute the axes.
    case transpose([Int])
    /// Broadcast to a shape (numpy rules).
    case broadcast([Dim])
    /// Matrix product of rank-2 operands, each optionally transposed: op(a)·op(b).
    case matmul(transA: Bool, transB: Bool)
    /// conv2d(x (N,H,W,C), w (kh,kw,C,F)) -> (N,OH,OW,F).
    case conv2D(Window2D, outH: Int, outW: Int)
    /// Gradient of conv2d with respect to x: (dy, w) -> x's shape (H, W given).
    case conv2DGradInput(Window2D, inH: Int, inW: Int)
    /// Gradient of conv2d with respect to w: (x, dy) -> w's shape.
    case conv2DGradFilter(Window2D)
    /// Patches of a convolution as rows: x (N,H,W,C) -> (N*OH*OW, KH*KW*C), zeros where padded.
    case im2col(Window2D, outH: Int, outW: Int)
    /// Sums patch rows back into the image: (N*OH*OW, KH*KW*C) -> (N,H,W,C); the adjoint of im2col.
    case col2im(Window2D, inH: Int, inW: Int, channels: Int, outH: Int, outW: Int)
    /// Pooling (N,H,W,C) -> (N,OH,OW,C); padded cells are ignored (avg counts valid cells only).
    case pool2D(PoolKind, Window2D, outH: Int, outW: Int)
    /// Gradient of pooling: (x, y, dy) -> x's shape.
    case pool2DGrad(PoolKind, Window2D)
    /// gather(table (R, D), ids int (…)) -> (…, D); ids out of range give zeros.
    case gather
    /// scatterAdd(ids (…), dy (…, D)) -> (R, D): the gradient of gather.
    case scatterAdd(rows: Int)
    /// Concatenate along an axis.
    case concat(axis: Int)
    /// Splits along an axis into consecutive pieces of the given sizes (one output each).
    case split(axis: Int, sizes: [Int])
    /// Slice [start, start+length) along an axis.
    case slice(axis: Int, start: Int, length: Int)
    /// Pads a fixed axis with `before` and `after` copies of the value (f32).
    case pad(axis: Int, before: Int, after: Int, value: Float)
    /// 0, 1, ..., n-1 as f32[n].
    case iota(Int)
    /// Uniform [0, 1) random numbers of the given type, from the step seed and an op salt.
    case randomUniform(salt: Int)
    /// Fused elementwise chain: one output computed by an expression over the inputs.
    case fused(FusedExpr)
    /// Conv2D with bias and activation folded in: (x, w, b) -> act(conv(x, w) + b).
    case convBiasAct(Window2D, outH: Int, outW: Int, act: FusedExpr?)
    /// A recurrent cell over the time steps (Scan.swift): (proj, U, [rb], [mask]) ->
    /// (sequence, final h, final c, scratch, [records]).
    case scan(ScanCell)
    /// The reverse scan (backprop through time) of a recording scan (Scan.swift).
    case scanGrad(ScanCell)
    /// Writes the value (second input) into the state buffer of the parameter
    /// (first input); produces nothing. Training's optimizer update.
    case assign
    /// A linear-chain CRF's negative log-likelihood of each row's tag path (Ops/CRF.swift):
    /// (emissions (N, T, n), transitions (n, n), start (n), end (n), tags i32 (N, T), [mask bool (N, T)]) -> (N).
    case crfNLL
    /// Its gradient by forward-backward: (emissions, transitions, start, end, tags, dnll (N), [mask]) ->
    /// d emissions (N, T, n), and per row d transitions (N, n, n), d start (N, n), d end (N, n).
    case crfNLLGrad
    /// Viterbi decoding: (emissions, transitions, start, end, [mask]) -> the best tags i32 (N, T), 0 at
    /// masked steps, and the backpointers i32 (N, T, n) (scratch).
    case crfViterbi
}

extension PrimOp {
    /// The family whose file holds this primitive's rules (Ops/*.swift).
    /// A view of its input's buffer (reshape, batch_rows): the program computes nothing for it.
    public var isView: Bool {
        switch self {
        case .reshape, .batchRows: return true
        default: return false
        }
    }

    public var family: any PrimitiveFamily.Type {
        switch self {
        case .unary, .binary, .compare, .select, .cast, .fused: return Elementwise.self
        case .constant, .batchSize, .stepCount, .iteration, .iota: return Constants.self
        case .reduce: return Reduce.self
        case .reshape, .batchRows, .transpose, .broadcast, .concat, .split, .slice: return Layout.self
        case .matmul: return Matmul.self
        case .conv2D, .conv2DGradInput, .conv2DGradFilter, .im2col, .col2im, .convBiasAct: return Convolution.self
        case .pool2D, .pool2DGrad: return Pool.self
        case .gather, .scatterAdd: return Gather.self
        case .randomUniform: return Random.self
        case .scan, .scanGrad: return Scan.self
        case .assign: return Assign.self
        case .pad: return Pad.self
        case .crfNLL, .crfNLLGrad, .crfViterbi: return ChainCRF.self
        }
    }
}

/// An elementwise expression over the inputs of a fused op (input k is `.arg(k)`).
public indirect enum FusedExpr: Hashable, Sendable, CustomStringConvertible {
    case arg(Int)
    case const(Float)
    case batchSize
    case stepCount
    case iteration
    case unary(UnaryOp, FusedExpr)
    case binary(BinaryOp, FusedExpr, FusedExpr)
    case compare(CompareOp, FusedExpr, FusedExpr)
    case select(FusedExpr, FusedExpr, FusedExpr)
    case cast(DType, FusedExpr)

    public var description: String {
        switch self {
        case .arg(let k): return "%\(k)"
        case .const(let c): return formatFloat(c)
        case .batchSize: return "N"
        case .stepCount: return "T"
        case .iteration: return "t"
        case let .unary(op, a): return "\(op.rawValue)(\(a))"
        case let .binary(op, a, b): return "\(op.rawValue)(\(a), \(b))"
        case let .compare(op, a, b): return "\(op.rawValue)(\(a), \(b))"
        case let .select(c, a, b): return "select(\(c), \(a), \(b))"
        case let .cast(t, a): return "cast<\(t.rawValue)>(\(a))"
        }
    }
}

/// An op of either level.
public enum Op: Hashable, Sendable {
    case layer(LayerOp)
    case prim(PrimOp)

    public var isLayer: Bool { if case .layer = self { return true } else { return false } }
}

func formatFloat(_ f: Float) -> String {
    if f == f.rounded() && abs(f) < 1e7 { return String(Int(f)) }
    return "\(f)"
}
