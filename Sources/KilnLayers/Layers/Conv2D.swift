// Conv2D, and what the 2-D vision layers share: data_format (channels_first inputs are
// transposed to channels_last and back), the 'valid' window check that names the dimension,
// the channels_first teaching refusal, and a convolution with dilation lowered onto the conv2d
// primitive (a dilated kernel is the kernel with zeros between its taps).

import KilnIR
import KilnSupport

// MARK: - Shared by the 2-D layers

/// Keras' `data_format` of a 2-D layer.
public enum DataFormat2D: String, Hashable, Sendable {
    case channelsLast = "channels_last", channelsFirst = "channels_first"

    /// From a Keras config (Keras' default: channels_last).
    init(_ c: KerasConfig) throws {
        self = DataFormat2D(rawValue: try c.choice("data_format", ["channels_last", "channels_first"], "channels_last"))!
    }

    /// (height, width, channels) of a rank-4 input in this format.
    func hwc(_ x: TensorType) -> (h: Dim, w: Dim, c: Dim) {
        self == .channelsLast ? (x.shape[1], x.shape[2], x.shape[3]) : (x.shape[2], x.shape[3], x.shape[1])
    }

    /// The type (batch, h, w, c) written in this format.
    func type(_ batch: Dim, _ h: Int, _ w: Int, _ c: Dim) -> TensorType {
        self == .channelsLast ? .f32([batch, .fixed(h), .fixed(w), c]) : .f32([batch, c, .fixed(h), .fixed(w)])
    }

    /// The input as channels_last.
    func toLast(_ b: inout PrimBuilder, _ x: Value) throws -> Value {
        self == .channelsLast ? x : try b.p(.transpose([0, 2, 3, 1]), x)
    }

    /// A channels_last result back in this format.
    func fromLast(_ b: inout PrimBuilder, _ y: Value) throws -> Value {
        self == .channelsLast ? y : try b.p(.transpose([0, 3, 1, 2]), y)
    }

    var json: JSON { .string(rawValue) }
    /// The printed suffix: nothing for the default.
    var printed: String { self == .channelsLast ? "" : ", channels_first" }
}

extension KerasConfig {
    func padding() throws -> Padding {
        Padding(rawValue: try choice("padding", ["valid", "same"], "valid"))!
    }
}

/// A rank-4 batched input, or the refusal naming the layer and the shape.
func expectImage(_ x: TensorType, _ layer: String, _ format: DataFormat2D = .channelsLast) throws {
    guard let first = x.shape.first, first.isBatch, !x.shape.dropFirst().contains(where: \.isBatch) else {
        throw ShapeError(layer: layer, "expects a batched input (None, ...), got \(x.kerasDescription)")
    }
    guard x.rank == 4, x.shape.dropFirst().allSatisfy({ $0.fixedValue != nil }) else {
        throw ShapeError(layer: layer, "expects an input of rank 4 (batch included) with fixed sizes, got \(x.kerasDescription)",
                         hint: format == .channelsLast ? "Conv2D and pooling take (batch, height, width, channels)"
                             : "with data_format='channels_first' it takes (batch, channels, height, width)")
    }
}

/// For a 'valid' window (a kernel or a pool) over height h and width w: nil when it fits, else
/// which dimension is smaller than the window, e.g. "its height 2 is smaller than the kernel's 3 rows".
func windowTooBig(h: Int, w: Int, _ window: [Int], _ padding: Padding, _ what: String) -> String? {
    guard padding == .valid else { return nil }
    switch (h < window[0], w < window[1]) {
    case (true, true): return "its height \(h) and width \(w) are smaller than the \(what)'s \(window[0])x\(window[1])"
    case (true, false): return "its height \(h) is smaller than the \(what)'s \(window[0]) rows"
    case (false, true): return "its width \(w) is smaller than the \(what)'s \(window[1]) columns"
    case (false, false): return nil
    }
}

/// The refusal of a channels_last Conv2D input (batch, a, b, c) that looks channels_first.
func channelsFirstRefusal(_ x: TensorType, _ layer: String, _ why: String) -> ShapeError {
    let (a, b, c) = (x.shape[1].factor, x.shape[2].factor, x.shape[3].factor)
    return ShapeError(layer: layer, "input \(x.kerasDescription) looks channels_first (channels, height, width): \(why), "
                      + "but Conv2D is channels_last (batch, height, width, channels) and reads height \(a), width \(b) and \(c) channels",
                      hint: "give the input shape (\(b), \(c), \(a)) and move the channel axis of the data last (numpy.moveaxis), "
                      + "as data_format='channels_last' (Keras' default) reads it; or keep the data and set data_format='channels_first' on the layer")
}

