#!/usr/bin/env python3
"""Legacy .h5 files for Kiln's tests, beside the cases of tools/case_sets/legacy.py:

- the files Kiln must refuse (Tests/cases_invalid/h5_*, *_other_model): an HDF5 file that is no
  Keras model, a truncated legacy model, a text file named .h5, and weight files of another
  model given with --weights. Tests/run_conformance.py checks that kiln exits 1 with a message
  holding every string of expect_error, and (for compile_args cases) writes nothing;
- Tests/cases/legacy_h5_resume_adam: a model saved as legacy model.h5 after 6 steps of Adam
  (optimizer_weights: iteration, learning rate, slots), which Keras 3's load_model restores;
  the reference is the in-memory model's continuation;
- Tests/Fixtures/legacy_fixed_strings.h5: Tests/cases/legacy_h5_dense_bn/model.h5 with its string
  attributes rewritten as fixed-length strings, as h5py 2 wrote them (Keras 2 files of that
  era); Tests/KilnKerasTests/LegacyH5Tests.swift reads both and compares.

    KERAS_BACKEND=jax /opt/kerasvenv/bin/python tools/gen_legacy_files.py
"""
import json
import os
import shutil

os.environ.setdefault("KERAS_BACKEND", "jax")
import h5py  # noqa: E402
import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras import layers as L  # noqa: E402
from keras.src.legacy.saving import legacy_h5_format  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INVALID_DIR = os.path.join(ROOT, "Tests", "cases_invalid")


