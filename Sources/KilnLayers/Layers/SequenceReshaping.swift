// Keras' layers that reshape sequences without weights: ZeroPadding1D, UpSampling1D,
// RepeatVector and Permute. None of them has compute_mask in Keras 3, so a mask stops at each.

import KilnIR
import KilnSupport

/// x (N, T, C) [or (N, C, T)] -> (N, before + T + after, C): zero steps at both ends.
public struct ZeroPadding1DKind: LayerKind {
    public static let kerasClasses = ["ZeroPadding1D"]
    public var before: Int
    public var after: Int
    public var channelsFirst: Bool

    public init(before: Int, after: Int, channelsFirst: Bool = false) {
        self.before = before; self.after = after; self.channelsFirst = channelsFirst
    }

    public init(keras c: KerasConfig) throws {
        // Keras saves (before, after); an int pads both ends alike.
        let raw = c["padding"]
        guard let v = raw?.ints ?? raw?.int.map({ [$0, $0] }) ?? (c.isAbsent("padding") ? [1, 1] : nil),
              v.count == 2, v.allSatisfy({ $0 >= 0 }) else {
            throw c.fail("has padding \(raw?.serialized ?? "null"); expected an integer or two integers >= 0")
        }
        self.init(before: v[0], after: v[1], channelsFirst: try Seq1DAxes.read(c))
    }

    var axes: Seq1DAxes { Seq1DAxes(channelsFirst: channelsFirst) }
    public var description: String { "zero_padding1d<\(before), \(after)" + (channelsFirst ? ", channels_first" : "") + ">" }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 1...1, layer)
        guard before >= 0, after >= 0 else { throw ShapeError(layer: layer, "padding (\(before), \(after)) must be two integers >= 0") }
        let x = ins[0]
        let (steps, _) = try axes.check(x, layer: layer, cls: "ZeroPadding1D", fixedSteps: true)
        var shape = x.shape
        shape[axes.time] = .fixed(before + steps! + after)
        return [TensorType(x.dtype, shape)]
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        before + after == 0 ? [ins[0]] : [try b.p(.pad(axis: axes.time, before: before, after: after, value: 0), ins[0])]
    }

    public func kerasConfig() -> [(String, JSON)] {
        [("padding", KerasJSON.ints([before, after])), ("data_format", Seq1DAxes.format(channelsFirst))]
    }
}

/// x (N, T, C) -> (N, T * size, C): every step repeated `size` times in place
/// (step t becomes steps t*size ..< (t+1)*size). The time axis may be free.
public struct UpSampling1DKind: LayerKind {
    public static let kerasClasses = ["UpSampling1D"]
    public var size: Int

    public init(size: Int) { self.size = size }

    public init(keras c: KerasConfig) throws { self.init(size: try c.positive("size", 2)) }

    public var description: String { "up_sampling1d<\(size)>" }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 1...1, layer)
        guard size >= 1 else { throw ShapeError(layer: layer, "size=\(size) must be positive") }
        let x = ins[0]
        _ = try Seq1DAxes(channelsFirst: false).check(x, layer: layer, cls: "UpSampling1D", fixedSteps: false)
        return [TensorType(x.dtype, [x.shape[0], Dim.make(x.shape[1].factor * size, n: false, t: x.shape[1].isSteps), x.shape[2]])]
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        // (N, T, 1, C) broadcast to (N, T, size, C), then the two middle axes as one.
        let x = ins[0]
        let s = b.type(x).shape
        guard size > 1 else { return [x] }
        let x4 = try b.reshape(x, [s[0], s[1], .fixed(1), s[2]])
        let rep = try b.p(.broadcast([s[0], s[1], .fixed(size), s[2]]), x4)
        return [try b.reshape(rep, [s[0], Dim.make(s[1].factor * size, n: false, t: s[1].isSteps), s[2]])]
    }

    public func kerasConfig() -> [(String, JSON)] { [("size", KerasJSON.int(size))] }
}

/// x (N, F) -> (N, n, F): the vector repeated n times along a new time axis.
public struct RepeatVectorKind: LayerKind {
    public static let kerasClasses = ["RepeatVector"]
    public var n: Int

    public init(n: Int) { self.n = n }

    public init(keras c: KerasConfig) throws { self.init(n: try c.positive("n")) }

