import Foundation
import KilnSupport

/// Draws training curves from `kiln fit --history` files as one SVG: the loss, and with
/// `keys` any other history key (accuracy, val_loss, ...). Keys that measure the same
/// thing share a panel (loss with val_loss, accuracy with val_accuracy; validation dashed);
/// other metrics get panels of their own beside the loss. Ticks fall on round numbers
/// (steps of 1, 2 or 5 times a power of ten).
public enum LossPlot {
    public struct PlotError: Error, CustomStringConvertible { public var description: String }

    /// One curve: its legend label, values per epoch (NaN: a gap), and whether it is dashed.
    public struct Series {
        public var label: String
        public var values: [Double]
        public var dashed: Bool
        public init(label: String, values: [Double], dashed: Bool = false) {
            self.label = label; self.values = values; self.dashed = dashed
        }
    }

    /// One panel: a y-axis title and its curves.
    public struct Panel {
        public var title: String
        public var series: [Series]
        public init(title: String, series: [Series]) { self.title = title; self.series = series }
    }

    public static func write(histories: [String], keys: [String] = [], to path: String) throws {
        guard !histories.isEmpty else { throw PlotError(description: "no history files given") }
        var wanted = ["loss"]
        for k in keys where !wanted.contains(k) { wanted.append(k) }
        var panels: [Panel] = []
        func panelTitle(_ key: String) -> String { key.hasPrefix("val_") ? String(key.dropFirst(4)) : key }
        for key in wanted where !panels.contains(where: { $0.title == panelTitle(key) }) {
            panels.append(Panel(title: panelTitle(key), series: []))
        }
        for h in histories {
            // A history is small: refuse a file larger than Kiln parses as JSON before reading it.
            if let attrs = try? FileManager.default.attributesOfItem(atPath: h),
               (attrs[.type] as? FileAttributeType) == .typeRegular,
               let size = (attrs[.size] as? NSNumber)?.intValue, size > KilnLimits.maxJSONBytes {
                throw PlotError(description: "\(h) is \(KilnLimits.describe(size)), larger than a history file Kiln reads (\(KilnLimits.describe(KilnLimits.maxJSONBytes)); \(KilnLimits.overrideHint))")
            }
            guard let data = FileManager.default.contents(atPath: h) else {
                throw PlotError(description: "cannot read history file \(h)")
            }
            let lists = try readHistory([UInt8](data), name: h, keys: wanted)
            let stem = ((h as NSString).lastPathComponent as NSString).deletingPathExtension
            for (key, values) in zip(wanted, lists) {
                let label = wanted.count == 1 ? stem : (histories.count == 1 ? key : "\(stem) \(key)")
                let p = panels.firstIndex { $0.title == panelTitle(key) }!
                panels[p].series.append(Series(label: label, values: values, dashed: key.hasPrefix("val_")))
            }
        }
        try svg(panels).write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Ticks on round numbers covering [lo, hi]: a step of 1, 2 or 5 times a power of ten,
    /// chosen so that at most `maxCount` intervals span the range, and the multiples of the
    /// step from the last one at or below lo to the first one at or above hi.
    public static func ticks(lo: Double, hi: Double, maxCount: Int = 6) -> (step: Double, values: [Double]) {
        var lo = lo, hi = hi
        if !(lo.isFinite && hi.isFinite) { lo = 0; hi = 1 }
        if hi < lo { swap(&lo, &hi) }
        if hi == lo { let d = lo == 0 ? 1 : abs(lo) / 10; lo -= d; hi += d }
        let raw = (hi - lo) / Double(max(1, maxCount))
        let power = pow(10, (log10(raw)).rounded(.down))
        var step = power * 10
        for m in [1.0, 2.0, 5.0, 10.0] where power * m >= raw * (1 - 1e-9) { step = power * m; break }
        let first = (lo / step * (1 + 1e-12)).rounded(.down), last = (hi / step * (1 - 1e-12)).rounded(.up)
        var values: [Double] = []
        var k = first
        while k <= last + 0.5 {
            let v = k * step
            values.append(abs(v) < step * 1e-9 ? 0 : v)
            k += 1
        }
        return (step, values)
    }

    /// Integer ticks (epochs 1...count) on 1, 2, 5 steps.
    public static func epochTicks(count: Int, maxCount: Int = 10) -> [Int] {
        guard count > 1 else { return [1] }
        var step = 1, power = 1
        outer: while true {
            for m in [1, 2, 5] where (count - 1) / (power * m) <= maxCount { step = power * m; break outer }
            power *= 10
        }
        var out = [1]
        var e = step
        while e <= count { if e != 1 { out.append(e) }; e += step }
        return out
    }

    /// A tick's text with the digits its step needs: 0.25, 2.5, 40.
    public static func tickText(_ v: Double, step: Double) -> String {
        let digits = max(0, -Int((log10(step) + 1e-9).rounded(.down)))
        return String(format: "%.\(min(digits, 10))f", v)
    }

    /// Loss curves of several runs in one panel (the older entry point).

    /// The most values one history list may hold.
    public static let maxEpochs = 1_000_000

    /// The losses of a history file's text ({"loss": [numbers or null]}); `name` is used in messages.
    public static func readHistory(_ bytes: [UInt8], name: String) throws -> [Double] {
        try readHistory(bytes, name: name, keys: ["loss"])[0]
    }

    /// The lists `keys` of a history file's text ({"loss": [...], "accuracy": [...], "val_loss": [...]}),
    /// numbers or null (a value that was not finite: NaN, a gap in the curve); `name` is used in messages.
    public static func readHistory(_ bytes: [UInt8], name: String, keys: [String]) throws -> [[Double]] {
        if bytes.count > KilnLimits.maxJSONBytes {
            throw PlotError(description: "\(name) is \(KilnLimits.describe(bytes.count)), larger than a history file Kiln reads (\(KilnLimits.describe(KilnLimits.maxJSONBytes)); \(KilnLimits.overrideHint))")
        }
        guard let obj = try? JSON.parse(bytes), obj["loss"]?.array != nil else {
            throw PlotError(description: "\(name) is not a history file: expected {\"loss\": [numbers]}")
        }
        return try keys.map { key in
            guard let list = obj[key]?.array else {
                throw PlotError(description: "\(name) has no \"\(key)\" list; --key takes a key of the history file, such as accuracy or val_loss")
            }
            // One value per epoch; the SVG takes tens of bytes per value.
            if list.count > maxEpochs {
                throw PlotError(description: "\(name) holds \(list.count) values of \"\(key)\", more epochs than Kiln plots (\(maxEpochs))")
            }
            let values = list.compactMap { $0.isNull ? Double.nan : $0.double }
            guard values.count == list.count else { throw PlotError(description: "\(name): \"\(key)\" holds a value that is not a number") }
            return values
        }
    }

    public static func svg(_ series: [(String, [Double])]) -> String {
        svg([Panel(title: "loss", series: series.map { Series(label: $0.0, values: $0.1) })])
    }

    /// The SVG text: panels side by side, each with axes, round ticks and its curves; one legend.
    public static func svg(_ panels: [Panel]) -> String {
        let (pw, h, left, gap, right, top, bottom) = (520.0, 420.0, 70.0, 60.0, 190.0, 30.0, 50.0)
        let w = left + Double(panels.count) * pw + Double(max(0, panels.count - 1)) * gap + right
        let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        func num(_ v: Double) -> String { String(format: "%.2f", v) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        var legend: [(String, String, Bool)] = []
        for (pi, panel) in panels.enumerated() {
            let x0 = left + Double(pi) * (pw + gap), x1 = x0 + pw - 20
            let all = panel.series.flatMap(\.values).filter(\.isFinite)
            let yt = ticks(lo: all.min() ?? 0, hi: all.max() ?? 1)
            let lo = yt.values.first!, hi = yt.values.last!
            let maxEpochs = max(panel.series.map(\.values.count).max() ?? 1, 2)
            func x(_ i: Int) -> Double { x0 + Double(i) / Double(maxEpochs - 1) * (x1 - x0) }
            func y(_ v: Double) -> Double { top + (1 - (v - lo) / (hi - lo)) * (h - top - bottom) }
            s += "<g class=\"panel\" id=\"\(esc(panel.title))\">\n"
            for v in yt.values {
                s += "<line x1=\"\(num(x0))\" y1=\"\(num(y(v)))\" x2=\"\(num(x1))\" y2=\"\(num(y(v)))\" stroke=\"#e0e0e0\"/>\n"
                s += "<text class=\"ytick\" x=\"\(num(x0 - 6))\" y=\"\(num(y(v) + 4))\" text-anchor=\"end\">\(tickText(v, step: yt.step))</text>\n"
            }
            s += "<line x1=\"\(num(x0))\" y1=\"\(num(h - bottom))\" x2=\"\(num(x1))\" y2=\"\(num(h - bottom))\" stroke=\"black\"/>\n"
            s += "<line x1=\"\(num(x0))\" y1=\"\(num(top))\" x2=\"\(num(x0))\" y2=\"\(num(h - bottom))\" stroke=\"black\"/>\n"
            for e in epochTicks(count: maxEpochs) {
                s += "<line x1=\"\(num(x(e - 1)))\" y1=\"\(num(h - bottom))\" x2=\"\(num(x(e - 1)))\" y2=\"\(num(h - bottom + 4))\" stroke=\"black\"/>\n"
                s += "<text class=\"xtick\" x=\"\(num(x(e - 1)))\" y=\"\(num(h - bottom + 16))\" text-anchor=\"middle\">\(e)</text>\n"
            }
            s += "<text x=\"\(num((x0 + x1) / 2))\" y=\"\(num(h - 10))\" text-anchor=\"middle\">epoch</text>\n"
            let mid = (top + h - bottom) / 2, tx = x0 - 52
            s += "<text x=\"\(num(tx))\" y=\"\(num(mid))\" transform=\"rotate(-90 \(num(tx)) \(num(mid)))\" text-anchor=\"middle\">\(esc(panel.title))</text>\n"
            for series in panel.series {
                let c = colors[legend.count % colors.count]
                // One polyline per curve, through its finite points (a NaN or inf epoch is skipped).
                let pts = series.values.enumerated().filter { $0.1.isFinite }.map { "\(num(x($0.0))),\(num(y($0.1)))" }
                s += "<polyline fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\"\(series.dashed ? " stroke-dasharray=\"6,4\"" : "") points=\"\(pts.joined(separator: " "))\"/>\n"
                legend.append((series.label, c, series.dashed))
            }
            s += "</g>\n"
        }
        let lx = w - right + 12
        for (k, (label, c, dashed)) in legend.enumerated() {
            let ly = top + 16 + Double(k) * 18
            s += "<line x1=\"\(num(lx))\" y1=\"\(num(ly - 4))\" x2=\"\(num(lx + 20))\" y2=\"\(num(ly - 4))\" stroke=\"\(c)\" stroke-width=\"2\"\(dashed ? " stroke-dasharray=\"6,4\"" : "")/>\n"
            s += "<text x=\"\(num(lx + 26))\" y=\"\(num(ly))\">\(esc(label))</text>\n"
        }
        return s + "</svg>\n"
    }
}
