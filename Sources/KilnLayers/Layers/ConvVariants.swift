// DepthwiseConv2D, SeparableConv2D and Conv2DTranspose. The depthwise convolution is a sum
// over the kernel's taps of shifted slices of the input times the tap's weights; the
// transposed one is the conv2d_grad_input primitive, the adjoint of a convolution, with
// Keras' output size and padding. (Conv2D's groups, in Conv2D.swift, use groupedKernel here.)

import KilnIR
import KilnSupport

extension PrimBuilder {
    /// Keras' depthwise convolution of a channels_last x (N, H, W, C) with w (kh, kw, C, M): output
    /// channel c * M + m is the sum over the taps (i, j) of x shifted by the tap times w[i, j, c, m].
    /// Each tap is a slice of the zero-padded input (strides by a reshape that keeps every s-th
    /// row), so the work is that of the depthwise sum itself, and its gradient is the slices'.
    mutating func depthwiseConvolve(_ x: Value, _ w: Value, strides: [Int], padding: Padding, dilation: [Int]) throws -> Value {
        let xs = type(x).shape, ws = type(w).shape.map(\.factor)
        let (kh, kw, c, m) = (ws[0], ws[1], ws[2], ws[3])
        let span = dilatedSize([kh, kw], dilation)
        let (oh, pt) = Window2D.outSize(xs[1].factor, kernel: span[0], stride: strides[0], padding: padding)
        let (ow, pl) = Window2D.outSize(xs[2].factor, kernel: span[1], stride: strides[1], padding: padding)
        // Padded so that every tap's window of out * stride rows (columns) fits.
        var xp = x
        for (axis, before, size, out, k) in [(1, pt, xs[1].factor, oh, 0), (2, pl, xs[2].factor, ow, 1)] {
            let after = max(0, (([kh, kw][k] - 1) * dilation[k] + out * strides[k]) - before - size)
            if before + after > 0 { xp = try p(.pad(axis: axis, before: before, after: after, value: 0), xp) }
        }
        var sum: Value? = nil
        for i in 0..<kh {
            for j in 0..<kw {
                var t = try p(.slice(axis: 1, start: i * dilation[0], length: oh * strides[0]), xp)
                t = try p(.slice(axis: 2, start: j * dilation[1], length: ow * strides[1]), t)
                if strides[0] > 1 {
                    t = try reshape(t, [xs[0], .fixed(oh), .fixed(strides[0]), .fixed(ow * strides[1]), .fixed(c)])
                    t = try reshape(try p(.slice(axis: 2, start: 0, length: 1), t), [xs[0], .fixed(oh), .fixed(ow * strides[1]), .fixed(c)])
                }
                if strides[1] > 1 {
                    t = try reshape(t, [xs[0], .fixed(oh), .fixed(ow), .fixed(strides[1]), .fixed(c)])
                    t = try reshape(try p(.slice(axis: 3, start: 0, length: 1), t), [xs[0], .fixed(oh), .fixed(ow), .fixed(c)])
                }
                let tap = try p(.slice(axis: 1, start: j, length: 1), try p(.slice(axis: 0, start: i, length: 1), w))
                let term: Value
                if m == 1 {
                    term = try mul(t, try reshape(tap, [.fixed(c)]))
                } else {
                    let prod = try mul(try reshape(t, [xs[0], .fixed(oh), .fixed(ow), .fixed(c), .fixed(1)]), try reshape(tap, [.fixed(c), .fixed(m)]))
                    term = try reshape(prod, [xs[0], .fixed(oh), .fixed(ow), .fixed(c * m)])
                }
                sum = try sum.map { try add($0, term) } ?? term
            }
        }
        return sum!
    }
}

extension PrimBuilder {
    /// A grouped kernel (kh, kw, C / g, F) as a full conv2d kernel (kh, kw, C, F): filter f of group
    /// f / (F / g) reads the channels of that group only (zeros elsewhere).
    mutating func groupedKernel(_ w: Value, groups g: Int) throws -> Value {
        let s = type(w).shape.map(\.factor)
        let (cg, fg) = (s[2], s[3] / g)
        let iota = try p(.iota(g))
        let eye = try cast(try compare(.eq, try reshape(iota, [.fixed(g), .fixed(1)]), try reshape(iota, [.fixed(1), .fixed(g)])), .f32)
        // [i, j, group of c, c in group, group of f, f in group] = w[i, j, c in group, f] * (same group).
        let spread = try mul(try reshape(w, [.fixed(s[0]), .fixed(s[1]), .fixed(1), .fixed(cg), .fixed(g), .fixed(fg)]),
                             try reshape(eye, [.fixed(1), .fixed(1), .fixed(g), .fixed(1), .fixed(g), .fixed(1)]))
        return try reshape(spread, [.fixed(s[0]), .fixed(s[1]), .fixed(g * cg), .fixed(s[3])])
    }
}

