"""The paper's 1st- and 2nd-order benchmark problems: simulated data and fits
(docs/method.md, "Benchmark problems")."""

from ._fit import fit_first_order, fit_second_order
from ._simulate import (
    ProblemData,
    default_conductivity,
    default_forcing,
    simulate_first_order,
    simulate_second_order,
)
from ._training import ARCHS, METHODS, FitResult, chebyshev_basis

__all__ = [
    "ARCHS",
    "METHODS",
    "FitResult",
    "ProblemData",
    "chebyshev_basis",
    "default_conductivity",
    "default_forcing",
    "fit_first_order",
    "fit_second_order",
    "simulate_first_order",
    "simulate_second_order",
]
