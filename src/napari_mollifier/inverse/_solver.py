"""The inverse solver: rate maps from one steady-state image, as a generator of progress events.

Unknowns: a field g (free per-pixel values, or a coordinate MLP) whose mollified version
``phi_hat = g * eta`` fits the data, and two smooth rate maps on a coarse bicubic basis.
Given phi_hat the steady-state residual is *linear* in the rate coefficients, so each step
solves for them exactly (a small regularised least-squares problem: variable projection) and
the optimiser moves only g. Because the coefficients are optimal, the gradient of the loss
with respect to g is the same with them held fixed (envelope theorem): they are detached.

Loss (per pixel means):

    L = mean_data((phi_hat - phi)^2) / s_d^2 + mean_interior(r^2) / s_r^2

with ``s_d = max(noise level of the data, noise_floor)`` and ``s_r = tolerance x rms of the
reaction term Gamma_me (1 - phi_hat)`` of the lightly smoothed read-out: phi_hat must stay within
the noise of the data, and the PDE hold to the tolerance (``residual_tolerance``, grown in
proportion to the noise above 3 %: :func:`residual_tolerance`).

Uncalibrated intensities (``settings.calibration``; "auto" is resolved by the input's preparation,
and means "fixed" here): "plateaus" fits data ``gain x phi + offset``
with gain and offset from the image's two modes put on a steady state's plateau levels (two fits,
``_fit_plateaus``); "joint" fits them by least squares at every step with the residual measured
relative to lap(mu) (a comparison: the field flattens while the gain grows).

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

#: ``calibration="joint"`` trains the grid field's contrast and level as two extra scalars.
GLOBAL_MODES = True


#: Noise in phi (the data term's scale s_d) above which the residual tolerance grows with it.
TOLERANCE_NOISE = 0.03


def residual_tolerance(settings: InferenceSettings, s_d: float) -> float:
    """The residual's tolerance relative to the reaction for data of noise ``s_d``:
    ``settings.residual_tolerance`` up to :data:`TOLERANCE_NOISE`, in proportion to the noise above.

    Noise in phi reaches the residual through the 4th-order operator, so a field that follows
    noisier data leaves a larger residual; held to a fixed tolerance, the fit smooths the field
    instead, and a smoothed interface reads as strong reactions (benchmarks/results/noise_bias.md).
    Measured on simulated nuclei (benchmarks/results/verdict_table.md): with the tolerance fixed at
    0.5, 5 % noise put the mean rates 1.15x high (benchmarks/results/noise_bias.md), 10 % 3.0-7.4x
    and calibrated 200-count renders 1.7x (joint_calibration.md); scaled, the means came within 6 %
    at 5-10 % noise and within 7 % on calibrated renders of 50-1000 counts (likelihood.md).
    """
    base = float(settings.residual_tolerance)
    if not settings.noise_scaled_tolerance:
        return base
    return base * max(1.0, float(s_d) / TOLERANCE_NOISE)


def _with_global_modes(problem, settings, precond, start):
    """The grid field with its contrast and level as two extra scalars, phi_hat = exp(s) u + t:
    Adam moves each cosine coefficient by about the learning rate, so rescaling the whole field
    through them alone is slow."""
    from ..mollifier._dct import dctn
    from ._fields import _grid_field

    groups, coefficients = _grid_field(problem, precond, start)
    ones = dctn(torch.ones_like(problem.phi))
    s = torch.nn.Parameter(torch.zeros((), dtype=problem.dtype, device=problem.device))
    t = torch.nn.Parameter(torch.zeros((), dtype=problem.dtype, device=problem.device))

    def derivs():
        return problem.derivatives_from_spectrum(s.exp() * coefficients() + t * ones)

    return dict(groups, levels=[s, t]), derivs


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
    if settings.psf_bounds_nm is not None:
        from ._psf_width import fit_psf_width

        yield from fit_psf_width(phi, mask, pixel_size_nm, settings, model=model, cancel=cancel)
        return
    if settings.calibration == "plateaus":
        yield from _fit_plateaus(phi, mask, pixel_size_nm, settings, model=model, cancel=cancel)
        return
    t0 = time.perf_counter()
    torch.manual_seed(settings.seed)
    device = resolve_device(settings.device)
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    phi, mask = _checked(phi, mask)
    noise = estimate_noise(phi, mask)
    s_d = max(noise, settings.noise_floor)
    weights, likelihood = None, {}
    if settings.likelihood == "poisson":
        from ._likelihood import poisson_weights

        weights, likelihood = poisson_weights(phi, mask)
    problem = RateProblem(
        phi, mask, pixel_size_nm, settings, model, device, noise_level=s_d, data_weights=weights
    )
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
        tolerance = residual_tolerance(settings, s_d)
        s_r = tolerance * float(react.pow(2).mean().sqrt())
        mean_rate = float(problem.basis.expand(coef_s[:k] + coef_s[k:])[inside].mean().abs())
        # The loss terms of the read-out itself: the losses of a fit without training (method
        # direct, or stopped before its first step), so that its status is judged on them too.
        joint = settings.calibration == "joint"
        if joint:
            misfit0, gain, offset = problem.calibrated_misfit(d0)
            data0 = float(misfit0 / s_d**2)
            phys0 = float(problem.relative_residual(d0, coef) / tolerance**2)
            levels = {"gain": float(gain), "offset": float(offset)}
        else:
            data0 = float(problem.data_misfit(d0) / s_d**2)
            phys0 = float(problem.residual_energy(d0, coef) / s_r**2)
            levels = {}
    d_end = d0  # the final field's derivatives (for the uncertainty), None when training broke it
    history: list = []
    losses = {"data": data0, "residual": phys0, "total": data0 + phys0}
    u_last = d0["u"]
    schedule = training_schedule(settings)
    steps = schedule.steps
    outcome = TrainingOutcome(steps_done=0, total_steps=0)
    diverged_step, message = None, ""
    if steps:
        precond = _preconditioner(problem, s_d, s_r, mean_rate)
        if joint and GLOBAL_MODES and settings.arch == "grid" and problem.nested:
            groups, derivs_fn = _with_global_modes(problem, settings, precond, smooth)
        else:
            groups, derivs_fn = _field_derivatives(problem, settings, precond, smooth)

        def loss_terms():
            d = derivs_fn()
            coef = problem.solve(d)
            if joint:
                misfit, gain, offset = problem.calibrated_misfit(d)
                terms = {
                    "data": misfit / s_d**2,
                    "residual": problem.relative_residual(d, coef) / tolerance**2,
                }
                return terms, (coef.detach(), d["u"].detach(), float(gain), float(offset))
            terms = {
                "data": problem.data_misfit(d) / s_d**2,
                "residual": problem.residual_energy(d, coef) / s_r**2,
            }
            # The state of the step: the maps of the last good step are kept when a later one diverges.
            return terms, (coef.detach(), d["u"].detach(), None, None)

        params = [p for ps in groups.values() for p in ps]
        for item in train(loss_terms, params, schedule, cancel=cancel):
            if isinstance(item, TrainingOutcome):
                outcome = item
                break
            coef_step, u_step, gain_step, offset_step = item.state
            history.append(
                dict(step=item.step, **item.losses)
                | ({"gain": gain_step, "offset": offset_step} if joint else {})
            )
            yield ProgressEvent(
                item.step,
                steps,
                dict(item.losses),
                time.perf_counter() - t0,
                maps=problem.maps(coef_step, u_step),
                box=problem.box,
            )
        if outcome.state is not None:
            coef, u_last, gain_last, offset_last = outcome.state
            losses = dict(outcome.losses)
            if joint:
                levels = {"gain": gain_last, "offset": offset_last}
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
                if joint:
                    gain, offset = problem.levels(problem.imaged(d))
                    levels = {"gain": float(gain), "offset": float(offset)}
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
            residual_tolerance=tolerance,
            smoothness=problem.smoothness,
            init_smoothing_px=smoothing_px,
            **levels,
            **likelihood,
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


#: Most refits after the first: the calibration is re-read from the fitted field's plateaus.
PLATEAU_REFINEMENTS = 2
#: Refits stop once the fitted field's modes sit this close to the plateau levels (gain relative,
#: offset absolute).
PLATEAU_TOLERANCE = 0.005
#: No refit when the calibrated data's noise (estimated, in phi) exceeds this: the fitted field's
#: plateaus then lie inside the true ones (the fit smooths them), and following them lowered the
#: contrast further and raised the rates (measured at 200 counts per pixel, noise 0.073: mean rates
#: 1.73x -> 2.2x; 50 counts: 0.14; 1000 counts: 0.033-0.04, where the refits helped).
MAX_REFINEMENT_NOISE = 0.05


def _checked(phi, mask) -> tuple[np.ndarray, np.ndarray]:
    """phi (float64) and the mask (bool), refused unless 2-D, of one shape and finite inside."""
    phi = np.asarray(phi, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if phi.ndim != 2 or phi.shape != mask.shape:
        raise ValueError(f"phi must be 2-D and match the mask: phi {phi.shape}, mask {mask.shape}")
    if not np.isfinite(phi[mask]).all():
        raise ValueError("phi has NaN or infinite values inside the nucleus")
    return phi, mask


def _fit_plateaus(phi, mask, pixel_size_nm, settings, *, model, cancel, levels=None):
    """``calibration="plateaus"``: the data are ``gain x phi + offset``; gain and offset put the
    two modes of the lightly smoothed data (1 px) on the plateau levels of a steady state
    (:data:`~._calibration.PLATEAU_LEVELS`), the fit runs on the calibrated data, and the
    calibration is then re-read from the fitted field's modes and the fit repeated until they sit
    on the levels (at most ``PLATEAU_REFINEMENTS`` times; none for data noisier than
    ``MAX_REFINEMENT_NOISE``). ``levels`` replaces the plateau levels (a pair of phi values; the
    benchmarks' assumed rate magnitudes).
    Progress counts the steps of all passes; the result reports ``gain`` and ``offset`` in
    ``losses`` (the data's units per unit of phi, and the data's value at phi = 0)."""
    from scipy.ndimage import binary_erosion, gaussian_filter

    from ._calibration import PLATEAU_LEVELS, plateau_map

    levels = PLATEAU_LEVELS if levels is None else tuple(levels)
    t0 = time.perf_counter()
    phi, mask = _checked(phi, mask)
    edge_px = max(int(round(settings.edge_margin_nm / pixel_size_nm)), 1)
    interior = binary_erosion(mask, iterations=edge_px, border_value=0)
    if not interior.any():
        interior = mask
    gain, offset = plateau_map(gaussian_filter(phi, 1.0)[interior], levels)
    fixed = settings.model_copy(update={"calibration": "fixed"})
    passes = 1 + PLATEAU_REFINEMENTS
    steps = fixed.training_steps
    record = {"plateau_gain_start": gain, "plateau_offset_start": offset, "plateau_passes": 0}
    fit = None
    for k in range(passes):
        fit = yield from _one_pass(
            fit_rates((phi - offset) / gain, mask, pixel_size_nm, fixed, model=model, cancel=cancel),
            k * steps,
            passes * steps,
            t0,
        )
        record.update(gain=gain, offset=offset, plateau_passes=k + 1)
        if k == passes - 1 or fit.status != "ok" or fit.cancelled:
            break
        if fit.losses["noise_estimate"] > MAX_REFINEMENT_NOISE:
            break
        g2, o2 = plateau_map(fit.phi_hat[fit.analysed], levels)
        record["plateau_refinement"] = g2
        if abs(g2 - 1.0) < PLATEAU_TOLERANCE and abs(o2) < PLATEAU_TOLERANCE:
            break
        gain, offset = gain * g2, offset + gain * o2
    fit.losses.update(record)
    fit.settings = settings.model_dump()
    fit.runtime_s = time.perf_counter() - t0
    yield _last_event(fit, passes * steps if fit.steps_done == steps else fit.steps_done, passes * steps)
    yield fit


def _one_pass(events, offset: int, total: int, t0: float):
    """Relay the progress of one fit among several (plateau passes, the fits of a PSF width
    search): its steps counted after ``offset`` earlier ones out of ``total``, its time from
    ``t0``, never "done". Returns the fit's :class:`RateFit`."""
    for item in events:
        if isinstance(item, RateFit):
            return item
        item.step += offset
        item.total_steps = total
        item.elapsed_s = time.perf_counter() - t0
        item.done = False
        yield item
    raise RuntimeError("fit_rates ended without a result")


def _last_event(fit: RateFit, step: int, total: int) -> ProgressEvent:
    """The closing progress event of a fit made of several: its losses and maps on its crop."""
    maps = {"gamma_me": fit.gamma_me, "gamma_ac": fit.gamma_ac, "lambda": fit.lam, "phi_hat": fit.phi_hat}
    box = _box_of(fit)
    return ProgressEvent(
        step,
        total,
        {k: v for k, v in fit.losses.items() if k in ("data", "residual", "total")},
        fit.runtime_s,
        maps={k: v[box] for k, v in maps.items()} if box else None,
        done=True,
        box=box,
    )


def _box_of(fit: RateFit):
    """The bounding box (slices) of a fit's analysed region, or None if it is empty."""
    ys, xs = np.nonzero(fit.analysed)
    if ys.size == 0:
        return None
    return slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)
