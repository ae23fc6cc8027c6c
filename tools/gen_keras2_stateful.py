#!/usr/bin/env python3
"""Conformance cases for TRAINING a stateful recurrent layer, written by Keras 2 (tf.keras 2.15),
whose fit and predict carry a stateful layer's state from batch to batch (Keras 3 on JAX does not).

    /opt/tfvenv/bin/python tools/gen_keras2_stateful.py

Writes Tests/cases/k2_stateful_* in the format of tools/gen_keras2_cases.py: model.h5 saved
before fit (the initial weights), x0/p0 (predict of 8 rows in batches of 4 from zero state, the
state carried from the first batch to the second), train_* (16 rows, batch 4, 2 epochs,
shuffle=False; the state is reset before fit and carried across batches AND epochs, as Keras 2's
fit does not reset between epochs), weights_after/ and the per-epoch losses.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_keras2_cases import (f32, keras, new_case, randomize,  # noqa: E402
                              save_arrays, write_case)
import numpy as np  # noqa: E402

L = keras.layers
BATCH, T, F = 4, 5, 3


def build(rnn):
    def f():
        model = keras.Sequential([keras.Input(batch_shape=(BATCH, T, F)), rnn(), L.Dense(2)])
        model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=0.05))
        return model
    return f


CASES = [
    ("k2_stateful_lstm_fit", build(lambda: L.LSTM(6, stateful=True)),
     ["file:keras2_h5", "LSTM", "LSTM:stateful", "train:stateful", "Dense", "loss:mse", "optimizer:SGD",
      "api:Sequential"],
     "tf.keras 2.15 model.h5: Input(batch_shape=(4, 5, 3)) -> LSTM(6, stateful=True) -> Dense(2); "
     "predict and fit each from zero state, the state carried across batches and across fit's epochs"),
    ("k2_stateful_gru_fit", build(lambda: L.GRU(5, stateful=True)),
     ["file:keras2_h5", "GRU", "GRU:stateful", "train:stateful", "Dense", "loss:mse", "optimizer:SGD",
      "api:Sequential"],
     "tf.keras 2.15 model.h5: Input(batch_shape=(4, 5, 3)) -> GRU(5, stateful=True, reset_after) -> Dense(2); "
     "predict and fit each from zero state, the state carried across batches and across fit's epochs"),
]


def make(name, builder, covers, scenario):
    d, rng, info = new_case(name, covers, "tools/gen_keras2_stateful.py")
    info["seed_scenario"] = scenario
    model = builder()
    randomize(model, rng)
    model.save(os.path.join(d, "model.h5"))
    x = f32(rng, 2 * BATCH, T, F)
    tx, ty = f32(rng, 4 * BATCH, T, F), f32(rng, 4 * BATCH, 2, scale=0.8)
    save_arrays(os.path.join(d, "weights"), model.get_weights())
    np.save(os.path.join(d, "x0.npy"), x)
    model.reset_states()
    pred = model.predict(x, batch_size=BATCH, verbose=0)
    np.save(os.path.join(d, "p0.npy"), pred)
    # The state is carried: the second batch differs from the same rows predicted from zero state.
    model.reset_states()
    alone = model.predict(x[BATCH:], batch_size=BATCH, verbose=0)
    assert not np.allclose(alone, pred[BATCH:], atol=1e-3)
    again = keras.models.load_model(os.path.join(d, "model.h5"), compile=False)
    assert np.array_equal(again.predict(x, batch_size=BATCH, verbose=0), pred)
    np.save(os.path.join(d, "train_x0.npy"), tx)
    np.save(os.path.join(d, "train_y0.npy"), ty)
    epochs = 2
    model.reset_states()
    h = model.fit(tx, ty, epochs=epochs, batch_size=BATCH, shuffle=False, verbose=0)
    save_arrays(os.path.join(d, "weights_after"), model.get_weights())
    write_case(d, info, model, 1, 1, epochs, BATCH, h)
    print("wrote", name, info["train"]["loss"])


if __name__ == "__main__":
    for c in CASES:
        make(*c)
