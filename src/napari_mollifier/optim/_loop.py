"""One training loop for every fit in the package: the chromatin rate solver and the benchmark problems.

:func:`train` runs ``schedule.steps`` optimiser steps on the loss terms a callable returns and yields
:class:`TrainingEvent` s along the way, then one :class:`TrainingOutcome`. It owns what the fits
share: the optimiser (:func:`~napari_mollifier.optim.make_optimizer`), the learning-rate schedule
(linear warm-up, cosine decay), the divergence guard, the gradient-alignment logging (kept out of
the step timing), cancellation, and the per-step history. It knows nothing of the problem: the
caller's ``loss_terms()`` computes the terms (and any state worth keeping, such as the rate
coefficients of the step), ``combine`` turns them into the loss that is minimised.
"""

from __future__ import annotations

import math
import operator
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

import torch

from ._alignment import alignment_score, loss_term_gradients
from ._optimizers import OPTIMIZERS, make_optimizer

__all__ = [
    "DIVERGENCE_FACTOR",
    "TrainingEvent",
    "TrainingOutcome",
    "TrainingSchedule",
    "divergence_reason",
    "run_training",
    "train",
]

#: A loss this many times above the lowest one seen in the fit counts as diverged.
DIVERGENCE_FACTOR = 1e4
#: The learning rate a warm-up starts from, as a fraction of ``learning_rate``.
WARMUP_START_FRACTION = 0.01


