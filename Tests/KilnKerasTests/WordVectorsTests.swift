// Word-vector files (word2vec text and binary, GloVe text) written here, the binary one
// byte by byte; malformed ones with the line or byte offset their error must name; and
// the vocabulary and embedding matrix built from them.

import Foundation
import XCTest
import Kiln
import KilnRuntime

/// The bytes of a little-endian float32.
private func le(_ v: Float) -> [UInt8] { leBits(v.bitPattern) }
private func leBits(_ bits: UInt32) -> [UInt8] { (0..<4).map { UInt8((bits >> (8 * $0)) & 0xff) } }
private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// The error's text, or a failure when there is none.
private func errorText(_ body: () throws -> Any, file: StaticString = #filePath, line: UInt = #line) -> String {
    do {
        _ = try body()
        XCTFail("expected an error", file: file, line: line)
        return ""
    } catch { return "\(error)" }
}

final class WordVectorsTests: XCTestCase {
    func testWord2vecText() throws {
        // word2vec's C tool ends lines with a space; CRLF and tabs are allowed; trailing blank lines too.
        let text = "3 4\r\nthe 0.25 -1.5 1e-3 7 \r\ncat\t2\t0.1\t-0\t3.4028235e38\nStraße 1 2 3 4\n\n\n"
        let v = try WordVectors.parse(bytes(text), name: "v.txt")
        XCTAssertEqual(v.format, .word2vecText)
        XCTAssertEqual(v.words, ["the", "cat", "Straße"])
        XCTAssertEqual(v.dimension, 4)
        XCTAssertEqual(v.values, [0.25, -1.5, Float("1e-3")!, 7, 2, Float("0.1")!, 0, Float.greatestFiniteMagnitude, 1, 2, 3, 4])
        XCTAssertEqual(Array(v.vector("cat")!), [2, Float("0.1")!, 0, Float.greatestFiniteMagnitude])
        XCTAssertNil(v.vector("dog"))
        XCTAssertTrue(v.duplicates.isEmpty)
    }

    func testGloVeText() throws {
        let text = "\u{FEFF}the 0.5 0.25 -2\n, 1 2 3\n日本 -1 -2 -3"
        let v = try WordVectors.parse(bytes(text), name: "g.txt")
        XCTAssertEqual(v.format, .glove)
        XCTAssertEqual(v.words, ["the", ",", "日本"])
        XCTAssertEqual(v.dimension, 3)
        XCTAssertEqual(v.values, [0.5, 0.25, -2, 1, 2, 3, -1, -2, -3])
    }

    /// "COUNT DIM\n", then word, space, DIM little-endian float32, and a "\n" after some entries only.
    func testWord2vecBinaryBuiltByteByByte() throws {
        // Values whose bytes hold "\n" (0x0A) and " " (0x20), which the reader must not split on.
        let tricky = Float(bitPattern: 0x3F0A_200A), another = Float(bitPattern: 0xC120_0A20)
        var b = bytes("3 2\n")
        b += bytes("the ") + le(1.0) + le(-0.5) + [0x0A]
        b += bytes("Straße ") + le(tricky) + le(another)          // no "\n" after this one
        b += bytes("x ") + le(Float(3.25)) + le(Float(0)) + [0x0A]
        XCTAssertEqual(WordVectors.detectFormat(b), .word2vecBinary)
        let v = try WordVectors.parse(b, name: "v.bin")
        XCTAssertEqual(v.format, .word2vecBinary)
        XCTAssertEqual(v.words, ["the", "Straße", "x"])
        XCTAssertEqual(v.values.map(\.bitPattern), [1.0, -0.5, tricky, another, 3.25, 0].map { Float($0).bitPattern })
        // The same through a file and the explicit format.
        let path = NSTemporaryDirectory() + "kiln-vec-\(getpid()).bin"
        try Data(b).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertEqual(try WordVectors.read(path: path, format: .word2vecBinary).words, ["the", "Straße", "x"])
    }

    func testDetectionAndOverride() throws {
        XCTAssertEqual(WordVectors.detectFormat(bytes("2 3\na 1 2 3\nb 4 5 6\n")), .word2vecText)
        XCTAssertEqual(WordVectors.detectFormat(bytes("a 1 2 3\nb 4 5 6\n")), .glove)
        // A one-dimensional GloVe file whose first word is a number looks like a header.
        let odd = bytes("3 5\n4 6\n")
        XCTAssertEqual(WordVectors.detectFormat(odd), .word2vecText)
        XCTAssertEqual(errorText { try WordVectors.parse(odd, name: "odd.txt") },
                       "odd.txt, line 2: expected a word and 5 numbers (the dimension the header declares), found 1 value after '4'.")
        let v = try WordVectors.parse(odd, name: "odd.txt", format: .glove)
        XCTAssertEqual(v.words, ["3", "4"])
        XCTAssertEqual(v.values, [5, 6])
        XCTAssertEqual(errorText { try WordVectors.parse(bytes("a 1 2\n"), name: "g.txt", format: .word2vecBinary) },
                       "g.txt, line 1: expected the word2vec header 'COUNT DIMENSION' (two whole numbers), found 'a 1 2'.")
    }

