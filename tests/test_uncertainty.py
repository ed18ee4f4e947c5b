"""Uncertainty of the rate maps: the per-pixel quadratic form against a dense reference, the
correlation area of fields with a known autocorrelation, the sd of a linear least-squares toy with
a known covariance, and the sd maps of a fit (shape, NaN outside, positivity, coverage of the truth
on a small simulated nucleus, the files written)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import binary_erosion, gaussian_filter

from napari_mollifier.config import InferenceSettings
from napari_mollifier.inverse import RateFit, RateProblem, SmoothBasis, fit_rates
from napari_mollifier.inverse._uncertainty import (
    SYSTEMATIC_PER_NOISE,
    RateUncertainty,
    correlation_area,
    laplace_uncertainty,
    map_variance,
    sandwich_uncertainty,
    statistical_sd,
    with_systematic,
)
from napari_mollifier.physics import ChromatinModel


def _dense(basis: SmoothBasis) -> np.ndarray:
    """(K, H, W): every basis function on the grid (bicubic of the control grid's unit vectors)."""
    k = basis.size
    eye = torch.eye(k, dtype=torch.float64).reshape(k, 1, *basis.grid)
    return F.interpolate(eye, size=basis.shape, mode="bicubic", align_corners=True)[:, 0].numpy()


@pytest.mark.parametrize("shape, spacing", [((37, 52), 6.0), ((12, 40), 11.0)])
def test_map_variance_is_the_quadratic_form_of_every_pixel(shape, spacing):
    # (12, 40) at 11 px: a grid of 2 x 5 control points, fewer than the band's reach along y.
    basis = SmoothBasis(shape, spacing, dtype=torch.float64)
    rng = np.random.default_rng(1)
    k = basis.size
    x = rng.standard_normal((k, k))
    cov = x @ x.T  # dense: the band must carry everything the 4 x 4 support sees
    rows, cols, valid = basis.band_pattern()
    band = np.zeros(valid.shape)
    band[valid] = cov[rows[valid], cols[valid]]
    b = _dense(basis).reshape(k, -1)
    exact = np.einsum("kp,kl,lp->p", b, cov, b).reshape(basis.shape)
    np.testing.assert_allclose(map_variance(basis, band), exact, rtol=1e-10, atol=1e-10)


def test_correlation_area_of_white_and_smoothed_noise():
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:160, :160]
    region = (yy - 80) ** 2 + (xx - 80) ** 2 < 70**2
    white = rng.standard_normal(region.shape)
    assert correlation_area(white, region) == pytest.approx(1.0, abs=0.5)
    # Gaussian-filtered white noise (sigma s) has a Gaussian autocorrelation of width s sqrt(2):
    # area 4 pi s^2.
    s = 3.0
    smooth = gaussian_filter(rng.standard_normal((400, 400)), s)[120:280, 120:280]
    assert correlation_area(smooth, region) == pytest.approx(4 * np.pi * s**2, rel=0.25)


def _toy_problem(sigma: float, seed: int):
    """A rate problem whose right-hand side is exactly linear in the coefficients plus white noise of
    std sigma on the interior: b = A c* + sigma eps (the residual's derivatives are set so)."""
    rng = np.random.default_rng(seed)
    h = w = 96
    yy, xx = np.mgrid[:h, :w]
    mask = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (0.45 * h) ** 2
    phi = 0.5 + 0.3 * np.sin(yy / 5.0) * np.cos(xx / 7.0)
    settings = InferenceSettings(device="cpu", precision="float64", rate_scale_nm=200.0)
    model = ChromatinModel()
    problem = RateProblem(phi, mask, 10.0, settings, model, torch.device("cpu"))
    u = problem.phi.double()
    k = problem.n_coef
    fixed = np.random.default_rng(0)  # the same true coefficients for every noise draw
    coef = torch.as_tensor(np.concatenate([2e-3 + 1e-4 * fixed.random(k), 4e-3 + 1e-4 * fixed.random(k)]))
    me, ac = problem.basis.expand(coef[:k]), problem.basis.expand(coef[k:])
    b = me * (1 - u) - ac * u + sigma * torch.as_tensor(rng.standard_normal(u.shape))
    d = {"u": u, "mu_laplacian": -b / model.mobility}
    fit_coef = problem.solve(d)
    return problem, d, fit_coef


