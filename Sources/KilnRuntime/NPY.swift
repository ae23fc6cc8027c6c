// Reading and writing NumPy .npy files.
//
// Reads format versions 1.0, 2.0 and 3.0, C or Fortran order, any byte order,
// and the dtypes f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1. Real types become a
// .float32 HostTensor (float64 rounds to nearest, float16 is exact), integer
// and bool types an .int32 one. Writes version 1.0, '<f4' or '<i4', C order,
// the way numpy does, through a temporary file and a rename.
//
// Swift programs use it through the KilnRuntime product (SwiftPM:
// `.product(name: "KilnRuntime", package: "Kiln")`; swiftc: libKilnRuntimeShared.so
// and the build folder's Modules/, as samples/run.sh does):
//
//     import KilnRuntime
//     let x = try NPY.read(path: "x.npy")           // HostTensor: shape, dtype, floats or ints
//     try NPY.write(HostTensor(shape: [2, 3], floats: values), path: "y.npy")

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import KilnSupport

/// An error reading or writing a .npy file: one sentence naming the file.
public struct NPYError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

public enum NPY {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // "\x93NUMPY"

    // MARK: Reading

    /// Reads the .npy file at `path`: a float32 HostTensor for real dtypes (float64 rounded
    /// to nearest, float16 exact), an int32 one for integer and bool dtypes.
    /// - Throws: ``NPYError`` naming the file (missing, not .npy, unsupported dtype, truncated).
    public static func read(path: String) throws -> HostTensor {
        // Refuse a file larger than the memory limit before reading it.
        if let attrs = try? FileManager.default.attributesOfItem(atPath: path),
           (attrs[.type] as? FileAttributeType) == .typeRegular,
           let size = (attrs[.size] as? NSNumber)?.intValue, size > KilnLimits.maxBytes {
            throw NPYError("\(path): the file is \(KilnLimits.describe(size)), more than Kiln reads (\(KilnLimits.overrideHint)).")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
                if isDir.boolValue { throw NPYError("\(path): is a directory, not an .npy file.") }
                throw NPYError("\(path): cannot be read (permission denied or I/O error).")
            }
            throw NPYError("\(path): no such file.")
        }
        return try read(data: [UInt8](data), name: path)
    }

    /// Decodes an in-memory .npy image; `name` is used in error messages.
    public static func read(data: [UInt8], name: String) throws -> HostTensor {
        let header = try parseHeader(data, name: name)
        let dt = header.dtype
        let count = header.count
        let (need, overflow) = count.multipliedReportingOverflow(by: dt.size)
        let have = data.count - header.dataOffset
        if overflow || need > have {
            let shapeText = "(" + header.shape.map(String.init).joined(separator: ", ") + ")"
            let needText = overflow ? "more than \(Int.max)" : "\(need)"
            throw NPYError("\(name): truncated .npy file: shape \(shapeText) of \(dt.descr) needs \(needText) bytes of data but the file has \(have).")
        }
        if need < have {
            let shapeText = "(" + header.shape.map(String.init).joined(separator: ", ") + ")"
            throw NPYError("\(name): damaged .npy file: shape \(shapeText) of \(dt.descr) needs \(need) bytes of data but the file has \(have) (\(have - need) bytes more than its header declares).")
        }
        // The converted array takes 4 bytes per element (and a Fortran-order file as much
        // again, plus 8 per element for the reordering): bounded before anything is allocated.
        let converted = count.multipliedReportingOverflow(by: header.fortranOrder && header.shape.count > 1 ? 16 : 4)
        if converted.overflow || converted.partialValue > KilnLimits.maxBytes {
            let shapeText = "(" + header.shape.map(String.init).joined(separator: ", ") + ")"
            throw NPYError("\(name): the array of shape \(shapeText) would need \(converted.overflow ? "more than \(Int.max) bytes" : KilnLimits.describe(converted.partialValue)) in memory, more than Kiln allows (\(KilnLimits.overrideHint)).")
        }
        let start = header.dataOffset
        var tensor: HostTensor
        switch dt.kind {
        case .float:
            var out = [Float](repeating: 0, count: count)
            data.withUnsafeBufferPointer { buf in
                for i in 0..<count {
                    let p = start + i * dt.size
                    switch dt.size {
                    case 2: out[i] = halfToFloat(UInt16(truncatingIfNeeded: loadUInt(buf, p, 2, dt.bigEndian)))
                    case 4: out[i] = Float(bitPattern: UInt32(truncatingIfNeeded: loadUInt(buf, p, 4, dt.bigEndian)))
                    default: out[i] = Float(Double(bitPattern: loadUInt(buf, p, 8, dt.bigEndian)))
                    }
                }
            }
            tensor = HostTensor(shape: header.shape, floats: out)
        case .signed, .unsigned, .bool:
            var out = [Int32](repeating: 0, count: count)
            var bad: (index: Int, text: String)? = nil
            data.withUnsafeBufferPointer { buf in
                for i in 0..<count {
                    let p = start + i * dt.size
                    let raw = loadUInt(buf, p, dt.size, dt.bigEndian)
                    switch dt.kind {
                    case .bool:
                        out[i] = raw != 0 ? 1 : 0
                    case .unsigned:
                        if raw > UInt64(Int32.max) {
                            if bad == nil { bad = (i, "\(raw)") }
                        } else { out[i] = Int32(raw) }
                    default:
                        // Sign-extend from dt.size bytes.
                        let shift = UInt64(64 - 8 * dt.size)
                        let v = Int64(bitPattern: raw << shift) >> Int64(shift)
                        if let x = Int32(exactly: v) { out[i] = x } else if bad == nil { bad = (i, "\(v)") }
                    }
                }
            }
            if let bad = bad {
                throw NPYError("\(name): value \(bad.text) at flat index \(bad.index) does not fit in int32 (dtype \(dt.descr)).")
            }
            tensor = HostTensor(shape: header.shape, ints: out)
        }
        if header.fortranOrder && header.shape.count > 1 {
            tensor = fortranToC(tensor)
        }
        return tensor
    }

    // MARK: Writing

    /// Encodes `t` as a version 1.0 .npy image ('<f4' or '<i4', C order).
    public static func encode(_ t: HostTensor) -> [UInt8] {
        let descr = t.dtype == .float32 ? "<f4" : "<i4"
        let shapeText: String
        switch t.shape.count {
        case 0: shapeText = "()"
        case 1: shapeText = "(\(t.shape[0]),)"
        default: shapeText = "(" + t.shape.map(String.init).joined(separator: ", ") + ")"
        }
        var dict = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        // Pad with spaces so that magic + version + length + header is a
        // multiple of 64, and end with '\n' (as numpy does).
        var major: UInt8 = 1
        var prefix = 10
        if dict.utf8.count + 64 > 65535 { major = 2; prefix = 12 }  // v1 lengths are 16-bit
        let unpadded = prefix + dict.utf8.count + 1
        let pad = (64 - unpadded % 64) % 64
        dict += String(repeating: " ", count: pad) + "\n"
        let headerBytes = Array(dict.utf8)
        var out = magic
        out.append(major); out.append(0)
        let hlen = headerBytes.count
        if major == 1 {
            out.append(UInt8(hlen & 0xff)); out.append(UInt8((hlen >> 8) & 0xff))
        } else {
            for k in 0..<4 { out.append(UInt8((hlen >> (8 * k)) & 0xff)) }
        }
        out += headerBytes
        out.reserveCapacity(out.count + 4 * t.count)
        if t.dtype == .float32 {
            for v in t.floats {
                let b = v.bitPattern.littleEndian
                out.append(UInt8(b & 0xff)); out.append(UInt8((b >> 8) & 0xff))
                out.append(UInt8((b >> 16) & 0xff)); out.append(UInt8((b >> 24) & 0xff))
            }
        } else {
            for v in t.ints {
                let b = UInt32(bitPattern: v)
                out.append(UInt8(b & 0xff)); out.append(UInt8((b >> 8) & 0xff))
                out.append(UInt8((b >> 16) & 0xff)); out.append(UInt8((b >> 24) & 0xff))
            }
        }
        return out
    }

    /// Writes `t` to `path` (version 1.0 .npy). The bytes go to a temporary
    /// file in the same directory first, which is then renamed over `path`,
    /// so a half-written file is never left behind.
    public static func write(_ t: HostTensor, path: String) throws {
        let bytes = encode(t)
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw NPYError("\(path): cannot write: the directory \(dir) does not exist.")
        }
        let err = writeFileAtomically(bytes, to: path)
        if err != 0 { throw NPYError("\(path): cannot write: \(String(cString: strerror(err))).") }
    }

    // MARK: Header

    enum Kind { case float, signed, unsigned, bool }

    struct DType {
        var kind: Kind
        var size: Int
        var bigEndian: Bool
        var descr: String
    }

    struct Header {
        var dtype: DType
        var fortranOrder: Bool
        var shape: [Int]
        var count: Int
        var dataOffset: Int
    }

    static func parseHeader(_ data: [UInt8], name: String) throws -> Header {
        guard data.count >= 6, Array(data[0..<6]) == magic else {
            throw NPYError("\(name): not an .npy file (it does not start with the bytes \\x93NUMPY).")
        }
        guard data.count >= 10 else {
            throw NPYError("\(name): truncated .npy file: \(data.count) bytes, too short for a header.")
        }
        let major = data[6], minor = data[7]
        var headerLen: Int
        var headerStart: Int
        switch major {
        case 1:
            headerLen = Int(data[8]) | Int(data[9]) << 8
            headerStart = 10
        case 2, 3:
            guard data.count >= 12 else {
                throw NPYError("\(name): truncated .npy file: \(data.count) bytes, too short for a version \(major) header.")
            }
            headerLen = Int(data[8]) | Int(data[9]) << 8 | Int(data[10]) << 16 | Int(data[11]) << 24
            headerStart = 12
        default:
            throw NPYError("\(name): unsupported .npy format version \(major).\(minor) (Kiln reads 1.0, 2.0 and 3.0).")
        }
        guard headerStart + headerLen <= data.count else {
            throw NPYError("\(name): truncated .npy file: the header needs \(headerLen) bytes but only \(data.count - headerStart) follow.")
        }
        let headerBytes = Array(data[headerStart..<(headerStart + headerLen)])
        let text: String
        if major == 3 {
            guard let s = String(bytes: headerBytes, encoding: .utf8) else {
                throw NPYError("\(name): malformed .npy header (not valid UTF-8).")
            }
            text = s
        } else {
            // latin-1
            text = String(String.UnicodeScalarView(headerBytes.map { Unicode.Scalar($0) }))
        }
        var parser = PyLiteralParser(chars: Array(text.unicodeScalars))
        let dict: [(String, PyValue)]
        do {
            guard case .dict(let d) = try parser.parseTop() else {
                throw NPYError("\(name): malformed .npy header (it is not a dictionary).")
            }
            dict = d
        } catch let e as PyParseError {
            throw NPYError("\(name): malformed .npy header (\(e.message) at character \(e.offset)).")
        }
        func lookup(_ k: String) -> PyValue? { dict.first(where: { $0.0 == k })?.1 }
        guard let descrV = lookup("descr") else {
            throw NPYError("\(name): malformed .npy header (no 'descr' key).")
        }
        guard case .string(let descr) = descrV else {
            throw NPYError("\(name): unsupported dtype (a structured record type); Kiln reads plain numeric arrays.")
        }
        guard let fortranV = lookup("fortran_order"), case .bool(let fortran) = fortranV else {
            throw NPYError("\(name): malformed .npy header (no boolean 'fortran_order' key).")
        }
        guard let shapeV = lookup("shape"), case .tuple(let dims) = shapeV else {
            throw NPYError("\(name): malformed .npy header (no 'shape' tuple).")
        }
        var shape: [Int] = []
        var count = 1
        for d in dims {
            guard case .int(let v) = d, v >= 0 else {
                throw NPYError("\(name): malformed .npy header (shape entries must be non-negative integers).")
            }
            shape.append(v)
            let (c, o) = count.multipliedReportingOverflow(by: v)
            if o { throw NPYError("\(name): malformed .npy header (the shape has too many elements).") }
            count = c
        }
        let dtype = try parseDescr(descr, name: name)
        return Header(dtype: dtype, fortranOrder: fortran, shape: shape, count: count,
                      dataOffset: headerStart + headerLen)
    }

    static func parseDescr(_ descr: String, name: String) throws -> DType {
        var s = Substring(descr)
        var big = false
        if let c = s.first, "<>|=!".contains(c) {
            big = (c == ">" || c == "!")
            s = s.dropFirst()
        }
        guard let kindChar = s.first else {
            throw NPYError("\(name): unsupported dtype '\(descr)'.")
        }
        let sizeText = s.dropFirst()
        let size = Int(sizeText)
        let kind: Kind
        switch (kindChar, size) {
        case ("f", 2), ("f", 4), ("f", 8): kind = .float
        case ("i", 1), ("i", 2), ("i", 4), ("i", 8): kind = .signed
        case ("u", 1), ("u", 2), ("u", 4), ("u", 8): kind = .unsigned
        case ("b", 1): kind = .bool
        case ("?", nil) where sizeText.isEmpty: return DType(kind: .bool, size: 1, bigEndian: false, descr: descr)
        default:
            let what: String
            switch kindChar {
            case "c": what = " (complex numbers)"
            case "O": what = " (Python objects)"
            case "U", "S", "a": what = " (strings)"
            case "V": what = " (raw bytes or records)"
            case "M", "m": what = " (dates or time deltas)"
            case "f": what = " (a float size other than 2, 4 or 8 bytes)"
            default: what = ""
            }
            throw NPYError("\(name): unsupported dtype '\(descr)'\(what); Kiln reads float16/32/64, integers and bool.")
        }
        return DType(kind: kind, size: size!, bigEndian: big, descr: descr)
    }

    // MARK: Helpers

    @inline(__always)
    static func loadUInt(_ buf: UnsafeBufferPointer<UInt8>, _ p: Int, _ size: Int, _ big: Bool) -> UInt64 {
        var v: UInt64 = 0
        if big {
            for k in 0..<size { v = (v << 8) | UInt64(buf[p + k]) }
        } else {
            for k in stride(from: size - 1, through: 0, by: -1) { v = (v << 8) | UInt64(buf[p + k]) }
        }
        return v
    }

    /// IEEE 754 half precision to single precision, exact (subnormals,
    /// infinities and NaN payloads included).
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign: UInt32 = UInt32(h >> 15) << 31
        let exp = Int((h >> 10) & 0x1f)
        let mant = UInt32(h & 0x3ff)
        if exp == 0 {
            let v = Float(mant) * Float(bitPattern: 0x3380_0000)  // 2^-24
            return sign != 0 ? -v : v
        }
        if exp == 31 {
            return Float(bitPattern: sign | 0x7f80_0000 | (mant << 13))
        }
        return Float(bitPattern: sign | (UInt32(exp - 15 + 127) << 23) | (mant << 13))
    }

    /// Reorders a tensor whose elements are in column-major order into
    /// row-major order (same shape).
    static func fortranToC(_ t: HostTensor) -> HostTensor {
        let shape = t.shape
        let n = shape.count
        let count = t.count
        if count == 0 { return t }
        var fstride = [Int](repeating: 1, count: n)
        for k in 1..<n { fstride[k] = fstride[k - 1] * shape[k - 1] }
        var perm = [Int](repeating: 0, count: count)
        var idx = [Int](repeating: 0, count: n)
        var off = 0
        for i in 0..<count {
            perm[i] = off
            // increment the row-major multi-index (last axis fastest)
            var k = n - 1
            while k >= 0 {
                idx[k] += 1
                off += fstride[k]
                if idx[k] < shape[k] { break }
                off -= fstride[k] * shape[k]
                idx[k] = 0
                k -= 1
            }
        }
        if t.dtype == .float32 {
            let src = t.floats
            return HostTensor(shape: shape, floats: perm.map { src[$0] })
        } else {
            let src = t.ints
            return HostTensor(shape: shape, ints: perm.map { src[$0] })
        }
    }
}

