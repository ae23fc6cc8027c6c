#!/usr/bin/env python3
"""Tests of kiln_crf against brute-force enumeration (numpy only, besides Keras).

    KERAS_BACKEND=jax python python/kiln_crf/tests/test_crf.py

Every tag path of tiny cases is enumerated in float64: the log-likelihood, the gradient of
the three weights (expected counts minus the true path's counts) and the Viterbi path are
compared with the layer's, with masks of every shape (trailing and leading padding, gaps
inside, a single step, no step at all). Then the layer in models: its two outputs, the
loss that fit reports, training, save/load, and the refusal of evaluate. The functions
also run under pytest. Exit status 1 if any test fails.
"""
import itertools
import os
import sys
import tempfile
import traceback
import zipfile
import json

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras import layers as L  # noqa: E402

import kiln_crf  # noqa: E402

MASKS_T5 = [
    [1, 1, 1, 1, 1],   # no padding
    [1, 1, 1, 0, 0],   # trailing padding
    [0, 0, 1, 1, 1],   # leading padding
    [1, 0, 1, 1, 0],   # a gap inside, then padding
    [1, 0, 1, 0, 1],   # alternating
    [0, 0, 1, 0, 0],   # a single real step
    [0, 0, 0, 0, 0],   # nothing real: NLL 0
]


# ---------------------------------------------------------------- brute force (float64)

def path_score(e, steps, tags, trans, start, end):
    """Score of the tags `tags` (one per unmasked step in `steps`)."""
    s = start[tags[0]] + end[tags[-1]]
    for k, t in enumerate(steps):
        s += e[t, tags[k]]
        if k:
            s += trans[tags[k - 1], tags[k]]
    return s


def enumerate_paths(e, m, trans, start, end):
    """(steps, paths, scores) of every tag path over the unmasked steps."""
    steps = [t for t in range(len(m)) if m[t]]
    n = e.shape[1]
    if not steps:
        return steps, [], np.zeros(0)
    paths = list(itertools.product(range(n), repeat=len(steps)))
    scores = np.array([path_score(e, steps, p, trans, start, end) for p in paths])
    return steps, paths, scores


def logsumexp(v):
    top = np.max(v)
    return top + np.log(np.sum(np.exp(v - top)))


def brute_nll(e, y, m, trans, start, end):
    steps, _, scores = enumerate_paths(e, m, trans, start, end)
    if not steps:
        return 0.0
    return logsumexp(scores) - path_score(e, steps, [y[t] for t in steps], trans, start, end)


def brute_gradient(e, y, m, trans, start, end):
    """d NLL / d (transitions, start, end): expected counts minus the true path's counts."""
    n = e.shape[1]
    g = [np.zeros((n, n)), np.zeros(n), np.zeros(n)]
    steps, paths, scores = enumerate_paths(e, m, trans, start, end)
    if not steps:
        return g
    prob = np.exp(scores - logsumexp(scores))
    gold = tuple(y[t] for t in steps)
    for p, w in itertools.chain(zip(paths, prob), [(gold, -1.0)]):
        g[1][p[0]] += w
        g[2][p[-1]] += w
        for a, b in zip(p, p[1:]):
            g[0][a, b] += w
    return g


def brute_viterbi(e, m, trans, start, end):
    """The best path; among equal scores the one Viterbi with lowest-id ties returns: the
    lowest last tag, then the lowest tag before it, and so on (reverse-lexicographic)."""
    steps, paths, scores = enumerate_paths(e, m, trans, start, end)
    out = np.zeros(len(m), np.int64)
    if not steps:
        return out, np.inf
    best = np.max(scores)
    winners = [p for p, s in zip(paths, scores) if s == best]
    p = min(winners, key=lambda q: tuple(reversed(q)))
    out[steps] = p
    rest = scores[scores < best]
    return out, (best - np.max(rest)) if rest.size else np.inf


# ---------------------------------------------------------------- helpers

def random_problem(rng, n, masks, scale=1.0):
    b, t = len(masks), len(masks[0])
    e = (rng.standard_normal((b, t, n)) * scale).astype(np.float32)
    m = np.array(masks, bool)
    y = rng.integers(0, n, (b, t)).astype(np.int32)
    trans = (rng.standard_normal((n, n)) * scale).astype(np.float32)
    start = (rng.standard_normal(n) * scale).astype(np.float32)
    end = (rng.standard_normal(n) * scale).astype(np.float32)
    return e, y, m, trans, start, end


