"""Keras-made cases for stateful recurrent layers (issue 11): several consecutive calls of one
model instance, with reset_states between, which gen_cases.py cannot express.

Each case folder Tests/stateful/NAME holds model.keras, x.npy (calls, batch, ...) with the input
of every predict call in order, y.npy (calls, batch, ...) with Keras' output of each call, and
case.json {"calls": ["predict", "predict", "reset", ...], ...}. Keras' numbers come from eager
calls model(x) one after the other: with the JAX backend, model.predict does not carry the state
from one batch to the next (its jitted step drops the state variables' updates), while eager
calls do, as the TensorFlow backend's predict does.

Run: KERAS_BACKEND=jax /opt/kerasvenv/bin/python tools/gen_stateful.py
"""
import json
import zlib
import os
import numpy as np
import keras
from keras import layers as L

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "stateful")


def lstm_seq():
    x = keras.Input(batch_shape=(3, 4, 2))
    h = L.LSTM(5, stateful=True, return_sequences=True)(x)
    return keras.Model(x, L.Dense(2)(h))


def gru_last():
    x = keras.Input(batch_shape=(2, 5, 3))
    h = L.GRU(4, stateful=True, return_sequences=True)(x)
    h = L.SimpleRNN(3, stateful=True)(h)
    return keras.Model(x, L.Dense(2)(h))


def lstm_online():
    # One sample, one step per call: the streaming use.
    x = keras.Input(batch_shape=(1, 1, 3))
    return keras.Model(x, L.Dense(1)(L.LSTM(8, stateful=True)(x)))


def lstm_state_out():
    x = keras.Input(batch_shape=(2, 3, 2))
    out, h, c = L.LSTM(3, stateful=True, return_state=True, dropout=0.2, recurrent_dropout=0.3)(x)
    return keras.Model(x, [L.Dense(2)(out), h, c])


def bidir_masked():
    x = keras.Input(batch_shape=(2, 5), dtype="int32")
    e = L.Embedding(9, 3, mask_zero=True)(x)
    h = L.Bidirectional(L.GRU(3, stateful=True, return_sequences=True))(e)
    return keras.Model(x, L.Dense(2)(h))


CASES = {
    "stateful_lstm_seq": (lstm_seq, ["predict", "predict", "predict", "reset", "predict", "predict"],
                          "LSTM(stateful, return_sequences) -> Dense over three consecutive batches of 3, reset_states, two more"),
    "stateful_gru_simple_rnn": (gru_last, ["predict", "predict", "reset", "predict", "predict", "predict"],
                                "GRU(stateful, seq) -> SimpleRNN(stateful) -> Dense: both layers carry their state across calls"),
    "stateful_lstm_online": (lstm_online, ["predict"] * 6 + ["reset"] + ["predict"] * 3,
                             "LSTM(stateful) at batch 1, one step per call (streaming), reset_states, three more steps"),
    "stateful_bidir_gru_masked": (bidir_masked, ["predict", "predict", "predict", "reset", "predict"],
                                  "Embedding(mask_zero) -> Bidirectional(GRU(stateful, seq)): both directions carry their state, "
                                  "masked steps keep it"),
    "stateful_lstm_return_state": (lstm_state_out, ["predict", "predict", "reset", "predict"],
                                   "LSTM(stateful, return_state, dropout) -> [Dense(out), h, c]: the states returned are the carried ones"),
}


def main():
    for name, (build, calls, scenario) in CASES.items():
        keras.utils.set_random_seed(zlib.crc32(name.encode()) % 1000 + 7)
        rng = np.random.default_rng(len(name))
        m = build()
        batch_shape = m.inputs[0].shape
        xs, ys = [], []
        for c in calls:
            if c == "reset":
                for layer in m.layers:
                    if getattr(layer, "stateful", False):
                        layer.reset_state()
                continue
            if m.inputs[0].dtype == "int32":
                x = rng.integers(1, 9, size=batch_shape).astype("int32")
                x[0, -2:] = 0   # trailing padding in one row
                x[1, :1] = 0    # leading padding in the other
            else:
                x = rng.normal(size=batch_shape).astype("float32")
            y = m(x, training=False)
            xs.append(x)
            ys.append([np.asarray(t) for t in (y if isinstance(y, (list, tuple)) else [y])])
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        # Saving resets nothing that matters: the file holds the weights only.
        m.save(os.path.join(d, "model.keras"))
        np.save(os.path.join(d, "x.npy"), np.stack(xs))
        for k in range(len(ys[0])):
            np.save(os.path.join(d, f"y{k}.npy"), np.stack([y[k] for y in ys]))
        with open(os.path.join(d, "case.json"), "w") as f:
            json.dump({"calls": calls, "outputs": len(ys[0]), "batch": batch_shape[0], "scenario": scenario,
                       "keras_version": keras.__version__, "backend": keras.backend.backend()}, f, indent=1)
        print(name, "calls", len(calls))


if __name__ == "__main__":
    main()