    func testMalformedTextNamesTheLine() {
        let cases: [(String, String)] = [
            ("", "f is empty: expected word vectors (word2vec text or binary, or GloVe text)."),
            ("\n \n", "f is empty: expected word vectors (word2vec text or binary, or GloVe text)."),
            ("3 3\nthe 1 2 3\ncat 1 2\ndog 1 2 3\n",
             "f, line 3: expected a word and 3 numbers (the dimension the header declares), found 2 values after 'cat'."),
            ("the 1 2 3\ncat 1 2 3\ndog 1 2 3 4\n",
             "f, line 3: expected a word and 3 numbers (the dimension of line 1), found 4 values after 'dog'."),
            ("the 1 2\ncat 1 abc\n", "f, line 2: value 2 of 'cat' is 'abc'; expected a finite number."),
            ("the 1 nan\n", "f, line 1: value 2 of 'the' is 'nan'; expected a finite number."),
            ("the 1 1e39\n", "f, line 1: value 2 of 'the' is '1e39'; expected a finite number."),
            ("the 1 2,5\n", "f, line 1: value 2 of 'the' is '2,5'; expected a finite number."),
            ("3 2\nthe 1 2\ncat 3 4\n", "f: the header declares 3 vectors, but the file holds 2."),
            ("2 2\nthe 1 2\ncat 3 4\ndog 5 6\n", "f, line 4: the header declares 2 vectors, but more lines follow."),
            ("2 0\n", "f, line 1: the header declares dimension 0; expected 1 or more."),
            ("0 5\n", "f, line 1: the header declares 0 vectors; expected 1 or more."),
            ("the 1 2\n\ncat 3 4\n", "f, line 2 is blank: expected a word and 2 numbers (blank lines may only end the file)."),
            ("lonely\n", "f, line 1: expected a word and its numbers, found only 'lonely'."),
        ]
        for (text, message) in cases {
            XCTAssertEqual(errorText { try WordVectors.parse(bytes(text), name: "f") }, message, "for \(text.debugDescription)")
        }
        // Bytes that are not UTF-8 in a text file.
        XCTAssertEqual(errorText { try WordVectors.parse(bytes("a 1\n") + [0x62, 0xFF, 0x20, 0x31, 0x0A], name: "f", format: .glove) },
                       "f, line 2 is not valid UTF-8.")
        XCTAssertEqual(errorText { try WordVectors.read(path: "/nonexistent/vectors.txt") }, "/nonexistent/vectors.txt: no such file.")
    }

    func testMalformedBinaryNamesTheByte() {
        let header = bytes("2 2\n")  // 4 bytes: the first word starts at byte 4
        let first = bytes("a ") + le(1.0) + le(2.0) + [0x0A]  // bytes 4..<15
        XCTAssertEqual(errorText { try WordVectors.parse(header + first + bytes("bb ") + le(3.0) + [0x00, 0x00], name: "v.bin") },
                       "v.bin, byte 18: the vector of 'bb' (2 of 2) is cut short: expected 8 bytes of float32, found 6.")
        XCTAssertEqual(errorText { try WordVectors.parse(header + first, name: "v.bin", format: .word2vecBinary) },
                       "v.bin, byte 15: the file ends after 1 vectors, but the header declares 2.")
        XCTAssertEqual(errorText { try WordVectors.parse(header + first + bytes("word-without-space"), name: "v.bin", format: .word2vecBinary) },
                       "v.bin, byte 15: vector 2 of 2 is cut short: its word has no space after it before the end of the file.")
        XCTAssertEqual(errorText { try WordVectors.parse(header + first + bytes("b ") + le(1) + le(2) + bytes("c ") + le(3) + le(4), name: "v.bin") },
                       "v.bin, byte 25: the header declares 2 vectors, but more bytes follow (10); is the header's count or dimension (2) wrong?")
        XCTAssertEqual(errorText { try WordVectors.parse(header + first + bytes("b ") + le(1) + leBits(0x7FC0_0000), name: "v.bin") },
                       "v.bin, byte 21: value 2 of 'b' is nan; expected a finite number.")
        XCTAssertEqual(errorText { try WordVectors.parse(header + first + [0x62, 0xC3, 0x20] + le(1) + le(2), name: "v.bin") },
                       "v.bin, byte 15: the word of vector 2 of 2 is not valid UTF-8 (is this really the binary format, with dimension 2?).")
    }

    func testDuplicateWordsKeepTheFirstVector() throws {
        let v = try WordVectors.parse(bytes("4 2\nthe 1 2\ncat 3 4\nthe 5 6\ncat 7 8\n"), name: "f")
        XCTAssertEqual(v.words, ["the", "cat"])
        XCTAssertEqual(v.values, [1, 2, 3, 4])
        XCTAssertEqual(v.duplicates.map { $0.word }, ["the", "cat"])
        XCTAssertEqual(v.duplicates.map { $0.location }, ["line 4", "line 5"])
        var b = bytes("2 1\n") + bytes("a ") + le(1) + [0x0A]
        b += bytes("a ") + le(2)
        let w = try WordVectors.parse(b, name: "f")
        XCTAssertEqual(w.values, [1])
        XCTAssertEqual(w.duplicates.map { $0.location }, ["byte 11"])
    }

