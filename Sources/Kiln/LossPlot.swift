import Foundation
import KilnSupport

/// Draws loss curves from `kiln fit --history` files as one SVG.
public enum LossPlot {
    public struct PlotError: Error, CustomStringConvertible { public var description: String }

    public static func write(histories: [String], to path: String) throws {
        guard !histories.isEmpty else { throw PlotError(description: "no history files given") }
        var series: [(String, [Double])] = []
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
            let values = try readHistory([UInt8](data), name: h)
            series.append((((h as NSString).lastPathComponent as NSString).deletingPathExtension, values))
        }
        try svg(series).write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// The most losses one history may hold.
    public static let maxEpochs = 1_000_000

    /// The losses of a history file's text ({"loss": [numbers or null]}); `name` is used in messages.
    public static func readHistory(_ bytes: [UInt8], name: String) throws -> [Double] {
        if bytes.count > KilnLimits.maxJSONBytes {
            throw PlotError(description: "\(name) is \(KilnLimits.describe(bytes.count)), larger than a history file Kiln reads (\(KilnLimits.describe(KilnLimits.maxJSONBytes)); \(KilnLimits.overrideHint))")
        }
        guard let obj = try? JSON.parse(bytes), let loss = obj["loss"]?.array else {
            throw PlotError(description: "\(name) is not a history file: expected {\"loss\": [numbers]}")
        }
        // One value per epoch; the SVG takes tens of bytes per value.
        if loss.count > maxEpochs {
            throw PlotError(description: "\(name) holds \(loss.count) losses, more epochs than Kiln plots (\(maxEpochs))")
        }
        // A loss that was not finite is written as null: a gap in the curve, as NaN is.
        let values = loss.compactMap { $0.isNull ? Double.nan : $0.double }
        guard values.count == loss.count else { throw PlotError(description: "\(name): \"loss\" holds a value that is not a number") }
        return values
    }

    /// The SVG text: one polyline per series, axes, epoch and loss ticks, a legend.
    public static func svg(_ series: [(String, [Double])]) -> String {
        let (w, h, left, right, top, bottom) = (720.0, 420.0, 70.0, 170.0, 20.0, 50.0)
        let all = series.flatMap(\.1).filter(\.isFinite)
        let lo = all.min() ?? 0, hi0 = all.max() ?? 1
        let hi = hi0 == lo ? lo + 1 : hi0
        let maxEpochs = max(series.map(\.1.count).max() ?? 1, 2)
        func x(_ i: Int) -> Double { left + Double(i) / Double(maxEpochs - 1) * (w - left - right) }
        func y(_ v: Double) -> Double { top + (1 - (v - lo) / (hi - lo)) * (h - top - bottom) }
        let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<line x1=\"\(left)\" y1=\"\(h - bottom)\" x2=\"\(w - right)\" y2=\"\(h - bottom)\" stroke=\"black\"/>\n"
        s += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(h - bottom)\" stroke=\"black\"/>\n"
        for k in 0...4 {
            let v = lo + (hi - lo) * Double(k) / 4
            s += "<text x=\"\(left - 6)\" y=\"\(y(v) + 4)\" text-anchor=\"end\">\(String(format: "%.4g", v))</text>\n"
        }
        let step = max(1, maxEpochs / 10)
        for i in stride(from: 0, to: maxEpochs, by: step) {
            s += "<text x=\"\(x(i))\" y=\"\(h - bottom + 16)\" text-anchor=\"middle\">\(i + 1)</text>\n"
        }
        s += "<text x=\"\((left + w - right) / 2)\" y=\"\(h - 10)\" text-anchor=\"middle\">epoch</text>\n"
        s += "<text x=\"16\" y=\"\((top + h - bottom) / 2)\" transform=\"rotate(-90 16 \((top + h - bottom) / 2))\" text-anchor=\"middle\">loss</text>\n"
        for (k, (name, values)) in series.enumerated() {
            let c = colors[k % colors.count]
            let pts = values.enumerated().filter { $0.1.isFinite }.map { "\(x($0.0)),\(y($0.1))" }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\" points=\"\(pts)\"/>\n"
            let ly = top + 16 + Double(k) * 18
            s += "<line x1=\"\(w - right + 12)\" y1=\"\(ly - 4)\" x2=\"\(w - right + 32)\" y2=\"\(ly - 4)\" stroke=\"\(c)\" stroke-width=\"2\"/>\n"
            let label = name.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            s += "<text x=\"\(w - right + 38)\" y=\"\(ly)\">\(label)</text>\n"
        }
        return s + "</svg>\n"
    }
}
