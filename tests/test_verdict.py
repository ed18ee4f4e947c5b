"""The verdict on a result: its rules, and the verdict of real fits of simulated nuclei whose truth
is known (a confident wrong map must never be "determined")."""

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_erosion

from napari_mollifier.config import InferenceSettings
from napari_mollifier.inverse import VERDICTS, infer_rates, judge_rates
from napari_mollifier.inverse._verdict import DETERMINED_NOISE, MIN_PHOTONS, RELATIVE_NOISE
from napari_mollifier.simulate import render_intensity


def test_a_fit_that_is_not_ok_is_undetermined():
    for status in ("failed", "diverged", "cancelled"):
        v = judge_rates(status=status, status_reason="negative rates", noise_in_phi=0.001)
        assert v.verdict == "undetermined" and status in v.reason and "negative rates" in v.reason
    both = judge_rates(status="failed", status_reason="negative rates", input_kind="intensity", photons=10)
    assert "negative rates" in both.reason and "~10 photons" in both.reason  # the data's own reason too


@pytest.mark.parametrize(
    "noise, expected",
    [
        (0.5 * DETERMINED_NOISE, "determined"),
        (0.5 * (DETERMINED_NOISE + RELATIVE_NOISE), "relative"),
        (2 * RELATIVE_NOISE, "undetermined"),
    ],
)
def test_noise_in_phi_sets_the_verdict(noise, expected):
    v = judge_rates(status="ok", input_kind="fraction", noise_in_phi=noise)
    assert v.verdict == expected and v.verdict in VERDICTS
    assert f"{100 * noise:.1f}" in v.reason or f"{100 * noise:.0f}" in v.reason  # the figure is named


def test_intensity_without_calibration_or_photons_is_undetermined():
    v = judge_rates(status="ok", input_kind="intensity", levels="uncalibrated", noise_in_phi=0.001)
    assert v.verdict == "undetermined" and "calibration" in v.reason
    dim = judge_rates(status="ok", input_kind="intensity", levels="given", noise_in_phi=0.01, photons=40)
    assert dim.verdict == "undetermined" and "40 photons" in dim.reason
    bright = judge_rates(
        status="ok", input_kind="intensity", levels="given", noise_in_phi=0.01, photons=2 * MIN_PHOTONS
    )
    assert bright.verdict == "determined"


def test_fitted_intensity_levels_cap_the_verdict():
    """Plateau levels hold at one rate magnitude only: relative at best; a joint fit ran away."""
    kw = dict(status="ok", input_kind="intensity", noise_in_phi=0.01, photons=1000)
    assert judge_rates(levels="plateaus", **kw).verdict == "relative"
    assert judge_rates(levels="joint", **kw).verdict == "undetermined"
    assert judge_rates(levels="plateaus", **dict(kw, photons=50)).verdict == "undetermined"


def test_uncertainty_caps_the_verdict():
    assert judge_rates(status="ok", noise_in_phi=0.01, median_rel_sd=0.1).verdict == "determined"
    assert judge_rates(status="ok", noise_in_phi=0.01, median_rel_sd=0.3).verdict == "relative"
    assert judge_rates(status="ok", noise_in_phi=0.01, median_rel_sd=0.8).verdict == "undetermined"


def _scores(result, sim):
    inner = binary_erosion(sim.mask, iterations=12) & result.fit.analysed
    r = {
        k: float(np.corrcoef(getattr(result, k)[inner], getattr(sim, k)[inner])[0, 1])
        for k in ("gamma_me", "gamma_ac")
    }
    ratio = {k: float(np.mean(getattr(result, k)[inner]) / np.mean(getattr(sim, k)[inner])) for k in r}
    return r, ratio


@pytest.fixture(scope="module")
def nucleus():
    from napari_mollifier.simulate import simulate_nucleus

    return simulate_nucleus(128, rates="gradient", seed=31)


