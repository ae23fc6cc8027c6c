"""Writes Tests/Fixtures/seqeval_cases.json: random tag sequences and what seqeval (default
mode) makes of them, the reference of Kiln's entity extraction and scores (EntityTests).

    python tools/gen_seqeval_cases.py      # needs `pip install seqeval`

Each case: "gold" and "pred", lists of sentences of tags; "gold_entities" and
"pred_entities", seqeval's get_entities on each sentence alone ([type, first, last]);
"precision", "recall", "f1" from seqeval.metrics (micro average) over the case.
"""
import json
import os
import random

from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.metrics.sequence_labeling import get_entities

# BIO tags mostly, with the IOBES prefixes and bare prefixes seqeval also reads.
COMMON = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
RARE = ["E-PER", "S-LOC", "B", "I", "I-MISC-X"]


def sentence(rng):
    n = rng.randint(1, 9)
    return [rng.choice(COMMON) if rng.random() < 0.9 else rng.choice(RARE) for _ in range(n)]


def noisy(rng, tags):
    return [t if rng.random() < 0.7 else rng.choice(COMMON) for t in tags]


def main():
    rng = random.Random(20240609)
    cases = []
    for _ in range(60):
        gold = [sentence(rng) for _ in range(rng.randint(1, 5))]
        pred = [noisy(rng, s) for s in gold]
        cases.append({
            "gold": gold,
            "pred": pred,
            "gold_entities": [[list(e) for e in get_entities(s)] for s in gold],
            "pred_entities": [[list(e) for e in get_entities(s)] for s in pred],
            "precision": precision_score(gold, pred, zero_division=0),
            "recall": recall_score(gold, pred, zero_division=0),
            "f1": f1_score(gold, pred, zero_division=0),
        })
    out = os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "seqeval_cases.json")
    with open(out, "w") as f:
        json.dump(cases, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(cases)} cases to {os.path.normpath(out)}")


if __name__ == "__main__":
    main()
