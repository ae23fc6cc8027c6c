#!/usr/bin/env python3
"""The Python wrapper that `kiln compile --python` writes, used as a Python program would.

    python3 Tests/wrappers/test_python_wrapper.py KILN OUT

Compiles the Keras-made case Tests/cases/bn_dense_relu with --python into OUT, imports
OUT/bn_dense_relu.py (numpy only) and checks: predict against Keras' p0.npy; train steps
over the case's fit (2 epochs, batches of 8 in row order) against Keras' weights after
fit; evaluate; the weights round trip (get/set, save/load, reset); NAME_info's hash of
the model file; and that bad shapes, dtypes and files raise clear exceptions. Then models
of other forms (OTHERS): several inputs or outputs, int32 inputs, free time steps.
Prints one line per check; exits 1 on the first failure.
"""
import hashlib
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np

CASE = "bn_dense_relu"
# Models of other forms: two outputs (a dict of metrics), two int32 inputs, a free number of time steps.
OTHERS = ["functional_two_outputs", "attention_masked", "free_embedding_bilstm_tagger"]


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print("ok: " + msg)


def raises(exc, contains, fn, what):
    try:
        fn()
    except exc as e:
        text = str(e)
        if contains not in text:
            fail("%s: the %s says %r, which does not mention %r" % (what, exc.__name__, text, contains))
        print("ok: %s raises %s: %s" % (what, exc.__name__, text))
        return
    except Exception as e:  # noqa: BLE001 - the wrong kind of error is a failure
        fail("%s raised %s (%s), not %s" % (what, type(e).__name__, e, exc.__name__))
    fail("%s raised nothing" % what)


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def other_forms(kiln, root, out):
    """Each model of OTHERS: predict against Keras, Keras' fit as train steps against its weights."""
    for name in OTHERS:
        case_dir = os.path.join(root, "Tests", "cases", name)
        case = json.load(open(os.path.join(case_dir, "case.json")))
        r = subprocess.run([kiln, "compile", os.path.join(case_dir, "model.keras"), "-o", out, "--name", name, "--python"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail("kiln compile --python %s: %s" % (name, r.stderr))
        mod = load(os.path.join(out, name + ".py"), name)
        m = mod.Model()
        xs = [np.load(os.path.join(case_dir, f)) for f in case["inputs"]]
        ps = [np.load(os.path.join(case_dir, f)) for f in case["predict"]]
        ys = m.predict(*xs)
        ys = ys if isinstance(ys, list) else [ys]
        check(len(ys) == len(ps) and all(a.shape == b.shape and np.allclose(a, b, rtol=case["rtol"], atol=case["atol"]) for a, b in zip(ys, ps)),
              "%s: predict (%d input(s) %s, %d output(s)) matches Keras" % (name, len(xs), [str(x.dtype) for x in xs], len(ys)))
        if mod.FREE_STEPS:
            short = m.predict(*[x[:, :3] for x in xs])
            short = short if isinstance(short, list) else [short]
            check(all(a.shape[1] == 3 for a in short), "%s: sequences of 3 steps give outputs of 3 steps" % name)
        t = case["train"]
        tx = [np.load(os.path.join(case_dir, f)) for f in t["x"]]
        ty = [np.load(os.path.join(case_dir, f)) for f in t["y"]]
        bs, rows = t["batch_size"], len(tx[0])
        for _ in range(t["epochs"]):
            for start in range(0, rows, bs):
                m.train_step([a[start:start + bs] for a in tx], [a[start:start + bs] for a in ty])
        wdir = os.path.join(case_dir, t["weights_after"])
        want = [np.load(os.path.join(wdir, f)) for f in sorted(os.listdir(wdir))]
        got = m.get_weights()
        worst = max(float(np.max(np.abs(a - b) / (t["atol"] + t["rtol"] * np.abs(b)))) for a, b in zip(got, want))
        check(len(got) == len(want) and worst <= 1,
              "%s: weights after Keras' fit as train steps match (worst %.2f of the tolerance); metrics %s" % (name, worst, sorted(m.metrics)))


def main():
    if len(sys.argv) != 3:
        print("usage: %s KILN OUT" % sys.argv[0], file=sys.stderr)
        sys.exit(2)
    kiln, out = sys.argv[1], sys.argv[2]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    case_dir = os.path.join(root, "Tests", "cases", CASE)
    case = json.load(open(os.path.join(case_dir, "case.json")))
    os.makedirs(out, exist_ok=True)
    model_file = os.path.join(case_dir, "model.keras")
    r = subprocess.run([kiln, "compile", model_file, "-o", out, "--name", CASE, "--python"], capture_output=True, text=True)
    if r.returncode != 0:
        fail("kiln compile --python: " + r.stderr)
    path = os.path.join(out, CASE + ".py")
    check(os.path.exists(path), "kiln compile --python wrote %s" % path)

    mod = load(path, CASE)
    m = mod.Model()

    info = m.info()
    want_hash = hashlib.sha256(open(model_file, "rb").read()).hexdigest()
    check(info["model"] == CASE and info["source_sha256"] == want_hash and info["kiln_version"] == mod.KILN_VERSION != "",
          "info() names the model, Kiln %s and the model file's SHA-256" % info["kiln_version"])

    # Predict against Keras.
    x = np.load(os.path.join(case_dir, "x0.npy"))
    p = np.load(os.path.join(case_dir, "p0.npy"))
    y = m.predict(x)
    check(y.shape == p.shape and y.dtype == np.float32, "predict returns float32 %s" % (y.shape,))
    check(np.allclose(y, p, rtol=case["rtol"], atol=case["atol"]),
          "predict matches Keras (max diff %.3g)" % float(np.max(np.abs(y - p))))
    check(np.allclose(m.predict(x.astype(np.float64)), p, rtol=case["rtol"], atol=case["atol"]),
          "float64 inputs are converted to float32")

    initial = m.get_weights()
    want_initial = [np.load(os.path.join(case_dir, "weights", f)) for f in sorted(os.listdir(os.path.join(case_dir, "weights")))]
    check(len(initial) == len(mod.WEIGHTS) and all(a.shape == b.shape and np.allclose(a, b) for a, b in zip(initial, want_initial)),
          "get_weights() gives Keras' %d weights in order" % len(initial))

    # Keras' fit, one train_step per batch: the same weights afterwards.
    t = case["train"]
    tx = np.load(os.path.join(case_dir, t["x"][0]))
    ty = np.load(os.path.join(case_dir, t["y"][0]))
    bs = t["batch_size"]
    for epoch in range(t["epochs"]):
        losses, sizes = [], []
        for start in range(0, len(tx), bs):
            losses.append(m.train_step(tx[start:start + bs], ty[start:start + bs]))
            sizes.append(len(tx[start:start + bs]))
        mean = float(np.average(losses, weights=sizes))   # Keras' epoch loss: the batch losses weighted by their rows
        check(abs(mean - t["loss"][epoch]) <= t["rtol"] * abs(t["loss"][epoch]) + t["atol"] * 10,
              "epoch %d: mean train_step loss %.6f, Keras %.6f" % (epoch + 1, mean, t["loss"][epoch]))
    check(m.iterations == t["epochs"] * ((len(tx) + bs - 1) // bs), "iterations counts the steps (%d)" % m.iterations)
    after = m.get_weights()
    wdir = os.path.join(case_dir, t["weights_after"])
    want_after = [np.load(os.path.join(wdir, f)) for f in sorted(os.listdir(wdir))]
    worst = max(float(np.max(np.abs(a - b) / (t["atol"] + t["rtol"] * np.abs(b)))) for a, b in zip(after, want_after))
    check(worst <= 1, "weights after the train steps match Keras' after fit (worst %.2f of the tolerance)" % worst)
    loss = m.evaluate(tx[:bs], ty[:bs])
    check(np.isfinite(loss) and m.iterations == 2 * ((len(tx) + bs - 1) // bs), "evaluate gives a loss (%.4f) and takes no step" % loss)
    check(set(m.metrics) == set(mod.METRICS), "metrics names %s" % sorted(m.metrics))

    # Weights round trip.
    ckpt = os.path.join(out, CASE + "_ckpt.bin")
    m.save_weights(ckpt)
    m.reset()
    check(m.iterations == 0 and all(np.array_equal(a, b) for a, b in zip(m.get_weights(), initial)),
          "reset() goes back to the library's weights and step 0")
    m.load_weights(ckpt)
    check(m.iterations > 0 and all(np.array_equal(a, b) for a, b in zip(m.get_weights(), after)),
          "load_weights() restores what save_weights() saved")
    m.set_weights(want_initial)
    check(np.allclose(m.predict(x), p, rtol=case["rtol"], atol=case["atol"]), "set_weights(Keras' initial weights) gives Keras' predictions again")

    # Errors: clear exceptions, nothing done.
    name, _, shape = mod.INPUTS[0]
    raises(ValueError, "expects shape", lambda: m.predict(x[:, :-1]), "an input with a wrong shape")
    raises(ValueError, name, lambda: m.predict(x[:, :-1]), "the shape error")
    raises(TypeError, "float32", lambda: m.predict(np.array([["a"] * x.shape[1]])), "an input of strings")
    raises(ValueError, "rows", lambda: m.train_step(tx[:4], ty[:3]), "inputs and targets with different rows")
    raises(ValueError, "weights", lambda: m.set_weights(initial[:-1]), "set_weights with a weight missing")
    k = next(i for i, w in enumerate(initial) if w.ndim == 2 and w.shape[0] != w.shape[1])
    transposed = [w.T if i == k else w for i, w in enumerate(initial)]
    raises(ValueError, mod.WEIGHTS[k][0], lambda: m.set_weights(transposed), "set_weights with a transposed kernel")
    bogus = os.path.join(out, CASE + "_bogus.bin")
    open(bogus, "wb").write(b"not a checkpoint")
    raises(mod.KilnError, "bogus", lambda: m.load_weights(bogus), "load_weights of a bad file (the library's message)")
    raises(mod.KilnError, "missing", lambda: m.load_weights(os.path.join(out, "missing.bin")), "load_weights of a missing file")
    check(m.iterations > 0 and all(np.array_equal(a, b) for a, b in zip(m.get_weights(), want_initial)), "a failed load leaves the weights unchanged")
    m.close()
    raises(ValueError, "closed", lambda: m.predict(x), "a closed model")
    other_forms(kiln, root, out)
    print("Python wrapper OK")


if __name__ == "__main__":
    main()
