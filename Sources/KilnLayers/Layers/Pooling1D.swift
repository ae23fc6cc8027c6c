// Keras' 1-D pooling layers: MaxPooling1D and AveragePooling1D (windows over the time axis),
// GlobalMaxPooling1D and GlobalAveragePooling1D (over all steps; the average reads a mask).

import KilnIR
import KilnSupport

/// x (N, T, C) [or (N, C, T)] -> (N, T', C) [or (N, C, T')]: the maximum or the mean of each
/// window of `poolSize` steps, every `strides` steps. With 'same' padding the average counts
/// the real steps of a window only, and a max window's gradient goes to its first maximal
/// step (as Keras' JAX backend). Keras' pooling layers have no compute_mask: a mask stops here.
public struct Pooling1DKind: LayerKind {
    public static let kerasClasses = ["MaxPooling1D", "AveragePooling1D"]
    public var pool: PoolKind
    public var poolSize: Int
    public var strides: Int
    public var padding: Padding
    public var channelsFirst: Bool

    public init(_ pool: PoolKind, poolSize: Int = 2, strides: Int? = nil, padding: Padding = .valid, channelsFirst: Bool = false) {
        self.pool = pool; self.poolSize = poolSize; self.strides = strides ?? poolSize
        self.padding = padding; self.channelsFirst = channelsFirst
    }

    public init(keras c: KerasConfig) throws {
        let size = try c.sizes("pool_size", count: 1, [2])[0]
        self.init(c.className == "AveragePooling1D" ? .avg : .max, poolSize: size,
                  strides: c.isAbsent("strides") ? size : try c.sizes("strides", count: 1)[0],
                  padding: Padding(rawValue: try c.choice("padding", ["valid", "same"], "valid"))!,
                  channelsFirst: try Seq1DAxes.read(c))
    }

    public var kerasClass: String { pool == .max ? "MaxPooling1D" : "AveragePooling1D" }
    var axes: Seq1DAxes { Seq1DAxes(channelsFirst: channelsFirst) }

    public var description: String {
        "\(pool.rawValue)_pooling1d<\(poolSize), s=\(strides), \(padding.rawValue)" + (channelsFirst ? ", channels_first" : "") + ">"
    }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 1...1, layer)
        guard poolSize >= 1, strides >= 1 else {
            throw ShapeError(layer: layer, "pool_size=\(poolSize) and strides=\(strides) must be positive")
        }
        let x = ins[0]
        let (steps, _) = try axes.check(x, layer: layer, cls: kerasClass, fixedSteps: true)
        let (out, _) = Window2D.outSize(steps!, kernel: poolSize, stride: strides, padding: padding)
        var shape = x.shape
        shape[axes.time] = .fixed(out)
        guard steps! >= poolSize || padding == .same else {
            throw ShapeError(layer: layer, "pool_size \(poolSize) is longer than the \(steps!) steps of input \(x.kerasDescription); the output would have no steps",
                             hint: "use padding='same' or a smaller pool_size")
        }
        return [TensorType(x.dtype, shape)]
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let x = try axes.toChannelsLast(&b, ins[0])
        let xs = b.type(x).shape
        let t = xs[1].factor
        let (out, before) = Window2D.outSize(t, kernel: poolSize, stride: strides, padding: padding)
        if pool == .avg {
            // A pool2d over a (1, T) image with a (1, poolSize) window (it averages real cells only).
            let x4 = try b.reshape(x, [xs[0], .fixed(1), xs[1], xs[2]])
            let win = Window2D(kh: 1, kw: poolSize, sh: 1, sw: strides, padTop: 0, padLeft: before)
            let y = try b.p(.pool2D(pool, win, outH: 1, outW: out), x4)
            return [try axes.toChannelsLast(&b, try b.reshape(y, [xs[0], .fixed(out), xs[2]]))]
        }
        // The maximum as Keras' JAX backend differentiates it: a window's gradient goes to its
        // first maximal step only (ties are common: padding tokens repeat a step). So: -inf
        // padding, tap j of every window (steps o*s + j) by slices, and a running maximum that
        // a later tap replaces only when strictly greater.
        let after = max((poolSize - 1) + out * strides - before - t, 0)
        let xp = before + after > 0 ? try b.p(.pad(axis: 1, before: before, after: after, value: -.infinity), x) : x
        func tap(_ j: Int) throws -> Value {
            if strides == 1 { return try b.p(.slice(axis: 1, start: j, length: out), xp) }
            let run = try b.p(.slice(axis: 1, start: j, length: out * strides), xp)
            let groups = try b.reshape(run, [xs[0], .fixed(out), .fixed(strides), xs[2]])
            return try b.reshape(try b.p(.slice(axis: 2, start: 0, length: 1), groups), [xs[0], .fixed(out), xs[2]])
        }
        var y = try tap(0)
        for j in 1..<max(poolSize, 1) {
            let v = try tap(j)
            y = try b.select(try b.compare(.gt, v, y), v, y)
        }
        return [try axes.toChannelsLast(&b, y)]
    }

    public func kerasConfig() -> [(String, JSON)] {
        [("pool_size", KerasJSON.ints([poolSize])), ("padding", .string(padding.rawValue)),
         ("strides", KerasJSON.ints([strides])), ("data_format", Seq1DAxes.format(channelsFirst))]
    }
}

