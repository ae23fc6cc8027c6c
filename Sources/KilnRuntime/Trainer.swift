// A Keras-like fit loop over a CompiledLibrary: epochs of batches, the epoch
// loss as Keras reports it, a progress bar on a terminal and plain lines
// elsewhere.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import KilnSupport

/// How `fit` trains.
public struct FitOptions: Sendable, Equatable {
    public var epochs: Int
    public var batchSize: Int
    /// Shuffle the rows each epoch (a permutation repeatable from `seed`);
    /// false: batches in row order, the last one possibly smaller.
    public var shuffle: Bool
    /// Seeds the shuffling and the library's dropout RNG.
    public var seed: UInt64
    /// Report progress through the `progress` closure.
    public var verbose: Bool

    public init(epochs: Int = 1, batchSize: Int = 32, shuffle: Bool = true, seed: UInt64 = 0, verbose: Bool = true) {
        self.epochs = epochs; self.batchSize = batchSize; self.shuffle = shuffle; self.seed = seed; self.verbose = verbose
    }
}

/// What `fit` returns: one loss per epoch.
public struct History: Sendable, Equatable {
    /// Per epoch, the batch-size-weighted mean of the batch losses, each
    /// computed before that batch's update (as Keras reports it).
    public var loss: [Double]
    /// Per epoch, each compiled metric (e.g. "accuracy"), weighted like the loss.
    public var metrics: [String: [Double]] = [:]
    public var metricNames: [String] = []

    public init(loss: [Double] = []) { self.loss = loss }

    /// `{"loss": [0.5, 0.25], ...}`, each number written so that it reads back exactly (a loss
    /// that is not finite as null, which every JSON reader takes).
    public func json() -> String {
        func list(_ v: [Double]) -> JSON { .array(v.map { $0.isFinite ? .number($0) : .null }) }
        return JSON.object([("loss", list(loss))] + metricNames.map { ($0, list(metrics[$0] ?? [])) }).serialized
    }
}

/// Whether standard error is a terminal (then `fit` may draw a progress bar).
public func stderrIsTerminal() -> Bool { isatty(2) != 0 }

/// Trains `lib` on x (one array per input) and y (one per output).
/// - Parameters:
///   - options: epochs, batch size, shuffling, seed, verbosity.
///   - isTerminal: draw a progress bar redrawn with "\r" (true) or write one
///     plain line per epoch (false).
///   - progress: receives the progress text, newlines and "\r" included.
/// - Throws: ``KilnRuntimeError`` for bad data, a library error, or a NaN or
///   infinite batch loss (the message names the epoch and batch, 1-based).
public func fit(_ lib: CompiledLibrary, x: [HostTensor], y: [HostTensor], options: FitOptions,
                isTerminal: Bool = false, progress: (String) -> Void = { _ in }) throws -> History {
    var options = options
    if let b = lib.fixedBatch {
        // Stateful layers: batches of their fixed size, in row order, each carrying its state to the
        // next (Keras resets nothing between batches or epochs; reset_states does).
        options.batchSize = b
        options.shuffle = false
    }
    guard lib.canTrain else {
        throw KilnRuntimeError("'\(lib.path)' was compiled without a training step, so it cannot be trained.")
    }
    guard options.epochs >= 0 else { throw KilnRuntimeError("the number of epochs must not be negative (got \(options.epochs)).") }
    guard options.batchSize >= 1 else { throw KilnRuntimeError("the batch size must be at least 1 (got \(options.batchSize)).") }
    let (px, rows) = try lib.prepareAll(x, lib.inputs, role: "input", plural: "inputs")
    let (py, _) = try lib.prepareAll(y, lib.targets, role: "target", plural: "targets", rows: rows)
    guard rows > 0 else { throw KilnRuntimeError("there are no rows to train on.") }
    if let b = lib.fixedBatch, rows % b != 0 {
        throw KilnRuntimeError("model '\(lib.name)' has stateful layers for batches of exactly \(b) rows, so the training rows must be a multiple of \(b); got \(rows).")
    }

    lib.setSeed(options.seed)
    try lib.reserve(rows: min(options.batchSize, rows))
    let batches = (rows + options.batchSize - 1) / options.batchSize
    var history = History()
    history.metricNames = lib.metrics
    var order = Array(0..<rows)
    var bar = ProgressBar(batches: batches, isTerminal: isTerminal)
    func emit(_ text: String) { if options.verbose && !text.isEmpty { progress(text) } }

    for epoch in stride(from: 1, through: options.epochs, by: 1) {
        if options.shuffle { order = shuffledRows(rows, seed: options.seed, epoch: epoch) }
        emit(bar.startEpoch(epoch, of: options.epochs))
        var weighted = 0.0
        var metricSums = [Double](repeating: 0, count: lib.metrics.count)
        for b in 0..<batches {
            let lo = b * options.batchSize, hi = min(lo + options.batchSize, rows)
            let idx = options.shuffle ? Array(order[lo..<hi]) : nil
            let bx = px.map { gather($0, lo..<hi, idx) }, by = py.map { gather($0, lo..<hi, idx) }
            let loss = try lib.step(bx, by, rows: hi - lo, update: true)
            guard loss.isFinite else {
                emit(bar.abort())
                throw KilnRuntimeError("loss became \(loss.isNaN ? "NaN" : "infinite") at epoch \(epoch), batch \(b + 1); training stopped: lower the learning rate or look for NaN or extreme values in the data.")
            }
            weighted += Double(loss) * Double(hi - lo)
            for (k, v) in lib.lastMetrics().enumerated() { metricSums[k] += Double(v) * Double(hi - lo) }
            emit(bar.update(batch: b + 1, meanLoss: weighted / Double(hi)))
        }
        let epochLoss = weighted / Double(rows)
        history.loss.append(epochLoss)
        for (k, name) in lib.metrics.enumerated() { history.metrics[name, default: []].append(metricSums[k] / Double(rows)) }
        emit(bar.endEpoch(meanLoss: epochLoss, metrics: lib.metrics.map { ($0, history.metrics[$0]?.last ?? .nan) }))
    }
    return history
}

