// Conv1D: a 1-D convolution over the time axis (Keras' `Conv1D`), with 'valid', 'same' and
// 'causal' padding, strides, dilation, and both data formats. Also the helpers the other 1-D
// layers of this group share (Seq1D: the time and channel axes of a (batch, steps, channels)
// input as Keras reads them).

import KilnIR
import KilnSupport

/// Conv1D's padding (Keras' spelling): 'causal' pads (kernel - 1) * dilation steps in front, so
/// output step t sees input steps up to t only.
public enum Conv1DPadding: String, Sendable, Hashable, CaseIterable { case valid, same, causal }

/// The axes of a 1-D layer's (batch, steps, channels) input: Keras' channels_last, or
/// channels_first's (batch, channels, steps).
struct Seq1DAxes {
    var channelsFirst: Bool
    var time: Int { channelsFirst ? 2 : 1 }
    var channel: Int { channelsFirst ? 1 : 2 }
    var layout: String { channelsFirst ? "(batch, channels, steps)" : "(batch, steps, channels)" }

    /// Checks a rank-3 batched input with a fixed channel axis (and a fixed time axis when
    /// `fixedSteps`); returns (steps, channels), steps nil when free.
    func check(_ x: TensorType, layer: String, cls: String, fixedSteps: Bool) throws -> (steps: Int?, channels: Int) {
        guard x.rank == 3, x.shape[0] == .n, x.shape[1] != .n, x.shape[2] != .n,
              let c = x.shape[channel].fixedValue else {
            throw ShapeError(layer: layer, "expects a sequence \(layout), got \(x.kerasDescription)",
                             hint: "\(cls) works on 3-D input" + (channelsFirst ? " with data_format='channels_first'" : ""))
        }
        let steps = x.shape[time].fixedValue
        if fixedSteps && steps == nil {
            throw ShapeError(layer: layer, "cannot take input \(x.kerasDescription): its time axis is free (None), and Kiln needs the number of steps to size the output",
                             hint: "give the Input a fixed number of steps")
        }
        return (steps, c)
    }

    /// (N, C, T) -> (N, T, C) when channels come first (and back: the same swap).
    func toChannelsLast(_ b: inout PrimBuilder, _ x: Value) throws -> Value {
        channelsFirst ? try b.p(.transpose([0, 2, 1]), x) : x
    }

    /// Reads Keras' data_format (channels_last or channels_first).
    static func read(_ c: KerasConfig) throws -> Bool {
        try c.choice("data_format", ["channels_last", "channels_first"], "channels_last") == "channels_first"
    }
    static func format(_ channelsFirst: Bool) -> JSON { .string(channelsFirst ? "channels_first" : "channels_last") }
}

/// x (N, T, C) [or (N, C, T)], kernel (k, C, F), [bias (F)] -> (N, T', F) [or (N, F, T')]:
/// activation(conv(x, kernel) + bias). Keras 3's Conv1D has no compute_mask: a mask stops here.
public struct Conv1DKind: LayerKind {
    public static let kerasClasses = ["Conv1D"]
    public var filters: Int
    public var kernelSize: Int
    public var strides: Int
    public var padding: Conv1DPadding
    public var dilation: Int
    public var activation: Activation
    public var useBias: Bool
    public var channelsFirst: Bool

    public init(filters: Int, kernelSize: Int, strides: Int = 1, padding: Conv1DPadding = .valid, dilation: Int = 1,
                activation: Activation = .linear, useBias: Bool = true, channelsFirst: Bool = false) {
        self.filters = filters; self.kernelSize = kernelSize; self.strides = strides; self.padding = padding
        self.dilation = dilation; self.activation = activation; self.useBias = useBias; self.channelsFirst = channelsFirst
    }

    public init(keras c: KerasConfig) throws {
        let groups = try c.int("groups", 1)
        guard groups == 1 else { throw c.fail("uses groups=\(groups); Kiln supports groups=1") }
        for key in ["kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint"] {
            try c.require(key, .null, "none (training would differ)")
        }
        try c.require("lora_rank", .null, "no LoRA")
        let padding = Conv1DPadding(rawValue: try c.choice("padding", Conv1DPadding.allCases.map(\.rawValue), "valid"))!
        self.init(filters: try c.positive("filters"), kernelSize: try c.sizes("kernel_size", count: 1)[0],
                  strides: try c.sizes("strides", count: 1, [1])[0], padding: padding,
                  dilation: try c.sizes("dilation_rate", count: 1, [1])[0], activation: try c.activation(),
                  useBias: try c.bool("use_bias", true), channelsFirst: try Seq1DAxes.read(c))
        if strides > 1 && dilation > 1 {
            throw c.fail("uses strides=\(strides) with dilation_rate=\(dilation); like Keras, Kiln supports one of them > 1, not both")
        }
    }

