#!/usr/bin/env python3
"""Makes the CNN-LSTM sample's Keras models, and trains the same model in Keras
for a reference accuracy.

    KERAS_BACKEND=jax /opt/kerasvenv/bin/python tools/make_cnn_lstm_sample.py            # the models
    KERAS_BACKEND=jax /opt/kerasvenv/bin/python tools/make_cnn_lstm_sample.py --reference [--epochs E]
    KERAS_BACKEND=jax /opt/kerasvenv/bin/python tools/make_cnn_lstm_sample.py --invalid     # only the invalid models

Writes samples/cnn-lstm/models/cnn_lstm_digits.keras (input: 4 tiles of 4x4x1,
the quadrants of an 8x8 UCI digit) and cnn_lstm_mnist.keras (4 tiles of
14x14x1, the quadrants of a 28x28 MNIST digit): the same layers,

    TimeDistributed(Conv2D(16, 3, 'same', relu)) -> TimeDistributed(Conv2D(32, 3, 'same', relu))
    -> TimeDistributed(MaxPooling2D(P)) -> TimeDistributed(Flatten) -> Dropout(0.25)
    -> LSTM(64) -> Dense(64, relu) -> Dense(10, softmax)

where P is half the tile (2 for digits, 7 for MNIST), so that every tile ends
as 2x2x32 = 128 features and both models have the same weight shapes (the
MNIST file stays small: 59,020 weights, not the 402,000 of MaxPooling2D(2)),

compiled with sparse categorical cross-entropy and Adam(learning_rate=LR),
saved untrained (seeded glorot weights) after compile.

--reference trains the digits model in Keras on exactly the split that
samples/cnn-lstm/train.c makes (the same splitmix64 shuffle with the same
seed, 1,500 train / 297 held out, the same order of batches per epoch) and
prints the held-out accuracy after each epoch: the figure Kiln's training is
compared with in samples/cnn-lstm/README.md. Nothing is downloaded: the
data is samples/cnn-lstm/data/digits.csv.gz.

Also writes three invalid models, the mistakes CNN-LSTM users make, which
Keras will not build (their config.json is edited, the weights are valid):
Tests/cases_invalid/cnn_lstm_flatten_unwrapped (a Flatten not wrapped in
TimeDistributed feeds the LSTM a 2-D tensor), cnn_lstm_conv_kernel_too_big
('valid' 3x3 convolutions on 4x4 tiles) and cnn_channels_first_input (the
demo CNN given the input shape (1, 28, 28)). Each case.json lists in
expect_error what Kiln's refusal must say.
"""
import argparse
import gzip
import json
import os
import re
import shutil
import zipfile

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras import layers as L  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "samples", "cnn-lstm")
INVALID = os.path.join(ROOT, "Tests", "cases_invalid")
LR = 0.003          # Adam's learning rate, saved in the models' compile_config
SPLIT_SEED = 20240909   # train.c's DEFAULT_SEED
N_TRAIN = 1500
BATCH = 32
MASK = (1 << 64) - 1


def build(tile, name):
    keras.utils.set_random_seed(7)
    model = keras.Sequential([
        keras.Input((4, tile, tile, 1), name="tiles"),
        L.TimeDistributed(L.Conv2D(16, 3, padding="same", activation="relu"), name="td_conv1"),
        L.TimeDistributed(L.Conv2D(32, 3, padding="same", activation="relu"), name="td_conv2"),
        L.TimeDistributed(L.MaxPooling2D(tile // 2), name="td_pool"),
        L.TimeDistributed(L.Flatten(), name="td_flatten"),
        L.Dropout(0.25, name="dropout"),
        L.LSTM(64, name="lstm"),
        L.Dense(64, activation="relu", name="dense"),
        L.Dense(10, activation="softmax", name="digit"),
    ], name=name)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.Adam(learning_rate=LR),
                  metrics=["accuracy"])
    return model


class SplitMix64:
    """The generator of train.c (Steele, Lea and Flood's SplitMix64)."""
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def shuffle(self, a):
        for i in range(len(a) - 1, 0, -1):
            j = self.next() % (i + 1)
            a[i], a[j] = a[j], a[i]


def tiles(images, side):
    """(n, side, side) -> (n, 4, side/2, side/2, 1): the quadrants, top-left, top-right, bottom-left, bottom-right."""
    h = side // 2
    out = np.stack([images[:, r * h:(r + 1) * h, c * h:(c + 1) * h] for r in (0, 1) for c in (0, 1)], axis=1)
    return out[..., None].astype(np.float32)


def reference(epochs):
    with gzip.open(os.path.join(SAMPLE, "data", "digits.csv.gz"), "rt") as f:
        rows = np.array([[int(v) for v in line.split(",")] for line in f if line.strip()])
    x = tiles(rows[:, :64].reshape(-1, 8, 8) / 16.0, 8)
    y = rows[:, 64].astype(np.int32)
    rng = SplitMix64(SPLIT_SEED)
    order = list(range(len(y)))
    rng.shuffle(order)
    train, held = order[:N_TRAIN], order[N_TRAIN:]
    model = build(4, "cnn_lstm_digits")
    for e in range(epochs):
        rng.shuffle(train)
        h = model.fit(x[train], y[train], batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        p = model.predict(x[held], verbose=0).argmax(axis=1)
        correct = int((p == y[held]).sum())
        print("epoch %d: loss %.4f, held-out accuracy %d/%d = %.2f%%"
              % (e + 1, h.history["loss"][0], correct, len(held), 100.0 * correct / len(held)))


# ---------------------------------------------------------------- invalid models

def keras_refusal(build_fn):
    """Keras' own message for a model it will not build (None if it builds)."""
    try:
        build_fn()
        return None
    except ValueError as e:
        lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(e)).splitlines() if ln.strip()]
        return " ".join(lines)[:400]


