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
    /// As Keras' `verbose`: 0 silent, 1 the progress bar, 2 one line per epoch;
    /// nil: 1 on a terminal, 2 elsewhere (0 when `verbose` is false).
    public var verbosity: Int? = nil
    /// As Keras' `initial_epoch`: epochs are numbered from initialEpoch + 1 to `epochs`
    /// (shuffling follows the epoch's number, so a resumed run shuffles as an unbroken one).
    public var initialEpoch: Int = 0
    /// As Keras' `validation_split`: the LAST fraction of the rows, taken before any
    /// shuffling, is held out and evaluated after each epoch (0: none).
    public var validationSplit: Double = 0
    /// Rows per validation call (nil: `batchSize`, as Keras).
    public var validationBatchSize: Int? = nil
    public var earlyStopping: EarlyStopping? = nil
    public var checkpoint: Checkpoint? = nil

    public init(epochs: Int = 1, batchSize: Int = 32, shuffle: Bool = true, seed: UInt64 = 0, verbose: Bool = true) {
        self.epochs = epochs; self.batchSize = batchSize; self.shuffle = shuffle; self.seed = seed; self.verbose = verbose
    }
}

/// Whether a monitored value improves by going down or up (Keras' `mode`).
public enum MonitorMode: String, Sendable, Equatable {
    /// min for a loss, max for an accuracy, as Keras' "auto" decides.
    case auto, min, max
}

/// keras.callbacks.EarlyStopping: stop when `monitor` has not improved by more than
/// `minDelta` for `patience` epochs; optionally put back the weights of the best epoch.
public struct EarlyStopping: Sendable, Equatable {
    public var monitor: String
    public var patience: Int
    public var minDelta: Double
    public var mode: MonitorMode
    public var restoreBestWeights: Bool
    /// Keras' `baseline`: the wait only restarts on values better than it.
    public var baseline: Double?

    public init(monitor: String = "val_loss", patience: Int = 0, minDelta: Double = 0, mode: MonitorMode = .auto,
                restoreBestWeights: Bool = false, baseline: Double? = nil) {
        self.monitor = monitor; self.patience = patience; self.minDelta = abs(minDelta); self.mode = mode
        self.restoreBestWeights = restoreBestWeights; self.baseline = baseline
    }
}

/// keras.callbacks.ModelCheckpoint(save_best_only=True) for weights: after each epoch whose
/// `monitor` beats every earlier one, `directory` gets 000.npy, 001.npy, ... in
/// `get_weights()` order and checkpoint.json (`{"epoch": 1-based, "monitor": name, "value": v}`).
public struct Checkpoint: Sendable, Equatable {
    public var directory: String
    public var monitor: String
    public var mode: MonitorMode

    public init(directory: String, monitor: String = "val_loss", mode: MonitorMode = .auto) {
        self.directory = directory; self.monitor = monitor; self.mode = mode
    }
}

