"""The chromatin model, the forward simulator and the direct rate read-out."""

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_erosion

from napari_mollifier import mollify
from napari_mollifier.config import InferenceSettings
from napari_mollifier.inverse import SmoothBasis, estimate_noise, fit_rates
from napari_mollifier.physics import DERIVATIVES_NEEDED, ChromatinModel, f_prime, mu_laplacian
from napari_mollifier.simulate import nucleus_mask, rate_preset, simulate_nucleus, spectral_residual


def test_chain_rule_laplacian_of_mu_matches_spectral_on_a_smooth_field():
    # lap f'(u) by the chain rule (what the residual uses) equals the direct spectral
    # Laplacian of f'(u) when u is smooth enough that f'(u) is resolved too.
    n, h = 128, 0.5
    x = np.arange(n) * h
    L = n * h
    y, xx = np.meshgrid(x, x, indexing="ij")
    u = 0.5 + 0.2 * np.sin(2 * math.pi * xx / L) * np.cos(4 * math.pi * y / L)
    d = {
        k: v[0, 0]
        for k, v in mollify(
            torch.tensor(u)[None, None], 0.6, DERIVATIVES_NEEDED, spacing=h, kernel="spectral"
        ).items()
    }
    model = ChromatinModel()
    k = 2 * math.pi * np.fft.fftfreq(n, d=h)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    lap = lambda f: np.real(np.fft.ifft2(-k2 * np.fft.fft2(f)))  # noqa: E731
    mu = model.bulk * f_prime(u) - model.kappa * lap(u)
    np.testing.assert_allclose(mu_laplacian(d, model).numpy(), lap(mu), atol=1e-9 * np.abs(lap(mu)).max())


def test_presets_and_mask():
    m = nucleus_mask((100, 120), "circle")
    assert m.shape == (100, 120) and abs(m.mean() - math.pi * 42.5**2 / 12000) < 0.01
    for name in ("uniform", "gradient", "patches"):
        me, ac = rate_preset(name, (64, 64), seed=3)
        frac = me / (me + ac)
        assert np.all((frac > 0.21) & (frac < 0.79)), name  # spinodal band: domains everywhere
    me, ac = rate_preset("gradient", (8, 50))
    assert me[0, -1] > me[0, 0] and ac[0, -1] < ac[0, 0]
    with pytest.raises(ValueError, match="rates must be one of"):
        rate_preset("stripes", (8, 8))


@pytest.fixture(scope="module")
def small_nucleus():
    torch.set_flush_denormal(True)
    return simulate_nucleus(128, rates="gradient", mask="circle", t_end=4.0e4, dt=10.0, seed=1)


def test_simulation_reaches_a_steady_state_with_domains(small_nucleus):
    s = small_nucleus
    inner = binary_erosion(s.mask, iterations=5)
    # Converged: the residual is a few % of the reaction term, and the change per tau is tiny.
    assert s.residual_ratio < 0.1
    assert s.history[-1][1] < 1e-3
    # Domains: phi swings between ~0 and ~1 inside, a minority is heterochromatin; phi ~ 0 outside.
    assert np.quantile(s.phi[inner], 0.02) < 0.15 and np.quantile(s.phi[inner], 0.98) > 0.85
    assert 0.1 < (s.phi[inner] > 0.5).mean() < 0.5
    outside = binary_erosion(~s.mask, iterations=8, border_value=1)
    assert np.abs(s.phi[outside]).max() < 0.05
    # The reported ratio is the simulator's own residual.
    gm = np.where(s.mask, s.gamma_me, 0.0)
    ga = np.where(s.mask, s.gamma_ac, 0.05)
    r = spectral_residual(s.phi, gm, ga, s.model, s.model.spacing(s.pixel_size_nm))
    inner5 = binary_erosion(s.mask, iterations=5)
    ratio = np.sqrt(np.mean(r[inner5] ** 2)) / np.sqrt(np.mean((gm * (1 - s.phi))[inner5] ** 2))
    assert ratio == pytest.approx(s.residual_ratio, rel=1e-6)


def test_direct_readout_recovers_rates_on_noise_free_steady_state(small_nucleus):
    # Noise-free: exact (spectral) derivatives and the smooth basis give the rates back.
    s = small_nucleus
    settings = InferenceSettings(method="direct", device="cpu", rate_scale_nm=300.0, edge_margin_nm=80.0)
    *_, fit = fit_rates(s.phi, s.mask, s.pixel_size_nm, settings)
    inner = binary_erosion(s.mask, iterations=14) & fit.analysed
    for est, true in ((fit.gamma_me, s.gamma_me), (fit.gamma_ac, s.gamma_ac)):
        rel = np.mean(np.abs(est[inner] - true[inner]) / true[inner])
        r = np.corrcoef(est[inner], true[inner])[0, 1]
        assert rel < 0.03 and r > 0.95, (rel, r)
    assert np.isnan(fit.gamma_me[~fit.analysed]).all()