def _analytic_sd(problem, d, sigma: float, sandwich: bool) -> dict:
    """sd maps of the exact covariance: sigma^2 N^-1 A^T A N^-1 (the least-squares estimate's) or
    sigma^2 N^-1 (the Gaussian posterior's), through dense matrices."""
    n_matrix, _ = problem.normal_matrix(d)
    n_matrix = n_matrix.toarray()
    bands, _ = problem.normal_equations(d)
    ata = problem._csc(
        np.concatenate(
            [bands[0].numpy()[problem._valid], -bands[1].numpy()[problem._valid]] * 1
            + [-bands[1].numpy()[problem._valid], bands[2].numpy()[problem._valid]]
        )
    ).toarray()
    inv = np.linalg.inv(n_matrix)
    cov = sigma**2 * (inv @ ata @ inv if sandwich else inv)
    k = problem.n_coef
    b = _dense(problem.basis).reshape(k, -1)
    out = {}
    for key, (i, j) in {"gamma_me": (0, 0), "gamma_ac": (1, 1)}.items():
        block = cov[i * k : (i + 1) * k, j * k : (j + 1) * k]
        out[key] = np.sqrt(np.einsum("kp,kl,lp->p", b, block, b)).reshape(problem.basis.shape)
    return out


@pytest.mark.parametrize("method", ["sandwich", "laplace"])
def test_sd_of_a_linear_least_squares_toy_matches_its_covariance(method):
    # White residual noise of known sigma: the sandwich must give the least-squares estimate's
    # covariance sigma^2 N^-1 A^T A N^-1, the Laplace form (no data-noise term: s_d ~ 0) the
    # posterior sigma^2 N^-1, both within the sampling error of the residual's variance and of its
    # correlation area (about 1 for white noise).
    sigma = 1e-4
    problem, d, coef = _toy_problem(sigma, seed=3)
    maps = problem.maps(coef, d["u"])
    if method == "sandwich":
        unc = sandwich_uncertainty(problem, d, coef, maps)
    else:
        unc = laplace_uncertainty(problem, d, coef, maps, s_d=1e-12)
    exact = _analytic_sd(problem, d, sigma, sandwich=method == "sandwich")
    inside = problem.interior.numpy()
    for key, sd in (("gamma_me", unc.gamma_me), ("gamma_ac", unc.gamma_ac)):
        ratio = sd[inside] / exact[key][inside]
        assert 0.75 < np.median(ratio) < 1.35, (key, np.median(ratio))
        assert np.all(np.isnan(sd[~inside]))
    # And that covariance is the estimate's: over fresh noise draws the fitted maps scatter as the
    # analytic sd says (20 draws: the sample sd within ~35 %).
    if method == "sandwich":
        draws = np.stack(
            [problem.basis.expand(_toy_problem(sigma, s)[2][: problem.n_coef]).numpy() for s in range(10, 30)]
        )
        ratio = np.std(draws, axis=0, ddof=1)[inside] / exact["gamma_me"][inside]
        assert 0.7 < np.median(ratio) < 1.3, np.median(ratio)


@pytest.fixture(scope="module")
def small_fit():
    from napari_mollifier.simulate import simulate_nucleus

    sim = simulate_nucleus(128, rates="gradient", mask="circle", t_end=4.0e4, dt=10.0, seed=1)
    data = sim.phi + 0.01 * np.random.default_rng(5).standard_normal(sim.phi.shape)
    fit = None
    for item in fit_rates(data, sim.mask, 10.0, InferenceSettings(device="cpu", steps=600)):
        if isinstance(item, RateFit):
            fit = item
    return sim, data, fit


def test_fit_sd_maps_are_positive_inside_and_nan_outside(small_fit):
    _, _, fit = small_fit
    assert fit.uncertainty["method"] == "laplace"
    for sd, value in (
        (fit.gamma_me_sd, fit.gamma_me),
        (fit.gamma_ac_sd, fit.gamma_ac),
        (fit.lam_sd, fit.lam),
    ):
        assert sd.shape == value.shape and sd.dtype == np.float32
        assert np.all(np.isnan(sd[~fit.analysed]))
        assert np.all(np.isfinite(sd[fit.analysed])) and np.all(sd[fit.analysed] > 0)
    for key in ("gamma_me", "gamma_ac", "lambda"):
        assert 0 < fit.uncertainty["median_relative_sd"][key] < 0.2


