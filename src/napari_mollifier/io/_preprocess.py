"""Preprocessing: nucleus segmentation and normalisation of intensity images to phi."""

from __future__ import annotations

import numpy as np

from ._readers import InputError

__all__ = [
    "segment_nucleus",
    "label_nuclei",
    "nucleus_support",
    "SEGMENTATION_FIX",
    "SEGMENTATION_METHOD",
    "MIN_NUCLEUS_PIXELS",
    "intensity_to_fraction",
    "check_mask",
    "check_fraction",
    "localisation_coverage_notice",
    "MIN_LOCALISATION_COVERAGE",
]

#: Below this fraction of a table's localisations inside the segmented nucleus the mask has most
#: likely caught a dense clump, not the nucleus (sparse renderings at fine pixels): say so.
MIN_LOCALISATION_COVERAGE = 0.8


#: How the automatic segmentation is recorded with a result (``preprocessing["mask"]``).
SEGMENTATION_METHOD = "segmented (half-way between background and euchromatin level, largest region)"

#: The fix a too small automatic mask suggests, in the command line's words (the widget passes
#: its own controls' names).
SEGMENTATION_FIX = (
    "give a nucleus mask (--mask) or check the input kind (--input fraction for "
    "heterochromatin-fraction images, intensity for raw ones)"
)

#: Fewest pixels of a nucleus (the fit's minimum mask, :func:`check_mask`).
MIN_NUCLEUS_PIXELS = 40 * 40

#: The band left out at the coarse nuclei's edge when reading the background and the dim level,
#: as a share of the nucleus' radius (measured: 0.05-0.15 all give IoU >= 0.96 on the simulated
#: renders; 0.15 keeps a confocal rim, blurred over ~10 px at 10 nm pixels, out of the dim level).
SUPPORT_BAND = 0.15


def _checked_image(image, name: str) -> np.ndarray:
    image = np.asarray(image, float)
    if image.ndim != 2 or not np.isfinite(image).all():
        raise InputError(
            f"{name}: segmentation needs a finite 2-D image, got shape {image.shape}"
            f"{'' if np.isfinite(image).all() else ' with NaN/Inf'}; replace NaN/Inf or give --mask"
        )
    return image


