// Small helpers every other module uses, in one place: the deterministic random
// source, Keras' shape notation and the all-or-nothing file write.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// splitmix64 (Steele, Lea and Flood): a small, fast, deterministic 64-bit random source
/// whose every state gives a well-mixed output. Kiln uses it wherever a seed must give
/// the same numbers on every machine: the Swift API's weight initializers, the shuffled
/// row order of `kiln fit`, test data.
public struct SplitMix64: Sendable {
    public var state: UInt64
    public init(state: UInt64) { self.state = state }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform float in [0, 1) from the top 24 bits.
    public mutating func unitFloat() -> Float { Float(next() >> 40) / Float(1 << 24) }
}

/// A per-sample shape as Keras writes it: (26, 5, 32), and (784,) for one dimension.
public func formatShape(_ dims: [Int]) -> String {
    "(" + dims.map(String.init).joined(separator: ", ") + (dims.count == 1 ? ",)" : ")")
}

/// Writes `bytes` to `path` all or nothing: into a new temporary file beside it
/// (mode 0644 less the umask), flushed to disk, then renamed over `path`; a failure
/// removes the temporary file and leaves `path` as it was.
/// - Returns: 0, or the errno of the step that failed.
public func writeFileAtomically<Bytes: Collection>(_ contents: Bytes, to path: String) -> Int32 where Bytes.Element == UInt8 {
    let bytes = Array(contents)
    let slash = path.lastIndex(of: "/")
    let dir = slash.map { String(path[..<$0]) } ?? "."
    let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
    var template = Array(((dir.isEmpty ? "" : dir) + "/." + base + ".tmp-XXXXXX").utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    if fd < 0 { return errno }
    let tmpPath = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    var err: Int32 = 0
    bytes.withUnsafeBytes { raw in
        var off = 0
        while off < raw.count {
            let n = write(fd, raw.baseAddress! + off, raw.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                err = errno
                return
            }
            off += n
        }
    }
    if err == 0 && fsync(fd) != 0 { err = errno }
    if close(fd) != 0 && err == 0 { err = errno }
    if err == 0 {
        // mkstemp creates 0600; give the file the usual 0644 (less the umask).
        let mask = umask(0)
        _ = umask(mask)
        _ = chmod(tmpPath, 0o666 & ~mask)
        if rename(tmpPath, path) != 0 { err = errno }
    }
    if err != 0 { unlink(tmpPath) }
    return err
}
