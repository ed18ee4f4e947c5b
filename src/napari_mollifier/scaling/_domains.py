"""Heterochromatin domains of a phi image: the input checks, and the segmentation (percentile
threshold of phi inside the nucleus, connected components) with its defaults."""

from __future__ import annotations

import numpy as np

from ..io import InputError

#: Domains are the nucleus pixels above this percentile of phi: the top 30 %, the heterochromatin
#: area fraction of H2B STORM images (docs/model.md, "Units and defaults").
DEFAULT_PERCENTILE = 70.0
#: Connected components smaller than this (pixels; an equivalent radius below 1.8 px) are dropped
#: as noise or threshold fragments: their radius is not resolved.
DEFAULT_MIN_AREA_PX = 10


def _check_field(phi, mask, name: str) -> tuple[np.ndarray, np.ndarray]:
    phi = np.asarray(phi, dtype=np.float64)
    if phi.ndim != 2:
        raise InputError(f"{name}: expected a 2-D phi image, got shape {phi.shape}")
    mask = np.ones(phi.shape, bool) if mask is None else np.asarray(mask)
    if mask.shape != phi.shape:
        raise InputError(
            f"{name}: mask shape {mask.shape} differs from the image shape {phi.shape}; "
            "use a mask made for this image"
        )
    mask = mask != 0
    if not mask.any():
        raise InputError(f"{name}: the nucleus mask is empty; give a nonzero mask (nonzero = nucleus)")
    if not np.isfinite(phi[mask]).all():
        raise InputError(f"{name}: NaN/Inf pixels inside the nucleus; replace them before analysis")
    return phi, mask


def segment_domains(
    phi,
    mask=None,
    *,
    percentile: float = DEFAULT_PERCENTILE,
    min_area_px: int = DEFAULT_MIN_AREA_PX,
    smoothing_px: float = 0.0,
    name: str = "image",
) -> tuple[np.ndarray, float]:
    """Heterochromatin domains: nucleus pixels above a percentile of phi, as connected components.

    Parameters
    ----------
    phi : (H, W) array
        Heterochromatin fraction (or any image that grows with chromatin density: only the
        ordering of values matters).
    mask : (H, W) array, optional
        Nucleus (nonzero inside); the whole image when absent. The percentile is taken over it and
        domains lie inside it.
    percentile : float
        In (0, 100); pixels with ``phi > percentile-th value`` are domain pixels. The default 70
        takes the top 30 %, the heterochromatin area fraction of H2B STORM images.
    min_area_px : int
        Components smaller than this many pixels are dropped (noise, threshold fragments).
    smoothing_px : float
        Gaussian sigma (pixels) applied to phi before thresholding (0: none); useful for noisy
        intensity images.
    name : str
        Names the input in error messages.

    Returns
    -------
    labels : (H, W) int array
        0 outside domains, 1..N for the kept domains (8-connected components), numbered in
        raster order of their first pixel.
    threshold : float
        The phi value of the percentile (after smoothing).

    Raises
    ------
    InputError
        Empty mask, NaN inside it, or no domain left (one line naming the input and the fix).
    ValueError
        ``percentile`` outside (0, 100) or ``min_area_px`` < 1.
    """
    from scipy import ndimage as ndi
    from skimage import measure

    if not 0.0 < float(percentile) < 100.0:
        raise ValueError(f"percentile must lie in (0, 100), got {percentile!r}")
    if int(min_area_px) < 1:
        raise ValueError(f"min_area_px must be at least 1, got {min_area_px!r}")
    phi, mask = _check_field(phi, mask, name)
    if smoothing_px:
        phi = ndi.gaussian_filter(phi, float(smoothing_px))
    threshold = float(np.percentile(phi[mask], percentile))
    labels = measure.label((phi > threshold) & mask, connectivity=2)
    area = np.bincount(labels.ravel())
    keep = area >= int(min_area_px)
    keep[0] = False
    # Kept components renumbered 1..N in their raster order (0 = background or dropped).
    new = np.zeros(len(area), np.int32)
    new[keep] = np.arange(1, int(keep.sum()) + 1)
    labels = new[labels]
    if labels.max() == 0:
        raise InputError(
            f"{name}: no chromatin domain of at least {int(min_area_px)} px above the "
            f"{percentile:g}th percentile of phi (phi > {threshold:.3g}) inside the nucleus; "
            "check the image and mask, or lower --percentile / --min-area"
        )
    return labels.astype(np.int32), threshold
