"""Inverse problems: rate maps from steady-state images."""

from ._basis import SmoothBasis
from ._infer import RateMaps, infer_rates, to_fraction, write_rate_maps
from ._solver import ProgressEvent, RateFit, RateProblem, estimate_noise, fit_rates, resolve_device

__all__ = [
    "ProgressEvent",
    "RateFit",
    "RateMaps",
    "RateProblem",
    "SmoothBasis",
    "estimate_noise",
    "fit_rates",
    "infer_rates",
    "resolve_device",
    "to_fraction",
    "write_rate_maps",
]