    var axes: Seq1DAxes { Seq1DAxes(channelsFirst: channelsFirst) }

    public var description: String {
        "conv1d<\(filters), k=\(kernelSize), s=\(strides)" + (dilation != 1 ? ", d=\(dilation)" : "") + ", \(padding.rawValue)"
            + (channelsFirst ? ", channels_first" : "") + (activation != .linear ? ", \(activation.rawValue)" : "")
            + (useBias ? "" : ", no bias") + ">"
    }

    /// The output length and the zero steps Keras puts before and after the input.
    public func geometry(steps t: Int) -> (out: Int, before: Int, after: Int) {
        let span = (kernelSize - 1) * dilation + 1
        switch padding {
        case .valid:
            return (t >= span ? (t - span) / strides + 1 : 0, 0, 0)
        case .same:
            let out = (t + strides - 1) / strides
            let total = max((out - 1) * strides + span - t, 0)
            return (out, total / 2, total - total / 2)
        case .causal:
            return ((t - 1) / strides + 1, span - 1, 0)
        }
    }

    public func weights(for inputs: [TensorType]) throws -> [LayerWeight] {
        // An input of the wrong form gets weights all the same; the shape rule then names the layer.
        guard let x = inputs.first else { return [] }
        let c = x.rank == 3 ? x.shape[axes.channel].factor : x.shape.last?.factor ?? 1
        return [LayerWeight("kernel", [kernelSize, c, filters], .glorotUniform)] + (useBias ? [LayerWeight("bias", [filters], .zeros)] : [])
    }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, (useBias ? 3 : 2)...(useBias ? 3 : 2), layer)
        guard filters >= 1, kernelSize >= 1, strides >= 1, dilation >= 1 else {
            throw ShapeError(layer: layer, "filters=\(filters), kernel_size=\(kernelSize), strides=\(strides) and dilation_rate=\(dilation) must be positive")
        }
        let x = ins[0]
        let (steps, c) = try axes.check(x, layer: layer, cls: "Conv1D", fixedSteps: true)
        let kernel = [Dim.fixed(kernelSize), .fixed(c), .fixed(filters)]
        guard ins[1].shape == kernel else {
            throw ShapeError(layer: layer, "kernel \(formatShape(ins[1].shape.map(\.factor))) does not fit input \(x.kerasDescription); it needs \(formatShape(kernel.map(\.factor)))")
        }
        if useBias && ins[2].shape != [.fixed(filters)] {
            throw ShapeError(layer: layer, "bias \(formatShape(ins[2].shape.map(\.factor))) does not fit \(filters) filters")
        }
        let g = geometry(steps: steps!)
        var out: [Dim] = [x.shape[0], .fixed(0), .fixed(0)]
        out[axes.time] = .fixed(g.out); out[axes.channel] = .fixed(filters)
        guard g.out >= 1 else {
            throw ShapeError(layer: layer, "kernel_size \(kernelSize)" + (dilation > 1 ? " with dilation_rate \(dilation) (a span of \((kernelSize - 1) * dilation + 1) steps)" : "")
                             + " is longer than the \(steps!) steps of input \(x.kerasDescription); the output \(TensorType(x.dtype, out).kerasDescription) would have no steps",
                             hint: "use padding='same' or 'causal', or a shorter kernel")
        }
        return [TensorType(x.dtype, out)]
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let x = try axes.toChannelsLast(&b, ins[0])
        let xs = b.type(x).shape
        let (t, c) = (xs[1].factor, xs[2].factor)
        let g = geometry(steps: t)
        var y: Value
        if dilation == 1 {
            // A conv2d over a (1, T) image with a (1, k) kernel; the padding stays implicit.
            let x4 = try b.reshape(x, [xs[0], .fixed(1), .fixed(t), .fixed(c)])
            let w4 = try b.reshape(ins[1], [.fixed(1), .fixed(kernelSize), .fixed(c), .fixed(filters)])
            let win = Window2D(kh: 1, kw: kernelSize, sh: 1, sw: strides, padTop: 0, padLeft: g.before)
            y = try b.p(.conv2D(win, outH: 1, outW: g.out), x4, w4)
        } else {
            // Dilated (strides are 1): pad, take tap j's steps j*d ..< j*d + out, put the taps'
            // channels side by side and multiply by the kernel as a (k*C, F) matrix.
            var xp = x
            if g.before + g.after > 0 { xp = try b.p(.pad(axis: 1, before: g.before, after: g.after, value: 0), x) }
            let taps = try (0..<kernelSize).map { j in try b.p(.slice(axis: 1, start: j * dilation, length: g.out), xp) }
            let cols = taps.count == 1 ? taps[0] : try b.graph.add(.prim(.concat(axis: 2)), taps, layer: b.layer)[0]
            let rows = Dim.product([xs[0], .fixed(g.out)])!
            let m = try b.reshape(cols, [rows, .fixed(kernelSize * c)])
            let w = try b.reshape(ins[1], [.fixed(kernelSize * c), .fixed(filters)])
            y = try b.p(.matmul(transA: false, transB: false), m, w)
        }
        y = try b.reshape(y, [xs[0], .fixed(g.out), .fixed(filters)])
        if useBias { y = try b.add(y, ins[2]) }
        y = try b.activation(activation, y)
        return [try axes.toChannelsLast(&b, y)]
    }

    public func kerasConfig() -> [(String, JSON)] {
        [("filters", KerasJSON.int(filters)), ("kernel_size", KerasJSON.ints([kernelSize])), ("strides", KerasJSON.ints([strides])),
         ("padding", .string(padding.rawValue)), ("data_format", Seq1DAxes.format(channelsFirst)),
         ("dilation_rate", KerasJSON.ints([dilation])), ("groups", KerasJSON.int(1)), ("activation", .string(activation.rawValue)),
         ("use_bias", .bool(useBias)), ("kernel_initializer", KerasJSON.glorotUniform), ("bias_initializer", KerasJSON.zeros),
         ("kernel_regularizer", .null), ("bias_regularizer", .null), ("activity_regularizer", .null),
         ("kernel_constraint", .null), ("bias_constraint", .null)]
    }
}

