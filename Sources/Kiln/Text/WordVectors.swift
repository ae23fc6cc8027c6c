// Pretrained word vectors: the word2vec text and binary formats and GloVe's text format.
//
//   word2vec text    "COUNT DIM\n", then COUNT lines "word v1 ... vDIM"
//   word2vec binary  "COUNT DIM\n", then COUNT entries: the word's UTF-8 bytes, one space,
//                    DIM little-endian float32 (4*DIM bytes), optionally a "\n"
//   GloVe text       no header; lines "word v1 ... vDIM", DIM from the first line
//
// Text fields are separated by spaces or tabs (word2vec's C tool ends each line with a
// space; that is allowed), lines by "\n" or "\r\n". A word therefore holds no space, tab
// or control character. Trailing blank lines are allowed, blank lines between vectors
// are not. Values must be finite numbers. A duplicate word keeps its first vector and
// the later ones are skipped, as gensim does; they are listed in `duplicates`. A word2vec
// header's COUNT counts entries, duplicates included (as gensim's does).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The layout of a word-vector file.
public enum WordVectorFormat: String, CaseIterable, Sendable {
    /// "COUNT DIM" then one "word v1 ... vDIM" line per word.
    case word2vecText = "word2vec-text"
    /// "COUNT DIM\n" then per word its bytes, a space and DIM little-endian float32.
    case word2vecBinary = "word2vec-binary"
    /// No header; "word v1 ... vDIM" lines.
    case glove
}

/// Word vectors read from a file: the words in file order and one row of `dimension`
/// floats per word.
public struct WordVectors: Sendable {
    /// The words, in file order, each once.
    public let words: [String]
    /// The length of every vector.
    public let dimension: Int
    /// `words.count * dimension` floats, row-major: row i is the vector of `words[i]`.
    public let values: [Float]
    /// The format the file was read as.
    public let format: WordVectorFormat
    /// Later occurrences of a word already read, skipped: the word and the line (text) or
    /// byte offset (binary) where it appeared again.
    public let duplicates: [(word: String, location: String)]
    let index: [String: Int]

    /// Builds word vectors in memory.
    /// - Parameters:
    ///   - words: distinct words.
    ///   - dimension: the vector length, 1 or more.
    ///   - values: `words.count * dimension` floats, row-major.
    public init(words: [String], dimension: Int, values: [Float]) {
        precondition(dimension > 0 && values.count == words.count * dimension, "\(words.count) words of dimension \(dimension) need \(words.count * dimension) values, \(values.count) given")
        var index: [String: Int] = [:]
        for (i, w) in words.enumerated() { precondition(index.updateValue(i, forKey: w) == nil, "word '\(w)' appears twice") }
        self.init(words: words, dimension: dimension, values: values, format: .glove, duplicates: [], index: index)
    }

    init(words: [String], dimension: Int, values: [Float], format: WordVectorFormat,
         duplicates: [(word: String, location: String)], index: [String: Int]) {
        self.words = words; self.dimension = dimension; self.values = values
        self.format = format; self.duplicates = duplicates; self.index = index
    }

    /// The vector of `word`, or nil when the file has none.
    public func vector(_ word: String) -> ArraySlice<Float>? {
        index[word].map { values[($0 * dimension)..<(($0 + 1) * dimension)] }
    }

    /// Reads a word-vector file.
    /// - Parameters:
    ///   - path: the file.
    ///   - format: the format, or nil to detect it (see ``detectFormat(_:)``).
    /// - Throws: ``TextDataError`` naming the file and the line or byte offset of the first problem.
    public static func read(path: String, format: WordVectorFormat? = nil) throws -> WordVectors {
        try parse(TextData.readFile(path), name: path, format: format)
    }

