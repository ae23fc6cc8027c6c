// JSON, the one way Kiln reads and writes it (model configs, archives, training
// histories): a value that keeps object key order, a small recursive-descent
// parser that accepts Python's json.dumps extensions NaN, Infinity and -Infinity
// and never traps on bad input, accessors, and the writer.

/// A parsed JSON value (config.json, compile_config, layer configs).
public indirect enum JSON: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])   // key order as in the file

    public static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }
}


/// A JSON syntax error at a byte offset.
public struct JSONParseError: Error, CustomStringConvertible, Sendable {
    public var offset: Int
    public var message: String
    public var description: String { "byte \(offset): \(message)" }
}

extension JSON {
    /// Parses UTF-8 JSON text.
    public static func parse(_ bytes: [UInt8]) throws -> JSON {
        var p = JSONByteParser(bytes: bytes)
        return try p.parseDocument()
    }

    /// Parses JSON text.
    public static func parse(_ text: String) throws -> JSON {
        try parse(Array(text.utf8))
    }

    // MARK: Accessors

    /// The value for `key` when this is an object (first match), else nil.
    public subscript(key: String) -> JSON? {
        if case .object(let items) = self {
            for (k, v) in items where k == key { return v }
        }
        return nil
    }

    /// The element at `index` when this is an array and the index is valid.
    public subscript(index: Int) -> JSON? {
        if case .array(let a) = self, index >= 0, index < a.count { return a[index] }
        return nil
    }

    /// An integral number that fits in Int.
    public var int: Int? {
        if case .number(let d) = self, d.isFinite, d == d.rounded(),
           d >= -9.2e18, d <= 9.2e18 { return Int(d) }
        return nil
    }
    public var double: Double? {
        if case .number(let d) = self { return d }
        return nil
    }
    public var float: Float? { double.map { Float($0) } }
    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }
    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }
    public var array: [JSON]? {
        if case .array(let a) = self { return a }
        return nil
    }
    /// Key/value pairs in file order.
    public var object: [(String, JSON)]? {
        if case .object(let o) = self { return o }
        return nil
    }
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
    /// An array of integers (nulls become nil), e.g. a shape `[null, 7]`.
    public var intsOrNulls: [Int?]? {
        guard let a = array else { return nil }
        var out: [Int?] = []
        for e in a {
            if e.isNull { out.append(nil) } else if let i = e.int { out.append(i) } else { return nil }
        }
        return out
    }
    /// An array of integers, e.g. `kernel_size: [3, 3]`.
    public var ints: [Int]? {
        guard let a = array else { return nil }
        var out: [Int] = []
        for e in a { guard let i = e.int else { return nil }; out.append(i) }
        return out
    }

    // MARK: Serialization

    /// JSON text as Python's `json.dumps` writes it: keys in stored order, ", " and ": "
    /// separators, non-finite numbers as NaN / Infinity / -Infinity, other numbers in the
    /// shortest form that reads back exactly (integral ones without a fraction).
    public var serialized: String { serialized(floatKeys: []) }

    /// The same, with integral numbers under any of `floatKeys` (at any depth, and in the
    /// arrays they hold) written as floats, `1.0`: how Python writes a float that happens to
    /// be integral, which some Keras configs require.
    public func serialized(floatKeys: Set<String>) -> String {
        var out = ""
        JSON.write(self, float: false, floatKeys: floatKeys, into: &out)
        return out
    }

    static func write(_ v: JSON, float: Bool, floatKeys: Set<String>, into out: inout String) {
        switch v {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let d):
            if d.isNaN { out += "NaN" } else if d.isInfinite { out += d < 0 ? "-Infinity" : "Infinity" } else if d == d.rounded(), abs(d) < 1e15 {
                out += String(Int64(d)) + (float ? ".0" : "")
            } else { out += "\(d)" }
        case .string(let s): writeString(s, into: &out)
        case .array(let a):
            out += "["
            for (i, e) in a.enumerated() { if i > 0 { out += ", " }; write(e, float: float, floatKeys: floatKeys, into: &out) }
            out += "]"
        case .object(let o):
            out += "{"
            for (i, (k, e)) in o.enumerated() {
                if i > 0 { out += ", " }
                writeString(k, into: &out); out += ": "
                write(e, float: floatKeys.contains(k), floatKeys: floatKeys, into: &out)
            }
            out += "}"
        }
    }

    static func writeString(_ s: String, into out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else { out.unicodeScalars.append(u) }
            }
        }
        out += "\""
    }
}

struct JSONByteParser {
    let bytes: [UInt8]
    var i = 0
    var depth = 0
    /// Deeper nesting is refused: the parser, the JSON value's equality, writer and
    /// deallocation all recurse once per level, and no Keras config nests near this deep.
    static let maxDepth = 200

    init(bytes: [UInt8]) { self.bytes = bytes }

    func fail(_ message: String, at offset: Int? = nil) -> JSONParseError {
        JSONParseError(offset: offset ?? i, message: message)
    }

