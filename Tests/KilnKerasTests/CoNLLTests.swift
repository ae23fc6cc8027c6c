// The CoNLL reader, the tag vocabulary and padded id arrays; entity extraction and
// entity-level precision, recall and F1 against hand-counted values and against
// seqeval's own answers (Tests/Fixtures/seqeval_cases.json, tools/gen_seqeval_cases.py).

import Foundation
import XCTest
import Kiln
import KilnRuntime
import KilnTestSupport

private func errorText(_ body: () throws -> Any, file: StaticString = #filePath, line: UInt = #line) -> String {
    do {
        _ = try body()
        XCTFail("expected an error", file: file, line: line)
        return ""
    } catch { return "\(error)" }
}

final class CoNLLTests: XCTestCase {
    /// CoNLL-2003's layout: DOCSTART, four columns, blank lines (several, and at the end).
    static let conll2003 = """
        -DOCSTART- -X- -X- O

        EU NNP B-NP B-ORG
        rejects VBZ B-VP O
        German JJ B-NP B-MISC
        call NN I-NP O
        . . O O

        Peter NNP B-NP B-PER
        Blackburn NNP I-NP I-PER


        -DOCSTART- -X- -X- O

        BRUSSELS NNP B-NP I-LOC\r
        1996-08-22 CD I-NP O\r
        \t\r

        """

    func testReadsCoNLL2003Layout() throws {
        let s = try CoNLL.parse(Array(Self.conll2003.utf8), name: "train.txt")
        XCTAssertEqual(s.count, 3)
        XCTAssertEqual(s[0], TaggedSentence(tokens: ["EU", "rejects", "German", "call", "."], tags: ["B-ORG", "O", "B-MISC", "O", "O"], line: 3))
        XCTAssertEqual(s[1], TaggedSentence(tokens: ["Peter", "Blackburn"], tags: ["B-PER", "I-PER"], line: 9))
        // An I- tag at the start of an entity is CoNLL data (IOB1), kept as it is.
        XCTAssertEqual(s[2], TaggedSentence(tokens: ["BRUSSELS", "1996-08-22"], tags: ["I-LOC", "O"], line: 15))
        // Two columns and no blank line at the end; a DOCSTART between sentences ends one.
        let t = try CoNLL.parse(Array("a O\nb B-X\n-DOCSTART- O\nc I-X".utf8), name: "t")
        XCTAssertEqual(t.map(\.tokens), [["a", "b"], ["c"]])
        XCTAssertEqual(try CoNLL.parse(Array(CoNLL.text(s).utf8), name: "again").map(\.tags), s.map(\.tags))
    }

    func testMalformedCoNLLNamesTheLine() {
        XCTAssertEqual(errorText { try CoNLL.parse(Array("a O\nb B-PER\n\nc\nd O\n".utf8), name: "c.txt") },
                       "c.txt, line 4: the token 'c' has no tag; expected 'TOKEN TAG' (other columns may stand between them).")
        XCTAssertEqual(errorText { try CoNLL.parse(Array("-DOCSTART- -X- O\n\n\n".utf8), name: "c.txt") },
                       "c.txt holds no sentence: expected lines 'TOKEN TAG', a blank line between sentences.")
        XCTAssertEqual(errorText { try CoNLL.parse(Array("a O\n".utf8) + [0xFF, 0x20, 0x4F, 0x0A], name: "c.txt") },
                       "c.txt, line 2 is not valid UTF-8.")
        XCTAssertEqual(errorText { try CoNLL.read(path: "/nonexistent/c.txt") }, "/nonexistent/c.txt: no such file.")
    }