@dataclass(frozen=True)
class TrainingSchedule:
    """How a fit trains: steps, optimiser, learning-rate schedule, reporting.

    Attributes
    ----------
    steps : int
        Optimiser steps (0: no training).
    learning_rate : float
        Peak learning rate.
    warmup_steps : int
        Linear rise from 1 % of ``learning_rate`` over this many steps (at most a sixth of the fit)
        before the cosine decay; 0: none.
    final_lr_fraction : float
        The cosine decay ends at this fraction of ``learning_rate`` (after the last step). 1: a
        constant learning rate (no scheduler).
    optimizer : {"adam", "soap"}
        Built by :func:`~napari_mollifier.optim.make_optimizer` (PINN settings).
    soap_eps : float or None
        SOAP's epsilon (None: the library's, 1e-8); unused by Adam.
    report_every : int
        A :class:`TrainingEvent` every this many steps, and at the last step (0: the last only).
    alignment_every : int
        Log the gradient alignment score of the loss terms on steps 1, 1 + k, 1 + 2k, ... (0: never).
        Each costs one backward pass per term, kept out of the time per step.
    divergence_factor : float or None
        Stop when the sum of the loss terms is NaN/Inf or more than this many times its lowest
        value so far (:func:`divergence_reason`); None: no guard.
    """

    steps: int
    learning_rate: float
    warmup_steps: int = 0
    final_lr_fraction: float = 0.05
    optimizer: str = "adam"
    soap_eps: float | None = None
    report_every: int = 0
    alignment_every: int = 0
    divergence_factor: float | None = DIVERGENCE_FACTOR

    def __post_init__(self):
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 < self.final_lr_fraction <= 1:
            raise ValueError(f"final_lr_fraction must be in (0, 1], got {self.final_lr_fraction!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.soap_eps is not None and not self.soap_eps > 0:
            raise ValueError(f"soap_eps must be positive, got {self.soap_eps!r}")
        if self.report_every < 0 or self.alignment_every < 0:
            raise ValueError("report_every and alignment_every must be >= 0")
        if self.divergence_factor is not None and not self.divergence_factor > 1:
            raise ValueError(f"divergence_factor must be > 1, got {self.divergence_factor!r}")

    @property
    def warmup(self) -> int:
        """The warm-up steps actually taken: ``warmup_steps``, at most a sixth of the fit."""
        return min(self.warmup_steps, self.steps // 6)

    def learning_rate_at(self, step: int) -> float:
        """The learning rate of training step ``step`` (1-based; ``steps + 1`` gives the end of the
        decay, ``final_lr_fraction x learning_rate``). Closed form of what :func:`train` applies."""
        i, warmup, f = step - 1, self.warmup, self.final_lr_fraction
        if f == 1 and warmup <= 0:
            return self.learning_rate
        if i < warmup:
            return self.learning_rate * (WARMUP_START_FRACTION + (1 - WARMUP_START_FRACTION) * i / warmup)
        return self.learning_rate * (
            f + (1 - f) * 0.5 * (1 + math.cos(math.pi * (i - warmup) / (self.steps - warmup)))
        )

    def make_optimizer(self, params: list) -> torch.optim.Optimizer:
        """The optimiser of this schedule on ``params``."""
        extra = {"eps": self.soap_eps} if self.optimizer == "soap" and self.soap_eps is not None else {}
        return make_optimizer(self.optimizer, params, lr=self.learning_rate, **extra)

    def make_scheduler(self, opt: torch.optim.Optimizer):
        """The learning-rate scheduler (stepped once after every optimiser step), or None for a
        constant rate. Without warm-up it is torch's ``CosineAnnealingLR``: the same curve as
        :meth:`learning_rate_at`, computed recursively (its float rounding is what fits have used)."""
        warmup, f, steps = self.warmup, self.final_lr_fraction, self.steps
        if f == 1 and warmup <= 0:
            return None
        if warmup <= 0:
            return torch.optim.lr_scheduler.CosineAnnealingLR(
                opt, T_max=steps, eta_min=f * opt.param_groups[0]["lr"]
            )

        def factor(i):
            if i < warmup:
                return WARMUP_START_FRACTION + (1 - WARMUP_START_FRACTION) * i / warmup
            return f + (1 - f) * 0.5 * (1 + math.cos(math.pi * (i - warmup) / (steps - warmup)))

        return torch.optim.lr_scheduler.LambdaLR(opt, factor)


@dataclass
class TrainingEvent:
    """Progress of :func:`train`, every ``report_every`` steps and at the last step.

    ``losses`` are the floats of the step's loss terms and ``"total"`` (the combined loss), of the
    parameters before the step's update; ``state`` is what ``loss_terms()`` returned with them."""

    step: int
    total_steps: int
    losses: dict
    elapsed_s: float
    time_per_step_s: float
    state: Any = None


@dataclass
class TrainingOutcome:
    """The end of :func:`train`.

    Attributes
    ----------
    steps_done : int
        Optimiser steps taken (a fit cancelled before step k + 1 or diverging at step k + 1: k).
    total_steps : int
    cancelled : bool
    diverged_step : int or None
        The step whose loss tripped the divergence guard (its update was not applied).
    reason : str
        Why the guard fired ("" otherwise), e.g. ``"loss nan"``.
    best_loss : float
        Lowest sum of the loss terms seen (inf without a step).
    losses : dict
        The loss floats of the last step taken ({} without one).
    state : object
        What ``loss_terms()`` returned beside the terms at the last step taken (None without one):
        the state of the last good parameters when the fit diverged.
    alignment : list of (int, float)
        (step, alignment score of the loss terms' gradients) on the logged steps.
    time_per_step_s : float
        Mean wall time of one step taken (loss terms, combination, backward, optimiser, scheduler),
        the alignment logging excluded; 0 without steps.
    history : list of dict
        Per step taken: ``step``, ``lr`` (the learning rate it used) and the loss floats.
    """

    steps_done: int
    total_steps: int
    cancelled: bool = False
    diverged_step: int | None = None
    reason: str = ""
    best_loss: float = math.inf
    losses: dict = field(default_factory=dict)
    state: Any = None
    alignment: list = field(default_factory=list)
    time_per_step_s: float = 0.0
    history: list = field(default_factory=list)

    @property
    def diverged(self) -> bool:
        return self.diverged_step is not None


def divergence_reason(loss: float, best: float, factor: float = DIVERGENCE_FACTOR) -> str:
    """Why a training loss means divergence ("" when it does not): NaN/Inf, or an explosion to
    more than ``factor`` times the lowest loss so far (``best``; inf before the first step)."""
    if not math.isfinite(loss):
        return f"loss {loss}"
    if math.isfinite(best) and loss > factor * max(best, 1e-12):
        return f"loss {loss:.3g} exploded from {best:.3g}"
    return ""


LossTerms = Mapping[str, torch.Tensor]


def train(
    loss_terms: Callable[[], LossTerms | tuple[LossTerms, Any]],
    params: Iterable[torch.Tensor],
    schedule: TrainingSchedule,
    *,
    combine: Callable[[int, LossTerms, list], torch.Tensor] | None = None,
    cancel=None,
) -> Iterator[TrainingEvent | TrainingOutcome]:
    """Train ``params`` on the loss terms; yield progress events, then the outcome.

    Parameters
    ----------
    loss_terms : callable
        Called once per step (gradients already zeroed): a mapping of names to scalar tensors, the
        loss terms of the current parameters (e.g. ``{"data": ..., "residual": ...}``), or a pair
        (terms, state) where state is anything the caller wants back with the step (e.g. the
        detached solution of an inner solve): events carry it, and the outcome keeps that of the
        last step taken, so a diverged fit can return its last good state.
    params : iterable of tensors
        The trained parameters (those that require grad are kept).
    schedule : TrainingSchedule
    combine : callable, optional
        ``combine(step, terms, params) -> loss`` minimised at ``step`` (e.g. loss weights such as
        :class:`~napari_mollifier.optim.GradNormWeights`). Default: the sum of the terms.
    cancel : threading.Event or anything with ``is_set()``, optional
        Checked before every step; when set, training stops (``cancelled=True``).

    Yields
    ------
    TrainingEvent, ..., TrainingOutcome
        Events every ``schedule.report_every`` steps and at the last step; the outcome last.

    Notes
    -----
    Each step: zero the gradients, evaluate the terms, log the alignment (on its steps), check the
    sum of the terms with the divergence guard (that loss belongs to the parameters of the
    previous update, so on a trip the update is not applied and the previous step stays the last
    good one), combine, backward, optimiser step, scheduler step. The guard is on the unweighted
    sum so that changing loss weights cannot trip it.
    """
    params = [p for p in params if p.requires_grad]
    opt = schedule.make_optimizer(params)
    sched = schedule.make_scheduler(opt)
    steps, guard = schedule.steps, schedule.divergence_factor
    out = TrainingOutcome(steps_done=0, total_steps=steps)
    t_start, train_time = time.perf_counter(), 0.0
    for step in range(1, steps + 1):
        if cancel is not None and cancel.is_set():
            out.cancelled = True
            break
        t_step = time.perf_counter()
        lr = opt.param_groups[0]["lr"]
        opt.zero_grad(set_to_none=True)
        got = loss_terms()
        terms, state = got if isinstance(got, tuple) else (got, None)
        raw = reduce(operator.add, terms.values()) if (combine is None or guard is not None) else None
        if schedule.alignment_every and (step - 1) % schedule.alignment_every == 0:
            t_log = time.perf_counter()
            grads = loss_term_gradients(list(terms.values()), params)
            if all(float(g.norm()) > 0 for g in grads):
                out.alignment.append((step, alignment_score(grads)))
            t_step += time.perf_counter() - t_log  # logging is not part of the step
        if guard is not None:
            value = float(raw.detach())
            bad = divergence_reason(value, out.best_loss, guard)
            if bad:
                out.diverged_step, out.reason = step, bad
                break
            out.best_loss = min(out.best_loss, value)
        total = raw if combine is None else combine(step, terms, params)
        total.backward()
        opt.step()
        if sched is not None:
            sched.step()
        train_time += time.perf_counter() - t_step
        out.steps_done, out.state = step, state
        out.losses = {k: float(v.detach()) for k, v in terms.items()}
        out.losses["total"] = float(total.detach())
        out.history.append({"step": step, "lr": lr, **out.losses})
        if (schedule.report_every and step % schedule.report_every == 0) or step == steps:
            yield TrainingEvent(
                step, steps, dict(out.losses), time.perf_counter() - t_start, train_time / step, state
            )
    out.time_per_step_s = train_time / out.steps_done if out.steps_done else 0.0
    yield out


def run_training(loss_terms, params, schedule: TrainingSchedule, **kwargs) -> TrainingOutcome:
    """:func:`train` to the end, without the events: the :class:`TrainingOutcome`."""
    return deque(train(loss_terms, params, schedule, **kwargs), maxlen=1)[0]
