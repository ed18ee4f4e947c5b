"""The PSF width fitted within bounds: fits at several widths, the one of lowest loss kept.

The steady state pins the blur: a field blurred more than the data were leaves a residual the
rates cannot absorb, and one blurred less than the truth reads as stronger reactions (noise-free,
a 10 nm Gaussian left undone put the mean rates 2.0-2.3x high and left a residual 7-8x the
reaction, undone exactly 1-5 %). The fit's loss (data term plus steady-state residual, both on fixed scales
set by the data) is therefore lowest near the true width where the data are bright enough: on
simulated nuclei at 1000 counts per pixel, sigma 15 nm, the search found 15.0 and 12.9 nm; at 200
counts the loss was flat around its minimum (the noise, not the blur, limits the field's
sharpness), so a minimum at a bound, or one the bounds' losses barely exceed, says "not pinned"
(benchmarks/results/psf_width.md).

The width is searched on a log scale: both bounds and their geometric mean, then each further fit
at the vertex of a parabola through the best width and its neighbours (or half-way toward a bound
where the best width is one). The fit of the chosen width is the result; its ``losses`` carry
``psf_sigma_nm``, ``psf_sigma_pinned`` and ``psf_search`` (width, total, data and residual loss,
status of every fit).
"""

from __future__ import annotations

import math
import time

import numpy as np

from ._solver import RateFit, _last_event, _one_pass, fit_rates

__all__ = ["PSF_SEARCH_FITS", "fit_psf_width", "next_width", "psf_width_summary"]

#: Fits of the search: the two bounds, their geometric mean and two refinements.
PSF_SEARCH_FITS = 5
#: A refinement closer than this (relative) to a width already fitted bisects the wider side instead.
MIN_STEP = 0.03
#: The width is pinned when the loss at each bound exceeds the lowest by this share. Fits of one
#: image at nearby widths scatter by 1-2 % (the optimisation); at 1000 counts per pixel the
#: bounds of 7.5-30 nm were 12-189 % above the minimum, at 200 counts the narrow one 2.4-3.2 %
#: (benchmarks/results/psf_width.md).
PINNED_MARGIN = 0.05


def next_width(widths, losses, lo: float, hi: float) -> float:
    """The next width to fit, from the widths fitted so far and their losses (log-scale search).

    Parameters
    ----------
    widths, losses : sequences of float
        Widths fitted so far (any order) and their losses (NaN or inf for a broken fit).
    lo, hi : float
        The bounds.

    Returns
    -------
    float
        The vertex of the parabola (in log width) through the best width and its two neighbours,
        clamped between them; half-way (geometrically) toward the neighbour of a best width that
        is a bound; or half-way across the wider neighbouring interval where the vertex lies
        within :data:`MIN_STEP` of a width already fitted.
    """
    order = np.argsort(widths)
    x = np.log(np.asarray(widths, dtype=float)[order])
    y = np.asarray(losses, dtype=float)[order]
    y = np.where(np.isfinite(y), y, np.inf)
    b = int(np.argmin(y))
    if b == 0:
        return float(math.exp(0.5 * (x[0] + x[1])))
    if b == len(x) - 1:
        return float(math.exp(0.5 * (x[-2] + x[-1])))
    x0, x1, x2 = x[b - 1 : b + 2]
    y0, y1, y2 = y[b - 1 : b + 2]
    den = (x1 - x0) * (y1 - y2) - (x1 - x2) * (y1 - y0)
    vertex = x1
    if np.isfinite(den) and den != 0:
        vertex = x1 - 0.5 * ((x1 - x0) ** 2 * (y1 - y2) - (x1 - x2) ** 2 * (y1 - y0)) / den
    vertex = float(np.clip(vertex, x0, x2)) if np.isfinite(vertex) else x1
    if np.min(np.abs(x - vertex)) < MIN_STEP:
        vertex = 0.5 * (x0 + x1) if (x1 - x0) > (x2 - x1) else 0.5 * (x1 + x2)
    return float(math.exp(vertex))


def _total(fit: RateFit) -> float:
    t = fit.losses.get("total", float("nan"))
    return float(t) if np.isfinite(t) and not fit.diverged else float("inf")