    /// Reads word vectors from the bytes of a file; `name` is used in error messages.
    public static func parse(_ bytes: [UInt8], name: String, format: WordVectorFormat? = nil) throws -> WordVectors {
        let start = TextData.afterBOM(bytes)
        guard bytes[start...].contains(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }) else {
            throw TextDataError("\(name) is empty: expected word vectors (word2vec text or binary, or GloVe text).")
        }
        var reader = Reader(bytes: bytes, name: name, format: format ?? detectFormat(bytes))
        return try reader.read(from: start)
    }

    /// The format of a word-vector file: word2vec when the first line is two whole numbers
    /// (the "COUNT DIM" header), binary when the bytes after that header, as far as the
    /// first vector reaches, hold a control byte or are not UTF-8; GloVe otherwise.
    /// A one-dimensional GloVe file whose first word is a number reads as a header:
    /// give the format explicitly then.
    public static func detectFormat(_ bytes: [UInt8]) -> WordVectorFormat {
        let start = TextData.afterBOM(bytes)
        guard let (_, dim, next) = header(bytes, from: start) else { return .glove }
        let window = bytes[next..<min(bytes.count, next + 4 * min(dim, 1 << 20) + 256)]
        return TextData.looksLikeText(window) ? .word2vecText : .word2vecBinary
    }

    /// The "COUNT DIM" header at `start`: both numbers and the offset after its line.
    static func header(_ b: [UInt8], from start: Int) -> (count: Int, dim: Int, next: Int)? {
        var end = start
        while end < b.count && b[end] != 0x0A && end - start < 64 { end += 1 }
        guard end == b.count || b[end] == 0x0A else { return nil }
        let f = TextData.fields(b[start..<end].last == 0x0D ? b[start..<(end - 1)] : b[start..<end])
        guard f.count == 2, let count = wholeNumber(f[0]), let dim = wholeNumber(f[1]) else { return nil }
        return (count, dim, min(end + 1, b.count))
    }

    static func wholeNumber(_ f: ArraySlice<UInt8>) -> Int? {
        guard f.count <= 18, f.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return f.reduce(0) { $0 * 10 + Int($1 - 0x30) }
    }
}

/// The parser: one pass over the bytes, collecting words, values and duplicates.
private struct Reader {
    let bytes: [UInt8]
    let name: String
    let format: WordVectorFormat
    var words: [String] = []
    var values: [Float] = []
    var index: [String: Int] = [:]
    var duplicates: [(word: String, location: String)] = []

    init(bytes: [UInt8], name: String, format: WordVectorFormat) {
        self.bytes = bytes; self.name = name; self.format = format
    }

    mutating func read(from start: Int) throws -> WordVectors {
        let dim: Int
        switch format {
        case .glove:
            dim = try readText(from: start, firstLine: 1, header: nil)
        case .word2vecText, .word2vecBinary:
            guard let (count, d, next) = WordVectors.header(bytes, from: start) else {
                let line = TextData.lines(bytes, from: start).first?.bytes ?? []
                throw TextDataError("\(name), line 1: expected the word2vec header 'COUNT DIMENSION' (two whole numbers), found \(TextData.quote(line)).")
            }
            guard d > 0 else { throw TextDataError("\(name), line 1: the header declares dimension 0; expected 1 or more.") }
            guard count > 0 else { throw TextDataError("\(name), line 1: the header declares 0 vectors; expected 1 or more.") }
            dim = d
            if format == .word2vecText {
                _ = try readText(from: next, firstLine: 2, header: (count, d))
            } else {
                try readBinary(from: next, count: count, dim: d)
            }
        }
        return WordVectors(words: words, dimension: dim, values: values, format: format, duplicates: duplicates, index: index)
    }

    /// Text lines from `from`; with a header, each must hold a word and `header.dim`
    /// numbers, otherwise the first line sets the dimension. Returns the dimension.
    mutating func readText(from: Int, firstLine: Int, header: (count: Int, dim: Int)?) throws -> Int {
        // A NUL after the last byte, so that strtof can read the fields in place: it stops at
        // the space, tab, "\r" or "\n" after a number, or at this NUL.
        let text = bytes + [0]
        return try text.withUnsafeBufferPointer { try readLines($0, from: from, firstLine: firstLine, header: header) }
    }