/// The settings DepthwiseConv2D and SeparableConv2D share.
struct DepthwiseSettings: Hashable, Sendable {
    var kernel: [Int]
    var strides: [Int]
    var padding: Padding
    var dilation: [Int]
    var format: DataFormat2D
    var multiplier: Int

    init(kernel: [Int], strides: [Int], padding: Padding, dilation: [Int], format: DataFormat2D, multiplier: Int) {
        self.kernel = kernel; self.strides = strides; self.padding = padding; self.dilation = dilation
        self.format = format; self.multiplier = multiplier
    }

    init(_ c: KerasConfig) throws {
        let strides = try c.sizes("strides", count: 2, [1, 1]), dilation = try c.sizes("dilation_rate", count: 2, [1, 1])
        try checkStridesDilation(c, strides, dilation)
        self.init(kernel: try c.sizes("kernel_size", count: 2), strides: strides, padding: try c.padding(), dilation: dilation,
                  format: try DataFormat2D(c), multiplier: try c.positive("depth_multiplier", 1))
    }

    func check(_ layer: String) throws {
        guard multiplier >= 1 else { throw ShapeError(layer: layer, "depth_multiplier=\(multiplier) must be positive") }
        for (name, v) in [("kernel size", kernel), ("strides", strides), ("dilation rate", dilation)] {
            guard v.count == 2, v.allSatisfy({ $0 >= 1 }) else { throw ShapeError(layer: layer, "\(name) \(v) must be two positive integers") }
        }
    }

    /// The input's channel count, after checking it is an image.
    func channels(_ x: TensorType?, _ layer: String) throws -> Int {
        try check(layer)
        guard let x else { throw ShapeError(layer: layer, "has no input") }
        try expectImage(x, layer, format)
        return format.hwc(x).c.factor
    }

    func expectWeight(_ t: TensorType, _ name: String, _ shape: [Int], _ x: TensorType, _ layer: String) throws {
        guard t.shape == shape.map({ .fixed($0) }) else {
            throw ShapeError(layer: layer, "\(name) of shape \(t.kerasDescription) does not fit input \(x.kerasDescription)",
                             hint: "expected \(name) \(formatShape(shape))")
        }
    }

    /// The depthwise part's output (channels C * M).
    func output(_ x: TensorType, channels: Int, _ layer: String) throws -> TensorType {
        try convOutput(x, format: format, kernel: kernel, strides: strides, dilation: dilation, padding: padding, channels: channels, layer: layer)
    }

    /// The depthwise convolution of a channels_last x.
    func depthwise(_ b: inout PrimBuilder, _ x: Value, _ w: Value) throws -> Value {
        try b.depthwiseConvolve(x, w, strides: strides, padding: padding, dilation: dilation)
    }

    var printed: String {
        "kernel=\(kernel), strides=\(strides), \(padding.rawValue)" + (dilation == [1, 1] ? "" : ", dilation=\(dilation)")
            + ", depth_multiplier=\(multiplier)" + format.printed
    }

    var config: [(String, JSON)] {
        [("kernel_size", KerasJSON.ints(kernel)), ("strides", KerasJSON.ints(strides)), ("padding", .string(padding.rawValue)),
         ("data_format", format.json), ("dilation_rate", KerasJSON.ints(dilation)), ("depth_multiplier", KerasJSON.int(multiplier))]
    }
}

// MARK: - DepthwiseConv2D

/// x (N, H, W, C), kernel (kh, kw, C, M), [bias (C * M)] -> (N, OH, OW, C * M): each channel
/// convolved with its own M filters.
public struct DepthwiseConv2DKind: LayerKind {
    public static let kerasClasses = ["DepthwiseConv2D"]
    var s: DepthwiseSettings
    public var activation: Activation
    public var useBias: Bool

