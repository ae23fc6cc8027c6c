#!/usr/bin/env python3
"""Generate Kiln's own Keras reference cases (Tests/cases/) with real Keras.

    KERAS_BACKEND=jax /opt/kerasvenv/bin/python tools/gen_cases.py [--only SUBSTR] [--list]

Writes every case in exactly the format of Tests/conformance/cases (see
Tests/conformance/README.md): case.json, model.keras (saved after compile,
before fit), x*.npy / p*.npy, train_x*.npy / train_y*.npy, weights/NNN.npy
(the initial get_weights(), every weight set to a random value) and
weights_after/NNN.npy (get_weights() after fit).  Also writes
Tests/cases_invalid/reshape_mismatch (a model Keras refuses to build) and the
demo sample samples/models/mnist_cnn.keras with inputs and Keras' predictions.

Tolerances: after the float32 pass, one worker subprocess (this script with
--f64-worker, JAX_ENABLE_X64=1, keras floatx float64) rebuilds every model,
loads the same weights and data, and repeats predict and fit in float64.
The tolerance is the smallest 1-2-5 step (rtol = 10 x atol) covering ten
times the float32-vs-float64 error of every value, never tighter than
rtol 1e-4 / atol 1e-5 (predict) and 2e-4 / 2e-5 (train).

Everything is seeded: each case's numpy generator and keras.utils.set_random_seed
derive from a CRC of the case name.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib

F64 = "--f64-worker" in sys.argv
os.environ.setdefault("KERAS_BACKEND", "jax")
# Be gentle with the shared machine (and keep reductions in one order).
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if F64:
    os.environ["JAX_ENABLE_X64"] = "1"

import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras import layers as L  # noqa: E402

# The repo's Keras CRF package (python/kiln_crf), this checkout's version even when another is installed.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "python", "kiln_crf"))
import kiln_crf  # noqa: E402

if F64:
    keras.config.set_floatx("float64")
    # Keras' type promotion on JAX maps float64 results to float32 ("aligned with JAX's
    # default"), so under x64 e.g. ops.tanh and parts of the losses would quietly run in
    # float32. The reference must be float64 throughout: turn that mapping off here.
    from keras.src.backend.common import dtypes as _kdt
    _kdt.BIT64_TO_BIT32_DTYPE["float64"] = "float64"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES_DIR = os.path.join(ROOT, "Tests", "cases")
INVALID_DIR = os.path.join(ROOT, "Tests", "cases_invalid")
SAMPLES_DIR = os.path.join(ROOT, "samples", "models")

PRED_FLOOR = 1e-5   # atol floor for predictions (rtol = 10 x atol)
TRAIN_FLOOR = 2e-5  # atol floor for training
LADDER = [m * 10.0 ** e for e in range(-7, 2) for m in (1, 2, 5)]


# ---------------------------------------------------------------- case registry

class Case:
    def __init__(self, name, covers, build, compile_args, data, train=True, scenario=None,
                 epochs=2, batch_size=8, wscale=1.0, metrics_keys=None, save=None):
        self.name = name
        self.covers = covers
        self.build = build                # () -> uncompiled keras model (dtype from floatx)
        self.compile_args = compile_args  # () -> dict for model.compile (fresh objects)
        self.data = data                  # rng -> (x list, y list, train_x list, train_y list)
        self.train = train
        self.scenario = scenario
        self.epochs = epochs
        self.batch_size = batch_size
        self.wscale = wscale
        self.metrics_keys = metrics_keys  # history keys stored under case.json "metrics"
        self.save = save                  # None (model.keras) or a SAVE_FORMATS key (legacy files)


CASES = []


def case(*args, **kw):
    CASES.append(Case(*args, **kw))


def seed_of(name):
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


# ---------------------------------------------------------------- data helpers

def f32(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def onehot(rng, n, k):
    y = np.zeros((n, k), np.float32)
    y[np.arange(n), rng.integers(0, k, n)] = 1.0
    return y


def sparse(rng, n, k):
    return rng.integers(0, k, n).astype(np.int32)


def tokens(rng, n, t, vocab):
    return rng.integers(0, vocab, (n, t)).astype(np.int32)


def dense_data(n_in, ty, n_pred=10, n_train=24, out=None, xscale=1.0):
    """x ~ N(0, xscale) float32; ty(rng, n) builds the targets."""
    def make(rng):
        x = f32(rng, n_pred, *n_in, scale=xscale) if isinstance(n_in, tuple) else f32(rng, n_pred, n_in, scale=xscale)
        tx = (f32(rng, n_train, *n_in, scale=xscale) if isinstance(n_in, tuple)
              else f32(rng, n_train, n_in, scale=xscale))
        return [x], None, [tx], [ty(rng, n_train)]
    return make


def reg(k, scale=0.8):
    return lambda rng, n: f32(rng, n, k, scale=scale)


def cat(k):
    return lambda rng, n: onehot(rng, n, k)


def spc(k):
    return lambda rng, n: sparse(rng, n, k)


def binary(k):
    return lambda rng, n: rng.integers(0, 2, (n, k)).astype(np.float32)


# ---------------------------------------------------------------- compile helpers

def sgd(lr=0.1, **kw):
    return lambda: keras.optimizers.SGD(learning_rate=lr, **kw)


def comp(loss, opt, **kw):
    return lambda: dict(loss=loss() if callable(loss) else loss, optimizer=opt(), **kw)


def seq(input_shape, *layer_fns, input_dtype=None):
    def build():
        ls = [keras.Input(input_shape, dtype=input_dtype)] + [f() for f in layer_fns]
        return keras.Sequential(ls)
    return build


# ================================================================= A. layers

# --- pooling / conv
case("avgpool2d",
     ["Conv2D", "Conv2D:valid", "Conv2D:relu", "AveragePooling2D", "AveragePooling2D:odd_input",
      "Flatten", "Dense:softmax", "loss:categorical_crossentropy", "optimizer:SGD", "api:Sequential"],
     seq((9, 9, 1), lambda: L.Conv2D(4, 3, activation="relu"), lambda: L.AveragePooling2D(2),
         lambda: L.Flatten(), lambda: L.Dense(3, activation="softmax")),
     comp("categorical_crossentropy", sgd(0.05)),
     dense_data((9, 9, 1), cat(3), n_pred=8, n_train=20),
     scenario="7x7 feature map average-pooled 2x2 (valid) drops the last row and column")

case("avgpool2d_same_strides",
     ["Conv2D", "Conv2D:same", "Conv2D:tanh", "AveragePooling2D", "AveragePooling2D:same",
      "AveragePooling2D:strides", "MaxPooling2D", "MaxPooling2D:same", "Flatten", "Dense",
      "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((10, 9, 2), lambda: L.Conv2D(4, 3, padding="same", activation="tanh"),
         lambda: L.AveragePooling2D(pool_size=3, strides=2, padding="same"),
         lambda: L.MaxPooling2D(2, padding="same"),
         lambda: L.Flatten(), lambda: L.Dense(2)),
     comp("mse", sgd(0.05)),
     dense_data((10, 9, 2), reg(2), n_pred=8, n_train=20),
     scenario="AveragePooling2D(3, strides 2, 'same') on 10x9 gives 5x5 and averages only the "
              "real (unpadded) cells of border windows; MaxPooling2D(2, 'same') on 5x5 gives 3x3")

case("global_avgpool",
     ["Conv2D", "Conv2D:valid", "Conv2D:relu", "GlobalAveragePooling2D", "Dense:softmax",
      "loss:categorical_crossentropy", "optimizer:SGD", "api:Sequential"],
     seq((8, 7, 2), lambda: L.Conv2D(5, 3, activation="relu"), lambda: L.GlobalAveragePooling2D(),
         lambda: L.Dense(3, activation="softmax")),
     comp("categorical_crossentropy", sgd(0.1)),
     dense_data((8, 7, 2), cat(3), n_pred=8, n_train=20))

case("global_maxpool",
     ["Conv2D", "Conv2D:same", "Conv2D:tanh", "GlobalMaxPooling2D", "Dense",
      "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((7, 8, 1), lambda: L.Conv2D(4, 3, padding="same", activation="tanh"),
         lambda: L.GlobalMaxPooling2D(), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)),
     dense_data((7, 8, 1), reg(2), n_pred=8, n_train=20))

case("conv2d_same_strides_bias",
     ["Conv2D", "Conv2D:same", "Conv2D:strides", "Conv2D:linear", "Conv2D:sigmoid",
      "Conv2D:odd_input", "Flatten", "Dense", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((9, 8, 2), lambda: L.Conv2D(3, 3, strides=2, padding="same"),
         lambda: L.Conv2D(4, 2, strides=2, padding="same", activation="sigmoid"),
         lambda: L.Flatten(), lambda: L.Dense(2)),
     comp("mse", sgd(0.05)),
     dense_data((9, 8, 2), reg(2), n_pred=8, n_train=20),
     scenario="stride-2 'same' 3x3 conv on 9 rows pads 1+1 and on 8 columns 0+1 (output 5x4); "
              "then a 2x2 stride-2 'same' sigmoid conv on 5x4 pads rows 0+1, columns 0+0 (output 3x2)")

case("conv2d_same_even_kernel",
     ["Conv2D", "Conv2D:same", "Conv2D:strides", "Conv2D:relu", "Conv2D:odd_input", "Flatten",
      "Dense", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((7, 7, 1), lambda: L.Conv2D(2, 4, strides=3, padding="same", activation="relu"),
         lambda: L.Flatten(), lambda: L.Dense(2)),
     comp("mse", sgd(0.05)),
     dense_data((7, 7, 1), reg(2), n_pred=8, n_train=20),
     scenario="4x4 kernel, stride 3, 'same' on 7x7: output 3x3, padding 1 before and 2 after")

case("conv2d_runtime_kernels",
     ["Conv2D", "Conv2D:same", "Conv2D:strides", "Conv2D:relu", "Conv2D:odd_input", "Flatten",
      "Dense", "loss:categorical_crossentropy", "optimizer:Adam", "api:Sequential"],
     seq((10, 9, 3), lambda: L.Conv2D(16, 3, activation="relu"),
         lambda: L.Conv2D(32, 3, padding="same", activation="relu"),
         lambda: L.Conv2D(16, 2, strides=2),
         lambda: L.Flatten(), lambda: L.Dense(3, activation="softmax")),
     comp("categorical_crossentropy", lambda: keras.optimizers.Adam(learning_rate=0.01)),
     dense_data((10, 9, 3), cat(3), n_pred=8, n_train=24),
     scenario="filter counts in multiples of 16, so Kiln's runtime kernels run: the 3x3 stride-1 "
              "'same' conv on 16 channels by Winograd (forward and input gradient, odd 8x7 maps), "
              "the 2x2 stride-2 conv directly, every filter gradient directly (the first layer's "
              "on 3 channels too)")


# --- functional
def build_concat_add():
    a = keras.Input((5,), name="a")
    b = keras.Input((4,), name="b")
    da = L.Dense(6, activation="relu")(a)
    db = L.Dense(6, activation="tanh")(b)
    h = L.Concatenate(axis=-1)([da, db])
    h2 = L.Dense(6)(h)
    s = L.Add()([h2, da])
    out = L.Dense(2)(s)
    return keras.Model([a, b], out)


def two_input_data(rng):
    x = [f32(rng, 10, 5), f32(rng, 10, 4)]
    tx = [f32(rng, 22, 5), f32(rng, 22, 4)]
    return x, None, tx, [f32(rng, 22, 2, scale=0.8)]


case("functional_concat_add",
     ["Dense", "Dense:relu", "Dense:tanh", "Dense:linear", "Concatenate", "Add", "input:multiple",
      "loss:mse", "optimizer:SGD", "api:Functional"],
     build_concat_add, comp("mse", sgd(0.05)), two_input_data,
     scenario="two inputs; the relu branch feeds both the Concatenate and the Add (a skip connection)")


def build_two_outputs():
    x = keras.Input((6,))
    h = L.Dense(8, activation="relu")(x)
    cls = L.Dense(3, activation="softmax", name="cls")(h)
    r = L.Dense(1, name="reg")(h)
    return keras.Model(x, [cls, r])


def two_output_data(rng):
    x = [f32(rng, 10, 6)]
    tx = [f32(rng, 22, 6)]
    return x, None, tx, [onehot(rng, 22, 3), f32(rng, 22, 1, scale=0.8)]


case("functional_two_outputs",
     ["Dense", "Dense:relu", "Dense:softmax", "Dense:linear", "output:multiple", "loss:dict",
      "loss:categorical_crossentropy", "loss:mse", "optimizer:SGD", "api:Functional"],
     build_two_outputs,
     comp({"cls": "categorical_crossentropy", "reg": "mse"}, sgd(0.1)),
     two_output_data,
     metrics_keys=["cls_loss", "reg_loss"],
     scenario="two outputs with a loss dict keyed by output layer name; the reported loss is the sum "
              "of the per-output losses")

case("functional_two_outputs_weighted",
     ["Dense", "Dense:relu", "Dense:softmax", "Dense:linear", "output:multiple", "loss:list",
      "loss_weights", "loss:categorical_crossentropy", "loss:mse", "optimizer:SGD",
      "api:Functional"],
     build_two_outputs,
     comp(["categorical_crossentropy", "mse"], sgd(0.1), loss_weights=[1.0, 0.5]),
     two_output_data,
     metrics_keys=["cls_loss", "reg_loss"],
     scenario="two outputs with a loss list and loss_weights [1.0, 0.5]: loss = cce + 0.5 * mse")


# --- activations by name
ACTS = ["elu", "selu", "softplus", "softsign", "swish", "gelu", "exponential", "hard_sigmoid",
        "hard_silu", "leaky_relu", "relu6", "log_softmax", "mish", "linear", "relu", "sigmoid",
        "tanh", "softmax",
        # further names Keras 3 resolves ("glu" is left out: Keras 3.15 infers Dense(activation="glu")'s
        # output shape without halving the last axis, so a model using it does not run; "threshold"
        # needs arguments, so it cannot be used by name)
        "celu", "log_sigmoid", "hard_tanh", "hard_shrink", "soft_shrink", "tanh_shrink",
        "sparse_plus", "squareplus", "sparsemax"]
SAVED_AS = {"swish": "silu"}


def act_case(name):
    saved = SAVED_AS.get(name, name)
    units1, units2 = 8, 3
    second = name
    scale = 1.0
    if name == "exponential":
        second, scale = "linear", 0.5
    xscale = 2.0 if name in ("relu6", "hard_sigmoid", "hard_silu", "hard_tanh", "hard_shrink",
                             "soft_shrink", "sparse_plus") else 1.0
    out_units = units2
    covers = ["Dense", "Dense:" + saved]
    if second != name:
        covers.append("Dense:" + second)
    covers += ["loss:mse", "optimizer:SGD", "api:Sequential"]
    scen = "activation given by name %r" % name
    if saved != name:
        scen += " (saved in the config as %r)" % saved
    case("act_" + name, covers,
         seq((5,), lambda: L.Dense(units1, activation=name),
             lambda: L.Dense(units2, activation=second)),
         comp("mse", sgd(0.05)),
         dense_data(5, reg(out_units, 0.5), n_pred=10, n_train=22, xscale=xscale),
         scenario=scen, wscale=scale)


for _a in ACTS:
    act_case(_a)

# --- activation layers
case("act_layer_activation",
     ["Dense", "Dense:linear", "Activation:relu", "Activation:softmax", "loss:categorical_crossentropy",
      "optimizer:SGD", "api:Sequential"],
     seq((5,), lambda: L.Dense(8), lambda: L.Activation("relu"), lambda: L.Dense(3),
         lambda: L.Activation("softmax")),
     comp("categorical_crossentropy", sgd(0.2)),
     dense_data(5, cat(3), n_train=22))

case("act_layer_relu",
     ["Dense", "Dense:linear", "ReLU", "ReLU:max_value", "ReLU:negative_slope", "ReLU:threshold",
      "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((5,), lambda: L.Dense(8), lambda: L.ReLU(), lambda: L.Dense(6),
         lambda: L.ReLU(max_value=1.0, negative_slope=0.1, threshold=0.2), lambda: L.Dense(2)),
     comp("mse", sgd(0.05)),
     dense_data(5, reg(2), n_train=22, xscale=1.5),
     scenario="ReLU() then ReLU(max_value=1, negative_slope=0.1, threshold=0.2): "
              "x >= max_value -> max_value; threshold <= x < max_value -> x; x < threshold -> 0.1*(x - threshold)")

case("act_layer_leaky_relu",
     ["Dense", "Dense:linear", "LeakyReLU", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((5,), lambda: L.Dense(8), lambda: L.LeakyReLU(negative_slope=0.2), lambda: L.Dense(6),
         lambda: L.LeakyReLU(), lambda: L.Dense(2)),
     comp("mse", sgd(0.05)),
     dense_data(5, reg(2), n_train=22),
     scenario="LeakyReLU(negative_slope=0.2) and LeakyReLU() (default slope 0.3)")

case("act_layer_softmax",
     ["Dense", "Dense:linear", "Softmax", "Dense:tanh", "loss:categorical_crossentropy",
      "optimizer:SGD", "api:Sequential"],
     seq((5,), lambda: L.Dense(8, activation="tanh"), lambda: L.Dense(4), lambda: L.Softmax()),
     comp("categorical_crossentropy", sgd(0.2)),
     dense_data(5, cat(4), n_train=22))

case("act_layer_elu",
     ["Dense", "Dense:linear", "ELU", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((5,), lambda: L.Dense(8), lambda: L.ELU(alpha=0.5), lambda: L.Dense(2)),
     comp("mse", sgd(0.05)),
     dense_data(5, reg(2), n_train=22),
     scenario="ELU(alpha=0.5)")

case("act_layer_prelu",
     ["Dense", "Dense:linear", "PReLU", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((5,), lambda: L.Dense(8), lambda: L.PReLU(), lambda: L.Dense(2)),
     comp("mse", sgd(0.05)),
     dense_data(5, reg(2), n_train=22),
     scenario="PReLU has a trainable alpha per unit (shape (8,)), set to random positive values")


# --- embeddings
def emb_data(vocab, t, ty, n_pred=10, n_train=24):
    def make(rng):
        return ([tokens(rng, n_pred, t, vocab)], None, [tokens(rng, n_train, t, vocab)],
                [ty(rng, n_train)])
    return make


case("embedding_reshape_dense",
     ["Embedding", "Reshape", "Dense", "Dense:3d", "Dense:tanh", "Dense:softmax", "input:int32",
      "loss:sparse_categorical_crossentropy", "optimizer:SGD", "api:Sequential"],
     seq((6,), lambda: L.Embedding(20, 4), lambda: L.Reshape((3, 8)),
         lambda: L.Dense(5, activation="tanh"), lambda: L.Reshape((15,)),
         lambda: L.Dense(3, activation="softmax"), input_dtype="int32"),
     comp("sparse_categorical_crossentropy", sgd(0.3)),
     emb_data(20, 6, spc(3), n_train=21),
     scenario="(6 tokens, 4 dims) reshaped to (3, 8): pairs of consecutive token vectors are "
              "concatenated; Dense on a 3-D tensor acts on the last axis")

case("embedding_frozen",
     ["Embedding", "Embedding:trainable_false", "Flatten", "Dense:sigmoid",
      "loss:binary_crossentropy", "optimizer:SGD", "input:int32", "api:Sequential"],
     seq((6,), lambda: L.Embedding(20, 4, trainable=False), lambda: L.Flatten(),
         lambda: L.Dense(1, activation="sigmoid"), input_dtype="int32"),
     comp("binary_crossentropy", sgd(0.5)),
     emb_data(20, 6, binary(1), n_train=21),
     scenario="Embedding(trainable=False): its table keeps its place in get_weights() and comes "
              "back unchanged after fit")


# ================================================================= B. optimizers, losses, metrics

def mlp():
    return seq((5,), lambda: L.Dense(8, activation="tanh"), lambda: L.Dense(2))


def opt_case(name, tag, opt, scenario=None):
    case("opt_" + name,
         ["Dense", "Dense:tanh", "Dense:linear", "loss:mse", "optimizer:" + tag,
          "fit:partial_last_batch", "api:Sequential"],
         mlp(), comp("mse", opt), dense_data(5, reg(2), n_pred=8, n_train=22),
         scenario=scenario)


O = keras.optimizers
opt_case("sgd_momentum", "SGD:momentum", lambda: O.SGD(learning_rate=0.05, momentum=0.9),
         "SGD(momentum=0.9) without Nesterov: m = 0.9 m - lr g; w += m")
opt_case("sgd_clipnorm", "SGD:clipnorm", lambda: O.SGD(learning_rate=0.1, clipnorm=0.3),
         "clipnorm=0.3 clips each variable's gradient to L2 norm <= 0.3 separately")
opt_case("sgd_clipvalue", "SGD:clipvalue", lambda: O.SGD(learning_rate=0.1, clipvalue=0.2),
         "clipvalue=0.2 clips every gradient element to [-0.2, 0.2] (some are clipped, some not)")
opt_case("sgd_weight_decay", "SGD:weight_decay",
         lambda: O.SGD(learning_rate=0.1, weight_decay=0.05),
         "decoupled weight decay: w -= lr * weight_decay * w before the gradient step (biases too)")
opt_case("adam_global_clipnorm", "Adam:global_clipnorm",
         lambda: O.Adam(learning_rate=0.01, global_clipnorm=0.3),
         "global_clipnorm=0.3 scales all gradients together so their joint L2 norm is <= 0.3")
opt_case("adam_amsgrad", "Adam:amsgrad", lambda: O.Adam(learning_rate=0.01, amsgrad=True),
         "Adam(amsgrad=True) keeps the running maximum of v")
opt_case("adamw", "AdamW", lambda: O.AdamW(learning_rate=0.01, weight_decay=0.05),
         "AdamW = Adam with decoupled weight decay (w -= lr * wd * w), applied to biases too")
opt_case("rmsprop_centered_momentum", "RMSprop:centered",
         lambda: O.RMSprop(learning_rate=0.01, rho=0.8, momentum=0.9, centered=True),
         "RMSprop(rho=0.8, momentum=0.9, centered=True)")
opt_case("nadam_betas", "Nadam", lambda: O.Nadam(learning_rate=0.02, beta_1=0.8, beta_2=0.99),
         "Nadam(beta_1=0.8, beta_2=0.99) with the 0.96 momentum schedule")
opt_case("adadelta_rho", "Adadelta",
         lambda: O.Adadelta(learning_rate=0.5, rho=0.9, epsilon=1e-6),
         "Adadelta(learning_rate=0.5, rho=0.9, epsilon=1e-6)")
opt_case("adagrad_init", "Adagrad",
         lambda: O.Adagrad(learning_rate=0.05, initial_accumulator_value=0.5, epsilon=1e-6),
         "Adagrad(initial_accumulator_value=0.5, epsilon=1e-6)")


def lin_head(units, act=None):
    return seq((4,), lambda: L.Dense(6, activation="tanh"), lambda: L.Dense(units, activation=act))


LOSS_SCEN = "plain SGD(learning_rate=0.5): weights_after - weights is minus 0.5 x the summed gradients"
case("loss_bce_from_logits",
     ["Dense", "Dense:tanh", "Dense:linear", "loss:binary_crossentropy:from_logits",
      "optimizer:SGD", "api:Sequential"],
     lin_head(2),
     comp(lambda: keras.losses.BinaryCrossentropy(from_logits=True), sgd(0.5)),
     dense_data(4, binary(2), n_pred=8, n_train=16),
     scenario=LOSS_SCEN + "; logits (no sigmoid), two independent binary labels; from_logits is "
                          "not clipped")
case("loss_cce_from_logits",
     ["Dense", "Dense:tanh", "Dense:linear", "loss:categorical_crossentropy:from_logits",
      "optimizer:SGD", "api:Sequential"],
     lin_head(4),
     comp(lambda: keras.losses.CategoricalCrossentropy(from_logits=True), sgd(0.5)),
     dense_data(4, cat(4), n_pred=8, n_train=16), scenario=LOSS_SCEN + "; logits, one-hot labels")
case("loss_scce_from_logits",
     ["Dense", "Dense:tanh", "Dense:linear", "loss:sparse_categorical_crossentropy:from_logits",
      "optimizer:SGD", "api:Sequential"],
     lin_head(4),
     comp(lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True), sgd(0.5)),
     dense_data(4, spc(4), n_pred=8, n_train=19),
     scenario=LOSS_SCEN + "; logits, int32 class ids of shape (N,)")
case("loss_cce_label_smoothing",
     ["Dense", "Dense:tanh", "Dense:softmax", "loss:categorical_crossentropy:label_smoothing",
      "optimizer:SGD", "api:Sequential"],
     lin_head(4, "softmax"),
     comp(lambda: keras.losses.CategoricalCrossentropy(label_smoothing=0.1), sgd(0.5)),
     dense_data(4, cat(4), n_pred=8, n_train=16),
     scenario=LOSS_SCEN + "; label_smoothing=0.1: y = y * 0.9 + 0.1 / 4")
case("loss_bce_label_smoothing",
     ["Dense", "Dense:tanh", "Dense:sigmoid", "loss:binary_crossentropy:label_smoothing",
      "optimizer:SGD", "api:Sequential"],
     lin_head(2, "sigmoid"),
     comp(lambda: keras.losses.BinaryCrossentropy(label_smoothing=0.2), sgd(0.5)),
     dense_data(4, binary(2), n_pred=8, n_train=16),
     scenario=LOSS_SCEN + "; label_smoothing=0.2: y = y * 0.8 + 0.1")

case("metrics_accuracy",
     ["Dense", "Dense:relu", "Dense:softmax", "loss:categorical_crossentropy", "metric:accuracy",
      "optimizer:SGD", "fit:partial_last_batch", "api:Sequential"],
     seq((5,), lambda: L.Dense(8, activation="relu"), lambda: L.Dense(3, activation="softmax")),
     comp("categorical_crossentropy", sgd(0.3), metrics=["accuracy"]),
     dense_data(5, cat(3), n_train=29),
     metrics_keys=["accuracy"],
     scenario="metrics=['accuracy'] with one-hot labels (categorical accuracy); case.json "
              "'metrics' holds the per-epoch accuracy from history")
case("metrics_accuracy_sparse",
     ["Dense", "Dense:relu", "Dense:softmax", "loss:sparse_categorical_crossentropy",
      "metric:accuracy", "optimizer:Adam", "fit:partial_last_batch", "api:Sequential"],
     seq((5,), lambda: L.Dense(8, activation="relu"), lambda: L.Dense(3, activation="softmax")),
     comp("sparse_categorical_crossentropy", lambda: O.Adam(learning_rate=0.02),
          metrics=["accuracy"]),
     dense_data(5, spc(3), n_train=29),
     metrics_keys=["accuracy"],
     scenario="metrics=['accuracy'] with int32 labels (sparse categorical accuracy)")


# ================================================================= C. recurrent layers and masks

def keep_pattern(rng, n, t, kinds):
    """(n, t) bool: which steps are real. Row i follows kinds[i % len(kinds)]:
    "full" no padding; "end" trailing padding (2..t-1 real steps); "mid" two padded steps
    inside the sequence; "endmid" trailing padding (3..t-1 real steps) and one inner padded
    step; "first" only the first step is real."""
    keep = np.ones((n, t), bool)
    for i in range(n):
        k = kinds[i % len(kinds)]
        if k in ("end", "endmid"):
            keep[i, rng.integers(2 if k == "end" else 3, t):] = False
        if k in ("mid", "endmid"):
            last = int(np.max(np.nonzero(keep[i])[0]))
            pos = rng.choice(np.arange(1, last), size=min(2, last - 1) if k == "mid" else 1,
                             replace=False)
            keep[i, pos] = False
        if k == "first":
            keep[i, 1:] = False
    return keep


def masked_tokens(rng, n, t, vocab, kinds):
    """int32 ids in 1..vocab-1 with 0 (mask_zero padding) where keep_pattern says so."""
    return (rng.integers(1, vocab, (n, t)) * keep_pattern(rng, n, t, kinds)).astype(np.int32)


def masked_floats(rng, n, t, feat, kinds, scale=1.0):
    """N(0, scale) steps, with all-zero steps (Masking(mask_value=0.0)) where keep_pattern says so."""
    x = f32(rng, n, t, feat, scale=scale)
    return (x * keep_pattern(rng, n, t, kinds)[:, :, None]).astype(np.float32)


def seq_reg(t, k, scale=0.8):
    return lambda rng, n: f32(rng, n, t, k, scale=scale)


def seq_spc(t, k):
    return lambda rng, n: rng.integers(0, k, (n, t)).astype(np.int32)


def tok_data(vocab, t, kinds, ty, n_pred=10, n_train=24):
    def make(rng):
        return ([masked_tokens(rng, n_pred, t, vocab, kinds)], None,
                [masked_tokens(rng, n_train, t, vocab, kinds)], [ty(rng, n_train)])
    return make


def maskf_data(t, feat, kinds, ty, n_pred=10, n_train=24):
    def make(rng):
        return ([masked_floats(rng, n_pred, t, feat, kinds)], None,
                [masked_floats(rng, n_train, t, feat, kinds)], [ty(rng, n_train)])
    return make


def adam(lr=0.01):
    return lambda: keras.optimizers.Adam(learning_rate=lr)


TRAIL = ["end", "full", "end", "end"]           # trailing padding only
TRAIL_MID = ["end", "mid", "full", "endmid"]    # trailing and inner padding

# --- GRU
case("gru_reset_before",
     ["GRU", "GRU:reset_before", "Dense", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((6, 4), lambda: L.GRU(5, reset_after=False), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)),
     dense_data((6, 4), reg(2), n_pred=10, n_train=24),
     scenario="GRU(reset_after=False): bias (3u,), r is applied to h before the recurrent "
              "kernel: hh = tanh(x W_h + (r * h) U_h + b_h)")

case("gru_sequences_backwards",
     ["GRU", "GRU:reset_after", "GRU:return_sequences", "GRU:go_backwards", "Dense", "Dense:3d",
      "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((7, 3), lambda: L.GRU(4, return_sequences=True, go_backwards=True), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)),
     dense_data((7, 3), seq_reg(7, 2), n_pred=10, n_train=22),
     scenario="GRU(return_sequences=True, go_backwards=True) alone: reads the sequence from the "
              "last step and returns its outputs in processing order (output 0 belongs to input "
              "step T-1)")

case("gru_stacked_masked",
     ["Embedding", "Embedding:mask_zero", "GRU", "GRU:reset_after", "GRU:return_sequences",
      "GRU:stacked", "GRU:masked", "Dense", "loss:mse", "optimizer:Adam", "input:int32",
      "api:Sequential"],
     seq((7,), lambda: L.Embedding(12, 4, mask_zero=True),
         lambda: L.GRU(5, return_sequences=True), lambda: L.GRU(3), lambda: L.Dense(2),
         input_dtype="int32"),
     comp("mse", adam(0.01)),
     tok_data(12, 7, TRAIL_MID, reg(2)),
     scenario="Embedding(mask_zero) -> GRU(seq) -> GRU: the mask passes through the first GRU "
              "(which repeats its previous output on masked steps) to the second; padding at the "
              "end and inside sequences")

# --- free sequence length: Input((None, F)) / Input((None,)); predicted on one length, trained on another
def free_tok_data(vocab, t_pred, t_train, kinds, ty, n_pred=10, n_train=24):
    def make(rng):
        return ([masked_tokens(rng, n_pred, t_pred, vocab, kinds)], None,
                [masked_tokens(rng, n_train, t_train, vocab, kinds)], [ty(t_train)(rng, n_train)])
    return make


def free_maskf_data(t_pred, t_train, feat, kinds, ty, n_pred=10, n_train=24):
    def make(rng):
        return ([masked_floats(rng, n_pred, t_pred, feat, kinds)], None,
                [masked_floats(rng, n_train, t_train, feat, kinds)], [ty(t_train)(rng, n_train)])
    return make


case("free_masking_lstm",
     ["Input:free_steps", "Masking", "LSTM", "LSTM:return_sequences", "LSTM:masked", "Dense", "Dense:3d",
      "loss:mae", "optimizer:Adam", "api:Sequential"],
     seq((None, 3), lambda: L.Masking(0.0), lambda: L.LSTM(4, return_sequences=True), lambda: L.Dense(1)),
     comp("mae", adam(0.01)),
     free_maskf_data(9, 6, 3, TRAIL_MID, lambda t: seq_reg(t, 1)),
     scenario="Input((None, 3)): the library takes the number of steps with each call; predicted "
              "on sequences of 9 steps, trained on sequences of 6 (trailing and inner padding)")

case("free_embedding_bilstm_tagger",
     ["Input:free_steps", "Embedding", "Embedding:mask_zero", "Bidirectional", "Bidirectional:concat",
      "LSTM", "LSTM:return_sequences", "TimeDistributed", "Dense:softmax",
      "loss:sparse_categorical_crossentropy", "optimizer:Adam", "input:int32", "api:Sequential"],
     seq((None,), lambda: L.Embedding(15, 4, mask_zero=True),
         lambda: L.Bidirectional(L.LSTM(3, return_sequences=True)),
         lambda: L.TimeDistributed(L.Dense(3, activation="softmax")), input_dtype="int32"),
     comp("sparse_categorical_crossentropy", adam(0.01)),
     free_tok_data(15, 5, 8, TRAIL, lambda t: seq_spc(t, 3)),
     scenario="Input((None,)) token ids: a BiLSTM tagger predicted on 5 steps and trained on 8")

case("free_gru_last",
     ["Input:free_steps", "GRU", "GRU:reset_after", "Dense", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((None, 2), lambda: L.GRU(5), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)),
     lambda rng: ([f32(rng, 10, 4, 2)], None, [f32(rng, 24, 11, 2)], [reg(2)(rng, 24)]),
     scenario="Input((None, 2)) without a mask: GRU's last output, predicted on 4 steps, trained on 11")


# --- SimpleRNN
case("simple_rnn_relu_sequences",
     ["SimpleRNN", "SimpleRNN:relu", "SimpleRNN:return_sequences", "Dense", "Dense:3d",
      "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((6, 3), lambda: L.SimpleRNN(5, activation="relu", return_sequences=True),
         lambda: L.Dense(3)),
     comp("mse", sgd(0.05)),
     dense_data((6, 3), seq_reg(6, 3), n_pred=10, n_train=24),
     scenario="SimpleRNN(activation='relu', return_sequences=True) followed by a Dense on every step")

case("simple_rnn_masked",
     ["Masking", "SimpleRNN", "SimpleRNN:masked", "Dense", "loss:mse", "optimizer:SGD",
      "api:Sequential"],
     seq((7, 3), lambda: L.Masking(0.0), lambda: L.SimpleRNN(4), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)),
     maskf_data(7, 3, ["end", "mid", "full", "mid", "end", "endmid"], reg(2), n_train=26),
     scenario="Masking(0.0) -> SimpleRNN (last output): all-zero steps at the end of some rows and "
              "in the middle of others keep the state unchanged")

# --- LSTM
case("lstm_go_backwards",
     ["LSTM", "LSTM:go_backwards", "Dense", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((6, 3), lambda: L.LSTM(5, go_backwards=True), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)),
     dense_data((6, 3), reg(2), n_pred=10, n_train=24),
     scenario="LSTM(go_backwards=True): the last output is the state after reading input step 0")

case("lstm_backwards_sequences",
     ["LSTM", "LSTM:go_backwards", "LSTM:return_sequences", "Dense", "Dense:3d", "loss:mse",
      "optimizer:SGD", "api:Sequential"],
     seq((5, 3), lambda: L.LSTM(4, return_sequences=True, go_backwards=True), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)),
     dense_data((5, 3), seq_reg(5, 2), n_pred=10, n_train=21),
     scenario="LSTM(return_sequences=True, go_backwards=True) alone returns its outputs in reversed "
              "order (not flipped back)")

case("lstm_no_bias",
     ["LSTM", "LSTM:no_bias", "Dense", "loss:mse", "optimizer:Adam", "api:Sequential"],
     seq((6, 4), lambda: L.LSTM(5, use_bias=False), lambda: L.Dense(2)),
     comp("mse", adam(0.01)),
     dense_data((6, 4), reg(2), n_pred=10, n_train=24),
     scenario="LSTM(use_bias=False): only kernel and recurrent_kernel in get_weights()")

case("lstm_hard_sigmoid",
     ["LSTM", "LSTM:hard_sigmoid", "Dense", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((6, 3), lambda: L.LSTM(4, recurrent_activation="hard_sigmoid"), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)),
     dense_data((6, 3), reg(2), n_pred=10, n_train=24, xscale=2.5),
     scenario="LSTM(recurrent_activation='hard_sigmoid'): Keras 3 hard_sigmoid is relu6(x + 3) / 6; "
              "inputs scaled by 2.5 so some gate pre-activations saturate")

case("lstm_masked_last",
     ["Embedding", "Embedding:mask_zero", "LSTM", "LSTM:masked", "Dense", "loss:mse",
      "optimizer:SGD", "input:int32", "api:Sequential"],
     seq((7,), lambda: L.Embedding(15, 4, mask_zero=True), lambda: L.LSTM(5), lambda: L.Dense(2),
         input_dtype="int32"),
     comp("mse", sgd(0.1)),
     tok_data(15, 7, ["end", "full", "first", "end", "end", "full", "end", "end"], reg(2)),
     scenario="Embedding(mask_zero) -> LSTM (last output): rows with trailing padding of several "
              "lengths and, in every batch, one row whose only real token is the first; the "
              "output is the one at the last unmasked step")

# --- Cropping1D (Keras drops the mask: Cropping1D has no compute_mask, so the loss sees every kept step)
case("cropping1d",
     ["Dense", "Dense:3d", "Cropping1D", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((7, 3), lambda: L.Dense(4), lambda: L.Cropping1D((2, 1))),
     comp("mse", sgd(0.1)),
     dense_data((7, 3), seq_reg(4, 4), n_pred=10, n_train=22),
     scenario="Dense on every step, then Cropping1D((2, 1)): steps 2..5 of 7 remain; the gradient "
              "reaches the Dense only through the kept steps")

case("cropping1d_int_first",
     ["Cropping1D", "Cropping1D:int", "LSTM", "LSTM:return_sequences", "Dense", "Dense:3d",
      "loss:mse", "optimizer:Adam", "api:Sequential"],
     seq((6, 2), lambda: L.Cropping1D(1), lambda: L.LSTM(3, return_sequences=True), lambda: L.Dense(2)),
     comp("mse", adam(0.01)),
     dense_data((6, 2), seq_reg(4, 2), n_pred=10, n_train=24),
     scenario="Cropping1D(1) on the input (one step off each end), then LSTM(seq) and Dense")

case("masking_lstm_cropping1d",
     ["Masking", "LSTM", "LSTM:return_sequences", "LSTM:masked", "Cropping1D", "Cropping1D:drops_mask",
      "loss:mae", "optimizer:Adam", "api:Sequential"],
     seq((8, 3), lambda: L.Masking(0.0), lambda: L.LSTM(4, return_sequences=True),
         lambda: L.Cropping1D((3, 0))),
     comp("mae", adam(0.01)),
     maskf_data(8, 3, TRAIL_MID, seq_reg(5, 4), n_train=26),
     scenario="Masking(0.0) -> LSTM(return_sequences) -> Cropping1D((3, 0)) on padded sequences "
              "(trailing and inner padding): the LSTM keeps its state and repeats its output on "
              "masked steps; Cropping1D drops the mask as Keras does, so the loss counts every "
              "kept step, padded ones included")

# --- Bidirectional
case("bidir_gru_concat",
     ["Bidirectional", "Bidirectional:concat", "GRU", "GRU:reset_after", "Dense", "loss:mse",
      "optimizer:SGD", "api:Sequential"],
     seq((6, 3), lambda: L.Bidirectional(L.GRU(4)), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)),
     dense_data((6, 3), reg(2), n_pred=10, n_train=24),
     scenario="Bidirectional(GRU(4)) concat of the two last outputs: [forward, backward]")

case("bidir_masked_concat_seq",
     ["Embedding", "Embedding:mask_zero", "Bidirectional", "Bidirectional:concat",
      "Bidirectional:masked", "LSTM", "LSTM:return_sequences", "LSTM:masked", "TimeDistributed",
      "TimeDistributed:Dense", "loss:mse", "loss:masked", "optimizer:SGD", "input:int32",
      "api:Sequential"],
     seq((6,), lambda: L.Embedding(12, 4, mask_zero=True),
         lambda: L.Bidirectional(L.LSTM(4, return_sequences=True)),
         lambda: L.TimeDistributed(L.Dense(2)), input_dtype="int32"),
     comp("mse", sgd(0.1)),
     tok_data(12, 6, TRAIL_MID, seq_reg(6, 2)),
     scenario="Embedding(mask_zero) -> Bidirectional(LSTM(seq)) concat -> TimeDistributed(Dense): "
              "zeros on masked steps from both directions, the mask reaches the loss")

case("bidir_masked_last_sum",
     ["Embedding", "Embedding:mask_zero", "Bidirectional", "Bidirectional:sum",
      "Bidirectional:masked", "LSTM", "LSTM:masked", "Dense", "loss:mse", "optimizer:SGD",
      "input:int32", "api:Sequential"],
     seq((7,), lambda: L.Embedding(12, 4, mask_zero=True),
         lambda: L.Bidirectional(L.LSTM(4), merge_mode="sum"), lambda: L.Dense(2),
         input_dtype="int32"),
     comp("mse", sgd(0.1)),
     tok_data(12, 7, TRAIL, reg(2)),
     scenario="Bidirectional(LSTM, merge_mode='sum', last output) with trailing padding: forward "
              "gives its output at the last real step, backward (padding first) its output after "
              "reading step 0")

case("bidir_masked_ave_seq",
     ["Embedding", "Embedding:mask_zero", "Bidirectional", "Bidirectional:ave",
      "Bidirectional:masked", "LSTM", "LSTM:return_sequences", "LSTM:masked", "Dense",
      "Dense:3d", "loss:mse", "loss:masked", "optimizer:Adam", "input:int32", "api:Sequential"],
     seq((6,), lambda: L.Embedding(10, 3, mask_zero=True),
         lambda: L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode="ave"),
         lambda: L.Dense(2), input_dtype="int32"),
     comp("mse", adam(0.01)),
     tok_data(10, 6, TRAIL_MID, seq_reg(6, 2)),
     scenario="Bidirectional(LSTM(seq), merge_mode='ave') on a masked sequence, masked mse loss")

case("bidir_masked_mul_seq",
     ["Embedding", "Embedding:mask_zero", "Bidirectional", "Bidirectional:mul",
      "Bidirectional:masked", "GRU", "GRU:reset_after", "GRU:return_sequences", "GRU:masked",
      "Dense", "Dense:3d", "loss:mse", "loss:masked", "optimizer:SGD", "input:int32",
      "api:Sequential"],
     seq((6,), lambda: L.Embedding(10, 3, mask_zero=True),
         lambda: L.Bidirectional(L.GRU(4, return_sequences=True), merge_mode="mul"),
         lambda: L.Dense(2), input_dtype="int32"),
     comp("mse", sgd(0.1)),
     tok_data(10, 6, TRAIL_MID, seq_reg(6, 2)),
     scenario="Bidirectional(GRU(seq), merge_mode='mul') on a masked sequence, masked mse loss")

# --- TimeDistributed
case("td_dense_after_lstm_masked",
     ["Embedding", "Embedding:mask_zero", "LSTM", "LSTM:return_sequences", "LSTM:masked",
      "TimeDistributed", "TimeDistributed:Dense", "Dense:softmax",
      "loss:sparse_categorical_crossentropy", "loss:masked", "optimizer:Adam", "input:int32",
      "api:Sequential"],
     seq((7,), lambda: L.Embedding(14, 4, mask_zero=True), lambda: L.LSTM(5, return_sequences=True),
         lambda: L.TimeDistributed(L.Dense(3, activation="softmax")), input_dtype="int32"),
     comp("sparse_categorical_crossentropy", adam(0.02)),
     tok_data(14, 7, TRAIL_MID, seq_spc(7, 3), n_train=26),
     scenario="a sequence tagger: int32 labels of shape (N, T); the loss averages over unmasked "
              "steps only")

case("td_conv_pool_flatten_gru",
     ["TimeDistributed", "TimeDistributed:Conv2D", "TimeDistributed:MaxPooling2D",
      "TimeDistributed:Flatten", "Conv2D:relu", "GRU", "GRU:reset_after", "Dense:softmax",
      "loss:categorical_crossentropy", "optimizer:SGD", "api:Sequential"],
     seq((5, 6, 6, 1), lambda: L.TimeDistributed(L.Conv2D(3, 3, activation="relu")),
         lambda: L.TimeDistributed(L.MaxPooling2D(2)), lambda: L.TimeDistributed(L.Flatten()),
         lambda: L.GRU(4), lambda: L.Dense(3, activation="softmax")),
     comp("categorical_crossentropy", sgd(0.1)),
     dense_data((5, 6, 6, 1), cat(3), n_pred=8, n_train=20),
     scenario="5 frames of 6x6: per-frame Conv2D(3, 3) -> MaxPooling2D(2) -> Flatten (12) -> GRU")

case("td_cnn_lstm_runtime_kernels",
     ["TimeDistributed", "TimeDistributed:Conv2D", "TimeDistributed:MaxPooling2D",
      "TimeDistributed:Flatten", "Conv2D:relu", "LSTM", "Dense:softmax",
      "loss:categorical_crossentropy", "optimizer:Adam", "api:Sequential"],
     seq((4, 10, 7, 1), lambda: L.TimeDistributed(L.Conv2D(16, 3, activation="relu")),
         lambda: L.TimeDistributed(L.Conv2D(32, 3, activation="relu")),
         lambda: L.TimeDistributed(L.MaxPooling2D(2)), lambda: L.TimeDistributed(L.Flatten()),
         lambda: L.LSTM(5), lambda: L.Dense(3, activation="softmax")),
     comp("categorical_crossentropy", lambda: keras.optimizers.Adam(learning_rate=0.01)),
     dense_data((4, 10, 7, 1), cat(3), n_pred=8, n_train=20),
     scenario="the CNN-LSTM seed workload in small: 4 tiles of 10x7, Conv2D(16) -> Conv2D(32) "
              "(Winograd on 8x5 -> 6x3 maps; direct filter gradients) -> MaxPooling2D -> LSTM")

case("td_cnn_lstm_tiles_same",
     ["TimeDistributed", "TimeDistributed:Conv2D", "TimeDistributed:MaxPooling2D",
      "TimeDistributed:Flatten", "Conv2D:same", "Conv2D:relu", "LSTM", "Dense:relu", "Dense:softmax",
      "loss:sparse_categorical_crossentropy", "optimizer:Adam", "api:Sequential"],
     seq((4, 4, 4, 1), lambda: L.TimeDistributed(L.Conv2D(4, 3, padding="same", activation="relu")),
         lambda: L.TimeDistributed(L.Conv2D(8, 3, padding="same", activation="relu")),
         lambda: L.TimeDistributed(L.MaxPooling2D(2)), lambda: L.TimeDistributed(L.Flatten()),
         lambda: L.LSTM(6), lambda: L.Dense(8, activation="relu"), lambda: L.Dense(10, activation="softmax")),
     comp("sparse_categorical_crossentropy", adam(0.01)),
     dense_data((4, 4, 4, 1), spc(10), n_pred=8, n_train=20),
     scenario="samples/cnn-lstm's model in small (without its Dropout): the four 4x4 quadrants of an 8x8 "
              "digit, 'same' 3x3 convolutions on each, 2x2 pooling, LSTM, Dense, Dense(10, softmax)")


# --- Functional
def build_functional_masking_lstm():
    x = keras.Input((6, 3))
    h = L.Masking(0.0)(x)
    h = L.LSTM(4, return_sequences=True)(h)
    return keras.Model(x, L.Dense(2)(h))


case("functional_masking_lstm",
     ["Masking", "LSTM", "LSTM:return_sequences", "LSTM:masked", "Dense", "Dense:3d", "loss:mse",
      "loss:masked", "optimizer:SGD", "api:Functional"],
     build_functional_masking_lstm, comp("mse", sgd(0.1)),
     maskf_data(6, 3, TRAIL_MID, seq_reg(6, 2)),
     scenario="Functional Input -> Masking -> LSTM(seq) -> Dense: the mask travels as graph ops to "
              "the LSTM, the Dense and the loss")


def build_functional_bidir_tagger():
    x = keras.Input((7,), dtype="int32")
    h = L.Embedding(13, 4, mask_zero=True)(x)
    h = L.Bidirectional(L.GRU(4, return_sequences=True), merge_mode="concat")(h)
    return keras.Model(x, L.Dense(3, activation="softmax")(h))


case("functional_bidir_tagger",
     ["Embedding", "Embedding:mask_zero", "Bidirectional", "Bidirectional:concat",
      "Bidirectional:masked", "GRU", "GRU:reset_after", "GRU:return_sequences", "GRU:masked",
      "Dense", "Dense:3d", "Dense:softmax", "loss:sparse_categorical_crossentropy", "loss:masked",
      "optimizer:Adam", "input:int32", "api:Functional"],
     build_functional_bidir_tagger, comp("sparse_categorical_crossentropy", adam(0.02)),
     tok_data(13, 7, TRAIL_MID, seq_spc(7, 3), n_train=26),
     scenario="a Functional bidirectional tagger: tokens -> Embedding(mask_zero) -> "
              "Bidirectional(GRU(seq)) -> Dense(softmax), int32 (N, T) labels, masked loss")


def build_two_lstm_branches():
    a = keras.Input((6, 3), name="a")
    b = keras.Input((5, 2), name="b")
    ha = L.LSTM(4)(a)
    hb = L.LSTM(3)(b)
    return keras.Model([a, b], L.Dense(2)(L.Concatenate()([ha, hb])))


def two_seq_data(rng):
    x = [f32(rng, 10, 6, 3), f32(rng, 10, 5, 2)]
    tx = [f32(rng, 22, 6, 3), f32(rng, 22, 5, 2)]
    return x, None, tx, [f32(rng, 22, 2, scale=0.8)]


case("functional_two_lstm_branches_concat",
     ["LSTM", "Concatenate", "Dense", "input:multiple", "loss:mse", "optimizer:SGD",
      "api:Functional"],
     build_two_lstm_branches, comp("mse", sgd(0.1)), two_seq_data,
     scenario="two sequence inputs of different lengths, an LSTM each, Concatenate, Dense")


# --- return_state: a recurrent layer's final states as further outputs
def build_lstm_return_state():
    x = keras.Input((6, 3))
    m = L.Masking(0.0)(x)
    out, h, c = L.LSTM(5, return_state=True)(m)
    return keras.Model(x, L.Dense(2)(L.Concatenate()([out, c])))


case("lstm_return_state_masked",
     ["LSTM", "LSTM:return_state", "LSTM:masked", "Masking", "Concatenate", "Dense", "loss:mse",
      "optimizer:Adam", "api:Functional"],
     build_lstm_return_state, comp("mse", adam(0.01)),
     maskf_data(6, 3, TRAIL_MID, reg(2)),
     scenario="LSTM(return_state=True) -> [output, h, c]; the output and the cell state c feed a "
              "Dense; masked steps (trailing and inner) keep the state, so c is the state after the "
              "last real step")


def build_gru_states_as_outputs():
    x = keras.Input((7, 3))
    seq, h = L.GRU(4, return_sequences=True, return_state=True, go_backwards=True, name="gru")(x)
    return keras.Model(x, [L.Dense(2, name="per_step")(seq), h])


case("gru_return_state_outputs",
     ["GRU", "GRU:reset_after", "GRU:return_state", "GRU:return_sequences", "GRU:go_backwards", "Dense",
      "Dense:3d", "output:multiple", "loss:list", "loss:mse", "optimizer:SGD", "api:Functional"],
     build_gru_states_as_outputs, comp(["mse", "mse"], sgd(0.1)),
     lambda rng: ([f32(rng, 10, 7, 3)], None, [f32(rng, 22, 7, 3)],
                  [f32(rng, 22, 7, 2, scale=0.8), f32(rng, 22, 4, scale=0.5)]),
     scenario="GRU(return_sequences, return_state, go_backwards): the final state h is a model output "
              "of its own with a loss; the sequence feeds a Dense")


def build_bidir_return_state():
    x = keras.Input((6,), dtype="int32")
    e = L.Embedding(11, 4, mask_zero=True)(x)
    out, fh, fc, bh, bc = L.Bidirectional(L.LSTM(3, return_state=True), merge_mode="sum")(e)
    return keras.Model(x, L.Dense(2)(L.Concatenate()([out, fc, bh])))


case("bidir_lstm_return_state_masked",
     ["Bidirectional", "Bidirectional:sum", "Bidirectional:return_state", "LSTM", "LSTM:return_state",
      "LSTM:masked", "Embedding", "Embedding:mask_zero", "Concatenate", "Dense", "loss:mse",
      "optimizer:Adam", "input:int32", "api:Functional"],
     build_bidir_return_state, comp("mse", adam(0.01)),
     tok_data(11, 6, TRAIL_MID, reg(2)),
     scenario="Bidirectional(LSTM(return_state=True)) -> [output, forward h, forward c, backward h, "
              "backward c]; the merged output, the forward c and the backward h feed a Dense")


# ================================================================= D. CRF (python/kiln_crf)

def crf_loss():
    # By the layer's name, as a loaded model's loss knows it (the CRF layers are named "crf").
    return kiln_crf.CRFLoss("crf")


def with_empty_rows(data, rows):
    """data's token arrays with the given rows all padding (a sequence with no real step)."""
    def make(rng):
        x, p, tx, ty = data(rng)
        for a in x + tx:
            a[[r for r in rows if r < len(a)]] = 0
        return x, p, tx, ty
    return make