    mutating func readLines(_ p: UnsafeBufferPointer<UInt8>, from: Int, firstLine: Int, header: (count: Int, dim: Int)?) throws -> Int {
        var dim = header?.dim ?? 0
        var entries = 0
        var blank: Int? = nil
        var source = "the dimension the header declares"
        var fields: [Range<Int>] = []
        let end = p.count - 1
        var pos = from, n = firstLine - 1
        while pos < end {
            n += 1
            var stop = pos
            while stop < end && p[stop] != 0x0A { stop += 1 }
            let line = pos..<(stop > pos && p[stop - 1] == 0x0D ? stop - 1 : stop)
            pos = stop + 1
            fields.removeAll(keepingCapacity: true)
            var i = line.lowerBound
            while i < line.upperBound {
                while i < line.upperBound && (p[i] == 0x20 || p[i] == 0x09) { i += 1 }
                let s = i
                while i < line.upperBound && p[i] != 0x20 && p[i] != 0x09 { i += 1 }
                if i > s { fields.append(s..<i) }
            }
            if fields.isEmpty { blank = blank ?? n; continue }
            if let b = blank {
                let what = dim == 0 ? "its numbers" : "\(dim) numbers"
                throw TextDataError("\(name), line \(b) is blank: expected a word and \(what) (blank lines may only end the file).")
            }
            guard let word = TextData.string(bytes[fields[0]]) else { throw TextDataError("\(name), line \(n) is not valid UTF-8.") }
            if let h = header, entries == h.count {
                throw TextDataError("\(name), line \(n): the header declares \(h.count) vectors, but more lines follow.")
            }
            if dim == 0 {
                guard fields.count >= 2 else {
                    throw TextDataError("\(name), line \(n): expected a word and its numbers, found only \(TextData.quote(bytes[line])).")
                }
                dim = fields.count - 1
                source = "the dimension of line \(n)"
            }
            guard fields.count == dim + 1 else {
                let k = fields.count - 1
                throw TextDataError("\(name), line \(n): expected a word and \(dim) numbers (\(source)), found \(k) value\(k == 1 ? "" : "s") after '\(word)'.")
            }
            let before = values.count
            for k in 1...dim {
                let r = fields[k]
                let base = UnsafeRawPointer(p.baseAddress!)
                var stopped: UnsafeMutablePointer<CChar>? = nil
                let v = strtof((base + r.lowerBound).assumingMemoryBound(to: CChar.self), &stopped)
                guard let stopped, UnsafeRawPointer(stopped) - base == r.upperBound, v.isFinite else {
                    values.removeSubrange(before...)
                    throw TextDataError("\(name), line \(n): value \(k) of '\(word)' is \(TextData.quote(bytes[r])); expected a finite number.")
                }
                values.append(v)
            }
            add(word, rowStart: before, location: "line \(n)")
            entries += 1
        }
        if let h = header, entries < h.count {
            throw TextDataError("\(name): the header declares \(h.count) vectors, but the file holds \(entries).")
        }
        return dim
    }

    /// Binary entries from `from`: COUNT times (skipped "\n"s, word, space, 4*DIM bytes).
    mutating func readBinary(from: Int, count: Int, dim: Int) throws {
        var pos = from
        let size = 4 * dim
        values.reserveCapacity(count * dim)
        for k in 1...count {
            while pos < bytes.count && bytes[pos] == 0x0A { pos += 1 }
            let wordStart = pos
            guard pos < bytes.count else {
                throw TextDataError("\(name), byte \(pos): the file ends after \(k - 1) vectors, but the header declares \(count).")
            }
            while pos < bytes.count && bytes[pos] != 0x20 { pos += 1 }
            guard pos < bytes.count else {
                throw TextDataError("\(name), byte \(wordStart): vector \(k) of \(count) is cut short: its word has no space after it before the end of the file.")
            }
            let wordBytes = bytes[wordStart..<pos]
            guard !wordBytes.isEmpty else {
                throw TextDataError("\(name), byte \(wordStart): vector \(k) of \(count) has an empty word: expected the word, a space and \(size) bytes of float32.")
            }
            guard let word = TextData.string(wordBytes) else {
                throw TextDataError("\(name), byte \(wordStart): the word of vector \(k) of \(count) is not valid UTF-8 (is this really the binary format, with dimension \(dim)?).")
            }
            if let bad = wordBytes.firstIndex(where: { $0 < 0x20 || $0 == 0x7F }) {
                throw TextDataError("\(name), byte \(bad): the word of vector \(k) of \(count) holds a control character (is this really the binary format, with dimension \(dim)?).")
            }
            pos += 1
            guard bytes.count - pos >= size else {
                throw TextDataError("\(name), byte \(pos): the vector of '\(word)' (\(k) of \(count)) is cut short: expected \(size) bytes of float32, found \(bytes.count - pos).")
            }
            let before = values.count
            for j in 0..<dim {
                let o = pos + 4 * j
                let bits = UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
                let v = Float(bitPattern: bits)
                guard v.isFinite else {
                    values.removeSubrange(before...)
                    throw TextDataError("\(name), byte \(o): value \(j + 1) of '\(word)' is \(v); expected a finite number.")
                }
                values.append(v)
            }
            add(word, rowStart: before, location: "byte \(wordStart)")
            pos += size
        }
        while pos < bytes.count && (bytes[pos] == 0x0A || bytes[pos] == 0x0D || bytes[pos] == 0x20) { pos += 1 }
        if pos < bytes.count {
            throw TextDataError("\(name), byte \(pos): the header declares \(count) vectors, but more bytes follow (\(bytes.count - pos)); is the header's count or dimension (\(dim)) wrong?")
        }
    }

    /// Keeps the row just appended at `rowStart` for `word`, or drops it when the word was read before.
    mutating func add(_ word: String, rowStart: Int, location: String) {
        if index[word] != nil {
            values.removeSubrange(rowStart...)
            duplicates.append((word, location))
        } else {
            index[word] = words.count
            words.append(word)
        }
    }
}