    mutating func parseDocument() throws -> JSON {
        // A UTF-8 byte order mark is tolerated.
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { i = 3 }
        let v = try parseValue()
        skipSpace()
        if i < bytes.count { throw fail("unexpected text after the end of the JSON value") }
        return v
    }

    mutating func skipSpace() {
        while i < bytes.count {
            let c = bytes[i]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { i += 1 } else { break }
        }
    }

    func describe(_ c: UInt8) -> String {
        if c >= 0x21 && c < 0x7F { return "'\(Character(Unicode.Scalar(c)))'" }
        return "byte 0x" + String(c, radix: 16)
    }

    mutating func parseValue() throws -> JSON {
        skipSpace()
        guard i < bytes.count else { throw fail("unexpected end of the text") }
        let c = bytes[i]
        switch c {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectWord("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectWord("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectWord("null"); return .null
        case UInt8(ascii: "N"): try expectWord("NaN"); return .number(.nan)
        case UInt8(ascii: "I"): try expectWord("Infinity"); return .number(.infinity)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw fail("unexpected \(describe(c))")
        }
    }

    mutating func expectWord(_ w: String) throws {
        let start = i
        for b in w.utf8 {
            guard i < bytes.count, bytes[i] == b else { throw fail("invalid literal (expected '\(w)')", at: start) }
            i += 1
        }
    }

    mutating func enter() throws {
        depth += 1
        if depth > JSONByteParser.maxDepth { throw fail("nesting deeper than \(JSONByteParser.maxDepth) levels") }
    }

    mutating func parseObject() throws -> JSON {
        try enter()
        defer { depth -= 1 }
        i += 1  // {
        var items: [(String, JSON)] = []
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(items) }
        while true {
            skipSpace()
            guard i < bytes.count else { throw fail("unexpected end of the text inside an object") }
            guard bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key, found \(describe(bytes[i]))") }
            let key = try parseString()
            skipSpace()
            guard i < bytes.count else { throw fail("unexpected end of the text inside an object") }
            guard bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':' after an object key, found \(describe(bytes[i]))") }
            i += 1
            let v = try parseValue()
            items.append((key, v))
            skipSpace()
            guard i < bytes.count else { throw fail("unexpected end of the text inside an object") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(items) }
            throw fail("expected ',' or '}' in an object, found \(describe(bytes[i]))")
        }
    }

    mutating func parseArray() throws -> JSON {
        try enter()
        defer { depth -= 1 }
        i += 1  // [
        var items: [JSON] = []
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
        while true {
            items.append(try parseValue())
            skipSpace()
            guard i < bytes.count else { throw fail("unexpected end of the text inside an array") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            throw fail("expected ',' or ']' in an array, found \(describe(bytes[i]))")
        }
    }

    mutating func hex4() throws -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw fail("invalid hex digit in a \\u escape")
            }
            v = v * 16 + d
            i += 1
        }
        return v
    }

    mutating func parseString() throws -> String {
        let start = i
        i += 1  // opening quote
        var out = [UInt8]()
        while true {
            guard i < bytes.count else { throw fail("unterminated string", at: start) }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") { i += 1; break }
            if c < 0x20 { throw fail("control character \(describe(c)) inside a string") }
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            i += 1
            guard i < bytes.count else { throw fail("unterminated string", at: start) }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var code = try hex4()
                if code >= 0xD800 && code < 0xDC00 {
                    // A high surrogate: combine with a following low surrogate.
                    if i + 6 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") {
                        let save = i
                        i += 2
                        let low = try hex4()
                        if low >= 0xDC00 && low < 0xE000 {
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        } else { i = save; code = 0xFFFD }
                    } else { code = 0xFFFD }
                } else if code >= 0xDC00 && code < 0xE000 {
                    code = 0xFFFD
                }
                let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            default:
                throw fail("invalid escape \\\(describe(e))", at: i - 2)
            }
        }
        // Invalid UTF-8 is repaired with U+FFFD rather than refused.
        return String(decoding: out, as: UTF8.self)
    }

    mutating func parseNumber() throws -> JSON {
        let start = i
        if bytes[i] == UInt8(ascii: "-") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "I") {
                try expectWord("Infinity")
                return .number(-.infinity)
            }
        }
        func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
        var digits = 0
        while i < bytes.count, isDigit(bytes[i]) { i += 1; digits += 1 }
        if digits == 0 { throw fail("invalid number", at: start) }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            var frac = 0
            while i < bytes.count, isDigit(bytes[i]) { i += 1; frac += 1 }
            if frac == 0 { throw fail("invalid number (no digits after '.')", at: start) }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            var exp = 0
            while i < bytes.count, isDigit(bytes[i]) { i += 1; exp += 1 }
            if exp == 0 { throw fail("invalid number (no digits in the exponent)", at: start) }
        }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        guard let d = Double(text) else { throw fail("invalid number", at: start) }
        return .number(d)
    }
}
