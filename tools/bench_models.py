#!/usr/bin/env python3
"""The two benchmark models of tools/bench.py, built with Keras 3.

    KERAS_BACKEND=jax /opt/kerasvenv/bin/python tools/bench_models.py [--out bench/models]

Writes OUT/cnn.keras and OUT/mlp.keras: compiled (compile_config included),
never trained, weights drawn from Keras' initializers under a fixed seed.
bench.py builds the same models itself when Keras is importable; the
committed copies under bench/models/ are what it uses when it is not.

  cnn: 28x28x1 -> Conv2D(8, 3, relu) -> MaxPooling2D -> Conv2D(16, 3, relu)
       -> MaxPooling2D -> Flatten -> Dense(10, softmax);
       categorical_crossentropy, Adam(learning_rate=0.001)
  mlp: 784 -> Dense(256, relu) -> Dense(128, relu) -> Dense(10, softmax);
       categorical_crossentropy, SGD(learning_rate=0.01, momentum=0.9)
"""
import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS_DIR = os.path.join(ROOT, "bench", "models")

# name -> (input shape without the batch, number of classes, description)
MODELS = {
    "cnn": ((28, 28, 1), 10, "CNN 28x28x1, conv8-pool-conv16-pool-dense10, Adam"),
    "mlp": ((784,), 10, "MLP 784-256-128-10, SGD momentum 0.9"),
}


def build(name, seed=1234):
    """A fresh compiled Keras model `name` ("cnn" or "mlp")."""
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(seed)
    if name == "cnn":
        model = keras.Sequential([
            keras.Input(shape=(28, 28, 1)),
            L.Conv2D(8, 3, activation="relu"),
            L.MaxPooling2D(),
            L.Conv2D(16, 3, activation="relu"),
            L.MaxPooling2D(),
            L.Flatten(),
            L.Dense(10, activation="softmax"),
        ], name="bench_cnn")
        opt = keras.optimizers.Adam(learning_rate=0.001)
    elif name == "mlp":
        model = keras.Sequential([
            keras.Input(shape=(784,)),
            L.Dense(256, activation="relu"),
            L.Dense(128, activation="relu"),
            L.Dense(10, activation="softmax"),
        ], name="bench_mlp")
        opt = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    else:
        raise ValueError(f"unknown benchmark model {name!r}")
    model.compile(optimizer=opt, loss="categorical_crossentropy")
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=MODELS_DIR, help="folder for cnn.keras and mlp.keras")
    args = ap.parse_args()
    import keras
    os.makedirs(args.out, exist_ok=True)
    for name in MODELS:
        path = os.path.join(args.out, f"{name}.keras")
        build(name).save(path)
        print(f"wrote {path} ({os.path.getsize(path)} bytes, Keras {keras.__version__})")


if __name__ == "__main__":
    main()
