# Recurrent dropout (issue 11): dropout and recurrent_dropout on LSTM, GRU, SimpleRNN and inside
# Bidirectional. Predict ignores them, so these cases check predict exactly; training with the
# masks draws Kiln's own random numbers (Keras' draws cannot be matched), and is checked by
# Tests/KilnIRTests/RecurrentDropoutTests.swift (mask statistics, gradients) and
# Tests/KilnTests/RecurrentDropoutTrainingTests.swift (a seed reproduces a training).

case("lstm_dropout_predict",
     ["LSTM", "LSTM:dropout", "LSTM:recurrent_dropout", "LSTM:return_sequences", "Dense", "Dense:3d",
      "loss:mse", "optimizer:Adam", "api:Sequential"],
     seq((7, 3), lambda: L.LSTM(5, dropout=0.3, recurrent_dropout=0.2, return_sequences=True),
         lambda: L.LSTM(4, dropout=0.25), lambda: L.Dense(2)),
     comp("mse", adam(0.01)), dense_data((7, 3), reg(2), n_pred=12, n_train=16), train=False,
     scenario="two stacked LSTMs with dropout (and recurrent_dropout on the first): predict ignores both rates")

case("gru_dropout_predict",
     ["GRU", "GRU:dropout", "GRU:recurrent_dropout", "Dense", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((6, 4), lambda: L.GRU(5, dropout=0.2, recurrent_dropout=0.4), lambda: L.Dense(3)),
     comp("mse", sgd(0.1)), dense_data((6, 4), reg(3), n_pred=12, n_train=16), train=False,
     scenario="GRU (reset_after) with dropout and recurrent_dropout: predict ignores both rates")

case("simple_rnn_dropout_predict",
     ["SimpleRNN", "SimpleRNN:dropout", "SimpleRNN:recurrent_dropout", "Dense", "loss:mse", "optimizer:SGD",
      "api:Sequential"],
     seq((8, 2), lambda: L.SimpleRNN(6, dropout=0.5, recurrent_dropout=0.5), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)), dense_data((8, 2), reg(2), n_pred=12, n_train=16), train=False,
     scenario="SimpleRNN with dropout and recurrent_dropout 0.5: predict ignores both rates")


def build_bidir_dropout():
    x = keras.Input((6,), dtype="int32")
    e = L.Embedding(12, 4, mask_zero=True)(x)
    h = L.Bidirectional(L.LSTM(3, dropout=0.2, recurrent_dropout=0.3, return_sequences=True))(e)
    return keras.Model(x, L.Dense(2)(L.GRU(3, recurrent_dropout=0.1)(h)))


case("bidir_dropout_masked_predict",
     ["Bidirectional", "Bidirectional:masked", "LSTM", "LSTM:dropout", "LSTM:recurrent_dropout", "GRU",
      "GRU:recurrent_dropout", "GRU:masked", "Embedding", "Embedding:mask_zero", "Dense", "loss:mse",
      "optimizer:Adam", "input:int32", "api:Functional"],
     build_bidir_dropout, comp("mse", adam(0.01)), tok_data(12, 6, TRAIL_MID, reg(2)), train=False,
     scenario="Embedding(mask_zero) -> Bidirectional(LSTM with dropout, recurrent_dropout) -> GRU(recurrent_dropout) "
              "on padded tokens: predict ignores the rates, masks still apply")