def test_sd_maps_cover_the_truth_of_a_simulated_nucleus(small_fit):
    # 128^2 gradient nucleus at 1 % noise: |estimate - truth| <= 1.64 sd on at least 75 % of the
    # scored pixels (20 px inside the edge), with a band narrower than 10 % of the rate. Measured:
    # 0.85 / 0.83 / 0.97 (Gamma_me, Gamma_ac, lambda); the residual-only sandwich gives 0.31 / 0.28 /
    # 0.88 on the same fit and fails.
    sim, _, fit = small_fit
    inner = binary_erosion(sim.mask, iterations=20) & fit.analysed
    truth = {"gamma_me": sim.gamma_me, "gamma_ac": sim.gamma_ac, "lam": sim.gamma_me / sim.gamma_ac}
    for key, t in truth.items():
        est, sd = getattr(fit, key)[inner], getattr(fit, f"{key}_sd")[inner]
        coverage = np.mean(np.abs(est - t[inner]) <= 1.64 * sd)
        assert coverage >= 0.75, (key, coverage)
        assert np.median(sd) / np.mean(t[inner]) < 0.1


def test_the_systematic_part_is_added_in_quadrature():
    # sd 3 on a map of 100 at s_d = 2 %: the systematic part is k x 2 % x 100 (4 for k = 2), the
    # total sqrt(3^2 + 4^2) = 5; NaN stays NaN; statistical_sd takes it back off.
    stat = np.array([[3.0, np.nan]], np.float32)
    maps = {
        "gamma_me": np.array([[100.0, np.nan]]),
        "gamma_ac": np.array([[-50.0, 1.0]]),
        "lambda": np.ones((1, 2)),
    }
    unc = RateUncertainty(stat, stat.copy(), stat.copy(), "laplace", {"s_d": 0.02})
    total = with_systematic(unc, maps, 0.02)
    rel = SYSTEMATIC_PER_NOISE * 0.02
    assert total.figures == {"s_d": 0.02, "systematic_relative_sd": pytest.approx(rel)}
    assert total.method == "laplace"
    assert total.gamma_me[0, 0] == pytest.approx(np.hypot(3.0, rel * 100.0), rel=1e-6)
    assert total.gamma_ac[0, 0] == pytest.approx(np.hypot(3.0, rel * 50.0), rel=1e-6)  # |map|
    assert np.isnan(total.gamma_me[0, 1]) and np.isnan(total.lam[0, 1])
    assert statistical_sd(total.gamma_me, maps["gamma_me"], rel)[0, 0] == pytest.approx(3.0, rel=1e-5)
    # Noise-free data: nothing added.
    assert with_systematic(unc, maps, 0.0).gamma_me[0, 0] == pytest.approx(3.0)


def test_the_fit_records_its_systematic_part(small_fit):
    _, _, fit = small_fit
    rel = fit.uncertainty["systematic_relative_sd"]
    assert rel == pytest.approx(SYSTEMATIC_PER_NOISE * fit.losses["s_d"])
    # Every pixel's sd is at least its systematic part.
    inside = fit.analysed
    assert np.all(fit.gamma_me_sd[inside] >= 0.999 * rel * np.abs(fit.gamma_me[inside]))


@pytest.mark.slow
def test_sd_maps_cover_a_biased_fit_of_calibrated_counts(tmp_path):
    # The 'patches' nucleus rendered as 1000 Poisson counts per heterochromatin pixel, 15 nm blur,
    # read with its true levels: the fit is "determined" but its mean Gamma_ac is ~6 % high while
    # the statistical sd is ~1.6 % of the rate, which covered 2 % of the pixels
    # (benchmarks/results/systematic_sd.md). With the systematic part the +-1.64 sd intervals must
    # hold the truth on >= 80 % of the scored pixels for both rates and lambda; without it, < 50 %.
    from mollifier_bench.nuclei import cached_preset
    from napari_mollifier.inverse import infer_rates
    from napari_mollifier.simulate import render_intensity

    torch.set_flush_denormal(True)
    sim = cached_preset(tmp_path, "patches", 5, 256)  # the benchmarks' nucleus (~15 s to simulate)
    counts = render_intensity(sim["phi"], sim["mask"], 10.0, photons=1000.0, precision_nm=15.0, seed=216)
    settings = InferenceSettings(device="cpu", euchromatin_level=300.0, heterochromatin_level=1000.0)
    res = infer_rates(
        counts.astype(np.float32), pixel_size_nm=10.0, mask=sim["mask"], input="intensity", settings=settings
    )
    fit = res.fit
    assert res.verdict.verdict == "determined"
    inner = binary_erosion(sim["mask"], iterations=20) & fit.analysed
    rel = fit.uncertainty["systematic_relative_sd"]
    truth = {
        "gamma_me": sim["gamma_me"],
        "gamma_ac": sim["gamma_ac"],
        "lam": sim["gamma_me"] / sim["gamma_ac"],
    }
    stat_cover = []
    for key, t in truth.items():
        est, sd = getattr(fit, key)[inner], getattr(fit, f"{key}_sd")[inner]
        err = np.abs(est - t[inner])
        assert np.mean(err <= 1.64 * sd) >= 0.8, key
        stat_cover.append(np.mean(err <= 1.64 * statistical_sd(sd, est, rel)))
    assert min(stat_cover) < 0.5, stat_cover


