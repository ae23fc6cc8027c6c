"""The CRF layer."""
import weakref

import keras
from keras import ops

from . import chain

# The CRF layer most recently called in training mode, by layer name. A CRFLoss loaded
# from a saved model knows its layer only by name; it takes the layer that ran the forward
# pass of the same training step (see CRFLoss).
_TRAINING_CALLS = {}


def last_training_call(name):
    """The CRF layer named `name` that most recently ran with training=True, or None."""
    ref = _TRAINING_CALLS.get(name)
    return ref() if ref is not None else None


@keras.saving.register_keras_serializable(package="kiln_crf")
class CRF(keras.layers.Layer):
    """A linear-chain conditional random field over per-step tag scores.

    Input: emission scores (batch, T, n), usually from `TimeDistributed(Dense(n))`; the
    number of tags n is the input's last dimension. The layer consumes the Keras mask
    (from `Embedding(mask_zero=True)` or `Masking`): masked steps are skipped and the
    chain links the unmasked ones.

    Weights, in `get_weights()` order: `transitions` (n, n), where [i, j] scores tag i
    followed by tag j; `start_transitions` (n,); `end_transitions` (n,).

    Output:
      - inference (`predict`, `training=False`): the Viterbi path, int32 (batch, T), 0 at
        masked steps;
      - training: float (batch, T, n + 1), the emissions followed by the mask as 0/1, which
        is what `CRFLoss` reads.

    Args:
        transitions_initializer: initializer of `transitions` (default "glorot_uniform").
        boundary_initializer: initializer of the start and end scores (default "zeros").
        **kwargs: the standard layer arguments (name, trainable, dtype).
    """

    def __init__(self, transitions_initializer="glorot_uniform", boundary_initializer="zeros",
                 **kwargs):
        super().__init__(**kwargs)
        self.transitions_initializer = keras.initializers.get(transitions_initializer)
        self.boundary_initializer = keras.initializers.get(boundary_initializer)
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def build(self, input_shape):
        n = input_shape[-1]
        if n is None:
            raise ValueError("CRF layer %r: the last dimension of its input (the number of tags) "
                             "must be known; got input shape %s." % (self.name, tuple(input_shape)))
        self.transitions = self.add_weight(shape=(n, n), name="transitions",
                                           initializer=self.transitions_initializer)
        self.start_transitions = self.add_weight(shape=(n,), name="start_transitions",
                                                 initializer=self.boundary_initializer)
        self.end_transitions = self.add_weight(shape=(n,), name="end_transitions",
                                               initializer=self.boundary_initializer)
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={-1: n})

    @property
    def num_tags(self):
        return int(self.transitions.shape[0])

    def call(self, inputs, mask=None, training=None):
        if training:
            _TRAINING_CALLS[self.name] = weakref.ref(self)
            if mask is None:
                steps = ops.ones_like(inputs[:, :, :1])
            else:
                steps = ops.cast(mask, inputs.dtype)[:, :, None]
            return ops.concatenate([inputs, steps], axis=-1)
        if mask is None:
            mask = ops.ones_like(inputs[:, :, 0], dtype="bool")
        return chain.viterbi(inputs, mask, self.transitions, self.start_transitions,
                             self.end_transitions)

    def compute_mask(self, inputs, mask=None):
        # The CRF consumes the mask: the loss gets it in the training output instead.
        return None

    def compute_output_spec(self, inputs, mask=None, training=None):
        shape = tuple(inputs.shape)
        if training:
            return keras.KerasTensor(shape[:-1] + (shape[-1] + 1,), dtype=self.compute_dtype)
        return keras.KerasTensor(shape[:-1], dtype="int32")

    def get_config(self):
        config = super().get_config()
        config.update({
            "transitions_initializer": keras.initializers.serialize(self.transitions_initializer),
            "boundary_initializer": keras.initializers.serialize(self.boundary_initializer),
        })
        return config