def folder(name):
    d = os.path.join(INVALID_DIR, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def write_case(d, info):
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    print("invalid", info["name"])


def mlp(units=4):
    keras.utils.set_random_seed(1)
    m = keras.Sequential([keras.Input((5,)), L.Dense(units, activation="relu"), L.Dense(2)])
    m.compile(loss="mse", optimizer="sgd")
    return m


def fixed_strings():
    src = os.path.join(ROOT, "Tests", "cases", "legacy_h5_dense_bn", "model.h5")
    d = os.path.join(ROOT, "Tests", "Fixtures")
    os.makedirs(d, exist_ok=True)
    dst = os.path.join(d, "legacy_fixed_strings.h5")
    shutil.copyfile(src, dst)
    n = 0
    with h5py.File(dst, "r+") as f:
        objs = [f]
        f.visititems(lambda name, obj: objs.append(obj))
        for obj in objs:
            for k in list(obj.attrs):
                v = obj.attrs[k]
                if isinstance(v, str) or (isinstance(v, np.ndarray) and v.dtype == object):
                    a = np.array([s.encode("utf8") for s in v] if isinstance(v, np.ndarray) else v.encode("utf8"))
                    del obj.attrs[k]
                    obj.attrs.create(k, a, dtype=a.dtype)   # numpy "S" dtype: fixed-length strings
                    n += 1
    print("legacy_fixed_strings.h5: %d string attributes made fixed-length" % n)


def save_arrays(d, arrays):
    os.makedirs(d, exist_ok=True)
    for i, a in enumerate(arrays):
        np.save(os.path.join(d, "%03d.npy" % i), np.asarray(a, dtype=np.float32))


def resume_case():
    name = "legacy_h5_resume_adam"
    keras.utils.set_random_seed(11)
    rng = np.random.default_rng(11)
    x0, y0 = rng.normal(size=(24, 5)).astype("float32"), rng.normal(size=(24, 3)).astype("float32")
    x, y = rng.normal(size=(20, 5)).astype("float32"), rng.normal(size=(20, 3)).astype("float32")
    model = keras.Sequential([keras.Input((5,)), L.Dense(6, activation="tanh"), L.Dense(3)])
    # A loss object: Keras 3.15's legacy loader cannot compile a file whose loss is the string "mse".
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.MeanSquaredError())
    model.fit(x0, y0, batch_size=8, epochs=2, shuffle=False, verbose=0)   # 6 steps taken
    d = os.path.join(ROOT, "Tests", "cases", name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    model.save(os.path.join(d, "model.h5"))
    loaded = keras.saving.load_model(os.path.join(d, "model.h5"))
    # Keras' load_model restores the optimizer state (its fit then fails on the JAX backend, a Keras
    # bug: "the optimizer was built with 0 variables"), so the in-memory model's continuation is the
    # reference.
    assert int(loaded.optimizer.iterations.numpy()) == 6, "Keras did not restore the optimizer state"
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        assert np.array_equal(np.asarray(a), np.asarray(b)), "Keras restores another optimizer state"
    save_arrays(os.path.join(d, "weights"), model.get_weights())
    np.save(os.path.join(d, "x0.npy"), x[:4])
    p = model.predict(x[:4], verbose=0).astype("float32")
    assert np.array_equal(p, loaded.predict(x[:4], verbose=0))
    np.save(os.path.join(d, "p0.npy"), p)
    np.save(os.path.join(d, "train_x0.npy"), x)
    np.save(os.path.join(d, "train_y0.npy"), y)
    h = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    save_arrays(os.path.join(d, "weights_after"), model.get_weights())
    case = {
        "name": name, "model": "model.h5", "generator": "tools/gen_legacy_files.py",
        "covers": ["file:legacy_h5", "Dense", "Dense:tanh", "loss:mse", "optimizer:Adam", "fit:resume", "api:Sequential"],
        "seed_scenario": "a model saved as legacy model.h5 after 6 steps of Adam; continuing fit must start "
                         "from the file's optimizer_weights (iteration count and slots), as Keras 3's load_model does",
        "inputs": ["x0.npy"], "predict": ["p0.npy"], "rtol": 1e-4, "atol": 1e-5,
        "train": {"x": ["train_x0.npy"], "y": ["train_y0.npy"], "epochs": 2, "batch_size": 8,
                  "shuffle": False, "loss": [float(v) for v in h.history["loss"]],
                  "weights_after": "weights_after", "rtol": 2e-4, "atol": 2e-5},
    }
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
        f.write("\n")
    print("case", name)


def main():
    resume_case()
    fixed_strings()
    d = folder("h5_no_model_config")
    with h5py.File(os.path.join(d, "model.h5"), "w") as f:
        f.create_dataset("data", data=np.arange(6, dtype=np.float32).reshape(2, 3))
        f.attrs["note"] = "an HDF5 file, not a Keras model"
    write_case(d, {"name": "h5_no_model_config", "covers": ["file:legacy_h5", "error:file"], "model": "model.h5",
                   "seed_scenario": "an HDF5 file with one dataset and no model_config attribute",
                   "expect_error": ["model.h5", "not a Keras model", "model_config"]})

    d = folder("h5_truncated")
    tmp = os.path.join(d, "full.h5")
    mlp().save(tmp)
    data = open(tmp, "rb").read()
    os.remove(tmp)
    with open(os.path.join(d, "model.h5"), "wb") as f:
        f.write(data[: len(data) // 2])
    write_case(d, {"name": "h5_truncated", "covers": ["file:legacy_h5", "error:file"], "model": "model.h5",
                   "seed_scenario": "a legacy model.h5 cut to its first half (%d of %d bytes)" % (len(data) // 2, len(data)),
                   "expect_error": ["model.h5", "truncated"]})

    d = folder("h5_not_hdf5")
    with open(os.path.join(d, "model.h5"), "w") as f:
        f.write("model weights, in a text file named .h5\n")
    write_case(d, {"name": "h5_not_hdf5", "covers": ["file:legacy_h5", "error:file"], "model": "model.h5",
                   "seed_scenario": "a text file named model.h5",
                   "expect_error": ["model.h5", "not an HDF5 file"]})

    # Weights of another model: Dense(3) where the model has Dense(4).
    d = folder("weights_h5_other_model")
    mlp(4).save(os.path.join(d, "model.keras"))
    mlp(3).save_weights(os.path.join(d, "model.weights.h5"))
    write_case(d, {"name": "weights_h5_other_model", "covers": ["file:weights_h5", "error:weights"],
                   "compile_args": ["--weights", "model.weights.h5"],
                   "seed_scenario": "model.keras has Dense(4) -> Dense(2) on 5 inputs; model.weights.h5 was saved "
                                    "from Dense(3) -> Dense(2)",
                   "expect_error": ["model.weights.h5", "dense", "(5, 3)", "(5, 4)"]})

    d = folder("legacy_weights_other_model")
    mlp(4).save(os.path.join(d, "model.keras"))
    keras.utils.set_random_seed(1)
    other = keras.Sequential([keras.Input((5,)), L.Dense(4), L.Dense(4), L.Dense(2)])
    with h5py.File(os.path.join(d, "weights.h5"), "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, other)
    write_case(d, {"name": "legacy_weights_other_model", "covers": ["file:legacy_weights_h5", "error:weights"],
                   "compile_args": ["--weights", "weights.h5"],
                   "seed_scenario": "model.keras has two Dense layers; weights.h5 (legacy weight-only) holds three",
                   "expect_error": ["weights.h5", "3 layers", "2 layers"]})


if __name__ == "__main__":
    main()
