// `kiln vectors`: the files it writes, its summary line, and its exit codes (1 for a bad
// file, with nothing written; 2 for a usage error).

import Foundation
import XCTest
import Kiln
import KilnRuntime

final class VectorsCLITests: XCTestCase {
    func testWritesMatrixVocabularyAndIds() throws {
        let kiln = try kilnBinary()
        let dir = try makeTempDir(self, "vectors")
        try "4 3\nthe 0.5 0 -1 \neu 1 2 3\npeter 4 5 6\nunused 7 8 9\n".write(toFile: dir + "/vec.txt", atomically: true, encoding: .utf8)
        try "-DOCSTART- -X- O\n\nEU NNP B-ORG\nrejects VBZ O\nthe DT O\n\nPeter NNP B-PER\n\n".write(toFile: dir + "/train.conll", atomically: true, encoding: .utf8)
        try "Peter B-PER\nBlackburn I-PER\n".write(toFile: dir + "/test.txt", atomically: true, encoding: .utf8)
        let out = dir + "/out"
        let r = try runProgram(kiln, ["vectors", dir + "/vec.txt", "-o", out, "--conll", dir + "/train.conll", "--conll", dir + "/test.txt",
                                      "--lowercase", "--max-length", "4"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "\(dir)/vec.txt (word2vec-text): vocabulary 6 = <pad>, <unk>, 4 words with vectors, dimension 3; "
                       + "train: 2 sentences, T 4, 25.00% unknown tokens (1 of 4); test: 1 sentences, T 4, 50.00% unknown tokens (1 of 2); 4 tags\n")
        let files = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
        XCTAssertEqual(files, ["embedding.npy", "tags.txt", "test_x.npy", "test_y.npy", "train_x.npy", "train_y.npy", "vocab.txt"])
        let m = try NPY.read(path: out + "/embedding.npy")
        XCTAssertEqual(m.dtype, .float32)
        XCTAssertEqual(m.shape, [6, 3])
        XCTAssertEqual(m.floats, [0, 0, 0, 0, 0, 0, 0.5, 0, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9])
        XCTAssertEqual(try String(contentsOfFile: out + "/vocab.txt", encoding: .utf8), "<pad>\n<unk>\nthe\neu\npeter\nunused\n")
        XCTAssertEqual(try String(contentsOfFile: out + "/tags.txt", encoding: .utf8), "O\nB-ORG\nB-PER\nI-PER\n")
        let x = try NPY.read(path: out + "/train_x.npy"), y = try NPY.read(path: out + "/train_y.npy")
        XCTAssertEqual([x.dtype, y.dtype], [.int32, .int32])
        XCTAssertEqual(x.shape, [2, 4])
        XCTAssertEqual(x.ints, [3, 1, 2, 0, 4, 0, 0, 0])
        XCTAssertEqual(y.ints, [1, 0, 0, 0, 2, 0, 0, 0])
        XCTAssertEqual(try NPY.read(path: out + "/test_x.npy").ints, [4, 1, 0, 0])
        XCTAssertEqual(try NPY.read(path: out + "/test_y.npy").ints, [2, 3, 0, 0])

        // --restrict keeps the vector words of the corpora; --missing zeros adds the others.
        let r2 = try runProgram(kiln, ["vectors", dir + "/vec.txt", "-o", out + "2", "--conll", dir + "/test.txt", "--lowercase", "--restrict", "--missing", "zeros"])
        XCTAssertEqual(r2.status, 0, r2.stderr)
        XCTAssertEqual(try String(contentsOfFile: out + "2/vocab.txt", encoding: .utf8), "<pad>\n<unk>\npeter\nblackburn\n")
        XCTAssertEqual(try NPY.read(path: out + "2/embedding.npy").floats, [0, 0, 0, 0, 0, 0, 4, 5, 6, 0, 0, 0])
        XCTAssertTrue(r2.stdout.contains("vocabulary 4 = <pad>, <unk>, 1 words with vectors + 1 corpus words without, dimension 3"), r2.stdout)
    }

    func testBadInputExitsOneAndWritesNothing() throws {
        let kiln = try kilnBinary()
        let dir = try makeTempDir(self, "vectors")
        try "the 1 2\ncat 3\n".write(toFile: dir + "/bad.txt", atomically: true, encoding: .utf8)
        let out = dir + "/out"
        var r = try runProgram(kiln, ["vectors", dir + "/bad.txt", "-o", out])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderr, "kiln: \(dir)/bad.txt, line 2: expected a word and 2 numbers (the dimension of line 1), found 1 value after 'cat'.\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))

        // A sentence longer than --max-length, in a folder that already holds files: they stay as they were.
        try "the 1 2\n".write(toFile: dir + "/good.txt", atomically: true, encoding: .utf8)
        try "a O\nb O\nc O\n".write(toFile: dir + "/long.conll", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try "old\n".write(toFile: out + "/vocab.txt", atomically: true, encoding: .utf8)
        r = try runProgram(kiln, ["vectors", dir + "/good.txt", "-o", out, "--conll", dir + "/long.conll", "--max-length", "2"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("long.conll, line 1: the sentence starting here has 3 tokens, more than the length 2"), r.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out), ["vocab.txt"])
        XCTAssertEqual(try String(contentsOfFile: out + "/vocab.txt", encoding: .utf8), "old\n")

        // A duplicate word is a warning, not an error.
        try "the 1 2\nthe 3 4\n".write(toFile: dir + "/dup.txt", atomically: true, encoding: .utf8)
        r = try runProgram(kiln, ["vectors", dir + "/dup.txt", "-o", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr, "kiln: warning: \(dir)/dup.txt, line 2: 'the' appears again; the first vector is kept, as gensim does.\n")
    }

    func testUsageErrorsExitTwo() throws {
        let kiln = try kilnBinary()
        let dir = try makeTempDir(self, "vectors")
        try "the 1 2\n".write(toFile: dir + "/v.txt", atomically: true, encoding: .utf8)
        for args in [["--format", "fasttext"], ["--restrict"], ["--missing", "some"], ["--max-length", "0"], ["--unknown-vector", "ones"]] {
            let r = try runProgram(kiln, ["vectors", dir + "/v.txt", "-o", dir + "/out"] + args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out"), "\(args)")
        }
    }
}
