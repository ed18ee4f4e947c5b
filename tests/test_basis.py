"""The rate basis without dense arrays: banded Gram, separable expansion and projection, and the
banded Cholesky solve of the normal equations, against dense references built here; and the
set-up memory of a whole-nucleus-sized problem."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_mollifier.config import InferenceSettings
from napari_mollifier.inverse import RateProblem, SmoothBasis
from napari_mollifier.physics import ChromatinModel


def _dense(basis: SmoothBasis) -> torch.Tensor:
    """(K, H, W) float64: every basis function on the crop (bicubic of the control grid's unit
    vectors), the reference the banded forms must equal."""
    k = basis.size
    eye = torch.eye(k, dtype=torch.float64).reshape(k, 1, *basis.grid)
    return F.interpolate(eye, size=basis.shape, mode="bicubic", align_corners=True)[:, 0]


@pytest.mark.parametrize(
    "shape, spacing", [((61, 47), 9.0), ((47, 61), 9.0), ((40, 50), 10.0), ((30, 9), 3.0)]
)
def test_banded_basis_matches_the_dense_formulas(shape, spacing):
    rng = np.random.default_rng(3)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    region = torch.as_tensor((yy - h / 2) ** 2 / (h / 2) ** 2 + (xx - w / 2) ** 2 / (w / 2) ** 2 < 1)
    basis = SmoothBasis(shape, spacing, region, dtype=torch.float64)
    full = _dense(basis)
    dense = full[:, region].T  # (P, K) design of the region's pixels
    weights = torch.as_tensor(rng.random((3, h, w))) * region
    fields = torch.as_tensor(rng.standard_normal((2, h, w))) * region
    c = torch.as_tensor(rng.standard_normal((2, basis.size)))
    for wgt in weights:
        ref = dense.T @ (wgt[region][:, None] * dense)
        np.testing.assert_allclose(basis.gram(wgt).toarray(), ref.numpy(), rtol=0, atol=1e-12)
    bands = basis.gram_band(weights)
    for wgt, band in zip(weights, bands):
        np.testing.assert_allclose(
            basis.band_to_sparse(band).toarray(), basis.gram(wgt).toarray(), rtol=0, atol=1e-15
        )
    torch.testing.assert_close(basis.project(fields[0]), dense.T @ fields[0][region], rtol=0, atol=1e-12)
    torch.testing.assert_close(basis.project(fields), fields[:, region] @ dense, rtol=0, atol=1e-12)
    torch.testing.assert_close(basis.expand(c[0]), torch.tensordot(c[0], full, 1), rtol=0, atol=1e-12)
    torch.testing.assert_close(basis.expand(c), torch.tensordot(c, full, 1), rtol=0, atol=1e-12)
    torch.testing.assert_close(
        basis.expand(torch.ones(basis.size, dtype=torch.float64)), torch.ones(shape, dtype=torch.float64)
    )
    d2 = basis.smoothness_operator().toarray()
    roughness = basis.band_to_sparse(torch.from_numpy(basis.roughness_band())).toarray()
    np.testing.assert_allclose(roughness, d2.T @ d2, rtol=0, atol=1e-12)


def _problem(shape=(70, 90), pixel_nm=10.0, rate_scale_nm=120.0, seed=0):
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    phi = 0.5 + 0.3 * np.sin(yy / 5.0) * np.cos(xx / 7.0) + 0.01 * rng.standard_normal(shape)
    mask = (yy - h / 2) ** 2 / (0.45 * h) ** 2 + (xx - w / 2) ** 2 / (0.45 * w) ** 2 < 1
    settings = InferenceSettings(device="cpu", precision="float64", rate_scale_nm=rate_scale_nm)
    return RateProblem(phi, mask, pixel_nm, settings, ChromatinModel(), torch.device("cpu"))


@pytest.mark.parametrize("shape", [(70, 90), (90, 70)])
def test_banded_solve_equals_the_dense_least_squares(shape):
    # The normal matrix equals A^T A + R of the dense design, and the banded Cholesky gives the
    # dense solve's coefficients; residual_energy is the objective they minimise.
    problem = _problem(shape)
    d = problem.derivatives(problem.phi)
    coef = problem.solve(d)
    u, b, inside = problem._fields(d)
    region = problem.interior
    full = _dense(problem.basis)[:, region].T
    a = torch.cat([full * (1 - u[region])[:, None], -full * u[region][:, None]], 1)
    d2 = torch.as_tensor(problem.basis.smoothness_operator().toarray())
    rough, ridge = problem.reg_weights
    one = rough * d2.T @ d2 + ridge * torch.eye(problem.n_coef, dtype=torch.float64)
    reg = torch.block_diag(one, one)
    m, atb = problem.normal_matrix(d)
    np.testing.assert_allclose(
        m.toarray(), (a.T @ a + reg).numpy(), rtol=1e-12, atol=1e-12 * float(reg.max())
    )
    torch.testing.assert_close(atb, a.T @ b[region], rtol=1e-12, atol=1e-12)
    ref = torch.linalg.solve(a.T @ a + reg, a.T @ b[region])
    torch.testing.assert_close(coef, ref, rtol=1e-9, atol=1e-9 * float(ref.abs().max()))
    energy = ((a @ coef - b[region]).pow(2).sum() + coef @ reg @ coef) / int(region.sum())
    torch.testing.assert_close(problem.residual_energy(d, coef), energy, rtol=1e-12, atol=0)
    # Optimal: the gradient of the objective in the coefficients vanishes to rounding.
    grad = (a.T @ a + reg) @ coef - a.T @ b[region]
    assert float(grad.norm()) < 1e-10 * float((a.T @ b[region]).norm())


def test_the_rate_solve_runs_blas_on_one_thread(monkeypatch):
    # OpenBLAS's worker threads spin after a call and starve torch's threads: with them a 256^2
    # fit took 48 ms a step on 2 cores instead of 12 ms (benchmark: /proc/loadavg ~1.8).
    import scipy.linalg
    from threadpoolctl import threadpool_info

    seen = []
    real = scipy.linalg.cholesky_banded

    def spy(*args, **kwargs):
        seen.extend(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
        return real(*args, **kwargs)

    monkeypatch.setattr(scipy.linalg, "cholesky_banded", spy)
    problem = _problem()
    problem.solve(problem.derivatives(problem.phi))
    assert seen and set(seen) == {1}


def _tensor_bytes(obj, seen=None) -> int:
    """Bytes of every torch tensor reachable from an object's attributes (lists, tuples, dicts)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(o, seen) for o in obj)
    if isinstance(obj, dict):
        return sum(_tensor_bytes(o, seen) for o in obj.values())
    if hasattr(obj, "__dict__"):
        return sum(_tensor_bytes(o, seen) for o in vars(obj).values())
    return 0


