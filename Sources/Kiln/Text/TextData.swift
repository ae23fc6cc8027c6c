// What the text-data readers (word vectors, CoNLL) share: their error, reading a whole
// file, and cutting bytes into numbered lines and whitespace-separated fields without
// decoding the whole file as one string.

import Foundation

/// A malformed or unreadable word-vector or CoNLL file: one sentence naming the file, the
/// line (or byte offset) and what was expected there.
public struct TextDataError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

enum TextData {
    /// The bytes of the file at `path`, or an error saying why it cannot be read.
    static func readFile(_ path: String) throws -> [UInt8] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw TextDataError("\(path): no such file.")
        }
        if isDir.boolValue { throw TextDataError("\(path): is a directory, not a file.") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TextDataError("\(path): cannot be read (permission denied or I/O error).")
        }
        return [UInt8](data)
    }

    /// The offset after a UTF-8 byte-order mark at the start, or 0.
    static func afterBOM(_ b: [UInt8]) -> Int {
        b.count >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF ? 3 : 0
    }

    /// The lines of `b` from `start`: split at '\n', a trailing '\r' dropped, numbered from
    /// `firstLine`. A final line without '\n' counts; the empty rest after a final '\n' does not.
    static func lines(_ b: [UInt8], from start: Int, firstLine: Int = 1) -> [(number: Int, bytes: ArraySlice<UInt8>)] {
        var out: [(Int, ArraySlice<UInt8>)] = []
        var pos = start, n = firstLine
        while pos < b.count {
            var end = pos
            while end < b.count && b[end] != 0x0A { end += 1 }
            var stop = end
            if stop > pos && b[stop - 1] == 0x0D { stop -= 1 }
            out.append((n, b[pos..<stop]))
            pos = end + 1
            n += 1
        }
        return out
    }

    /// The fields of a line: runs of bytes between spaces and tabs.
    static func fields(_ line: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        var out: [ArraySlice<UInt8>] = []
        var i = line.startIndex
        while i < line.endIndex {
            while i < line.endIndex && (line[i] == 0x20 || line[i] == 0x09) { i += 1 }
            let s = i
            while i < line.endIndex && line[i] != 0x20 && line[i] != 0x09 { i += 1 }
            if i > s { out.append(line[s..<i]) }
        }
        return out
    }

    /// The bytes as a string, or nil when they are not valid UTF-8.
    static func string(_ bytes: ArraySlice<UInt8>) -> String? { String(validating: bytes, as: UTF8.self) }

    /// A field for a message: quoted, shortened past 40 characters, invalid bytes replaced.
    static func quote(_ bytes: ArraySlice<UInt8>) -> String {
        let s = String(decoding: bytes, as: UTF8.self)
        return "'" + (s.count > 40 ? String(s.prefix(40)) + "..." : s) + "'"
    }

    /// Whether the bytes look like text: no control bytes but tab, newline and carriage
    /// return, and valid UTF-8 (a multi-byte sequence cut by the end of the slice is allowed).
    static func looksLikeText(_ bytes: ArraySlice<UInt8>) -> Bool {
        for c in bytes where (c < 0x20 && c != 0x09 && c != 0x0A && c != 0x0D) || c == 0x7F { return false }
        for cut in 0...min(3, bytes.count) where string(bytes.dropLast(cut)) != nil { return true }
        return false
    }
}
