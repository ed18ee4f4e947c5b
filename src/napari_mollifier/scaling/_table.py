"""The per-domain table (:class:`DomainTable`): its columns, CSV text and summary, and
:func:`pearson_r` across domains."""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..io import atomic_write_text

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