def _support_threshold(smooth: np.ndarray) -> float:
    """The intensity half-way between the background and the nuclei's dim (euchromatin) level.

    A coarse split first: the Otsu threshold of the log of the offset-free smoothed image. The
    background and a nucleus differ by an order of magnitude or more, the domains inside it by
    less, so on a log scale the split falls between background and nucleus, not between
    euchromatin and heterochromatin (an Otsu threshold of phi itself picks the heterochromatin
    domains: ~500 pixels of a 32 000-pixel nucleus). The background is then the median outside
    the coarse nuclei grown by a band, the dim level the 10th percentile inside them shrunk by a
    band (blur lowers the rim), and the edge of a nucleus, sharp or blurred, lies half-way.
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    lo, hi = float(smooth.min()), float(smooth.max())
    logged = np.log(smooth - lo + 1e-3 * (hi - lo))
    coarse = ndi.binary_fill_holes(logged > threshold_otsu(logged))
    labels, n = ndi.label(coarse)
    radius = np.sqrt(np.max(np.bincount(labels.ravel())[1:], initial=0) / np.pi)
    band = max(3, int(round(SUPPORT_BAND * radius)))
    inner = ndi.binary_erosion(coarse, iterations=band)
    outer = ~ndi.binary_dilation(coarse, iterations=band)
    inner = inner if inner.any() else coarse
    outer = outer if outer.any() else ~coarse
    if not inner.any() or not outer.any():
        return float(threshold_otsu(smooth))
    background = float(np.median(smooth[outer]))
    dim = float(np.percentile(smooth[inner], 10))
    if not dim > background:
        return float(threshold_otsu(smooth))
    return background + 0.5 * (dim - background)


def nucleus_support(image: np.ndarray, *, smoothing_px: float = 2.0, name: str = "image") -> np.ndarray:
    """Every nucleus of an image: the pixels above half-way between the background and the
    nuclei's dim level (:func:`_support_threshold`), closed, holes filled.

    Works on intensity images (dim euchromatin still carries signal) and on heterochromatin
    fraction phi (~0 outside a nucleus, a few hundredths in its euchromatin); measured IoU against
    the simulated nucleus 0.98-0.99 on phi, 0.99-1.0 on intensity, STED and Airyscan renders, 0.99
    on a confocal one, 0.97 against the authors' mask on a real STED nucleus
    (benchmarks/results/segmentation.md).
    """
    from scipy import ndimage as ndi

    image = _checked_image(image, name)
    smooth = ndi.gaussian_filter(image, smoothing_px)
    # A relative test: a constant image picks up rounding-level ripples from the filter.
    if float(smooth.max() - smooth.min()) <= 1e-9 * max(1.0, float(np.abs(smooth).max())):
        raise InputError(f"{name}: the image is constant; nothing to segment; check the export")
    fg = smooth > _support_threshold(smooth)
    fg = ndi.binary_closing(fg, iterations=3, border_value=0) | fg
    return ndi.binary_fill_holes(fg)


def segment_nucleus(
    image: np.ndarray, *, smoothing_px: float = 2.0, name: str = "image", fix: str = SEGMENTATION_FIX
) -> np.ndarray:
    """The nucleus: the largest connected region of :func:`nucleus_support`.

    Holes (dark euchromatin between domains) are filled, so the mask is the whole nucleus. A
    region under 40 x 40 pixels raises :class:`InputError` with ``fix`` (how to give a mask or
    change the input kind, in the words of the caller's interface).
    """
    from scipy import ndimage as ndi

    fg = nucleus_support(image, smoothing_px=smoothing_px, name=name)
    labels, n = ndi.label(fg)
    if n == 0:
        raise InputError(f"{name}: no nucleus found by the automatic segmentation; {fix}")
    sizes = np.bincount(labels.ravel())[1:]
    mask = labels == (1 + int(np.argmax(sizes)))
    area = int(mask.sum())
    if area < MIN_NUCLEUS_PIXELS:
        raise InputError(
            f"{name}: the automatic nucleus mask has only {area} pixels (at least 40x40 are needed); {fix}"
        )
    return check_mask(mask, mask.shape, name=name)


def label_nuclei(
    image: np.ndarray,
    *,
    smoothing_px: float = 2.0,
    min_area_px: int = MIN_NUCLEUS_PIXELS,
    name: str = "image",
) -> np.ndarray:
    """Every nucleus of an image as a label image (0 = background, 1..n = nuclei, in raster order
    of their first pixel): :func:`nucleus_support` split into connected regions
    (``skimage.measure.label``), regions under ``min_area_px`` removed (too small to fit). Touching
    nuclei stay one region; split them by painting the labels layer.
    """
    from skimage.measure import label

    labels = label(nucleus_support(image, smoothing_px=smoothing_px, name=name), connectivity=2)
    small = np.bincount(labels.ravel()) < min_area_px
    small[0] = False
    return label(np.where(small[labels], 0, labels) > 0, connectivity=2).astype(np.int32)


def localisation_coverage_notice(
    counts: np.ndarray, mask: np.ndarray, *, name: str = "image", minimum: float = MIN_LOCALISATION_COVERAGE
) -> str:
    """A one-line notice when ``mask`` holds less than ``minimum`` of the localisations of a
    rendered table (``counts`` per pixel), else "". A nucleus holds nearly all of a cell's
    localisations; a mask that leaves out many has most likely caught a dense region only."""
    total = float(np.sum(counts))
    if total <= 0:
        return ""
    kept = float(np.sum(counts[mask])) / total
    if kept >= minimum:
        return ""
    return (
        f"{name}: the automatic nucleus mask keeps only {kept:.0%} of the localisations (under "
        f"{minimum:.0%}); it has probably caught dense regions, not the whole nucleus: render at a "
        "coarser pixel size (--pixel-size 20) or give a mask (--mask)"
    )


def check_mask(mask: np.ndarray, shape: tuple[int, int], *, name: str = "mask") -> np.ndarray:
    """A nucleus mask must match the image and cover a usable, not complete, area."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.shape != tuple(shape):
        raise InputError(
            f"{name}: mask shape {mask.shape} differs from the image shape {tuple(shape)}; "
            "use a mask made for this image"
        )
    if mask.dtype.kind == "f" and not np.isfinite(mask).all():
        raise InputError(f"{name}: the mask has NaN/Inf values; give a binary mask (nonzero = nucleus)")
    if mask.dtype.kind in "fc" and not np.array_equal(mask, np.round(mask)):
        # A mask is binary or a label image; fractional values mean an image was given as mask.
        raise InputError(
            f"{name}: the mask has fractional values, so it looks like an image, not a mask; "
            "give a binary or label mask (nonzero = nucleus)"
        )
    mask = mask != 0
    area = int(mask.sum())
    if area == 0:
        raise InputError(f"{name}: the nucleus mask is empty; draw or give a nonzero mask")
    if area < 40 * 40:
        raise InputError(
            f"{name}: the nucleus mask has only {area} pixels; at least 40x40 are needed "
            "(check the mask, or the image's pixel size and crop)"
        )
    if area == mask.size:
        raise InputError(
            f"{name}: the nucleus mask covers the whole image; give a mask of the nucleus only "
            "(nonzero inside) or let the tool segment it"
        )
    return mask


def check_fraction(phi: np.ndarray, mask: np.ndarray, *, name: str = "image") -> np.ndarray:
    """Input declared as heterochromatin fraction must lie (nearly) in [0, 1]."""
    v = phi[mask]
    lo, hi = float(v.min()), float(v.max())
    if lo < -0.5 or hi > 1.5:
        raise InputError(
            f"{name}: --input fraction expects values in [0, 1] but found [{lo:.3g}, {hi:.3g}]; "
            "use --input intensity for raw images"
        )
    if hi - lo < 0.05:
        raise InputError(f"{name}: phi varies by only {hi - lo:.3g} inside the nucleus; no domains to fit")
    return phi


def intensity_to_fraction(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    name: str = "image",
    smoothing_px: float = 1.0,
    levels: tuple[float, float] | None = None,
) -> tuple[np.ndarray, dict]:
    """Map a chromatin intensity image to phi inside the nucleus.

    Intensity grows with chromatin density and euchromatin still carries signal, so phi is the
    affine map that sends the euchromatin level to 0 and the heterochromatin level to 1. The
    two levels are the medians of the two Otsu classes of the nucleus pixels after a light
    smoothing (``smoothing_px``); the map is applied to the *unsmoothed* image and not clipped
    inside the nucleus, so the noise stays white and unbiased for the fit, which estimates it
    and denoises (smoothed input hid 10 % noise as 0.5 % from the noise estimate, and clipping
    biases noisy pixels; both were measured to wreck the rates). Outside the nucleus the same
    map is clipped to [0, 1] (dark, so ~0) rather than a hard 0 at the mask edge, whose step
    would ring through spectral derivatives. Returns phi and the normalisation (saved with
    results).

    ``levels`` = (euchromatin, heterochromatin) intensities from a calibration replace the two
    class medians. The medians are not phi = 0 and 1: domains' plateaus sit inside (0, 1) and the
    blur lowers the contrast of small domains (on simulated nuclei the median map is 1.47 phi - 0.12,
    which puts the rates off by a factor of several), so only calibrated levels give absolute rates.
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    raw = np.asarray(image, float)
    if levels is not None:
        eu, het = (float(v) for v in levels)
        if not (np.isfinite(eu) and np.isfinite(het) and het > eu):
            raise InputError(
                f"{name}: the intensity levels must be finite with heterochromatin above "
                f"euchromatin, got {eu} and {het}"
            )
        # Levels in another unit or of another channel put the whole nucleus outside them.
        lo, hi = (float(v) for v in np.percentile(raw[mask], [10, 90]))
        if hi < eu or lo > het:
            raise InputError(
                f"{name}: the intensity levels {eu:g} / {het:g} do not bracket this nucleus "
                f"(its 10-90 % intensities are {lo:g}-{hi:g}); check their unit and channel"
            )
        record = {"euchromatin_level": eu, "heterochromatin_level": het, "levels": "given (calibration)"}
    else:
        img = ndi.gaussian_filter(raw, smoothing_px) if smoothing_px else raw
        v = img[mask]
        if float(v.max()) == float(v.min()):
            raise InputError(f"{name}: the nucleus is uniformly bright; no domains to fit")
        t = threshold_otsu(v)
        eu, het = float(np.median(v[v <= t])), float(np.median(v[v > t]))
        if not het > eu:
            raise InputError(
                f"{name}: cannot separate heterochromatin from euchromatin levels; check the image"
            )
        record = {
            "euchromatin_level": eu,
            "heterochromatin_level": het,
            "threshold": float(t),
            "level_smoothing_px": smoothing_px,
            "levels": "Otsu class medians (uncalibrated)",
        }
    phi = (raw - eu) / (het - eu)
    return np.where(mask, phi, np.clip(phi, 0.0, 1.0)), record
