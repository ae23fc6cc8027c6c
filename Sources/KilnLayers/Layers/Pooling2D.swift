// MaxPooling2D, AveragePooling2D, GlobalMaxPooling2D, GlobalAveragePooling2D, channels_last
// or channels_first (transposed to channels_last around the pool2d primitive).

import KilnIR
import KilnSupport

/// (N, H, W, C) -> (N, OH, OW, C): the max or the mean over each window; padded cells are
/// ignored (the mean counts the cells inside the input, as Keras).
public struct Pooling2DKind: LayerKind {
    public static let kerasClasses = ["MaxPooling2D", "AveragePooling2D", "MaxPool2D", "AvgPool2D"]
    public var pool: PoolKind
    public var size: [Int]
    public var strides: [Int]
    public var padding: Padding
    public var format: DataFormat2D

    public init(_ pool: PoolKind, pool size: [Int] = [2, 2], strides: [Int]? = nil, padding: Padding = .valid, format: DataFormat2D = .channelsLast) {
        self.pool = pool; self.size = size; self.strides = strides ?? size; self.padding = padding; self.format = format
    }

    public init(keras c: KerasConfig) throws {
        let size = try c.sizes("pool_size", count: 2, [2, 2])
        self.init(c.className.hasPrefix("Max") ? .max : .avg, pool: size, strides: try c.sizes("strides", count: 2, size),
                  padding: try c.padding(), format: try DataFormat2D(c))
    }

    public var kerasClass: String { pool == .max ? "MaxPooling2D" : "AveragePooling2D" }

    public var description: String {
        "\(pool.rawValue)_pool2d<\(size), strides=\(strides), \(padding.rawValue)\(format.printed)>"
    }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        for (name, v) in [("pool size", size), ("strides", strides)] {
            guard v.count == 2, v.allSatisfy({ $0 >= 1 }) else { throw ShapeError(layer: layer, "\(name) \(v) must be two positive integers") }
        }
        try expectArity(ins, 1...1, layer)
        let x = ins[0]
        try expectImage(x, layer, format)
        let (h, w, c) = format.hwc(x)
        if let short = windowTooBig(h: h.factor, w: w.factor, size, padding, "pool") {
            throw ShapeError(layer: layer, "a \(size[0])x\(size[1]) pool does not fit input \(x.kerasDescription): \(short)",
                             hint: "use padding='same', a smaller pool, or fewer convolutions and poolings before it")
        }
        let (oh, ow) = windowOutput(h: h.factor, w: w.factor, window: size, strides: strides, padding: padding)
        return [format.type(x.shape[0], oh, ow, c)]
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let x = try format.toLast(&b, ins[0])
        let xs = b.type(x).shape.map(\.factor)
        let (oh, pt) = Window2D.outSize(xs[1], kernel: size[0], stride: strides[0], padding: padding)
        let (ow, pl) = Window2D.outSize(xs[2], kernel: size[1], stride: strides[1], padding: padding)
        let win = Window2D(kh: size[0], kw: size[1], sh: strides[0], sw: strides[1], padTop: pt, padLeft: pl)
        return [try format.fromLast(&b, try b.p(.pool2D(pool, win, outH: oh, outW: ow), x))]
    }

    public func kerasConfig() -> [(String, JSON)] {
        [("pool_size", KerasJSON.ints(size)), ("padding", .string(padding.rawValue)), ("strides", KerasJSON.ints(strides)),
         ("data_format", format.json)]
    }
}

/// (N, H, W, C) -> (N, C), or (N, 1, 1, C) with keepdims: the max or the mean over height and width.
public struct GlobalPooling2DKind: LayerKind {
    public static let kerasClasses = ["GlobalAveragePooling2D", "GlobalMaxPooling2D", "GlobalAvgPool2D", "GlobalMaxPool2D"]
    public var pool: PoolKind
    public var format: DataFormat2D
    public var keepDims: Bool

    public init(_ pool: PoolKind, format: DataFormat2D = .channelsLast, keepDims: Bool = false) {
        self.pool = pool; self.format = format; self.keepDims = keepDims
    }

    public init(keras c: KerasConfig) throws {
        self.init(c.className.hasPrefix("GlobalMax") ? .max : .avg, format: try DataFormat2D(c), keepDims: try c.bool("keepdims", false))
    }

    public var kerasClass: String { pool == .max ? "GlobalMaxPooling2D" : "GlobalAveragePooling2D" }