/// The channel count a layer's weights are made for. Lenient: an input that is not an image
/// still gets weights, and the shape rule then refuses it naming the layer.
func channelCount(_ x: TensorType?, _ format: DataFormat2D) -> Int {
    guard let x, x.rank == 4 else { return x?.shape.last?.fixedValue ?? 1 }
    return format.hwc(x).c.fixedValue ?? 1
}

/// A kernel size with dilation: (k - 1) * d + 1, the span of its taps.
func dilatedSize(_ k: [Int], _ d: [Int]) -> [Int] { zip(k, d).map { ($0 - 1) * $1 + 1 } }

/// The output size (height, width) of a window over (h, w), as Keras computes it.
func windowOutput(h: Int, w: Int, window: [Int], strides: [Int], padding: Padding) -> (Int, Int) {
    (Window2D.outSize(h, kernel: window[0], stride: strides[0], padding: padding).out,
     Window2D.outSize(w, kernel: window[1], stride: strides[1], padding: padding).out)
}

extension PrimBuilder {
    /// A kernel (kh, kw, C, F) with d - 1 zeros between its taps along axes 0 and 1:
    /// ((kh - 1) * dh + 1, (kw - 1) * dw + 1, C, F). Reshape, pad and slice, so its gradient is theirs.
    mutating func dilateKernel(_ w: Value, _ dilation: [Int]) throws -> Value {
        var v = w
        for axis in 0..<2 where dilation[axis] > 1 {
            let s = type(v).shape, d = dilation[axis], k = s[axis].factor
            v = try reshape(v, Array(s[..<(axis + 1)]) + [.fixed(1)] + Array(s[(axis + 1)...]))
            v = try p(.pad(axis: axis + 1, before: 0, after: d - 1, value: 0), v)
            var merged = s; merged[axis] = .fixed(k * d)
            v = try reshape(v, merged)
            v = try p(.slice(axis: axis, start: 0, length: (k - 1) * d + 1), v)
        }
        return v
    }

    /// Keras' convolution of a channels_last x (N, H, W, C) with w (kh, kw, C, F): strides,
    /// 'valid' or 'same' padding, dilation.
    mutating func convolve(_ x: Value, _ w: Value, strides: [Int], padding: Padding, dilation: [Int]) throws -> Value {
        let kernel = try dilateKernel(w, dilation)
        let ks = type(kernel).shape.map(\.factor), xs = type(x).shape.map(\.factor)
        let (oh, pt) = Window2D.outSize(xs[1], kernel: ks[0], stride: strides[0], padding: padding)
        let (ow, pl) = Window2D.outSize(xs[2], kernel: ks[1], stride: strides[1], padding: padding)
        let win = Window2D(kh: ks[0], kw: ks[1], sh: strides[0], sw: strides[1], padTop: pt, padLeft: pl)
        return try p(.conv2D(win, outH: oh, outW: ow), x, kernel)
    }
}

/// The shape rule of a convolution: the output of a kernel (kh, kw) with strides and dilation
/// over the input, the 'valid' check naming the dimension.
func convOutput(_ x: TensorType, format: DataFormat2D, kernel: [Int], strides: [Int], dilation: [Int], padding: Padding,
                channels out: Int, layer: String) throws -> TensorType {
    let (h, w, _) = format.hwc(x)
    let span = dilatedSize(kernel, dilation)
    if let short = windowTooBig(h: h.factor, w: w.factor, span, padding, "kernel") {
        let what = dilation == [1, 1] ? "\(kernel[0])x\(kernel[1])" : "\(kernel[0])x\(kernel[1]) (dilated to \(span[0])x\(span[1]))"
        throw ShapeError(layer: layer, "a \(what) '\(padding.rawValue)' convolution does not fit input \(x.kerasDescription): \(short)",
                         hint: "use padding='same', a smaller kernel, or fewer convolutions and poolings before it")
    }
    let (oh, ow) = windowOutput(h: h.factor, w: w.factor, window: span, strides: strides, padding: padding)
    return format.type(x.shape[0], oh, ow, .fixed(out))
}

/// Refuses strides together with dilation, as Keras does.
func checkStridesDilation(_ c: KerasConfig, _ strides: [Int], _ dilation: [Int]) throws {
    if strides.contains(where: { $0 > 1 }) && dilation.contains(where: { $0 > 1 }) {
        throw c.fail("has strides \(strides) and dilation_rate \(dilation); Keras allows strides > 1 only with dilation_rate 1")
    }
}

