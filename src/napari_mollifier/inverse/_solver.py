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

This module holds the fit (:func:`fit_rates`: read-out, loss terms, final maps) and its results;
the training loop itself (optimiser, learning-rate schedule, divergence guard, alignment logging)
is the package's shared :func:`napari_mollifier.optim.train`, with the schedule of
:func:`~napari_mollifier.inverse._schedule.training_schedule`. The problem it trains on (data,
crop, rate basis and solve, residual) is :class:`~napari_mollifier.inverse._problem.RateProblem`,
the trainable fields are built in ``_fields``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from ..config import InferenceSettings
from ..optim import TrainingOutcome, train
from ..physics import ChromatinModel
from ._device import resolve_device
from ._fields import _field_derivatives
from ._problem import RateProblem, _preconditioner, estimate_noise
from ._schedule import training_schedule
from ._status import assess_fit
from ._uncertainty import SD_FIELDS, rate_uncertainty, uncertainty_record

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
    #: Standard deviations of the maps (same grid, NaN outside the analysed region), None when not
    #: estimated (``settings.uncertainty`` "none", a diverged or cancelled fit).
    gamma_me_sd: np.ndarray | None = None
    gamma_ac_sd: np.ndarray | None = None
    lam_sd: np.ndarray | None = None
    #: How the sd maps were obtained: method, its figures, median sd / |map| of each map.
    uncertainty: dict = field(default_factory=dict)


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
    d_end = d0  # the final field's derivatives (for the uncertainty), None when training broke it
    history: list = []
    losses = {"data": data0, "residual": phys0, "total": data0 + phys0}
    u_last = d0["u"]
    schedule = training_schedule(settings)
    steps = schedule.steps
    outcome = TrainingOutcome(steps_done=0, total_steps=0)
    diverged_step, message = None, ""
    if steps:
        groups, derivs_fn = _field_derivatives(
            problem, settings, _preconditioner(problem, s_d, s_r, mean_rate), smooth
        )

        def loss_terms():
            d = derivs_fn()
            coef = problem.solve(d)
            terms = {
                "data": problem.data_misfit(d) / s_d**2,
                "residual": problem.residual_energy(d, coef) / s_r**2,
            }
            # The state of the step: the maps of the last good step are kept when a later one diverges.
            return terms, (coef.detach(), d["u"].detach())

        params = [p for ps in groups.values() for p in ps]
        for item in train(loss_terms, params, schedule, cancel=cancel):
            if isinstance(item, TrainingOutcome):
                outcome = item
                break
            history.append(dict(step=item.step, **item.losses))
            coef_step, u_step = item.state
            yield ProgressEvent(
                item.step,
                steps,
                dict(item.losses),
                time.perf_counter() - t0,
                maps=problem.maps(coef_step, u_step),
                box=problem.box,
            )
        if outcome.state is not None:
            coef, u_last = outcome.state
            losses = dict(outcome.losses)
        if outcome.diverged:
            d_end = None
            diverged_step = outcome.diverged_step
            message = (
                f"training diverged at step {diverged_step} ({outcome.reason}); kept the maps of step "
                f"{diverged_step - 1}; lower the learning rate or check the input"
            )
        else:
            # Autodiff derivatives need the autograd graph: no no_grad for them, detached instead.
            with torch.set_grad_enabled(settings.derivatives == "autodiff"):
                d = {k: v.detach() for k, v in derivs_fn().items()}
            coef_end = problem.solve(d)
            if bool(torch.isfinite(coef_end).all()) and bool(torch.isfinite(d["u"]).all()):
                coef, u_last, d_end = coef_end, d["u"], d
            else:  # the last update broke the field: keep the maps of the last step
                d_end = None
                diverged_step = steps + 1
                message = (
                    f"training diverged after the last step (NaN/Inf field); kept the maps of step {steps}"
                )
    maps = problem.maps(coef, u_last)
    analysed = np.zeros(problem.full_shape, dtype=bool)
    analysed[problem.box] = problem.interior.cpu().numpy()
    full = {k: problem.to_full(maps[k]) for k in ("gamma_me", "gamma_ac", "lambda", "phi_hat")}
    verdict = assess_fit(
        *(full[k][analysed] for k in ("gamma_me", "gamma_ac", "lambda", "phi_hat")),
        dict(losses, s_d=s_d),
        trained=outcome.steps_done > 0,
        method=settings.method,
        diverged_message=message,
        cancelled=outcome.cancelled,
        steps_done=outcome.steps_done,
    )
    unc = None
    if settings.uncertainty != "none" and d_end is not None and not outcome.cancelled:
        unc = rate_uncertainty(
            problem, d_end, coef, maps, settings, phi, mask, pixel_size_nm, model, noise, s_d, cancel
        )
    sd = {k: None if unc is None else problem.to_full(getattr(unc, a)) for k, a in SD_FIELDS}
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
        steps_done=outcome.steps_done,
        cancelled=outcome.cancelled,
        settings=settings.model_dump(),
        diverged=verdict.status == "diverged",
        diverged_step=diverged_step,
        message=verdict.reason,
        status=verdict.status,
        status_reason=verdict.reason,
        checks=verdict.figures,
        alignment=outcome.alignment,
        time_per_step_s=outcome.time_per_step_s,
        gamma_me_sd=sd["gamma_me"],
        gamma_ac_sd=sd["gamma_ac"],
        lam_sd=sd["lambda"],
        uncertainty=uncertainty_record(unc, sd, full),
    )
    yield ProgressEvent(
        fit.steps_done, steps, dict(losses), fit.runtime_s, maps=maps, done=True, box=problem.box
    )
    yield fit