def test_sd_maps_are_written_beside_the_maps(small_fit, tmp_path):
    import tifffile

    from napari_mollifier.inverse import RateMaps, write_rate_maps

    sim, data, fit = small_fit
    maps = RateMaps(
        gamma_me=fit.gamma_me,
        gamma_ac=fit.gamma_ac,
        lam=fit.lam,
        phi_hat=fit.phi_hat,
        mask=fit.analysed,
        phi=data,
        pixel_size_nm=10.0,
        source="cell.tif",
        fit=fit,
    )
    paths = write_rate_maps(maps, tmp_path)
    for key, arr in (
        ("gamma_me_sd", fit.gamma_me_sd),
        ("gamma_ac_sd", fit.gamma_ac_sd),
        ("lambda_sd", fit.lam_sd),
    ):
        assert paths[key] == tmp_path / f"cell_{key}.tif"
        np.testing.assert_array_equal(tifffile.imread(paths[key]), arr)
    record = json.loads((tmp_path / "cell.json").read_text())
    assert record["uncertainty"]["method"] == "laplace"
    assert record["summary"]["gamma_me"]["median_relative_sd"] == pytest.approx(
        fit.uncertainty["median_relative_sd"]["gamma_me"]
    )
    # No sd maps asked for: none written, and S.json says so.
    fit.gamma_me_sd = fit.gamma_ac_sd = fit.lam_sd = None
    fit.uncertainty = {"method": "none"}
    out = tmp_path / "none"
    paths = write_rate_maps(maps, out)
    assert not any(k.endswith("_sd") for k in paths) and not list(out.glob("*_sd.tif"))


def test_batch_knows_the_sd_outputs(tmp_path):
    from napari_mollifier.batch import OUTPUT_FILE_KEYS, SD_FILE_KEYS, FileResult
    from napari_mollifier.batch._resume import completed_result

    assert set(SD_FILE_KEYS) <= set(OUTPUT_FILE_KEYS)
    row = FileResult(
        "a.tif",
        "ok",
        summary={"gamma_me": {"mean": 2e-3, "median_relative_sd": 0.0123}, "gamma_ac": {"mean": 4e-3}},
    ).row()
    assert row["gamma_me_rel_sd"] == "0.0123" and row["gamma_ac_rel_sd"] == "" and row["lambda_rel_sd"] == ""
    # A finished record is complete with the sd maps, or without them when it says it has none.
    image = tmp_path / "a.tif"
    image.write_bytes(b"x")
    out = tmp_path / "out"
    out.mkdir()
    for key in OUTPUT_FILE_KEYS:
        if key not in SD_FILE_KEYS:
            (out / f"a_{key}.tif").write_bytes(b"x")
    (out / "a_rates.csv").write_text("x")
    record = {"status": "ok", "batch": {"key": "k"}, "uncertainty": {"method": "laplace"}}
    (out / "a.json").write_text(json.dumps(record))
    assert completed_result(image, out, "k") is None  # the sd maps are missing
    record["uncertainty"] = {"method": "none"}
    (out / "a.json").write_text(json.dumps(record))
    assert completed_result(image, out, "k").status == "skipped"


def test_napari_layers_know_the_sd_maps():
    from napari_mollifier._napari._fit import describe_point
    from napari_mollifier._napari._layers import MAP_STYLE, SD_MAP_KEYS, map_key

    for key in SD_MAP_KEYS:
        assert map_key(f"cell_{key}") == key and key in MAP_STYLE
    assert map_key("cell_gamma_me") == "gamma_me"
    values = {"gamma_me": 2.1e-3, "gamma_ac": 4e-3, "lambda": 0.525, "phi_hat": 0.3}
    text = describe_point(3, 4, dict(values, gamma_me_sd=1e-5, gamma_ac_sd=2e-5, lambda_sd=0.004))
    assert "Γ_me = 0.0021 /τ" in text and "sd 1e-05, 2e-05, 0.004" in text
    assert "sd " not in describe_point(3, 4, values)