CRF_COVERS = ["CRF", "loss:CRFLoss", "output:int32"]

case("crf_embedding_td_dense",
     ["Embedding", "Embedding:mask_zero", "TimeDistributed", "TimeDistributed:Dense"] + CRF_COVERS
     + ["CRF:masked", "CRF:empty_sequence", "optimizer:SGD", "input:int32", "api:Sequential"],
     seq((7,), lambda: L.Embedding(14, 5, mask_zero=True), lambda: L.TimeDistributed(L.Dense(4)),
         lambda: kiln_crf.CRF(name="crf"), input_dtype="int32"),
     comp(crf_loss, sgd(0.1)),
     with_empty_rows(tok_data(14, 7, TRAIL_MID, seq_spc(7, 4), n_train=26), rows=[3, 13]),
     scenario="Embedding(mask_zero) -> TimeDistributed(Dense(4)) -> CRF: predict is the Viterbi "
              "path (int32, 0 on padding); fit minimises the mean NLL. Padding at the end and inside "
              "sequences (the chain skips it); rows 3 and 13 are all padding (NLL 0, path all 0); "
              "tags at padded steps are random and must be ignored")

case("crf_bilstm_tagger",
     ["Embedding", "Embedding:mask_zero", "Bidirectional", "Bidirectional:concat",
      "Bidirectional:masked", "LSTM", "LSTM:return_sequences", "LSTM:masked", "TimeDistributed",
      "TimeDistributed:Dense"] + CRF_COVERS
     + ["CRF:masked", "optimizer:Adam", "input:int32", "api:Sequential"],
     seq((8,), lambda: L.Embedding(15, 6, mask_zero=True),
         lambda: L.Bidirectional(L.LSTM(5, return_sequences=True)),
         lambda: L.TimeDistributed(L.Dense(4)), lambda: kiln_crf.CRF(name="crf"),
         input_dtype="int32"),
     comp(crf_loss, adam(0.01)),
     tok_data(15, 8, TRAIL_MID, seq_spc(8, 4), n_train=26),
     scenario="the BiLSTM-CRF tagger: Embedding(mask_zero) -> Bidirectional(LSTM(seq)) -> "
              "TimeDistributed(Dense(4)) -> CRF, padded sequences (trailing and inner padding)")


