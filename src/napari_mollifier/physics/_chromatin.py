"""The default physics model "chr": reaction Cahn-Hilliard with two rate maps.

    d phi / dt = M lap(mu) + Gamma_me (1 - phi) - Gamma_ac phi
    mu         = A f'(phi) - kappa lap(phi) - beta w,    f(phi) = phi^2 (1 - phi)^2

Lengths are in units of ell0 = 10 nm, time in tau = ell0^2 / (M A), rates in 1/tau
(docs/model.md). Only ratios of the rates to M are identifiable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

__all__ = [
    "ChromatinModel",
    "chemical_potential",
    "f_prime",
    "f_second",
    "f_third",
    "mu_laplacian",
    "steady_state_residual",
    "DERIVATIVES_NEEDED",
]

#: Mollifier outputs the residual needs (lap f'(u) is expanded by the chain rule).
DERIVATIVES_NEEDED = ("u", "dx", "dy", "laplacian", "biharmonic")


@dataclass(frozen=True)
class ChromatinModel:
    """Parameters of the "chr" model (defaults of docs/model.md).

    mobility : M; bulk : A; kappa : gradient energy in ell0^2; beta : lamina affinity;
    ell0_nm : reference length in nm.
    """

    mobility: float = 1.0
    bulk: float = 1.0
    kappa: float = 2.0
    beta: float = 0.0
    ell0_nm: float = 10.0

    def spacing(self, pixel_size_nm: float) -> float:
        """Grid spacing in model length units for a pixel size in nm."""
        if not pixel_size_nm > 0:
            raise ValueError(f"pixel_size_nm must be positive, got {pixel_size_nm!r}")
        return float(pixel_size_nm) / self.ell0_nm

    def to_dict(self) -> dict:
        return asdict(self)


def f_prime(phi):
    return 2.0 * phi - 6.0 * phi**2 + 4.0 * phi**3


def f_second(phi):
    return 2.0 - 12.0 * phi + 12.0 * phi**2


def f_third(phi):
    return -12.0 + 24.0 * phi


def chemical_potential(d: dict, model: ChromatinModel = ChromatinModel(), lamina=None) -> torch.Tensor:
    """``mu = A f'(u) - kappa lap(u) - beta w`` from ``u`` and ``lap u``.

    The inverse solver takes ``lap(mu)`` as a second mollifier convolution of this field (the
    "nested" form) rather than by the chain rule: on a pixel grid that barely resolves the
    domain interfaces the nested form is the more accurate discretisation (docs/decisions.md).
    """
    mu = model.bulk * f_prime(d["u"]) - model.kappa * d["laplacian"]
    if model.beta and lamina is not None:
        mu = mu - model.beta * lamina
    return mu


def mu_laplacian(d: dict, model: ChromatinModel = ChromatinModel(), lamina_laplacian=None) -> torch.Tensor:
    """``lap(mu)`` of a smooth field from its derivatives.

    ``lap f'(u) = f''(u) lap(u) + f'''(u) |grad u|^2`` (chain rule), so the residual needs only
    ``u, u_x, u_y, lap u, biharmonic u`` (:data:`DERIVATIVES_NEEDED`), all of which a mollifier
    layer gives as convolutions.
    """
    u = d["u"]
    grad2 = d["dx"] ** 2 + d["dy"] ** 2
    out = model.bulk * (f_second(u) * d["laplacian"] + f_third(u) * grad2) - model.kappa * d["biharmonic"]
    if model.beta and lamina_laplacian is not None:
        out = out - model.beta * lamina_laplacian
    return out


def steady_state_residual(
    d: dict, gamma_me, gamma_ac, model: ChromatinModel = ChromatinModel(), lamina_laplacian=None
) -> torch.Tensor:
    """``M lap(mu) + Gamma_me (1 - u) - Gamma_ac u``: zero at a steady state."""
    u = d["u"]
    return model.mobility * mu_laplacian(d, model, lamina_laplacian) + gamma_me * (1.0 - u) - gamma_ac * u
