// CoNLL-style tagged text, its tag vocabulary, and both turned into padded id arrays.
//
// One token per line: fields separated by spaces or tabs, the token first and its tag
// last (CoNLL-2003's part-of-speech and chunk columns between them are ignored). A blank
// line ends a sentence; so does a "-DOCSTART-" line, which is skipped. Lines end with
// "\n" or "\r\n". Tags are taken as they are (an I- after O is CoNLL data, not an error);
// ``Entities`` reads them as seqeval does.
//
// Tag ids: "O" is 0, always (so the zeros that pad y mean "O"; tell padding by the token
// id 0), then the other tags ordered by entity type and then by the whole tag:
// O, B-LOC, I-LOC, B-MISC, I-MISC, B-ORG, ...

import KilnRuntime

/// One sentence of a CoNLL file: its tokens, their tags, and the line it starts on.
public struct TaggedSentence: Sendable, Equatable {
    public var tokens: [String]
    public var tags: [String]
    /// The line of its first token (from 1).
    public var line: Int

    public init(tokens: [String], tags: [String], line: Int = 0) {
        precondition(tokens.count == tags.count, "\(tokens.count) tokens but \(tags.count) tags")
        self.tokens = tokens; self.tags = tags; self.line = line
    }
}

public enum CoNLL {
    /// Reads a CoNLL-style file.
    /// - Throws: ``TextDataError`` naming the file and the line: a token without a tag, a
    ///   line that is not UTF-8, or a file with no sentence.
    public static func read(path: String) throws -> [TaggedSentence] {
        try parse(TextData.readFile(path), name: path)
    }

    /// Reads CoNLL-style text from bytes; `name` is used in error messages.
    public static func parse(_ bytes: [UInt8], name: String) throws -> [TaggedSentence] {
        var out: [TaggedSentence] = []
        var current = TaggedSentence(tokens: [], tags: [], line: 0)
        func close() {
            if !current.tokens.isEmpty { out.append(current) }
            current = TaggedSentence(tokens: [], tags: [], line: 0)
        }
        for (n, line) in TextData.lines(bytes, from: TextData.afterBOM(bytes)) {
            let f = TextData.fields(line)
            if f.isEmpty { close(); continue }
            guard TextData.string(line) != nil else { throw TextDataError("\(name), line \(n) is not valid UTF-8.") }
            let token = String(decoding: f[0], as: UTF8.self)
            if token == "-DOCSTART-" { close(); continue }
            guard f.count >= 2 else {
                throw TextDataError("\(name), line \(n): the token '\(token)' has no tag; expected 'TOKEN TAG' (other columns may stand between them).")
            }
            if current.tokens.isEmpty { current.line = n }
            current.tokens.append(token)
            current.tags.append(String(decoding: f[f.count - 1], as: UTF8.self))
        }
        close()
        guard !out.isEmpty else { throw TextDataError("\(name) holds no sentence: expected lines 'TOKEN TAG', a blank line between sentences.") }
        return out
    }

    /// The sentences as CoNLL text: "token tag" lines, a blank line after each sentence.
    public static func text(_ sentences: [TaggedSentence]) -> String {
        sentences.map { s in zip(s.tokens, s.tags).map { "\($0) \($1)\n" }.joined() + "\n" }.joined()
    }
}

/// Tag names by id: "O" is 0, then the others by entity type, then by name.
public struct TagVocabulary: Sendable, Equatable {
    /// The tag of each id; `tags[0] == "O"`.
    public let tags: [String]
    let ids: [String: Int32]

    /// The tags of the sentences, in the order described above.
    public init(collecting sentences: [TaggedSentence]) {
        var all = Set<String>()
        for s in sentences { all.formUnion(s.tags) }
        self.init(tags: Array(all))
    }

    /// The given tags (with "O" added if missing), in the order described above.
    public init(tags: [String]) {
        func type(_ t: String) -> Substring { t.firstIndex(of: "-").map { t[t.index(after: $0)...] } ?? Substring(t) }
        let others = Set(tags).subtracting(["O"]).sorted { (type($0), $0) < (type($1), $1) }
        self.init(ordered: ["O"] + others)
    }

