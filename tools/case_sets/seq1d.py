# Keras' 1-D sequence layers (branch seq1d): Conv1D (valid/same/causal, strides, dilation,
# channels_first), MaxPooling1D, AveragePooling1D, GlobalMaxPooling1D, GlobalAveragePooling1D
# (masked), ZeroPadding1D, UpSampling1D, RepeatVector, Permute, SpatialDropout1D.
# Runs in tools/gen_cases.py's namespace (case, seq, comp, sgd, adam, tok_data, ...).
#
# Masks as Keras 3 passes them: of these layers only GlobalAveragePooling1D (reads the mask,
# gives none on) and SpatialDropout1D (a Dropout: passes it on) have supports_masking; the
# others drop it (Keras warns), so a layer after them sees every step.

# --- Conv1D
case("conv1d_text_cnn",
     ["Embedding", "Embedding:mask_zero", "Conv1D", "Conv1D:same", "Conv1D:relu", "Conv1D:drops_mask",
      "MaxPooling1D", "Conv1D:causal", "Conv1D:dilation", "Conv1D:tanh", "GlobalMaxPooling1D",
      "Dense:softmax", "loss:categorical_crossentropy", "optimizer:Adam", "input:int32", "api:Sequential"],
     seq((12,), lambda: L.Embedding(20, 6, mask_zero=True),
         lambda: L.Conv1D(8, 3, padding="same", activation="relu"), lambda: L.MaxPooling1D(2),
         lambda: L.Conv1D(6, 3, padding="causal", dilation_rate=2, activation="tanh"),
         lambda: L.GlobalMaxPooling1D(), lambda: L.Dense(3, activation="softmax"),
         input_dtype="int32"),
     comp("categorical_crossentropy", adam(0.01)),
     tok_data(20, 12, TRAIL_MID, cat(3)),
     scenario="a text CNN: Embedding(mask_zero) -> Conv1D(8, 3, 'same', relu) (the mask stops here, as "
              "Keras 3's Conv1D has no compute_mask) -> MaxPooling1D(2) -> Conv1D(6, 3, 'causal', "
              "dilation 2, tanh): 4 zero steps in front, taps t-4, t-2, t -> GlobalMaxPooling1D -> Dense")

case("conv1d_strides_channels_first",
     ["Conv1D", "Conv1D:valid", "Conv1D:strides", "Conv1D:channels_first", "Conv1D:relu", "Conv1D:same",
      "Conv1D:no_bias", "MaxPooling1D", "MaxPooling1D:same", "MaxPooling1D:channels_first",
      "GlobalAveragePooling1D", "GlobalAveragePooling1D:keepdims", "GlobalAveragePooling1D:channels_first",
      "Flatten", "Dense", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((5, 11), lambda: L.Conv1D(4, 3, strides=2, data_format="channels_first", activation="relu"),
         lambda: L.Conv1D(6, 2, strides=2, padding="same", data_format="channels_first", use_bias=False),
         lambda: L.MaxPooling1D(2, padding="same", data_format="channels_first"),
         lambda: L.GlobalAveragePooling1D(data_format="channels_first", keepdims=True),
         lambda: L.Flatten(), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)),
     dense_data((5, 11), reg(2), n_pred=10, n_train=20),
     scenario="channels_first throughout: (5 channels, 11 steps) -> Conv1D(4, 3, strides 2, valid) "
              "(4, 5) -> Conv1D(6, 2, strides 2, same, no bias) (6, 3) -> MaxPooling1D(2, same) (6, 2) "
              "-> GlobalAveragePooling1D(keepdims) (6, 1) -> Flatten -> Dense")