/// What `fit` returns: one loss per epoch, the metrics, and the validation figures.
public struct History: Sendable, Equatable {
    /// Per epoch, the batch-size-weighted mean of the batch losses, each
    /// computed before that batch's update (as Keras reports it).
    public var loss: [Double]
    /// Per epoch, each compiled metric (e.g. "accuracy"), weighted like the loss, then
    /// "val_loss" and "val_" + each metric when there is validation data.
    public var metrics: [String: [Double]] = [:]
    /// The keys of `metrics` in the order Keras' logs list them (the history file's order).
    public var metricNames: [String] = []
    /// The 1-based epoch at which early stopping ended training (nil: it did not).
    public var stoppedEpoch: Int? = nil
    /// The 1-based epoch whose weights early stopping put back (nil: none were).
    public var restoredEpoch: Int? = nil

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

/// Which way `monitor` improves: true when lower is better.
func lowerIsBetter(_ monitor: String, _ mode: MonitorMode) throws -> Bool {
    switch mode {
    case .min: return true
    case .max: return false
    case .auto:
        let name = monitor.hasPrefix("val_") ? String(monitor.dropFirst(4)) : monitor
        if name == "loss" || name.hasSuffix("_loss") { return true }
        if name.hasSuffix("accuracy") || name == "acc" || name.hasSuffix("_acc") { return false }
        throw KilnRuntimeError("cannot tell whether '\(monitor)' should go down or up; give the mode (min or max).")
    }
}

/// Trains `lib` on x (one array per input) and y (one per output).
/// - Parameters:
///   - validation: arrays evaluated after each epoch (Keras' `validation_data`); they
///     take the place of `options.validationSplit`.
///   - options: epochs, batch size, shuffling, seed, verbosity, callbacks.
///   - isTerminal: with `options.verbosity` nil, draw a progress bar redrawn with "\r"
///     (true) or write one plain line per epoch (false).
///   - progress: receives the progress text, newlines and "\r" included.
/// - Throws: ``KilnRuntimeError`` for bad data, a library error, or a NaN or
///   infinite batch loss (the message names the epoch and batch, 1-based).
public func fit(_ lib: CompiledLibrary, x: [HostTensor], y: [HostTensor], validation: (x: [HostTensor], y: [HostTensor])? = nil,
                options: FitOptions, isTerminal: Bool = false, progress: (String) -> Void = { _ in }) throws -> History {
    var options = options
    if let b = lib.fixedBatch {
        // Stateful layers: batches of their fixed size, in row order, each carrying its state to the
        // next (Keras resets nothing between batches or epochs; reset_states does).
        options.batchSize = b
        options.shuffle = false
        options.validationBatchSize = b
    }
    guard lib.canTrain else {
        throw KilnRuntimeError("'\(lib.path)' was compiled without a training step, so it cannot be trained.")
    }
    guard options.epochs >= 0 else { throw KilnRuntimeError("the number of epochs must not be negative (got \(options.epochs)).") }
    guard options.batchSize >= 1 else { throw KilnRuntimeError("the batch size must be at least 1 (got \(options.batchSize)).") }
    guard options.initialEpoch >= 0 else { throw KilnRuntimeError("the initial epoch must not be negative (got \(options.initialEpoch)).") }
    let valBatch = options.validationBatchSize ?? options.batchSize
    guard valBatch >= 1 else { throw KilnRuntimeError("the validation batch size must be at least 1 (got \(valBatch)).") }
    let verbosity = options.verbosity ?? (options.verbose ? (isTerminal ? 1 : 2) : 0)
    guard (0...2).contains(verbosity) else { throw KilnRuntimeError("verbose must be 0, 1 or 2 (got \(verbosity)).") }
    var (px, rows) = try lib.prepareAll(x, lib.inputs, role: "input", plural: "inputs")
    var (py, _) = try lib.prepareAll(y, lib.targets, role: "target", plural: "targets", rows: rows)
    guard rows > 0 else { throw KilnRuntimeError("there are no rows to train on.") }

    // Validation data: given, or the last fraction of the rows (Keras' train_validation_split).
    var vx: [Prepared] = [], vy: [Prepared] = [], vrows = 0
    if let v = validation {
        guard options.validationSplit == 0 else {
            throw KilnRuntimeError("give either validation data or a validation split, not both.")
        }
        (vx, vrows) = try lib.prepareAll(v.x, lib.inputs, role: "validation input", plural: "validation inputs")
        (vy, _) = try lib.prepareAll(v.y, lib.targets, role: "validation target", plural: "validation targets", rows: vrows)
        guard vrows > 0 else { throw KilnRuntimeError("the validation data has no rows.") }
    } else if options.validationSplit != 0 {
        let f = options.validationSplit
        guard f > 0, f < 1 else { throw KilnRuntimeError("the validation split must be between 0 and 1 (got \(f)).") }
        let splitAt = Int((Double(rows) * (1 - f)).rounded(.down))
        guard splitAt > 0, splitAt < rows else {
            throw KilnRuntimeError("the training data has \(rows) rows, too few to hold out a validation split of \(f); give more rows or another split.")
        }
        vx = px.map { gather($0, splitAt..<rows, nil) }; vy = py.map { gather($0, splitAt..<rows, nil) }
        px = px.map { gather($0, 0..<splitAt, nil) }; py = py.map { gather($0, 0..<splitAt, nil) }
        vrows = rows - splitAt; rows = splitAt
    }
    if let b = lib.fixedBatch {
        if rows % b != 0 {
            throw KilnRuntimeError("model '\(lib.name)' has stateful layers for batches of exactly \(b) rows, so the training rows must be a multiple of \(b); got \(rows).")
        }
        if vrows % b != 0 {
            throw KilnRuntimeError("model '\(lib.name)' has stateful layers for batches of exactly \(b) rows, so the validation rows must be a multiple of \(b); got \(vrows).")
        }
    }

    // The names of the epoch's logs, and the callbacks' monitors among them.
    let trainNames = ["loss"] + lib.metrics
    let logNames = trainNames + (vrows > 0 ? trainNames.map { "val_" + $0 } : [])
    func checkMonitor(_ monitor: String, _ what: String) throws {
        guard logNames.contains(monitor) else {
            let hint = monitor.hasPrefix("val_") && vrows == 0 ? " (give validation data or a validation split)" : ""
            throw KilnRuntimeError("\(what) monitors '\(monitor)', which training does not report\(hint); it reports \(logNames.joined(separator: ", ")).")
        }
    }
    var stopLower = true, saveLower = true
    if let es = options.earlyStopping {
        guard es.patience >= 0 else { throw KilnRuntimeError("the early-stopping patience must not be negative (got \(es.patience)).") }
        try checkMonitor(es.monitor, "early stopping")
        stopLower = try lowerIsBetter(es.monitor, es.mode)
    }
    if let cp = options.checkpoint {
        try checkMonitor(cp.monitor, "the checkpoint")
        saveLower = try lowerIsBetter(cp.monitor, cp.mode)
    }

    lib.setSeed(options.seed)
    try lib.reserve(rows: max(min(options.batchSize, rows), min(valBatch, vrows)))
    let batches = (rows + options.batchSize - 1) / options.batchSize
    var history = History()
    history.metricNames = Array(logNames.dropFirst())
    var order = Array(0..<rows)
    var bar = ProgressBar(batches: batches, verbosity: verbosity)
    func emit(_ text: String) { if !text.isEmpty { progress(text) } }

    // EarlyStopping's and ModelCheckpoint's state, as Keras keeps it (epochs 0-based there).
    // Keras resets `best` to None when training begins; a baseline only gates the wait.
    var wait = 0, best: Double? = nil, bestWeights: [HostTensor]? = nil, bestEpoch = 0
    var saveBest: Double? = nil
    func improves(_ v: Double, over ref: Double?, lower: Bool, delta: Double) -> Bool {
        guard let ref else { return true }
        return lower ? v + delta < ref : v - delta > ref
    }

    var epoch = options.initialEpoch
    while epoch < options.epochs {
        epoch += 1
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
            emit(bar.update(batch: b + 1, values: zip(trainNames, [weighted] + metricSums).map { ($0, $1 / Double(hi)) }))
        }
        var logs = zip(trainNames, [weighted] + metricSums).map { ($0, $1 / Double(rows)) }
        if vrows > 0 {
            let v = try evaluateBatches(lib, vx, vy, rows: vrows, batchSize: valBatch)
            logs += zip(trainNames, v).map { ("val_" + $0, $1) }
        }
        history.loss.append(logs[0].1)
        for (name, v) in logs.dropFirst() { history.metrics[name, default: []].append(v) }
        emit(bar.finish(values: logs))
        func value(_ name: String) -> Double { logs.first { $0.0 == name }!.1 }

        if let cp = options.checkpoint {
            let v = value(cp.monitor)
            if improves(v, over: saveBest, lower: saveLower, delta: 0) {
                saveBest = v
                try writeCheckpoint(lib, cp, epoch: epoch, value: v)
            }
        }
        if let es = options.earlyStopping {
            let v = value(es.monitor), e = epoch - 1
            if es.restoreBestWeights && bestWeights == nil { bestWeights = lib.getWeights(); bestEpoch = e }
            wait += 1
            if improves(v, over: best, lower: stopLower, delta: es.minDelta) {
                best = v; bestEpoch = e
                if es.restoreBestWeights { bestWeights = lib.getWeights() }
                if es.baseline == nil || improves(v, over: es.baseline, lower: stopLower, delta: es.minDelta) { wait = 0 }
            } else if wait >= es.patience && e > 0 {
                history.stoppedEpoch = epoch
                break
            }
        }
    }
    if let es = options.earlyStopping {
        if let s = history.stoppedEpoch, verbosity > 0 { emit("Epoch \(s): early stopping\n") }
        if es.restoreBestWeights, let w = bestWeights {
            if verbosity > 0 { emit("Restoring model weights from the end of the best epoch: \(bestEpoch + 1).\n") }
            try lib.setWeights(w)
            history.restoredEpoch = bestEpoch + 1
        }
    }
    return history
}