def assert_close(got, want, rtol, atol, what):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape, "%s: shape %s, expected %s" % (what, got.shape, want.shape)
    err = np.abs(got - want)
    ok = err <= atol + rtol * np.abs(want)
    assert np.all(ok), "%s: max error %.3g (got %s, expected %s)" % (
        what, err.max(), got.ravel()[:8], want.ravel()[:8])


def tagger(vocab=12, n=3, t=6, name="crf"):
    model = keras.Sequential([keras.Input((t,), dtype="int32"),
                              L.Embedding(vocab, 4, mask_zero=True),
                              L.TimeDistributed(L.Dense(n)),
                              kiln_crf.CRF(name=name)])
    return model


def token_batch(rng, b, t, vocab, masks):
    x = rng.integers(1, vocab, (b, t)).astype(np.int32)
    return x * np.array(masks, np.int32)


# ---------------------------------------------------------------- the computations

def test_nll_matches_enumeration():
    rng = np.random.default_rng(1)
    for n, masks in [(3, MASKS_T5), (4, [m[:4] for m in MASKS_T5]), (1, MASKS_T5)]:
        e, y, m, trans, start, end = random_problem(rng, n, masks)
        y = np.where(m, y, -7)   # values at masked steps are ignored, even invalid ones
        got = np.asarray(kiln_crf.nll(e, y, m, trans, start, end))
        want = [brute_nll(e[i].astype(np.float64), y[i], m[i], trans.astype(np.float64),
                          start.astype(np.float64), end.astype(np.float64)) for i in range(len(m))]
        assert_close(got, want, 1e-5, 2e-5, "NLL with %d tags" % n)
        assert np.all(got[~m.any(axis=1)] == 0.0), "a sequence without real steps has NLL 0"
        if n == 1:
            assert_close(got, np.zeros(len(m)), 0, 2e-5, "NLL with one tag (a single path)")


def test_no_mask_equals_all_ones_mask():
    rng = np.random.default_rng(2)
    e, y, m, trans, start, end = random_problem(rng, 3, [[1] * 5] * 3)
    crf = kiln_crf.CRF()
    crf.build((None, 5, 3))
    crf.set_weights([trans, start, end])
    got = np.asarray(crf(e))
    want = [brute_viterbi(e[i].astype(np.float64), m[i], trans.astype(np.float64),
                          start.astype(np.float64), end.astype(np.float64))[0] for i in range(3)]
    assert np.array_equal(got, np.array(want)), "%s vs %s" % (got, want)
    train = np.asarray(crf(e, training=True))
    assert_close(train, np.concatenate([e, np.ones((3, 5, 1), np.float32)], -1), 0, 0,
                 "training output without a mask")


def test_viterbi_matches_enumeration():
    rng = np.random.default_rng(3)
    margins = []
    for n, masks in [(3, MASKS_T5), (4, [m[:4] for m in MASKS_T5]), (1, MASKS_T5)]:
        e, _, m, trans, start, end = random_problem(rng, n, masks)
        got = np.asarray(kiln_crf.viterbi(e, m, trans, start, end))
        assert got.dtype == np.int32, "Viterbi path dtype %s, expected int32" % got.dtype
        for i in range(len(m)):
            want, margin = brute_viterbi(e[i].astype(np.float64), m[i], trans.astype(np.float64),
                                         start.astype(np.float64), end.astype(np.float64))
            margins.append(margin)
            assert np.array_equal(got[i], want), "row %d (mask %s): %s, expected %s" % (
                i, m[i].astype(int).tolist(), got[i].tolist(), want.tolist())
    assert min(margins) > 1e-3, "a best path too close to the next for float32 (%.3g)" % min(margins)


