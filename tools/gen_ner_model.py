#!/usr/bin/env python3
"""Makes the NER sample's Keras model and arrays from its corpus and vectors, and checks
that Keras itself trains the model to the sample's F1.

    KERAS_BACKEND=jax /opt/kerasvenv/bin/python tools/gen_ner_model.py [--check] [--epochs E]

Reads samples/ner/data/{vectors.txt,train.txt,test.txt} (made by tools/gen_ner_data.py) and
writes:
  samples/ner/ner.keras   the tagger, untrained (seeded initial weights), compiled with Adam
                          and kiln_crf.CRFLoss: Input((16,), int32) -> Embedding(vocabulary,
                          32, the vectors as weights, trainable=False, mask_zero=True) ->
                          Bidirectional(LSTM(32, return_sequences=True)) ->
                          TimeDistributed(Dense(tags)) -> kiln_crf.CRF.
  samples/ner/data/vocab.txt, tags.txt, {train,test}_{x,y}.npy
                          the vocabulary (line k: the word of id k-1; id 0 <pad>, id 1 <unk>,
                          then the vector file's words in file order; both special rows of the
                          embedding are zero), the tags (line k: the tag of id k-1; O first, the
                          others by entity type, then name) and the sentences as int32 ids
                          (sentences x 16, padded with 0), exactly as `kiln vectors ...
                          --max-length 16` writes them.
--check trains a copy of the saved model in Keras as samples/ner/ner.c does (batches of
BATCH, shuffled, EPOCHS epochs) and prints the held-out entity-level precision, recall and
F1 (BIO spans, exact match); exits 1 if F1 < 0.9.
"""
import argparse
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python", "kiln_crf"))

import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras import layers as L  # noqa: E402
import kiln_crf  # noqa: E402

SAMPLE = os.path.join(ROOT, "samples", "ner")
DATA = os.path.join(SAMPLE, "data")
STEPS = 16
UNITS = 32
LEARNING_RATE = 0.01
EPOCHS = 8        # what samples/ner/run.sh trains in its full form (5 in --short)
BATCH = 32
MIN_F1 = 0.9


