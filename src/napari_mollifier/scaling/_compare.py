"""The comparison with fitted rate maps: their per-domain means beside the scaling-law rates, and
reading the map pair written by ``mollifier infer``."""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..io import InputError
from ._table import DomainTable


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
    from ..io import read_image

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
