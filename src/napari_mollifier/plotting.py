"""Figures: the PNG overview of one inference (matplotlib, headless)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["overview_figure", "overview_plot", "colour_limits", "flat_note", "MIN_RELATIVE_SPAN"]

#: Smallest half-width of a rate panel's colour scale, as a share of the map's mean: +-10 %.
#: Matplotlib stretches the colours over whatever spread a map has, so a nucleus with constant
#: rates (spread 0.4 %) looked as structured as a real pattern. 10 % is about three times the
#: error of the mean rates that simulated nuclei gave for "determined" results (within ~3 %,
#: inverse/_verdict.py): a spread under it is within what the method resolves and shows as one
#: colour; a map that varies more keeps its own full range.
MIN_RELATIVE_SPAN = 0.10

#: The colour-bar labels: what each panel shows and in which unit.
PANEL_LABELS = {
    "phi": "φ (heterochromatin fraction)",
    "phi_hat": "φ̂ fitted",
    "gamma_me": "Γ_me (1/τ)",
    "gamma_ac": "Γ_ac (1/τ)",
    "lambda": "λ = Γ_me / Γ_ac (no unit)",
}


def colour_limits(values: np.ndarray, min_relative_span: float = MIN_RELATIVE_SPAN) -> tuple[float, float]:
    """Colour-scale limits of a rate map: its finite range, widened to at least
    ``mean ± min_relative_span * |mean|`` about the range's centre.

    Parameters
    ----------
    values : ndarray
        The map (NaN outside the nucleus is ignored).
    min_relative_span : float
        Smallest half-width of the scale as a share of ``|mean|``.

    Returns
    -------
    (vmin, vmax) : tuple of float
        ``(0, 1)`` for a map without finite values.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    half = min_relative_span * abs(float(v.mean()))
    if hi - lo < 2 * half:
        centre = 0.5 * (lo + hi)
        lo, hi = centre - half, centre + half
    if hi <= lo:  # an all-zero map
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def flat_note(
    values: np.ndarray, sd: np.ndarray | None = None, min_relative_span: float = MIN_RELATIVE_SPAN
) -> str | None:
    """A note for a map that is flat: one whose spread (5th-95th percentile) is within its
    uncertainty (twice the median standard deviation, when ``sd`` is given) or, without ``sd``,
    within the colour scale's minimum span. None for a map with structure.

    Parameters
    ----------
    values : ndarray
        The map (NaN outside the nucleus).
    sd : ndarray, optional
        Its standard deviation per pixel.
    min_relative_span : float
        As for :func:`colour_limits`.

    Returns
    -------
    str or None
        e.g. ``"flat within its uncertainty: spread ±0.2 % of the mean, sd 1.5 %"``.
    """
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    if not ok.any():
        return None
    mean = float(np.mean(v[ok]))
    if mean == 0:
        return None
    lo, hi = np.percentile(v[ok], [5, 95])
    spread = 0.5 * float(hi - lo) / abs(mean)
    if sd is not None:
        s = np.asarray(sd, dtype=float)
        s = s[ok & np.isfinite(s)]
        if s.size:
            rel_sd = float(np.median(np.abs(s))) / abs(mean)
            if spread <= 2 * rel_sd:
                return f"flat within its uncertainty:\nspread ±{spread:.1%} of the mean, sd {rel_sd:.1%}"
            return None
    if spread < min_relative_span:
        return f"flat: spread ±{spread:.1%} of the mean\n(colour scale ±{min_relative_span:.0%})"
    return None


def overview_plot(maps, image: np.ndarray | None = None):
    """The overview as a matplotlib Figure (Agg, not shown): image (the normalised phi), phi_hat,
    Gamma_me, Gamma_ac and lambda with labelled colour bars. The rate panels' colour scales span at
    least :data:`MIN_RELATIVE_SPAN` of their mean (:func:`colour_limits`), and a flat map says so
    in its panel (:func:`flat_note`). Close it with ``matplotlib.pyplot.close(fig)``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    px = maps.pixel_size_nm
    h, w = maps.phi.shape
    extent = (0, w * px / 1000, h * px / 1000, 0)  # µm
    panels = [
        ("input φ (normalised)", maps.phi if image is None else image, "gray", "phi", None),
        ("fitted φ̂", np.where(maps.mask, maps.phi_hat, np.nan), "magma", "phi_hat", None),
        ("Γ_me", maps.gamma_me, "viridis", "gamma_me", getattr(maps, "gamma_me_sd", None)),
        ("Γ_ac", maps.gamma_ac, "viridis", "gamma_ac", getattr(maps, "gamma_ac_sd", None)),
        ("λ = Γ_me / Γ_ac", maps.lam, "coolwarm", "lambda", getattr(maps, "lam_sd", None)),
    ]
    fig, axes = plt.subplots(1, 5, figsize=(19, 4.2), constrained_layout=True)
    for ax, (title, arr, cmap, key, sd) in zip(axes, panels):
        limits = {}
        if key in ("gamma_me", "gamma_ac", "lambda"):
            inside = np.where(maps.mask, arr, np.nan)
            limits = dict(zip(("vmin", "vmax"), colour_limits(inside)))
            note = flat_note(inside, sd)
            if note:
                ax.text(
                    0.5,
                    0.03,
                    note,
                    transform=ax.transAxes,
                    ha="center",
                    va="bottom",
                    fontsize=8,
                    bbox=dict(facecolor="white", alpha=0.8, edgecolor="none"),
                )
        im = ax.imshow(arr, cmap=cmap, extent=extent, **limits)
        ax.set_title(title)
        ax.set_xlabel("x (µm)")
        cb = fig.colorbar(im, ax=ax, shrink=0.85)
        cb.set_label(PANEL_LABELS[key])
    axes[0].set_ylabel("y (µm)")
    title, trusted = overview_title(maps)
    fig.suptitle(title, fontsize=10, color="black" if trusted else "darkred")
    return fig


def overview_figure(maps, path: str | os.PathLike, image: np.ndarray | None = None) -> Path:
    """Write :func:`overview_plot` as a PNG (atomically); returns the path."""
    import io

    from .io import atomic_write_bytes

    fig = overview_plot(maps, image)
    import matplotlib.pyplot as plt  # after overview_plot, which selects the headless backend

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=90)
    finally:
        plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def overview_title(maps) -> tuple[str, bool]:
    """The overview's title and whether it reads as a trusted result (status ok, rates determined).

    A figure travels without its S.json: it must not pass for a result on its own, so a fit that
    is not ok says so, and an ok one says its verdict."""
    import textwrap

    title = f"{Path(maps.source).name}: rates in 1/τ, τ = ℓ0²/(M A), ℓ0 = 10 nm (ratios to the mobility M)"
    status = getattr(maps, "status", "ok")
    verdict = getattr(maps, "verdict", None)
    if status != "ok":
        title = f"{title}\n{status.upper()}, for inspection only: {textwrap.shorten(maps.status_reason, 150)}"
    elif verdict is not None:
        title = f"{title}\nrates {verdict.verdict}: {textwrap.shorten(verdict.reason, 150)}"
    return title, status == "ok" and (verdict is None or verdict.verdict == "determined")
