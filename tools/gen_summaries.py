#!/usr/bin/env python3
"""Write Keras' model.summary() figures for Kiln's own cases: Tests/cases/NAME/summary.json.

    KERAS_BACKEND=jax /opt/kerasvenv/bin/python tools/gen_summaries.py [--only SUBSTR]

For each case, Keras loads model.keras (or case.json's "model", with its --weights) and this records what its summary table shows: per
layer (in the table's order) the name, the class, the output shape as Keras prints it and the
parameter count, then the trainable and non-trainable totals. Tests/run_conformance.py
compares `kiln summary` with it.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
import numpy as np  # noqa: E402
import keras  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python", "kiln_crf"))
import kiln_crf  # noqa: E402,F401  (registers the CRF layer and loss)

CASES = os.path.join(ROOT, "Tests", "cases")


def shape_text(shape):
    dims = ["None" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def summary(model):
    rows = []
    for layer in model.layers:
        if isinstance(model, keras.Sequential) and isinstance(layer, keras.layers.InputLayer):
            continue
        out = layer.output
        shapes = [shape_text(t.shape) for t in out] if isinstance(out, (list, tuple)) else [shape_text(out.shape)]
        rows.append({"name": layer.name, "class": layer.__class__.__name__,
                     "shape": shapes[0] if len(shapes) == 1 else "[" + ", ".join(shapes) + "]",
                     "params": int(layer.count_params()) if layer.built else 0})
    count = lambda ws: int(sum(int(np.prod(w.shape)) for w in ws))
    return {"layers": rows, "trainable": count(model.trainable_weights),
            "non_trainable": count(model.non_trainable_weights)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", action="append", default=[])
    a = ap.parse_args()
    done = 0
    for name in sorted(os.listdir(CASES)):
        case_path = os.path.join(CASES, name, "case.json")
        case = json.load(open(case_path)) if os.path.exists(case_path) else {}
        path = os.path.join(CASES, name, case.get("model", "model.keras"))   # a legacy model.h5 too
        if not os.path.exists(path) or (a.only and not any(p in name for p in a.only)):
            continue
        if case.get("writer"):   # written by another Keras (tools/gen_keras2_cases.py), which wrote its summary
            continue
        model = keras.saving.load_model(path, compile=False)
        args = case.get("compile_args", [])
        if "--weights" in args:
            model.load_weights(os.path.join(CASES, name, args[args.index("--weights") + 1]))
        with open(os.path.join(CASES, name, "summary.json"), "w") as f:
            json.dump(summary(model), f, indent=1)
            f.write("\n")
        done += 1
    print("%d summaries written" % done)


if __name__ == "__main__":
    main()
