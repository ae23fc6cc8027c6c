"""Keras-made cases for resuming training (issue 11).

Each case: a small Dense model is compiled with an optimizer, fit some batches in
Keras, and saved (model.keras then holds optimizer/vars: the iteration count and the
optimizer's slots).  Keras then continues fit for more batches with shuffle=False;
weights_after holds the weights after that, train.loss its epoch losses.  The normal
conformance runner (Tests/conformance/run) checks it: it compiles model.keras (its
weights and optimizer state), runs `kiln fit --no-shuffle` on the same batches and
compares weights_after and the losses.  No runner change is needed.

    KERAS_BACKEND=jax /opt/kerasvenv/bin/python tools/gen_resume_cases.py [--only NAME]
"""
import argparse, json, os, shutil
import numpy as np
import keras

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Tests", "cases")
O = keras.optimizers
CASES = {
    "resume_sgd_momentum": lambda: O.SGD(0.05, momentum=0.9),
    "resume_sgd_nesterov": lambda: O.SGD(0.05, momentum=0.8, nesterov=True),
    "resume_rmsprop": lambda: O.RMSprop(0.01),
    "resume_rmsprop_centered_momentum": lambda: O.RMSprop(0.01, momentum=0.5, centered=True),
    "resume_adagrad": lambda: O.Adagrad(0.1),
    "resume_adadelta": lambda: O.Adadelta(1.0),
    "resume_adam": lambda: O.Adam(0.01),
    "resume_adam_amsgrad": lambda: O.Adam(0.01, amsgrad=True),
    "resume_adamw": lambda: O.AdamW(0.01, weight_decay=0.01),
    "resume_adamax": lambda: O.Adamax(0.02),
    "resume_nadam": lambda: O.Nadam(0.01),
}


def save_arrays(d, arrays):
    os.makedirs(d, exist_ok=True)
    for i, a in enumerate(arrays):
        np.save(os.path.join(d, "%03d.npy" % i), np.asarray(a, dtype=np.float32))


def make(name, make_opt):
    keras.utils.set_random_seed(11)
    rng = np.random.default_rng(11)
    x0 = rng.normal(size=(24, 5)).astype("float32")
    y0 = rng.normal(size=(24, 3)).astype("float32")
    x = rng.normal(size=(20, 5)).astype("float32")
    y = rng.normal(size=(20, 3)).astype("float32")
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6, activation="tanh"),
                              keras.layers.Dense(3)])
    opt = make_opt()
    model.compile(optimizer=opt, loss="mse")
    model.fit(x0, y0, batch_size=8, epochs=2, shuffle=False, verbose=0)  # 6 steps taken
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    model.save(os.path.join(d, "model.keras"))
    save_arrays(os.path.join(d, "weights"), model.get_weights())
    np.save(os.path.join(d, "x0.npy"), x[:4])
    np.save(os.path.join(d, "p0.npy"), model.predict(x[:4], verbose=0).astype("float32"))
    np.save(os.path.join(d, "train_x0.npy"), x)
    np.save(os.path.join(d, "train_y0.npy"), y)
    h = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)  # 3 batches per epoch, last partial
    save_arrays(os.path.join(d, "weights_after"), model.get_weights())
    cls = type(opt).__name__
    case = {
        "name": name, "generator": "tools/gen_resume_cases.py",
        "covers": ["Dense", "Dense:tanh", "loss:mse", "optimizer:" + cls, "fit:resume", "api:Sequential"],
        "scenario": "a model saved after 6 steps of %s; continuing fit must start from the saved "
                    "optimizer state (iteration count and slots)" % cls,
        "inputs": ["x0.npy"], "predict": ["p0.npy"], "rtol": 1e-4, "atol": 1e-5,
        "train": {"x": ["train_x0.npy"], "y": ["train_y0.npy"], "epochs": 2, "batch_size": 8,
                  "shuffle": False, "loss": [float(v) for v in h.history["loss"]],
                  "weights_after": "weights_after", "rtol": 2e-4, "atol": 2e-5},
    }
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
    print("wrote", d)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--only")
    a = ap.parse_args()
    for n, f in CASES.items():
        if not a.only or a.only in n:
            make(n, f)
