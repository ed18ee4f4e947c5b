"""Render a simulated phi like a microscope would: intensity images and localisation tables."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "render_intensity",
    "render_localisation_table",
    "render_microscope",
    "render_smlm",
    "MicroscopeRender",
    "SMLMRender",
    "Modality",
    "MODALITIES",
    "THUNDERSTORM_HEADER",
]

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


# --------------------------------------------------------------------------------------------
# Microscope modalities: PSF blur, Poisson counts, an unknown detector gain and offset


#: FWHM of a Gaussian in units of its standard deviation, 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class Modality:
    """Render settings of one kind of microscope image (the typical values of :data:`MODALITIES`).

    Attributes
    ----------
    psf_fwhm_nm : float
        Full width at half maximum of the Gaussian point-spread function.
    photons : float
        Mean detected photons of a pixel of the rendered image in pure heterochromatin (a large
        uniform region, so before the blur lowers small domains).
    background : float
        Mean photons per rendered pixel everywhere (out-of-focus light, autofluorescence).
    gain : float
        Detector output per detected photon.
    offset : float
        Detector output at zero photons.
    read_noise : float
        Standard deviation of the Gaussian detector noise, in output units.
    """

    psf_fwhm_nm: float
    photons: float
    background: float
    gain: float
    offset: float
    read_noise: float


#: Typical settings, not measurements of one instrument: a photon-counting STED (50 nm PSF, few
#: photons), an Airyscan (140 nm, bright, analogue read-out) and a confocal with a PMT (250 nm,
#: large gain and offset, read noise).
MODALITIES = {
    "sted": Modality(psf_fwhm_nm=50.0, photons=30.0, background=2.0, gain=1.0, offset=0.0, read_noise=0.0),
    "airyscan": Modality(
        psf_fwhm_nm=140.0, photons=200.0, background=10.0, gain=2.5, offset=100.0, read_noise=2.0
    ),
    "confocal": Modality(
        psf_fwhm_nm=250.0, photons=100.0, background=5.0, gain=8.0, offset=200.0, read_noise=5.0
    ),
}


@dataclass(frozen=True)
class MicroscopeRender:
    """A rendered image, its nucleus mask on the same pixels, and the truth of the render.

    ``truth`` (JSON-serialisable) holds what a user of a real microscope does not know:
    modality, gain, offset, read noise, PSF FWHM and sigma (nm), photons per heterochromatin pixel,
    background, euchromatin level, the image's pixel size, the simulation's pixel size, the bin
    factor and ``intensity_levels`` (mean output in pure euchromatin and pure heterochromatin).
    """

    image: np.ndarray
    mask: np.ndarray
    truth: dict


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _finite(x) -> bool:
    return isinstance(x, (int, float, np.floating, np.integer)) and math.isfinite(x)


def _check_field(phi: np.ndarray, mask: np.ndarray, pixel_size_nm: float, euchromatin_level: float) -> None:
    _check(np.ndim(phi) == 2, f"phi must be a 2-D image, got {np.ndim(phi)} dimensions")
    _check(
        np.shape(mask) == np.shape(phi),
        f"mask shape {np.shape(mask)} differs from phi shape {np.shape(phi)}",
    )
    _check(_finite(pixel_size_nm) and pixel_size_nm > 0, f"pixel size must be > 0 nm, got {pixel_size_nm}")
    _check(
        _finite(euchromatin_level) and 0 <= euchromatin_level <= 1,
        f"euchromatin_level must be in [0, 1], got {euchromatin_level}",
    )


def _bin_factor(pixel_size_nm: float, render_pixel_size_nm: float | None) -> int:
    """Whole number k with render pixel = k x simulation pixel (1 when no render pixel is asked)."""
    if render_pixel_size_nm is None:
        return 1
    _check(
        _finite(render_pixel_size_nm) and render_pixel_size_nm > 0,
        f"render pixel size must be > 0 nm, got {render_pixel_size_nm}",
    )
    k = round(render_pixel_size_nm / pixel_size_nm)
    _check(
        k >= 1 and abs(k * pixel_size_nm - render_pixel_size_nm) <= 1e-6 * render_pixel_size_nm,
        f"render pixel size {render_pixel_size_nm:g} nm is not a whole multiple of the simulation's "
        f"{pixel_size_nm:g} nm; simulate at a pixel size that divides it",
    )
    return int(k)


def _discrete_gaussian(sigma_px: float) -> np.ndarray:
    """1-D discrete Gaussian kernel exp(-t) I_n(t), t = sigma^2 (Lindeberg's scale-space kernel).

    Its variance on the integer grid is sigma^2 exactly, however small sigma is against the pixel;
    a sampled Gaussian would lose most of its width below about one pixel (a 50 nm PSF on a 60 nm
    grid would come out 11 nm wide). Cut at 6 sigma (at least 3 px) and renormalised.
    """
    from scipy.special import ive

    t = sigma_px**2
    n = np.arange(-max(3, math.ceil(6 * sigma_px)), max(3, math.ceil(6 * sigma_px)) + 1)
    k = ive(np.abs(n), t)
    return k / k.sum()


def _bin_sum(a: np.ndarray, k: int) -> np.ndarray:
    """Sums over k x k blocks; rows and columns that do not fill a block are dropped."""
    h, w = (a.shape[0] // k) * k, (a.shape[1] // k) * k
    return a[:h, :w].reshape(h // k, k, w // k, k).sum(axis=(1, 3))


def render_microscope(
    phi: np.ndarray,
    mask: np.ndarray,
    pixel_size_nm: float,
    *,
    modality: str = "sted",
    psf_fwhm_nm: float | None = None,
    photons: float | None = None,
    background: float | None = None,
    gain: float | None = None,
    offset: float | None = None,
    read_noise: float | None = None,
    render_pixel_size_nm: float | None = None,
    euchromatin_level: float = 0.3,
    seed: int = 0,
) -> MicroscopeRender:
    """Image of a simulated nucleus as a microscope of the given modality records it.

    Expected photons per simulation pixel = photons_px x (PSF * density) + background_px, where
    density is ``euchromatin_level + (1 - euchromatin_level) phi`` inside the nucleus and 0
    outside, and the PSF is a Gaussian of sigma = FWHM / 2.3548 (its discrete form on the
    simulation grid, of variance sigma^2 exactly; zero beyond the field). Counts are Poisson; the
    detector then reports ``gain x counts + offset`` plus Gaussian read noise.

    A render pixel larger than the simulation's must be a whole multiple k of it: the counts are
    drawn on the simulation grid and summed over k x k blocks (as a camera pixel integrates the
    light falling on it; the sum of Poisson counts is the Poisson count of the sum), then gain,
    offset and read noise are applied once per rendered pixel. ``photons`` and ``background``
    are per rendered pixel, so each simulation pixel gets 1/k^2 of them. Rows and columns that do
    not fill a block are dropped. The returned mask is the block majority of ``mask``.

    Parameters
    ----------
    phi, mask : ndarray
        Heterochromatin fraction and nucleus mask on the simulation grid.
    pixel_size_nm : float
        The simulation's pixel size.
    modality : str
        A key of :data:`MODALITIES`; its values fill every setting left as None.
    psf_fwhm_nm, photons, background, gain, offset, read_noise : float, optional
        Override the modality's values (see :class:`Modality`).
    render_pixel_size_nm : float, optional
        Pixel size of the image; default the simulation's.
    euchromatin_level : float
        Density of euchromatin relative to heterochromatin.
    seed : int
        Seed of the Poisson and read-noise draws.

    Returns
    -------
    MicroscopeRender
        ``image`` (float64, output units), ``mask`` (bool, the image's pixels) and ``truth``.
    """
    from scipy.ndimage import convolve1d

    _check(modality in MODALITIES, f"modality must be one of {sorted(MODALITIES)}, got {modality!r}")
    _check_field(phi, mask, pixel_size_nm, euchromatin_level)
    preset = MODALITIES[modality]
    s = {
        name: float(getattr(preset, name) if value is None else value)
        for name, value in dict(
            psf_fwhm_nm=psf_fwhm_nm,
            photons=photons,
            background=background,
            gain=gain,
            offset=offset,
            read_noise=read_noise,
        ).items()
    }
    _check(
        math.isfinite(s["psf_fwhm_nm"]) and s["psf_fwhm_nm"] >= 0,
        f"PSF FWHM must be >= 0 nm, got {s['psf_fwhm_nm']}",
    )
    _check(math.isfinite(s["photons"]) and s["photons"] > 0, f"photons must be > 0, got {s['photons']}")
    _check(
        math.isfinite(s["background"]) and s["background"] >= 0,
        f"background must be >= 0, got {s['background']}",
    )
    _check(math.isfinite(s["gain"]) and s["gain"] > 0, f"gain must be > 0, got {s['gain']}")
    _check(math.isfinite(s["offset"]), f"offset must be finite, got {s['offset']}")
    _check(
        math.isfinite(s["read_noise"]) and s["read_noise"] >= 0,
        f"read noise must be >= 0, got {s['read_noise']}",
    )
    k = _bin_factor(pixel_size_nm, render_pixel_size_nm)
    _check(
        min(np.shape(phi)) >= k,
        f"render pixel size {k * pixel_size_nm:g} nm is larger than the {np.shape(phi)} px field",
    )

    sigma_nm = s["psf_fwhm_nm"] / FWHM_PER_SIGMA
    mask = np.asarray(mask, bool)
    dens = _density(np.asarray(phi, float), mask, euchromatin_level)
    if sigma_nm > 0:
        kernel = _discrete_gaussian(sigma_nm / pixel_size_nm)
        dens = convolve1d(convolve1d(dens, kernel, axis=0, mode="constant"), kernel, axis=1, mode="constant")
    expected = (s["photons"] * dens + s["background"]) / k**2
    rng = np.random.default_rng(seed)
    counts = _bin_sum(rng.poisson(expected).astype(np.float64), k)
    image = s["gain"] * counts + s["offset"]
    if s["read_noise"] > 0:
        image = image + rng.normal(0.0, s["read_noise"], image.shape)
    mask_out = _bin_sum(mask.astype(np.float64), k) > 0.5 * k**2
    g, o, bg, ph = s["gain"], s["offset"], s["background"], s["photons"]
    truth = dict(
        modality=modality,
        psf_fwhm_nm=s["psf_fwhm_nm"],
        psf_sigma_nm=sigma_nm,
        photons=ph,
        background=bg,
        gain=g,
        offset=o,
        read_noise=s["read_noise"],
        euchromatin_level=float(euchromatin_level),
        pixel_size_nm=float(k * pixel_size_nm),
        simulation_pixel_size_nm=float(pixel_size_nm),
        bin_factor=k,
        shape=list(image.shape),
        intensity_levels=[g * (euchromatin_level * ph + bg) + o, g * (ph + bg) + o],
        seed=int(seed),
    )
    return MicroscopeRender(image=image, mask=mask_out, truth=truth)


# --------------------------------------------------------------------------------------------
# SMLM: emitters with the chromatin density, each localised several times with its own precision

#: Photons of a localisation of median precision; a localisation of precision p has
#: PHOTONS_AT_MEDIAN x (median / p)^2 (precision ~ 1 / sqrt(photons)).
PHOTONS_AT_MEDIAN = 1000.0


@dataclass(frozen=True)
class SMLMRender:
    """A localisation table, which emitter each row came from, the emitters, and the truth.

    ``table`` has the columns of :data:`THUNDERSTORM_HEADER` (x, y, uncertainty in nm);
    ``emitter[i]`` is the row of ``emitter_xy_nm`` (x, y in nm) that localisation i belongs to;
    ``truth`` (JSON-serialisable) holds the settings and the counts drawn.
    """

    table: np.ndarray
    emitter: np.ndarray
    emitter_xy_nm: np.ndarray
    truth: dict


def _truncated_lognormal(rng, n: int, median: float, spread: float, lo: float, hi: float) -> np.ndarray:
    """n draws of exp(N(log median, spread^2)) restricted to [lo, hi] (by inverting the CDF)."""
    from scipy.special import ndtr, ndtri

    a, b = ndtr((math.log(lo) - math.log(median)) / spread), ndtr((math.log(hi) - math.log(median)) / spread)
    u = a + (b - a) * rng.random(n)
    return np.clip(np.exp(math.log(median) + spread * ndtri(u)), lo, hi)


def render_smlm(
    phi: np.ndarray,
    mask: np.ndarray,
    pixel_size_nm: float,
    *,
    emitters_per_um2: float = 3000.0,
    localisations_per_emitter: float = 3.0,
    precision_range_nm: tuple[float, float] = (10.0, 25.0),
    precision_median_nm: float = 15.0,
    precision_spread: float = 0.3,
    frames: int = 20000,
    euchromatin_level: float = 0.3,
    seed: int = 0,
) -> SMLMRender:
    """Single-molecule localisation table of a simulated nucleus, with repeated localisations.

    Emitters are a Poisson process of intensity ``emitters_per_um2`` x density (density as in
    :func:`render_microscope`), uniform within each simulation pixel. Each emitter is localised
    a geometric number of times (1, 2, ...; mean ``localisations_per_emitter``): a fluorophore
    that bleaches with a fixed probability per switching cycle. Each localisation has its own
    precision p, drawn from a log-normal of median ``precision_median_nm`` and log-sd
    ``precision_spread`` restricted to ``precision_range_nm``, and is displaced from its emitter
    by a Gaussian of sd p in x and in y; p is its "uncertainty [nm]" (as ThunderSTORM reports
    it), its intensity is PHOTONS_AT_MEDIAN x (median / p)^2 photons, its frame uniform in
    1..``frames``. Localisations that fall outside the field are dropped.

    Parameters
    ----------
    phi, mask : ndarray
        Heterochromatin fraction and nucleus mask on the simulation grid.
    pixel_size_nm : float
        The simulation's pixel size.
    emitters_per_um2 : float
        Emitters per square micrometre of pure heterochromatin.
    localisations_per_emitter : float
        Mean localisations of one emitter (>= 1).
    precision_range_nm : (float, float)
        Smallest and largest localisation precision.
    precision_median_nm, precision_spread : float
        Median and log-sd of the precision before it is restricted to the range.
    frames : int
        Number of camera frames the localisations are spread over.
    euchromatin_level : float
        Density of euchromatin relative to heterochromatin.
    seed : int
        Seed of every draw.

    Returns
    -------
    SMLMRender
    """
    _check_field(phi, mask, pixel_size_nm, euchromatin_level)
    _check(
        _finite(emitters_per_um2) and emitters_per_um2 > 0,
        f"emitters_per_um2 must be > 0, got {emitters_per_um2}",
    )
    _check(
        _finite(localisations_per_emitter) and localisations_per_emitter >= 1,
        f"localisations_per_emitter must be >= 1, got {localisations_per_emitter}",
    )
    lo, hi = (float(v) for v in precision_range_nm)
    _check(
        math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi,
        f"precision range must satisfy 0 < low <= high nm, got {precision_range_nm}",
    )
    _check(
        _finite(precision_median_nm) and precision_median_nm > 0,
        f"precision median must be > 0 nm, got {precision_median_nm}",
    )
    _check(
        _finite(precision_spread) and precision_spread > 0,
        f"precision spread must be > 0, got {precision_spread}",
    )
    _check(
        isinstance(frames, (int, np.integer)) and frames >= 1,
        f"frames must be a whole number >= 1, got {frames}",
    )

    rng = np.random.default_rng(seed)
    mask = np.asarray(mask, bool)
    dens = _density(np.asarray(phi, float), mask, euchromatin_level)
    per_px = emitters_per_um2 * (pixel_size_nm / 1000.0) ** 2
    n_px = rng.poisson(per_px * dens)
    iy, ix = np.nonzero(n_px)
    iy, ix = np.repeat(iy, n_px[iy, ix]), np.repeat(ix, n_px[iy, ix])
    emitters = np.column_stack([(ix + rng.random(ix.size)), (iy + rng.random(iy.size))]) * pixel_size_nm
    blinks = rng.geometric(1.0 / localisations_per_emitter, emitters.shape[0])
    owner = np.repeat(np.arange(emitters.shape[0]), blinks)
    n = owner.size
    precision = _truncated_lognormal(rng, n, precision_median_nm, precision_spread, lo, hi)
    xy = emitters[owner] + rng.normal(0.0, 1.0, (n, 2)) * precision[:, None]
    h, w = np.shape(phi)
    keep = (xy[:, 0] >= 0) & (xy[:, 0] < w * pixel_size_nm) & (xy[:, 1] >= 0) & (xy[:, 1] < h * pixel_size_nm)
    xy, precision, owner = xy[keep], precision[keep], owner[keep]
    n = owner.size
    table = np.column_stack(
        [
            np.arange(1, n + 1),
            rng.integers(1, frames + 1, n),
            xy[:, 0],
            xy[:, 1],
            np.full(n, 120.0),
            PHOTONS_AT_MEDIAN * (precision_median_nm / precision) ** 2,
            precision,
        ]
    )
    truth = dict(
        modality="smlm",
        emitters_per_um2=float(emitters_per_um2),
        localisations_per_emitter=float(localisations_per_emitter),
        blinking="geometric",
        precision_range_nm=[lo, hi],
        precision_median_nm=float(precision_median_nm),
        precision_spread=float(precision_spread),
        photons_at_median=PHOTONS_AT_MEDIAN,
        frames=int(frames),
        euchromatin_level=float(euchromatin_level),
        pixel_size_nm=float(pixel_size_nm),
        field_nm=[float(w * pixel_size_nm), float(h * pixel_size_nm)],
        emitters=int(emitters.shape[0]),
        localisations=int(n),
        seed=int(seed),
    )
    return SMLMRender(table=table, emitter=owner, emitter_xy_nm=emitters, truth=truth)
