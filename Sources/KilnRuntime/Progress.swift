// The progress text of `fit` and `evaluate`: Keras 3's progress bar
// (keras/src/utils/progbar.py, verbose 1) redrawn in place with "\r", and one
// plain line per epoch (verbose 2).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Keras-like progress text; each method returns what to write ("" for nothing).
struct ProgressBar {
    /// Batches per epoch (Keras' `target`).
    let batches: Int
    /// 0: silent; 1: the bar, redrawn in place; 2: one line per epoch.
    let verbosity: Int
    /// Seconds from an arbitrary origin (a parameter so that tests can fix the times).
    var clock: () -> Double = monotonicSeconds
    var epochText = ""
    /// As Progbar: the start of the epoch, the time after its first step, the last redraw.
    var start = 0.0
    var afterFirstStep: Double? = nil
    var lastUpdate = -Double.infinity
    var previousWidth = 0
    var drawn = false
    /// Keras' Progbar width and minimum redraw interval.
    static let width = 20
    static let interval = 0.05

    init(batches: Int, verbosity: Int, clock: @escaping () -> Double = monotonicSeconds) {
        self.batches = batches; self.verbosity = verbosity; self.clock = clock
    }

    /// Starts an epoch (`epoch` nil for evaluate): Keras prints "Epoch i/E" on its own line
    /// when there is more than one epoch; the one-line form keeps it as the line's start.
    mutating func startEpoch(_ epoch: Int?, of epochs: Int) -> String {
        start = clock(); afterFirstStep = nil; lastUpdate = -.infinity; previousWidth = 0; drawn = false
        epochText = epoch.map { "Epoch \($0)/\(epochs)" } ?? ""
        return verbosity == 1 && epoch != nil && epochs > 1 ? epochText + "\n" : ""
    }

    /// After batch `batch` (1-based): the running values. Redraws at most every 50 ms.
    mutating func update(batch: Int, values: [(String, Double)]) -> String {
        let now = clock()
        let perStep = stepDuration(batch, now)
        guard verbosity == 1, now - lastUpdate >= Self.interval else { return "" }
        lastUpdate = now
        return draw(batch: batch, perStep: perStep, now: now, values: values, final: false)
    }

    /// The end of an epoch (after validation), with every value of the epoch's logs.
    mutating func finish(values: [(String, Double)]) -> String {
        let now = clock()
        let perStep = stepDuration(batches, now)
        switch verbosity {
        case 1: return draw(batch: batches, perStep: perStep, now: now, values: values, final: true)
        case 2:
            let head = epochText.isEmpty ? "" : epochText + " - "
            return head + values.map { "\($0.0): " + fixed($0.1, 6) }.joined(separator: " - ") + "\n"
        default: return ""
        }
    }

    /// Ends a bar cut short by an error.
    func abort() -> String { verbosity == 1 && drawn ? "\n" : "" }

    /// Progbar._estimate_step_duration: the first step is left out once there are more.
    mutating func stepDuration(_ current: Int, _ now: Double) -> Double {
        guard current > 0 else { return 0 }
        let t: Double
        if let a = afterFirstStep, current > 1 { t = (now - a) / Double(current - 1) } else { t = (now - start) / Double(current) }
        if current == 1 { afterFirstStep = now }
        return t
    }

    /// One redraw of the bar, as Progbar.update with verbose=1 writes it: count, bar,
    /// ETA (or the elapsed time once final), time per step, values; padded with spaces
    /// over a longer previous line.
    mutating func draw(batch: Int, perStep: Double, now: Double, values: [(String, Double)], final: Bool) -> String {
        var visible = 0
        var text = "\r"
        if batches > 0 {
            let digits = String(batches).count
            let count = String(repeating: " ", count: max(0, digits - String(batch).count)) + "\(batch)/\(batches)"
            let filled = min(Self.width, Int(Double(Self.width) * Double(batch) / Double(batches)))
            text += "\u{1B}[1m" + count + "\u{1B}[0m "
            if filled > 0 { text += "\u{1B}[32m" + String(repeating: "━", count: filled) + "\u{1B}[0m" }
            text += "\u{1B}[37m" + String(repeating: "━", count: Self.width - filled) + "\u{1B}[0m"
            visible += count.count + 1 + Self.width
        }
        let time: String
        if final || batches <= 0 {
            time = fixed(now - start, 0) + "s"
        } else {
            let eta = perStep * Double(batches - batch)
            if eta > 3600 { time = "\(Int(eta) / 3600):" + twoDigits(Int(eta) % 3600 / 60) + ":" + twoDigits(Int(eta) % 60) }
            else if eta > 60 { time = "\(Int(eta) / 60):" + twoDigits(Int(eta) % 60) }
            else { time = "\(Int(eta))s" }
        }
        var info = " " + time + Self.formatTime(perStep)
        for (name, v) in values { info += " - \(name): " + Self.formatValue(v) }
        text += " \u{1B}[1m" + time + "\u{1B}[0m" + info.dropFirst(1 + time.count)
        visible += info.count
        if previousWidth > visible { text += String(repeating: " ", count: previousWidth - visible) }
        previousWidth = visible
        drawn = true
        return final ? text + "\n" : text
    }

    /// Progbar._format_time: " 81ms/step", " 3s/step", " 950us/step".
    static func formatTime(_ t: Double) -> String {
        if t >= 1 || t == 0 { return " " + fixed(t, 0) + "s/step" }
        if t >= 1e-3 { return " " + fixed(t * 1000, 0) + "ms/step" }
        return " " + fixed(t * 1e6, 0) + "us/step"
    }

    /// A value in the bar: 4 decimals, or 4 significant digits in e-notation when
    /// |v| <= 1e-3 (Progbar's rule).
    static func formatValue(_ v: Double) -> String { abs(v) > 1e-3 ? fixed(v, 4) : scientific(v, 4) }
}

private func twoDigits(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }

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
