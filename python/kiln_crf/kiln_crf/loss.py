"""The CRF's loss: the mean over the batch of each sequence's negative log-likelihood."""
import keras
from keras import ops

from . import chain
from .layer import CRF, last_training_call

try:
    from keras.src.backend.common.symbolic_scope import in_symbolic_scope
except ImportError:  # older Keras 3: no symbolic build of the loss before fit
    def in_symbolic_scope():
        return False


@keras.saving.register_keras_serializable(package="kiln_crf")
class CRFLoss(keras.losses.Loss):
    """Negative log-likelihood of the true tags under a `CRF` layer.

        model.compile(optimizer="adam", loss=kiln_crf.CRFLoss(crf))

    `y_true`: integer tag ids (batch, T); values at masked steps are ignored.
    `y_pred`: the CRF's training output (batch, T, n + 1), emissions then the mask.
    Each sequence's NLL is logZ - score(y_true), from the layer's three weights; the
    default reduction "sum_over_batch_size" averages it over the batch.

    The CRF's inference output is its Viterbi path, so the loss can only be computed on
    training-mode outputs: `fit` works, while `evaluate` and `validation_data` (which run
    the model with training=False) are refused with a message; score held-out data with
    `predict` instead.

    Args:
        crf: the model's `CRF` layer, or its name. A loaded model's loss knows the layer by
            name and takes the CRF of that name that ran the training step's forward pass.
        name, reduction, dtype: as for any `keras.losses.Loss`.
    """

    def __init__(self, crf, name="crf_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if isinstance(crf, CRF):
            self._layer, self._crf_name = crf, crf.name
        elif isinstance(crf, str):
            self._layer, self._crf_name = None, crf
        else:
            raise TypeError("CRFLoss(crf): crf must be a kiln_crf.CRF layer or its name; got %r."
                            % (crf,))
        self._given_dtype = dtype

    def _crf(self):
        if self._layer is None:
            layer = last_training_call(self._crf_name)
            if layer is None:
                raise ValueError("CRFLoss: no CRF layer named %r has run in training mode; the loss "
                                 "reads that layer's weights, so the model's forward pass must run "
                                 "first (as in fit), or pass the layer itself: CRFLoss(crf)."
                                 % self._crf_name)
            self._layer = layer
        return self._layer

    def call(self, y_true, y_pred):
        if len(y_pred.shape) == 2 and in_symbolic_scope():
            # fit first builds the loss on the model's symbolic output, which is the inference
            # form (batch, T); only the loss's shape matters there. The layer is not looked up
            # yet: by name, it is the one that runs the training step's forward pass.
            return ops.zeros_like(y_pred[:, 0])
        crf = self._crf()
        n = crf.num_tags
        if len(y_pred.shape) != 3 or y_pred.shape[-1] != n + 1:
            raise ValueError(
                "CRFLoss(%r) needs the CRF's training output, shape (batch, T, %d) (emissions and "
                "mask), but got shape %s: the model ran in inference mode, where the CRF outputs "
                "its Viterbi tags (model.evaluate and validation_data do that). Score held-out "
                "data with model.predict instead." % (self._crf_name, n + 1, tuple(y_pred.shape)))
        emissions = y_pred[:, :, :n]
        mask = y_pred[:, :, n] > 0.5
        return chain.nll(emissions, y_true, mask, crf.transitions, crf.start_transitions,
                         crf.end_transitions)

    def get_config(self):
        config = super().get_config()
        config["crf"] = self._crf_name
        if self._given_dtype is not None:
            config["dtype"] = self._given_dtype
        return config