    public init(kernel: [Int], strides: [Int] = [1, 1], padding: Padding = .valid, dilation: [Int] = [1, 1], depthMultiplier: Int = 1,
                format: DataFormat2D = .channelsLast, activation: Activation = .linear, useBias: Bool = true) {
        s = DepthwiseSettings(kernel: kernel, strides: strides, padding: padding, dilation: dilation, format: format, multiplier: depthMultiplier)
        self.activation = activation; self.useBias = useBias
    }

    public init(keras c: KerasConfig) throws {
        s = try DepthwiseSettings(c)
        activation = try c.activation(); useBias = try c.bool("use_bias", true)
    }

    public var description: String {
        "depthwise_conv2d<\(s.printed), \(activation.rawValue)\(useBias ? "" : ", no_bias")>"
    }

    public func weights(for inputs: [TensorType]) throws -> [LayerWeight] {
        let c = channelCount(inputs.first, s.format)
        return [LayerWeight("kernel", s.kernel + [c, s.multiplier])] + (useBias ? [LayerWeight("bias", [c * s.multiplier], .zeros)] : [])
    }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        let c = try s.channels(ins.first, layer)
        try expectArity(ins, useBias ? 3...3 : 2...2, layer)
        try s.expectWeight(ins[1], "kernel", s.kernel + [c, s.multiplier], ins[0], layer)
        if useBias { try s.expectWeight(ins[2], "bias", [c * s.multiplier], ins[0], layer) }
        return [try s.output(ins[0], channels: c * s.multiplier, layer)]
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        var y = try s.depthwise(&b, try s.format.toLast(&b, ins[0]), ins[1])
        if useBias { y = try b.add(y, ins[2]) }
        return [try s.format.fromLast(&b, try b.activation(activation, y))]
    }

    public func kerasConfig() -> [(String, JSON)] {
        s.config + [("activation", .string(activation.rawValue)), ("use_bias", .bool(useBias)),
                    ("depthwise_initializer", KerasJSON.glorotUniform), ("bias_initializer", KerasJSON.zeros),
                    ("depthwise_regularizer", .null), ("bias_regularizer", .null), ("activity_regularizer", .null),
                    ("depthwise_constraint", .null), ("bias_constraint", .null)]
    }
}

/// Each input channel convolved with its own `depthMultiplier` filters (Keras' `DepthwiseConv2D`).
///
///     let y = DepthwiseConv2D(kernelSize: 3, depthMultiplier: 2, padding: .same)(x)   // C -> 2C channels
public final class DepthwiseConv2D: Layer {
    /// - Parameters:
    ///   - kernelSize: the window, `3` or `[3, 2]`.
    ///   - strides: the step of the window (default 1).
    ///   - padding: `.valid` (default) or `.same`.
    ///   - depthMultiplier: output channels per input channel (default 1).
    ///   - dilationRate: the spacing of the kernel's taps (default 1).
    ///   - dataFormat: `.channelsLast` (default) or `.channelsFirst`.
    ///   - activation: applied to the output (default `.linear`).
    ///   - useBias: whether to add a bias per output channel.
    ///   - name: the layer name (default `depthwise_conv2d`, ...).
    public init(kernelSize: Size2D, strides: Size2D = 1, padding: Padding = .valid, depthMultiplier: Int = 1, dilationRate: Size2D = 1,
                dataFormat: DataFormat2D = .channelsLast, activation: KilnIR.Activation = .linear, useBias: Bool = true, name: String? = nil) {
        super.init(kind: DepthwiseConv2DKind(kernel: kernelSize.list, strides: strides.list, padding: padding, dilation: dilationRate.list,
                                             depthMultiplier: depthMultiplier, format: dataFormat, activation: activation, useBias: useBias),
                   name: name)
    }
}

// MARK: - SeparableConv2D

/// A depthwise convolution, then a 1x1 convolution to `filters` channels: depthwise_kernel
/// (kh, kw, C, M), pointwise_kernel (1, 1, C * M, F), [bias (F)].
public struct SeparableConv2DKind: LayerKind {
    public static let kerasClasses = ["SeparableConv2D", "SeparableConvolution2D"]
    var s: DepthwiseSettings
    public var filters: Int
    public var activation: Activation
    public var useBias: Bool

