"""Optimisation for PINNs: the shared training loop, SOAP/Adam, gradient alignment, gradient-norm
loss weights."""

from ._alignment import alignment_score, loss_term_gradients
from ._loop import (
    DIVERGENCE_FACTOR,
    TrainingEvent,
    TrainingOutcome,
    TrainingSchedule,
    divergence_reason,
    run_training,
    train,
)
from ._optimizers import OPTIMIZERS, make_optimizer
from ._weighting import GradNormWeights

__all__ = [
    "DIVERGENCE_FACTOR",
    "OPTIMIZERS",
    "GradNormWeights",
    "TrainingEvent",
    "TrainingOutcome",
    "TrainingSchedule",
    "alignment_score",
    "divergence_reason",
    "loss_term_gradients",
    "make_optimizer",
    "run_training",
    "train",
]