/// x (N, T, C) [or (N, C, T)] -> (N, C) (keepdims: (N, 1, C) [or (N, C, 1)]): the maximum or
/// the mean over the steps. The time axis may be free. As Keras 3: GlobalAveragePooling1D takes
/// the mask (the mean of the real steps only: masked steps count as 0 in the sum and not in the
/// count, so a row with no real step gives 0/0) and gives none on; GlobalMaxPooling1D ignores
/// the mask (it has no supports_masking) and the mask stops there. Steps tied at the maximum
/// share its gradient equally, as JAX's max.
public struct GlobalPooling1DKind: LayerKind {
    public static let kerasClasses = ["GlobalMaxPooling1D", "GlobalAveragePooling1D"]
    public var pool: PoolKind
    public var keepDims: Bool
    public var channelsFirst: Bool
    /// Takes the (N, T) boolean mask as its last input (GlobalAveragePooling1D only).
    public var masked: Bool

    public init(_ pool: PoolKind, keepDims: Bool = false, channelsFirst: Bool = false, masked: Bool = false) {
        self.pool = pool; self.keepDims = keepDims; self.channelsFirst = channelsFirst; self.masked = masked
    }

    public init(keras c: KerasConfig) throws {
        self.init(c.className == "GlobalAveragePooling1D" ? .avg : .max, keepDims: try c.bool("keepdims", false),
                  channelsFirst: try Seq1DAxes.read(c))
    }

    public var kerasClass: String { pool == .max ? "GlobalMaxPooling1D" : "GlobalAveragePooling1D" }
    var axes: Seq1DAxes { Seq1DAxes(channelsFirst: channelsFirst) }

    public var description: String {
        "global_\(pool.rawValue)_pooling1d" + ([keepDims ? "keepdims" : nil, channelsFirst ? "channels_first" : nil, masked ? "masked" : nil]
            .compactMap { $0 }.joined(separator: ", ")).wrappedIfAny
    }

    public func consumingMask() -> GlobalPooling1DKind? {
        // Already taking one (a Functional model's call passes mask=): nothing more to take.
        guard pool == .avg, !masked else { return nil }
        var k = self; k.masked = true; return k
    }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, (masked ? 2 : 1)...(masked ? 2 : 1), layer)
        let x = ins[0]
        _ = try axes.check(x, layer: layer, cls: kerasClass, fixedSteps: false)
        if masked {
            let m = ins[1]
            guard m.rank == 2, m.shape[0] == x.shape[0], m.shape[1] == x.shape[axes.time] else {
                throw ShapeError(layer: layer, "mask \(m.kerasDescription) does not fit input \(x.kerasDescription)",
                                 hint: "the mask has one entry per step (batch, steps)")
            }
        }
        var shape = x.shape
        if keepDims { shape[axes.time] = .fixed(1) } else { shape.remove(at: axes.time) }
        return [TensorType(x.dtype, shape)]
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let x = ins[0]
        let time = axes.time
        if pool == .max {
            // Keras' ops.max, whose JAX gradient shares dy equally among tied maxima (Kiln's
            // reduce-max gives each of them dy): the mean of the steps equal to the maximum.
            let m = try b.reduce(.max, x, axes: [time], keepDims: true)
            let hit = try b.compare(.eq, x, m)
            let sum = try b.reduce(.sum, try b.select(hit, x, try b.const(0)), axes: [time], keepDims: keepDims)
            return [try b.div(sum, try b.reduce(.sum, try b.cast(hit, .f32), axes: [time], keepDims: keepDims))]
        }
        guard masked else { return [try b.reduce(.mean, x, axes: [time], keepDims: keepDims)] }
        // sum(where(mask, x, 0)) / sum(mask), the mask broadcast over the channels.
        let xs = b.type(x).shape
        var ms = xs; ms[axes.channel] = .fixed(1)
        let m = try b.reshape(ins[1], ms)
        let kept = try b.select(m, x, try b.const(0))
        let count = try b.reduce(.sum, try b.cast(m, .f32), axes: [time], keepDims: keepDims)
        return [try b.div(try b.reduce(.sum, kept, axes: [time], keepDims: keepDims), count)]
    }

    public func kerasConfig() -> [(String, JSON)] {
        [("data_format", Seq1DAxes.format(channelsFirst)), ("keepdims", .bool(keepDims))]
    }
}

