"""Calibration of uncalibrated intensities by the double well's plateaus.

An intensity image is ``gain x PSF(phi) + offset`` with gain and offset unknown, and the rates
change ~25 % per 2 % error in the contrast (benchmarks/results/intensity_calibration.md). The
physics residual does not fix them well enough once the image is blurred: fitted jointly, the
field flattened while the gain grew (benchmarks/results/joint_calibration.md). What does fix
them is that a steady state's domains sit on two plateaus near the double well's minima, at
values that move only ~1 % with the rates: :data:`PLATEAU_LEVELS`. The calibration maps the two
modes of a (smoothed, then fitted) image onto them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PLATEAU_LEVELS", "plateau_modes", "plateau_map"]

#: The modes of phi in the euchromatin and heterochromatin plateaus of simulated steady states of
#: the default model (10 nm pixels, 'gradient' rates at the default magnitude, seeds 11 and 12:
#: 0.060 / 0.975 and 0.061 / 0.974). Halving the rates moved them to 0.050 / 0.984 (area fraction
#: 0.2), the size of error that puts the rates ~10 % off.
PLATEAU_LEVELS = (0.060, 0.975)


def plateau_modes(values: np.ndarray, bandwidth: float = 0.02) -> tuple[float, float]:
    """The two modes of a bimodal sample: the densest value below and above the middle of its
    0.5-99.5 % range, from a histogram of bins ``bandwidth / 10`` smoothed by a Gaussian of
    ``bandwidth`` (a kernel density estimate, deterministic and O(n)).

    ``bandwidth`` is in the sample's units (0.02 for phi: finer than a plateau's spread in a
    10 nm image, coarser than its histogram's noise)."""
    from scipy.ndimage import gaussian_filter1d

    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    lo, hi = np.percentile(v, [0.5, 99.5])
    if not hi > lo:
        raise ValueError("the sample has no spread; no plateaus to find")
    step = bandwidth / 10
    edges = np.arange(lo, hi + step, step)
    counts, _ = np.histogram(v, bins=edges)
    density = gaussian_filter1d(counts.astype(np.float64), 10.0, mode="constant")
    centres = 0.5 * (edges[1:] + edges[:-1])
    below = centres < 0.5 * (lo + hi)
    low = centres[below][np.argmax(density[below])]
    return float(low), float(centres[~below][np.argmax(density[~below])])


def plateau_map(values: np.ndarray, levels: tuple[float, float] = PLATEAU_LEVELS) -> tuple[float, float]:
    """(gain, offset) such that ``values ~ gain x phi + offset`` puts the sample's two modes at the
    plateau ``levels`` of phi."""
    lo, hi = plateau_modes(values)
    gain = (hi - lo) / (levels[1] - levels[0])
    return gain, lo - gain * levels[0]