    init(ordered: [String]) {
        tags = ordered
        var ids: [String: Int32] = [:]
        for (i, t) in ordered.enumerated() { ids[t] = Int32(i) }
        self.ids = ids
    }

    public var count: Int { tags.count }

    /// The id of a tag, or nil when the vocabulary has no such tag.
    public func id(_ tag: String) -> Int32? { ids[tag] }

    /// The tags of ids (e.g. a row of predictions, cut to the sentence's length).
    public func names<S: Sequence>(_ ids: S) -> [String] where S.Element == Int32 {
        ids.map { tags[Int($0)] }
    }

    /// tags.txt: one tag per line, line k (from 1) holding the tag of id k-1.
    public var text: String { tags.map { $0 + "\n" }.joined() }

    /// Reads tags.txt as ``text`` writes it (the order is kept as written).
    public static func read(path: String) throws -> TagVocabulary {
        let lines = TextData.lines(try TextData.readFile(path), from: 0)
        guard let first = lines.first, first.bytes.elementsEqual("O".utf8) else {
            throw TextDataError("\(path), line 1: expected a tag file whose first line is 'O'.")
        }
        var tags: [String] = [], seen = Set<String>()
        for (n, line) in lines {
            guard let t = TextData.string(line), !t.isEmpty, seen.insert(t).inserted else {
                throw TextDataError("\(path), line \(n): expected one distinct tag per line.")
            }
            tags.append(t)
        }
        return TagVocabulary(ordered: tags)
    }
}

/// Sentences as two int32 arrays of shape (sentences, length): token ids padded with 0
/// (`<pad>`) at the end, and tag ids padded with 0.
public struct EncodedSentences: Sendable {
    /// Token ids, int32 (sentences, length).
    public let x: HostTensor
    /// Tag ids, int32 (sentences, length); 0 ("O") at padding.
    public let y: HostTensor
    /// The number of tokens of each sentence.
    public let lengths: [Int]
    /// Tokens that read as `<unk>`.
    public let unknownTokens: Int

    public var tokens: Int { lengths.reduce(0, +) }
    /// The share of tokens that read as `<unk>`, 0 to 1.
    public var unknownRate: Double { tokens == 0 ? 0 : Double(unknownTokens) / Double(tokens) }

    /// Encodes sentences.
    /// - Parameters:
    ///   - sentences: the sentences, e.g. from ``CoNLL/read(path:)``.
    ///   - vocabulary: token ids.
    ///   - tags: tag ids; every tag of the sentences must be in it.
    ///   - length: the padded length T; nil for the longest sentence's.
    ///   - name: the corpus's name for messages (its file).
    /// - Throws: ``TextDataError`` for a sentence longer than `length` (it is not truncated)
    ///   or a tag the vocabulary lacks, naming the line.
    public init(_ sentences: [TaggedSentence], vocabulary: Vocabulary, tags: TagVocabulary, length: Int? = nil, name: String = "the corpus") throws {
        let t = length ?? sentences.map(\.tokens.count).max() ?? 0
        var x = [Int32](repeating: Vocabulary.paddingID, count: sentences.count * t)
        var y = [Int32](repeating: 0, count: sentences.count * t)
        var unknown = 0
        for (i, s) in sentences.enumerated() {
            guard s.tokens.count <= t else {
                throw TextDataError("\(name), line \(s.line): the sentence starting here has \(s.tokens.count) tokens, more than the length \(t); give a larger --max-length (sentences are not truncated).")
            }
            for (j, (token, tag)) in zip(s.tokens, s.tags).enumerated() {
                let id = vocabulary.id(token)
                if id == Vocabulary.unknownID { unknown += 1 }
                x[i * t + j] = id
                guard let tid = tags.id(tag) else {
                    throw TextDataError("\(name), line \(s.line + j): the tag '\(tag)' is not in the tag vocabulary (\(tags.tags.joined(separator: ", "))).")
                }
                y[i * t + j] = tid
            }
        }
        self.x = HostTensor(shape: [sentences.count, t], ints: x)
        self.y = HostTensor(shape: [sentences.count, t], ints: y)
        lengths = sentences.map(\.tokens.count)
        unknownTokens = unknown
    }
}