case("conv1d_strides_valid_causal",
     ["Conv1D", "Conv1D:valid", "Conv1D:strides", "Conv1D:elu", "Conv1D:causal", "Conv1D:causal_strides",
      "Flatten", "Dense", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((13, 3), lambda: L.Conv1D(5, 4, strides=3, activation="elu"),
         lambda: L.Conv1D(4, 3, strides=2, padding="causal"),
         lambda: L.Flatten(), lambda: L.Dense(2)),
     comp("mse", sgd(0.05)),
     dense_data((13, 3), reg(2), n_pred=10, n_train=20),
     scenario="Conv1D(5, 4, strides 3, valid) on 13 steps reads steps 0..11 (4 outputs, step 12 "
              "unused); Conv1D(4, 3, strides 2, causal) pads 2 steps in front and gives 2 outputs")

case("conv1d_dilated",
     ["Conv1D", "Conv1D:dilation", "Conv1D:same", "Conv1D:sigmoid", "Conv1D:valid",
      "Conv1D:channels_first", "GlobalAveragePooling1D", "Dense", "loss:mse", "optimizer:Adam",
      "api:Sequential"],
     seq((10, 2), lambda: L.Conv1D(3, 3, dilation_rate=2, padding="same", activation="sigmoid"),
         lambda: L.Conv1D(4, 2, dilation_rate=3),
         lambda: L.Conv1D(2, 2, dilation_rate=2, padding="same", data_format="channels_first"),
         lambda: L.GlobalAveragePooling1D(), lambda: L.Dense(1)),
     comp("mse", adam(0.01)),
     dense_data((10, 2), reg(1), n_pred=10, n_train=20),
     scenario="dilated Conv1D: (3, dilation 2, same) spans 5 steps, 2 zero steps each side; "
              "(2, dilation 3, valid) spans 4 steps, 10 -> 7; then a channels_first (2, dilation 2, "
              "same) reading the 7 steps as channels and the 4 filters as steps (span 3: 1 zero step "
              "each side)")

# --- masks: GlobalAveragePooling1D reads the mask, Conv1D drops it
case("global_avgpool1d_masked",
     ["Embedding", "Embedding:mask_zero", "GlobalAveragePooling1D", "GlobalAveragePooling1D:masked",
      "Dense", "loss:mse", "optimizer:SGD", "input:int32", "api:Sequential"],
     seq((8,), lambda: L.Embedding(15, 5, mask_zero=True), lambda: L.GlobalAveragePooling1D(),
         lambda: L.Dense(2), input_dtype="int32"),
     comp("mse", sgd(0.1)),
     tok_data(15, 8, TRAIL_MID, reg(2)),
     scenario="Embedding(mask_zero) -> GlobalAveragePooling1D: the mean of the real steps only "
              "(trailing and inner padding); the padding id's row gets no gradient")

case("conv1d_drops_mask_gap",
     ["Embedding", "Embedding:mask_zero", "Conv1D", "Conv1D:same", "Conv1D:relu", "Conv1D:drops_mask",
      "GlobalAveragePooling1D", "Dense", "loss:mse", "optimizer:SGD", "input:int32", "api:Sequential"],
     seq((9,), lambda: L.Embedding(16, 4, mask_zero=True),
         lambda: L.Conv1D(5, 3, padding="same", activation="relu"), lambda: L.GlobalAveragePooling1D(),
         lambda: L.Dense(2), input_dtype="int32"),
     comp("mse", sgd(0.1)),
     tok_data(16, 9, TRAIL_MID, reg(2)),
     scenario="Embedding(mask_zero) -> Conv1D(same) -> GlobalAveragePooling1D: Keras 3's Conv1D drops "
              "the mask, so the average is over all 9 steps, padded ones included")

case("masking_spatial_dropout_gap",
     ["Masking", "SpatialDropout1D", "SpatialDropout1D:passes_mask", "GlobalAveragePooling1D",
      "GlobalAveragePooling1D:masked", "GlobalAveragePooling1D:keepdims", "Flatten", "Dense",
      "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((7, 3), lambda: L.Masking(0.0), lambda: L.SpatialDropout1D(0.0),
         lambda: L.GlobalAveragePooling1D(keepdims=True), lambda: L.Flatten(), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)),
     maskf_data(7, 3, TRAIL_MID, reg(2)),
     scenario="Masking(0.0) -> SpatialDropout1D(0.0) (a Dropout: passes the mask on; rate 0 so fit "
              "can match Keras) -> GlobalAveragePooling1D(keepdims) averages the unmasked steps")

case("spatial_dropout1d_predict",
     ["Conv1D", "Conv1D:relu", "SpatialDropout1D", "GlobalMaxPooling1D", "GlobalMaxPooling1D:keepdims",
      "Flatten", "Dense", "api:Sequential"],
     seq((6, 4), lambda: L.Conv1D(5, 2, activation="relu"), lambda: L.SpatialDropout1D(0.4),
         lambda: L.GlobalMaxPooling1D(keepdims=True), lambda: L.Flatten(), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)),
     dense_data((6, 4), reg(2), n_pred=10, n_train=20),
     train=False,
     scenario="SpatialDropout1D(0.4) is the identity in predict (predict only: Kiln's draws are not "
              "Keras'; its training form is checked by LayersSeq1DTests)")