    public var description: String { "repeat_vector<\(n)>" }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 1...1, layer)
        guard n >= 1 else { throw ShapeError(layer: layer, "n=\(n) must be positive") }
        let x = ins[0]
        guard x.rank == 2, x.shape[0] == .n, x.shape[1].fixedValue != nil else {
            throw ShapeError(layer: layer, "expects a batch of vectors (batch, features), got \(x.kerasDescription)",
                             hint: "RepeatVector takes 2-D input; Flatten or pool a sequence first")
        }
        return [TensorType(x.dtype, [x.shape[0], .fixed(n), x.shape[1]])]
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let x = ins[0]
        let s = b.type(x).shape
        let x3 = try b.reshape(x, [s[0], .fixed(1), s[1]])
        return [n == 1 ? x3 : try b.p(.broadcast([s[0], .fixed(n), s[1]]), x3)]
    }

    public func kerasConfig() -> [(String, JSON)] { [("n", KerasJSON.int(n))] }
}

/// Permutes the axes after the batch: `dims` is a permutation of 1...rank-1 (Keras'
/// numbering); output axis i is input axis dims[i-1].
public struct PermuteKind: LayerKind {
    public static let kerasClasses = ["Permute"]
    public var dims: [Int]

    public init(dims: [Int]) { self.dims = dims }

    public init(keras c: KerasConfig) throws {
        guard let d = c["dims"]?.ints, d.sorted() == Array(1...max(d.count, 1)), !d.isEmpty else {
            throw c.fail("has dims \(c["dims"]?.serialized ?? "null"); expected a permutation of 1, 2, ..., rank")
        }
        self.init(dims: d)
    }

    public var description: String { "permute<\(dims.map(String.init).joined(separator: ", "))>" }

    public func infer(_ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 1...1, layer)
        let x = ins[0]
        guard !dims.isEmpty, dims.sorted() == Array(1...dims.count) else {
            throw ShapeError(layer: layer, "dims \(dims) is not a permutation of 1...\(max(dims.count, 1))")
        }
        guard x.rank == dims.count + 1, x.shape[0] == .n else {
            throw ShapeError(layer: layer, "dims \(dims) permutes \(dims.count) axes, but input \(x.kerasDescription) has \(x.rank - 1) after the batch",
                             hint: "give one entry per axis after the batch")
        }
        return [TensorType(x.dtype, [x.shape[0]] + dims.map { x.shape[$0] })]
    }

    public func lower(_ b: inout PrimBuilder, _ ins: [Value], _ ctx: inout LoweringContext) throws -> [Value] {
        let perm = [0] + dims
        return [perm == Array(0..<perm.count) ? ins[0] : try b.p(.transpose(perm), ins[0])]
    }

    public func kerasConfig() -> [(String, JSON)] { [("dims", KerasJSON.ints(dims))] }
}

/// Zero steps at the beginning and the end of a sequence (Keras' `ZeroPadding1D`).
///
///     let y = ZeroPadding1D(padding: (2, 0))(x)   // (None, 6, 4) -> (None, 8, 4)
public final class ZeroPadding1D: Layer {
    /// - Parameters:
    ///   - padding: the zero steps before and after (Keras' default (1, 1)).
    ///   - channelsFirst: input and output are (batch, channels, steps).
    ///   - name: the layer name (default `zero_padding1d`, ...).
    public init(padding: (before: Int, after: Int) = (1, 1), channelsFirst: Bool = false, name: String? = nil) {
        super.init(kind: ZeroPadding1DKind(before: padding.before, after: padding.after, channelsFirst: channelsFirst), name: name)
    }

    /// - Parameters:
    ///   - both: the zero steps at each end, as Keras' `ZeroPadding1D(n)`.
    ///   - name: the layer name (default `zero_padding1d`, ...).
    public convenience init(_ both: Int, name: String? = nil) {
        self.init(padding: (both, both), name: name)
    }
}

/// Repeats every step `size` times (Keras' `UpSampling1D`): (None, T, C) -> (None, T*size, C).
public final class UpSampling1D: Layer {
    /// - Parameters:
    ///   - size: how many times each step is repeated (default 2).
    ///   - name: the layer name (default `up_sampling1d`, ...).
    public init(size: Int = 2, name: String? = nil) {
        super.init(kind: UpSampling1DKind(size: size), name: name)
    }
}

/// Repeats a vector n times along a new time axis (Keras' `RepeatVector`): (None, F) -> (None, n, F).
public final class RepeatVector: Layer {
    /// - Parameters:
    ///   - n: the number of steps.
    ///   - name: the layer name (default `repeat_vector`, ...).
    public init(_ n: Int, name: String? = nil) {
        super.init(kind: RepeatVectorKind(n: n), name: name)
    }
}

/// Permutes the axes after the batch (Keras' `Permute`); `Permute([2, 1])` swaps steps and features.
public final class Permute: Layer {
    /// - Parameters:
    ///   - dims: a permutation of 1...rank-1 (the batch axis is 0 and stays).
    ///   - name: the layer name (default `permute`, ...).
    public init(_ dims: [Int], name: String? = nil) {
        super.init(kind: PermuteKind(dims: dims), name: name)
    }
}