    public var description: String {
        "global_\(pool.rawValue)_pool2d" + (format == .channelsLast && !keepDims ? "" : "<\(format.rawValue)\(keepDims ? ", keepdims" : "")>")
    }

    var axes: [Int] { format == .channelsLast ? [1, 2] : [2, 3] }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 1...1, layer)
        let x = ins[0]
        try expectImage(x, layer, format)
        if keepDims { return [format.type(x.shape[0], 1, 1, format.hwc(x).c)] }
        return [.f32([x.shape[0], format.hwc(x).c])]
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        [try b.reduce(pool == .max ? .max : .mean, ins[0], axes: axes, keepDims: keepDims)]
    }

    public func kerasConfig() -> [(String, JSON)] { [("data_format", format.json), ("keepdims", .bool(keepDims))] }
}

/// What MaxPooling2D and AveragePooling2D share: the window's settings.
public class Pooling2DLayer: Layer {
    var pooling: Pooling2DKind { kind as! Pooling2DKind }
    public var poolSize: Size2D { Size2D(pooling.size[0], pooling.size[1]) }
    public var strides: Size2D { Size2D(pooling.strides[0], pooling.strides[1]) }
    public var padding: Padding { pooling.padding }
    public var dataFormat: DataFormat2D { pooling.format }

    init(_ op: PoolKind, poolSize: Size2D, strides: Size2D?, padding: Padding, dataFormat: DataFormat2D, name: String?) {
        super.init(kind: Pooling2DKind(op, pool: poolSize.list, strides: (strides ?? poolSize).list, padding: padding, format: dataFormat),
                   name: name)
    }
}

/// The maximum over each window (Keras' `MaxPooling2D`).
public final class MaxPooling2D: Pooling2DLayer {
    /// - Parameters:
    ///   - poolSize: the window (default 2).
    ///   - strides: the step (default: the pool size).
    ///   - padding: `.valid` (default) or `.same`.
    ///   - dataFormat: `.channelsLast` (default) or `.channelsFirst`.
    ///   - name: the layer name (default `max_pooling2d`, ...).
    public init(poolSize: Size2D = 2, strides: Size2D? = nil, padding: Padding = .valid, dataFormat: DataFormat2D = .channelsLast,
                name: String? = nil) {
        super.init(.max, poolSize: poolSize, strides: strides, padding: padding, dataFormat: dataFormat, name: name)
    }
}

/// The mean over each window; padded cells are not counted (Keras' `AveragePooling2D`).
public final class AveragePooling2D: Pooling2DLayer {
    /// - Parameters:
    ///   - poolSize: the window (default 2).
    ///   - strides: the step (default: the pool size).
    ///   - padding: `.valid` (default) or `.same`.
    ///   - dataFormat: `.channelsLast` (default) or `.channelsFirst`.
    ///   - name: the layer name (default `average_pooling2d`, ...).
    public init(poolSize: Size2D = 2, strides: Size2D? = nil, padding: Padding = .valid, dataFormat: DataFormat2D = .channelsLast,
                name: String? = nil) {
        super.init(.avg, poolSize: poolSize, strides: strides, padding: padding, dataFormat: dataFormat, name: name)
    }
}

/// The mean over height and width: (N, H, W, C) -> (N, C) (Keras' `GlobalAveragePooling2D`).
public final class GlobalAveragePooling2D: Layer {
    /// - Parameters:
    ///   - dataFormat: `.channelsLast` (default) or `.channelsFirst`.
    ///   - keepDims: keep height and width as size 1 (default false).
    ///   - name: the layer name (default `global_average_pooling2d`, ...).
    public init(dataFormat: DataFormat2D = .channelsLast, keepDims: Bool = false, name: String? = nil) {
        super.init(kind: GlobalPooling2DKind(.avg, format: dataFormat, keepDims: keepDims), name: name)
    }
}

/// The maximum over height and width: (N, H, W, C) -> (N, C) (Keras' `GlobalMaxPooling2D`).
public final class GlobalMaxPooling2D: Layer {
    /// - Parameters:
    ///   - dataFormat: `.channelsLast` (default) or `.channelsFirst`.
    ///   - keepDims: keep height and width as size 1 (default false).
    ///   - name: the layer name (default `global_max_pooling2d`, ...).
    public init(dataFormat: DataFormat2D = .channelsLast, keepDims: Bool = false, name: String? = nil) {
        super.init(kind: GlobalPooling2DKind(.max, format: dataFormat, keepDims: keepDims), name: name)
    }
}
