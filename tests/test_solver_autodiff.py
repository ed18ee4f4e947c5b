"""The chromatin solver with the autodiff baseline (``derivatives="autodiff"``).

The baseline differentiates the coordinate network's correction by recursive autograd and adds
the start field's (fixed) derivatives; checked against an analytic correction, against the
mollifier on a band-limited one (where both are exact), and at the start of a fit.
"""

from __future__ import annotations

import math

import numpy as np
import pydantic
import pytest
import torch

from napari_mollifier.config import InferenceSettings
from napari_mollifier.inverse import RateProblem, _fields, fit_rates
from napari_mollifier.mollifier import MollifierLayer
from napari_mollifier.physics import DERIVATIVES_NEEDED, ChromatinModel, mu_laplacian


def _data(n=40):
    yy, xx = np.mgrid[:n, :n]
    phi = 0.5 + 0.3 * np.sin(2 * np.pi * yy / 13.0) * np.cos(2 * np.pi * xx / 15.0)
    mask = (yy - n / 2) ** 2 + (xx - n / 2) ** 2 < (0.45 * n) ** 2
    return phi, mask


class _CosineCorrection(torch.nn.Module):
    """``a cos(pi m (y' + 1) / 2) cos(pi n (x' + 1) / 2)`` of the network's [-1, 1] coordinates:
    zero normal derivative at the crop's edges and band-limited, so the mollifier's spectral
    derivatives (whole-sample even extension) are exact for it too."""

    def __init__(self, m=3, n=2, a=0.05):
        super().__init__()
        self.m, self.n = m, n
        self.a = torch.nn.Parameter(torch.tensor(a, dtype=torch.float64))

    def forward(self, c):
        y, x = c[:, 0], c[:, 1]
        return (
            self.a * torch.cos(math.pi * self.m * (y + 1) / 2) * torch.cos(math.pi * self.n * (x + 1) / 2)
        )[:, None]


def _derivatives(method, monkeypatch):
    phi, mask = _data()
    settings = InferenceSettings(
        device="cpu", arch="mlp", derivatives=method, residual_form="chain", precision="float64"
    )
    problem = RateProblem(phi, mask, 10.0, settings, ChromatinModel(), torch.device("cpu"))
    real = _fields._coordinate_net
    monkeypatch.setattr(_fields, "_coordinate_net", lambda p, s: (_CosineCorrection(), real(p, s)[1]))
    groups, fn = _fields._field_derivatives(
        problem, settings, torch.ones_like(problem.phi), problem.phi.clone()
    )
    return problem, groups, fn()


def test_autodiff_settings_need_a_coordinate_network():
    assert InferenceSettings(derivatives="autodiff", arch="piratenet").derivatives == "autodiff"
    for arch in ("grid", "convnet"):
        with pytest.raises(pydantic.ValidationError, match="use arch mlp or piratenet"):
            InferenceSettings(derivatives="autodiff", arch=arch)


def test_autodiff_derivatives_of_an_analytic_correction(monkeypatch):
    problem, groups, d = _derivatives("autodiff", monkeypatch)
    h, w = problem.phi.shape
    base = {
        k: v[0, 0]
        for k, v in MollifierLayer(
            problem.radius_px,
            DERIVATIVES_NEEDED,
            spacing=problem.h,
            boundary="reflect",
            kernel="spectral",
        )(problem.phi[None, None]).items()
    }
    # Physical coordinates: y = row * spacing; the correction's wavenumbers pi m / ((h - 1) spacing).
    y = torch.arange(h, dtype=torch.float64)[:, None] * problem.h
    x = torch.arange(w, dtype=torch.float64)[None, :] * problem.h
    ky, kx = math.pi * 3 / ((h - 1) * problem.h), math.pi * 2 / ((w - 1) * problem.h)
    u = 0.05 * torch.cos(ky * y) * torch.cos(kx * x)
    k2 = ky**2 + kx**2
    expected = {
        "u": u,
        "dy": -0.05 * ky * torch.sin(ky * y) * torch.cos(kx * x),
        "dx": -0.05 * kx * torch.cos(ky * y) * torch.sin(kx * x),
        "laplacian": -k2 * u,
        "biharmonic": k2**2 * u,
    }
    for name in ("u", "dx", "laplacian", "biharmonic"):
        got = d[name].detach() - base[name]
        assert torch.allclose(
            got, expected[name], rtol=1e-9, atol=1e-12 * float(expected[name].abs().max())
        ), name
    full = {k: base[k] + expected[k] for k in ("u", "dx", "dy", "laplacian", "biharmonic")}
    assert torch.allclose(
        d["mu_laplacian"].detach(), mu_laplacian(full, problem.model), rtol=1e-9, atol=1e-12
    )
    # The derivatives stay trainable: the correction's amplitude gets a gradient.
    d["mu_laplacian"].pow(2).sum().backward()
    assert float(groups["network"][0].grad.abs()) > 0


def test_autodiff_and_mollifier_agree_on_a_band_limited_correction(monkeypatch):
    """Where the grid resolves the correction, the two methods give the same residual input
    (the spectral derivatives are exact for it; the bump of radius 1.01 px is ~a delta)."""
    problem, _, auto = _derivatives("autodiff", monkeypatch)
    _, _, moll = _derivatives("mollifier", monkeypatch)
    inside = problem.interior
    for name in ("u", "dx", "laplacian", "biharmonic", "mu_laplacian"):
        a, m = auto[name].detach()[inside], moll[name].detach()[inside]
        assert float((a - m).norm() / m.norm()) < 1e-6, name


@pytest.mark.usefixtures("one_thread")
def test_an_autodiff_fit_starts_where_the_mollifier_fit_starts():
    """Both methods start from the same field (the network's correction is zero), so the first
    step's losses agree; the autodiff fit then trains without diverging."""
    phi, mask = _data()
    phi = phi + 0.01 * np.random.default_rng(0).standard_normal(phi.shape)
    fits = {}
    for method in ("mollifier", "autodiff"):
        s = InferenceSettings(
            device="cpu", arch="mlp", derivatives=method, residual_form="chain", steps=3, report_every=1
        )
        *_, fits[method] = fit_rates(phi, mask, 10.0, s)
    first = {m: f.history[0] for m, f in fits.items()}
    for term in ("data", "residual"):
        assert first["autodiff"][term] == pytest.approx(first["mollifier"][term], rel=1e-4), term
    auto = fits["autodiff"]
    assert auto.steps_done == 3 and not auto.diverged and auto.time_per_step_s > 0
    assert np.isfinite(auto.gamma_me[auto.analysed]).all()
    assert auto.history[-1]["total"] < auto.history[0]["total"]