/// The usual weights' initial keys of a convolution's config (Keras' defaults, nothing regularised).
func convTail(_ activation: Activation, _ useBias: Bool, kernels: [String] = ["kernel"]) -> [(String, JSON)] {
    [("activation", .string(activation.rawValue)), ("use_bias", .bool(useBias))]
        + kernels.map { ("\($0)_initializer", KerasJSON.glorotUniform) }
        + [("bias_initializer", KerasJSON.zeros)]
        + kernels.map { ("\($0)_regularizer", JSON.null) }
        + [("bias_regularizer", .null), ("activity_regularizer", .null)]
        + kernels.map { ("\($0)_constraint", JSON.null) }
        + [("bias_constraint", .null)]
}

// MARK: - Conv2D

/// x (N, H, W, C) [or (N, C, H, W)], kernel (kh, kw, C, F), [bias (F)] -> activation(conv + bias).
public struct Conv2DKind: LayerKind {
    public static let kerasClasses = ["Conv2D", "Convolution2D"]
    public var filters: Int
    public var kernel: [Int]
    public var strides: [Int]
    public var padding: Padding
    public var dilation: [Int]
    public var format: DataFormat2D
    public var activation: Activation
    public var useBias: Bool
    /// Channel groups: group g's filters read only group g's channels.
    public var groups: Int

    public init(filters: Int, kernel: [Int], strides: [Int] = [1, 1], padding: Padding = .valid, dilation: [Int] = [1, 1],
                format: DataFormat2D = .channelsLast, activation: Activation = .linear, useBias: Bool = true, groups: Int = 1) {
        self.filters = filters; self.kernel = kernel; self.strides = strides; self.padding = padding
        self.dilation = dilation; self.format = format; self.activation = activation; self.useBias = useBias; self.groups = groups
    }

    public init(keras c: KerasConfig) throws {
        let strides = try c.sizes("strides", count: 2, [1, 1]), dilation = try c.sizes("dilation_rate", count: 2, [1, 1])
        try checkStridesDilation(c, strides, dilation)
        let filters = try c.positive("filters"), groups = try c.positive("groups", 1)
        guard filters % groups == 0 else { throw c.fail("has filters=\(filters), which groups=\(groups) does not divide, as Keras requires") }
        self.init(filters: filters, kernel: try c.sizes("kernel_size", count: 2), strides: strides,
                  padding: try c.padding(), dilation: dilation, format: try DataFormat2D(c), activation: try c.activation(),
                  useBias: try c.bool("use_bias", true), groups: groups)
    }

    public var description: String {
        "conv2d<filters=\(filters), kernel=\(kernel), strides=\(strides), \(padding.rawValue), \(activation.rawValue)"
            + (dilation == [1, 1] ? "" : ", dilation=\(dilation)") + (groups == 1 ? "" : ", groups=\(groups)") + format.printed + (useBias ? "" : ", no_bias") + ">"
    }

    func checkSettings(_ layer: String) throws {
        guard filters >= 1 else { throw ShapeError(layer: layer, "filters=\(filters) must be positive") }
        guard groups >= 1, filters % groups == 0 else { throw ShapeError(layer: layer, "groups=\(groups) must be positive and divide filters=\(filters)") }
        for (name, v) in [("kernel size", kernel), ("strides", strides), ("dilation rate", dilation)] {
            guard v.count == 2, v.allSatisfy({ $0 >= 1 }) else { throw ShapeError(layer: layer, "\(name) \(v) must be two positive integers") }
        }
    }

