// Cropping2D, ZeroPadding2D and UpSampling2D: slices, pads and a broadcast over the
// height and width axes (axes 1, 2 channels_last; 2, 3 channels_first).

import KilnIR
import KilnSupport

/// ((top, bottom), (left, right)) from a Keras config: an integer for all four, two integers
/// (height, width) for both sides, or two pairs.
func sides2D(_ c: KerasConfig, _ key: String, _ fallback: Int) throws -> [Int] {
    let raw = c[key]
    var v: [Int]?
    if c.isAbsent(key) { v = [fallback, fallback, fallback, fallback] }
    else if let one = raw?.int { v = [one, one, one, one] }
    else if let two = raw?.ints, two.count == 2 { v = [two[0], two[0], two[1], two[1]] }
    else if let pairs = raw?.array, pairs.count == 2, let a = pairs[0].ints ?? pairs[0].int.map({ [$0, $0] }),
            let b = pairs[1].ints ?? pairs[1].int.map({ [$0, $0] }), a.count == 2, b.count == 2 { v = a + b }
    guard let v, v.allSatisfy({ $0 >= 0 }) else {
        throw c.fail("has \(key) \(raw?.serialized ?? "null"); expected an integer, two integers or two pairs of integers >= 0")
    }
    return v
}

/// The height and width axes of a rank-4 input.
func spatialAxes(_ f: DataFormat2D) -> (Int, Int) { f == .channelsLast ? (1, 2) : (2, 3) }

// MARK: - Cropping2D

/// (N, H, W, C) -> (N, H - top - bottom, W - left - right, C).
public struct Cropping2DKind: LayerKind {
    public static let kerasClasses = ["Cropping2D"]
    /// top, bottom, left, right.
    public var crop: [Int]
    public var format: DataFormat2D

    public init(top: Int, bottom: Int, left: Int, right: Int, format: DataFormat2D = .channelsLast) {
        crop = [top, bottom, left, right]; self.format = format
    }

    public init(keras c: KerasConfig) throws {
        let v = try sides2D(c, "cropping", 0)
        self.init(top: v[0], bottom: v[1], left: v[2], right: v[3], format: try DataFormat2D(c))
    }

    public var description: String { "cropping2d<(\(crop[0]), \(crop[1])), (\(crop[2]), \(crop[3]))\(format.printed)>" }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 1...1, layer)
        let x = ins[0]
        guard crop.count == 4, crop.allSatisfy({ $0 >= 0 }) else { throw ShapeError(layer: layer, "cropping \(crop) must be four integers >= 0") }
        try expectImage(x, layer, format)
        let (h, w, c) = format.hwc(x)
        let (oh, ow) = (h.factor - crop[0] - crop[1], w.factor - crop[2] - crop[3])
        guard oh >= 1, ow >= 1 else {
            throw ShapeError(layer: layer, "cropping ((\(crop[0]), \(crop[1])), (\(crop[2]), \(crop[3]))) does not leave anything of input \(x.kerasDescription): "
                             + "the output \(format.type(x.shape[0], oh, ow, c).kerasDescription) would be empty",
                             hint: "crop at most \(h.factor - 1) rows and \(w.factor - 1) columns in total")
        }
        return [format.type(x.shape[0], oh, ow, c)]
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        var y = ins[0]
        let (ah, aw) = spatialAxes(format)
        for (axis, before, after) in [(ah, crop[0], crop[1]), (aw, crop[2], crop[3])] where before + after > 0 {
            let size = b.type(y).shape[axis].factor
            y = try b.p(.slice(axis: axis, start: before, length: size - before - after), y)
        }
        return [y]
    }

    public func kerasConfig() -> [(String, JSON)] {
        [("cropping", .array([KerasJSON.ints([crop[0], crop[1]]), KerasJSON.ints([crop[2], crop[3]])])), ("data_format", format.json)]
    }
}

