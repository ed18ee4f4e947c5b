"""Fitting the imaging levels with the field (``calibration="joint"``): the closed-form gain and
offset, the exact gradient through them, and the scale-free residual."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_mollifier.config import InferenceSettings
from napari_mollifier.inverse import RateProblem
from napari_mollifier.physics import ChromatinModel

torch.set_flush_denormal(True)


def _problem(data_map=lambda x: x, n=48):
    yy, xx = np.mgrid[:n, :n]
    phi = 0.4 + 0.3 * np.sin(2 * np.pi * yy / 13.0) * np.cos(2 * np.pi * xx / 17.0)
    mask = (yy - n / 2) ** 2 + (xx - n / 2) ** 2 < (0.45 * n) ** 2
    settings = InferenceSettings(device="cpu", precision="float64", psf_sigma_nm=15.0, calibration="joint")
    problem = RateProblem(data_map(phi), mask, 10.0, settings, ChromatinModel(), torch.device("cpu"))
    return problem, torch.as_tensor(phi[problem.box])


def test_levels_recover_gain_and_offset_of_the_imaged_field():
    """Data made as 2.7 x PSF(u) + 0.4: least squares gives back 2.7 and 0.4 and a zero misfit."""
    problem, u = _problem()
    imaged = problem.imaged(problem.derivatives(u))
    problem.phi = 2.7 * imaged + 0.4
    misfit, gain, offset = problem.calibrated_misfit(problem.derivatives(u))
    assert float(gain) == pytest.approx(2.7, rel=1e-10)
    assert float(offset) == pytest.approx(0.4, abs=1e-10)
    assert float(misfit) < 1e-20


def test_calibrated_misfit_ignores_an_affine_map_of_the_field():
    """The data term cannot tell a u + b from u (gain and offset absorb it): only the physics can."""
    problem, u = _problem(lambda x: 3.0 * x + 1.0 + 0.01 * np.cos(np.arange(x.size).reshape(x.shape)))
    m1 = problem.calibrated_misfit(problem.derivatives(u))[0]
    m2 = problem.calibrated_misfit(problem.derivatives(0.6 * u - 0.2))[0]
    assert float(m2) == pytest.approx(float(m1), rel=1e-9)


def test_detached_levels_give_the_exact_gradient():
    """Envelope theorem: the gradient with gain and offset held at their optimum equals the
    finite-difference derivative of the misfit re-optimised over them."""
    problem, u = _problem(lambda x: 2.0 * x + 0.3 + 0.02 * np.sin(np.arange(x.size).reshape(x.shape)))
    direction = torch.as_tensor(np.random.default_rng(0).normal(size=tuple(u.shape)))
    u = u.clone().requires_grad_(True)
    misfit = problem.calibrated_misfit(problem.derivatives(u))[0]
    (grad,) = torch.autograd.grad(misfit, u)
    eps = 1e-5
    with torch.no_grad():
        plus = problem.calibrated_misfit(problem.derivatives(u + eps * direction))[0]
        minus = problem.calibrated_misfit(problem.derivatives(u - eps * direction))[0]
    fd = float((plus - minus) / (2 * eps))
    assert float((grad * direction).sum()) == pytest.approx(fd, rel=1e-6)


def test_relative_residual_is_about_scale_free_for_small_variations():
    """Shrinking a weak pattern about a level shrinks the residual and lap(mu) alike: the
    scale-free term stays (to first order), where the absolute residual falls as the square."""
    problem, u = _problem()
    base = 0.5 + 0.02 * (u - u.mean())
    out = []
    for scale in (1.0, 0.5):
        d = problem.derivatives(0.5 + scale * (base - 0.5))
        coef = problem.solve(d)
        out.append((float(problem.relative_residual(d, coef)), float(problem.residual_energy(d, coef))))
    assert out[1][0] == pytest.approx(out[0][0], rel=0.02)
    assert out[1][1] == pytest.approx(0.25 * out[0][1], rel=0.05)


# --- calibration by the double well's plateaus (calibration="plateaus") ---------------------------


def test_plateau_modes_of_a_two_level_sample():
    """Two plateaus (70 % at 0.06, 30 % at 0.975, spread 0.01) plus interface values between them:
    the modes come back to 0.003, and an affine map of the sample maps them alike."""
    from napari_mollifier.inverse._calibration import plateau_map, plateau_modes

    rng = np.random.default_rng(1)
    v = np.concatenate(
        [rng.normal(0.06, 0.01, 70_000), rng.normal(0.975, 0.01, 30_000), rng.uniform(0.06, 0.975, 15_000)]
    )
    lo, hi = plateau_modes(v)
    assert lo == pytest.approx(0.06, abs=3e-3) and hi == pytest.approx(0.975, abs=3e-3)
    gain, offset = plateau_map(2.5 * v - 0.7, levels=(0.06, 0.975))
    assert gain == pytest.approx(2.5, rel=0.01) and offset == pytest.approx(-0.7, abs=0.01)


@pytest.fixture(scope="module")
def nucleus128():
    from napari_mollifier.simulate import simulate_nucleus

    return simulate_nucleus(128, rates="gradient", seed=3)


def _uncalibrated(sim, photons):
    """``2.7 x counts + 100`` of a 15 nm render, Otsu-normalised, and the true (gain, offset) of
    the normalised image against phi."""
    from napari_mollifier.io import intensity_to_fraction
    from napari_mollifier.simulate import render_intensity

    counts = render_intensity(sim.phi, sim.mask, sim.pixel_size_nm, photons=photons, seed=5)
    phi, norm = intensity_to_fraction(2.7 * counts + 100.0, sim.mask)
    eu, het = norm["euchromatin_level"], norm["heterochromatin_level"]
    return phi, (2.7 * photons * 0.7 / (het - eu), (2.7 * photons * 0.3 + 100.0 - eu) / (het - eu))


def test_plateau_map_of_an_uncalibrated_render(nucleus128):
    """The smoothed image's modes on the plateau levels give the render's gain to 4 % and offset
    to 0.03 (the Otsu map itself is 1.47 phi - 0.12: 47 % and 0.12 off)."""
    from scipy.ndimage import binary_erosion, gaussian_filter

    from napari_mollifier.inverse._calibration import plateau_map

    phi, (gain, offset) = _uncalibrated(nucleus128, 1e4)
    interior = binary_erosion(nucleus128.mask, iterations=10)
    g, o = plateau_map(gaussian_filter(phi, 1.0)[interior])
    assert g / gain == pytest.approx(1.0, abs=0.04)
    assert o == pytest.approx(offset, abs=0.03)


def test_plateau_calibrated_fit_gives_absolute_rates(nucleus128):
    """An uncalibrated render at 10^4 counts: with calibration="plateaus" the mean rates come
    within 25 % of the truth (measured 0.91 / 0.91) and the gain within 3 % (measured -0.6 %);
    the Otsu map alone (calibration="fixed") puts them 3-3.5x too high. Progress counts both
    passes of the fit."""
    from scipy.ndimage import binary_erosion

    from napari_mollifier.inverse import RateFit, _solver, fit_rates

    phi, (gain, offset) = _uncalibrated(nucleus128, 1e4)
    inner = binary_erosion(nucleus128.mask, iterations=10)
    ratios = {}
    for calibration in ("plateaus", "fixed"):
        settings = InferenceSettings(device="cpu", psf_sigma_nm=15.0, calibration=calibration, steps=300)
        events = list(fit_rates(phi, nucleus128.mask, 10.0, settings))
        fit = events[-1]
        assert isinstance(fit, RateFit)
        ratios[calibration] = [
            np.mean(fit.gamma_me[inner]) / np.mean(nucleus128.gamma_me[inner]),
            np.mean(fit.gamma_ac[inner]) / np.mean(nucleus128.gamma_ac[inner]),
        ]
        if calibration == "plateaus":
            assert fit.status == "ok"
            assert fit.losses["plateau_passes"] >= 2
            assert fit.losses["gain"] / gain == pytest.approx(1.0, abs=0.03)
            assert fit.losses["offset"] == pytest.approx(offset, abs=0.02)
            steps = [e.step for e in events[:-1]]
            total = 300 * (1 + _solver.PLATEAU_REFINEMENTS)
            assert steps == sorted(steps) and steps[-1] == events[-2].total_steps == total
            assert fit.settings["calibration"] == "plateaus"
    assert ratios["plateaus"] == pytest.approx([1.0, 1.0], abs=0.25)
    assert min(ratios["fixed"]) > 2.0


def test_fitted_levels_in_intensity_units():
    """The Otsu map (I - 100) / 200 seen by the fit as 1.5 phi - 0.1: phi = 0 is I = 80 and
    phi = 1 is I = 380."""
    from napari_mollifier.inverse._infer import fitted_levels

    levels = fitted_levels(
        {"euchromatin_level": 100.0, "heterochromatin_level": 300.0}, {"gain": 1.5, "offset": -0.1}
    )
    assert levels == pytest.approx({"euchromatin_level": 80.0, "heterochromatin_level": 380.0})
    assert fitted_levels("none (input is phi)", {"gain": 1.5, "offset": 0.0}) is None
    assert fitted_levels({"euchromatin_level": 0.0, "heterochromatin_level": 1.0}, {}) is None


def test_infer_rates_records_the_fitted_levels(nucleus128):
    """End to end from counts: ``2.7 x counts + 100`` at 10^4 counts has euchromatin (phi = 0) at
    8200 and heterochromatin (phi = 1) at 27100; the plateau calibration's record recovers both to
    1 % (measured 0.3 %) where the Otsu medians are not the levels at all."""
    from napari_mollifier.inverse import infer_rates
    from napari_mollifier.simulate import render_intensity

    sim = nucleus128
    img = 2.7 * render_intensity(sim.phi, sim.mask, sim.pixel_size_nm, photons=1e4, seed=5) + 100.0
    settings = InferenceSettings(device="cpu", calibration="plateaus", steps=100)
    maps = infer_rates(img, pixel_size_nm=10.0, mask=sim.mask, input="intensity", settings=settings)
    levels = maps.preprocessing["fitted_levels"]
    assert levels["calibration"] == "plateaus"
    assert levels["euchromatin_level"] == pytest.approx(8200.0, rel=0.01)
    assert levels["heterochromatin_level"] == pytest.approx(27100.0, rel=0.01)
