"""Layer conventions shared by the readers, the sample data and the widgets (Qt-free)."""

from __future__ import annotations

import numpy as np

__all__ = [
    "FIT_MAP_KEYS",
    "SD_MAP_KEYS",
    "MAP_STYLE",
    "RATE_UNITS",
    "map_key",
    "image_layer_kwargs",
    "contrast_limits",
    "data_range",
    "MAP_UNITS",
]

#: The four maps a fit produces, in display order.
FIT_MAP_KEYS = ("gamma_me", "gamma_ac", "lambda", "phi_hat")
#: Their standard deviations (docs/method.md, "Uncertainty of the rate maps"), shown after a fit.
SD_MAP_KEYS = ("gamma_me_sd", "gamma_ac_sd", "lambda_sd")
#: Display of each map (and of the ground truth): sequential maps for rates, turbo for lambda.
MAP_STYLE = {
    "gamma_me": {"colormap": "magma"},
    "gamma_ac": {"colormap": "viridis"},
    "lambda": {"colormap": "turbo"},
    "phi_hat": {"colormap": "gray"},
    "gamma_me_sd": {"colormap": "gray"},
    "gamma_ac_sd": {"colormap": "gray"},
    "lambda_sd": {"colormap": "gray"},
}
#: The unit of each map, for the layer's metadata and the widget's read-out (the colour bar napari
#: draws has no title).
MAP_UNITS = {
    "gamma_me": "1/tau",
    "gamma_ac": "1/tau",
    "lambda": "1 (Gamma_me/Gamma_ac)",
    "phi_hat": "1 (heterochromatin fraction)",
    "gamma_me_sd": "1/tau",
    "gamma_ac_sd": "1/tau",
    "lambda_sd": "1",
}
RATE_UNITS = "rates in 1/tau, tau = ell0^2/(M A), ell0 = 10 nm (lambda = Gamma_me/Gamma_ac has no unit)"

_SUFFIXES = {
    "gamma_me": "gamma_me",
    "gamma_ac": "gamma_ac",
    "lambda": "lambda",
    "phi": "phi_hat",
    "phi_hat": "phi_hat",
    "gamma_me_sd": "gamma_me_sd",
    "gamma_ac_sd": "gamma_ac_sd",
    "lambda_sd": "lambda_sd",
    "gamma_me_true": "gamma_me",
    "gamma_ac_true": "gamma_ac",
}


def map_key(stem: str) -> str | None:
    """Which map a file or layer name holds, from its suffix (``S_gamma_me`` -> ``gamma_me``)."""
    low = stem.lower().replace(" ", "_")
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if low.endswith("_" + suffix):
            return _SUFFIXES[suffix]
    return None


def contrast_limits(a: np.ndarray) -> tuple[float, float]:
    """Robust display range of a map with NaNs (1st-99th percentile of the finite values)."""
    v = a[np.isfinite(a)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = (float(x) for x in np.percentile(v, (1, 99)))
    if not hi > lo:
        lo, hi = float(v.min()), float(v.max())
    if not hi > lo:
        hi = lo + (abs(lo) * 1e-3 or 1.0)
    return lo, hi


def data_range(a: np.ndarray, limits: tuple[float, float] | None = None) -> tuple[float, float]:
    """The range a map's contrast slider spans: its finite minimum to maximum, widened to hold
    ``limits`` (the display range) and never empty."""
    v = a[np.isfinite(a)]
    lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
    if limits is not None:
        lo, hi = min(lo, limits[0]), max(hi, limits[1])
    if not hi > lo:
        hi = lo + (abs(lo) * 1e-3 or 1.0)
    return lo, hi


def image_layer_kwargs(pixel_size_nm: float | None, *, translate_px: float = 0.0) -> dict:
    """scale / translate / units of a layer at ``pixel_size_nm`` (nothing if unknown)."""
    if not pixel_size_nm:
        return {}
    p = float(pixel_size_nm)
    out = {"scale": (p, p), "units": ("nm", "nm")}
    if translate_px:
        out["translate"] = (translate_px * p, translate_px * p)
    return out