/// Drops rows and columns at the edges of an image (Keras' `Cropping2D`).
///
///     let y = Cropping2D(cropping: ((1, 1), (2, 0)))(x)
public final class Cropping2D: Layer {
    /// - Parameters:
    ///   - cropping: rows dropped at the top and bottom, columns at the left and right.
    ///   - dataFormat: `.channelsLast` (default) or `.channelsFirst`.
    ///   - name: the layer name (default `cropping2d`, ...).
    public init(cropping: ((Int, Int), (Int, Int)) = ((0, 0), (0, 0)), dataFormat: DataFormat2D = .channelsLast, name: String? = nil) {
        super.init(kind: Cropping2DKind(top: cropping.0.0, bottom: cropping.0.1, left: cropping.1.0, right: cropping.1.1, format: dataFormat),
                   name: name)
    }
}

// MARK: - ZeroPadding2D

/// (N, H, W, C) -> (N, H + top + bottom, W + left + right, C), zeros around.
public struct ZeroPadding2DKind: LayerKind {
    public static let kerasClasses = ["ZeroPadding2D"]
    /// top, bottom, left, right.
    public var pad: [Int]
    public var format: DataFormat2D

    public init(top: Int, bottom: Int, left: Int, right: Int, format: DataFormat2D = .channelsLast) {
        pad = [top, bottom, left, right]; self.format = format
    }

    public init(keras c: KerasConfig) throws {
        let v = try sides2D(c, "padding", 1)
        self.init(top: v[0], bottom: v[1], left: v[2], right: v[3], format: try DataFormat2D(c))
    }

    public var description: String { "zero_padding2d<(\(pad[0]), \(pad[1])), (\(pad[2]), \(pad[3]))\(format.printed)>" }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 1...1, layer)
        guard pad.count == 4, pad.allSatisfy({ $0 >= 0 }) else { throw ShapeError(layer: layer, "padding \(pad) must be four integers >= 0") }
        let x = ins[0]
        try expectImage(x, layer, format)
        let (h, w, c) = format.hwc(x)
        return [format.type(x.shape[0], h.factor + pad[0] + pad[1], w.factor + pad[2] + pad[3], c)]
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        var y = ins[0]
        let (ah, aw) = spatialAxes(format)
        for (axis, before, after) in [(ah, pad[0], pad[1]), (aw, pad[2], pad[3])] where before + after > 0 {
            y = try b.p(.pad(axis: axis, before: before, after: after, value: 0), y)
        }
        return [y]
    }

    public func kerasConfig() -> [(String, JSON)] {
        [("padding", .array([KerasJSON.ints([pad[0], pad[1]]), KerasJSON.ints([pad[2], pad[3]])])), ("data_format", format.json)]
    }
}

/// Adds rows and columns of zeros around an image (Keras' `ZeroPadding2D`).
///
///     let y = ZeroPadding2D(padding: ((1, 1), (2, 2)))(x)
public final class ZeroPadding2D: Layer {
    /// - Parameters:
    ///   - padding: rows of zeros at the top and bottom, columns at the left and right (default 1 everywhere).
    ///   - dataFormat: `.channelsLast` (default) or `.channelsFirst`.
    ///   - name: the layer name (default `zero_padding2d`, ...).
    public init(padding: ((Int, Int), (Int, Int)) = ((1, 1), (1, 1)), dataFormat: DataFormat2D = .channelsLast, name: String? = nil) {
        super.init(kind: ZeroPadding2DKind(top: padding.0.0, bottom: padding.0.1, left: padding.1.0, right: padding.1.1, format: dataFormat),
                   name: name)
    }
}

// MARK: - UpSampling2D

/// Keras' UpSampling2D interpolations Kiln compiles.
public enum Interpolation2D: String, Hashable, Sendable { case nearest, bilinear }

