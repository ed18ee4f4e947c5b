"""The inverse solver: rate maps from one steady-state image, as a generator of progress events.

Unknowns: a field g (free per-pixel values, or a coordinate MLP) whose mollified version
``phi_hat = g * eta`` fits the data, and two smooth rate maps on a coarse bicubic basis.
Given phi_hat the steady-state residual is *linear* in the rate coefficients, so each step
solves for them exactly (a small regularised least-squares problem: variable projection) and
the optimiser moves only g. Because the coefficients are optimal, the gradient of the loss
with respect to g is the same with them held fixed (envelope theorem): they are detached.

Loss (per pixel means):

    L = mean_data((phi_hat - phi)^2) / s_d^2 + mean_interior(r^2) / s_r^2

with ``s_d = max(noise level of the data, noise_floor)`` and ``s_r = residual_tolerance x rms
of the reaction term Gamma_me (1 - phi_hat)`` of the first (direct) read-out: the PDE must hold
to a few percent of the reaction, and phi_hat must stay within the noise of the data.

This module holds the training loop (:func:`fit_rates`: optimiser, learning-rate schedule,
divergence guard) and its results; the problem it trains on (data, crop, rate basis and solve,
residual) is :class:`~napari_mollifier.inverse._problem.RateProblem`, the trainable fields are
built in ``_fields``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from ..config import InferenceSettings
from ..optim import make_optimizer
from ..physics import ChromatinModel
from ._device import resolve_device
from ._fields import _field_derivatives
from ._problem import RateProblem, _preconditioner, estimate_noise
from ._status import assess_fit

__all__ = ["ProgressEvent", "RateFit", "fit_rates"]


@dataclass
class ProgressEvent:
    """What the solver reports every ``report_every`` steps (and at the end)."""

    step: int
    total_steps: int
    losses: dict
    elapsed_s: float
    # Current maps on the analysed crop (float32 numpy, NaN outside the analysed region).
    maps: dict | None = None
    done: bool = False
    # Where the crop lies in the full image: maps go to ``full[box]`` (slices of rows, columns).
    box: tuple | None = None


@dataclass
class RateFit:
    """Result of a fit on the full image grid (NaN outside the analysed region)."""

    gamma_me: np.ndarray
    gamma_ac: np.ndarray
    lam: np.ndarray
    phi_hat: np.ndarray
    analysed: np.ndarray
    losses: dict
    history: list = field(default_factory=list)
    runtime_s: float = 0.0
    device: str = "cpu"
    steps_done: int = 0
    cancelled: bool = False
    settings: dict = field(default_factory=dict)
    # Training stopped at a NaN/Inf or exploding loss (status "diverged"); the maps are those of the
    # last good step. ``message`` is the status reason ("" when ok), kept for older callers.
    diverged: bool = False
    diverged_step: int | None = None
    message: str = ""
    #: "ok", "failed", "diverged" or "cancelled" (:func:`~._status.assess_fit`): whether the maps
    #: can be read as rates. ``status_reason`` says why not in one sentence ("" when ok).
    status: str = "ok"
    status_reason: str = ""
    #: The figures the status rests on (negative-rate fractions, data term, NaN/Inf count).
    checks: dict = field(default_factory=dict)
    #: (step, alignment score of the data and residual gradients) every ``alignment_every`` steps.
    alignment: list = field(default_factory=list)
    #: Mean wall time of one training step, the alignment logging excluded (0 without training).
    time_per_step_s: float = 0.0


#: Default learning rate per architecture (others: 1e-3).
DEFAULT_LR = {"grid": 5e-2, "piratenet": 3e-3}
#: Linear learning-rate warm-up (steps) before the cosine decay, per architecture (none: 0).
#: PirateNet: its last layer reads the unit-amplitude Fourier embedding through factorised
#: weights (x e), so full-size first steps threw the field far off (the residual 10x up in five
#: steps at lr 3e-3) and the fit spent hundreds of steps recovering (docs/decisions.md).
WARMUP_STEPS = {"piratenet": 200}
#: SOAP's epsilon per architecture (default: the library's 1e-8). In SOAP's first steps the
#: gradient statistics have rank 1-2; float32 rounding of the projected moments in the other
#: directions (~1e-7 of gradients ~1e4 here) divided by eps 1e-8 gave PirateNet's last layer an
#: update 300x the learning rate at its first step, and the fit diverged (measured).
SOAP_EPS = {"piratenet": 1e-3}


def _optimizer(settings: InferenceSettings, groups: dict):
    """The optimiser of the fit (:func:`napari_mollifier.optim.make_optimizer`, PINN settings).

    SOAP preconditions weight matrices; a free per-pixel field is not one, so it gets Adam
    (docs/method.md)."""
    lr = settings.learning_rate or DEFAULT_LR.get(settings.arch, 1e-3)
    params = [p for ps in groups.values() for p in ps]
    if settings.optimizer == "adam" or "free_field" in groups:
        return make_optimizer("adam", params, lr=lr)
    return make_optimizer("soap", params, lr=lr, eps=SOAP_EPS.get(settings.arch, 1e-8))


def _scheduler(opt, steps: int, warmup: int):
    """Cosine decay of the learning rate to 5 % over the fit, after a linear rise from 1 % over
    ``warmup`` steps (at most a sixth of the fit)."""
    warmup = min(warmup, steps // 6)
    if warmup <= 0:
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=steps, eta_min=0.05 * opt.param_groups[0]["lr"]
        )

    def factor(i):
        if i < warmup:
            return 0.01 + 0.99 * i / warmup
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (i - warmup) / (steps - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


#: A loss this many times above the lowest one seen in the fit counts as diverged.
DIVERGENCE_FACTOR = 1e4


def _divergence(loss: float, best: float) -> str:
    """Why a training loss means divergence ("" when it does not): NaN/Inf, or an explosion to
    more than :data:`DIVERGENCE_FACTOR` times the lowest loss so far."""
    if not math.isfinite(loss):
        return f"loss {loss}"
    if math.isfinite(best) and loss > DIVERGENCE_FACTOR * max(best, 1e-12):
        return f"loss {loss:.3g} exploded from {best:.3g}"
    return ""


def fit_rates(
    phi: np.ndarray,
    mask: np.ndarray,
    pixel_size_nm: float,
    settings: InferenceSettings | None = None,
    *,
    model: ChromatinModel = ChromatinModel(),
    cancel: threading.Event | None = None,
) -> Iterator[ProgressEvent | RateFit]:
    """Fit rate maps to a heterochromatin-fraction image; yield progress, then the result.

    Parameters
    ----------
    phi : (H, W) array
        Heterochromatin fraction in [0, 1] (already normalised).
    mask : (H, W) bool array
        The nucleus.
    pixel_size_nm : float
    settings : InferenceSettings
    cancel : threading.Event, optional
        Set it to stop after the current step; the result then holds the latest maps and
        ``cancelled=True``. Closing the generator stops it too.

    Yields
    ------
    ProgressEvent, ..., RateFit
        The last item is the :class:`RateFit`.
    """
    settings = settings or InferenceSettings()
    t0 = time.perf_counter()
    torch.manual_seed(settings.seed)
    device = resolve_device(settings.device)
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    phi = np.asarray(phi, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if phi.ndim != 2 or phi.shape != mask.shape:
        raise ValueError(f"phi must be 2-D and match the mask: phi {phi.shape}, mask {mask.shape}")
    if not np.isfinite(phi[mask]).all():
        raise ValueError("phi has NaN or infinite values inside the nucleus")
    noise = estimate_noise(phi, mask)
    s_d = max(noise, settings.noise_floor)
    problem = RateProblem(phi, mask, pixel_size_nm, settings, model, device, noise_level=s_d)
    smoothing_px = settings.init_smoothing_px
    if smoothing_px is None:
        smoothing_px = float(np.clip(1.0 + 50.0 * noise, 1.0, 3.0))

    # Direct read-out: mollified data, rates by one least-squares solve.
    with torch.no_grad():
        d0 = problem.derivatives(problem.phi)
        coef = problem.solve(d0)
        k = problem.n_coef
        # The residual scale comes from the read-out of lightly smoothed data: on raw noisy
        # data the 4th derivatives make the read-out (and its reaction scale) 10-100x too
        # large, while smoothing biases the rates by a factor ~2 at most, fine for a weight.
        from scipy.ndimage import gaussian_filter

        smooth = torch.as_tensor(
            gaussian_filter(problem.phi.cpu().numpy(), smoothing_px), dtype=problem.dtype, device=device
        )
        ds = problem.derivatives(smooth)
        coef_s = problem.solve(ds)
        inside = problem.interior
        react = problem.basis.expand(coef_s[:k])[inside] * (1 - ds["u"][inside].double())
        s_r = settings.residual_tolerance * float(react.pow(2).mean().sqrt())
        mean_rate = float(problem.basis.expand(coef_s[:k] + coef_s[k:])[inside].mean().abs())
        # The loss terms of the read-out itself: the losses of a fit without training (method
        # direct, or stopped before its first step), so that its status is judged on them too.
        data0 = float(problem.data_misfit(d0) / s_d**2)
        phys0 = float(problem.residual_energy(d0, coef) / s_r**2)
    history: list = []
    losses = {"data": data0, "residual": phys0, "total": data0 + phys0}
    u_last = d0["u"]
    steps = settings.training_steps
    cancelled = False
    diverged_step, message, best_loss, coef_good = None, "", math.inf, coef
    alignment, train_time, steps_timed = [], 0.0, 0
    if steps:
        groups, derivs_fn = _field_derivatives(
            problem, settings, _preconditioner(problem, s_d, s_r, mean_rate), smooth
        )
        opt = _optimizer(settings, groups)
        params = [p for ps in groups.values() for p in ps]
        sched = _scheduler(opt, steps, WARMUP_STEPS.get(settings.arch, 0))
        for step in range(1, steps + 1):
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            t_step = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            d = derivs_fn()
            coef = problem.solve(d)
            data_term = problem.data_misfit(d) / s_d**2
            phys_term = problem.residual_energy(d, coef) / s_r**2
            loss = data_term + phys_term
            if settings.alignment_every and (step - 1) % settings.alignment_every == 0:
                from ..optim import alignment_score, loss_term_gradients

                t_log = time.perf_counter()
                grads = loss_term_gradients([data_term, phys_term], params)
                if all(float(g.norm()) > 0 for g in grads):
                    alignment.append((step, alignment_score(grads)))
                t_step += time.perf_counter() - t_log  # logging is not part of the step
            # Divergence guard: the loss is that of the parameters after step - 1, so a bad value
            # means the last update broke them; stop and keep the maps of the last good step.
            bad = _divergence(float(loss.detach()), best_loss)
            if bad:
                diverged_step = step
                message = (
                    f"training diverged at step {step} ({bad}); kept the maps of step {step - 1}; "
                    "lower the learning rate or check the input"
                )
                break
            best_loss = min(best_loss, float(loss.detach()))
            loss.backward()
            opt.step()
            sched.step()
            train_time += time.perf_counter() - t_step
            steps_timed += 1
            u_last = d["u"].detach()
            coef_good = coef.detach()
            losses = {
                "data": float(data_term.detach()),
                "residual": float(phys_term.detach()),
                "total": float(loss.detach()),
            }
            if step % settings.report_every == 0 or step == steps:
                history.append(dict(step=step, **losses))
                yield ProgressEvent(
                    step,
                    steps,
                    dict(losses),
                    time.perf_counter() - t0,
                    maps=problem.maps(coef, u_last),
                    box=problem.box,
                )
        if diverged_step is None:
            # Autodiff derivatives need the autograd graph: no no_grad for them, detached instead.
            with torch.set_grad_enabled(settings.derivatives == "autodiff"):
                d = {k: v.detach() for k, v in derivs_fn().items()}
            coef_end = problem.solve(d)
            if bool(torch.isfinite(coef_end).all()) and bool(torch.isfinite(d["u"]).all()):
                coef, u_last = coef_end, d["u"]
            else:  # the last update broke the field
                diverged_step = steps + 1
                message = (
                    f"training diverged after the last step (NaN/Inf field); kept the maps of step {steps}"
                )
                coef = coef_good
        else:
            coef = coef_good
    maps = problem.maps(coef, u_last)
    analysed = np.zeros(problem.full_shape, dtype=bool)
    analysed[problem.box] = problem.interior.cpu().numpy()
    steps_done = history[-1]["step"] if history else 0
    full = {k: problem.to_full(maps[k]) for k in ("gamma_me", "gamma_ac", "lambda", "phi_hat")}
    verdict = assess_fit(
        *(full[k][analysed] for k in ("gamma_me", "gamma_ac", "lambda", "phi_hat")),
        dict(losses, s_d=s_d),
        trained=steps_timed > 0,
        method=settings.method,
        diverged_message=message,
        cancelled=cancelled,
        steps_done=steps_timed,
    )
    fit = RateFit(
        gamma_me=full["gamma_me"],
        gamma_ac=full["gamma_ac"],
        lam=full["lambda"],
        phi_hat=full["phi_hat"],
        analysed=analysed,
        losses=dict(
            losses,
            noise_estimate=noise,
            s_d=s_d,
            s_r=s_r,
            smoothness=problem.smoothness,
            init_smoothing_px=smoothing_px,
        ),
        history=history,
        runtime_s=time.perf_counter() - t0,
        device=str(device),
        steps_done=steps_done,
        cancelled=cancelled,
        settings=settings.model_dump(),
        diverged=verdict.status == "diverged",
        diverged_step=diverged_step,
        message=verdict.reason,
        status=verdict.status,
        status_reason=verdict.reason,
        checks=verdict.figures,
        alignment=alignment,
        time_per_step_s=train_time / steps_timed if steps_timed else 0.0,
    )
    yield ProgressEvent(
        fit.steps_done, steps, dict(losses), fit.runtime_s, maps=maps, done=True, box=problem.box
    )
    yield fit
