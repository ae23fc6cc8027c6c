// Shape rules for layer ops (a primitive's is in its family's file, Ops/*.swift).
// Errors name the layer, both shapes and a hint.

extension LayerOp {
    /// The Keras class name, for messages and `kiln summary`.
    public var kerasClass: String {
        switch self {
        case .conv2D: return "Conv2D"
        case .maxPool2D: return "MaxPooling2D"
        case .avgPool2D: return "AveragePooling2D"
        case .globalAvgPool2D: return "GlobalAveragePooling2D"
        case .globalMaxPool2D: return "GlobalMaxPooling2D"
        case .timeDistributed: return "TimeDistributed"
        case .notEqual: return "NotEqual"
        case .anyLastAxis: return "Any"
        case .table(let t): return t.kind.kerasClass
        }
    }
}

/// Numpy broadcasting of two shapes; nil if they do not broadcast.
public func broadcastShapes(_ a: [Dim], _ b: [Dim]) -> [Dim]? {
    let r = max(a.count, b.count)
    let pa = [Dim](repeating: .fixed(1), count: r - a.count) + a
    let pb = [Dim](repeating: .fixed(1), count: r - b.count) + b
    var out: [Dim] = []
    for (x, y) in zip(pa, pb) {
        if x == y { out.append(x) }
        else if x == .fixed(1) { out.append(y) }
        else if y == .fixed(1) { out.append(x) }
        else { return nil }
    }
    return out
}

func perSample(_ t: TensorType) -> [Int] { Array(t.shape.dropFirst().map(\.factor)) }

/// Infers the output types of an op from its input types.
public func inferTypes(_ op: Op, _ ins: [TensorType], layer: String) throws -> [TensorType] {
    switch op {
    case .layer(.table(let t)): return try t.kind.infer(ins, layer: "\(t.kind.kerasClass) '\(layer)'")
    case .layer(let l): return [try inferLayer(l, ins, layer: "\(l.kerasClass) '\(layer)'")]
    case .prim(let p): return try inferPrim(p, ins, layer: layer)
    }
}

/// Sizes that must be positive (a zero stride would divide by zero).
private func checkAttributes(_ op: LayerOp, layer: String) throws {
    func sizes(_ name: String, _ v: [Int]) throws {
        guard v.count == 2, v.allSatisfy({ $0 >= 1 }) else { throw ShapeError(layer: layer, "\(name) \(v) must be two positive integers") }
    }
    switch op {
    case let .conv2D(filters, kernel, strides, _, _, _):
        guard filters >= 1 else { throw ShapeError(layer: layer, "filters=\(filters) must be positive") }
        try sizes("kernel size", kernel); try sizes("strides", strides)
    case let .maxPool2D(pool, strides, _), let .avgPool2D(pool, strides, _):
        try sizes("pool size", pool); try sizes("strides", strides)
    default:
        break
    }
}

public func expectArity(_ ins: [TensorType], _ counts: ClosedRange<Int>, _ layer: String) throws {
    if !counts.contains(ins.count) {
        throw ShapeError(layer: layer, "takes \(counts.lowerBound == counts.upperBound ? "\(counts.lowerBound)" : "\(counts.lowerBound) to \(counts.upperBound)") inputs, got \(ins.count)")
    }
}

private func expectBatched(_ t: TensorType, rank: Int? = nil, _ layer: String, what: String) throws {
    guard let first = t.shape.first, first.isBatch, !t.shape.dropFirst().contains(where: \.isBatch) else {
        throw ShapeError(layer: layer, "expects a batched input (None, ...), got \(t.kerasDescription)")
    }
    if let rank, t.rank != rank {
        throw ShapeError(layer: layer, "expects \(what) of rank \(rank) (batch included), got \(t.kerasDescription)",
                         hint: rank == 4 ? "Conv2D and pooling take (batch, height, width, channels)" : nil)
    }
}

/// Refuses inputs with a free dimension after the batch (Flatten and Reshape need sizes).
private func expectFixed(_ t: TensorType, _ layer: String) throws {
    if t.shape.dropFirst().contains(where: \.isSteps) {
        throw ShapeError(layer: layer, "cannot flatten or reshape input \(t.kerasDescription): its free (None) dimension has no size until run time",
                         hint: "give the Input a fixed number of steps")
    }
}

/// For a 'valid' window (a kernel or a pool) on x (batch, height, width, channels): nil when it
/// fits, else which dimension is smaller than the window, e.g. "its height 2 is smaller than the
/// kernel's 3 rows".
private func tooSmall(_ x: TensorType, _ window: [Int], _ padding: Padding, _ what: String) -> String? {
    guard padding == .valid else { return nil }
    let (h, w) = (x.shape[1].factor, x.shape[2].factor)
    switch (h < window[0], w < window[1]) {
    case (true, true): return "its height \(h) and width \(w) are smaller than the \(what)'s \(window[0])x\(window[1])"
    case (true, false): return "its height \(h) is smaller than the \(what)'s \(window[0]) rows"
    case (false, true): return "its width \(w) is smaller than the \(what)'s \(window[1]) columns"
    case (false, false): return nil
    }
}

