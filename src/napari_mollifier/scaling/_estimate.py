"""The scaling-law rates of each domain from its radius R and spacing d (docs/model.md, "Scaling law"):
Gamma_ac = D / d^2, Gamma_me = Gamma_ac / ((d / R)^2 - 1)."""

from __future__ import annotations

import numpy as np

from ..io import InputError
from ..physics import ChromatinModel
from ._domains import DEFAULT_MIN_AREA_PX, DEFAULT_PERCENTILE, _check_field, segment_domains
from ._table import DomainTable

#: d is the mean centroid distance to this many nearest domains (docs/model.md, "Prior practical
#: estimate").
DEFAULT_NEIGHBOURS = 5


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
