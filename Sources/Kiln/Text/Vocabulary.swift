// The vocabulary of a model's Embedding and its matrix, made from word vectors.
//
// Ids: 0 is padding ("<pad>", a zero row; Embedding(mask_zero=True) masks it), 1 is the
// unknown word ("<unk>", a zero row by default, or the mean of the file's vectors), then
// the vector file's words in file order from id 2. Options: lowercase (off by default:
// the file's words and the tokens looked up are lowercased, and of file words equal
// after lowercasing the first keeps its vector); restrict to the words of given corpora
// (file order kept); and corpus words that have no vector either stay unknown (id 1,
// the default) or get ids after the file's words, in order of first appearance, with a
// zero or a random row. A random row is uniform in ±√3·σ, σ the standard deviation of
// all the file's values (so it has their spread), drawn with splitmix64 from a seed.
// A file word spelled "<pad>" or "<unk>" is not given an id of its own (those names are
// the reserved ids'), nor are later duplicates.

import KilnRuntime
import KilnSupport

/// Token ids for a model's Embedding: 0 = `<pad>`, 1 = `<unk>`, then words.
public struct Vocabulary: Sendable, Equatable {
    /// The id of padding; its row is zeros.
    public static let paddingID: Int32 = 0
    /// The id of every word not in the vocabulary.
    public static let unknownID: Int32 = 1
    public static let paddingToken = "<pad>"
    public static let unknownToken = "<unk>"

    /// The word of each id: `words[0] == "<pad>"`, `words[1] == "<unk>"`.
    public let words: [String]
    /// Whether tokens are lowercased before they are looked up.
    public let lowercase: Bool
    let ids: [String: Int32]

    /// A vocabulary of `<pad>`, `<unk>` and `words` (ids 2, 3, ...).
    /// - Parameters:
    ///   - words: distinct words, neither "<pad>" nor "<unk>" (already lowercased when `lowercase`).
    ///   - lowercase: whether lookups lowercase the token first.
    public init(words: [String], lowercase: Bool = false) {
        let all = [Self.paddingToken, Self.unknownToken] + words
        var ids: [String: Int32] = [:]
        for (i, w) in all.enumerated() {
            precondition(ids.updateValue(Int32(i), forKey: w) == nil, "vocabulary word '\(w)' appears twice")
        }
        self.words = all; self.lowercase = lowercase; self.ids = ids
    }

    /// The number of ids, `<pad>` and `<unk>` included (the Embedding's `inputDim`).
    public var count: Int { words.count }

    /// The id of a token: its word's, or ``unknownID``. "<pad>" is looked up as unknown
    /// (padding is not a token).
    public func id(_ token: String) -> Int32 {
        let id = ids[lowercase ? token.lowercased() : token] ?? Self.unknownID
        return id == Self.paddingID ? Self.unknownID : id
    }

    /// Whether the token has an id of its own (not `<unk>`).
    public func contains(_ token: String) -> Bool { id(token) != Self.unknownID }

    /// The ids of tokens.
    public func ids(_ tokens: [String]) -> [Int32] { tokens.map(id) }

    /// vocab.txt: one word per line, line k (from 1) holding the word of id k-1.
    public var text: String { words.map { $0 + "\n" }.joined() }

    /// Reads vocab.txt as ``text`` writes it.
    public static func read(path: String, lowercase: Bool = false) throws -> Vocabulary {
        let bytes = try TextData.readFile(path)
        let lines = TextData.lines(bytes, from: 0)
        guard lines.count >= 2, lines[0].bytes.elementsEqual(paddingToken.utf8), lines[1].bytes.elementsEqual(unknownToken.utf8) else {
            throw TextDataError("\(path), line 1: expected a vocabulary file starting with the lines '<pad>' and '<unk>'.")
        }
        var words: [String] = [], seen: Set<String> = [paddingToken, unknownToken]
        for (n, line) in lines.dropFirst(2) {
            guard let w = TextData.string(line) else { throw TextDataError("\(path), line \(n) is not valid UTF-8.") }
            guard !w.isEmpty, seen.insert(w).inserted else {
                throw TextDataError("\(path), line \(n): \(w.isEmpty ? "an empty word" : "'\(w)' appears a second time"); expected one distinct word per line.")
            }
            words.append(w)
        }
        return Vocabulary(words: words, lowercase: lowercase)
    }
}