def test_noise_estimate_and_basis():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128]
    clean = 0.5 + 0.4 * np.sin(xx / 9.0) * np.cos(yy / 7.0)
    region = np.ones_like(clean, bool)
    assert estimate_noise(clean + 0.03 * rng.standard_normal(clean.shape), region) == pytest.approx(
        0.03, rel=0.15
    )
    basis = SmoothBasis((40, 50), 10.0)
    c = torch.ones(basis.size, dtype=torch.float32)
    torch.testing.assert_close(basis.expand(c), torch.ones(40, 50))  # partition of unity
    assert basis.grid == (5, 6)
    with pytest.raises(ValueError, match="spacing"):
        SmoothBasis((10, 10), 1.0)


def _scores(fit, sim, erode=14):
    inner = binary_erosion(sim.mask, iterations=erode) & fit.analysed
    out = []
    for est, true in ((fit.gamma_me, sim.gamma_me), (fit.gamma_ac, sim.gamma_ac)):
        out.append(
            (
                np.corrcoef(est[inner], true[inner])[0, 1],
                np.mean(np.abs(est[inner] - true[inner]) / true[inner]),
            )
        )
    return out


def test_pinn_denoises_where_the_direct_readout_fails(small_nucleus):
    # 1 % Gaussian noise on phi: the direct read-out's 4th derivatives are noise-dominated,
    # the preconditioned PINN recovers the rates. Tolerances measured on this 128^2 nucleus
    # (seed 1): PINN rel. errors ~1-2 %, direct > 100 %.
    s = small_nucleus
    noisy = s.phi + 0.01 * np.random.default_rng(4).standard_normal(s.phi.shape)
    common = dict(device="cpu", rate_scale_nm=300.0, edge_margin_nm=80.0)
    *_, direct = fit_rates(noisy, s.mask, s.pixel_size_nm, InferenceSettings(method="direct", **common))
    events = []
    for item in fit_rates(
        noisy, s.mask, s.pixel_size_nm, InferenceSettings(steps=300, report_every=100, **common)
    ):
        events.append(item)
    fit = events[-1]
    assert [e.step for e in events[:-1]] == [100, 200, 300, 300] and events[-2].done
    assert events[0].maps["gamma_me"].shape == events[0].maps["phi_hat"].shape
    (r_me, e_me), (r_ac, e_ac) = _scores(fit, s)
    assert e_me < 0.05 and e_ac < 0.05, (e_me, e_ac)
    assert r_me > 0.9, r_me
    (_, d_me), (_, d_ac) = _scores(direct, s)
    assert d_me > 5 * e_me and d_ac > 5 * e_ac
    # phi_hat stays within the noise of the data inside the nucleus
    inside = s.mask & np.isfinite(fit.phi_hat)
    assert np.sqrt(np.mean((fit.phi_hat[inside] - s.phi[inside]) ** 2)) < 0.01


def test_cancel_keeps_the_latest_maps(small_nucleus):
    import threading

    s = small_nucleus
    cancel = threading.Event()
    settings = InferenceSettings(
        device="cpu", steps=500, report_every=10, rate_scale_nm=300.0, edge_margin_nm=80.0
    )
    last = None
    for item in fit_rates(s.phi, s.mask, s.pixel_size_nm, settings, cancel=cancel):
        last = item
        if getattr(item, "step", 0) >= 20:
            cancel.set()
    assert last.cancelled and last.steps_done == 20
    assert np.isfinite(last.gamma_me[last.analysed]).all()


def test_solver_rejects_bad_input(small_nucleus):
    s = small_nucleus
    with pytest.raises(ValueError, match="match the mask"):
        next(fit_rates(s.phi[:-1], s.mask, 10.0))
    with pytest.raises(ValueError, match="too small or empty"):
        next(fit_rates(s.phi, np.zeros_like(s.mask), 10.0, InferenceSettings(device="cpu")))
    bad = s.phi.copy()
    bad[s.mask.nonzero()[0][0], s.mask.nonzero()[1][0]] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        next(fit_rates(bad, s.mask, 10.0, InferenceSettings(device="cpu")))


@pytest.mark.parametrize("lo, hi, size", [(10, 244, 256), (0, 234, 240), (3, 200, 400), (0, 256, 256)])
def test_solver_crop_grows_to_a_fast_fft_length(lo, hi, size):
    from scipy.fft import next_fast_len

    from napari_mollifier.inverse._problem import _fft_friendly

    a, b = _fft_friendly(lo, hi, size)
    assert 0 <= a <= lo and hi <= b <= size  # never smaller than asked, never off the image
    n = b - a
    # The fit's cosine transforms run real FFTs of the crop's own length along each axis.
    assert n == size or next_fast_len(n, real=True) == n