def build_crf_dense_functional():
    x = keras.Input((6, 3))
    h = L.Dense(5, activation="tanh")(x)
    return keras.Model(x, kiln_crf.CRF(name="crf")(L.Dense(3)(h)))


case("crf_dense_no_mask",
     ["Dense", "Dense:3d", "Dense:tanh"] + CRF_COVERS + ["optimizer:SGD", "api:Functional"],
     build_crf_dense_functional, comp(crf_loss, sgd(0.1)),
     lambda rng: ([f32(rng, 10, 6, 3)], None, [f32(rng, 22, 6, 3)], [seq_spc(6, 3)(rng, 22)]),
     scenario="a Functional model without a mask: Dense(tanh) -> Dense(3) -> CRF, every step real")

case("crf_free_steps_frozen_embedding_gru",
     ["Input:free_steps", "Embedding", "Embedding:mask_zero", "Embedding:trainable_false", "GRU",
      "GRU:reset_after", "GRU:return_sequences", "GRU:masked", "Dense", "Dense:3d"] + CRF_COVERS
     + ["CRF:masked", "optimizer:Adam", "input:int32", "api:Sequential"],
     seq((None,), lambda: L.Embedding(13, 4, mask_zero=True, trainable=False),
         lambda: L.GRU(5, return_sequences=True), lambda: L.Dense(3),
         lambda: kiln_crf.CRF(name="crf"), input_dtype="int32"),
     comp(crf_loss, adam(0.02)),
     free_tok_data(13, 5, 9, TRAIL_MID, lambda t: seq_spc(t, 3)),
     scenario="Input((None,)) token ids through a frozen Embedding(mask_zero) -> GRU(seq) -> Dense(3) "
              "-> CRF: predicted on 5 steps, trained on 9")


