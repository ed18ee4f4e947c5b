"""The per-domain scaling-law estimate, a cross-check of the rate maps (docs/model.md, "Scaling law").

Before per-pixel maps, rates were estimated one pair per heterochromatin domain from the domain's
radius R and the spacing d to its nearest domains:

    Gamma_ac = D / d^2,    Gamma_me = Gamma_ac / ((d / R)^2 - 1)    (R^2 / d^2 = lambda / (1 + lambda))

This module segments the domains (percentile threshold of phi inside the nucleus, connected
components), evaluates that closed form per domain, and averages per-pixel maps over the same
domains so that the two can be listed side by side.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .io import InputError, atomic_write_text, load_input
from .physics import ChromatinModel

__all__ = [
    "DEFAULT_PERCENTILE",
    "DEFAULT_MIN_AREA_PX",
    "DEFAULT_NEIGHBOURS",
    "DomainTable",
    "segment_domains",
    "domain_scaling_estimate",
    "compare_with_maps",
    "pearson_r",
    "read_map_pair",
    "scaling_crosscheck",
]

#: Domains are the nucleus pixels above this percentile of phi: the top 30 %, the heterochromatin
#: area fraction of H2B STORM images (docs/model.md, "Units and defaults").
DEFAULT_PERCENTILE = 70.0
#: Connected components smaller than this (pixels; an equivalent radius below 1.8 px) are dropped
#: as noise or threshold fragments: their radius is not resolved.
DEFAULT_MIN_AREA_PX = 10
#: d is the mean centroid distance to this many nearest domains (docs/model.md, "Prior practical
#: estimate").
DEFAULT_NEIGHBOURS = 5

_COLUMNS = (
    "label",
    "centroid_row",
    "centroid_col",
    "area_px",
    "touches_edge",
    "radius_nm",
    "spacing_nm",
    "gamma_ac",
    "gamma_me",
    "lam",
    "note",
)
_MAP_COLUMNS = ("map_gamma_ac", "map_gamma_me", "map_lam")


@dataclass
class DomainTable:
    """One row per heterochromatin domain: geometry, the scaling-law rates and, optionally, the
    per-domain means of rate maps (:func:`compare_with_maps`).

    Columns (1-D arrays of one length; rows in label order)

    - ``label``: the domain's value in ``labels``.
    - ``centroid_row``, ``centroid_col``: centroid in pixels (row, column).
    - ``area_px``: area in pixels. ``touches_edge``: the domain touches the nucleus boundary (it may
      be cut by the mask, and its neighbours lie on one side only).
    - ``radius_nm``: R = sqrt(area / pi), the equivalent-disc radius, in nm.
    - ``spacing_nm``: d = the mean centroid distance to the ``neighbours`` nearest domains, in nm.
    - ``gamma_ac``, ``gamma_me`` (1/tau) and ``lam`` = Gamma_me / Gamma_ac; NaN where d <= R.
    - ``note``: why the rates are NaN ("" otherwise).
    - ``map_gamma_ac``, ``map_gamma_me``, ``map_lam``: means of the maps over each domain's
      pixels (NaN pixels ignored), ``map_lam`` = map_gamma_me / map_gamma_ac; None until compared.

    ``labels`` is the (H, W) label image (0 = no domain); ``meta`` records the pixel size, the
    percentile and its phi threshold, the number of neighbours, D and the length unit.
    """

    label: np.ndarray
    centroid_row: np.ndarray
    centroid_col: np.ndarray
    area_px: np.ndarray
    touches_edge: np.ndarray
    radius_nm: np.ndarray
    spacing_nm: np.ndarray
    gamma_ac: np.ndarray
    gamma_me: np.ndarray
    lam: np.ndarray
    note: np.ndarray
    labels: np.ndarray = field(repr=False)
    meta: dict = field(default_factory=dict)
    map_gamma_ac: np.ndarray | None = None
    map_gamma_me: np.ndarray | None = None
    map_lam: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.label)

    @property
    def columns(self) -> tuple[str, ...]:
        """Names of the columns present (the map means only after :func:`compare_with_maps`)."""
        return _COLUMNS + (_MAP_COLUMNS if self.map_gamma_ac is not None else ())

    def to_rows(self) -> list[dict]:
        """The table as a list of dicts (one per domain) of plain Python values."""
        cols = {c: getattr(self, c) for c in self.columns}
        return [
            {c: v[i].item() if isinstance(v[i], np.generic) else v[i] for c, v in cols.items()}
            for i in range(len(self))
        ]

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """CSV text of the rows (header first); written atomically to ``path`` when given."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns)
        for row in self.to_rows():
            w.writerow([_fmt(v) for v in row.values()])
        text = buf.getvalue()
        if path is not None:
            atomic_write_text(path, text)
        return text

    def summary(self) -> dict:
        """Domain count, medians of R and d (nm), means of the rates over the domains with finite
        rates, and with maps: the ratios of means (scaling / map) and Pearson r across domains."""
        ok = np.isfinite(self.gamma_ac)
        out = {
            "domains": len(self),
            "domains_with_rates": int(ok.sum()),
            "median_radius_nm": float(np.median(self.radius_nm)),
            "median_spacing_nm": float(np.median(self.spacing_nm)),
            "mean_gamma_ac": _mean(self.gamma_ac[ok]),
            "mean_gamma_me": _mean(self.gamma_me[ok]),
            "mean_lam": _mean(self.lam[ok]),
        }
        if self.map_gamma_ac is not None:
            for key in ("gamma_ac", "gamma_me", "lam"):
                est, ref = getattr(self, key), getattr(self, f"map_{key}")
                both = np.isfinite(est) & np.isfinite(ref)
                out[f"map_mean_{key}"] = _mean(ref[both])
                out[f"ratio_{key}"] = _mean(est[both]) / out[f"map_mean_{key}"] if both.any() else math.nan
                out[f"r_{key}"] = pearson_r(est[both], ref[both])
            out["domains_compared"] = int((np.isfinite(self.gamma_ac) & np.isfinite(self.map_gamma_ac)).sum())
        return out