/// The loss and each metric over all rows: batch results weighted by the batch's rows,
/// as Keras' evaluate averages them.
/// `onBatch` gets the batch number (1-based) and the running means after it.
func evaluateBatches(_ lib: CompiledLibrary, _ x: [Prepared], _ y: [Prepared], rows: Int, batchSize: Int,
                     onBatch: (Int, [Double]) -> Void = { _, _ in }) throws -> [Double] {
    var sums = [Double](repeating: 0, count: 1 + lib.metrics.count)
    var lo = 0, b = 0
    while lo < rows {
        let hi = min(lo + batchSize, rows)
        let loss = try lib.step(x.map { gather($0, lo..<hi, nil) }, y.map { gather($0, lo..<hi, nil) }, rows: hi - lo, update: false)
        sums[0] += Double(loss) * Double(hi - lo)
        for (k, v) in lib.lastMetrics().enumerated() { sums[k + 1] += Double(v) * Double(hi - lo) }
        b += 1
        onBatch(b, sums.map { $0 / Double(hi) })
        lo = hi
    }
    return sums.map { $0 / Double(rows) }
}

/// What `evaluate` returns: the loss and each metric, in Keras' order.
public struct Evaluation: Sendable, Equatable {
    /// "loss", then the compiled metrics.
    public var names: [String]
    public var values: [Double]