/// (N, H, W, C) -> (N, H * sh, W * sw, C): 'nearest' repeats each pixel sh x sw times;
/// 'bilinear' interpolates with half-pixel centres, the edges clamped (jax.image.resize, as
/// Keras' JAX backend resizes).
public struct UpSampling2DKind: LayerKind {
    public static let kerasClasses = ["UpSampling2D"]
    public var size: [Int]
    public var format: DataFormat2D
    public var interpolation: Interpolation2D

    public init(size: [Int] = [2, 2], format: DataFormat2D = .channelsLast, interpolation: Interpolation2D = .nearest) {
        self.size = size; self.format = format; self.interpolation = interpolation
    }

    public init(keras c: KerasConfig) throws {
        let raw = try c.string("interpolation", "nearest")
        guard let interpolation = Interpolation2D(rawValue: raw) else {
            throw c.fail("uses interpolation '\(raw)'; Kiln supports 'nearest' and 'bilinear'")
        }
        self.init(size: try c.sizes("size", count: 2, [2, 2]), format: try DataFormat2D(c), interpolation: interpolation)
    }

    public var description: String {
        "up_sampling2d<\(size)\(format.printed)\(interpolation == .nearest ? "" : ", bilinear")>"
    }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 1...1, layer)
        guard size.count == 2, size.allSatisfy({ $0 >= 1 }) else { throw ShapeError(layer: layer, "size \(size) must be two positive integers") }
        let x = ins[0]
        try expectImage(x, layer, format)
        let (h, w, c) = format.hwc(x)
        return [format.type(x.shape[0], h.factor * size[0], w.factor * size[1], c)]
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let (ah, aw) = spatialAxes(format)
        if interpolation == .bilinear {
            let y = try bilinear(&b, ins[0], axis: ah, factor: size[0])
            return [try bilinear(&b, y, axis: aw, factor: size[1])]
        }
        // (.., H, W, ..) -> (.., H, 1, W, 1, ..) -> broadcast (.., H, sh, W, sw, ..) -> (.., H*sh, W*sw, ..).
        let x = ins[0]
        let s = b.type(x).shape
        var split: [Dim] = [], wide: [Dim] = [], out: [Dim] = []
        for (k, d) in s.enumerated() {
            split.append(d); wide.append(d); out.append(d)
            if k == ah || k == aw {
                let f = size[k == ah ? 0 : 1]
                split.append(.fixed(1)); wide.append(.fixed(f)); out[out.count - 1] = .fixed(d.factor * f)
            }
        }
        let y = try b.p(.broadcast(wide), try b.reshape(x, split))
        return [try b.reshape(y, out)]
    }

    /// Linear interpolation along one axis: y[o] = sum_i a[o, i] x[i], where output o samples
    /// x at (o + 0.5) / f - 0.5 clamped to [0, n - 1] and a[o, i] = relu(1 - |that - i|).
    func bilinear(_ b: inout PrimBuilder, _ x: Value, axis: Int, factor f: Int) throws -> Value {
        guard f > 1 else { return x }
        let s = b.type(x).shape
        let n = s[axis].factor
        let at = try b.add(try b.mul(try b.add(try b.p(.iota(n * f)), 0.5), 1 / Float(f)), -0.5)
        let clamped = try b.binary(.min, try b.binary(.max, at, try b.const(0)), try b.const(Float(n - 1)))
        let dist = try b.sub(try b.reshape(clamped, [.fixed(n * f), .fixed(1)]), try b.reshape(try b.p(.iota(n)), [.fixed(1), .fixed(n)]))
        let weights = try b.unary(.relu, try b.add(try b.mul(try b.unary(.abs, dist), -1), 1))
        // x (.., n, ..) as (.., 1, n, ..) times a as (1.., n*f, n, 1..), summed over n.
        let ones = { (k: Int) in [Dim](repeating: .fixed(1), count: k) }
        let xe = try b.reshape(x, Array(s[..<axis]) + [.fixed(1)] + Array(s[axis...]))
        let ae = try b.reshape(weights, ones(axis) + [.fixed(n * f), .fixed(n)] + ones(s.count - axis - 1))
        return try b.reduce(.sum, try b.mul(xe, ae), axes: [axis + 1])
    }

    public func kerasConfig() -> [(String, JSON)] {
        [("size", KerasJSON.ints(size)), ("data_format", format.json), ("interpolation", .string(interpolation.rawValue))]
    }
}

