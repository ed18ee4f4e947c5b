"""Whether a fit's maps can be read as rates: the result status of a :class:`RateFit`.

:func:`assess_fit` is a pure function of the maps on the analysed pixels and the fit's loss
terms; :func:`fit_rates` calls it once at the end, and the status it decides travels to S.json,
summary.csv, the CLI line and the napari widget (docs/interfaces.md, docs/method.md "Result
status"). The statuses:

- ``"ok"``: finite maps, rates positive almost everywhere, phi_hat within a few noise levels of
  the data;
- ``"diverged"``: training broke (the divergence guard stopped it, or its maps or losses are not
  finite); the maps are those of the last good step;
- ``"failed"``: the fit ran to its end but its maps do not answer the question: the direct
  read-out is not finite, a rate is negative over much of the nucleus (the data do not determine
  the rates), or phi_hat misfits the data far outside the noise;
- ``"cancelled"``: stopped on request before the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["FitAssessment", "MAX_DATA_TERM", "MAX_NEGATIVE_FRACTION", "STATUSES", "assess_fit"]

#: Every status a fit can end with.
STATUSES = ("ok", "failed", "diverged", "cancelled")

#: Largest fraction of the analysed pixels where Gamma_me or Gamma_ac may be negative. A rate is a
#: frequency: it cannot be negative, and a smooth rate map that is negative over a sizeable part
#: of the nucleus means the residual was fitted with the wrong sign of the reaction, i.e. the data
#: did not determine the rates (on noisy data the direct read-out's fourth derivatives of the noise
#: swamp the reaction). 5 % leaves room for a true rate near zero at the edge of a gradient, where
#: noise may tip a few control points below zero, and is still far below the failures seen:
#: every default fit of the simulated nuclei and the bundled samples has 0 % negative pixels; the
#: direct read-out of a 128^2 nucleus at 3 % noise has 100 %, a real crop had 74 %.
MAX_NEGATIVE_FRACTION = 0.05

#: Largest data term of the loss, mean((phi_hat - phi)^2) / s_d^2, i.e. the squared rms misfit in
#: units of the noise level s_d: about 1 when phi_hat fits within the noise. 25 = an rms misfit of
#: 5 noise levels, which a fit that follows the image does not reach: default fits of simulated
#: nuclei and the bundled samples end at 3e-4 (noise free) to 0.9 (3 % noise), and the 30-step
#: fits of the test suite, still far from converged, at 7.
MAX_DATA_TERM = 25.0


@dataclass(frozen=True)
class FitAssessment:
    """The status of a fit, its reason (one sentence, "" when ok) and the figures it rests on."""

    status: str
    reason: str = ""
    #: negative_gamma_me / negative_gamma_ac: fraction of the analysed pixels where that rate is
    #: below zero; data_term: mean((phi_hat - phi)^2) / s_d^2; non_finite: NaN/Inf pixels of the
    #: maps on the analysed region.
    figures: dict = field(default_factory=dict)


def _percent(f: float) -> str:
    """A fraction in percent: one decimal below 10 % (5.1 % must not read as the 5 % limit)."""
    return f"{100 * f:.1f} %" if f < 0.1 else f"{100 * f:.0f} %"


def assess_fit(
    gamma_me: np.ndarray,
    gamma_ac: np.ndarray,
    lam: np.ndarray,
    phi_hat: np.ndarray,
    losses: dict,
    *,
    trained: bool,
    method: str = "pinn",
    diverged_message: str = "",
    cancelled: bool = False,
    steps_done: int = 0,
) -> FitAssessment:
    """Decide the status of a fit from its maps on the analysed pixels and its loss terms.

    Parameters
    ----------
    gamma_me, gamma_ac, lam, phi_hat : arrays
        The maps on the analysed pixels only (any shape; e.g. ``fit.gamma_me[fit.analysed]``).
    losses : dict
        At least ``data`` (mean((phi_hat - phi)^2) / s_d^2) and ``residual``; ``s_d`` (the noise
        level the data term divides by) words the misfit when present.
    trained : bool
        Whether the maps come from training (at least one step): non-finite values then mean the
        training broke ("diverged"); in the direct read-out they mean it failed ("failed").
    method : str
        The settings' method, to word the way out.
    diverged_message : str
        The divergence guard's message ("" when it did not fire).
    cancelled : bool
        The fit was stopped on request (wins over everything else).
    steps_done : int
        Training steps done, for the reason of a cancelled fit.

    Rules, in order: cancelled; the divergence guard fired -> "diverged"; NaN/Inf in the maps or
    the data/residual terms -> "diverged" after training, "failed" for the direct read-out; a rate
    negative on more than :data:`MAX_NEGATIVE_FRACTION` of the pixels -> "failed"; the data term
    above :data:`MAX_DATA_TERM` -> "failed"; otherwise "ok".
    """
    maps = {"gamma_me": gamma_me, "gamma_ac": gamma_ac, "lambda": lam, "phi_hat": phi_hat}
    maps = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in maps.items()}
    n = max(maps["gamma_me"].size, 1)
    with np.errstate(invalid="ignore"):
        neg = {k: float(np.count_nonzero(maps[k] < 0)) / n for k in ("gamma_me", "gamma_ac")}
    non_finite = int(sum(np.count_nonzero(~np.isfinite(v)) for v in maps.values()))
    data = float(losses.get("data", math.nan))
    residual = float(losses.get("residual", math.nan))
    figures = {
        "negative_gamma_me": neg["gamma_me"],
        "negative_gamma_ac": neg["gamma_ac"],
        "data_term": data,
        "non_finite": non_finite,
    }

    def result(status: str, reason: str = "") -> FitAssessment:
        return FitAssessment(status, reason, figures)

    if cancelled:
        return result("cancelled", f"stopped on request after {steps_done} training steps, before the end")
    if diverged_message:
        return result("diverged", diverged_message)
    bad_losses = [k for k, v in (("data", data), ("residual", residual)) if not math.isfinite(v)]
    if non_finite or bad_losses:
        what = []
        if non_finite:
            what.append(f"{non_finite} NaN/Inf map values in the analysed region")
        if bad_losses:
            what.append(f"a non-finite {' and '.join(bad_losses)} term")
        if trained:
            return result(
                "diverged",
                f"training broke ({', '.join(what)}); lower the learning rate or check the input",
            )
        return result(
            "failed",
            f"the direct read-out is not finite ({', '.join(what)}); check the input and the mask",
        )
    negative = [(k, f) for k, f in neg.items() if f > MAX_NEGATIVE_FRACTION]
    if negative:
        names = {"gamma_me": "Gamma_me", "gamma_ac": "Gamma_ac"}
        told = " and ".join(f"{names[k]} in {_percent(f)}" for k, f in negative)
        way_out = (
            "use the trained fit (method pinn) instead of the direct read-out"
            if method == "direct"
            else "try smoother rates (a larger rate_scale_nm or smoothness) or more steps"
        )
        return result(
            "failed",
            f"negative rates: {told} of the analysed nucleus (at most "
            f"{100 * MAX_NEGATIVE_FRACTION:g} % allowed), so the data do not determine the rates; "
            f"{way_out}, and check that the input is the heterochromatin fraction of one nucleus",
        )
    if data > MAX_DATA_TERM:
        s_d = losses.get("s_d")
        scale = f" (rms {math.sqrt(data) * s_d:.3g} against a noise level of {s_d:.3g})" if s_d else ""
        return result(
            "failed",
            f"phi_hat misfits the data by {math.sqrt(data):.1f} noise levels rms{scale}, more than "
            f"{math.sqrt(MAX_DATA_TERM):.0f}: the fit did not follow the image; run more steps or "
            "check the input and the mask",
        )
    return result("ok")
