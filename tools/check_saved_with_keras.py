#!/usr/bin/env python3
"""Checks a .keras file saved by Kiln's Swift API (`model.save(path)`) with
real Keras: loads it with `keras.saving.load_model`, predicts on the given
inputs and compares with Kiln's predictions.

    KERAS_BACKEND=jax /opt/kerasvenv/bin/python tools/check_saved_with_keras.py \\
        MODEL.keras --input x0.npy [--input x1.npy ...] \\
        --expected p0.npy [--expected p1.npy ...] [--atol 1e-5] [--rtol 1e-5]

--input: one .npy per model input, in the model's input order.
--expected: Kiln's predictions, one .npy per model output.
Prints the summary, the compile settings and one line per output; exits 0
when every output matches, 1 otherwise. Not part of the test suite (the tests
must not need Keras).
"""

import argparse
import os
import sys
import warnings

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--input", action="append", default=[], required=True)
    ap.add_argument("--expected", action="append", default=[], required=True)
    ap.add_argument("--atol", type=float, default=1e-5)
    ap.add_argument("--rtol", type=float, default=1e-5)
    a = ap.parse_args()

    import keras

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = keras.saving.load_model(a.model)
    for w in caught:
        # Kiln saves no optimizer state (the optimizer was never built), so
        # Keras says it skips loading it; anything else is worth seeing.
        print(f"warning: {w.message}")
    print(f"{a.model}: loaded by Keras {keras.__version__} ({keras.backend.backend()} backend)")
    model.summary()
    if model.compiled:
        cc = model.get_compile_config()
        opt = cc.get("optimizer", {})
        print(f"compile: loss={cc.get('loss')!r} optimizer={opt.get('class_name')} "
              f"learning_rate={opt.get('config', {}).get('learning_rate')}")

    xs = [np.load(p) for p in a.input]
    want = [np.load(p) for p in a.expected]
    got = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    if not isinstance(got, (list, tuple)):
        got = [got]
    got = [np.asarray(g) for g in got]
    if len(got) != len(want):
        print(f"FAIL: Keras gives {len(got)} outputs, Kiln {len(want)}")
        return 1
    ok = True
    for i, (g, w) in enumerate(zip(got, want)):
        if g.shape != w.shape:
            print(f"output {i}: FAIL shape {g.shape} (Keras) vs {w.shape} (Kiln)")
            ok = False
            continue
        err = float(np.max(np.abs(g.astype(np.float64) - w.astype(np.float64)))) if g.size else 0.0
        match = np.allclose(g, w, atol=a.atol, rtol=a.rtol)
        ok &= bool(match)
        print(f"output {i}: shape {g.shape}, max abs difference {err:.3g}: {'ok' if match else 'FAIL'}")

    print(f"{len(model.get_weights())} weight arrays loaded")
    print("OK: Keras matches Kiln" if ok else "FAIL: Keras differs from Kiln")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
