"""Inverse problems: rate maps from steady-state images (work in progress, issue 3)."""

from ._basis import SmoothBasis
from ._solver import ProgressEvent, RateFit, estimate_noise, fit_rates

__all__ = ["ProgressEvent", "RateFit", "SmoothBasis", "estimate_noise", "fit_rates"]
