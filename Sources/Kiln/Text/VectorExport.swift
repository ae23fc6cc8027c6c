// `kiln vectors`: word vectors (and CoNLL corpora) -> the arrays a tagger model reads.
//
// Writes into DIR:
//   embedding.npy  float32 (V, D): row i is the vector of id i (row 0 <pad> zeros, row 1 <unk>)
//   vocab.txt      V lines: line k (from 1) is the word of id k-1 ("<pad>", "<unk>", words...)
//   for each corpus STEM.EXT given (STEM: the file name up to its last dot):
//   STEM_x.npy     int32 (S, T): token ids, each sentence from column 0, padded with 0
//   STEM_y.npy     int32 (S, T): tag ids, 0 at padding (0 is also "O": tell padding by x == 0)
//   tags.txt       one tag per line, line k the tag of id k-1, shared by every corpus
// T is the given length or the longest sentence over all corpora; a longer sentence is
// refused, not truncated. Everything is read and checked, and every file written into
// a temporary folder inside DIR, before the files are renamed into place: on an error
// DIR holds nothing new.

import Foundation
import KilnRuntime
import KilnSupport

public enum VectorExport {
    /// One corpus written: its file, stem and encoded sentences.
    public struct Corpus: Sendable {
        public let path: String
        public let stem: String
        public let encoded: EncodedSentences
    }

    /// What was read and written.
    public struct Report: Sendable {
        public let vectorsPath: String
        public let vectors: WordVectors
        public let embedding: WordEmbedding
        public let corpora: [Corpus]
        public let tags: TagVocabulary?
        /// The padded length T (0 without corpora).
        public let length: Int
        /// The files written, in order.
        public let files: [String]

        /// One line: vocabulary, dimension, and per corpus its sentences and unknown-token rate.
        public var summary: String {
            let e = embedding
            var s = "\(vectorsPath) (\(vectors.format.rawValue)): vocabulary \(e.vocabulary.count) = <pad>, <unk>, \(e.wordsFromVectors) words with vectors"
            if e.wordsAdded > 0 { s += " + \(e.wordsAdded) corpus words without" }
            s += ", dimension \(e.dimension)"
            for c in corpora {
                let rate = String(format: "%.2f%%", 100 * c.encoded.unknownRate)
                s += "; \(c.stem): \(c.encoded.lengths.count) sentences, T \(length), \(rate) unknown tokens (\(c.encoded.unknownTokens) of \(c.encoded.tokens))"
            }
            if let tags { s += "; \(tags.count) tags" }
            return s
        }
    }

    /// Reads the vectors and corpora, builds the vocabulary, matrix and id arrays, and writes
    /// them into `output` (created if missing).
    /// - Parameters:
    ///   - vectors: the word-vector file.
    ///   - output: the folder to write into.
    ///   - format: the vector format, or nil to detect it.
    ///   - conll: CoNLL files to encode; their tokens are the corpus of `options`.
    ///   - maxLength: T, or nil for the longest sentence.
    ///   - options: the embedding options; `corpusTokens` is set from `conll`.
    /// - Throws: ``TextDataError`` for bad input, before anything is written.
    public static func run(vectors: String, output: String, format: WordVectorFormat? = nil, conll: [String] = [],
                           maxLength: Int? = nil, options: EmbeddingOptions = EmbeddingOptions()) throws -> Report {
        if let t = maxLength, t < 1 { throw TextDataError("the maximum length must be 1 or more, not \(t).") }
        if conll.isEmpty && (options.restrictToCorpus || options.missingWords != .unknown) {
            throw TextDataError("restricting the vocabulary to the corpora, or adding their missing words, needs CoNLL files.")
        }
        var stems: [String: String] = [:]
        for path in conll {
            let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
            if let other = stems.updateValue(path, forKey: stem) {
                throw TextDataError("\(other) and \(path) have the same stem '\(stem)'; their arrays would both be \(stem)_x.npy.")
            }
        }
        let vec = try WordVectors.read(path: vectors, format: format)
        let corpora = try conll.map { try CoNLL.read(path: $0) }
        var opts = options
        if !conll.isEmpty { opts.corpusTokens = corpora.flatMap { $0.flatMap(\.tokens) } }
        let embedding = WordEmbedding(vectors: vec, options: opts)

        var files: [(String, [UInt8])] = [("embedding.npy", NPY.encode(embedding.matrix)), ("vocab.txt", Array(embedding.vocabulary.text.utf8))]
        var done: [Corpus] = []
        var tags: TagVocabulary? = nil
        var length = 0
        if !conll.isEmpty {
            let t = TagVocabulary(collecting: corpora.flatMap { $0 })
            length = maxLength ?? corpora.joined().map(\.tokens.count).max()!
            for (path, sentences) in zip(conll, corpora) {
                let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
                let e = try EncodedSentences(sentences, vocabulary: embedding.vocabulary, tags: t, length: length, name: path)
                done.append(Corpus(path: path, stem: stem, encoded: e))
                files += [(stem + "_x.npy", NPY.encode(e.x)), (stem + "_y.npy", NPY.encode(e.y))]
            }
            files.append(("tags.txt", Array(t.text.utf8)))
            tags = t
        }
        try writeAll(files, into: output)
        return Report(vectorsPath: vectors, vectors: vec, embedding: embedding, corpora: done, tags: tags,
                      length: length, files: files.map { output + "/" + $0.0 })
    }

    /// Writes every file into a temporary folder inside `dir`, then renames them into `dir`.
    static func writeAll(_ files: [(String, [UInt8])], into dir: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), !isDir.boolValue {
            throw TextDataError("\(dir) is a file; expected a folder to write into.")
        }
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw TextDataError("cannot create the folder \(dir): \((error as NSError).localizedDescription)")
        }
        var template = Array((dir + "/.kiln-vectors-XXXXXX").utf8CString)
        guard let staging = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }).map({ String(cString: $0) }) else {
            throw TextDataError("cannot write into \(dir): \(String(cString: strerror(errno))).")
        }
        defer { try? FileManager.default.removeItem(atPath: staging) }
        for (name, bytes) in files {
            let err = writeFileAtomically(bytes, to: staging + "/" + name)
            if err != 0 { throw TextDataError("cannot write \(dir)/\(name): \(String(cString: strerror(err))).") }
        }
        for (name, _) in files where rename(staging + "/" + name, dir + "/" + name) != 0 {
            throw TextDataError("cannot write \(dir)/\(name): \(String(cString: strerror(errno))).")
        }
    }
}