def read_vectors(path):
    words, rows = [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                rows.append([float(v) for v in parts[1:]])
            except ValueError:
                sys.exit("%s, line %d: expected a word and numbers" % (path, n))
            if len(rows[-1]) != len(rows[0]):
                sys.exit("%s, line %d: %d numbers, the first line has %d"
                         % (path, n, len(rows[-1]), len(rows[0])))
            words.append(parts[0])
    return words, np.array(rows, np.float32)


def read_conll(path):
    sentences, cur = [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                if cur:
                    sentences.append(cur)
                cur = []
                continue
            if len(parts) < 2:
                sys.exit("%s, line %d: expected 'token TAG'" % (path, n))
            cur.append((parts[0], parts[-1]))
    if cur:
        sentences.append(cur)
    return sentences


def tag_order(tags):
    """O first, then by entity type, then by the tag itself (B- before I-)."""
    kind = lambda t: t.split("-", 1)[1] if "-" in t else t  # noqa: E731
    return ["O"] + sorted(set(tags) - {"O"}, key=lambda t: (kind(t), t))


def encode(sentences, ids, tag_ids):
    x = np.zeros((len(sentences), STEPS), np.int32)
    y = np.zeros((len(sentences), STEPS), np.int32)
    for i, s in enumerate(sentences):
        if len(s) > STEPS:
            sys.exit("a sentence of %d tokens does not fit %d steps" % (len(s), STEPS))
        for t, (w, tag) in enumerate(s):
            x[i, t] = ids.get(w, 1)
            y[i, t] = tag_ids[tag]
    return x, y


def entities(tags):
    """The set of (type, start, end) spans of a BIO tag sequence, counted as conlleval and
    seqeval do: a span starts at B-X, or at I-X not continuing a span of type X."""
    spans, open_ = set(), None     # open_: (type, start)
    for i, t in enumerate(list(tags) + ["O"]):
        if open_ and (t == "O" or t.startswith("B-") or t[2:] != open_[0]):
            spans.add((open_[0], open_[1], i))
            open_ = None
        if t != "O" and open_ is None:
            open_ = (t[2:], i)
    return spans


def entity_scores(true_seqs, pred_seqs):
    tp = n_pred = n_true = 0
    for a, b in zip(true_seqs, pred_seqs):
        ta, tb = entities(a), entities(b)
        tp += len(ta & tb)
        n_true += len(ta)
        n_pred += len(tb)
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_true if n_true else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def build(vocab_size, dim, tags, matrix):
    model = keras.Sequential([
        keras.Input((STEPS,), dtype="int32", name="tokens"),
        L.Embedding(vocab_size, dim, trainable=False, mask_zero=True, name="embedding"),
        L.Bidirectional(L.LSTM(UNITS, return_sequences=True), name="bilstm"),
        L.TimeDistributed(L.Dense(tags), name="emissions"),
        kiln_crf.CRF(name="crf")], name="ner")
    model.get_layer("embedding").set_weights([matrix])
    crf = model.get_layer("crf")
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss=kiln_crf.CRFLoss(crf))
    return model


def check(path, x, y, tx, ty, tags, epochs, batch):
    """Trains the saved model in Keras as ner.c does; returns (P, R, F1, seconds of the
    first epoch (with XLA's compilation), seconds of the others)."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(1)
    model = keras.saving.load_model(path)
    ends = [time.time()]
    clock = keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: ends.append(time.time()))
    h = model.fit(x, y, epochs=epochs, batch_size=batch, shuffle=True, verbose=0, callbacks=[clock])
    print("Keras: loss per epoch " + " ".join("%.3f" % v for v in h.history["loss"]))
    pred = model.predict(tx, verbose=0)
    lengths = (tx > 0).sum(axis=1)
    true_seqs = [[tags[k] for k in ty[i, :lengths[i]]] for i in range(len(tx))]
    pred_seqs = [[tags[k] for k in pred[i, :lengths[i]]] for i in range(len(tx))]
    return entity_scores(true_seqs, pred_seqs) + (ends[1] - ends[0], ends[-1] - ends[1])


def self_test():
    """The span rules on hand-made cases (as conlleval counts them)."""
    assert entities("B-PER I-PER O B-LOC".split()) == {("PER", 0, 2), ("LOC", 3, 4)}
    assert entities("I-PER I-PER O".split()) == {("PER", 0, 2)}            # I- opens a span
    assert entities("B-PER I-LOC".split()) == {("PER", 0, 1), ("LOC", 1, 2)}
    assert entities("B-ORG B-ORG I-ORG".split()) == {("ORG", 0, 1), ("ORG", 1, 3)}
    p, r, f = entity_scores([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "O", "O", "B-LOC"]])
    assert (p, r) == (0.5, 0.5) and abs(f - 0.5) < 1e-12   # a cut span is wrong, not half right


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="train a copy in Keras and report F1")
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--batch", type=int, default=BATCH)
    a = ap.parse_args()
    self_test()

    words, vectors = read_vectors(os.path.join(DATA, "vectors.txt"))
    vocab = ["<pad>", "<unk>"] + words
    ids = {w: i for i, w in enumerate(vocab)}
    if len(ids) != len(vocab):
        sys.exit("vectors.txt repeats a word")
    matrix = np.concatenate([np.zeros((2, vectors.shape[1]), np.float32), vectors])
    train = read_conll(os.path.join(DATA, "train.txt"))
    test = read_conll(os.path.join(DATA, "test.txt"))
    tags = tag_order(t for s in train + test for _, t in s)
    tag_ids = {t: i for i, t in enumerate(tags)}
    x, y = encode(train, ids, tag_ids)
    tx, ty = encode(test, ids, tag_ids)
    with open(os.path.join(DATA, "vocab.txt"), "w") as f:
        f.write("".join(w + "\n" for w in vocab))
    with open(os.path.join(DATA, "tags.txt"), "w") as f:
        f.write("".join(t + "\n" for t in tags))

    keras.utils.set_random_seed(20260412)
    model = build(len(vocab), vectors.shape[1], len(tags), matrix)
    path = os.path.join(SAMPLE, "ner.keras")
    model.save(path)
    unk = float(np.mean(tx[tx > 0] == 1))
    print("wrote %s (vocabulary %d x %d, %d tags: %s) (sentences: train %s, test %s); "
          "unknown test tokens %.1f%%" % (os.path.relpath(path, ROOT), len(vocab), vectors.shape[1],
                                          len(tags), " ".join(tags), x.shape, tx.shape, 100 * unk))
    if a.check:
        p, r, f1, first, rest = check(path, x, y, tx, ty, tags, a.epochs, a.batch)
        print("Keras, %d epochs of batch %d (the first %.1f s with XLA's compilation, the others "
              "%.2f s together): held-out entities precision %.3f recall %.3f F1 %.3f"
              % (a.epochs, a.batch, first, rest, p, r, f1))
        if f1 < MIN_F1:
            print("F1 %.3f is below %.2f" % (f1, MIN_F1))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
