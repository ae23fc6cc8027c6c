#!/usr/bin/env python3
"""Runs conformance case folders through Keras itself, as the runner runs them through Kiln.

    KERAS_BACKEND=jax /opt/kerasvenv/bin/python tools/check_cases_with_keras.py [--cases DIR] [--only SUBSTR]

For each case: loads model.keras with `keras.saving.load_model` (the repo's kiln_crf
imported, so CRF models load), predicts the inputs and compares with the stored
predictions (integer outputs exactly); then loads the file again, fits the training data
as the runner does (epochs, batch size, no shuffle, the file's compile config) and
compares the epoch losses and the weights after training, within the case's tolerances.
This checks that a case's files agree with each other: that what Kiln is asked to
reproduce is what Keras does with the saved file. Prints PASS/FAIL per case; exit 1 if
any fails.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python", "kiln_crf"))

import numpy as np  # noqa: E402
import keras  # noqa: E402
import kiln_crf  # noqa: E402,F401  (registers CRF and CRFLoss)


def compare(got, want, rtol, atol, what):
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return "%s: shape %s, expected %s" % (what, got.shape, want.shape)
    if want.dtype.kind in "iu":
        if got.dtype.kind not in "iu":
            return "%s: dtype %s, expected integers" % (what, got.dtype)
        bad = int(np.sum(got != want))
        return "%s: %d of %d values differ" % (what, bad, want.size) if bad else None
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    ok = err <= atol + rtol * np.abs(want.astype(np.float64))
    if not np.all(ok):
        return "%s: %d of %d values off (max abs err %.3g)" % (what, int(np.sum(~ok)), ok.size, err.max())
    return None


def check(d):
    case = json.load(open(os.path.join(d, "case.json")))
    ld = lambda f: np.load(os.path.join(d, f))  # noqa: E731
    one = lambda a: a if len(a) > 1 else a[0]  # noqa: E731
    errors = []
    keras.backend.clear_session()
    model = keras.saving.load_model(os.path.join(d, case.get("model", "model.keras")))
    pred = model.predict(one([ld(f) for f in case["inputs"]]), verbose=0)
    pred = list(pred) if isinstance(pred, (list, tuple)) else [pred]
    for i, f in enumerate(case["predict"]):
        errors.append(compare(pred[i], ld(f), case["rtol"], case["atol"], "output %d" % i))
    t = case.get("train")
    if t:
        keras.backend.clear_session()
        model = keras.saving.load_model(os.path.join(d, case.get("model", "model.keras")))
        h = model.fit(one([ld(f) for f in t["x"]]), one([ld(f) for f in t["y"]]),
                      epochs=t["epochs"], batch_size=t["batch_size"], shuffle=False, verbose=0)
        errors.append(compare(h.history["loss"], t["loss"], t["rtol"], t["atol"], "epoch loss"))
        wdir = os.path.join(d, t["weights_after"])
        files = sorted(f for f in os.listdir(wdir) if f.endswith(".npy"))
        got = model.get_weights()
        if len(got) != len(files):
            errors.append("%d weights, expected %d" % (len(got), len(files)))
        for f, g in zip(files, got):
            errors.append(compare(g, np.load(os.path.join(wdir, f)), t["rtol"], t["atol"],
                                  "weight " + f[:-4]))
    return [e for e in errors if e]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=os.path.join(ROOT, "Tests", "cases"))
    ap.add_argument("--only", help="only cases whose name contains this")
    a = ap.parse_args()
    names = sorted(n for n in os.listdir(a.cases) if os.path.isfile(os.path.join(a.cases, n, "case.json"))
                   and (not a.only or a.only in n))
    if not names:
        print("error: no cases in %s%s" % (a.cases, " matching %r" % a.only if a.only else ""),
              file=sys.stderr)
        return 1
    failed = skipped = 0
    for n in names:
        with open(os.path.join(a.cases, n, "case.json")) as f:
            if "train:stateful" in json.load(f).get("covers", []):
                # Keras 2's fit and predict carry a stateful layer's state from batch to batch;
                # Keras 3's (on JAX) do not, so it cannot reproduce these (tools/gen_keras2_stateful.py).
                print("SKIP %s: stateful fit, written by Keras 2" % n, flush=True)
                skipped += 1
                continue
        try:
            errors = check(os.path.join(a.cases, n))
        except Exception as e:  # noqa: BLE001
            errors = ["%s: %s" % (type(e).__name__, e)]
        failed += bool(errors)
        print(("FAIL %s: %s" % (n, "; ".join(errors))) if errors else "PASS %s" % n, flush=True)
    print("%d passed, %d failed%s" % (len(names) - failed - skipped, failed,
                                     ", %d skipped" % skipped if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