/// A 1-D convolution over the time axis: `activation(conv(x, kernel) + bias)` (Keras'
/// `Conv1D`). Input (batch, steps, channels), or (batch, channels, steps) with
/// `channelsFirst`. Like Keras 3, it passes no mask on.
///
///     let y = Conv1D(16, kernelSize: 3, padding: .causal, dilationRate: 2, activation: .relu)(x)
public final class Conv1D: Layer {
    private var conv: Conv1DKind { kind as! Conv1DKind }
    public var filters: Int { conv.filters }
    public var kernelSize: Int { conv.kernelSize }
    public var strides: Int { conv.strides }
    public var padding: Conv1DPadding { conv.padding }
    public var dilationRate: Int { conv.dilation }
    public var activation: Activation { conv.activation }
    public var useBias: Bool { conv.useBias }

    /// - Parameters:
    ///   - filters: the number of output channels.
    ///   - kernelSize: the window length in steps.
    ///   - strides: the step of the window (default 1; not with a dilation above 1).
    ///   - padding: `.valid` (default), `.same` (output = ceil(steps / strides)) or `.causal`.
    ///   - dilationRate: the spacing of the kernel's taps (default 1).
    ///   - activation: applied to the output (default `.linear`).
    ///   - useBias: whether to add a bias per filter.
    ///   - channelsFirst: input and output are (batch, channels, steps) (Keras' data_format).
    ///   - name: the layer name (default `conv1d`, `conv1d_1`, ...).
    public init(_ filters: Int, kernelSize: Int, strides: Int = 1, padding: Conv1DPadding = .valid, dilationRate: Int = 1,
                activation: Activation = .linear, useBias: Bool = true, channelsFirst: Bool = false, name: String? = nil) {
        super.init(kind: Conv1DKind(filters: filters, kernelSize: kernelSize, strides: strides, padding: padding,
                                    dilation: dilationRate, activation: activation, useBias: useBias, channelsFirst: channelsFirst),
                   name: name)
    }
}