    public func weights(for inputs: [TensorType]) throws -> [LayerWeight] {
        let c = channelCount(inputs.first, format)
        return [LayerWeight("kernel", kernel + [max(c / max(groups, 1), 1), filters])] + (useBias ? [LayerWeight("bias", [filters], .zeros)] : [])
    }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try checkSettings(layer)
        guard let x = ins.first else { throw ShapeError(layer: layer, "has no input") }
        try expectArity(ins, useBias ? 3...3 : 2...2, layer)
        try expectImage(x, layer, format)
        let (h, _, c) = format.hwc(x)
        guard c.factor % groups == 0 else {
            throw ShapeError(layer: layer, "input \(x.kerasDescription) has \(c.factor) channels, which groups=\(groups) does not divide",
                             hint: "the channels are split into \(groups) equal groups")
        }
        let k = ins[1]
        if k.shape != [.fixed(kernel[0]), .fixed(kernel[1]), .fixed(c.factor / groups), .fixed(filters)] {
            // Weights made for as many channels as axis 1 holds: the input is channels_first.
            if format == .channelsLast, k.rank == 4, k.shape[2].fixedValue == x.shape[1].fixedValue, k.shape[2] != c {
                let n = k.shape[2].factor
                throw channelsFirstRefusal(x, layer, "its kernel \(k.kerasDescription) takes \(n) input channel\(n == 1 ? "" : "s"), the size of axis 1")
            }
            throw ShapeError(layer: layer, "kernel of shape \(k.kerasDescription) does not fit input \(x.kerasDescription)",
                             hint: "expected kernel (\(kernel[0]), \(kernel[1]), \(c.factor / groups), \(filters))")
        }
        if useBias, ins[2].shape != [.fixed(filters)] {
            throw ShapeError(layer: layer, "bias of shape \(ins[2].kerasDescription) does not fit \(filters) filters")
        }
        do {
            return [try convOutput(x, format: format, kernel: kernel, strides: strides, dilation: dilation, padding: padding,
                                   channels: filters, layer: layer)]
        } catch let e as ShapeError {
            // A height of a few rows before two image-sized axes may be channels written first.
            let (hh, w, cc) = (h.factor, x.shape[2].factor, x.shape[3].factor)
            guard format == .channelsLast, hh < dilatedSize(kernel, dilation)[0], hh <= 4, w >= 8, cc >= 8 else { throw e }
            throw ShapeError(layer: e.layer, e.message,
                             hint: "if the input is channels_first (\(hh) channel\(hh == 1 ? "" : "s") of \(w)x\(cc)), give it as (\(w), \(cc), \(hh)) "
                             + "and move the channel axis of the data last (numpy.moveaxis), as data_format='channels_last' (Keras' default) reads it, "
                             + "or set data_format='channels_first' on the layers; otherwise " + (e.hint ?? ""))
        }
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let x = try format.toLast(&b, ins[0])
        let w = groups == 1 ? ins[1] : try b.groupedKernel(ins[1], groups: groups)
        var y = try b.convolve(x, w, strides: strides, padding: padding, dilation: dilation)
        if useBias { y = try b.add(y, ins[2]) }
        return [try format.fromLast(&b, try b.activation(activation, y))]
    }

    public func kerasConfig() -> [(String, JSON)] {
        [("filters", KerasJSON.int(filters)), ("kernel_size", KerasJSON.ints(kernel)), ("strides", KerasJSON.ints(strides)),
         ("padding", .string(padding.rawValue)), ("data_format", format.json), ("dilation_rate", KerasJSON.ints(dilation)),
         ("groups", KerasJSON.int(groups))] + convTail(activation, useBias)
    }
}

/// A 2-D convolution: `activation(conv(x, kernel) + bias)` (Keras' `Conv2D`).
///
///     let y = Conv2D(16, kernelSize: 3, padding: .same, activation: .relu)(x)
public final class Conv2D: Layer {
    var conv: Conv2DKind { kind as! Conv2DKind }
    public var filters: Int { conv.filters }
    public var kernelSize: Size2D { Size2D(conv.kernel[0], conv.kernel[1]) }
    public var strides: Size2D { Size2D(conv.strides[0], conv.strides[1]) }
    public var padding: Padding { conv.padding }
    public var dilationRate: Size2D { Size2D(conv.dilation[0], conv.dilation[1]) }
    public var dataFormat: DataFormat2D { conv.format }
    public var activation: KilnIR.Activation { conv.activation }
    public var useBias: Bool { conv.useBias }
    public var groups: Int { conv.groups }

    /// - Parameters:
    ///   - filters: the number of output channels.
    ///   - kernelSize: the window, `3` or `[3, 2]` (height, width).
    ///   - strides: the step of the window (default 1).
    ///   - padding: `.valid` (no padding, default) or `.same` (output = ceil(input / stride)).
    ///   - dilationRate: the spacing of the kernel's taps (default 1; Keras allows > 1 only with strides 1).
    ///   - dataFormat: `.channelsLast` (N, H, W, C; default) or `.channelsFirst` (N, C, H, W).
    ///   - groups: channel groups (default 1); each group of filters reads only its group of channels.
    ///   - activation: applied to the output (default `.linear`, none).
    ///   - useBias: whether to add a bias per filter.
    ///   - name: the layer name (default `conv2d`, `conv2d_1`, ...).
    public init(_ filters: Int, kernelSize: Size2D, strides: Size2D = 1, padding: Padding = .valid, dilationRate: Size2D = 1,
                dataFormat: DataFormat2D = .channelsLast, groups: Int = 1, activation: KilnIR.Activation = .linear, useBias: Bool = true,
                name: String? = nil) {
        super.init(kind: Conv2DKind(filters: filters, kernel: kernelSize.list, strides: strides.list, padding: padding,
                                    dilation: dilationRate.list, format: dataFormat, activation: activation, useBias: useBias, groups: groups),
                   name: name)
    }
}
