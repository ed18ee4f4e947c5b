"""The Mollifier Layers paper's three-field chromatin model ("paper"; docs/method.md,
"Benchmark problems").

Fields: phi_w (nucleoplasm), phi_d = phi_h - phi_e (heterochromatin minus euchromatin), and one
rate field lambda (Gamma_me / Gamma_ac, time in units of 1 / Gamma_ac). At steady state

    phi_h = ((1 - phi_w) + phi_d) / 2,    phi_e = ((1 - phi_w) - phi_d) / 2
    mu_d  = -phi_e + g(phi_h) - l_int^2 lap(phi_d),    g(h) = h (phi_max - h)(phi_max - 2 h)
    0     = lap(mu_d) + 2 (lambda phi_e - phi_h)

with phi_max = 0.7, l_int = 0.03 in the paper's nondimensional lengths (synthetic domain
[0, 10]^2). The functions take dicts of derivatives (the outputs of a mollifier layer, or of
:func:`napari_mollifier.coordinate_derivatives`) of phi_w and phi_d, so the same code serves
mollifier and autodiff derivatives.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

__all__ = [
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

#: Derivatives of phi_w and of phi_d the chain-rule residual needs.
PAPER_DERIVATIVES_W = ("u", "dx", "dy", "laplacian")
PAPER_DERIVATIVES_D = ("u", "dx", "dy", "laplacian", "biharmonic")

#: The published binary-segmentation mapping: (phi_w, phi_d) inside / outside heterochromatin.
INSIDE = (0.2, 0.4)
OUTSIDE = (0.8, -0.2)


@dataclass(frozen=True)
class PaperModel:
    """Parameters of the "paper" model: ``phi_max`` and the interface length ``l_int``."""

    phi_max: float = 0.7
    l_int: float = 0.03

    def to_dict(self) -> dict:
        return asdict(self)


def paper_fractions(phi_w, phi_d):
    """``(phi_h, phi_e)`` from ``phi_w, phi_d`` (arrays or tensors)."""
    return ((1.0 - phi_w) + phi_d) / 2.0, ((1.0 - phi_w) - phi_d) / 2.0


def _g(h, a):
    return h * (a - h) * (a - 2.0 * h)


def _g1(h, a):  # g'(h) for g = a^2 h - 3 a h^2 + 2 h^3
    return a * a - 6.0 * a * h + 6.0 * h * h


def _g2(h, a):
    return -6.0 * a + 12.0 * h


def _check(d: dict, names, which: str) -> None:
    missing = [n for n in names if n not in d]
    if missing:
        raise ValueError(f"{which} lacks derivatives {missing}; give at least {names}")


def paper_chemical_potential(d_w: dict, d_d: dict, model: PaperModel = PaperModel()):
    """``mu_d = -phi_e + g(phi_h) - l_int^2 lap(phi_d)`` from ``u`` of both fields and ``lap phi_d``.

    Evaluate it on the grid and apply a second mollifier Laplacian for the "nested" form of
    ``lap(mu_d)``; :func:`paper_mu_laplacian` is the chain-rule form.
    """
    _check(d_w, ("u",), "d_w")
    _check(d_d, ("u", "laplacian"), "d_d")
    phi_h, phi_e = paper_fractions(d_w["u"], d_d["u"])
    return -phi_e + _g(phi_h, model.phi_max) - model.l_int**2 * d_d["laplacian"]


def paper_mu_laplacian(d_w: dict, d_d: dict, model: PaperModel = PaperModel()):
    """``lap(mu_d)`` by the chain rule from :data:`PAPER_DERIVATIVES_W` / ``_D``.

    Notes
    -----
    With ``h = phi_h``: ``lap(phi_e) = -(lap phi_w + lap phi_d) / 2``,
    ``grad h = (grad phi_d - grad phi_w) / 2``, ``lap h = (lap phi_d - lap phi_w) / 2`` and
    ``lap g(h) = g'(h) lap h + g''(h) |grad h|^2``, so
    ``lap mu_d = -lap phi_e + g'(h) lap h + g''(h) |grad h|^2 - l_int^2 biharmonic(phi_d)``.
    """
    _check(d_w, PAPER_DERIVATIVES_W, "d_w")
    _check(d_d, PAPER_DERIVATIVES_D, "d_d")
    a = model.phi_max
    h, _ = paper_fractions(d_w["u"], d_d["u"])
    lap_h = (d_d["laplacian"] - d_w["laplacian"]) / 2.0
    lap_e = -(d_w["laplacian"] + d_d["laplacian"]) / 2.0
    grad2 = ((d_d["dx"] - d_w["dx"]) / 2.0) ** 2 + ((d_d["dy"] - d_w["dy"]) / 2.0) ** 2
    return -lap_e + _g1(h, a) * lap_h + _g2(h, a) * grad2 - model.l_int**2 * d_d["biharmonic"]


def paper_residual(d_w: dict, d_d: dict, lam, model: PaperModel = PaperModel(), *, mu_laplacian=None):
    """Steady-state residual ``lap(mu_d) + 2 (lambda phi_e - phi_h)``: zero at a steady state.

    ``mu_laplacian`` replaces the chain-rule ``lap(mu_d)`` (e.g. the nested mollifier form).
    """
    phi_h, phi_e = paper_fractions(d_w["u"], d_d["u"])
    lap_mu = paper_mu_laplacian(d_w, d_d, model) if mu_laplacian is None else mu_laplacian
    return lap_mu + 2.0 * (lam * phi_e - phi_h)


def lambda_from_fields(
    d_w: dict, d_d: dict, model: PaperModel = PaperModel(), *, mu_laplacian=None, min_phi_e: float = 1e-3
):
    """Solve the steady state for ``lambda = (phi_h - lap(mu_d) / 2) / phi_e``.

    Parameters
    ----------
    d_w, d_d : dict
        Derivatives of phi_w and phi_d (:data:`PAPER_DERIVATIVES_W`, :data:`PAPER_DERIVATIVES_D`).
    model : PaperModel
    mu_laplacian : array or tensor, optional
        ``lap(mu_d)`` computed elsewhere (nested form); the chain rule otherwise.
    min_phi_e : float
        Where ``|phi_e| < min_phi_e`` lambda is undefined (no euchromatin to convert) and NaN.

    Returns
    -------
    Tensor or array like the inputs, NaN where lambda is undefined.
    """
    phi_h, phi_e = paper_fractions(d_w["u"], d_d["u"])
    lap_mu = paper_mu_laplacian(d_w, d_d, model) if mu_laplacian is None else mu_laplacian
    num = phi_h - 0.5 * lap_mu
    if isinstance(phi_e, torch.Tensor):
        ok = phi_e.abs() >= min_phi_e
        safe = torch.where(ok, phi_e, torch.ones_like(phi_e))
        return torch.where(ok, num / safe, torch.full_like(num, float("nan")))
    phi_e = np.asarray(phi_e, dtype=float)
    ok = np.abs(phi_e) >= min_phi_e
    return np.where(ok, np.asarray(num, dtype=float) / np.where(ok, phi_e, 1.0), np.nan)


def fields_from_segmentation(mask):
    """The authors' mapping of a binary heterochromatin segmentation to ``(phi_w, phi_d)``.

    Inside heterochromatin (``mask`` true) ``phi_w = 0.2, phi_d = 0.4`` (so phi_h = 0.6,
    phi_e = 0.2); outside ``phi_w = 0.8, phi_d = -0.2`` (phi_h = 0, phi_e = 0.2). Returns
    float64 arrays, or tensors of the default float dtype for a tensor mask.
    """
    if isinstance(mask, torch.Tensor):
        m = mask.bool()
        w = torch.where(m, torch.tensor(INSIDE[0]), torch.tensor(OUTSIDE[0])).to(torch.get_default_dtype())
        d = torch.where(m, torch.tensor(INSIDE[1]), torch.tensor(OUTSIDE[1])).to(torch.get_default_dtype())
        return w.to(mask.device), d.to(mask.device)
    m = np.asarray(mask).astype(bool)
    return np.where(m, INSIDE[0], OUTSIDE[0]), np.where(m, INSIDE[1], OUTSIDE[1])


def fields_from_fraction(s):
    """Continuous mapping of a heterochromatin fraction ``s`` in [0, 1] to ``(phi_w, phi_d)``.

    Our choice: the straight line between the two published states, ``phi_w = 0.8 - 0.6 s``,
    ``phi_d = -0.2 + 0.6 s``. It reproduces :func:`fields_from_segmentation` for a 0/1 image,
    keeps ``phi_e = 0.2`` everywhere (so lambda is defined at every pixel) and makes
    ``phi_h = 0.6 s``. Values outside [0, 1] are not clipped.
    """
    if not isinstance(s, torch.Tensor):
        s = np.asarray(s, dtype=float)
    return OUTSIDE[0] + (INSIDE[0] - OUTSIDE[0]) * s, OUTSIDE[1] + (INSIDE[1] - OUTSIDE[1]) * s