def test_bootstrap_sd_is_the_spread_of_the_refits():
    # A "fit" that returns its data as the maps: the bootstrap's variance is then the added noise's
    # (the mean over 4096 pixels of the unbiased variance of 8 draws: sigma within ~2 %).
    from napari_mollifier.inverse._uncertainty import bootstrap_uncertainty

    imaged = np.full((64, 64), 0.4)
    unc = bootstrap_uncertainty(lambda data: (data, 2 * data, data / 2), imaged, 0.03, fits=8)
    assert unc.method == "bootstrap" and unc.figures["fits"] == 8
    assert np.sqrt(np.mean(unc.gamma_me.astype(float) ** 2)) == pytest.approx(0.03, rel=0.03)
    assert np.sqrt(np.mean(unc.gamma_ac.astype(float) ** 2)) == pytest.approx(0.06, rel=0.03)
    # Cancelled before two refits: no estimate.
    assert bootstrap_uncertainty(lambda data: None, imaged, 0.03, fits=8) is None


def test_a_bootstrap_fit_and_a_fit_without_uncertainty(small_fit):
    sim, data, _ = small_fit
    fits = {}
    for method in ("bootstrap", "none"):
        settings = InferenceSettings(device="cpu", steps=60, uncertainty=method, bootstrap_fits=2)
        for item in fit_rates(data, sim.mask, 10.0, settings):
            if isinstance(item, RateFit):
                fits[method] = item
    boot = fits["bootstrap"]
    assert boot.uncertainty["method"] == "bootstrap" and boot.uncertainty["fits"] == 2
    for sd in (boot.gamma_me_sd, boot.gamma_ac_sd, boot.lam_sd):
        assert np.all(np.isnan(sd[~boot.analysed])) and np.all(sd[boot.analysed] >= 0)
        assert np.median(sd[boot.analysed]) > 0
    none = fits["none"]
    assert none.uncertainty == {"method": "none"} and none.gamma_me_sd is None and none.lam_sd is None


def test_the_covariance_band_does_not_depend_on_the_column_chunks(monkeypatch):
    # The band is gathered a chunk of columns at a time (memory 2K x chunk): chunks of 7 columns
    # that split every block give the sd maps of a single chunk.
    import napari_mollifier.inverse._uncertainty as unc_module

    problem, d, coef = _toy_problem(1e-4, seed=3)
    maps = problem.maps(coef, d["u"])
    whole = {m: f(problem, d, coef, maps) for m, f in (("s", sandwich_uncertainty), ("l", _laplace))}
    monkeypatch.setattr(unc_module, "COLUMN_CHUNK", 7)
    for m, f in (("s", sandwich_uncertainty), ("l", _laplace)):
        part = f(problem, d, coef, maps)
        for key in ("gamma_me", "gamma_ac", "lam"):
            np.testing.assert_allclose(getattr(part, key), getattr(whole[m], key), rtol=1e-6)


def _laplace(problem, d, coef, maps):
    return laplace_uncertainty(problem, d, coef, maps, s_d=0.01)


def test_the_cost_estimate_counts_the_bootstrap_refits():
    from napari_mollifier.inverse import estimate_fit_cost

    mask = np.zeros((256, 256), bool)
    mask[40:200, 50:220] = True
    one = estimate_fit_cost((256, 256), mask, pixel_size_nm=10.0, settings=InferenceSettings(device="cpu"))
    boot = estimate_fit_cost(
        (256, 256),
        mask,
        pixel_size_nm=10.0,
        settings=InferenceSettings(device="cpu", uncertainty="bootstrap", bootstrap_fits=8),
    )
    assert boot.seconds == pytest.approx(9 * one.seconds) and boot.memory_bytes == one.memory_bytes


@pytest.mark.parametrize("update", [{"psf_sigma_nm": 15.0, "steps": 60}, {"method": "direct"}])
def test_sd_maps_with_a_psf_and_for_the_direct_read_out(small_fit, update):
    sim, data, _ = small_fit
    fit = None
    for item in fit_rates(data, sim.mask, 10.0, InferenceSettings(device="cpu", **update)):
        if isinstance(item, RateFit):
            fit = item
    assert fit.uncertainty["method"] == "laplace"
    for sd in (fit.gamma_me_sd, fit.gamma_ac_sd, fit.lam_sd):
        assert np.all(np.isfinite(sd[fit.analysed])) and np.all(sd[fit.analysed] > 0)