def test_viterbi_ties_go_to_lowest_ids():
    """Integer scores, so many paths tie exactly; the rule decides the path."""
    rng = np.random.default_rng(4)
    masks = MASKS_T5 * 3
    for n in (2, 3):
        b = len(masks)
        e = rng.integers(-1, 2, (b, 5, n)).astype(np.float32)
        trans = rng.integers(-1, 2, (n, n)).astype(np.float32)
        start = rng.integers(-1, 2, n).astype(np.float32)
        end = rng.integers(-1, 2, n).astype(np.float32)
        m = np.array(masks, bool)
        got = np.asarray(kiln_crf.viterbi(e, m, trans, start, end))
        ties = 0
        for i in range(b):
            steps, _, scores = enumerate_paths(e[i], m[i], trans, start, end)
            ties += int(steps != [] and np.sum(scores == scores.max()) > 1)
            want, _ = brute_viterbi(e[i].astype(np.float64), m[i], trans, start, end)
            assert np.array_equal(got[i], want), "ties, row %d: %s, expected %s" % (
                i, got[i].tolist(), want.tolist())
        assert ties >= 3, "only %d rows with tied best paths: the test would not test ties" % ties
    zero = np.zeros((2, 5, 3), np.float32)
    path = np.asarray(kiln_crf.viterbi(zero, np.ones((2, 5), bool), np.zeros((3, 3)),
                                       np.zeros(3), np.zeros(3)))
    assert np.array_equal(path, np.zeros((2, 5))), "all scores equal: all tags 0, got %s" % path


def test_gradient_matches_expected_counts():
    """One SGD step with learning rate 1 moves each weight by minus its gradient of the mean
    NLL; the gradient must equal expected counts minus the true counts, averaged."""
    rng = np.random.default_rng(5)
    n = 3
    e, y, m, trans, start, end = random_problem(rng, n, MASKS_T5)
    e = e * m[:, :, None]                 # Masking(0.0) turns the padded steps into the mask
    model = keras.Sequential([keras.Input((5, n)), L.Masking(0.0), kiln_crf.CRF(name="crf")])
    crf = model.layers[-1]
    crf.set_weights([trans, start, end])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss=kiln_crf.CRFLoss(crf))
    h = model.fit(e, y, batch_size=len(e), epochs=1, shuffle=False, verbose=0)
    e64 = e.astype(np.float64)
    w64 = [trans.astype(np.float64), start.astype(np.float64), end.astype(np.float64)]
    want_loss = np.mean([brute_nll(e64[i], y[i], m[i], *w64) for i in range(len(e))])
    assert_close(h.history["loss"][0], want_loss, 1e-5, 1e-5, "loss reported by fit")
    grads = [brute_gradient(e64[i], y[i], m[i], *w64) for i in range(len(e))]
    for k, name in enumerate(["transitions", "start_transitions", "end_transitions"]):
        want = np.mean([g[k] for g in grads], axis=0)
        got = w64[k] - crf.get_weights()[k]
        assert_close(got, want, 1e-4, 2e-6, "gradient of " + name)


# ---------------------------------------------------------------- the layer in models

def test_layer_outputs_and_weights():
    rng = np.random.default_rng(6)
    model = tagger()
    crf = model.layers[-1]
    assert [w.name for w in crf.weights] == ["transitions", "start_transitions", "end_transitions"]
    assert [w.shape for w in crf.weights] == [(3, 3), (3,), (3,)]
    assert all(w.trainable for w in crf.weights)
    crf.set_weights([rng.standard_normal(s).astype(np.float32) for s in [(3, 3), (3,), (3,)]])
    masks = [[1, 1, 1, 1, 0, 0], [1, 0, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]]
    x = token_batch(rng, 4, 6, 12, masks)
    emissions = np.asarray(keras.Model(model.inputs[0], model.layers[-2].output)(x))
    pred = model.predict(x, verbose=0)
    assert pred.dtype == np.int32 and pred.shape == (4, 6), "predict gives %s %s" % (
        pred.dtype, pred.shape)
    m = np.array(masks, bool)
    w = [a.astype(np.float64) for a in crf.get_weights()]
    want = np.array([brute_viterbi(emissions[i].astype(np.float64), m[i], *w)[0] for i in range(4)])
    assert np.array_equal(pred, want), "predict %s, expected %s" % (pred.tolist(), want.tolist())
    train = np.asarray(model(x, training=True))
    assert train.dtype == np.float32 and train.shape == (4, 6, 4)
    assert_close(train[:, :, :3], emissions, 0, 0, "training output, emissions")
    assert_close(train[:, :, 3], m.astype(np.float32), 0, 0, "training output, mask channel")
    assert crf.compute_mask(None, keras.ops.convert_to_tensor(m)) is None


