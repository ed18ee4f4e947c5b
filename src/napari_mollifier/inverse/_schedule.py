"""The training schedule of a rate fit: the per-architecture defaults in one typed place."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import InferenceSettings
from ..optim import TrainingSchedule

__all__ = ["ARCH_TRAINING", "ArchTraining", "training_schedule"]


@dataclass(frozen=True)
class ArchTraining:
    """Training defaults of one architecture of the trainable field."""

    #: Learning rate when ``InferenceSettings.learning_rate`` is None.
    learning_rate: float = 1e-3
    #: Linear learning-rate warm-up (steps) before the cosine decay.
    warmup_steps: int = 0
    #: SOAP's epsilon (the library's default is 1e-8).
    soap_eps: float = 1e-8


#: The training defaults of each architecture (``config.ARCHS``), with the reasons.
ARCH_TRAINING: dict[str, ArchTraining] = {
    "grid": ArchTraining(learning_rate=5e-2),
    "mlp": ArchTraining(),
    # Its last layer reads the unit-amplitude Fourier embedding through factorised weights (x e),
    # so full-size first steps threw the field far off (the residual 10x up in five steps at lr
    # 3e-3) and the fit spent hundreds of steps recovering: 200 warm-up steps (docs/decisions.md).
    # SOAP: in its first steps the gradient statistics have rank 1-2; float32 rounding of the
    # projected moments in the other directions (~1e-7 of gradients ~1e4 here) divided by eps 1e-8
    # gave the last layer an update 300x the learning rate at its first step, and the fit diverged
    # (measured): eps 1e-3.
    "piratenet": ArchTraining(learning_rate=3e-3, warmup_steps=200, soap_eps=1e-3),
    "convnet": ArchTraining(),
}


def training_schedule(settings: InferenceSettings) -> TrainingSchedule:
    """How a fit with these settings trains (:func:`napari_mollifier.optim.train`).

    ``settings.training_steps`` steps with the architecture's defaults (:data:`ARCH_TRAINING`)
    where the settings leave them open, cosine decay to 5 %, the settings' reporting and
    alignment logging. SOAP preconditions weight matrices; the free per-pixel field of
    ``arch="grid"`` is not one, so it trains with Adam whatever is asked (docs/method.md)."""
    arch = ARCH_TRAINING[settings.arch]
    return TrainingSchedule(
        steps=settings.training_steps,
        learning_rate=settings.learning_rate or arch.learning_rate,
        warmup_steps=arch.warmup_steps,
        optimizer="adam" if settings.arch == "grid" else settings.optimizer,
        soap_eps=arch.soap_eps,
        report_every=settings.report_every,
        alignment_every=settings.alignment_every,
    )