def rewrite(src, dst_dir, edit, info):
    """Copies the .keras file src into dst_dir/model.keras with config.json edited by edit(cfg)
    (the weights file unchanged) and writes case.json from info."""
    shutil.rmtree(dst_dir, ignore_errors=True)
    os.makedirs(dst_dir)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(os.path.join(dst_dir, "model.keras"), "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                cfg = json.loads(data)
                edit(cfg["config"]["layers"])
                data = json.dumps(cfg).encode()
            zout.writestr(item, data)
    with open(os.path.join(dst_dir, "case.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    print("wrote", os.path.relpath(dst_dir, ROOT), "(keras: %s)" % info["keras_error"])


def layer_named(layers, name):
    return next(l for l in layers if l["config"]["name"] == name)


def make_invalid():
    """Three mistakes of CNN-LSTM users, as .keras files Keras itself will not build (so their
    config.json is edited; the weights are the valid model's). Kiln must refuse each with the
    message of case.json's expect_error (Tests/run_conformance.py, ImporterErrorTests)."""
    digits = os.path.join(SAMPLE, "models", "cnn_lstm_digits.keras")

    def unwrap_flatten(layers):
        k = layers.index(layer_named(layers, "td_flatten"))
        inner = layers[k]["config"]["layer"]
        inner["config"]["name"] = "flatten"
        layers[k] = inner

    def plain_flatten():
        keras.Sequential([keras.Input((4, 4, 4, 1)), L.TimeDistributed(L.Conv2D(16, 3, padding="same")),
                          L.TimeDistributed(L.Conv2D(32, 3, padding="same")), L.TimeDistributed(L.MaxPooling2D(2)),
                          L.Flatten(), L.Dropout(0.25), L.LSTM(64)])
    rewrite(digits, os.path.join(INVALID, "cnn_lstm_flatten_unwrapped"), unwrap_flatten, {
        "name": "cnn_lstm_flatten_unwrapped",
        "covers": ["TimeDistributed", "Flatten", "LSTM", "error:shape"],
        "seed_scenario": "samples/cnn-lstm's model with its Flatten not wrapped in TimeDistributed: it turns "
                         "(None, 4, 2, 2, 32) into (None, 512), and the LSTM after the Dropout gets no time axis. "
                         "config.json was edited (Keras will not build it); the weights are valid.",
        "expect_error": ["LSTM 'lstm'", "(batch, time, features)", "(None, 512)", "Flatten 'flatten'",
                         "(None, 4, 2, 2, 32)", "TimeDistributed(Flatten())", "(None, 4, 128)"],
        "keras_error": keras_refusal(plain_flatten)})

    def valid_padding(layers):
        for name in ("td_conv1", "td_conv2"):
            layer_named(layers, name)["config"]["layer"]["config"]["padding"] = "valid"

    def valid_convs():
        keras.Sequential([keras.Input((4, 4, 4, 1)), L.TimeDistributed(L.Conv2D(16, 3)),
                          L.TimeDistributed(L.Conv2D(32, 3))])
    rewrite(digits, os.path.join(INVALID, "cnn_lstm_conv_kernel_too_big"), valid_padding, {
        "name": "cnn_lstm_conv_kernel_too_big",
        "covers": ["TimeDistributed", "Conv2D", "error:shape"],
        "seed_scenario": "samples/cnn-lstm's model with padding='valid' in both convolutions: the first leaves "
                         "2x2 of each 4x4 tile, the second's 3x3 kernel does not fit. config.json was edited "
                         "(Keras will not build it); the weights are valid.",
        "expect_error": ["td_conv2", "Conv2D", "3x3 'valid' convolution", "(None, 2, 2, 16)", "height 2", "width 2",
                         "padding='same'"],
        "keras_error": keras_refusal(valid_convs)})

    def channels_first(layers):
        layers[0]["config"]["batch_shape"] = [None, 1, 28, 28]

    def first_input():
        keras.Sequential([keras.Input((1, 28, 28)), L.Conv2D(32, 3, activation="relu")])
    rewrite(os.path.join(ROOT, "samples", "models", "mnist_cnn.keras"), os.path.join(INVALID, "cnn_channels_first_input"),
            channels_first, {
        "name": "cnn_channels_first_input",
        "covers": ["Conv2D", "error:shape"],
        "seed_scenario": "the demo CNN (samples/models/mnist_cnn.keras, Conv2D on (28, 28, 1)) with the input "
                         "shape a PyTorch user writes, (1, 28, 28): channels first. config.json was edited; "
                         "the weights are valid.",
        "expect_error": ["channels_first", "(None, 1, 28, 28)", "(28, 28, 1)", "channels_last", "data_format"],
        "keras_error": keras_refusal(first_input)})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", action="store_true", help="train the digits model in Keras on the sample's split")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--invalid", action="store_true", help="only write the invalid models of Tests/cases_invalid/cnn_*")
    args = ap.parse_args()
    if args.reference:
        reference(args.epochs)
        return
    if args.invalid:
        make_invalid()
        return
    os.makedirs(os.path.join(SAMPLE, "models"), exist_ok=True)
    for tile, name in ((4, "cnn_lstm_digits"), (14, "cnn_lstm_mnist")):
        path = os.path.join(SAMPLE, "models", name + ".keras")
        build(tile, name).save(path)
        print("wrote", os.path.relpath(path, ROOT))
    make_invalid()


if __name__ == "__main__":
    main()
