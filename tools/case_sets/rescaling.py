# Rescaling, added through the layer table's checklist (one file, its tests, one line).

case("rescaling_cnn",
     ["Rescaling", "Conv2D", "Conv2D:relu", "Flatten", "Dense:softmax", "loss:categorical_crossentropy",
      "optimizer:SGD", "api:Sequential"],
     seq((6, 6, 1), lambda: L.Rescaling(1.0 / 255, offset=-0.5), lambda: L.Conv2D(3, 3, activation="relu"),
         lambda: L.Flatten(), lambda: L.Dense(3, activation="softmax")),
     comp("categorical_crossentropy", sgd(0.1)),
     dense_data((6, 6, 1), cat(3), n_pred=8, n_train=20, xscale=255.0),
     scenario="pixel-sized inputs (N(0, 255)) rescaled by 1/255 and shifted by -0.5 before a Conv2D")
