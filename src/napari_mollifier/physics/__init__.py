"""Physics models, one per module, each defined by its steady-state residual."""

from ._chromatin import (
    DERIVATIVES_NEEDED,
    ChromatinModel,
    chemical_potential,
    f_prime,
    f_second,
    f_third,
    mu_laplacian,
    steady_state_residual,
)

__all__ = [
    "DERIVATIVES_NEEDED",
    "ChromatinModel",
    "chemical_potential",
    "f_prime",
    "f_second",
    "f_third",
    "mu_laplacian",
    "steady_state_residual",
]