def _fmt(v) -> str:
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def _mean(v: np.ndarray) -> float:
    return float(np.mean(v)) if len(v) else math.nan


def pearson_r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two 1-D arrays; NaN for fewer than 3 values or a constant array
    (e.g. uniform true rates, for which r is undefined)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3:
        return math.nan
    da, db = a - a.mean(), b - b.mean()
    na, nb = math.sqrt(float(da @ da)), math.sqrt(float(db @ db))
    # Relative test: the domain means of a constant map differ by rounding only.
    if (
        na <= 1e-9 * abs(float(a.mean())) * math.sqrt(len(a))
        or nb <= 1e-9 * abs(float(b.mean())) * math.sqrt(len(b))
        or na == 0.0
        or nb == 0.0
    ):
        return math.nan
    return float(da @ db / (na * nb))


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


def domain_scaling_estimate(
    phi,
    mask=None,
    pixel_size_nm: float = 10.0,
    *,
    percentile: float = DEFAULT_PERCENTILE,
    neighbours: int = DEFAULT_NEIGHBOURS,
    min_area_px: int = DEFAULT_MIN_AREA_PX,
    smoothing_px: float = 0.0,
    model: ChromatinModel = ChromatinModel(),
    diffusivity: float | None = None,
    name: str = "image",
) -> DomainTable:
    """One rate pair per heterochromatin domain from its radius and spacing (docs/model.md, "Scaling law").

    Parameters
    ----------
    phi : (H, W) array
        Heterochromatin fraction, dimension order (row, column).
    mask : (H, W) array, optional
        Nucleus (nonzero inside); the whole image when absent.
    pixel_size_nm : float
        Pixel size; lengths are converted to the model's unit with ``model.spacing`` (ell0 = 10 nm
        by default), as the inverse solver does.
    percentile, min_area_px, smoothing_px
        Domain segmentation (:func:`segment_domains`).
    neighbours : int
        d is the mean centroid distance to this many nearest domains (5). At least
        ``neighbours + 1`` domains are needed.
    model : ChromatinModel
        Sets the length unit and, unless ``diffusivity`` is given, D = M A.
    diffusivity : float, optional
        D in ell0^2 / tau. Default ``model.mobility * model.bulk`` = 1 with the defaults (the time
        unit is tau = ell0^2 / (M A)), the D = 1 of docs/model.md.
    name : str
        Names the input in error messages.

    Returns
    -------
    DomainTable
        One row per domain; ``gamma_ac``, ``gamma_me`` in 1/tau.

    Raises
    ------
    InputError
        No domain, fewer than ``neighbours + 1`` domains, an empty mask (one line, with the fix).

    Notes
    -----
    With R = sqrt(area / pi) and d in ell0 (R_px h, d_px h with h = pixel_size_nm / ell0_nm)::

        Gamma_ac = D / d^2,   Gamma_me = Gamma_ac / ((d / R)^2 - 1),   lambda = R^2 / (d^2 - R^2)

    so that R^2 / d^2 = lambda / (1 + lambda). A domain with d <= R (a large or branched
    component close to others) has no solution: its rates are NaN and ``note`` says why. The
    rates scale as 1 / pixel_size_nm^2 at fixed pixels. Domains touching the nucleus edge are
    kept and flagged (``touches_edge``); their d is biased high.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:120, :120]
    >>> phi = np.zeros((120, 120))
    >>> for cy in range(15, 120, 30):
    ...     for cx in range(15, 120, 30):
    ...         phi[(yy - cy) ** 2 + (xx - cx) ** 2 <= 36] = 1.0
    >>> t = domain_scaling_estimate(phi, pixel_size_nm=10.0)
    >>> len(t), float(t.spacing_nm[5]) == 10 * 30 * (4 + 2 ** 0.5) / 5
    (16, True)
    """
    k = int(neighbours)
    if k < 1:
        raise ValueError(f"neighbours must be at least 1, got {neighbours!r}")
    h = model.spacing(pixel_size_nm)
    D = model.mobility * model.bulk if diffusivity is None else float(diffusivity)
    if not D > 0:
        raise ValueError(f"diffusivity must be positive, got {D!r}")
    phi, mask = _check_field(phi, mask, name)
    labels, threshold = segment_domains(
        phi, mask, percentile=percentile, min_area_px=min_area_px, smoothing_px=smoothing_px, name=name
    )
    n = int(labels.max())
    if n < k + 1:
        raise InputError(
            f"{name}: found {n} chromatin domain{'s' if n != 1 else ''}, but the spacing to the "
            f"{k} nearest needs at least {k + 1}; lower --percentile or --min-area, or check the "
            "pixel size (domains ~50-300 nm across)"
        )
    from scipy import ndimage as ndi
    from scipy.spatial import cKDTree

    idx = np.arange(1, n + 1)
    area = np.bincount(labels.ravel(), minlength=n + 1)[1:].astype(float)
    cents = np.array(ndi.center_of_mass(np.ones_like(labels), labels, idx), dtype=float).reshape(n, 2)
    dist, _ = cKDTree(cents).query(cents, k=k + 1)
    d_px = dist[:, 1:].mean(axis=1)  # column 0 is the domain itself
    r_px = np.sqrt(area / np.pi)
    edge = mask & ~ndi.binary_erosion(mask, border_value=0)
    touches = np.zeros(n + 1, bool)
    touches[np.unique(labels[edge])] = True
    R, d = r_px * h, d_px * h
    valid = d > R
    with np.errstate(divide="ignore", invalid="ignore"):
        g_ac = np.where(valid, D / d**2, np.nan)
        g_me = np.where(valid, g_ac / ((d / R) ** 2 - 1.0), np.nan)
        lam = np.where(valid, R**2 / (d**2 - R**2), np.nan)
    note = np.where(valid, "", "d <= R: no scaling-law solution (domain as large as its spacing)").astype(
        object
    )
    meta = {
        "pixel_size_nm": float(pixel_size_nm),
        "percentile": float(percentile),
        "threshold": threshold,
        "min_area_px": int(min_area_px),
        "smoothing_px": float(smoothing_px),
        "neighbours": k,
        "diffusivity": D,
        "length_unit_nm": model.ell0_nm,
        "units": "R, d in nm; rates in 1/tau, tau = ell0^2/(M A); D in ell0^2/tau",
    }
    return DomainTable(
        label=idx,
        centroid_row=cents[:, 0],
        centroid_col=cents[:, 1],
        area_px=area.astype(int),
        touches_edge=touches[1:],
        radius_nm=r_px * float(pixel_size_nm),
        spacing_nm=d_px * float(pixel_size_nm),
        gamma_ac=g_ac,
        gamma_me=g_me,
        lam=lam,
        note=note,
        labels=labels,
        meta=meta,
    )