// MARK: - A tiny parser for the Python literal in an .npy header

enum PyValue {
    case string(String)
    case bool(Bool)
    case int(Int)
    case none
    case tuple([PyValue])
    case list([PyValue])
    case dict([(String, PyValue)])
}

struct PyParseError: Error {
    var message: String
    var offset: Int
}

struct PyLiteralParser {
    var chars: [Unicode.Scalar]
    var i = 0
    var depth = 0

    init(chars: [Unicode.Scalar]) { self.chars = chars }

    mutating func parseTop() throws -> PyValue {
        let v = try parseValue()
        skipSpace()
        if i < chars.count { throw PyParseError(message: "unexpected text after the dictionary", offset: i) }
        return v
    }

    mutating func skipSpace() {
        while i < chars.count, chars[i] == " " || chars[i] == "\t" || chars[i] == "\n" || chars[i] == "\r" || chars[i] == "\0" {
            i += 1
        }
    }

    mutating func parseValue() throws -> PyValue {
        skipSpace()
        guard i < chars.count else { throw PyParseError(message: "unexpected end", offset: i) }
        depth += 1
        defer { depth -= 1 }
        if depth > 64 { throw PyParseError(message: "nesting too deep", offset: i) }
        let c = chars[i]
        switch c {
        case "{":
            i += 1
            var items: [(String, PyValue)] = []
            while true {
                skipSpace()
                if i < chars.count, chars[i] == "}" { i += 1; return .dict(items) }
                guard case .string(let key) = try parseValue() else {
                    throw PyParseError(message: "dictionary keys must be strings", offset: i)
                }
                skipSpace()
                guard i < chars.count, chars[i] == ":" else { throw PyParseError(message: "expected ':'", offset: i) }
                i += 1
                let v = try parseValue()
                items.append((key, v))
                skipSpace()
                guard i < chars.count else { throw PyParseError(message: "unexpected end", offset: i) }
                if chars[i] == "," { i += 1; continue }
                if chars[i] == "}" { i += 1; return .dict(items) }
                throw PyParseError(message: "expected ',' or '}'", offset: i)
            }
        case "(", "[":
            let close: Unicode.Scalar = c == "(" ? ")" : "]"
            i += 1
            var items: [PyValue] = []
            while true {
                skipSpace()
                if i < chars.count, chars[i] == close { i += 1; break }
                items.append(try parseValue())
                skipSpace()
                guard i < chars.count else { throw PyParseError(message: "unexpected end", offset: i) }
                if chars[i] == "," { i += 1; continue }
                if chars[i] == close { i += 1; break }
                throw PyParseError(message: "expected ',' or '\(close)'", offset: i)
            }
            return c == "(" ? .tuple(items) : .list(items)
        case "'", "\"":
            let q = c
            i += 1
            var s = String.UnicodeScalarView()
            while i < chars.count, chars[i] != q {
                if chars[i] == "\\", i + 1 < chars.count { i += 1 }
                s.append(chars[i]); i += 1
            }
            guard i < chars.count else { throw PyParseError(message: "unterminated string", offset: i) }
            i += 1
            return .string(String(s))
        default:
            var word = ""
            while i < chars.count, chars[i].properties.isAlphabetic || ("0"..."9").contains(chars[i]) || chars[i] == "-" || chars[i] == "+" || chars[i] == "_" {
                word.unicodeScalars.append(chars[i]); i += 1
            }
            switch word {
            case "True": return .bool(true)
            case "False": return .bool(false)
            case "None": return .none
            default:
                var w = Substring(word)
                if w.hasSuffix("L") || w.hasSuffix("l") { w = w.dropLast() }  // Python 2 longs
                if let v = Int(w) { return .int(v) }
                throw PyParseError(message: word.isEmpty ? "unexpected character '\(c)'" : "unexpected word '\(word)'", offset: i)
            }
        }
    }
}