def test_verdicts_of_fits_hold_against_the_truth(nucleus):
    """φ with 1 % noise: determined, and right; φ with 12 % noise: undetermined, its mean rates
    within 25 % of the truth with the tolerance grown with the noise and more than 25 % off with
    it held at 0.5 (measured: within 1.2 %; held: off by a factor of ~3); uncalibrated intensity:
    undetermined (its Γ_me is wrong)."""
    torch.set_flush_denormal(True)
    sim = nucleus
    rng = np.random.default_rng(5)
    s = InferenceSettings(device="cpu", steps=600)
    clean = infer_rates(
        sim.phi + 0.01 * rng.standard_normal(sim.phi.shape),
        pixel_size_nm=10.0,
        mask=sim.mask,
        input="fraction",
        settings=s,
    )
    r, ratio = _scores(clean, sim)
    assert clean.verdict.verdict == "determined", clean.verdict
    # 'determined' promises r >= 0.5 for both maps and the mean rates (here within 10 %).
    assert min(r.values()) >= 0.5 and all(abs(v - 1) < 0.1 for v in ratio.values()), (r, ratio)

    noisy_phi = sim.phi + 0.12 * rng.standard_normal(sim.phi.shape)
    noisy = infer_rates(noisy_phi, pixel_size_nm=10.0, mask=sim.mask, input="fraction", settings=s)
    assert noisy.verdict.verdict == "undetermined", noisy.verdict
    _, ratio = _scores(noisy, sim)
    assert max(abs(v - 1) for v in ratio.values()) < 0.25, ratio
    held = s.model_copy(update={"noise_scaled_tolerance": False})
    held_fit = infer_rates(noisy_phi, pixel_size_nm=10.0, mask=sim.mask, input="fraction", settings=held)
    assert held_fit.verdict.verdict != "determined", held_fit.verdict
    _, ratio = _scores(held_fit, sim)
    assert max(abs(v - 1) for v in ratio.values()) > 0.25, ratio  # held: the smoothed field's bias

    counts = render_intensity(sim.phi, sim.mask, 10.0, photons=500, precision_nm=6.4, seed=3)
    inten = infer_rates(2.7 * counts + 100, pixel_size_nm=10.0, mask=sim.mask, input="intensity", settings=s)
    assert inten.verdict.verdict == "undetermined", inten.verdict
    pt = inten.preprocessing["photon_transfer"]
    assert pt["poisson_like"] and pt["gain"] == pytest.approx(2.7, rel=0.25)


def test_overview_title_says_the_verdict():
    from types import SimpleNamespace

    from napari_mollifier.plotting import overview_title

    rel = judge_rates(status="ok", noise_in_phi=0.08)
    title, trusted = overview_title(SimpleNamespace(source="/x/n1.tif", status="ok", verdict=rel))
    assert "rates relative: noise in φ of 8.0 %" in title and not trusted
    det = judge_rates(status="ok", noise_in_phi=0.01)
    assert overview_title(SimpleNamespace(source="n1.tif", status="ok", verdict=det))[1]
    failed = SimpleNamespace(source="n1.tif", status="failed", status_reason="negative rates", verdict=det)
    title, trusted = overview_title(failed)
    assert "FAILED, for inspection only: negative rates" in title and not trusted


def test_the_residual_tolerance_grows_with_the_noise_above_3_percent():
    """The PDE's tolerance: as given up to 3 % noise, in proportion to the noise above (the fit
    with 12 % noise above checks what that does to the rates); fixed with the comparison switch off."""
    from napari_mollifier.inverse._solver import TOLERANCE_NOISE, residual_tolerance

    s = InferenceSettings(residual_tolerance=0.5)
    assert residual_tolerance(s, 0.01) == residual_tolerance(s, TOLERANCE_NOISE) == 0.5
    assert residual_tolerance(s, 0.06) == pytest.approx(1.0)
    assert residual_tolerance(s, 0.12) == pytest.approx(2.0)
    held = s.model_copy(update={"noise_scaled_tolerance": False})
    assert residual_tolerance(held, 0.12) == 0.5
