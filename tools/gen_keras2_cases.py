#!/usr/bin/env python3
"""Kiln's conformance cases written by Keras 2 (tf.keras 2.15): legacy model.h5 files in
Keras 2's own spelling (batch_input_shape, dtype strings, list-of-lists inbound_nodes,
training_config with Keras 2 optimizer configs) and a tf.keras save_weights("weights.h5") file.

    python3 -m venv /opt/tfvenv && /opt/tfvenv/bin/pip install tensorflow-cpu==2.15.1
    /opt/tfvenv/bin/python tools/gen_keras2_cases.py

Writes Tests/cases/k2_* in the format of tools/gen_cases.py (case.json, x0.npy, p0.npy,
train_*.npy, weights/, weights_after/). There is no float64 pass: the tolerances are
gen_cases.py's floors (predict atol 1e-5, train atol 2e-5, rtol 10 x atol). summary.json is
Keras 2's own summary of the model (layers, output shapes, parameter counts).
"""
import json
import os
import shutil
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

keras = tf.keras
L = keras.layers
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES_DIR = os.path.join(ROOT, "Tests", "cases")
PRED_ATOL, TRAIN_ATOL = 1e-5, 2e-5


def seed_of(name):
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def f32(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def onehot(rng, n, k):
    y = np.zeros((n, k), np.float32)
    y[np.arange(n), rng.integers(0, k, n)] = 1.0
    return y


def masked_tokens(rng, n, t, vocab):
    """ids 1..vocab-1, each row padded with 0 after 2..t real steps (every fourth row full)."""
    x = rng.integers(1, vocab, (n, t))
    for i in range(n):
        if i % 4:
            x[i, rng.integers(2, t):] = 0
    return x.astype(np.int32)


def randomize(model, rng):
    vals = []
    for v in model.weights:
        shape = tuple(v.shape)
        if "embeddings" in v.name:
            a = rng.uniform(-1.0, 1.0, shape)
        elif "moving_variance" in v.name:
            a = rng.uniform(0.5, 1.5, shape)
        elif len(shape) >= 2:
            lim = np.sqrt(3.0 / int(np.prod(shape[:-1])))
            a = rng.uniform(-lim, lim, shape)
        else:
            a = rng.uniform(-0.4, 0.4, shape)
        vals.append(a.astype(np.float32))
    model.set_weights(vals)


def save_arrays(dirname, arrays):
    os.makedirs(dirname, exist_ok=True)
    for i, a in enumerate(arrays):
        np.save(os.path.join(dirname, "%03d.npy" % i), a)


# ---------------------------------------------------------------- the cases

def cnn():
    model = keras.Sequential([
        L.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)), L.MaxPooling2D(2),
        L.Flatten(),
        # No bias before BatchNormalization: its gradient is zero up to rounding, which Adam would amplify.
        L.Dense(6, use_bias=False), L.BatchNormalization(), L.Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adam(learning_rate=0.01))
    return model


def cnn_data(rng):
    return [f32(rng, 8, 8, 8, 1)], [f32(rng, 20, 8, 8, 1)], [onehot(rng, 20, 3)]


def masked_rnn():
    x = keras.Input((7,), dtype="int32", name="tokens")
    h = L.Embedding(12, 4, mask_zero=True)(x)
    h = L.LSTM(5, return_sequences=True)(h)
    h = L.Bidirectional(L.GRU(3))(h)
    model = keras.Model(x, L.Dense(2, name="out")(h))
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=0.1))
    return model


def masked_rnn_data(rng):
    return [masked_tokens(rng, 10, 7, 12)], [masked_tokens(rng, 24, 7, 12)], [f32(rng, 24, 2, scale=0.8)]


