"""Photon transfer: gain, offset and counts per pixel read off an image's noise, against images of
known gain, offset and photons."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from napari_mollifier.io._photons import estimate_photon_transfer
from napari_mollifier.simulate import nucleus_mask


def _density(n=192, seed=0):
    """Smooth chromatin-like density in [0.3, 1] inside an elliptic nucleus, 0 outside."""
    rng = np.random.default_rng(seed)
    mask = nucleus_mask((n, n), "ellipse", semi_axes=(0.42 * n, 0.36 * n))
    pattern = gaussian_filter(rng.standard_normal((n, n)), 3.0)
    dens = 0.3 + 0.7 * (pattern > 0)
    return gaussian_filter(np.where(mask, dens, 0.0), 1.5), mask


@pytest.mark.parametrize("photons, gain, offset", [(20, 1.0, 0.0), (200, 2.7, 100.0), (1000, 0.5, 400.0)])
def test_gain_offset_and_counts_of_poisson_images(photons, gain, offset):
    dens, mask = _density()
    rng = np.random.default_rng(1)
    expected = photons * dens + 0.5
    image = gain * rng.poisson(expected) + offset
    pt = estimate_photon_transfer(image, mask)
    assert pt.poisson_like
    # Signal left in the Laplacian at domain edges biases the gain up by 5-15 %.
    assert pt.gain == pytest.approx(gain, rel=0.2)
    # The offset within a small fraction of the bright level's signal.
    assert abs(pt.offset - offset) < 0.1 * gain * photons
    true_high = np.percentile(gaussian_filter(expected, 2.0)[mask], 90)
    assert pt.counts_high == pytest.approx(true_high, rel=0.2)
    assert pt.counts_low < pt.counts_high


def test_constant_noise_is_not_poisson_like():
    """Normalised or denoised data have no variance growing with the mean: no photon counts."""
    dens, mask = _density()
    image = dens + 0.05 * np.random.default_rng(2).standard_normal(dens.shape)
    pt = estimate_photon_transfer(image, mask)
    assert not pt.poisson_like


def test_counts_scale_with_exposure():
    """Four times the photons: four times the counts, whatever the gain."""
    dens, mask = _density(seed=3)
    rng = np.random.default_rng(4)
    a = estimate_photon_transfer(3.0 * rng.poisson(50 * dens) + 10, mask)
    b = estimate_photon_transfer(0.7 * rng.poisson(200 * dens) + 10, mask)
    assert b.counts_high / a.counts_high == pytest.approx(4.0, rel=0.15)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="one shape"):
        estimate_photon_transfer(np.zeros((10, 10)), np.zeros((10, 11), bool))
