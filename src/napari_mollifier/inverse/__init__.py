"""Inverse problems: rate maps from steady-state images."""

from ._basis import SmoothBasis
from ._cost import FitCost, FitTooLargeError, estimate_fit_cost
from ._device import resolve_device
from ._infer import RateMaps, infer_rates, to_fraction, write_rate_maps
from ._problem import RateProblem, estimate_noise
from ._solver import ProgressEvent, RateFit, fit_rates

__all__ = [
    "FitCost",
    "FitTooLargeError",
    "ProgressEvent",
    "RateFit",
    "RateMaps",
    "RateProblem",
    "SmoothBasis",
    "estimate_fit_cost",
    "estimate_noise",
    "fit_rates",
    "infer_rates",
    "resolve_device",
    "to_fraction",
    "write_rate_maps",
]
