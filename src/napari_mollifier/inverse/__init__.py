"""Inverse problems: rate maps from steady-state images."""

from ._basis import SmoothBasis
from ._cost import FitCost, FitTooLargeError, estimate_fit_cost
from ._device import resolve_device
from ._infer import RateMaps, infer_rates, judge_fit, to_fraction, write_rate_maps
from ._nuclei import (
    NUCLEUS_COLUMNS,
    NucleiMaps,
    NucleusResult,
    infer_nuclei,
    iter_nuclei,
    read_labels,
    write_nuclei_maps,
    write_nuclei_table,
)
from ._problem import RateProblem, estimate_noise
from ._psf_width import psf_width_summary
from ._solver import ProgressEvent, RateFit, fit_rates
from ._verdict import VERDICTS, Verdict, judge_rates

__all__ = [
    "NUCLEUS_COLUMNS",
    "NucleiMaps",
    "NucleusResult",
    "infer_nuclei",
    "iter_nuclei",
    "read_labels",
    "write_nuclei_maps",
    "write_nuclei_table",
    "VERDICTS",
    "FitCost",
    "FitTooLargeError",
    "ProgressEvent",
    "RateFit",
    "RateMaps",
    "RateProblem",
    "SmoothBasis",
    "Verdict",
    "estimate_fit_cost",
    "estimate_noise",
    "fit_rates",
    "infer_rates",
    "judge_fit",
    "judge_rates",
    "psf_width_summary",
    "resolve_device",
    "to_fraction",
    "write_rate_maps",
]
