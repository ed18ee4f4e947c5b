"""Inverse problems: rate maps from steady-state images (work in progress, issue 3)."""

from ._basis import SmoothBasis
from ._infer import RateMaps, infer_rates, to_fraction, write_rate_maps
from ._scaling import (
    DomainTable,
    compare_with_maps,
    domain_scaling_estimate,
    read_map_pair,
    scaling_crosscheck,
    segment_domains,
)
from ._solver import ProgressEvent, RateFit, estimate_noise, fit_rates, resolve_device

__all__ = [
    "DomainTable",
    "ProgressEvent",
    "RateFit",
    "RateMaps",
    "SmoothBasis",
    "compare_with_maps",
    "domain_scaling_estimate",
    "estimate_noise",
    "fit_rates",
    "infer_rates",
    "read_map_pair",
    "resolve_device",
    "scaling_crosscheck",
    "segment_domains",
    "to_fraction",
    "write_rate_maps",
]
