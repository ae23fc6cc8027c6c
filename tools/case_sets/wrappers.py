# Wrappers and masks (issue 11): Bidirectional with merge_mode=None, return_state with masks,
# TimeDistributed and masks.


def tok_data2(vocab, t, kinds, ty0, ty1, n_pred=10, n_train=24):
    """Token inputs with padding; two targets (a model with two outputs)."""
    def make(rng):
        return ([masked_tokens(rng, n_pred, t, vocab, kinds)], None,
                [masked_tokens(rng, n_train, t, vocab, kinds)], [ty0(rng, n_train), ty1(rng, n_train)])
    return make


def build_bidir_none_seq():
    x = keras.Input((6,), dtype="int32")
    e = L.Embedding(12, 4, mask_zero=True)(x)
    fw, bw = L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode=None)(e)
    return keras.Model(x, [L.TimeDistributed(L.Dense(2))(fw), L.Dense(2)(bw)])


case("bidir_none_masked_seq",
     ["Bidirectional", "Bidirectional:merge_none", "Bidirectional:masked", "LSTM", "LSTM:return_sequences",
      "LSTM:masked", "Embedding", "Embedding:mask_zero", "TimeDistributed", "TimeDistributed:Dense", "Dense",
      "Dense:3d", "output:multiple", "loss:list", "loss:mse", "loss:masked", "optimizer:SGD", "input:int32",
      "api:Functional"],
     build_bidir_none_seq, comp(["mse", "mse"], sgd(0.1)),
     tok_data2(12, 6, TRAIL_MID, seq_reg(6, 2), seq_reg(6, 2)),
     scenario="Embedding(mask_zero) -> Bidirectional(LSTM(seq), merge_mode=None) -> (forward, backward): "
              "both outputs keep the mask, each feeds its own output and masked loss")


def build_bidir_none_gru_state():
    x = keras.Input((6,), dtype="int32")
    e = L.Embedding(11, 4, mask_zero=True)(x)
    fw, bw, fh, bh = L.Bidirectional(L.GRU(3, return_state=True), merge_mode=None)(e)
    return keras.Model(x, L.Dense(2)(L.Concatenate()([fw, bh, fh, bw])))


case("bidir_none_gru_return_state_masked",
     ["Bidirectional", "Bidirectional:merge_none", "Bidirectional:return_state", "Bidirectional:masked",
      "GRU", "GRU:return_state", "GRU:masked", "Embedding", "Embedding:mask_zero", "Concatenate", "Dense",
      "loss:mse", "optimizer:Adam", "input:int32", "api:Functional"],
     build_bidir_none_gru_state, comp("mse", adam(0.01)),
     tok_data(11, 6, TRAIL_MID, reg(2)),
     scenario="Bidirectional(GRU(return_state=True), merge_mode=None) -> [forward, backward, forward h, "
              "backward h] on padded tokens, all four concatenated into a Dense")


def build_rnn_state_masked(rnn):
    def build():
        x = keras.Input((6,), dtype="int32")
        e = L.Embedding(10, 4, mask_zero=True)(x)
        out = rnn()(e)
        return keras.Model(x, [L.TimeDistributed(L.Dense(2))(out[0]), L.Dense(2)(out[-1])])
    return build


case("gru_return_state_masked",
     ["GRU", "GRU:return_state", "GRU:return_sequences", "GRU:masked", "Embedding", "Embedding:mask_zero",
      "TimeDistributed", "TimeDistributed:Dense", "Dense", "output:multiple", "loss:list", "loss:mse",
      "loss:masked", "optimizer:SGD", "input:int32", "api:Functional"],
     build_rnn_state_masked(lambda: L.GRU(3, return_sequences=True, return_state=True)),
     comp(["mse", "mse"], sgd(0.1)),
     tok_data2(10, 6, TRAIL_MID, seq_reg(6, 2), reg(2)),
     scenario="Embedding(mask_zero) -> GRU(return_sequences, return_state): the masked sequence and "
              "the final state h (last real step) feed two outputs")


case("simple_rnn_return_state_masked",
     ["SimpleRNN", "SimpleRNN:return_state", "SimpleRNN:return_sequences", "SimpleRNN:masked", "Embedding",
      "Embedding:mask_zero", "TimeDistributed", "TimeDistributed:Dense", "Dense", "output:multiple",
      "loss:list", "loss:mse", "loss:masked", "optimizer:SGD", "input:int32", "api:Functional"],
     build_rnn_state_masked(lambda: L.SimpleRNN(3, return_sequences=True, return_state=True, go_backwards=True)),
     comp(["mse", "mse"], sgd(0.1)),
     tok_data2(10, 6, TRAIL_MID, seq_reg(6, 2), reg(2)),
     scenario="Embedding(mask_zero) -> SimpleRNN(return_sequences, return_state, go_backwards): the masked "
              "sequence and the final state feed two outputs")


case("bidir_none_sequential_last",
     ["Bidirectional", "Bidirectional:merge_none", "Bidirectional:masked", "GRU", "GRU:return_sequences",
      "GRU:masked", "Embedding", "Embedding:mask_zero", "output:multiple", "loss:list", "loss:mse",
      "loss:masked", "optimizer:SGD", "input:int32", "api:Sequential"],
     seq((6,), lambda: L.Embedding(12, 4, mask_zero=True),
         lambda: L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode=None), input_dtype="int32"),
     comp(["mse", "mse"], sgd(0.1)),
     tok_data2(12, 6, TRAIL_MID, seq_reg(6, 3), seq_reg(6, 3)),
     scenario="A Sequential model ending in Bidirectional(GRU(seq), merge_mode=None): two outputs "
              "(forward, backward), each with the mask and its own masked loss")


def build_td_mask_to_lstm():
    x = keras.Input((6,), dtype="int32")
    e = L.Embedding(12, 4, mask_zero=True)(x)
    d = L.TimeDistributed(L.Dense(5, activation="tanh"))(e)
    return keras.Model(x, L.Dense(2)(L.LSTM(3)(d)))


case("td_dense_mask_to_lstm",
     ["TimeDistributed", "TimeDistributed:Dense", "TimeDistributed:masked", "Embedding", "Embedding:mask_zero",
      "LSTM", "LSTM:masked", "Dense", "loss:mse", "optimizer:SGD", "input:int32", "api:Functional"],
     build_td_mask_to_lstm, comp("mse", sgd(0.1)),
     tok_data(12, 6, TRAIL_MID, reg(2)),
     scenario="Embedding(mask_zero) -> TimeDistributed(Dense) (the file passes it mask=) -> LSTM: the "
              "mask goes through TimeDistributed to the LSTM, which stops at the last real step")