    /// `{"loss": 0.25, "accuracy": 0.75}` (Keras' `return_dict=True`); not finite: null.
    public func json() -> String {
        JSON.object(zip(names, values).map { ($0, $1.isFinite ? .number($1) : .null) }).serialized
    }

    /// `loss: 0.250000 - accuracy: 0.750000`.
    public var line: String { zip(names, values).map { "\($0): " + fixed($1, 6) }.joined(separator: " - ") }
}

/// As Keras' `model.evaluate`: the loss and metrics over every row, `batchSize` rows per
/// call (inference: dropout off), batch results weighted by their rows.
/// - Parameter verbosity: 1 draws Keras' progress bar through `progress`; 0 and 2 write nothing.
public func evaluate(_ lib: CompiledLibrary, x: [HostTensor], y: [HostTensor], batchSize: Int = 32, verbosity: Int = 0,
                     progress: (String) -> Void = { _ in }) throws -> Evaluation {
    guard lib.canTrain else {
        throw KilnRuntimeError("'\(lib.path)' was compiled without a loss, so it cannot be evaluated; recompile it with --loss.")
    }
    guard batchSize >= 1 else { throw KilnRuntimeError("the batch size must be at least 1 (got \(batchSize)).") }
    let (px, rows) = try lib.prepareAll(x, lib.inputs, role: "input", plural: "inputs")
    let (py, _) = try lib.prepareAll(y, lib.targets, role: "target", plural: "targets", rows: rows)
    guard rows > 0 else { throw KilnRuntimeError("there are no rows to evaluate.") }
    var batchSize = batchSize
    if let b = lib.fixedBatch {
        // Stateful layers: batches of their fixed size, in row order.
        guard rows % b == 0 else {
            throw KilnRuntimeError("model '\(lib.name)' has stateful layers for batches of exactly \(b) rows, so the rows must be a multiple of \(b); got \(rows).")
        }
        batchSize = b
    }
    try lib.reserve(rows: min(batchSize, rows))
    var bar = ProgressBar(batches: (rows + batchSize - 1) / batchSize, verbosity: verbosity == 1 ? 1 : 0)
    func emit(_ text: String) { if !text.isEmpty { progress(text) } }
    emit(bar.startEpoch(nil, of: 1))
    let names = ["loss"] + lib.metrics
    let values = try evaluateBatches(lib, px, py, rows: rows, batchSize: batchSize) { b, running in
        emit(bar.update(batch: b, values: Array(zip(names, running))))
    }
    emit(bar.finish(values: Array(zip(names, values))))
    return Evaluation(names: names, values: values)
}

/// Writes the weights into `cp.directory` (each file through a temporary name, so that a
/// reader never sees half a file) and checkpoint.json naming the epoch.
func writeCheckpoint(_ lib: CompiledLibrary, _ cp: Checkpoint, epoch: Int, value: Double) throws {
    let dir = cp.directory
    guard mkdirAll(dir) else { throw KilnRuntimeError("cannot create the checkpoint directory '\(dir)'.") }
    func place(_ tmp: String, _ path: String) throws {
        guard rename(tmp, path) == 0 else { throw KilnRuntimeError("cannot write '\(path)': \(String(cString: strerror(errno))).") }
    }
    for (i, w) in lib.getWeights().enumerated() {
        let name = dir + "/" + String(repeating: "0", count: max(0, 3 - String(i).count)) + "\(i).npy"
        try NPY.write(w, path: name + ".tmp")
        try place(name + ".tmp", name)
    }
    let info = JSON.object([("epoch", .number(Double(epoch))), ("monitor", .string(cp.monitor)),
                            ("value", value.isFinite ? .number(value) : .null)]).serialized + "\n"
    let path = dir + "/checkpoint.json"
    guard let f = fopen(path + ".tmp", "w") else { throw KilnRuntimeError("cannot write '\(path)': \(String(cString: strerror(errno))).") }
    fputs(info, f)
    fclose(f)
    try place(path + ".tmp", path)
}

/// mkdir -p.
private func mkdirAll(_ path: String) -> Bool {
    var isDir = stat()
    if stat(path, &isDir) == 0 { return (isDir.st_mode & S_IFMT) == S_IFDIR }
    let parent = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    if !parent.isEmpty && parent != path { _ = mkdirAll(parent) }
    return mkdir(path, 0o755) == 0 || errno == EEXIST
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