def test_setup_memory_of_a_1024_nucleus_stays_small():
    # A whole nucleus at 20 nm: 1024^2 pixels, control points every 25 px (K = 42^2). A dense
    # (K, H, W) float64 basis would be 14.8 GB; the banded one holds the 1-D factors and run
    # weights only. Python/numpy allocations while setting up and solving once stay far below 1 GB.
    n = 1024
    yy, xx = np.mgrid[:n, :n]
    rng = np.random.default_rng(0)
    phi = 0.5 + 0.3 * np.sin(yy / 9.0) * np.cos(xx / 13.0) + 0.01 * rng.standard_normal((n, n))
    mask = (yy - n / 2) ** 2 + (xx - n / 2) ** 2 < (0.47 * n) ** 2
    settings = InferenceSettings(device="cpu")
    tracemalloc.start()
    try:
        problem = RateProblem(phi, mask, 20.0, settings, ChromatinModel(), torch.device("cpu"))
        _, peak_setup = tracemalloc.get_traced_memory()
        with torch.no_grad():
            coef = problem.solve(problem.derivatives(problem.phi))
        _, peak_solve = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    basis = problem.basis
    k = basis.size
    h, w = basis.shape
    dense_bytes = k * h * w * 8
    held = _tensor_bytes(basis)
    assert k > 1500 and torch.isfinite(coef).all()
    assert held < 32e6, f"the basis holds {held / 1e6:.0f} MB of tensors"
    assert held * 100 < dense_bytes
    assert peak_setup < 1e9 and peak_solve < 1e9, (peak_setup, peak_solve)