# ---------------------------------------------------------------- case sets of their own files

# tools/case_sets/*.py (one per group of layers) define more cases with the helpers above
# (case, seq, comp, f32, reg, ...): each is run in this module's namespace, in name order.
for _path in sorted(os.listdir(os.path.join(ROOT, "tools", "case_sets"))):
    if _path.endswith(".py"):
        _path = os.path.join(ROOT, "tools", "case_sets", _path)
        exec(compile(open(_path).read(), _path, "exec"))


# ---------------------------------------------------------------- weights

def randomize(model, rng, wscale):
    vals = []
    for v in model.weights:
        shape = tuple(v.shape)
        path = v.path
        if path.endswith("embeddings"):
            a = rng.uniform(-1.0, 1.0, shape)
        elif path.endswith("alpha"):          # PReLU
            a = rng.uniform(0.05, 0.4, shape)
        elif path.endswith("moving_variance"):   # BatchNormalization: a variance is positive
            a = rng.uniform(0.5, 1.5, shape)
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[:-1]))
            lim = np.sqrt(3.0 / fan_in) * wscale
            a = rng.uniform(-lim, lim, shape)
        else:
            a = rng.uniform(-0.4, 0.4, shape) * wscale
        vals.append(a.astype(np.float32))
    # get_weights() order equals model.weights order
    model.set_weights(vals)


