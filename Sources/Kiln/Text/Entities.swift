// Entities in tag sequences, and entity-level precision, recall and F1, counted as
// seqeval counts them by default (its conlleval-compatible mode, not "strict"):
//
// A tag is a prefix letter and a type ("B-PER": B, PER; "O": O, "_"). An entity starts at
// B or S, at an I or E after O, E or S, and wherever the type changes on a tag that is
// not O; it ends before a B, S or O after B or I, after E or S, and wherever the type
// changes. So "O I-PER I-PER" holds one PER entity, and "B-PER I-LOC" two (PER, LOC).
// Over many sentences, each sentence is followed by an "O" (as seqeval flattens them),
// an entity is (type, first token, last token), and a predicted entity counts as right
// when one of the same type covers exactly the same tokens. Precision = right /
// predicted, recall = right / gold, F1 = 2PR / (P + R), each 0 when its denominator is.

import Foundation

/// A span of tokens tagged as one entity: `tokens[start..<end]`.
public struct Entity: Hashable, Sendable, CustomStringConvertible {
    public var type: String
    /// The first token.
    public var start: Int
    /// One past the last token.
    public var end: Int

    public init(type: String, start: Int, end: Int) { self.type = type; self.start = start; self.end = end }
    public var description: String { "\(type)[\(start)..<\(end)]" }
}

/// Counts and scores of predicted entities against gold ones.
public struct EntityCounts: Sendable, Equatable {
    /// Predicted entities that match a gold one.
    public var correct = 0
    public var predicted = 0
    public var gold = 0

    public init(correct: Int = 0, predicted: Int = 0, gold: Int = 0) {
        self.correct = correct; self.predicted = predicted; self.gold = gold
    }
    public var precision: Double { predicted == 0 ? 0 : Double(correct) / Double(predicted) }
    public var recall: Double { gold == 0 ? 0 : Double(correct) / Double(gold) }
    public var f1: Double {
        let (p, r) = (precision, recall)
        return p + r == 0 ? 0 : 2 * p * r / (p + r)
    }
}

/// Entity-level scores over a corpus: overall (micro-averaged) and per entity type.
public struct EntityScores: Sendable, CustomStringConvertible {
    public let overall: EntityCounts
    /// Each type that occurs in the gold or the predicted tags, sorted by name.
    public let byType: [(type: String, counts: EntityCounts)]

    public var precision: Double { overall.precision }
    public var recall: Double { overall.recall }
    public var f1: Double { overall.f1 }

    public var description: String {
        func line(_ c: EntityCounts) -> String {
            String(format: "precision %.4f, recall %.4f, F1 %.4f (%d of %d predicted right, %d gold)",
                   c.precision, c.recall, c.f1, c.correct, c.predicted, c.gold)
        }
        return "entities: " + line(overall) + byType.map { "\n  \($0.type): " + line($0.counts) }.joined()
    }
}

public enum Entities {
    /// The entities of one tag sequence, in order.
    public static func extract(_ tags: [String]) -> [Entity] {
        var out: [Entity] = []
        var prev: (tag: Unicode.Scalar, type: Substring) = ("O", "")
        var begin = 0
        for (i, chunk) in (tags + ["O"]).enumerated() {
            let tag = chunk.unicodeScalars.first ?? "O"
            let rest = chunk.unicodeScalars.isEmpty ? Substring() : Substring(chunk.unicodeScalars.dropFirst())
            let afterDash = rest.firstIndex(of: "-").map { rest[rest.index(after: $0)...] } ?? rest
            let type = afterDash.isEmpty ? "_" : afterDash
            if endsChunk(prev.tag, tag, prev.type, type) { out.append(Entity(type: String(prev.type), start: begin, end: i)) }
            if startsChunk(prev.tag, tag, prev.type, type) { begin = i }
            prev = (tag, type)
        }
        return out
    }

    // seqeval's end_of_chunk: whether an entity ended before the current tag.
    static func endsChunk(_ prevTag: Unicode.Scalar, _ tag: Unicode.Scalar, _ prevType: Substring, _ type: Substring) -> Bool {
        if prevTag == "E" || prevTag == "S" { return true }
        if (prevTag == "B" || prevTag == "I") && (tag == "B" || tag == "S" || tag == "O") { return true }
        return prevTag != "O" && prevTag != "." && prevType != type
    }

    // seqeval's start_of_chunk: whether an entity starts at the current tag.
    static func startsChunk(_ prevTag: Unicode.Scalar, _ tag: Unicode.Scalar, _ prevType: Substring, _ type: Substring) -> Bool {
        if tag == "B" || tag == "S" { return true }
        if (prevTag == "E" || prevTag == "S" || prevTag == "O") && (tag == "E" || tag == "I") { return true }
        return tag != "O" && tag != "." && prevType != type
    }

    /// Entity-level scores of predicted tags against gold tags, sentence by sentence.
    /// - Throws: ``TextDataError`` when the numbers of sentences or of tags in a sentence differ.
    public static func score(gold: [[String]], predicted: [[String]]) throws -> EntityScores {
        guard gold.count == predicted.count else {
            throw TextDataError("\(gold.count) gold sentences but \(predicted.count) predicted; expected one prediction per sentence.")
        }
        for (i, (g, p)) in zip(gold, predicted).enumerated() where g.count != p.count {
            throw TextDataError("sentence \(i + 1) has \(g.count) gold tags but \(p.count) predicted; expected one per token.")
        }
        // As seqeval: one sequence, each sentence followed by "O", so offsets are unique.
        let g = Set(extract(gold.flatMap { $0 + ["O"] }))
        let p = Set(extract(predicted.flatMap { $0 + ["O"] }))
        var byType: [String: EntityCounts] = [:]
        for e in g { byType[e.type, default: EntityCounts()].gold += 1 }
        for e in p {
            byType[e.type, default: EntityCounts()].predicted += 1
            if g.contains(e) { byType[e.type]!.correct += 1 }
        }
        let overall = EntityCounts(correct: g.intersection(p).count, predicted: p.count, gold: g.count)
        return EntityScores(overall: overall, byType: byType.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    }
}