/// Repeats each pixel `size` times along height and width (Keras' `UpSampling2D`), or
/// interpolates between them (`interpolation: .bilinear`).
///
///     let y = UpSampling2D(size: 2)(x)   // (7, 7, C) -> (14, 14, C)
public final class UpSampling2D: Layer {
    /// - Parameters:
    ///   - size: the factors (height, width) (default 2).
    ///   - dataFormat: `.channelsLast` (default) or `.channelsFirst`.
    ///   - interpolation: `.nearest` (default) or `.bilinear`.
    ///   - name: the layer name (default `up_sampling2d`, ...).
    public init(size: Size2D = 2, dataFormat: DataFormat2D = .channelsLast, interpolation: Interpolation2D = .nearest, name: String? = nil) {
        super.init(kind: UpSampling2DKind(size: size.list, format: dataFormat, interpolation: interpolation), name: name)
    }
}

// MARK: - SpatialDropout2D

/// Dropout of whole feature maps: in training, each (sample, channel) is kept with probability
/// 1 - rate (and scaled by 1 / (1 - rate)) or zeroed for all its pixels; identity in inference.
public struct SpatialDropout2DKind: LayerKind {
    public static let kerasClasses = ["SpatialDropout2D"]
    public var rate: Float
    public var format: DataFormat2D

    public init(rate: Float, format: DataFormat2D = .channelsLast) { self.rate = rate; self.format = format }

    public init(keras c: KerasConfig) throws {
        let rate = try c.float("rate")
        guard rate >= 0 && rate < 1 else { throw c.fail("has rate \(rate); expected 0 <= rate < 1") }
        self.init(rate: rate, format: try DataFormat2D(c))
    }

    public var description: String { "spatial_dropout2d<\(formatRate)\(format.printed)>" }
    public var configHasTrainable: Bool { false }
    var formatRate: String { "\(rate)" }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 1...1, layer)
        guard rate >= 0 && rate < 1 else { throw ShapeError(layer: layer, "rate=\(rate) must be in [0, 1)") }
        try expectImage(ins[0], layer, format)
        return [ins[0]]
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let x = ins[0]
        guard rate > 0 else { return [x] }
        // One draw per (sample, channel): the noise shape (N, 1, 1, C) or (N, C, 1, 1).
        let (ah, aw) = spatialAxes(format)
        let perMap = try b.reduce(.max, x, axes: [ah, aw], keepDims: true)
        let u = try b.p(.randomUniform(salt: ctx.nextSalt()), perMap)
        let keep = try b.cast(try b.compare(.ge, u, try b.const(rate)), .f32)
        let y = try b.mul(try b.mul(x, keep), 1 / (1 - rate))
        b.graph.inferenceForms[y] = x
        return [y]
    }

    public func kerasConfig() -> [(String, JSON)] {
        [("rate", KerasJSON.float(rate)), ("seed", .null), ("data_format", format.json)]
    }
}

/// Drops whole channels in training (Keras' `SpatialDropout2D`); identity in predict.
///
///     let y = SpatialDropout2D(0.2)(x)
public final class SpatialDropout2D: Layer {
    /// - Parameters:
    ///   - rate: the fraction of channels zeroed per sample in training.
    ///   - dataFormat: `.channelsLast` (default) or `.channelsFirst`.
    ///   - name: the layer name (default `spatial_dropout2d`, ...).
    public init(_ rate: Float, dataFormat: DataFormat2D = .channelsLast, name: String? = nil) {
        super.init(kind: SpatialDropout2DKind(rate: rate, format: dataFormat), name: name)
    }
}
