"""Inverse problems: rate maps from steady-state images (work in progress, issue 3)."""

from ._basis import SmoothBasis
from ._infer import RateMaps, infer_rates, to_fraction, write_rate_maps
from ._solver import ProgressEvent, RateFit, estimate_noise, fit_rates

__all__ = ["ProgressEvent", "RateFit", "RateMaps", "SmoothBasis", "estimate_noise", "fit_rates", "infer_rates",
           "to_fraction", "write_rate_maps"]