def test_loss_reported_by_fit_matches_enumeration():
    """Embedding(mask_zero) -> TimeDistributed(Dense) -> CRF: the loss of one batch at the
    initial weights (learning rate 0) is the mean of the enumerated NLLs."""
    rng = np.random.default_rng(7)
    model = tagger()
    crf = model.layers[-1]
    crf.set_weights([rng.standard_normal(s).astype(np.float32) for s in [(3, 3), (3,), (3,)]])
    masks = [[1, 1, 1, 1, 0, 0], [1, 0, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0],
             [0, 1, 1, 1, 1, 1]]
    x = token_batch(rng, 5, 6, 12, masks)
    y = rng.integers(0, 3, (5, 6)).astype(np.int32)
    emissions = np.asarray(keras.Model(model.inputs[0], model.layers[-2].output)(x), np.float64)
    w = [a.astype(np.float64) for a in crf.get_weights()]
    m = np.array(masks, bool)
    want = np.mean([brute_nll(emissions[i], y[i], m[i], *w) for i in range(5)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss=kiln_crf.CRFLoss(crf))
    h = model.fit(x, y, batch_size=5, epochs=1, shuffle=False, verbose=0)
    assert_close(h.history["loss"][0], want, 1e-5, 1e-5, "fit's loss")


def test_fit_lowers_loss_and_trains_all_weights():
    rng = np.random.default_rng(8)
    model = keras.Sequential([keras.Input((7,), dtype="int32"), L.Embedding(20, 8, mask_zero=True),
                              L.Bidirectional(L.LSTM(8, return_sequences=True)),
                              L.TimeDistributed(L.Dense(4)), kiln_crf.CRF(name="crf")])
    crf = model.layers[-1]
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=kiln_crf.CRFLoss(crf))
    masks = [[1] * k + [0] * (7 - k) for k in (7, 5, 3, 6)] * 8
    x = token_batch(rng, 32, 7, 20, masks)
    y = np.where(x > 0, x % 4, 0).astype(np.int32)      # the tag is a function of the token
    before = crf.get_weights()
    h = model.fit(x, y, batch_size=8, epochs=15, shuffle=False, verbose=0)
    loss = h.history["loss"]
    assert loss[-1] < 0.5 * loss[0], "loss %.4f -> %.4f did not halve" % (loss[0], loss[-1])
    for name, a, b in zip(["transitions", "start_transitions", "end_transitions"], before,
                          crf.get_weights()):
        assert np.max(np.abs(a - b)) > 1e-3, "%s did not change in training" % name
    pred = model.predict(x, verbose=0)
    real = x > 0
    acc = np.mean(pred[real] == y[real])
    assert acc > 0.9, "training accuracy %.2f" % acc
    assert np.all(pred[~real] == 0), "masked steps must predict 0"


def test_save_load_round_trip():
    rng = np.random.default_rng(9)
    masks = [[1, 1, 1, 1, 0, 0], [1, 0, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]] * 4
    x = token_batch(rng, 16, 6, 12, masks)
    y = rng.integers(0, 3, (16, 6)).astype(np.int32)
    model = tagger(name="tags")
    crf = model.layers[-1]
    model.compile(optimizer="adam", loss=kiln_crf.CRFLoss(crf))
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tagger.keras")
        model.save(path)
        config = json.loads(zipfile.ZipFile(path).read("config.json"))
        layer = config["config"]["layers"][-1]
        assert layer["class_name"] == "CRF" and layer["registered_name"] == "kiln_crf>CRF", layer
        assert layer["module"].startswith("kiln_crf"), layer["module"]
        assert set(layer["config"]) == {"name", "trainable", "dtype", "transitions_initializer",
                                        "boundary_initializer"}, sorted(layer["config"])
        loss = config["compile_config"]["loss"]
        assert loss["class_name"] == "CRFLoss" and loss["registered_name"] == "kiln_crf>CRFLoss"
        assert loss["config"]["crf"] == "tags", loss
        assert loss["config"]["reduction"] == "sum_over_batch_size", loss
        first = keras.saving.load_model(path)
        second = keras.saving.load_model(path)
    for loaded in (first, second):
        assert isinstance(loaded.layers[-1], kiln_crf.CRF)
        assert isinstance(loaded.loss, kiln_crf.CRFLoss)
        for a, b in zip(model.get_weights(), loaded.get_weights()):
            assert np.array_equal(a, b), "weights differ after loading"
        assert np.array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    # Training continues identically; each loaded copy's loss finds its own CRF layer
    # (two copies with the same layer names are alive; the second trains first).
    h2 = second.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    h0 = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    h1 = first.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for h in (h1, h2):
        assert_close(h.history["loss"], h0.history["loss"], 1e-6, 1e-6, "loss after loading")
    for loaded in (first, second):
        for a, b in zip(model.get_weights(), loaded.get_weights()):
            assert_close(b, a, 1e-6, 1e-6, "weights after training the loaded model")