def save_arrays(dirname, arrays):
    os.makedirs(dirname, exist_ok=True)
    for i, a in enumerate(arrays):
        np.save(os.path.join(dirname, "%03d.npy" % i), a)


def as_list(p):
    return list(p) if isinstance(p, (list, tuple)) else [p]


# ---------------------------------------------------------------- legacy files

# save=...: which files a case's model is given as (case.json "model" and "compile_args").
#   "h5"              model.h5 (Keras' legacy HDF5 model.save)
#   "weights.h5"      model.keras with other weights + model.weights.h5 (model.save_weights)
#   "legacy_weights"  model.keras with other weights + weights.h5 (the legacy weight-only .h5 that
#                     tf.keras' save_weights("w.h5") writes; Keras 3 reads it with load_weights)
#   "h5+weights.h5"   model.h5 with other weights + model.weights.h5
SAVE_FORMATS = {
    "h5": ("model.h5", None),
    "weights.h5": ("model.keras", "model.weights.h5"),
    "legacy_weights": ("model.keras", "weights.h5"),
    "h5+weights.h5": ("model.h5", "model.weights.h5"),
}


def pre_save_model(model, d, fmt):
    """The model file of a weights-file case, with the weights the model was built with."""
    model_file, weights_file = SAVE_FORMATS[fmt]
    if weights_file:
        model.save(os.path.join(d, model_file))