/// Rows `range` (or the rows `idx`, when shuffled) of one prepared array.
func gather(_ p: Prepared, _ range: Range<Int>, _ idx: [Int]?) -> Prepared {
    let e = p.rowElements
    func pick<T>(_ a: [T]) -> [T] {
        guard let idx else { return Array(a[range.lowerBound * e..<range.upperBound * e]) }
        var out = [T]()
        out.reserveCapacity(idx.count * e)
        for r in idx { out.append(contentsOf: a[r * e..<(r + 1) * e]) }
        return out
    }
    switch p.data {
    case .floats(let a): return Prepared(data: .floats(pick(a)), rows: range.count, rowElements: e, steps: p.steps)
    case .ints(let a): return Prepared(data: .ints(pick(a)), rows: range.count, rowElements: e, steps: p.steps)
    }
}

/// The row order of one shuffled epoch: a Fisher-Yates permutation driven by
/// splitmix64, a function of (seed, epoch) alone.
public func shuffledRows(_ rows: Int, seed: UInt64, epoch: Int) -> [Int] {
    var random = SplitMix64(state: seed ^ (UInt64(truncatingIfNeeded: epoch) &* 0xD1B5_4A32_D192_ED03))
    func next() -> UInt64 { random.next() }
    var order = Array(0..<rows)
    var i = rows - 1
    while i > 0 {
        // Unbiased index in 0...i (Lemire's multiply-shift with rejection).
        let bound = UInt64(i + 1)
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold { m = next().multipliedFullWidth(by: bound) }
        }
        order.swapAt(i, Int(m.high))
        i -= 1
    }
    return order
}

/// Keras-like progress text; each method returns what to write ("" for nothing).
struct ProgressBar {
    let batches: Int
    let isTerminal: Bool
    var epochText = ""
    var lastDraw = 0.0
    var drawn = false
    static let width = 30

    init(batches: Int, isTerminal: Bool) {
        self.batches = batches; self.isTerminal = isTerminal
    }

    mutating func startEpoch(_ epoch: Int, of epochs: Int) -> String {
        epochText = "Epoch \(epoch)/\(epochs)"
        drawn = false
        return isTerminal ? epochText + "\n" : ""
    }

    /// Redraws at most every 50 ms, and always for the last batch.
    mutating func update(batch: Int, meanLoss: Double) -> String {
        guard isTerminal else { return "" }
        let now = monotonicSeconds()
        if batch < batches && drawn && now - lastDraw < 0.05 { return "" }
        lastDraw = now
        drawn = true
        return "\r" + line(batch: batch, loss: meanLoss)
    }

    /// The epoch's closing line; metrics follow the loss as " - name: value".
    func endEpoch(meanLoss: Double, metrics: [(String, Double)] = []) -> String {
        let extra = metrics.map { " - \($0.0): " + fixed($0.1, isTerminal ? 4 : 6) }.joined()
        return isTerminal ? "\r" + line(batch: batches, loss: meanLoss) + extra + "\n"
            : epochText + " - loss: " + fixed(meanLoss, 6) + extra + "\n"
    }

    func abort() -> String { isTerminal && drawn ? "\n" : "" }

    /// `12/40 [=====>........................] - loss: 0.1234`
    func line(batch: Int, loss: Double) -> String {
        let digits = String(batches).count
        let count = String(repeating: " ", count: digits - String(batch).count) + "\(batch)/\(batches)"
        let filled = Int(Double(Self.width) * Double(batch) / Double(max(batches, 1)))
        var bar = ""
        if filled > 0 { bar += String(repeating: "=", count: filled - 1) + (batch < batches ? ">" : "=") }
        bar += String(repeating: ".", count: Self.width - filled)
        let l = abs(loss) >= 1e-3 || loss == 0 ? fixed(loss, 4) : scientific(loss, 4)
        return "\(count) [\(bar)] - loss: \(l)"
    }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// `v` with `digits` decimals, like printf("%.*f").
func fixed(_ v: Double, _ digits: Int) -> String { cFormat("%.*f", digits, v) }

/// `v` like printf("%.*e").
func scientific(_ v: Double, _ digits: Int) -> String { cFormat("%.*e", digits, v) }

private func cFormat(_ format: String, _ digits: Int, _ v: Double) -> String {
    var buf = [CChar](repeating: 0, count: 64)
    _ = withVaList([Int32(digits), v]) { vsnprintf(&buf, buf.count, format, $0) }
    return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}