# --- reshaping and pooling windows
case("seq1d_pool_pad_upsample_permute",
     ["Conv1D", "Conv1D:same", "Conv1D:tanh", "MaxPooling1D", "MaxPooling1D:same", "MaxPooling1D:strides",
      "AveragePooling1D", "AveragePooling1D:valid", "AveragePooling1D:same", "AveragePooling1D:strides",
      "ZeroPadding1D", "UpSampling1D", "Permute", "GlobalAveragePooling1D", "Dense", "loss:mse",
      "optimizer:Adam", "api:Sequential"],
     seq((10, 3), lambda: L.Conv1D(4, 3, padding="same", activation="tanh"),
         lambda: L.MaxPooling1D(3, strides=2, padding="same"),
         lambda: L.AveragePooling1D(2, strides=1),
         lambda: L.ZeroPadding1D((2, 1)), lambda: L.UpSampling1D(2),
         lambda: L.AveragePooling1D(4, strides=3, padding="same"),
         lambda: L.Permute((2, 1)), lambda: L.Conv1D(3, 2),
         lambda: L.GlobalAveragePooling1D(), lambda: L.Dense(2)),
     comp("mse", adam(0.01)),
     dense_data((10, 3), reg(2), n_pred=10, n_train=20),
     scenario="(10, 3) -> Conv1D same (10, 4) -> MaxPooling1D(3, strides 2, same) (5, 4) -> "
              "AveragePooling1D(2, strides 1) (4, 4) -> ZeroPadding1D((2, 1)) (7, 4) -> UpSampling1D(2) "
              "(14, 4) -> AveragePooling1D(4, strides 3, same: border windows average their real "
              "steps) (5, 4) -> Permute((2, 1)) (4, 5) -> Conv1D(3, 2) (3, 3) -> mean -> Dense")

case("repeat_vector_lstm",
     ["Dense", "Dense:tanh", "RepeatVector", "LSTM", "LSTM:return_sequences", "ZeroPadding1D",
      "ZeroPadding1D:int", "Dense:3d", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((4,), lambda: L.Dense(5, activation="tanh"), lambda: L.RepeatVector(5),
         lambda: L.LSTM(3, return_sequences=True), lambda: L.ZeroPadding1D(1), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)),
     dense_data(4, seq_reg(7, 2), n_pred=10, n_train=22),
     scenario="a decoder's start: Dense -> RepeatVector(5) (the vector on 5 steps) -> LSTM(seq) -> "
              "ZeroPadding1D(1) (7 steps, zeros at both ends) -> Dense on every step")

case("permute_functional_channels_first_pool",
     ["Permute", "AveragePooling1D", "AveragePooling1D:channels_first", "AveragePooling1D:same",
      "ZeroPadding1D", "ZeroPadding1D:channels_first", "GlobalMaxPooling1D",
      "GlobalMaxPooling1D:channels_first", "Dense", "Dense:3d", "Concatenate", "loss:mse",
      "optimizer:SGD", "api:Functional"],
     lambda: seq1d_permute_model(),
     comp("mse", sgd(0.1)),
     dense_data((6, 4), reg(3), n_pred=10, n_train=20),
     scenario="Functional: Dense on every step (6, 5) -> Permute((2, 1)) (5, 6) read as channels_first "
              "(5 channels, 6 steps): AveragePooling1D(4, strides 3, same) and ZeroPadding1D((1, 2)) "
              "-> GlobalMaxPooling1D(channels_first) on each; both concatenated -> Dense")


def seq1d_permute_model():
    x = keras.Input((6, 4))
    h = L.Permute((2, 1))(L.Dense(5, activation="tanh")(x))
    a = L.GlobalMaxPooling1D(data_format="channels_first")(
        L.AveragePooling1D(4, strides=3, padding="same", data_format="channels_first")(h))
    b = L.GlobalMaxPooling1D(data_format="channels_first")(
        L.ZeroPadding1D((1, 2), data_format="channels_first")(h))
    return keras.Model(x, L.Dense(3)(L.Concatenate()([a, b])))


case("seq1d_masks_functional",
     ["Embedding", "Embedding:mask_zero", "GlobalAveragePooling1D", "GlobalAveragePooling1D:masked",
      "SpatialDropout1D", "SpatialDropout1D:passes_mask", "Conv1D", "Conv1D:drops_mask", "Conv1D:causal",
      "GlobalMaxPooling1D", "Concatenate", "Dense", "loss:mse", "optimizer:Adam", "input:int32",
      "api:Functional"],
     lambda: seq1d_masks_model(),
     comp("mse", adam(0.01)),
     tok_data(14, 7, TRAIL_MID, reg(2)),
     scenario="Functional, one Embedding(mask_zero) read three ways (Keras saves the mask as the "
              "pooling calls' mask argument): GlobalAveragePooling1D (real steps only); "
              "SpatialDropout1D(0.0) -> GlobalAveragePooling1D (the dropout passes the mask on); "
              "Conv1D(causal) -> GlobalMaxPooling1D (no mask after the Conv1D) -> Concatenate -> Dense")


