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
from ._paper import (
    PAPER_DERIVATIVES_D,
    PAPER_DERIVATIVES_W,
    PaperModel,
    fields_from_fraction,
    fields_from_segmentation,
    lambda_from_fields,
    paper_chemical_potential,
    paper_fractions,
    paper_mu_laplacian,
    paper_residual,
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
    "PAPER_DERIVATIVES_D",
    "PAPER_DERIVATIVES_W",
    "PaperModel",
    "fields_from_fraction",
    "fields_from_segmentation",
    "lambda_from_fields",
    "paper_chemical_potential",
    "paper_fractions",
    "paper_mu_laplacian",
    "paper_residual",
]
