"""Per-pixel weights of the data term for photon counts (``settings.likelihood="poisson"``).

Counts have a variance equal to their mean: a heterochromatin pixel of a render at 1000 counts is
~1.8x noisier than a euchromatin pixel at 300, and a uniform noise level over-trusts the bright
pixels and under-trusts the dim ones. The weighted least squares below is the Gaussian
approximation of the Poisson likelihood with each pixel's variance from the smoothed data (valid
from ~10 counts a pixel). The fit sees phi, an affine map of the counts, so the variance is an
affine function of phi too, ``var = a (phi_smooth - b)``; its slope and root are read off the
data's own noise with the photon-transfer estimator (:func:`napari_mollifier.io.estimate_photon_transfer`),
which needs no calibration. Where the noise does not look like counts (a line that does not
explain it), the weights are not used.
"""

from __future__ import annotations

import numpy as np

__all__ = ["poisson_weights", "MAX_WEIGHT"]

#: Weights are clipped to [1 / MAX_WEIGHT, MAX_WEIGHT] x the nucleus' median: a background of
#: nearly no photons would otherwise weigh 100-1000x and the noise of the variance's own estimate
#: with it.
MAX_WEIGHT = 10.0


def poisson_weights(phi: np.ndarray, mask: np.ndarray, *, smoothing_px: float = 2.0):
    """Weights ``median(var) / var`` of each pixel (median 1 over the nucleus) and a record.

    Parameters
    ----------
    phi : (H, W) array
        The data the fit sees (an affine map of photon counts).
    mask : (H, W) bool array
        The nucleus.
    smoothing_px : float
        Gaussian sigma of the local mean the variance is taken from.

    Returns
    -------
    weights : (H, W) float array or None
        None when the noise is not count-like (``poisson_like`` false) or cannot be read.
    record : dict
        ``likelihood`` ("poisson", or "gaussian" with why) and the variance line in phi units.
    """
    from scipy.ndimage import gaussian_filter

    from ..io import estimate_photon_transfer

    try:
        pt = estimate_photon_transfer(phi, mask, smoothing_px=smoothing_px)
    except ValueError as exc:
        return None, {"likelihood": f"gaussian (the noise could not be read: {exc})"}
    if not pt.poisson_like:
        why = f"the noise does not grow with the signal as counts do: r² {pt.linear_r2:.2f}"
        return None, {"likelihood": f"gaussian ({why})"}
    var = pt.gain * (gaussian_filter(np.asarray(phi, float), smoothing_px) - pt.offset)
    ref = float(np.median(var[mask]))
    if not ref > 0:
        return None, {"likelihood": "gaussian (no positive noise variance in the nucleus)"}
    weights = np.clip(ref / np.maximum(var, ref / MAX_WEIGHT), 1.0 / MAX_WEIGHT, MAX_WEIGHT)
    return weights, {
        "likelihood": "poisson",
        "variance_slope": float(pt.gain),
        "variance_root": float(pt.offset),
        "counts_high": float(pt.counts_high),
    }