    func testTagVocabularyPutsOFirstThenByType() {
        let t = TagVocabulary(tags: ["I-PER", "B-ORG", "O", "B-PER", "I-LOC", "B-MISC", "B-LOC", "I-MISC"])
        XCTAssertEqual(t.tags, ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "B-PER", "I-PER"])
        XCTAssertEqual(t.id("O"), 0)
        XCTAssertEqual(t.id("I-PER"), 7)
        XCTAssertNil(t.id("B-DATE"))
        XCTAssertEqual(TagVocabulary(tags: ["B-X"]).tags, ["O", "B-X"])  // O even when no tag is O
        XCTAssertEqual(t.names([0, 6, 7]), ["O", "B-PER", "I-PER"])
        XCTAssertEqual(t.text, "O\nB-LOC\nI-LOC\nB-MISC\nI-MISC\nB-ORG\nB-PER\nI-PER\n")
    }

    func testEncodedSentences() throws {
        let s = try CoNLL.parse(Array(Self.conll2003.utf8), name: "train.txt")
        let vocab = Vocabulary(words: ["eu", "german", "peter", "."], lowercase: true)
        let tags = TagVocabulary(collecting: s)
        XCTAssertEqual(tags.tags, ["O", "I-LOC", "B-MISC", "B-ORG", "B-PER", "I-PER"])
        let e = try EncodedSentences(s, vocabulary: vocab, tags: tags, name: "train.txt")
        XCTAssertEqual(e.x.shape, [3, 5])
        XCTAssertEqual(e.x.ints, [2, 1, 3, 1, 5,
                                  4, 1, 0, 0, 0,
                                  1, 1, 0, 0, 0])
        XCTAssertEqual(e.y.ints, [3, 0, 2, 0, 0,
                                  4, 5, 0, 0, 0,
                                  1, 0, 0, 0, 0])
        XCTAssertEqual(e.lengths, [5, 2, 2])
        XCTAssertEqual(e.unknownTokens, 5)
        XCTAssertEqual(e.unknownRate, 5.0 / 9.0)
        XCTAssertEqual(try EncodedSentences(s, vocabulary: vocab, tags: tags, length: 7).x.shape, [3, 7])
        XCTAssertEqual(errorText { try EncodedSentences(s, vocabulary: vocab, tags: tags, length: 4, name: "train.txt") },
                       "train.txt, line 3: the sentence starting here has 5 tokens, more than the length 4; give a larger --max-length (sentences are not truncated).")
        XCTAssertEqual(errorText { try EncodedSentences(s, vocabulary: vocab, tags: TagVocabulary(tags: ["B-ORG", "B-MISC"]), name: "train.txt") },
                       "train.txt, line 9: the tag 'B-PER' is not in the tag vocabulary (O, B-MISC, B-ORG).")
    }

    // MARK: Entities

    func testEntitiesAsSeqevalCountsThem() {
        func spans(_ tags: [String]) -> [String] { Entities.extract(tags).map(\.description) }
        XCTAssertEqual(spans(["B-PER", "I-PER", "O", "B-LOC"]), ["PER[0..<2]", "LOC[3..<4]"])
        XCTAssertEqual(spans(["O", "I-PER", "I-PER", "O"]), ["PER[1..<3]"])            // I after O starts one
        XCTAssertEqual(spans(["B-PER", "I-LOC", "I-LOC"]), ["PER[0..<1]", "LOC[1..<3]"])  // a type change starts one
        XCTAssertEqual(spans(["B-PER", "B-PER", "I-PER"]), ["PER[0..<1]", "PER[1..<3]"])
        XCTAssertEqual(spans(["I-ORG"]), ["ORG[0..<1]"])
        XCTAssertEqual(spans(["S-LOC", "B-LOC", "E-LOC", "I-LOC"]), ["LOC[0..<1]", "LOC[1..<3]", "LOC[3..<4]"])
        XCTAssertEqual(spans(["O", "O"]), [])
        XCTAssertEqual(spans([]), [])
    }

    func testScoresCountedByHand() throws {
        // Gold: PER[0..<2] and LOC[3..<4] in sentence 1, ORG[0..<1] in sentence 2.
        // Predicted: PER[0..<2] (right), ORG[3..<4] (wrong type), ORG[0..<2] (wrong span).
        let gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
        let pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "I-ORG"]]
        let s = try Entities.score(gold: gold, predicted: pred)
        XCTAssertEqual(s.overall, EntityCounts(correct: 1, predicted: 3, gold: 3))
        XCTAssertEqual(s.precision, 1.0 / 3.0)
        XCTAssertEqual(s.recall, 1.0 / 3.0)
        XCTAssertEqual(s.f1, 1.0 / 3.0, accuracy: 1e-15)
        XCTAssertEqual(s.byType.map(\.type), ["LOC", "ORG", "PER"])
        XCTAssertEqual(s.byType.map(\.counts), [EntityCounts(correct: 0, predicted: 0, gold: 1),
                                                EntityCounts(correct: 0, predicted: 2, gold: 1),
                                                EntityCounts(correct: 1, predicted: 1, gold: 1)])
        // P = 2/3 and R = 2/4: F1 = 2 * (2/3) * (1/2) / (2/3 + 1/2) = 4/7.
        let t = try Entities.score(gold: [["B-A", "O", "B-B", "O", "B-C", "B-D"]], predicted: [["B-A", "O", "B-B", "O", "B-C", "I-C"]])
        XCTAssertEqual(t.overall, EntityCounts(correct: 2, predicted: 3, gold: 4))
        XCTAssertEqual(t.f1, 4.0 / 7.0, accuracy: 1e-15)
        // An entity does not run on from one sentence into the next.
        XCTAssertEqual(try Entities.score(gold: [["B-PER"], ["I-PER"]], predicted: [["O"], ["O"]]).overall.gold, 2)
        // Nothing predicted: precision, recall and F1 are 0, not NaN.
        let none = try Entities.score(gold: [["B-PER"]], predicted: [["O"]])
        XCTAssertEqual([none.precision, none.recall, none.f1], [0, 0, 0])
        XCTAssertEqual(errorText { try Entities.score(gold: [["O", "O"]], predicted: [["O"]]) },
                       "sentence 1 has 2 gold tags but 1 predicted; expected one per token.")
    }

    struct SeqevalCase: Decodable {
        var gold: [[String]]
        var pred: [[String]]
        var gold_entities: [[[EntityField]]]
        var pred_entities: [[[EntityField]]]
        var precision: Double
        var recall: Double
        var f1: Double
    }
    enum EntityField: Decodable {
        case text(String), number(Int)
        init(from d: Decoder) throws {
            let c = try d.singleValueContainer()
            if let i = try? c.decode(Int.self) { self = .number(i) } else { self = .text(try c.decode(String.self)) }
        }
    }

    /// seqeval's get_entities (type, first, last) and its micro precision, recall and F1.
    func testAgreesWithSeqeval() throws {
        let path = Fixtures.directory + "/seqeval_cases.json"
        let cases = try JSONDecoder().decode([SeqevalCase].self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(cases.count, 60)
        func entity(_ f: [EntityField]) -> String {
            guard f.count == 3, case .text(let t) = f[0], case .number(let a) = f[1], case .number(let b) = f[2] else { return "?" }
            return Entity(type: t, start: a, end: b + 1).description
        }
        var scored = 0
        for (k, c) in cases.enumerated() {
            for (tags, want) in zip(c.gold + c.pred, c.gold_entities + c.pred_entities) {
                XCTAssertEqual(Entities.extract(tags).map(\.description), want.map(entity), "case \(k): \(tags)")
            }
            let s = try Entities.score(gold: c.gold, predicted: c.pred)
            assertClose([s.precision, s.recall, s.f1], [c.precision, c.recall, c.f1], rtol: 1e-12, atol: 1e-15, "case \(k)")
            if c.f1 > 0 && c.f1 < 1 { scored += 1 }
        }
        XCTAssertGreaterThan(scored, 40, "the fixture should mostly hold partly right predictions")
    }
}
