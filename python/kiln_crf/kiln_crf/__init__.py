"""kiln_crf: a linear-chain CRF layer and its loss for Keras 3, as Kiln compiles them.

    import kiln_crf
    crf = kiln_crf.CRF()
    model.compile(optimizer="adam", loss=kiln_crf.CRFLoss(crf))

Both are registered for serialization (package "kiln_crf"), so `keras.saving.load_model`
restores them once this package is imported.
"""
from .chain import nll, viterbi
from .layer import CRF
from .loss import CRFLoss

__all__ = ["CRF", "CRFLoss", "nll", "viterbi"]
__version__ = "0.1.0"
