#!/usr/bin/env python3
"""Make the Keras model files of three sequence samples with real Keras 3.

    KERAS_BACKEND=jax /opt/kerasvenv/bin/python tools/gen_seq_samples.py

Writes (and the samples commit) untrained, compiled models, as a Keras user's
program would build them before calling fit; Kiln compiles and trains them:

- samples/optimizers/race.keras: LSTM(32, return_sequences) -> Dropout(0.2) ->
  LSTM(32, return_sequences) -> Dropout(0.2) -> Dense(1) on (10, 1) sequences,
  mse, Adam (the sample overrides the optimizer with `kiln compile --optimizer`).
- samples/cumsum/cumsum.keras: Bidirectional(LSTM(20, return_sequences)) ->
  TimeDistributed(Dense(1, sigmoid)) on (10, 1) sequences, binary cross-entropy,
  Adam, metrics accuracy.
- samples/masking/masking.keras: Masking(0.0) -> LSTM(128) -> LSTM(64) ->
  LSTM(1), all return_sequences, -> Cropping1D((3, 0)) on (24, 1) sequences,
  mae, Adam(0.001); samples/masking/nomask.keras: the same model without the
  Masking layer, with the same initial weights.

The Swift API has no recurrent layers, so these models are made by Keras. Every
model's initial weights come from a fixed seed; running this again rewrites
the same files.
"""
import os
import sys
import warnings

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from keras import layers as L  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "samples")

# The masking sample's geometry: the C program (samples/masking/masking.c) uses the same.
MASK_STEPS, MASK_CROP = 24, 3


def race():
    keras.utils.set_random_seed(3301)
    m = keras.Sequential([
        keras.Input((10, 1)),
        L.LSTM(32, return_sequences=True),
        L.Dropout(0.2),
        L.LSTM(32, return_sequences=True),
        L.Dropout(0.2),
        L.Dense(1),
    ], name="race")
    m.compile(optimizer="adam", loss="mse")
    return m


def cumsum():
    keras.utils.set_random_seed(2504)
    m = keras.Sequential([
        keras.Input((10, 1)),
        L.Bidirectional(L.LSTM(20, return_sequences=True)),
        L.TimeDistributed(L.Dense(1, activation="sigmoid")),
    ], name="cumsum")
    m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return m


def masking(with_mask):
    keras.utils.set_random_seed(1281)
    ls = [keras.Input((MASK_STEPS, 1))]
    if with_mask:
        ls.append(L.Masking(0.0))
    ls += [L.LSTM(128, return_sequences=True), L.LSTM(64, return_sequences=True),
           L.LSTM(1, return_sequences=True), L.Cropping1D((MASK_CROP, 0))]
    m = keras.Sequential(ls, name="masking" if with_mask else "nomask")
    m.compile(optimizer=keras.optimizers.Adam(0.001), loss="mae")
    return m


def save(model, *path):
    out = os.path.join(SAMPLES, *path)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    model.save(out)
    print("wrote %s (%d parameters)" % (os.path.relpath(out, ROOT), model.count_params()))


def main():
    save(race(), "optimizers", "race.keras")
    save(cumsum(), "cumsum", "cumsum.keras")
    with warnings.catch_warnings():
        # Keras warns that Cropping1D drops the mask; samples/masking/README.md says why that is fine here.
        warnings.simplefilter("ignore")
        masked = masking(True)
    plain = masking(False)
    plain.set_weights(masked.get_weights())   # the same start, so only the mask differs
    save(masked, "masking", "masking.keras")
    save(plain, "masking", "nomask.keras")
    return 0


if __name__ == "__main__":
    sys.exit(main())
