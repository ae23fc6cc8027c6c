# Attention layers and LayerNormalization (issue 10): LayerNormalization, Attention,
# AdditiveAttention, MultiHeadAttention, and a small Transformer encoder.
# Runs in gen_cases.py's namespace (case, seq, comp, f32, reg, ...).

from keras import ops as _ops


def _ids(rng, n, t, vocab):
    return rng.integers(1, vocab, (n, t)).astype(np.int32)


def _attn_data(shapes, ty, n_pred=10, n_train=24, masked=(), vocab=9):
    """One input per entry of shapes: (t, f) floats, or (t,) int ids (1..vocab-1, with
    mask_zero padding from keep_pattern when the input's index is in `masked`)."""
    def one(rng, n, k, s):
        if len(s) == 2:
            return f32(rng, n, *s)
        if k in masked:
            return masked_tokens(rng, n, s[0], vocab, TRAIL_MID)
        return _ids(rng, n, s[0], vocab)

    def make(rng):
        x = [one(rng, n_pred, k, s) for k, s in enumerate(shapes)]
        tx = [one(rng, n_train, k, s) for k, s in enumerate(shapes)]
        return x, None, tx, [ty(rng, n_train)]
    return make


# ---------------------------------------------------------------- LayerNormalization

case("layer_norm_dense",
     ["LayerNormalization", "Dense", "Dense:relu", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((6,), lambda: L.Dense(8, activation="relu"), lambda: L.LayerNormalization(),
         lambda: L.Dense(3)),
     comp("mse", sgd(0.1)), dense_data(6, reg(3)), wscale=1.0,
     scenario="Dense(relu) -> LayerNormalization() (axis -1, epsilon 1e-3, gamma and beta) -> "
              "Dense: the normalised features are scaled by gamma and shifted by beta, which "
              "training changes")

case("layer_norm_axes_seq",
     ["LayerNormalization", "LayerNormalization:axes", "LayerNormalization:epsilon", "Dense",
      "Dense:3d", "loss:mse", "optimizer:Adam", "api:Sequential"],
     seq((5, 4), lambda: L.LayerNormalization(axis=[-2, -1], epsilon=1e-5),
         lambda: L.Dense(2)),
     comp("mse", adam(0.02)), dense_data((5, 4), seq_reg(5, 2), xscale=2.0),
     scenario="LayerNormalization(axis=[-2, -1], epsilon=1e-5) on (5, 4) sequences: mean and "
              "variance over both axes of each sample, gamma and beta of shape (5, 4)")

case("layer_norm_no_center_time_axis",
     ["LayerNormalization", "LayerNormalization:axes", "LayerNormalization:no_center", "Dense",
      "Dense:3d", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((6, 3), lambda: L.LayerNormalization(axis=1, center=False), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)), dense_data((6, 3), seq_reg(6, 2)),
     scenario="LayerNormalization(axis=1, center=False): normalised over the time axis of each "
              "feature, gamma of shape (6,) broadcast over the features, no beta")

case("layer_norm_no_scale_rms",
     ["LayerNormalization", "LayerNormalization:no_scale", "LayerNormalization:rms_scaling",
      "Dense", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((5,), lambda: L.LayerNormalization(scale=False), lambda: L.Dense(4),
         lambda: L.LayerNormalization(rms_scaling=True), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)), dense_data(5, reg(2)),
     scenario="LayerNormalization(scale=False) (beta only), then LayerNormalization(rms_scaling="
              "True) (Keras' deprecated form: x * rsqrt(var + eps) * gamma, no beta)")


# ---------------------------------------------------------------- Attention, AdditiveAttention

def build_attention_dot():
    q = keras.Input((4, 3), name="q")
    v = keras.Input((6, 3), name="v")
    a = L.Attention(use_scale=True)([q, v])
    return keras.Model([q, v], L.Dense(2)(L.Flatten()(a)))


case("attention_dot_scale",
     ["Attention", "Attention:dot", "Attention:use_scale", "Flatten", "Dense", "input:multiple",
      "loss:mse", "optimizer:SGD", "api:Functional"],
     build_attention_dot, comp("mse", sgd(0.1)), _attn_data([(4, 3), (6, 3)], reg(2)),
     scenario="Attention(use_scale=True)([query (4, 3), value (6, 3)]): scores q.k times a "
              "learned scalar, softmax over the 6 value steps, weighted sum of value")


def build_attention_concat_key():
    q = keras.Input((4, 3), name="q")
    v = keras.Input((5, 2), name="v")
    k = keras.Input((5, 3), name="k")
    a = L.Attention(use_scale=True, score_mode="concat")([q, v, k])
    return keras.Model([q, v, k], L.Dense(2)(L.Flatten()(a)))


case("attention_concat_key",
     ["Attention", "Attention:concat", "Attention:use_scale", "Attention:key", "Flatten", "Dense",
      "input:multiple", "loss:mse", "optimizer:Adam", "api:Functional"],
     build_attention_concat_key, comp("mse", adam(0.02)),
     _attn_data([(4, 3), (5, 2), (5, 3)], reg(2)),
     scenario="Attention(use_scale=True, score_mode='concat')([query, value, key]): scores "
              "concat_score_weight * sum(tanh(scale * (q + k))), the key (5, 3) differs from the "
              "value (5, 2)")


def build_attention_masked():
    qi = keras.Input((5,), dtype="int32", name="q_ids")
    vi = keras.Input((6,), dtype="int32", name="v_ids")
    q = L.Embedding(9, 4, mask_zero=True)(qi)
    v = L.Embedding(9, 4, mask_zero=True)(vi)
    a = L.Attention()([q, v])
    return keras.Model([qi, vi], L.Dense(2)(a))


case("attention_masked",
     ["Attention", "Attention:dot", "Attention:masked", "Embedding", "Embedding:mask_zero", "Dense",
      "Dense:3d", "input:int32", "input:multiple", "loss:mse", "loss:masked", "optimizer:SGD",
      "api:Functional"],
     build_attention_masked, comp("mse", sgd(0.2)),
     _attn_data([(5,), (6,)], seq_reg(5, 2), masked=(0, 1)),
     scenario="Attention()([query, value]) with the masks of Embedding(mask_zero) as Keras 3 "
              "passes them implicitly: masked value steps get score - 1e9, masked query steps "
              "give 0, and the output carries the query's mask to the Dense and the loss")


def build_attention_causal():
    x = keras.Input((6, 3))
    a = L.Attention(use_scale=True)([x, x], use_causal_mask=True)
    return keras.Model(x, L.Dense(2)(a))


case("attention_causal",
     ["Attention", "Attention:dot", "Attention:use_scale", "Attention:causal", "Dense", "Dense:3d",
      "loss:mse", "optimizer:SGD", "api:Functional"],
     build_attention_causal, comp("mse", sgd(0.1)), dense_data((6, 3), seq_reg(6, 2)),
     scenario="self-attention Attention(use_scale=True)([x, x], use_causal_mask=True): step i "
              "attends to steps 0..i only")


def build_attention_explicit_mask():
    qi = keras.Input((5,), dtype="int32", name="q_ids")
    vi = keras.Input((6,), dtype="int32", name="v_ids")
    q = L.Embedding(9, 4)(qi)
    v = L.Embedding(9, 4)(vi)
    qm = _ops.not_equal(qi, 0)
    vm = _ops.not_equal(vi, 0)
    a = L.Attention(use_scale=True)([q, v], mask=[qm, vm], use_causal_mask=True)
    return keras.Model([qi, vi], L.Dense(2)(L.Flatten()(a)))


case("attention_explicit_mask_causal",
     ["Attention", "Attention:dot", "Attention:use_scale", "Attention:masked", "Attention:causal",
      "Attention:explicit_mask", "Embedding", "Flatten", "Dense", "input:int32", "input:multiple",
      "loss:mse", "optimizer:Adam", "api:Functional"],
     build_attention_explicit_mask, comp("mse", adam(0.02)),
     _attn_data([(5,), (6,)], reg(2), masked=(0, 1)),
     scenario="Attention(use_scale=True)([q, v], mask=[ids_q != 0, ids_v != 0], "
              "use_causal_mask=True): masks given in the call (saved as NotEqual ops), combined "
              "with the causal mask")


def build_additive_masked():
    qi = keras.Input((5,), dtype="int32", name="q_ids")
    vi = keras.Input((6,), dtype="int32", name="v_ids")
    q = L.Embedding(9, 4, mask_zero=True)(qi)
    v = L.Embedding(9, 4, mask_zero=True)(vi)
    a = L.AdditiveAttention()([q, v])
    return keras.Model([qi, vi], L.Dense(2)(a))


case("additive_attention_masked",
     ["AdditiveAttention", "AdditiveAttention:use_scale", "AdditiveAttention:masked", "Embedding",
      "Embedding:mask_zero", "Dense", "Dense:3d", "input:int32", "input:multiple", "loss:mse",
      "loss:masked", "optimizer:Adam", "api:Functional"],
     build_additive_masked, comp("mse", adam(0.02)),
     _attn_data([(5,), (6,)], seq_reg(5, 2), masked=(0, 1)),
     scenario="AdditiveAttention()([query, value]) (Bahdanau: sum(scale * tanh(q + k)), scale a "
              "learned vector) with implicit Embedding(mask_zero) masks on both inputs")


def build_additive_noscale():
    q = keras.Input((3, 4), name="q")
    v = keras.Input((5, 4), name="v")
    a = L.AdditiveAttention(use_scale=False)([q, v])
    return keras.Model([q, v], L.Dense(2)(L.Flatten()(a)))


case("additive_attention_no_scale",
     ["AdditiveAttention", "Flatten", "Dense", "input:multiple", "loss:mse", "optimizer:SGD",
      "api:Functional"],
     build_additive_noscale, comp("mse", sgd(0.1)), _attn_data([(3, 4), (5, 4)], reg(2)),
     scenario="AdditiveAttention(use_scale=False): scores sum(tanh(q + k)), no weights")


# ---------------------------------------------------------------- MultiHeadAttention

def build_mha_self():
    x = keras.Input((5, 6))
    a = L.MultiHeadAttention(num_heads=2, key_dim=3)(x, x)
    return keras.Model(x, L.Dense(2)(L.Flatten()(a)))


case("mha_self",
     ["MultiHeadAttention", "MultiHeadAttention:self", "Flatten", "Dense", "loss:mse",
      "optimizer:SGD", "api:Functional"],
     build_mha_self, comp("mse", sgd(0.05)), dense_data((5, 6), reg(2)),
     scenario="MultiHeadAttention(num_heads=2, key_dim=3)(x, x): self-attention, query/key/value "
              "EinsumDense projections (6, 2, 3) with biases (2, 3), output projection (2, 3, 6)")


def build_mha_cross():
    q = keras.Input((4, 5), name="q")
    v = keras.Input((6, 3), name="v")
    k = keras.Input((6, 2), name="k")
    a = L.MultiHeadAttention(num_heads=3, key_dim=2, use_bias=False)(q, v, k)
    return keras.Model([q, v, k], L.Dense(2)(L.Flatten()(a)))


case("mha_cross_no_bias",
     ["MultiHeadAttention", "MultiHeadAttention:key",      "MultiHeadAttention:no_bias", "Flatten", "Dense", "input:multiple", "loss:mse",
      "optimizer:Adam", "api:Functional"],
     build_mha_cross, comp("mse", adam(0.02)), _attn_data([(4, 5), (6, 3), (6, 2)], reg(2)),
     scenario="MultiHeadAttention(num_heads=3, key_dim=2, use_bias=False)(q, v, k): "
              "query, value and key of different sizes; the output has the query's 5 features")


def build_mha_masked_causal():
    ids = keras.Input((6,), dtype="int32")
    e = L.Embedding(9, 6, mask_zero=True)(ids)
    a = L.MultiHeadAttention(num_heads=2, key_dim=4)(e, e, use_causal_mask=True)
    return keras.Model(ids, L.Dense(2)(a))


case("mha_masked_causal",
     ["MultiHeadAttention", "MultiHeadAttention:self", "MultiHeadAttention:masked",
      "MultiHeadAttention:causal", "Embedding", "Embedding:mask_zero", "Dense", "Dense:3d",
      "input:int32", "loss:mse", "loss:masked", "optimizer:SGD", "api:Functional"],
     build_mha_masked_causal, comp("mse", sgd(0.1)),
     _attn_data([(6,)], seq_reg(6, 2), masked=(0,)),
     scenario="MultiHeadAttention(2, 4)(e, e, use_causal_mask=True) after Embedding(mask_zero): "
              "the query mask (N, T, 1), the value mask (N, 1, T) and the causal mask combined; "
              "masked scores become -0.7 * float32 max as in jax.nn.dot_product_attention (rows "
              "of masked query steps average all values); the output carries the query's mask")


def build_mha_masked_cross():
    qi = keras.Input((4,), dtype="int32", name="q_ids")
    vi = keras.Input((6,), dtype="int32", name="v_ids")
    q = L.Embedding(9, 5, mask_zero=True)(qi)
    v = L.Embedding(9, 3)(vi)
    k = L.Embedding(9, 4, mask_zero=True)(vi)
    a = L.MultiHeadAttention(num_heads=2, key_dim=3)(q, v, k)
    return keras.Model([qi, vi], L.Dense(2)(L.Flatten()(a)))


case("mha_masked_key",
     ["MultiHeadAttention", "MultiHeadAttention:key", "MultiHeadAttention:masked", "Embedding",
      "Embedding:mask_zero", "Flatten", "Dense", "input:int32", "input:multiple", "loss:mse",
      "optimizer:SGD", "api:Functional"],
     build_mha_masked_cross, comp("mse", sgd(0.1)),
     _attn_data([(4,), (6,)], reg(2), masked=(0, 1)),
     scenario="MultiHeadAttention(q, v, k): masked query, unmasked value, masked key (the key's "
              "mask hides key steps). SGD, not Adam: the key bias's gradient is zero up to "
              "rounding (it shifts a row's scores alike), which Adam would blow up to full steps")


# ---------------------------------------------------------------- Transformer encoder

def _encoder_block(h, d, heads, ff):
    a = L.MultiHeadAttention(num_heads=heads, key_dim=d // heads)(h, h)
    h = L.LayerNormalization(epsilon=1e-6)(L.Add()([h, a]))
    f = L.Dense(ff, activation="relu")(h)
    f = L.Dense(d)(f)
    return L.LayerNormalization(epsilon=1e-6)(L.Add()([h, f]))


def build_transformer_encoder():
    ids = keras.Input((8,), dtype="int32", name="tokens")
    pos = keras.Input((8,), dtype="int32", name="positions")
    h = L.Add()([L.Embedding(11, 8)(ids), L.Embedding(8, 8)(pos)])
    h = _encoder_block(h, 8, 2, 16)
    return keras.Model([ids, pos], L.Dense(3, activation="softmax")(L.Flatten()(h)))


def _transformer_data(masked):
    def make(rng):
        def one(n):
            t = masked_tokens(rng, n, 8, 11, TRAIL) if masked else _ids(rng, n, 8, 11)
            return [t, np.tile(np.arange(8, dtype=np.int32), (n, 1))]
        return one(10), None, one(24), [onehot(rng, 24, 3)]
    return make


case("transformer_encoder",
     ["MultiHeadAttention", "MultiHeadAttention:self", "LayerNormalization", "Embedding", "Add",
      "Dense", "Dense:relu", "Dense:3d", "Flatten", "Dense:softmax", "input:int32",
      "input:multiple", "loss:categorical_crossentropy", "optimizer:Adam", "api:Functional"],
     build_transformer_encoder, comp("categorical_crossentropy", adam(0.01)),
     _transformer_data(False),
     scenario="a Transformer encoder block: token Embedding + position Embedding (positions as a "
              "second input) -> MultiHeadAttention(2 heads, self) -> Add -> LayerNormalization -> "
              "Dense(relu) -> Dense -> Add -> LayerNormalization -> Flatten -> Dense(softmax)")


def build_transformer_masked():
    ids = keras.Input((8,), dtype="int32", name="tokens")
    h = L.Embedding(11, 8, mask_zero=True)(ids)
    h = _encoder_block(h, 8, 2, 16)
    return keras.Model(ids, L.Dense(3, activation="softmax")(L.Flatten()(h)))


def _transformer_masked_data(rng):
    x, _, tx, ty = _transformer_data(True)(rng)
    return x[:1], None, tx[:1], ty


case("transformer_encoder_masked",
     ["MultiHeadAttention", "MultiHeadAttention:self", "MultiHeadAttention:masked",
      "LayerNormalization", "Embedding", "Embedding:mask_zero", "Add", "Dense", "Dense:relu",
      "Dense:3d", "Flatten", "Dense:softmax", "input:int32", "loss:categorical_crossentropy",
      "optimizer:Adam", "api:Functional"],
     build_transformer_masked, comp("categorical_crossentropy", adam(0.01)),
     _transformer_masked_data,
     scenario="the encoder block on padded token ids: Embedding(mask_zero) gives the "
              "MultiHeadAttention its query and value masks (padding is neither attended to nor "
              "attends); Flatten drops the mask before the softmax head")


def build_mha_clears_masks():
    ids = keras.Input((6,), dtype="int32")
    e = L.Embedding(9, 4, mask_zero=True)(ids)
    a = L.MultiHeadAttention(num_heads=2, key_dim=2)(e, e)
    c = L.Attention()([a, e])
    return keras.Model(ids, L.Dense(2)(c))


case("mha_clears_input_masks",
     ["MultiHeadAttention", "MultiHeadAttention:masked", "Attention", "Attention:masked",
      "Embedding", "Embedding:mask_zero", "Dense", "Dense:3d", "input:int32", "loss:mse",
      "loss:masked", "optimizer:SGD", "api:Functional"],
     build_mha_clears_masks, comp("mse", sgd(0.1)),
     _attn_data([(6,), ], seq_reg(6, 2), masked=(0,)),
     scenario="Keras 3's MultiHeadAttention removes the masks of the tensors it is called on "
              "(set_keras_mask(x, None)): the Attention([mha_out, e]) after it sees the query mask "
              "MultiHeadAttention passes on, but no value mask on e")


def build_mha_attention_mask():
    q = keras.Input((4, 3), name="q")
    v = keras.Input((5, 3), name="v")
    am = keras.Input((4, 5), name="attention_mask")
    a = L.MultiHeadAttention(num_heads=2, key_dim=2)(q, v, attention_mask=am, use_causal_mask=True)
    return keras.Model([q, v, am], L.Dense(2)(L.Flatten()(a)))


def _mha_attention_mask_data(rng):
    def one(n):
        am = (rng.random((n, 4, 5)) > 0.35).astype(np.float32)
        return [f32(rng, n, 4, 3), f32(rng, n, 5, 3), am]
    return one(10), None, one(24), [f32(rng, 24, 2, scale=0.8)]


case("mha_attention_mask",
     ["MultiHeadAttention", "MultiHeadAttention:attention_mask", "MultiHeadAttention:causal",
      "Flatten", "Dense", "input:multiple", "loss:mse", "optimizer:SGD", "api:Functional"],
     build_mha_attention_mask, comp("mse", sgd(0.1)), _mha_attention_mask_data,
     scenario="MultiHeadAttention(2, 2)(q, v, attention_mask=m, use_causal_mask=True) with m a "
              "float (N, 4, 5) input of 0/1 (Keras casts it to bool) combined with the causal mask; "
              "rows with no visible key average all values")


def build_transformer_masked_positions():
    ids = keras.Input((8,), dtype="int32", name="tokens")
    pos = keras.Input((8,), dtype="int32", name="positions")
    h = L.Add()([L.Embedding(11, 8, mask_zero=True)(ids), L.Embedding(8, 8)(pos)])
    h = _encoder_block(h, 8, 2, 16)
    return keras.Model([ids, pos], L.Dense(3, activation="softmax")(L.Flatten()(h)))


case("transformer_encoder_masked_positions",
     ["MultiHeadAttention", "MultiHeadAttention:self", "MultiHeadAttention:masked",
      "LayerNormalization", "Embedding", "Embedding:mask_zero", "Add", "Add:masked", "Dense",
      "Dense:relu", "Dense:3d", "Flatten", "Dense:softmax", "input:int32", "input:multiple",
      "loss:categorical_crossentropy", "optimizer:Adam", "api:Functional"],
     build_transformer_masked_positions, comp("categorical_crossentropy", adam(0.01)),
     _transformer_data(True),
     scenario="the encoder block on padded token ids plus a position Embedding: as Keras 3's "
              "Merge.compute_mask has it, Add gives no mask when one input has none (else the "
              "logical or), so here the MultiHeadAttention sees no mask and padding is attended")