/// The refusal of a Conv2D input (batch, a, b, c) that looks channels_first: (channels, height, width).
private func channelsFirst(_ x: TensorType, _ layer: String, _ why: String) -> ShapeError {
    let (a, b, c) = (x.shape[1].factor, x.shape[2].factor, x.shape[3].factor)
    return ShapeError(layer: layer, "input \(x.kerasDescription) looks channels_first (channels, height, width): \(why), "
                      + "but Conv2D is channels_last (batch, height, width, channels) and reads height \(a), width \(b) and \(c) channels",
                      hint: "give the input shape (\(b), \(c), \(a)) and move the channel axis of the data last (numpy.moveaxis); "
                      + "Kiln compiles data_format='channels_last' (Keras' default) only")
}

public func inferLayer(_ op: LayerOp, _ ins: [TensorType], layer: String) throws -> TensorType {
    guard let x = ins.first else { throw ShapeError(layer: layer, "has no input") }
    try checkAttributes(op, layer: layer)
    switch op {
    case .table(let t):
        return try t.kind.infer(ins, layer: layer)[0]
    case .timeDistributed:
        return try inferRecurrent(op, ins, layer: layer)
    case .notEqual:
        try expectArity(ins, 1...1, layer)
        return TensorType(.bool, x.shape)
    case .anyLastAxis:
        try expectArity(ins, 1...1, layer)
        guard x.rank >= 2 else { throw ShapeError(layer: layer, "reduces the last axis of \(x.kerasDescription), which has no axis but the batch") }
        return TensorType(.bool, Array(x.shape.dropLast()))
    case let .conv2D(filters, kernel, strides, padding, _, useBias):
        try expectArity(ins, useBias ? 3...3 : 2...2, layer)
        try expectBatched(x, rank: 4, layer, what: "an input")
        let (h, w, c) = (x.shape[1].factor, x.shape[2].factor, x.shape[3].factor)
        if ins[1].shape != [.fixed(kernel[0]), .fixed(kernel[1]), .fixed(c), .fixed(filters)] {
            // Weights made for as many channels as axis 1 holds: the input is channels_first.
            if ins[1].rank == 4, ins[1].shape[2].fixedValue == x.shape[1].fixedValue, ins[1].shape[2].fixedValue != c {
                let k = ins[1].shape[2].factor
                throw channelsFirst(x, layer, "its kernel \(ins[1].kerasDescription) takes \(k) input channel\(k == 1 ? "" : "s"), the size of axis 1")
            }
            throw ShapeError(layer: layer, "kernel of shape \(ins[1].kerasDescription) does not fit input \(x.kerasDescription)",
                             hint: "expected kernel (\(kernel[0]), \(kernel[1]), \(c), \(filters))")
        }
        if let short = tooSmall(x, kernel, padding, "kernel") {
            // A height of a few rows before two image-sized axes may be channels written first.
            let firstHint = h < kernel[0] && h <= 4 && w >= 8 && c >= 8
                ? "if the input is channels_first (\(h) channel\(h == 1 ? "" : "s") of \(w)x\(c)), give it as (\(w), \(c), \(h)) and move the channel axis "
                  + "of the data last (numpy.moveaxis): Kiln compiles data_format='channels_last' (Keras' default) only; otherwise " : ""
            throw ShapeError(layer: layer, "a \(kernel[0])x\(kernel[1]) '\(padding.rawValue)' convolution does not fit input \(x.kerasDescription): \(short)",
                             hint: firstHint + "use padding='same', a smaller kernel, or fewer convolutions and poolings before it")
        }
        let (oh, _) = Window2D.outSize(h, kernel: kernel[0], stride: strides[0], padding: padding)
        let (ow, _) = Window2D.outSize(w, kernel: kernel[1], stride: strides[1], padding: padding)
        return .f32([x.shape[0], .fixed(oh), .fixed(ow), .fixed(filters)])
    case let .maxPool2D(pool, strides, padding), let .avgPool2D(pool, strides, padding):
        try expectArity(ins, 1...1, layer)
        try expectBatched(x, rank: 4, layer, what: "an input")
        if let short = tooSmall(x, pool, padding, "pool") {
            throw ShapeError(layer: layer, "a \(pool[0])x\(pool[1]) pool does not fit input \(x.kerasDescription): \(short)",
                             hint: "use padding='same', a smaller pool, or fewer convolutions and poolings before it")
        }
        let (oh, _) = Window2D.outSize(x.shape[1].factor, kernel: pool[0], stride: strides[0], padding: padding)
        let (ow, _) = Window2D.outSize(x.shape[2].factor, kernel: pool[1], stride: strides[1], padding: padding)
        return .f32([x.shape[0], .fixed(oh), .fixed(ow), x.shape[3]])
    case .globalAvgPool2D, .globalMaxPool2D:
        try expectArity(ins, 1...1, layer)
        try expectBatched(x, rank: 4, layer, what: "an input")
        return .f32([x.shape[0], x.shape[3]])
    }
}

extension FusedExpr {
    /// Element type of the result.
    public func resultType(_ args: [DType]) -> DType {
        switch self {
        case .arg(let k): return args[k]
        case .const, .batchSize, .stepCount, .iteration, .unary, .binary: return .f32
        case .compare: return .bool
        case let .select(_, a, _): return a.resultType(args)
        case .cast(let t, _): return t
        }
    }
}
