"""The photon-count data term (``likelihood="poisson"``): weights from the image's own noise,
checked against the variance of simulated counts, the fall-back for noise that is not counts, and
the weighted misfit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_mollifier.config import InferenceSettings
from napari_mollifier.inverse import RateProblem
from napari_mollifier.inverse._likelihood import MAX_WEIGHT, poisson_weights
from napari_mollifier.physics import ChromatinModel


def _ramp_counts(counts=400.0, low=0.3, n=160, seed=0):
    """A disc whose expected photons rise from ``low x counts`` to ``counts`` across it, on a
    background of 0.1 x counts, read with those levels as phi (0 to 1); a pixel's count variance
    is its expected count."""
    yy, xx = np.mgrid[:n, :n]
    mask = (yy - n / 2) ** 2 + (xx - n / 2) ** 2 < (0.42 * n) ** 2
    level = np.where(mask, low + (1 - low) * xx / (n - 1), 0.1)
    img = np.random.default_rng(seed).poisson(counts * level).astype(float)
    return (img - low * counts) / ((1 - low) * counts), mask, level


def test_weights_follow_the_count_variance():
    """Weights against 1 / expected counts (both with median 1 in the nucleus): within 15 % in the
    median pixel away from the edge, from 3.3x down to 1x across the ramp; the record says poisson."""
    from scipy.ndimage import binary_erosion

    phi, mask, level = _ramp_counts()
    w, rec = poisson_weights(phi, mask)
    assert rec["likelihood"] == "poisson"
    truth = 1.0 / np.where(mask, level, 1.0)
    truth /= np.median(truth[mask])
    core = binary_erosion(mask, iterations=6)
    assert np.median(np.abs(w[core] / truth[core] - 1)) < 0.15
    cols = np.arange(phi.shape[1])[None, :] + 0 * phi
    dim, bright = core & (cols < 40), core & (cols > 120)
    assert np.median(w[dim]) / np.median(w[bright]) == pytest.approx(
        np.median(truth[dim]) / np.median(truth[bright]), rel=0.15
    )
    assert np.median(w[mask]) == pytest.approx(1.0, rel=0.05)
    assert 1 / MAX_WEIGHT <= w.min() and w.max() <= MAX_WEIGHT


def test_noise_that_is_not_counts_keeps_the_gaussian_term():
    """Uniform Gaussian noise does not grow with the signal: no weights, and the record says why."""
    _, mask, level = _ramp_counts()
    noisy = level + 0.05 * np.random.default_rng(1).standard_normal(level.shape)
    w, rec = poisson_weights(noisy, mask)
    assert w is None and rec["likelihood"].startswith("gaussian (")


def test_weighted_misfit_is_the_weighted_mean_of_squares():
    n = 48
    yy, xx = np.mgrid[:n, :n]
    phi = 0.4 + 0.3 * np.sin(yy / 5.0)
    mask = (yy - n / 2) ** 2 + (xx - n / 2) ** 2 < (0.45 * n) ** 2
    weights = np.where(xx < n / 2, 2.0, 0.5)
    s = InferenceSettings(device="cpu", precision="float64")
    plain = RateProblem(phi, mask, 10.0, s, ChromatinModel(), torch.device("cpu"))
    weighted = RateProblem(phi, mask, 10.0, s, ChromatinModel(), torch.device("cpu"), data_weights=weights)
    u = plain.phi + 0.1
    d = plain.derivatives(u)
    sq = (plain.imaged(d) - plain.phi).pow(2)
    w = torch.as_tensor(weights[plain.box])
    assert float(weighted.data_misfit(d)) == pytest.approx(float((w * sq).mean()), rel=1e-12)
    assert float(plain.data_misfit(d)) == pytest.approx(float(sq.mean()), rel=1e-12)


def test_a_weighted_data_term_is_undetermined():
    """The comparison switch: a result that would be determined by its noise is undetermined (its
    "relative" maps of the likelihood table had r 0.65, below the 0.7 a relative map must keep)."""
    from napari_mollifier.inverse import judge_rates

    plain = judge_rates(status="ok", input_kind="fraction", noise_in_phi=0.01)
    weighted = judge_rates(status="ok", input_kind="fraction", noise_in_phi=0.01, weighted_data=True)
    assert plain.verdict == "determined" and weighted.verdict == "undetermined"
    assert "photon-count variance" in weighted.reason