def seq1d_masks_model():
    x = keras.Input((7,), dtype="int32")
    e = L.Embedding(14, 4, mask_zero=True)(x)
    a = L.GlobalAveragePooling1D()(e)
    s = L.GlobalAveragePooling1D()(L.SpatialDropout1D(0.0)(e))
    c = L.GlobalMaxPooling1D()(L.Conv1D(3, 3, padding="causal", activation="tanh")(e))
    return keras.Model(x, L.Dense(2)(L.Concatenate()([a, s, c])))


# --- free sequence length (Input((None, ...))): the layers that need no fixed step count
case("free_seq1d_gap_masked",
     ["Input:free_steps", "Embedding", "Embedding:mask_zero", "SpatialDropout1D", "SpatialDropout1D:passes_mask",
      "GlobalAveragePooling1D", "GlobalAveragePooling1D:masked", "Dense", "loss:mse", "optimizer:Adam",
      "input:int32", "api:Sequential"],
     seq((None,), lambda: L.Embedding(15, 4, mask_zero=True), lambda: L.SpatialDropout1D(0.0),
         lambda: L.GlobalAveragePooling1D(), lambda: L.Dense(2), input_dtype="int32"),
     comp("mse", adam(0.01)),
     free_tok_data(15, 5, 9, TRAIL_MID, lambda t: reg(2)),
     scenario="Input((None,)) token ids: Embedding(mask_zero) -> SpatialDropout1D(0.0) -> "
              "GlobalAveragePooling1D (the mean of the real steps, however many) -> Dense; predicted "
              "on 5 steps, trained on 9")

case("free_seq1d_upsample_globalmax",
     ["Input:free_steps", "UpSampling1D", "Dense", "Dense:3d", "Dense:tanh", "GlobalMaxPooling1D", "loss:mse",
      "optimizer:SGD", "api:Sequential"],
     seq((None, 3), lambda: L.UpSampling1D(3), lambda: L.Dense(4, activation="tanh"),
         lambda: L.GlobalMaxPooling1D(), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)),
     lambda rng: ([f32(rng, 10, 4, 3)], None, [f32(rng, 20, 7, 3)], [reg(2)(rng, 20)]),
     scenario="Input((None, 3)): UpSampling1D(3) (each step three times: every maximum is tied "
              "three ways, and its gradient is shared as JAX shares it) -> Dense -> GlobalMaxPooling1D; "
              "predicted on 4 steps, trained on 7")


case("conv1d_wide_channels",
     ["Conv1D", "Conv1D:same", "Conv1D:relu", "Conv1D:causal", "Conv1D:causal_strides", "Conv1D:wide",
      "GlobalAveragePooling1D", "Dense", "loss:mse", "optimizer:Adam", "api:Sequential"],
     seq((12, 16), lambda: L.Conv1D(16, 3, padding="same", activation="relu"),
         lambda: L.Conv1D(16, 5, strides=2, padding="causal"),
         lambda: L.GlobalAveragePooling1D(), lambda: L.Dense(2)),
     comp("mse", adam(0.01)),
     dense_data((12, 16), reg(2), n_pred=8, n_train=20),
     scenario="16 channels and 16 filters: the runtime's direct convolution kernels (forward, and "
              "both gradients) on a (1, T) image; Conv1D(16, 5, strides 2, causal) pads 4 steps in front")


case("td_conv1d_lstm",
     ["TimeDistributed", "TimeDistributed:Conv1D", "TimeDistributed:GlobalMaxPooling1D", "Conv1D", "Conv1D:relu",
      "GlobalMaxPooling1D", "LSTM", "Dense", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((3, 8, 2), lambda: L.TimeDistributed(L.Conv1D(4, 3, activation="relu")),
         lambda: L.TimeDistributed(L.GlobalMaxPooling1D()), lambda: L.LSTM(5), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)),
     dense_data((3, 8, 2), reg(2), n_pred=8, n_train=20),
     scenario="a sequence of 3 sequences of 8 steps: TimeDistributed(Conv1D(4, 3)) and "
              "TimeDistributed(GlobalMaxPooling1D()) on each, then an LSTM over the 3")
