# Merge layers (Subtract, Multiply, Average, Maximum, Minimum, Dot), BatchNormalization,
# GaussianNoise / GaussianDropout, ActivityRegularization, weight regularizers and constraints.
# Run inside tools/gen_cases.py's namespace (case, seq, comp, f32, reg, ...).

R = keras.regularizers
K = keras.constraints


# --- merges
def build_merge_two_branches():
    a = keras.Input((6,), name="a")
    b = keras.Input((5,), name="b")
    ha = L.Dense(4, activation="tanh")(a)
    hb = L.Dense(4)(b)
    parts = [L.Subtract()([ha, hb]), L.Multiply()([ha, hb]), L.Average()([ha, hb, ha]),
             L.Maximum()([ha, hb]), L.Minimum()([ha, hb, L.Dense(4)(b)]),
             L.Dot(axes=1)([ha, hb]), L.Dot(axes=-1, normalize=True)([ha, hb])]
    h = L.Concatenate()(parts)
    return keras.Model([a, b], L.Dense(2)(h))


def merge_data(rng):
    return [f32(rng, 10, 6), f32(rng, 10, 5)], None, [f32(rng, 22, 6), f32(rng, 22, 5)], [f32(rng, 22, 2, scale=0.8)]


case("merge_two_branches",
     ["Subtract", "Multiply", "Average", "Average:3_inputs", "Maximum", "Minimum", "Minimum:3_inputs",
      "Dot", "Dot:normalize", "Concatenate", "Dense", "Dense:tanh", "input:multiple", "loss:mse",
      "optimizer:SGD", "api:Functional"],
     build_merge_two_branches, comp("mse", sgd(0.05)), merge_data,
     scenario="two Dense branches merged by every elementwise merge (Average and Minimum of three "
              "tensors), by Dot(axes=1) (N, 1) and the cosine Dot(axes=-1, normalize=True), all "
              "concatenated")


def build_merge_broadcast():
    s = keras.Input((4, 5), name="s")
    v = keras.Input((5,), name="v")
    hs = L.Dense(5, activation="tanh")(s)           # (N, 4, 5)
    hv = L.Dense(5)(v)                              # (N, 5)
    hs2 = L.Dense(5)(s)                             # (N, 4, 5)
    m = L.Multiply()([hs, hv])                      # hv as (N, 1, 5)
    d = L.Subtract()([hv, hs])                      # rank 2 first
    att = L.Dot(axes=2)([hs, hs2])                  # (N, 4, 4)
    sv = L.Dot(axes=(2, 1))([hs, hv])               # (N, 4)
    mx = L.Maximum()([m, d])
    h = L.Concatenate()([L.Flatten()(mx), L.Flatten()(att), sv])
    return keras.Model([s, v], L.Dense(3)(h))


def merge_broadcast_data(rng):
    return ([f32(rng, 10, 4, 5), f32(rng, 10, 5)], None, [f32(rng, 21, 4, 5), f32(rng, 21, 5)],
            [f32(rng, 21, 3, scale=0.8)])


case("merge_broadcast_dot3d",
     ["Multiply", "Multiply:broadcast", "Subtract", "Subtract:broadcast", "Maximum", "Dot", "Dot:3d",
      "Dot:axes_pair", "Dense", "Dense:3d", "Dense:tanh", "Flatten", "Concatenate", "input:multiple",
      "loss:mse", "optimizer:SGD", "api:Functional"],
     build_merge_broadcast, comp("mse", sgd(0.05)), merge_broadcast_data,
     scenario="merges of a (N, 4, 5) and a (N, 5) tensor: the rank-2 one gets an axis after the batch "
              "(Keras' expand_dims(x, 1)) and broadcasts over the 4 steps; Dot(axes=2) of two "
              "sequences gives (N, 4, 4), Dot(axes=(2, 1)) of a sequence and a vector (N, 4)")


def build_merge_masked():
    t = keras.Input((6,), dtype="int32", name="t")
    e = L.Embedding(12, 4, mask_zero=True)(t)
    a = L.Dense(4, activation="tanh")(e)
    b = L.Dense(4)(e)
    h = L.Average()([L.Subtract()([a, b]), e])
    return keras.Model(t, L.Dense(2)(L.LSTM(5)(h)))