    // MARK: Vocabulary and matrix

    func testVocabularyAndMatrix() throws {
        let v = try WordVectors.parse(bytes("The 1 2\ncat 3 4\nthe 5 6\n<unk> 9 9\ndog -1 0\n"), name: "f")
        let e = WordEmbedding(vectors: v)
        XCTAssertEqual(e.vocabulary.words, ["<pad>", "<unk>", "The", "cat", "the", "dog"])
        XCTAssertEqual(e.matrix.shape, [6, 2])
        XCTAssertEqual(e.matrix.floats, [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, -1, 0])
        XCTAssertEqual(e.vocabulary.ids(["cat", "The", "THE", "dog", "emu", "<pad>", "<unk>"]), [3, 2, 1, 5, 1, 1, 1])
        XCTAssertEqual(e.wordsFromVectors, 4)

        // Lowercased: "the" keeps the first vector (The's); <unk> is the mean of every file vector.
        let l = WordEmbedding(vectors: v, options: EmbeddingOptions(lowercase: true, unknownVector: .mean))
        XCTAssertEqual(l.vocabulary.words, ["<pad>", "<unk>", "the", "cat", "dog"])
        let mean: [Float] = [17.0 / 5, 21.0 / 5]  // (1 + 3 + 5 + 9 - 1) / 5, (2 + 4 + 6 + 9 + 0) / 5
        XCTAssertEqual(l.matrix.floats, [0, 0] + mean + [1, 2, 3, 4, -1, 0])
        XCTAssertEqual(l.vocabulary.ids(["THE", "Cat", "emu"]), [2, 3, 1])
        XCTAssertEqual(l.vocabulary.text, "<pad>\n<unk>\nthe\ncat\ndog\n")
    }

    func testRestrictToCorpusAndMissingWords() throws {
        let v = try WordVectors.parse(bytes("a 1 -1\nb 2 -2\nc 3 -3\nd 4 -4\n"), name: "f")
        let corpus = ["d", "x", "b", "y", "x", "d"]
        // Restricted: the file's order (b before d), corpus words without vectors read as <unk>.
        let r = WordEmbedding(vectors: v, options: EmbeddingOptions(corpusTokens: corpus, restrictToCorpus: true))
        XCTAssertEqual(r.vocabulary.words, ["<pad>", "<unk>", "b", "d"])
        XCTAssertEqual(r.matrix.floats, [0, 0, 0, 0, 2, -2, 4, -4])
        // Zeros: x and y get rows of their own after the file's words, in corpus order.
        let z = WordEmbedding(vectors: v, options: EmbeddingOptions(corpusTokens: corpus, restrictToCorpus: true, missingWords: .zeros))
        XCTAssertEqual(z.vocabulary.words, ["<pad>", "<unk>", "b", "d", "x", "y"])
        XCTAssertEqual(z.matrix.floats, [0, 0, 0, 0, 2, -2, 4, -4, 0, 0, 0, 0])
        XCTAssertEqual(z.wordsAdded, 2)
        // Unrestricted with random rows: every file word, then x and y, uniform in ±√3·σ.
        let a = WordEmbedding(vectors: v, options: EmbeddingOptions(corpusTokens: corpus, missingWords: .random(seed: 7)))
        XCTAssertEqual(a.vocabulary.words, ["<pad>", "<unk>", "a", "b", "c", "d", "x", "y"])
        let added = Array(a.matrix.floats[12...])
        // The file's values are ±1..±4: mean 0, variance (1+4+9+16)/4 = 7.5, so the bound is √22.5.
        let bound = Float(22.5.squareRoot())
        XCTAssertEqual(added.count, 4)
        XCTAssertTrue(added.allSatisfy { abs($0) <= bound && $0 != 0 }, "\(added)")
        XCTAssertEqual(WordEmbedding(vectors: v, options: EmbeddingOptions(corpusTokens: corpus, missingWords: .random(seed: 7))).matrix, a.matrix)
        XCTAssertNotEqual(Array(WordEmbedding(vectors: v, options: EmbeddingOptions(corpusTokens: corpus, missingWords: .random(seed: 8))).matrix.floats[12...]), added)
    }

    func testVocabularyFileRoundTrip() throws {
        let dir = NSTemporaryDirectory() + "kiln-vocab-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let vocab = Vocabulary(words: ["the", "Straße", "日本"])
        try vocab.text.write(toFile: dir + "/vocab.txt", atomically: true, encoding: .utf8)
        XCTAssertEqual(try Vocabulary.read(path: dir + "/vocab.txt"), vocab)
        try "<pad>\n<unk>\nthe\nthe\n".write(toFile: dir + "/bad.txt", atomically: true, encoding: .utf8)
        XCTAssertEqual(errorText { try Vocabulary.read(path: dir + "/bad.txt") },
                       "\(dir)/bad.txt, line 4: 'the' appears a second time; expected one distinct word per line.")
    }
}
