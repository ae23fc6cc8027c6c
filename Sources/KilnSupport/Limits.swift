// Bounds on what a file may make Kiln allocate.
//
// Every reader of outside files (.keras archives, HDF5 weights, .npy arrays, JSON
// histories) checks the sizes a file declares against `KilnLimits.maxBytes` BEFORE it
// allocates anything of that size, and refuses the file with one sentence when they
// exceed it. The limit is half of the physical memory (at least 1 GiB), or the value of
// the environment variable KILN_MAX_BYTES: a number of bytes with an optional K, M, G or
// T suffix (powers of 1024), e.g. KILN_MAX_BYTES=512M. A value that is not such a number
// is ignored (the default applies).

import Foundation

public enum KilnLimits {
    /// The default limit: half of the physical memory, at least 1 GiB (read once: the graph
    /// builder asks for the limit at every node).
    public static let defaultMaxBytes: Int = {
        let half = Int(clamping: ProcessInfo.processInfo.physicalMemory / 2)
        return max(half, 1 << 30)
    }()

    /// The most bytes a single file may make Kiln allocate for what it declares
    /// (an array, an archive entry, a model's weights together).
    public static var maxBytes: Int {
        // getenv, not ProcessInfo's environment (a new dictionary per call): readers ask often.
        if let p = getenv("KILN_MAX_BYTES"), let v = parseSize(String(cString: p)) { return v }
        return defaultMaxBytes
    }

    /// The largest JSON text Kiln parses (a config.json, a history file): parsed JSON
    /// takes tens of bytes per element, so this stays far below `maxBytes`.
    public static var maxJSONBytes: Int { min(maxBytes / 32, 64 << 20) }

    /// "123", "64K", "512M", "2G", "1T" (powers of 1024) -> bytes; nil when not a positive size.
    public static func parseSize(_ text: String) -> Int? {
        var s = Substring(text.trimmingCharacters(in: .whitespaces))
        var shift = 0
        if let last = s.last, let k = ["K": 10, "M": 20, "G": 30, "T": 40][String(last).uppercased()] {
            shift = k
            s = s.dropLast()
        }
        guard let v = Int(s), v > 0 else { return nil }
        let (r, o) = v.multipliedReportingOverflow(by: 1 << shift)
        return o ? nil : r
    }

    /// "1.5 GiB"-style text for messages.
    public static func describe(_ bytes: Int) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var v = Double(bytes)
        var u = 0
        while v >= 1024, u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(bytes) bytes" : String(format: "%.1f", v) + " " + units[u]
    }

    /// The sentence's tail every refusal ends with.
    public static var overrideHint: String {
        "the limit is \(describe(maxBytes)); set KILN_MAX_BYTES to change it"
    }
}
