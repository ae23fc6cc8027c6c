#!/usr/bin/env python3
"""Keras's side of the `kiln fit` / `kiln evaluate` / `kiln predict --classes` checks
(Tests/run_fit_cases.py compares kiln with what this writes).

    KERAS_BACKEND=jax /opt/kerasvenv/bin/python tools/gen_fit_cases.py

Writes Tests/fit_cases/NAME/: model.keras (saved after compile, before any fit: the
weights kiln compiles in), the data as .npy, expected.json, and one folder of weights
(NNN.npy in get_weights() order) per Keras run. Every run starts from the saved model
(reloaded), with shuffle=False, so that kiln can repeat it batch for batch.

  softmax    Dense-relu-Dense-softmax, sparse labels, Adam, accuracy.
             runs: validation_data given explicitly (13 rows, batch 8: a short last
             validation batch); validation_split=0.25 (the last quarter held out);
             initial_epoch=1 of 3 with validation_data.
             evaluate(batch_size=5) and argmax(predict) of the saved model.
  earlystop  Dense-relu-Dense-sigmoid on random labels (it overfits: val_loss turns up),
             binary crossentropy, Adam lr 0.05, accuracy.
             runs: EarlyStopping(patience=2, restore_best_weights=True) with the weights
             of every epoch (the checkpoint kiln writes must be the best epoch's, as
             ModelCheckpoint(save_best_only=True) keeps it); EarlyStopping(monitor=
             "val_accuracy", patience=1, min_delta=0.05) without restoring.
             evaluate(batch_size=8) and predict > 0.5 of the saved model.
"""
import json
import os
import shutil
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras import layers as L  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "fit_cases")


def save_weights(model, d):
    os.makedirs(d, exist_ok=True)
    for i, w in enumerate(model.get_weights()):
        np.save(os.path.join(d, "%03d.npy" % i), w.astype(np.float32))


def history(h):
    return {k: [float(v) for v in vals] for k, vals in h.history.items()}


class EpochWeights(keras.callbacks.Callback):
    """get_weights() at the end of each epoch (after the other callbacks' on_epoch_end)."""
    def on_train_begin(self, logs=None):
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([w.copy() for w in self.model.get_weights()])