/// How ``WordEmbedding`` builds the vocabulary and matrix.
public struct EmbeddingOptions: Sendable {
    /// The row of `<unk>`.
    public enum UnknownVector: String, Sendable, CaseIterable {
        /// Zeros (what Keras tutorials use).
        case zeros
        /// The mean of all the file's vectors.
        case mean
    }
    /// What corpus words without a vector become.
    public enum MissingWords: Sendable, Equatable {
        /// No id of their own: they read as `<unk>`.
        case unknown
        /// Ids after the file's words, zero rows.
        case zeros
        /// Ids after the file's words, rows uniform in ±√3·σ of the file's values.
        case random(seed: UInt64)
    }

    /// Lowercase the file's words and every token looked up.
    public var lowercase = false
    /// The row of `<unk>`.
    public var unknownVector = UnknownVector.zeros
    /// The tokens of the corpora the model will read (in order), or nil for none.
    public var corpusTokens: [String]? = nil
    /// Keep only the file's words that occur in `corpusTokens`.
    public var restrictToCorpus = false
    /// What corpus words without a vector become.
    public var missingWords = MissingWords.unknown

    public init(lowercase: Bool = false, unknownVector: UnknownVector = .zeros, corpusTokens: [String]? = nil,
                restrictToCorpus: Bool = false, missingWords: MissingWords = .unknown) {
        self.lowercase = lowercase; self.unknownVector = unknownVector; self.corpusTokens = corpusTokens
        self.restrictToCorpus = restrictToCorpus; self.missingWords = missingWords
    }
}

/// A vocabulary and its embedding matrix, ready for `Embedding(inputDim: vocabulary.count,
/// outputDim: dimension)` with `setWeights([matrix])` and `trainable = false`.
public struct WordEmbedding: Sendable {
    public let vocabulary: Vocabulary
    /// float32, shape (vocabulary.count, dimension); row i is the vector of id i.
    public let matrix: HostTensor
    /// Words that took their vector from the file.
    public let wordsFromVectors: Int
    /// Corpus words without a vector that were given an id (zero or random rows).
    public let wordsAdded: Int

    public var dimension: Int { matrix.shape[1] }

    /// Builds the vocabulary and matrix from word vectors.
    public init(vectors: WordVectors, options: EmbeddingOptions = EmbeddingOptions()) {
        let dim = vectors.dimension
        let key: (String) -> String = options.lowercase ? { $0.lowercased() } : { $0 }
        let corpus = options.corpusTokens.map { tokens -> [String] in
            var seen = Set<String>()
            return tokens.map(key).filter { seen.insert($0).inserted }
        }
        let keep = options.restrictToCorpus ? corpus.map(Set.init) : nil

        var words: [String] = []
        var taken: Set<String> = [Vocabulary.paddingToken, Vocabulary.unknownToken]
        var rows = [Float](repeating: 0, count: 2 * dim)
        if options.unknownVector == .mean && !vectors.words.isEmpty {
            var sum = [Double](repeating: 0, count: dim)
            for i in vectors.words.indices { for j in 0..<dim { sum[j] += Double(vectors.values[i * dim + j]) } }
            for j in 0..<dim { rows[dim + j] = Float(sum[j] / Double(vectors.words.count)) }
        }
        for (i, w) in vectors.words.enumerated() {
            let k = key(w)
            if let keep, !keep.contains(k) { continue }
            guard taken.insert(k).inserted else { continue }
            words.append(k)
            rows += vectors.values[(i * dim)..<((i + 1) * dim)]
        }
        let fromVectors = words.count

        if options.missingWords != .unknown, let corpus {
            var rng = SplitMix64(state: 0)
            var scale: Float = 0
            if case .random(let seed) = options.missingWords {
                rng = SplitMix64(state: seed)
                let n = Double(vectors.values.count)
                let mean = vectors.values.reduce(0.0) { $0 + Double($1) } / n
                let variance = vectors.values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
                scale = Float((3 * variance).squareRoot())
            }
            for w in corpus where taken.insert(w).inserted {
                words.append(w)
                for _ in 0..<dim { rows.append(scale == 0 ? 0 : (2 * rng.unitFloat() - 1) * scale) }
            }
        }
        vocabulary = Vocabulary(words: words, lowercase: options.lowercase)
        matrix = HostTensor(shape: [words.count + 2, dim], floats: rows)
        wordsFromVectors = fromVectors
        wordsAdded = words.count - fromVectors
    }
}
