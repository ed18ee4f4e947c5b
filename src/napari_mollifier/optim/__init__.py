"""Optimisation helpers for PINNs: SOAP/Adam, gradient alignment, gradient-norm loss weights."""

from ._alignment import alignment_score, loss_term_gradients
from ._optimizers import OPTIMIZERS, make_optimizer
from ._weighting import GradNormWeights

__all__ = ["OPTIMIZERS", "GradNormWeights", "alignment_score", "loss_term_gradients", "make_optimizer"]
