# Legacy HDF5 files (issue 11): models given as Keras' legacy model.h5, and weights given with
# `kiln compile MODEL --weights FILE` as a Keras 3 .weights.h5 or a legacy weight-only .h5.
# Runs inside tools/gen_cases.py's namespace (case, seq, comp, ...); see SAVE_FORMATS there.

# --- whole models as legacy .h5
case("legacy_h5_dense_bn",
     ["file:legacy_h5", "Dense", "Dense:relu", "BatchNormalization", "Dropout", "Dense:softmax",
      "loss:categorical_crossentropy", "optimizer:Adam", "api:Sequential"],
     seq((6,), lambda: L.Dense(8, activation="relu"), lambda: L.BatchNormalization(),
         lambda: L.Dropout(0.0), lambda: L.Dense(3, activation="softmax")),
     comp("categorical_crossentropy", adam(0.01)),
     dense_data(6, cat(3), n_train=24),
     save="h5",
     scenario="a Sequential MLP saved with model.save('model.h5') (legacy HDF5): model_config and "
              "training_config attributes, model_weights/<layer>/ with weight_names; BatchNormalization's "
              "moving statistics are non-trainable weights of the file")

case("legacy_h5_cnn",
     ["file:legacy_h5", "Conv2D", "Conv2D:relu", "Conv2D:same", "MaxPooling2D", "AveragePooling2D",
      "Flatten", "Dense", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((8, 8, 2), lambda: L.Conv2D(4, 3, activation="relu"), lambda: L.MaxPooling2D(2),
         lambda: L.Conv2D(6, 2, padding="same"), lambda: L.AveragePooling2D(1),
         lambda: L.Flatten(), lambda: L.Dense(2)),
     comp("mse", sgd(0.05, momentum=0.9)),
     dense_data((8, 8, 2), reg(2), n_pred=8, n_train=20),
     save="h5",
     scenario="a small CNN (Conv2D, pooling, Flatten, Dense) saved as legacy model.h5; SGD with momentum "
              "read from training_config's optimizer_config")

case("legacy_h5_lstm_gru_masked",
     ["file:legacy_h5", "Embedding", "Embedding:mask_zero", "LSTM", "LSTM:return_sequences",
      "LSTM:masked", "GRU", "GRU:masked", "Dense", "loss:mse", "optimizer:Adam", "input:int32",
      "api:Sequential"],
     seq((7,), lambda: L.Embedding(12, 4, mask_zero=True), lambda: L.LSTM(5, return_sequences=True),
         lambda: L.GRU(3), lambda: L.Dense(2), input_dtype="int32"),
     comp("mse", adam(0.01)),
     tok_data(12, 7, TRAIL_MID, reg(2)),
     save="h5",
     scenario="Embedding(mask_zero) -> LSTM(seq) -> GRU -> Dense as legacy model.h5: the recurrent "
              "weights sit under model_weights/lstm/sequential/lstm/lstm_cell/...")


def build_legacy_bidir_td_tagger():
    x = keras.Input((6,), dtype="int32", name="tokens")
    # No mask_zero: Keras 3 saves a Functional model's mask as NotEqual ops, which its own legacy
    # .h5 loader cannot read back (the Sequential case above has the masked legacy file).
    h = L.Embedding(11, 4)(x)
    h = L.Bidirectional(L.LSTM(3, return_sequences=True))(h)
    return keras.Model(x, L.TimeDistributed(L.Dense(3, activation="softmax"))(h))


case("legacy_h5_functional_bidir_td",
     ["file:legacy_h5", "Embedding", "Bidirectional", "Bidirectional:concat",
      "LSTM", "LSTM:return_sequences", "TimeDistributed", "TimeDistributed:Dense",
      "Dense:softmax", "loss:sparse_categorical_crossentropy", "optimizer:Adam",
      "input:int32", "api:Functional"],
     build_legacy_bidir_td_tagger, comp("sparse_categorical_crossentropy", adam(0.02)),
     tok_data(11, 6, TRAIL_MID, seq_spc(6, 3)),
     save="h5",
     scenario="a Functional tagger (Embedding -> Bidirectional(LSTM(seq)) -> "
              "TimeDistributed(Dense(softmax))) as legacy model.h5: the Bidirectional layer's weights are "
              "listed forward then backward in one weight_names attribute")


def build_legacy_two_in_two_out():
    a = keras.Input((5,), name="a")
    b = keras.Input((3,), name="b")
    h = L.Concatenate()([L.Dense(4, activation="tanh", name="da")(a), b])
    return keras.Model([a, b], [L.Dense(2, name="reg")(h), L.Dense(3, activation="softmax", name="cls")(h)])


def two_in_two_out_data(rng):
    x = [f32(rng, 10, 5), f32(rng, 10, 3)]
    tx = [f32(rng, 24, 5), f32(rng, 24, 3)]
    return x, None, tx, [f32(rng, 24, 2, scale=0.8), onehot(rng, 24, 3)]


case("legacy_h5_functional_two_outputs",
     ["file:legacy_h5", "Dense", "Dense:tanh", "Concatenate", "Dense:softmax", "loss:mse",
      "loss:categorical_crossentropy", "loss:per_output", "optimizer:RMSprop", "api:Functional"],
     build_legacy_two_in_two_out,
     lambda: dict(loss={"reg": "mse", "cls": "categorical_crossentropy"}, loss_weights={"reg": 1.0, "cls": 0.5},
                  optimizer=keras.optimizers.RMSprop(learning_rate=0.01)),
     two_in_two_out_data,
     save="h5",
     scenario="two inputs, two outputs, losses and loss weights given per output name, as legacy "
              "model.h5; training_config holds them as dicts")

# --- weights given with --weights
case("weights_h5_cnn_bn",
     ["file:weights_h5", "Conv2D", "Conv2D:relu", "BatchNormalization", "GlobalAveragePooling2D",
      "Dense:softmax", "loss:sparse_categorical_crossentropy", "optimizer:Adam", "api:Sequential"],
     seq((7, 7, 1), lambda: L.Conv2D(4, 3, activation="relu"), lambda: L.BatchNormalization(),
         lambda: L.GlobalAveragePooling2D(), lambda: L.Dense(3, activation="softmax")),
     comp("sparse_categorical_crossentropy", adam(0.01)),
     dense_data((7, 7, 1), spc(3), n_pred=8, n_train=20),
     save="weights.h5",
     scenario="model.keras holds the weights the model was built with; the case's weights come from "
              "model.weights.h5 (model.save_weights), given with kiln compile --weights")


def build_weights_gru_functional():
    x = keras.Input((6, 3))
    h = L.Bidirectional(L.GRU(4, return_sequences=True))(x)
    h = L.GRU(3)(h)
    return keras.Model(x, L.Dense(2)(h))


case("weights_h5_functional_gru",
     ["file:weights_h5", "Bidirectional", "GRU", "GRU:return_sequences", "Dense", "loss:mse",
      "optimizer:SGD", "api:Functional"],
     build_weights_gru_functional, comp("mse", sgd(0.1)),
     dense_data((6, 3), reg(2), n_pred=10, n_train=24),
     save="weights.h5",
     scenario="a Functional Bidirectional(GRU) -> GRU model; model.weights.h5's forward_layer/backward_layer "
              "cell groups replace model.keras's weights")

case("legacy_weights_mlp",
     ["file:legacy_weights_h5", "Dense", "Dense:relu", "Dense:sigmoid", "loss:binary_crossentropy",
      "optimizer:SGD", "api:Sequential"],
     seq((5,), lambda: L.Dense(6, activation="relu"), lambda: L.Dense(2, activation="sigmoid")),
     comp("binary_crossentropy", sgd(0.3)),
     dense_data(5, binary(2), n_train=22),
     save="legacy_weights",
     scenario="weights.h5 is a legacy weight-only file (layer_names, weight_names, as tf.keras "
              "save_weights('w.h5') writes), laid onto model.keras by layer order as Keras' load_weights does")


def build_legacy_weights_td_lstm():
    x = keras.Input((5, 4, 3))
    h = L.TimeDistributed(L.Conv1D(4, 2, activation="relu"))(x)
    h = L.TimeDistributed(L.GlobalMaxPooling1D())(h)
    h = L.LSTM(4)(h)
    return keras.Model(x, L.Dense(2)(h))


case("legacy_weights_td_conv_lstm",
     ["file:legacy_weights_h5", "TimeDistributed", "TimeDistributed:Conv1D", "Conv1D", "GlobalMaxPooling1D",
      "LSTM", "Dense", "loss:mse", "optimizer:Adam", "api:Functional"],
     build_legacy_weights_td_lstm, comp("mse", adam(0.01)),
     dense_data((5, 4, 3), reg(2), n_pred=8, n_train=20),
     save="legacy_weights",
     scenario="TimeDistributed(Conv1D) -> TimeDistributed(GlobalMaxPooling1D) -> LSTM -> Dense, with its "
              "weights from a legacy weight-only weights.h5 (layers without weights are skipped in the matching)")

case("legacy_h5_with_weights_h5",
     ["file:legacy_h5", "file:weights_h5", "Dense", "Dense:elu", "LayerNormalization", "Dense",
      "loss:mae", "optimizer:Adam", "api:Sequential"],
     seq((4,), lambda: L.Dense(5, activation="elu"), lambda: L.LayerNormalization(), lambda: L.Dense(2)),
     comp("mae", adam(0.01)),
     dense_data(4, reg(2), n_train=20),
     save="h5+weights.h5",
     scenario="a legacy model.h5 (with the weights the model was built with) and model.weights.h5 given "
              "with --weights: the Keras 3 weight keys come from the legacy file's model_config")