def test_loads_configs_with_initializer_names():
    """The spec's short form, as Kiln's Swift API saves it: initializers by name, module
    "kiln_crf", the loss's dtype null."""
    rng = np.random.default_rng(11)
    model = tagger()
    model.compile(optimizer="adam", loss=kiln_crf.CRFLoss(model.layers[-1]))
    x = token_batch(rng, 8, 6, 12, [[1, 1, 1, 0, 0, 0], [1] * 6] * 4)
    y = rng.integers(0, 3, (8, 6)).astype(np.int32)
    with tempfile.TemporaryDirectory() as tmp:
        path, short = os.path.join(tmp, "a.keras"), os.path.join(tmp, "b.keras")
        model.save(path)
        with zipfile.ZipFile(path) as zin, zipfile.ZipFile(short, "w") as zout:
            for item in zin.infolist():
                data = zin.read(item.filename)
                if item.filename == "config.json":
                    config = json.loads(data)
                    layer = config["config"]["layers"][-1]
                    layer["module"] = "kiln_crf"
                    layer["config"]["transitions_initializer"] = "glorot_uniform"
                    layer["config"]["boundary_initializer"] = "zeros"
                    loss = config["compile_config"]["loss"]
                    loss["module"] = "kiln_crf"
                    loss["config"]["dtype"] = None
                    data = json.dumps(config).encode()
                zout.writestr(item, data)
        loaded = keras.saving.load_model(short)
    assert isinstance(loaded.layers[-1], kiln_crf.CRF) and isinstance(loaded.loss, kiln_crf.CRFLoss)
    assert np.array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    h = loaded.fit(x, y, epochs=2, verbose=0)
    assert h.history["loss"][1] < h.history["loss"][0], h.history


def test_evaluate_is_refused_with_a_message():
    rng = np.random.default_rng(10)
    model = tagger()
    model.compile(optimizer="adam", loss=kiln_crf.CRFLoss(model.layers[-1]))
    x = token_batch(rng, 4, 6, 12, [[1] * 6] * 4)
    y = np.zeros((4, 6), np.int32)
    model.fit(x, y, epochs=1, verbose=0)
    try:
        model.evaluate(x, y, verbose=0)
    except ValueError as e:
        assert "model.predict" in str(e) and "inference mode" in str(e), str(e)
    else:
        raise AssertionError("evaluate did not refuse the CRF's inference output")


def test_bad_arguments():
    try:
        kiln_crf.CRFLoss(3)
    except TypeError as e:
        assert "CRF layer or its name" in str(e)
    else:
        raise AssertionError("CRFLoss(3) accepted")
    try:
        keras.Sequential([keras.Input((None, None)), kiln_crf.CRF()])
    except ValueError as e:
        assert "number of tags" in str(e), str(e)
    else:
        raise AssertionError("a CRF with an unknown number of tags was built")


# ---------------------------------------------------------------- main

def main():
    tests = [(k, v) for k, v in globals().items() if k.startswith("test_") and callable(v)]
    failed = 0
    for name, fn in tests:
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        try:
            fn()
            print("PASS %s" % name, flush=True)
        except Exception:  # noqa: BLE001
            failed += 1
            print("FAIL %s\n%s" % (name, traceback.format_exc()), flush=True)
    print("%d passed, %d failed (keras %s, backend %s)"
          % (len(tests) - failed, failed, keras.__version__, keras.backend.backend()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