def save_model(model, d, fmt):
    """Saves the case's model; returns the case.json keys that say how (None: model.keras)."""
    if not fmt:
        model.save(os.path.join(d, "model.keras"))
        return None
    model_file, weights_file = SAVE_FORMATS[fmt]
    if not weights_file:
        model.save(os.path.join(d, model_file))
        return {"model": model_file}
    if weights_file == "weights.h5":
        import h5py
        from keras.src.legacy.saving import legacy_h5_format
        with h5py.File(os.path.join(d, weights_file), "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, model)
    else:
        model.save_weights(os.path.join(d, weights_file))
    return {"model": model_file, "compile_args": ["--weights", weights_file]}


def check_saved(d, saved, x, pred):
    """Keras itself must read the files back to the same predictions."""
    m = keras.saving.load_model(os.path.join(d, saved["model"]), compile=False)
    if saved.get("compile_args"):
        m.load_weights(os.path.join(d, saved["compile_args"][1]))
    again = as_list(m.predict(x if len(x) > 1 else x[0], verbose=0))
    for a, b in zip(again, pred):
        assert np.array_equal(np.asarray(a), np.asarray(b)), "Keras reads %s back differently" % saved


# ---------------------------------------------------------------- float32 pass

def make_case(c):
    d = os.path.join(CASES_DIR, c.name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    keras.backend.clear_session()
    seed = seed_of(c.name)
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = c.build()
    if c.save:   # the model file keeps the built weights; the case's weights go to the weights file
        model.compile(**c.compile_args())
        pre_save_model(model, d, c.save)
    randomize(model, rng, c.wscale)
    x, _, tx, ty = c.data(rng)
    model.compile(**c.compile_args())
    saved = save_model(model, d, c.save)
    w0 = model.get_weights()
    save_arrays(os.path.join(d, "weights"), w0)
    names_x = []
    for i, a in enumerate(x):
        np.save(os.path.join(d, "x%d.npy" % i), a)
        names_x.append("x%d.npy" % i)
    pred = as_list(model.predict(x if len(x) > 1 else x[0], verbose=0))
    names_p = []
    for i, p in enumerate(pred):
        np.save(os.path.join(d, "p%d.npy" % i), np.asarray(p))
        names_p.append("p%d.npy" % i)
    info = {"name": c.name, "covers": list(c.covers)}
    if saved:
        info.update(saved)
        check_saved(d, saved, x, pred)
    if c.scenario:
        info["seed_scenario"] = c.scenario
    info.update({"inputs": names_x, "predict": names_p})
    train = None
    extra = None
    if c.train:
        for i, a in enumerate(tx):
            np.save(os.path.join(d, "train_x%d.npy" % i), a)
        for i, a in enumerate(ty):
            np.save(os.path.join(d, "train_y%d.npy" % i), a)
        n = len(tx[0])
        if n % c.batch_size and "fit:partial_last_batch" not in info["covers"]:
            info["covers"].insert(len(info["covers"]) - 1, "fit:partial_last_batch")
        h = model.fit(tx if len(tx) > 1 else tx[0], ty if len(ty) > 1 else ty[0],
                      epochs=c.epochs, batch_size=c.batch_size, shuffle=False, verbose=0)
        save_arrays(os.path.join(d, "weights_after"), model.get_weights())
        train = {"x": ["train_x%d.npy" % i for i in range(len(tx))],
                 "y": ["train_y%d.npy" % i for i in range(len(ty))],
                 "epochs": c.epochs, "batch_size": c.batch_size, "shuffle": False,
                 "loss": [float(v) for v in h.history["loss"]],
                 "weights_after": "weights_after"}
        if c.metrics_keys:
            extra = {k: [float(v) for v in h.history[k]] for k in c.metrics_keys}
    info["train"] = train
    if extra:
        info["metrics"] = extra
    return info


# ---------------------------------------------------------------- float64 worker

def check_f64_trace(model, x):
    """Fail unless the forward pass and its gradient trace without any float32 value."""
    import jax
    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]

    def f(tv):
        xin = x if len(x) > 1 else x[0]
        out, _ = model.stateless_call(tv, ntv, xin)
        outs = [o for o in as_list(out) if "float" in str(o.dtype)]
        if not outs:   # integer outputs only (a CRF's tags): add the training form's floats
            out, _ = model.stateless_call(tv, ntv, xin, training=True)
            outs = as_list(out)
        return sum(keras.ops.sum(o) for o in outs)

    jaxpr = str(jax.make_jaxpr(jax.value_and_grad(f))(tv))
    assert "f32" not in jaxpr, "float32 values in the float64 trace"


def f64_worker(names, out_dir):
    by_name = {c.name: c for c in CASES}
    for name in names:
        c = by_name[name]
        d = os.path.join(CASES_DIR, name)
        try:
            with open(os.path.join(d, "pending.json")) as f:
                info = json.load(f)

            def ld(fn):
                a = np.load(os.path.join(d, fn))
                return a.astype(np.float64) if a.dtype.kind == "f" else a

            keras.backend.clear_session()
            keras.utils.set_random_seed(seed_of(name))
            model = c.build()
            wdir = os.path.join(d, "weights")
            w = [np.load(os.path.join(wdir, f)).astype(np.float64) for f in sorted(os.listdir(wdir))]
            model.set_weights(w)
            for v in model.weights:
                assert "float64" in str(v.dtype), "%s is %s" % (v.path, v.dtype)
            model.compile(**c.compile_args())
            x = [ld(f) for f in info["inputs"]]
            check_f64_trace(model, x)
            pred = as_list(model.predict(x if len(x) > 1 else x[0], verbose=0))
            res = {"p%d" % i: np.asarray(p) for i, p in enumerate(pred)}
            t = info.get("train")
            if t:
                tx = [ld(f) for f in t["x"]]
                ty = [ld(f) for f in t["y"]]
                h = model.fit(tx if len(tx) > 1 else tx[0], ty if len(ty) > 1 else ty[0],
                              epochs=t["epochs"], batch_size=t["batch_size"], shuffle=False,
                              verbose=0)
                for i, a in enumerate(model.get_weights()):
                    res["w%03d" % i] = a
                res["loss"] = np.array(h.history["loss"], np.float64)
                for v in model.optimizer.variables:
                    assert "float32" not in str(v.dtype), "optimizer %s is %s" % (v.path, v.dtype)
            for k, a in res.items():
                if a.dtype.kind == "f":
                    assert a.dtype == np.float64, "%s computed in %s" % (k, a.dtype)
            np.savez(os.path.join(out_dir, name + ".npz"), **res)
        except Exception as e:  # noqa: BLE001
            with open(os.path.join(out_dir, name + ".err"), "w") as f:
                f.write("%s: %s" % (type(e).__name__, e))
        print("f64 %s" % name, flush=True)


# ---------------------------------------------------------------- tolerances

def ladder_step(pairs, floor):
    """Smallest atol on the 1-2-5 ladder (rtol = 10 atol, atol >= floor) such that
    10 * |want - ref| <= atol + rtol * |want| for every value."""
    need = 0.0
    for want, ref in pairs:
        want = np.asarray(want, np.float64).ravel()
        ref = np.asarray(ref, np.float64).ravel()
        if want.shape != ref.shape:
            raise ValueError("shape mismatch %s vs %s" % (want.shape, ref.shape))
        if not (np.all(np.isfinite(want)) and np.all(np.isfinite(ref))):
            raise ValueError("non-finite values")
        if want.size:
            need = max(need, float(np.max(10.0 * np.abs(want - ref) / (1.0 + 10.0 * np.abs(want)))))
    for step in LADDER:
        if step >= floor * (1 - 1e-9) and step >= need * (1 - 1e-12):
            return step, need
    raise ValueError("float32 error too large (needs atol %.3g)" % need)


def finish(info, res_path, err_path, notes):
    d = os.path.join(CASES_DIR, info["name"])
    pa, pr = PRED_FLOOR, 10 * PRED_FLOOR
    ta, tr = TRAIN_FLOOR, 10 * TRAIN_FLOOR
    why = None
    if os.path.isfile(res_path):
        r = np.load(res_path)
        try:
            pairs = [(np.load(os.path.join(d, p)), r["p%d" % i]) for i, p in enumerate(info["predict"])]
            pa, need_p = ladder_step(pairs, PRED_FLOOR)
            pr = 10 * pa
            msg = "predict err %.2g -> atol %g" % (need_p / 10, pa)
            t = info["train"]
            if t:
                wd = os.path.join(d, t["weights_after"])
                wf = sorted(os.listdir(wd))
                pairs = [(np.load(os.path.join(wd, f)), r["w%03d" % i]) for i, f in enumerate(wf)]
                pairs.append((np.array(t["loss"]), r["loss"]))
                ta, need_t = ladder_step(pairs, TRAIN_FLOOR)
                tr = 10 * ta
                msg += "; train err %.2g -> atol %g" % (need_t / 10, ta)
            print("  %-34s %s" % (info["name"], msg))
        except Exception as e:  # noqa: BLE001
            why = "%s: %s" % (type(e).__name__, e)
    else:
        why = open(err_path).read() if os.path.isfile(err_path) else "float64 worker wrote nothing"
    if why:
        notes.append("%s: floors used (%s)" % (info["name"], why))
        print("  %-34s FLOORS (%s)" % (info["name"], why))
    out = {}
    for k, v in info.items():
        if k == "train":
            out["rtol"], out["atol"] = pr, pa
            if v:
                v = dict(v)
                v["rtol"], v["atol"] = tr, ta
        out[k] = v
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    os.remove(os.path.join(d, "pending.json"))


# ---------------------------------------------------------------- invalid model

def make_invalid():
    """The classic mistake: Reshape((56*14,)) after convs that leave (26, 5, 32).
    Keras refuses to build it, so save a valid model (Reshape((4160,))) and rewrite
    target_shape in config.json to (784,), keeping the weights file."""
    d = os.path.join(INVALID_DIR, "reshape_mismatch")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed_of("reshape_mismatch"))
    model = keras.Sequential([keras.Input((56, 14, 1)), L.Conv2D(32, 3, activation="relu"),
                              L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
                              L.Reshape((26 * 5 * 32,), name="reshape"), L.Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    tmp = os.path.join(d, "valid.keras")
    model.save(tmp)
    # Keras itself must refuse the edited shape
    try:
        keras.Sequential([keras.Input((56, 14, 1)), L.Conv2D(32, 3), L.Conv2D(32, 3),
                          L.MaxPooling2D(2), L.Reshape((56 * 14,))])
        keras_msg = None
    except ValueError as e:
        lines = [ln for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(e)).splitlines() if ln.strip()]
        keras_msg = next((ln for ln in lines if "total size" in ln), lines[0] if lines else str(e))
    zin = zipfile.ZipFile(tmp)
    target = os.path.join(d, "model.keras")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                cfg = json.loads(data)
                n = 0
                for layer in cfg["config"]["layers"]:
                    if layer["class_name"] == "Reshape":
                        assert layer["config"]["target_shape"] in ([4160], (4160,))
                        layer["config"]["target_shape"] = [784]
                        n += 1
                assert n == 1
                data = json.dumps(cfg).encode()
            zout.writestr(item, data)
    zin.close()
    os.remove(tmp)
    info = {"name": "reshape_mismatch",
            "covers": ["Conv2D", "MaxPooling2D", "Reshape", "error:shape"],
            "seed_scenario": "Input (56,14,1) -> Conv2D(32,3) -> Conv2D(32,3) -> MaxPooling2D(2) gives "
                             "(26, 5, 32) = 4160 values; Reshape((56*14,)) asks for 784. config.json "
                             "was edited by hand (Keras will not build it); the weights are valid.",
            "expect_error": ["reshape", "4160", "784", "(26, 5, 32)"],
            "expect_error_note": "kiln summary and kiln compile must exit 1 with one message "
                                 "containing every string of expect_error (layer name, the two "
                                 "sizes, the incoming shape)",
            "keras_error": keras_msg}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    print("invalid reshape_mismatch (keras: %s)" % keras_msg)


# ---------------------------------------------------------------- demo sample

def bars(rng, labels):
    """Synthetic 28x28 'digits' (no download): class k is a bright horizontal bar at rows
    2 + 2k .. 3 + 2k, at a random horizontal offset, on faint noise."""
    n = len(labels)
    x = rng.uniform(0.0, 0.2, (n, 28, 28, 1))
    for i, k in enumerate(labels):
        c0 = rng.integers(0, 10)
        x[i, 2 + 2 * k: 4 + 2 * k, c0: c0 + 18, 0] = rng.uniform(0.7, 1.0)
    return x.astype(np.float32)


def make_sample():
    """The demo model: a small MNIST-style CNN, trained for a few epochs on synthetic bars
    so that its predictions mean something. It is saved after fit, optimizer state included,
    as users do."""
    os.makedirs(SAMPLES_DIR, exist_ok=True)
    keras.backend.clear_session()
    seed = seed_of("mnist_cnn")
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Conv2D(8, 3, activation="relu"), L.MaxPooling2D(2),
        L.Conv2D(16, 3, activation="relu"), L.MaxPooling2D(2),
        L.Flatten(), L.Dropout(0.25), L.Dense(10, activation="softmax")], name="mnist_cnn")
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    ty = rng.integers(0, 10, 300)
    h = model.fit(bars(rng, ty), np.eye(10, dtype=np.float32)[ty], epochs=4, batch_size=32, verbose=0)
    model.save(os.path.join(SAMPLES_DIR, "mnist_cnn.keras"))
    labels = np.array([3, 7, 0, 9])
    x = bars(rng, labels)
    p = np.asarray(model.predict(x, verbose=0), np.float32)
    np.save(os.path.join(SAMPLES_DIR, "mnist_cnn_x.npy"), x)
    np.save(os.path.join(SAMPLES_DIR, "mnist_cnn_p.npy"), p)
    print("sample samples/models/mnist_cnn.keras: train accuracy %.2f; classes %s -> argmax %s"
          % (h.history["accuracy"][-1], labels.tolist(), np.argmax(p, -1).tolist()))


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="comma-separated substrings: generate only matching cases "
                                   "(skips the invalid case and the sample)")
    ap.add_argument("--list", action="store_true", help="list case names and exit")
    ap.add_argument("--f64-worker", nargs=2, metavar=("OUT_DIR", "NAMES_FILE"), help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.f64_worker:
        with open(a.f64_worker[1]) as f:
            f64_worker(f.read().split(), a.f64_worker[0])
        return 0
    if a.list:
        print("\n".join(c.name for c in CASES))
        return 0

    import jax
    print("keras %s, jax %s, numpy %s, backend %s"
          % (keras.__version__, jax.__version__, np.__version__, keras.backend.backend()))
    pats = a.only.split(",") if a.only else []
    todo = [c for c in CASES if not pats or any(p in c.name for p in pats)]
    os.makedirs(CASES_DIR, exist_ok=True)
    if not pats:   # a full run also removes case folders of cases no longer defined
        known = {c.name for c in CASES}
        for n in os.listdir(CASES_DIR):
            path = os.path.join(CASES_DIR, n, "case.json")
            # (cases of other generators name them in case.json's "generator")
            if n not in known and os.path.isfile(path) and "generator" not in json.load(open(path)):
                shutil.rmtree(os.path.join(CASES_DIR, n))
    infos = []
    for c in todo:
        info = make_case(c)
        with open(os.path.join(CASES_DIR, c.name, "pending.json"), "w") as f:
            json.dump(info, f)
        infos.append(info)
        print("f32 %s" % c.name, flush=True)

    tmp = tempfile.mkdtemp(prefix="kiln-gen-f64-")
    notes = []
    try:
        names_file = os.path.join(tmp, "names.txt")
        with open(names_file, "w") as f:
            f.write("\n".join(i["name"] for i in infos))
        env = dict(os.environ)
        env["JAX_ENABLE_X64"] = "1"
        rc = subprocess.call([sys.executable, os.path.abspath(__file__), "--f64-worker", tmp, names_file],
                             env=env)
        if rc != 0:
            print("warning: float64 worker exited %d" % rc)
        print("tolerances:")
        for info in infos:
            finish(info, os.path.join(tmp, info["name"] + ".npz"),
                   os.path.join(tmp, info["name"] + ".err"), notes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if not a.only:
        make_invalid()
        make_sample()
    print("%d cases written to %s" % (len(infos), os.path.relpath(CASES_DIR, ROOT)))
    if notes:
        print("cases on floor tolerances (no float64 reference):")
        for n in notes:
            print("  " + n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
