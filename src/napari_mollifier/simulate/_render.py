"""Render a simulated phi like a microscope would: intensity images and localisation tables."""

from __future__ import annotations

import numpy as np

__all__ = ["render_intensity", "render_localisation_table", "THUNDERSTORM_HEADER"]

THUNDERSTORM_HEADER = (
    "id",
    "frame",
    "x [nm]",
    "y [nm]",
    "sigma [nm]",
    "intensity [photon]",
    "uncertainty [nm]",
)


def _density(phi: np.ndarray, mask: np.ndarray, euchromatin_level: float) -> np.ndarray:
    """Chromatin density: 1 in heterochromatin, ``euchromatin_level`` in euchromatin, 0 outside."""
    return np.where(mask, euchromatin_level + (1.0 - euchromatin_level) * np.clip(phi, 0, 1), 0.0)


def render_intensity(
    phi: np.ndarray,
    mask: np.ndarray,
    pixel_size_nm: float = 10.0,
    *,
    euchromatin_level: float = 0.3,
    photons: float = 50.0,
    precision_nm: float = 15.0,
    background: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """Intensity image: density blurred by the localisation precision, then Poisson counts.

    ``photons`` is the mean count of a heterochromatin pixel; the exterior has only
    ``background``. Returns float64 counts (integers).
    """
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    dens = gaussian_filter(_density(phi, mask, euchromatin_level), precision_nm / pixel_size_nm)
    return rng.poisson(photons * dens + background).astype(np.float64)


def render_localisation_table(
    phi: np.ndarray,
    mask: np.ndarray,
    pixel_size_nm: float = 10.0,
    *,
    euchromatin_level: float = 0.3,
    per_pixel: float = 8.0,
    precision_nm: float = 15.0,
    seed: int = 0,
) -> np.ndarray:
    """Localisations (x, y in nm) drawn as a Poisson process with the chromatin density.

    Each pixel of density d contributes Poisson(per_pixel * d) points, uniform within the pixel,
    displaced by Gaussian localisation error of ``precision_nm``. Returns an array with the
    columns of :data:`THUNDERSTORM_HEADER`.
    """
    rng = np.random.default_rng(seed)
    dens = _density(phi, mask, euchromatin_level)
    counts = rng.poisson(per_pixel * dens)
    iy, ix = np.nonzero(counts)
    reps = counts[iy, ix]
    iy, ix = np.repeat(iy, reps), np.repeat(ix, reps)
    n = iy.size
    y = (iy + rng.random(n)) * pixel_size_nm + rng.normal(0, precision_nm, n)
    x = (ix + rng.random(n)) * pixel_size_nm + rng.normal(0, precision_nm, n)
    table = np.column_stack(
        [
            np.arange(1, n + 1),
            rng.integers(1, 20000, n),
            x,
            y,
            np.full(n, 120.0),
            rng.gamma(5.0, 400.0, n),
            np.full(n, precision_nm),
        ]
    )
    keep = (x >= 0) & (y >= 0)
    return table[keep]