def td_mlp():
    model = keras.Sequential([
        keras.Input((5, 4)), L.TimeDistributed(L.Dense(6, activation="tanh")), L.Dropout(0.0),
        L.GlobalAveragePooling1D(), L.Dense(2, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.RMSprop(learning_rate=0.01))
    return model


def td_mlp_data(rng):
    return [f32(rng, 10, 5, 4)], [f32(rng, 24, 5, 4)], [rng.integers(0, 2, (24, 2)).astype(np.float32)]


CASES = [
    ("k2_sequential_cnn_bn", cnn, cnn_data, None,
     ["file:keras2_h5", "Conv2D", "Conv2D:relu", "MaxPooling2D", "BatchNormalization", "Flatten",
      "Dense:softmax", "loss:categorical_crossentropy", "optimizer:Adam", "api:Sequential"],
     "tf.keras 2.15 model.save('model.h5'): a Sequential CNN (Dense -> BatchNormalization after it) whose first layer carries "
     "batch_input_shape, dtype strings, initializers without module, optimizer_config of Keras 2"),
    ("k2_functional_masked_lstm_bigru", masked_rnn, masked_rnn_data, None,
     ["file:keras2_h5", "Embedding", "Embedding:mask_zero", "LSTM", "LSTM:return_sequences", "LSTM:masked",
      "Bidirectional", "GRU", "GRU:masked", "Dense", "loss:mse", "optimizer:SGD", "input:int32",
      "api:Functional"],
     "tf.keras 2.15 Functional model.h5: Embedding(mask_zero) -> LSTM(seq) -> Bidirectional(GRU) -> Dense, "
     "inbound_nodes as Keras 2 lists of [layer, node, tensor, kwargs], the mask implicit as Keras 2 keeps it"),
    ("k2_weights_only_td", td_mlp, td_mlp_data, "weights.h5",
     ["file:keras2_h5", "file:legacy_weights_h5", "TimeDistributed", "TimeDistributed:Dense", "Dropout",
      "GlobalAveragePooling1D", "Dense:sigmoid", "loss:binary_crossentropy", "optimizer:RMSprop",
      "api:Sequential"],
     "tf.keras 2.15: model.h5 holds the weights the model was built with; the case's weights come from "
     "save_weights('weights.h5') (the legacy weight-only layout), given with kiln compile --weights"),
]


def summary(model):
    rows = []
    for layer in model.layers:
        if isinstance(model, keras.Sequential) and isinstance(layer, L.InputLayer):
            continue
        shape = layer.output_shape
        text = (lambda s: "(" + ", ".join("None" if d is None else str(d) for d in s) + ("," if len(s) == 1 else "") + ")")
        rows.append({"name": layer.name, "class": layer.__class__.__name__,
                     "shape": text(shape[0] if isinstance(shape, list) and len(shape) == 1 else shape),
                     "params": int(layer.count_params())})
    count = lambda ws: int(sum(int(np.prod(w.shape)) for w in ws))
    return {"layers": rows, "trainable": count(model.trainable_weights),
            "non_trainable": count(model.non_trainable_weights)}


def new_case(name, covers, generator):
    """A case's emptied directory, its seeded numpy generator (Keras' session cleared and
    seeded the same way) and the start of its case.json."""
    d = os.path.join(CASES_DIR, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    keras.backend.clear_session()
    seed = seed_of(name)
    keras.utils.set_random_seed(seed)
    import keras as keras_package
    info = {"name": name, "covers": covers, "model": "model.h5", "generator": generator,
            "writer": "tensorflow %s, keras %s" % (tf.__version__, keras_package.__version__)}
    return d, np.random.default_rng(seed), info


def make(name, build, data, weights_file, covers, scenario):
    d, rng, info = new_case(name, covers, "tools/gen_keras2_cases.py")
    model = build()
    if weights_file:
        model.save(os.path.join(d, "model.h5"))   # the weights the model was built with
        info["compile_args"] = ["--weights", weights_file]
    randomize(model, rng)
    if weights_file:
        model.save_weights(os.path.join(d, weights_file))
    else:
        model.save(os.path.join(d, "model.h5"))
    info["seed_scenario"] = scenario
    x, tx, ty = data(rng)
    save_arrays(os.path.join(d, "weights"), model.get_weights())
    for i, a in enumerate(x):
        np.save(os.path.join(d, "x%d.npy" % i), a)
    pred = model.predict(x[0], verbose=0)
    pred = pred if isinstance(pred, list) else [pred]
    for i, p in enumerate(pred):
        np.save(os.path.join(d, "p%d.npy" % i), np.asarray(p))
    # Keras itself reads the files back to the same predictions.
    again = keras.models.load_model(os.path.join(d, "model.h5"), compile=False)
    if weights_file:
        again.load_weights(os.path.join(d, weights_file))
    assert np.array_equal(again.predict(x[0], verbose=0), pred[0])
    for i, a in enumerate(tx):
        np.save(os.path.join(d, "train_x%d.npy" % i), a)
    for i, a in enumerate(ty):
        np.save(os.path.join(d, "train_y%d.npy" % i), a)
    epochs, batch = 2, 8
    h = model.fit(tx[0], ty[0], epochs=epochs, batch_size=batch, shuffle=False, verbose=0)
    save_arrays(os.path.join(d, "weights_after"), model.get_weights())
    write_case(d, info, model, len(x), len(pred), epochs, batch, h)
    print("wrote", name)


def write_case(d, info, model, n_inputs, n_outputs, epochs, batch, history):
    """case.json (the files of one fit of `epochs` at `batch`, Keras 2's tolerances) and summary.json."""
    info.update({"inputs": ["x%d.npy" % i for i in range(n_inputs)], "predict": ["p%d.npy" % i for i in range(n_outputs)],
                 "rtol": 10 * PRED_ATOL, "atol": PRED_ATOL,
                 "train": {"x": ["train_x0.npy"], "y": ["train_y0.npy"], "epochs": epochs, "batch_size": batch,
                           "shuffle": False, "loss": [float(v) for v in history.history["loss"]],
                           "weights_after": "weights_after", "rtol": 10 * TRAIN_ATOL, "atol": TRAIN_ATOL}})
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    with open(os.path.join(d, "summary.json"), "w") as f:
        json.dump(summary(model), f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    for c in CASES:
        make(*c)