def softmax_case():
    name = "softmax"
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    keras.utils.set_random_seed(11)
    rng = np.random.default_rng(11)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    w = rng.normal(size=(4, 3))
    y = np.argmax(x @ w + 0.7 * rng.normal(size=(40, 3)), axis=1).astype(np.int32)
    vx = rng.normal(size=(13, 4)).astype(np.float32)
    vy = np.argmax(vx @ w + 0.7 * rng.normal(size=(13, 3)), axis=1).astype(np.int32)
    model = keras.Sequential([keras.Input((4,)), L.Dense(6, activation="relu"), L.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    path = os.path.join(d, "model.keras")
    model.save(path)
    for n, a in [("x", x), ("y", y), ("val_x", vx), ("val_y", vy)]:
        np.save(os.path.join(d, n + ".npy"), a)

    exp = {"batch_size": 8, "epochs": 3}
    m = keras.saving.load_model(path)
    ev = m.evaluate(vx, vy, batch_size=5, verbose=0, return_dict=True)
    exp["evaluate"] = {"batch_size": 5, "loss": float(ev["loss"]), "accuracy": float(ev["accuracy"])}
    p = m.predict(vx, verbose=0)
    top2 = np.sort(p, axis=1)[:, -2:]
    assert np.all(top2[:, 1] - top2[:, 0] > 1e-4), "a near tie in argmax"
    np.save(os.path.join(d, "classes.npy"), np.argmax(p, axis=-1).astype(np.int32))

    m = keras.saving.load_model(path)
    h = m.fit(x, y, validation_data=(vx, vy), epochs=3, batch_size=8, shuffle=False, verbose=0)
    exp["validation_data"] = history(h)
    save_weights(m, os.path.join(d, "weights_validation_data"))

    m = keras.saving.load_model(path)
    h = m.fit(x, y, validation_split=0.25, epochs=3, batch_size=8, shuffle=False, verbose=0)
    exp["validation_split"] = {"split": 0.25, **history(h)}
    save_weights(m, os.path.join(d, "weights_validation_split"))

    m = keras.saving.load_model(path)
    h = m.fit(x, y, validation_data=(vx, vy), initial_epoch=1, epochs=3, batch_size=8, shuffle=False, verbose=0)
    exp["initial_epoch"] = {"initial_epoch": 1, **history(h)}
    save_weights(m, os.path.join(d, "weights_initial_epoch"))
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1)


def earlystop_case():
    name = "earlystop"
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    keras.utils.set_random_seed(23)
    rng = np.random.default_rng(23)
    x = rng.normal(size=(32, 5)).astype(np.float32)
    y = rng.integers(0, 2, size=(32, 1)).astype(np.float32)
    vx = rng.normal(size=(24, 5)).astype(np.float32)
    vy = rng.integers(0, 2, size=(24, 1)).astype(np.float32)
    model = keras.Sequential([keras.Input((5,)), L.Dense(16, activation="relu"), L.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy", metrics=["accuracy"])
    path = os.path.join(d, "model.keras")
    model.save(path)
    for n, a in [("x", x), ("y", y), ("val_x", vx), ("val_y", vy)]:
        np.save(os.path.join(d, n + ".npy"), a)

    exp = {"batch_size": 8, "epochs": 30}
    m = keras.saving.load_model(path)
    ev = m.evaluate(vx, vy, batch_size=8, verbose=0, return_dict=True)
    exp["evaluate"] = {"batch_size": 8, "loss": float(ev["loss"]), "accuracy": float(ev["accuracy"])}
    p = m.predict(vx, verbose=0)
    assert np.all(np.abs(p - 0.5) > 1e-4), "a prediction too close to 0.5"
    np.save(os.path.join(d, "classes.npy"), (p > 0.5).astype(np.int32))

    # Patience 2, restoring the best weights; every epoch's weights give the checkpoint's.
    m = keras.saving.load_model(path)
    es = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    ew = EpochWeights()
    h = m.fit(x, y, validation_data=(vx, vy), epochs=30, batch_size=8, shuffle=False, verbose=0, callbacks=[es, ew])
    hist = history(h)
    ran = len(hist["loss"])
    assert ran < 30 and es.stopped_epoch == ran - 1, "early stopping did not trigger"
    best = int(np.argmin(hist["val_loss"]))   # first minimum, as ModelCheckpoint's strict `less` keeps it
    assert es.best_epoch == best and best < ran - 1, (es.best_epoch, best, ran)
    exp["restore"] = {"patience": 2, "stopped_epoch": es.stopped_epoch + 1, "best_epoch": best + 1, **hist}
    save_weights(m, os.path.join(d, "weights_restore"))   # restored = the best epoch's
    for i, w in enumerate(ew.weights[best]):
        assert np.array_equal(w, m.get_weights()[i])

    # val_accuracy with min_delta: stops when accuracy has not risen by 0.05 for one epoch.
    m = keras.saving.load_model(path)
    es = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=1, min_delta=0.05)
    h = m.fit(x, y, validation_data=(vx, vy), epochs=30, batch_size=8, shuffle=False, verbose=0, callbacks=[es])
    hist = history(h)
    assert len(hist["loss"]) < 30 and es.stopped_epoch > 0
    exp["min_delta"] = {"monitor": "val_accuracy", "patience": 1, "min_delta": 0.05,
                        "stopped_epoch": es.stopped_epoch + 1, **hist}
    save_weights(m, os.path.join(d, "weights_min_delta"))
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1)


if __name__ == "__main__":
    softmax_case()
    earlystop_case()
    for n in sorted(os.listdir(OUT)):
        e = json.load(open(os.path.join(OUT, n, "expected.json")))
        print(n, {k: (len(v["loss"]) if isinstance(v, dict) and "loss" in v and isinstance(v["loss"], list) else v)
                  for k, v in e.items()})
    sys.exit(0)