extension String {
    /// "<self>" unless empty.
    fileprivate var wrappedIfAny: String { isEmpty ? "" : "<\(self)>" }
}

/// The maximum over windows of steps (Keras' `MaxPooling1D`).
///
///     let y = MaxPooling1D(poolSize: 2)(x)   // (None, 10, 8) -> (None, 5, 8)
public final class MaxPooling1D: Layer {
    /// - Parameters:
    ///   - poolSize: the window in steps (default 2).
    ///   - strides: the step of the window (default: the pool size).
    ///   - padding: `.valid` (default) or `.same`.
    ///   - channelsFirst: input and output are (batch, channels, steps).
    ///   - name: the layer name (default `max_pooling1d`, ...).
    public init(poolSize: Int = 2, strides: Int? = nil, padding: Padding = .valid, channelsFirst: Bool = false, name: String? = nil) {
        super.init(kind: Pooling1DKind(.max, poolSize: poolSize, strides: strides, padding: padding, channelsFirst: channelsFirst), name: name)
    }
}

/// The mean over windows of steps (Keras' `AveragePooling1D`); with `.same` padding a border
/// window averages its real steps only.
public final class AveragePooling1D: Layer {
    /// - Parameters:
    ///   - poolSize: the window in steps (default 2).
    ///   - strides: the step of the window (default: the pool size).
    ///   - padding: `.valid` (default) or `.same`.
    ///   - channelsFirst: input and output are (batch, channels, steps).
    ///   - name: the layer name (default `average_pooling1d`, ...).
    public init(poolSize: Int = 2, strides: Int? = nil, padding: Padding = .valid, channelsFirst: Bool = false, name: String? = nil) {
        super.init(kind: Pooling1DKind(.avg, poolSize: poolSize, strides: strides, padding: padding, channelsFirst: channelsFirst), name: name)
    }
}

/// The maximum over all steps: (batch, steps, channels) -> (batch, channels) (Keras'
/// `GlobalMaxPooling1D`). It ignores a mask, as Keras 3 does.
public final class GlobalMaxPooling1D: Layer {
    /// - Parameters:
    ///   - keepdims: keep the time axis as size 1.
    ///   - channelsFirst: the input is (batch, channels, steps).
    ///   - name: the layer name (default `global_max_pooling1d`, ...).
    public init(keepdims: Bool = false, channelsFirst: Bool = false, name: String? = nil) {
        super.init(kind: GlobalPooling1DKind(.max, keepDims: keepdims, channelsFirst: channelsFirst), name: name)
    }
}

/// The mean over all steps: (batch, steps, channels) -> (batch, channels) (Keras'
/// `GlobalAveragePooling1D`). Given a mask (Embedding(maskZero:), Masking), the mean of the
/// real steps only.
public final class GlobalAveragePooling1D: Layer {
    /// - Parameters:
    ///   - keepdims: keep the time axis as size 1.
    ///   - channelsFirst: the input is (batch, channels, steps).
    ///   - name: the layer name (default `global_average_pooling1d`, ...).
    public init(keepdims: Bool = false, channelsFirst: Bool = false, name: String? = nil) {
        super.init(kind: GlobalPooling1DKind(.avg, keepDims: keepdims, channelsFirst: channelsFirst), name: name)
    }
}
