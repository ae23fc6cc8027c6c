#!/usr/bin/env python3
"""Writes Tests/cases_invalid/td_conv1d: a model Keras builds and Kiln refuses.

    KERAS_BACKEND=jax /opt/kerasvenv/bin/python tools/make_seq1d_invalid.py

TimeDistributed(Conv1D) (a 1-D convolution on every step of a sequence of sequences) is
valid Keras; Kiln's TimeDistributed wraps only the layers of its older table, so `kiln
summary` and `kiln compile` must exit 1 with one sentence naming the wrapper and the wrapped
class, not crash. Tests/run_conformance.py checks it with the other invalid cases.
"""
import json
import os
import zlib

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
from keras import layers as L  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "td_conv1d"


def main():
    d = os.path.join(ROOT, "Tests", "cases_invalid", NAME)
    os.makedirs(d, exist_ok=True)
    keras.utils.set_random_seed(zlib.crc32(NAME.encode()) & 0x7FFFFFFF)
    model = keras.Sequential([keras.Input((3, 8, 2)),
                              L.TimeDistributed(L.Conv1D(4, 3, activation="relu")),
                              L.TimeDistributed(L.GlobalMaxPooling1D()),
                              L.LSTM(5), L.Dense(2)])
    model.compile(loss="mse", optimizer="sgd")
    model.save(os.path.join(d, "model.keras"))
    info = {"name": NAME,
            "covers": ["TimeDistributed", "TimeDistributed:Conv1D", "Conv1D", "GlobalMaxPooling1D", "LSTM",
                       "error:unsupported"],
            "seed_scenario": "Input (3, 8, 2) -> TimeDistributed(Conv1D(4, 3)) -> TimeDistributed("
                             "GlobalMaxPooling1D()) -> LSTM -> Dense: a valid Keras model (Keras builds "
                             "and saves it) whose TimeDistributed(Conv1D) Kiln does not compile; it must "
                             "refuse it in one sentence naming the layer and the wrapped class",
            "expect_error": ["'time_distributed' (TimeDistributed)", "Conv1D", "not support"],
            "keras_error": None}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    print("invalid %s written" % NAME)


if __name__ == "__main__":
    main()
