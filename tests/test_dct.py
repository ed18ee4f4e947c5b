"""Cosine transforms and the symmetric-boundary spectral mollifier, against scipy and analytic
derivatives; the rate problem's derivatives against the same layer composed by hand."""

import math

import numpy as np
import pytest
import scipy.fft
import torch

from napari_mollifier.mollifier import MollifierLayer, mollify
from napari_mollifier.mollifier._dct import cosine_wavenumbers, dct, dctn, idct, idctn


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 9, 16, 33])
def test_dct_is_scipys_dct2_and_idct_inverts_it(n):
    x = torch.randn(3, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    ours = dct(x)
    # scipy's unnormalised DCT-II is 2 sum x_j cos(...): twice ours.
    np.testing.assert_allclose(ours.numpy(), scipy.fft.dct(x.numpy(), type=2) / 2, atol=1e-12)
    np.testing.assert_allclose(idct(ours).numpy(), x.numpy(), atol=1e-12)


def test_dctn_along_both_axes_and_its_gradient():
    x = torch.randn(2, 12, 15, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(
        dctn(x).numpy(), scipy.fft.dctn(x.numpy(), type=2, axes=(-2, -1)) / 4, atol=1e-11
    )
    np.testing.assert_allclose(idctn(dctn(x)).numpy(), x.numpy(), atol=1e-12)
    small = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(dctn, (small,))
    assert torch.autograd.gradcheck(idctn, (small,))


def test_float32_transforms_keep_their_dtype():
    x = torch.randn(10, 14)
    assert dctn(x).dtype == torch.float32
    assert float((idctn(dctn(x)) - x).abs().max()) < 1e-5


def _cosine_field(n: int, h: float):
    """cos(2 pi y / L) cos(3 pi x / L) on cell centres: a cosine mode of the symmetric extension."""
    c = (torch.arange(n, dtype=torch.float64) + 0.5) * h
    length = n * h
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    k2 = (2 * math.pi / length) ** 2 + (3 * math.pi / length) ** 2
    return torch.cos(2 * math.pi * yy / length) * torch.cos(3 * math.pi * xx / length), k2


def test_symmetric_spectral_mollifier_differentiates_a_cosine_mode_exactly():
    f, k2 = _cosine_field(48, 0.3)
    # Radius ~1 sample: the sampled bump is a delta, so the derivatives are exact.
    out = mollify(
        f[None, None],
        1.01,
        ("u", "laplacian", "biharmonic", "dxx"),
        spacing=0.3,
        boundary="symmetric",
        kernel="spectral",
    )
    assert float((out["u"][0, 0] - f).abs().max()) < 1e-12
    assert float((out["laplacian"][0, 0] + k2 * f).abs().max()) < 1e-10 * k2
    assert float((out["biharmonic"][0, 0] - k2**2 * f).abs().max()) < 1e-9 * k2**2
    kx2 = (3 * math.pi / (48 * 0.3)) ** 2
    assert float((out["dxx"][0, 0] + kx2 * f).abs().max()) < 1e-10 * kx2


def test_symmetric_boundary_refuses_odd_derivatives_and_other_kernels():
    f = torch.zeros(1, 1, 8, 8)
    with pytest.raises(ValueError, match="even order"):
        mollify(f, 1.01, ("dx",), boundary="symmetric", kernel="spectral")
    with pytest.raises(ValueError, match="spectral"):
        mollify(f, 2.0, ("u",), boundary="symmetric")


def test_wider_bump_smooths_each_mode_by_its_symbol():
    f, k2 = _cosine_field(40, 1.0)
    layer = MollifierLayer(3.0, ("u",), spacing=1.0, boundary="symmetric", kernel="spectral").double()
    u = layer(f[None, None])["u"][0, 0]
    ratio = float((u * f).sum() / (f * f).sum())
    # A mode is scaled by the bump's transform at its wavenumber: strictly between 0 and 1.
    assert 0.5 < ratio < 1.0
    assert float((u - ratio * f).abs().max()) < 1e-10


def test_cosine_wavenumbers():
    k = cosine_wavenumbers(4, 0.5)
    np.testing.assert_allclose(k.numpy(), np.pi * np.arange(4) / 2.0)


def test_rate_problem_derivatives_are_the_nested_mollifier_composition():
    """RateProblem takes u and lap(mu) from the field's cosine coefficients in one pass; it must
    equal the mollifier layer applied as the "nested" form says: u = g * eta, mu = A f'(u) -
    kappa lap(u), lap(mu) by a second mollified Laplacian (a radius of 2.5 px: a real bump)."""
    from napari_mollifier.config import InferenceSettings
    from napari_mollifier.inverse import RateProblem
    from napari_mollifier.physics import ChromatinModel, f_prime
    from napari_mollifier.simulate import nucleus_mask

    rng = np.random.default_rng(0)
    mask = nucleus_mask((64, 64), "circle")
    phi = np.where(mask, 0.5 + 0.2 * rng.standard_normal((64, 64)), 0.1)
    model = ChromatinModel()
    settings = InferenceSettings(device="cpu", precision="float64", kernel_radius_nm=25.0, rate_scale_nm=200)
    problem = RateProblem(phi, mask, 10.0, settings, model, torch.device("cpu"))
    g = problem.phi
    d = problem.derivatives(g)
    layer = MollifierLayer(
        2.5, ("u", "laplacian"), spacing=problem.h, boundary="symmetric", kernel="spectral"
    )
    first = layer.double()(g[None, None])
    mu = model.bulk * f_prime(first["u"]) - model.kappa * first["laplacian"]
    lap_mu = layer(mu)["laplacian"][0, 0]
    scale = float(lap_mu.abs().max())
    assert float((d["u"] - first["u"][0, 0]).abs().max()) < 1e-12
    assert float((d["mu_laplacian"] - lap_mu).abs().max()) < 1e-10 * scale