    public init(filters: Int, kernel: [Int], strides: [Int] = [1, 1], padding: Padding = .valid, dilation: [Int] = [1, 1],
                depthMultiplier: Int = 1, format: DataFormat2D = .channelsLast, activation: Activation = .linear, useBias: Bool = true) {
        s = DepthwiseSettings(kernel: kernel, strides: strides, padding: padding, dilation: dilation, format: format, multiplier: depthMultiplier)
        self.filters = filters; self.activation = activation; self.useBias = useBias
    }

    public init(keras c: KerasConfig) throws {
        s = try DepthwiseSettings(c)
        filters = try c.positive("filters"); activation = try c.activation(); useBias = try c.bool("use_bias", true)
    }

    public var description: String {
        "separable_conv2d<filters=\(filters), \(s.printed), \(activation.rawValue)\(useBias ? "" : ", no_bias")>"
    }

    public func weights(for inputs: [TensorType]) throws -> [LayerWeight] {
        let c = channelCount(inputs.first, s.format)
        return [LayerWeight("depthwise_kernel", s.kernel + [c, s.multiplier]), LayerWeight("pointwise_kernel", [1, 1, c * s.multiplier, filters])]
            + (useBias ? [LayerWeight("bias", [filters], .zeros)] : [])
    }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        guard filters >= 1 else { throw ShapeError(layer: layer, "filters=\(filters) must be positive") }
        let c = try s.channels(ins.first, layer)
        try expectArity(ins, useBias ? 4...4 : 3...3, layer)
        try s.expectWeight(ins[1], "depthwise kernel", s.kernel + [c, s.multiplier], ins[0], layer)
        try s.expectWeight(ins[2], "pointwise kernel", [1, 1, c * s.multiplier, filters], ins[0], layer)
        if useBias { try s.expectWeight(ins[3], "bias", [filters], ins[0], layer) }
        return [try s.output(ins[0], channels: filters, layer)]
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let d = try s.depthwise(&b, try s.format.toLast(&b, ins[0]), ins[1])
        var y = try b.convolve(d, ins[2], strides: [1, 1], padding: .valid, dilation: [1, 1])
        if useBias { y = try b.add(y, ins[3]) }
        return [try s.format.fromLast(&b, try b.activation(activation, y))]
    }

    public func kerasConfig() -> [(String, JSON)] {
        [("filters", KerasJSON.int(filters))] + s.config
            + [("activation", .string(activation.rawValue)), ("use_bias", .bool(useBias)),
               ("depthwise_initializer", KerasJSON.glorotUniform), ("pointwise_initializer", KerasJSON.glorotUniform),
               ("bias_initializer", KerasJSON.zeros), ("depthwise_regularizer", .null), ("pointwise_regularizer", .null),
               ("bias_regularizer", .null), ("activity_regularizer", .null), ("depthwise_constraint", .null),
               ("pointwise_constraint", .null), ("bias_constraint", .null)]
    }
}

/// A depthwise convolution followed by a 1x1 convolution (Keras' `SeparableConv2D`).
///
///     let y = SeparableConv2D(16, kernelSize: 3, padding: .same, activation: .relu)(x)
public final class SeparableConv2D: Layer {
    /// - Parameters:
    ///   - filters: the number of output channels.
    ///   - kernelSize: the depthwise window, `3` or `[3, 2]`.
    ///   - strides: the step of the depthwise window (default 1).
    ///   - padding: `.valid` (default) or `.same`.
    ///   - depthMultiplier: depthwise output channels per input channel (default 1).
    ///   - dilationRate: the spacing of the depthwise kernel's taps (default 1).
    ///   - dataFormat: `.channelsLast` (default) or `.channelsFirst`.
    ///   - activation: applied to the output (default `.linear`).
    ///   - useBias: whether to add a bias per filter.
    ///   - name: the layer name (default `separable_conv2d`, ...).
    public init(_ filters: Int, kernelSize: Size2D, strides: Size2D = 1, padding: Padding = .valid, depthMultiplier: Int = 1,
                dilationRate: Size2D = 1, dataFormat: DataFormat2D = .channelsLast, activation: KilnIR.Activation = .linear,
                useBias: Bool = true, name: String? = nil) {
        super.init(kind: SeparableConv2DKind(filters: filters, kernel: kernelSize.list, strides: strides.list, padding: padding,
                                             dilation: dilationRate.list, depthMultiplier: depthMultiplier, format: dataFormat,
                                             activation: activation, useBias: useBias), name: name)
    }
}