def fit_psf_width(phi, mask, pixel_size_nm, settings, *, model, cancel, fits: int = PSF_SEARCH_FITS):
    """:func:`fit_rates` with the PSF width fitted within ``settings.psf_bounds_nm``.

    The search's fits skip the uncertainty maps; the chosen width is fitted once more with them
    when ``settings.uncertainty`` asks for them (the same seed: the same maps). Progress counts
    the steps of all fits. Yields progress events, then the :class:`RateFit` of the chosen width.
    """
    lo, hi = settings.psf_bounds_nm
    if fits < 3:
        raise ValueError(f"the PSF width search needs at least 3 fits, got {fits}")
    fixed = settings.model_copy(update={"psf_sigma_min_nm": None, "psf_sigma_max_nm": None})
    final_pass = settings.uncertainty != "none"
    passes = fits + int(final_pass)
    steps = max(fixed.training_steps, 1)
    t0 = time.perf_counter()
    done = 0

    def run(width: float, uncertainty: str):
        nonlocal done
        s = fixed.model_copy(update={"psf_sigma_nm": width, "uncertainty": uncertainty})
        fit = yield from _one_pass(
            fit_rates(phi, mask, pixel_size_nm, s, model=model, cancel=cancel),
            done * steps,
            passes * steps,
            t0,
        )
        done += 1
        return fit

    widths: list[float] = []
    results: list[RateFit] = []
    for k in range(fits):
        if k < 3:
            width = (lo, hi, math.sqrt(lo * hi))[k]
        else:
            width = next_width(widths, [_total(f) for f in results], lo, hi)
        fit = yield from run(width, "none")
        widths.append(width)
        results.append(fit)
        if fit.cancelled:
            break
    totals = [_total(f) for f in results]
    best = int(np.argmin(totals))
    width = widths[best]
    fit = results[best]
    at_bounds = [t for w, t in zip(widths, totals) if w in (lo, hi)]
    pinned = bool(
        np.isfinite(totals[best])
        and lo < width < hi
        and min(at_bounds) >= (1.0 + PINNED_MARGIN) * totals[best]
    )
    if final_pass and not fit.cancelled and np.isfinite(totals[best]):
        fit = yield from run(width, settings.uncertainty)
    order = np.argsort(widths)
    fit.losses.update(
        psf_sigma_nm=float(width),
        psf_sigma_pinned=pinned,
        psf_search=[
            {
                "psf_sigma_nm": float(widths[i]),
                "total": float(results[i].losses.get("total", float("nan"))),
                "data": float(results[i].losses.get("data", float("nan"))),
                "residual": float(results[i].losses.get("residual", float("nan"))),
                "status": results[i].status,
            }
            for i in order
        ],
    )
    fit.settings = settings.model_copy(update={"psf_sigma_nm": float(width)}).model_dump()
    fit.runtime_s = time.perf_counter() - t0
    yield _last_event(fit, done * steps, passes * steps)
    yield fit


def psf_width_summary(losses: dict) -> str | None:
    """One sentence on a fitted PSF width (from a fit's ``losses``), None when it was given."""
    search = losses.get("psf_search")
    if not search or "psf_sigma_nm" not in losses:
        return None
    lo, hi = search[0], search[-1]
    width = float(losses["psf_sigma_nm"])
    best = min(search, key=lambda row: abs(row["psf_sigma_nm"] - width))
    ends = f"{lo['psf_sigma_nm']:.3g}-{hi['psf_sigma_nm']:.3g} nm"
    if losses.get("psf_sigma_pinned"):
        return (
            f"PSF sigma fitted: {width:.3g} nm within {ends} (loss {best['total']:.3f} there, "
            f"{lo['total']:.3f} and {hi['total']:.3f} at the bounds; {len(search)} fits)"
        )
    where = "at the bound" if width in (lo["psf_sigma_nm"], hi["psf_sigma_nm"]) else "barely lower at"
    return (
        f"PSF sigma not pinned: the loss was {where} {width:.3g} nm of {ends} (loss {best['total']:.3f}, "
        f"{lo['total']:.3f} and {hi['total']:.3f} at the bounds; {len(search)} fits); "
        "the rates are undetermined"
    )