def _domain_means(labels: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    ok = np.isfinite(values) & (labels > 0)
    lab = np.where(ok, labels, 0).ravel()
    s = np.bincount(lab, weights=np.where(ok, values, 0.0).ravel(), minlength=n + 1)[1:]
    c = np.bincount(lab, minlength=n + 1)[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.maximum(c, 1), np.nan)


def compare_with_maps(table: DomainTable, gamma_me_map, gamma_ac_map) -> DomainTable:
    """The table with the per-domain means of per-pixel rate maps beside the scaling-law rates.

    Parameters
    ----------
    table : DomainTable
        From :func:`domain_scaling_estimate`.
    gamma_me_map, gamma_ac_map : (H, W) arrays
        Rate maps (1/tau) on the same grid as the table's ``labels``; NaN pixels (outside the
        analysed region) are ignored.

    Returns
    -------
    DomainTable
        A copy with ``map_gamma_me``, ``map_gamma_ac`` (mean over each domain's pixels) and
        ``map_lam`` = map_gamma_me / map_gamma_ac (NaN for a domain without finite map pixels);
        ``summary()`` then adds the ratios of means and Pearson r across domains.
    """
    me, ac = (np.asarray(a, dtype=np.float64) for a in (gamma_me_map, gamma_ac_map))
    for nm, a in (("gamma_me_map", me), ("gamma_ac_map", ac)):
        if a.shape != table.labels.shape:
            raise InputError(
                f"{nm}: shape {a.shape} differs from the image shape {table.labels.shape}; "
                "give the maps inferred from this image"
            )
    n = len(table)
    m_me, m_ac = _domain_means(table.labels, me, n), _domain_means(table.labels, ac, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        m_lam = m_me / m_ac
    return replace(table, map_gamma_me=m_me, map_gamma_ac=m_ac, map_lam=m_lam)


def read_map_pair(
    folder: str | os.PathLike,
    stem: str,
    *,
    shape: tuple[int, int] | None = None,
    pixel_size_nm: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``folder/stem_gamma_me.tif`` and ``folder/stem_gamma_ac.tif`` (outputs of ``mollifier infer``).

    Raises
    ------
    InputError
        A missing file, a shape other than ``shape``, or maps inferred at another pixel size.
    """
    from .io import read_image

    out = []
    for key in ("gamma_me", "gamma_ac"):
        p = Path(folder) / f"{stem}_{key}.tif"
        if not p.exists():
            raise InputError(
                f"{p}: rate map not found; run `mollifier infer IMAGE --out {folder}` first or "
                "give the folder of its outputs with --maps"
            )
        img = read_image(p, allow_nan=True, allow_constant=True)
        if shape is not None and img.data.shape != tuple(shape):
            raise InputError(
                f"{p}: map shape {img.data.shape} differs from the image shape {tuple(shape)}; "
                "give the maps inferred from this image"
            )
        if (
            pixel_size_nm is not None
            and img.pixel_size_nm is not None
            and not math.isclose(img.pixel_size_nm, pixel_size_nm, rel_tol=1e-3)
        ):
            raise InputError(
                f"{p}: the maps were inferred at {img.pixel_size_nm:g} nm per pixel but this estimate "
                f"uses {pixel_size_nm:g} nm; give the same --pixel-size to both"
            )
        out.append(img.data)
    return out[0], out[1]


def scaling_crosscheck(
    image,
    *,
    pixel_size_nm: float | None = None,
    mask=None,
    input: str = "intensity",
    maps=None,
    percentile: float = DEFAULT_PERCENTILE,
    neighbours: int = DEFAULT_NEIGHBOURS,
    min_area_px: int = DEFAULT_MIN_AREA_PX,
    smoothing_nm: float | None = None,
    model: ChromatinModel = ChromatinModel(),
) -> DomainTable:
    """The scaling-law estimate of one image, read and preprocessed as :func:`infer_rates` does,
    optionally beside the per-domain means of rate maps (``mollifier scaling``).

    Parameters
    ----------
    image : path or (H, W) array
        TIFF / OME-TIFF file (pixel size from its metadata) or an array.
    pixel_size_nm : float, optional
        Overrides the file's pixel size; required for arrays and files without one.
    mask : path or (H, W) array, optional
        Nucleus mask (nonzero inside); segmented automatically (Otsu) when absent.
    input : {"intensity", "fraction"}
        Raw intensity (normalised inside the nucleus to phi) or phi itself.
    maps : folder, RateMaps or (gamma_me, gamma_ac), optional
        Rate maps to average per domain: a folder of ``mollifier infer`` outputs
        (``S_gamma_me.tif``, ``S_gamma_ac.tif`` with S the image's stem), an object with
        ``gamma_me`` / ``gamma_ac`` arrays, or the two arrays.
    percentile, neighbours, min_area_px
        As in :func:`domain_scaling_estimate`.
    smoothing_nm : float, optional
        Gaussian sigma before thresholding; default 0 for fraction input and 20 nm for intensity
        input (photon noise would otherwise cut domains into fragments).
    model : ChromatinModel

    Raises
    ------
    InputError
        One line naming the input and the fix.
    """
    from .config import InferenceSettings
    from .inverse import to_fraction

    inp = load_input(image, pixel_size_nm=pixel_size_nm, mask=mask)
    data, m, px, source, prep = inp.data, inp.mask, inp.pixel_size_nm, inp.source, inp.preprocessing
    phi, _ = to_fraction(
        data, m, input=input, pixel_size_nm=px, settings=InferenceSettings(), name=source, prep=prep
    )
    if smoothing_nm is None:
        smoothing_nm = 20.0 if input == "intensity" else 0.0
    table = domain_scaling_estimate(
        phi,
        m,
        px,
        percentile=percentile,
        neighbours=neighbours,
        min_area_px=min_area_px,
        smoothing_px=float(smoothing_nm) / px,
        model=model,
        name=source,
    )
    table.meta.update(source=source, input=input, smoothing_nm=float(smoothing_nm), mask=prep.get("mask", ""))
    if maps is None:
        return table
    if isinstance(maps, (str, os.PathLike)):
        stem = Path(source).stem if isinstance(image, (str, os.PathLike)) else "image"
        me, ac = read_map_pair(maps, stem, shape=data.shape, pixel_size_nm=px)
        table.meta["maps"] = str(maps)
    elif hasattr(maps, "gamma_me"):
        me, ac = maps.gamma_me, maps.gamma_ac
        table.meta["maps"] = "given"
    else:
        me, ac = maps
        table.meta["maps"] = "given"
    return compare_with_maps(table, me, ac)