// MARK: - Conv2DTranspose

/// x (N, h, w, C), kernel (kh, kw, F, C), [bias (F)] -> (N, H, W, F), the adjoint of a convolution
/// from (H, W), with Keras' output size: without output_padding H = h * s ('same') or
/// (h - 1) * s + max(k, s) ('valid'); with it (h - 1) * s + k - 2 * pad + output_padding, where
/// pad is k / 2 for 'same' and 0 for 'valid' (k the dilated kernel's span).
public struct Conv2DTransposeKind: LayerKind {
    public static let kerasClasses = ["Conv2DTranspose", "Convolution2DTranspose"]
    public var filters: Int
    public var kernel: [Int]
    public var strides: [Int]
    public var padding: Padding
    /// Keras' output_padding (nil: None, the size is inferred).
    public var outputPadding: [Int]?
    public var dilation: [Int]
    public var format: DataFormat2D
    public var activation: Activation
    public var useBias: Bool

    public init(filters: Int, kernel: [Int], strides: [Int] = [1, 1], padding: Padding = .valid, outputPadding: [Int]? = nil,
                dilation: [Int] = [1, 1], format: DataFormat2D = .channelsLast, activation: Activation = .linear, useBias: Bool = true) {
        self.filters = filters; self.kernel = kernel; self.strides = strides; self.padding = padding; self.outputPadding = outputPadding
        self.dilation = dilation; self.format = format; self.activation = activation; self.useBias = useBias
    }

    public init(keras c: KerasConfig) throws {
        let strides = try c.sizes("strides", count: 2, [1, 1]), dilation = try c.sizes("dilation_rate", count: 2, [1, 1])
        try checkStridesDilation(c, strides, dilation)
        let outputPadding = c.isAbsent("output_padding") ? nil : try c.sizes("output_padding", count: 2, minimum: 0)
        if let op = outputPadding, zip(op, strides).contains(where: { $0 >= $1 }) {
            throw c.fail("has output_padding \(op) and strides \(strides); Keras needs each output padding below its stride")
        }
        self.init(filters: try c.positive("filters"), kernel: try c.sizes("kernel_size", count: 2), strides: strides,
                  padding: try c.padding(), outputPadding: outputPadding, dilation: dilation, format: try DataFormat2D(c),
                  activation: try c.activation(), useBias: try c.bool("use_bias", true))
    }

    public var description: String {
        "conv2d_transpose<filters=\(filters), kernel=\(kernel), strides=\(strides), \(padding.rawValue), \(activation.rawValue)"
            + (outputPadding.map { ", output_padding=\($0)" } ?? "") + (dilation == [1, 1] ? "" : ", dilation=\(dilation)")
            + format.printed + (useBias ? "" : ", no_bias") + ">"
    }

    /// Keras' output length along one axis, and the leading pad of the convolution it is the adjoint
    /// of (k: the dilated kernel's span; as Keras' JAX backend pads the stride-dilated input).
    public static func geometry(_ input: Int, kernel k: Int, stride s: Int, _ padding: Padding, outputPadding: Int? = nil) -> (out: Int, padBefore: Int) {
        switch (padding, outputPadding) {
        case (.valid, nil): return ((input - 1) * s + max(k, s), 0)
        case (.same, nil): return (input * s, k - 1 - min((s + k - 2 + 1) / 2, k - 1))
        case (.valid, let op?): return ((input - 1) * s + k + op, 0)
        case (.same, let op?):
            let total = k + k % 2 - 2 + op
            return ((input - 1) * s + k % 2 + op, k - 1 - min((total + 1) / 2, k - 1))
        }
    }

    func check(_ layer: String) throws {
        guard filters >= 1 else { throw ShapeError(layer: layer, "filters=\(filters) must be positive") }
        for (name, v) in [("kernel size", kernel), ("strides", strides), ("dilation rate", dilation)] {
            guard v.count == 2, v.allSatisfy({ $0 >= 1 }) else { throw ShapeError(layer: layer, "\(name) \(v) must be two positive integers") }
        }
    }

    /// Output size and leading pad along axis 0 (height) or 1 (width) for an input size.
    func geometry(_ axis: Int, _ input: Int) -> (out: Int, padBefore: Int) {
        Self.geometry(input, kernel: dilatedSize(kernel, dilation)[axis], stride: strides[axis], padding, outputPadding: outputPadding?[axis])
    }