case("merge_masked_average_subtract",
     ["Subtract", "Subtract:masked", "Average", "Average:masked", "Embedding", "Embedding:mask_zero",
      "Dense", "Dense:3d", "LSTM", "LSTM:masked", "loss:mse", "optimizer:SGD", "api:Functional"],
     build_merge_masked, comp("mse", sgd(0.1)),
     tok_data(12, 6, TRAIL_MID, reg(2), n_train=22),
     scenario="Subtract and Average of masked sequences pass on the OR of their masks (here all the "
              "same Embedding mask), which the LSTM consumes")


# --- BatchNormalization
case("bn_dense_relu",
     ["BatchNormalization", "BatchNormalization:momentum", "BatchNormalization:moving_stats", "Dense",
      "Dense:linear", "Activation:relu", "Dense:softmax", "loss:categorical_crossentropy",
      "optimizer:Adam", "api:Sequential"],
     seq((6,), lambda: L.Dense(8), lambda: L.BatchNormalization(momentum=0.8), lambda: L.Activation("relu"),
         lambda: L.Dense(3, activation="softmax")),
     comp("categorical_crossentropy", adam(0.01)),
     dense_data(6, cat(3), n_pred=10, n_train=22, xscale=1.5),
     scenario="Dense -> BatchNormalization(momentum=0.8) -> relu -> Dense: training normalizes by the "
              "batch's mean and biased variance (the last batch has 6 rows) and moves moving_mean / "
              "moving_variance 20% toward them each step; predict uses the (random) moving statistics")

case("bn_conv2d",
     ["BatchNormalization", "BatchNormalization:4d", "BatchNormalization:no_scale",
      "BatchNormalization:epsilon", "Conv2D", "Conv2D:valid", "Conv2D:linear", "ReLU", "Flatten",
      "Dense", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((6, 5, 2), lambda: L.Conv2D(3, 3), lambda: L.BatchNormalization(scale=False, momentum=0.7, epsilon=0.01),
         lambda: L.ReLU(), lambda: L.Flatten(), lambda: L.Dense(2)),
     comp("mse", sgd(0.05)),
     dense_data((6, 5, 2), reg(2), n_pred=8, n_train=20),
     scenario="Conv2D -> BatchNormalization(scale=False, momentum=0.7, epsilon=0.01): statistics per "
              "channel over batch, rows and columns; weights beta, moving_mean, moving_variance")

case("bn_frozen_center_false",
     ["BatchNormalization", "BatchNormalization:trainable_false", "BatchNormalization:no_center",
      "Dense", "Dense:tanh", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((5,), lambda: L.Dense(6, activation="tanh"), lambda: L.BatchNormalization(trainable=False),
         lambda: L.Dense(4), lambda: L.BatchNormalization(center=False, momentum=0.5), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)),
     dense_data(5, reg(2), n_pred=10, n_train=22),
     scenario="a frozen BatchNormalization (trainable=False) normalizes by its moving statistics in "
              "training too and updates nothing; a second one without beta updates its moving "
              "statistics by half each step")

case("bn_masked_lstm",
     ["BatchNormalization", "BatchNormalization:masked", "Embedding", "Embedding:mask_zero", "LSTM",
      "LSTM:masked", "Dense", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((7,), lambda: L.Embedding(12, 4, mask_zero=True), lambda: L.BatchNormalization(momentum=0.6),
         lambda: L.LSTM(5), lambda: L.Dense(2), input_dtype="int32"),
     comp("mse", sgd(0.1)),
     tok_data(12, 7, TRAIL_MID, reg(2), n_train=22),
     scenario="BatchNormalization after Embedding(mask_zero=True): the batch statistics are Keras' "
              "masked moments (sums over unmasked steps over their count + 1e-7); the mask goes on "
              "to the LSTM")


# --- regularizers and constraints
case("reg_dense_constraints",
     ["Dense", "Dense:tanh", "Dense:linear", "kernel_regularizer:L2", "bias_regularizer:L1",
      "kernel_regularizer:L1L2", "activity_regularizer:L1", "kernel_constraint:MaxNorm",
      "kernel_constraint:UnitNorm", "bias_constraint:NonNeg", "kernel_constraint:MinMaxNorm",
      "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((6,),
         lambda: L.Dense(8, activation="tanh", kernel_regularizer=R.L2(0.02), bias_regularizer=R.L1(0.01),
                         kernel_constraint=K.MaxNorm(0.9), bias_constraint=K.NonNeg(),
                         activity_regularizer=R.L1(0.005)),
         lambda: L.Dense(5, kernel_regularizer=R.L1L2(l1=0.01, l2=0.03),
                         kernel_constraint=K.MinMaxNorm(min_value=0.5, max_value=0.8, rate=0.7, axis=0)),
         lambda: L.Dense(2, kernel_constraint=K.UnitNorm(axis=0))),
     comp("mse", sgd(0.05)),
     dense_data(6, reg(2), n_pred=10, n_train=22),
     scenario="penalties join the loss Keras reports (kernel L2, bias L1, kernel L1L2, the first "
              "layer's activity L1 over the batch size); after each SGD step MaxNorm(0.9) / "
              "MinMaxNorm / UnitNorm rescale the kernel columns and NonNeg zeroes negative biases")

case("reg_conv2d_bn",
     ["Conv2D", "Conv2D:valid", "Conv2D:relu", "kernel_regularizer:L2", "kernel_constraint:MaxNorm",
      "BatchNormalization", "gamma_regularizer:L2", "beta_regularizer:L1", "beta_constraint:NonNeg",
      "Flatten", "Dense", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((6, 6, 2),
         lambda: L.Conv2D(3, 3, activation="relu", kernel_regularizer="l2",
                          kernel_constraint=K.MaxNorm(1.0, axis=[0, 1, 2]), bias_regularizer=R.L2(0.05)),
         lambda: L.BatchNormalization(gamma_regularizer=R.L2(0.02), beta_regularizer=R.L1(0.02),
                                      beta_constraint=K.NonNeg()),
         lambda: L.Flatten(), lambda: L.Dense(2)),
     comp("mse", sgd(0.05)),
     dense_data((6, 6, 2), reg(2), n_pred=8, n_train=20),
     scenario="Conv2D with kernel_regularizer 'l2' (L2(0.01)) and MaxNorm over the (kh, kw, in) axes "
              "of each filter; BatchNormalization with gamma/beta regularizers and a NonNeg beta")

case("reg_embedding_recurrent",
     ["Embedding", "embeddings_regularizer:L1", "embeddings_constraint:MaxNorm", "LSTM",
      "LSTM:return_sequences", "kernel_regularizer:L2", "recurrent_regularizer:L1", "bias_regularizer:L2",
      "recurrent_constraint:UnitNorm", "GRU", "GRU:return_sequences", "SimpleRNN",
      "kernel_constraint:NonNeg", "Dense", "loss:mse", "optimizer:SGD", "input:int32", "api:Sequential"],
     seq((6,),
         lambda: L.Embedding(15, 4, embeddings_regularizer=R.L1(0.002), embeddings_constraint=K.MaxNorm(0.7, axis=1)),
         lambda: L.LSTM(5, return_sequences=True, kernel_regularizer=R.L2(0.01), recurrent_regularizer=R.L1(0.01),
                        bias_regularizer=R.L2(0.02), recurrent_constraint=K.UnitNorm(axis=0)),
         lambda: L.GRU(4, return_sequences=True, recurrent_regularizer=R.L2(0.02), bias_constraint=K.NonNeg()),
         lambda: L.SimpleRNN(3, kernel_regularizer=R.L1L2(0.01, 0.01), kernel_constraint=K.NonNeg()),
         lambda: L.Dense(2), input_dtype="int32"),
     comp("mse", sgd(0.1)),
     emb_data(15, 6, reg(2), n_train=22),
     scenario="an Embedding table with an L1 penalty and rows of norm <= 0.7; LSTM kernel, "
              "recurrent (recurrent_regularizer / recurrent_constraint) and bias penalties; GRU and "
              "SimpleRNN penalties and NonNeg constraints")


# --- ActivityRegularization
case("activity_regularization",
     ["ActivityRegularization", "ActivityRegularization:l1", "ActivityRegularization:l2", "Dense",
      "Dense:tanh", "Dense:linear", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((5,), lambda: L.Dense(6, activation="tanh"), lambda: L.ActivityRegularization(l1=0.01, l2=0.02),
         lambda: L.Dense(4), lambda: L.ActivityRegularization(l2=0.05), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)),
     dense_data(5, reg(2), n_pred=10, n_train=22),
     scenario="two ActivityRegularization layers: each adds (l1 sum|x| + l2 sum x^2) / batch size to "
              "the reported loss (the last batch has 6 rows) and its gradient; outputs pass unchanged")


# --- noise: Kiln's random draws are not Keras', so training with noise cannot match Keras'
# numbers. noise_predict checks predict (the identity) with real rates; noise_zero_fit checks
# predict and fit through both layers at stddev 0 / rate 0, where Keras adds no noise either.
# The noise's distribution is unit-tested (Tests/KilnIRTests/LayersMergeNormTests.swift).
case("noise_predict",
     ["GaussianNoise", "GaussianDropout", "Dense", "Dense:tanh", "loss:mse", "optimizer:SGD",
      "api:Sequential"],
     seq((5,), lambda: L.GaussianNoise(0.3), lambda: L.Dense(6, activation="tanh"),
         lambda: L.GaussianDropout(0.2), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)),
     dense_data(5, reg(2), n_pred=10, n_train=22),
     train=False,
     scenario="GaussianNoise(0.3) and GaussianDropout(0.2) are the identity in predict (no fit: the "
              "training draws differ from Keras' by design)")

case("noise_zero_fit",
     ["GaussianNoise", "GaussianNoise:stddev_0", "GaussianDropout", "GaussianDropout:rate_0", "Dense",
      "Dense:tanh", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((5,), lambda: L.GaussianNoise(0.0), lambda: L.Dense(6, activation="tanh"),
         lambda: L.GaussianDropout(0.0), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)),
     dense_data(5, reg(2), n_pred=10, n_train=22),
     scenario="GaussianNoise(0.0) and GaussianDropout(0.0) add no noise in fit either, as in Keras")


case("reg_wrappers_activity",
     ["Bidirectional", "Bidirectional:concat", "LSTM", "LSTM:return_sequences", "kernel_regularizer:L2",
      "recurrent_constraint:MaxNorm", "TimeDistributed", "Dense", "kernel_regularizer:L1",
      "bias_constraint:NonNeg", "GRU", "activity_regularizer:L2", "loss:mse", "optimizer:SGD",
      "api:Sequential"],
     seq((5, 3),
         lambda: L.Bidirectional(L.LSTM(4, return_sequences=True, kernel_regularizer=R.L2(0.02),
                                        recurrent_constraint=K.MaxNorm(0.8))),
         lambda: L.TimeDistributed(L.Dense(3, kernel_regularizer=R.L1(0.01), bias_constraint=K.NonNeg())),
         lambda: L.GRU(4, activity_regularizer=R.L2(0.05)),
         lambda: L.Dense(2)),
     comp("mse", sgd(0.1)),
     dense_data((5, 3), reg(2), n_pred=10, n_train=22),
     scenario="penalties and constraints of wrapped layers: both directions of a Bidirectional LSTM "
              "(the backward copy of the forward config) and a TimeDistributed Dense; a GRU's "
              "activity_regularizer on its output")


def build_merge_masked_values():
    t = keras.Input((6,), dtype="int32", name="t")
    e = L.Embedding(12, 4, mask_zero=True)(t)
    a = L.Dense(4, activation="tanh")(e)
    b = L.Dense(4)(e)
    h = L.Add()([L.Multiply()([a, b]), L.Maximum()([a, b, e]), L.Minimum()([b, a])])
    seq_out = L.Dense(2, name="steps")(L.Average()([L.Multiply()([a, e]), L.Maximum()([b, e]), L.Minimum()([e, a])]))
    return keras.Model(t, [L.Dense(2, name="last")(L.GRU(5)(h)), seq_out])


def merge_masked_values_data(rng):
    x = masked_tokens(rng, 10, 6, 12, TRAIL_MID)
    tx = masked_tokens(rng, 22, 6, 12, TRAIL_MID)
    return [x], None, [tx], [f32(rng, 22, 2, scale=0.8), f32(rng, 22, 6, 2, scale=0.8)]


case("merge_masked_multiply_max_min",
     ["Multiply", "Multiply:masked", "Maximum", "Maximum:masked", "Minimum", "Minimum:masked", "Add",
      "Embedding", "Embedding:mask_zero", "Dense", "Dense:3d", "GRU", "GRU:masked", "Average",
      "Average:masked", "output:multiple", "loss:list", "loss:mse", "optimizer:SGD", "api:Functional"],
     build_merge_masked_values, comp(["mse", "mse"], sgd(0.1)), merge_masked_values_data,
     metrics_keys=["last_loss", "steps_loss"],
     scenario="Multiply, Maximum and Minimum of branches of one masked sequence change the values at "
              "masked steps as Keras does (Multiply 0, Maximum/Minimum the first input): the 'steps' "
              "output shows them in predict (its loss skips masked steps); a GRU consumes the mask")