    public func weights(for inputs: [TensorType]) throws -> [LayerWeight] {
        [LayerWeight("kernel", kernel + [filters, channelCount(inputs.first, format)])] + (useBias ? [LayerWeight("bias", [filters], .zeros)] : [])
    }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try check(layer)
        guard let x = ins.first else { throw ShapeError(layer: layer, "has no input") }
        try expectArity(ins, useBias ? 3...3 : 2...2, layer)
        try expectImage(x, layer, format)
        let (h, w, c) = format.hwc(x)
        let want = kernel + [filters, c.factor]
        guard ins[1].shape == want.map({ .fixed($0) }) else {
            throw ShapeError(layer: layer, "kernel of shape \(ins[1].kerasDescription) does not fit input \(x.kerasDescription)",
                             hint: "expected kernel \(formatShape(want)) (height, width, filters, input channels)")
        }
        if useBias, ins[2].shape != [.fixed(filters)] {
            throw ShapeError(layer: layer, "bias of shape \(ins[2].kerasDescription) does not fit \(filters) filters")
        }
        let (oh, ow) = (geometry(0, h.factor).out, geometry(1, w.factor).out)
        guard oh >= 1, ow >= 1 else {
            throw ShapeError(layer: layer, "gives no output for input \(x.kerasDescription): the output would be \(oh)x\(ow)")
        }
        return [format.type(x.shape[0], oh, ow, .fixed(filters))]
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let x = try format.toLast(&b, ins[0])
        let xs = b.type(x).shape.map(\.factor)
        let (oh, pt) = geometry(0, xs[1]), (ow, pl) = geometry(1, xs[2])
        let span = dilatedSize(kernel, dilation)
        let win = Window2D(kh: span[0], kw: span[1], sh: strides[0], sw: strides[1], padTop: pt, padLeft: pl)
        var y = try b.p(.conv2DGradInput(win, inH: oh, inW: ow), x, try b.dilateKernel(ins[1], dilation))
        if useBias { y = try b.add(y, ins[2]) }
        return [try format.fromLast(&b, try b.activation(activation, y))]
    }

    public func kerasConfig() -> [(String, JSON)] {
        [("filters", KerasJSON.int(filters)), ("kernel_size", KerasJSON.ints(kernel)), ("strides", KerasJSON.ints(strides)),
         ("padding", .string(padding.rawValue)), ("output_padding", outputPadding.map(KerasJSON.ints) ?? .null),
         ("data_format", format.json), ("dilation_rate", KerasJSON.ints(dilation))] + convTail(activation, useBias)
    }
}

/// The transposed convolution, which upsamples by its strides (Keras' `Conv2DTranspose`).
///
///     let y = Conv2DTranspose(8, kernelSize: 3, strides: 2, padding: .same)(x)   // (7, 7, C) -> (14, 14, 8)
public final class Conv2DTranspose: Layer {
    /// - Parameters:
    ///   - filters: the number of output channels.
    ///   - kernelSize: the window, `3` or `[3, 2]`.
    ///   - strides: the upsampling factor (default 1).
    ///   - padding: `.valid` (default) or `.same` (output = input * stride).
    ///   - outputPadding: extra rows and columns at the end (each below its stride), or nil (default)
    ///     for Keras' inferred size.
    ///   - dilationRate: the spacing of the kernel's taps (default 1; Keras allows > 1 only with strides 1).
    ///   - dataFormat: `.channelsLast` (default) or `.channelsFirst`.
    ///   - activation: applied to the output (default `.linear`).
    ///   - useBias: whether to add a bias per filter.
    ///   - name: the layer name (default `conv2d_transpose`, ...).
    public init(_ filters: Int, kernelSize: Size2D, strides: Size2D = 1, padding: Padding = .valid, outputPadding: Size2D? = nil,
                dilationRate: Size2D = 1, dataFormat: DataFormat2D = .channelsLast, activation: KilnIR.Activation = .linear,
                useBias: Bool = true, name: String? = nil) {
        super.init(kind: Conv2DTransposeKind(filters: filters, kernel: kernelSize.list, strides: strides.list, padding: padding,
                                             outputPadding: outputPadding?.list, dilation: dilationRate.list, format: dataFormat,
                                             activation: activation, useBias: useBias), name: name)
    }
}
