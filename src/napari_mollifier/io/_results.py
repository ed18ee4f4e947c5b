"""All the files of one result, as ``mollifier infer`` writes them and the fit widget's "Save all…":
the maps (OME-TIFF, pixel size in nm), ``S.json``, the overview figure and the table of rates."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._writers import write_csv

__all__ = ["RATE_TABLE_COLUMNS", "rate_table_rows", "write_rate_table", "save_result", "result_stem"]

#: Per map: statistics over the region's analysed pixels. ``std`` is the spread of the map over the
#: region (not its uncertainty); ``median_rel_sd`` is the median of the sd map / |map| (the
#: uncertainty, docs/method.md), empty without sd maps.
_STATS = ("mean", "median", "std", "median_rel_sd")
RATE_TABLE_COLUMNS = (
    "source",
    "region",
    "analysed_pixels",
    "area_um2",
    "pixel_size_nm",
    *(f"{k}_{s}" for k in ("gamma_me", "gamma_ac", "lambda") for s in _STATS),
    "status",
    "status_reason",
    "verdict",
    "verdict_reason",
)


def result_stem(name: str) -> str:
    """A file-name stem for a result named ``name`` (a file path or a layer name): the path's stem,
    with characters that file systems or shells trip over replaced by ``_``."""
    stem = (
        Path(str(name)).stem if str(name).lower().endswith((".tif", ".tiff", ".csv", ".txt")) else str(name)
    )
    stem = Path(stem).name
    keep = "".join(c if (c.isalnum() or c in "-_.") else "_" for c in stem).strip("._")
    return keep or "result"


def rate_table_rows(maps, region: str = "nucleus") -> list[dict]:
    """One row of :data:`RATE_TABLE_COLUMNS` for the analysed region of ``maps`` (a
    :class:`~napari_mollifier.inverse.RateMaps`): mean, median and spread of Gamma_me, Gamma_ac
    and lambda over its pixels (rates in 1/tau), the fit's status and the verdict on the rates."""
    m = np.asarray(maps.mask, dtype=bool)
    px = float(maps.pixel_size_nm)
    row: dict = {
        "source": str(maps.source),
        "region": region,
        "analysed_pixels": int(m.sum()),
        "area_um2": f"{m.sum() * (px / 1000.0) ** 2:.6g}",
        "pixel_size_nm": f"{px:g}",
    }
    rel = (maps.fit.uncertainty or {}).get("median_relative_sd") or {}
    for key, arr in (("gamma_me", maps.gamma_me), ("gamma_ac", maps.gamma_ac), ("lambda", maps.lam)):
        v = np.asarray(arr)[m]
        v = v[np.isfinite(v)]
        stats = (float(np.mean(v)), float(np.median(v)), float(np.std(v))) if v.size else (np.nan,) * 3
        for name, value in zip(("mean", "median", "std"), stats):
            row[f"{key}_{name}"] = f"{value:.6g}"
        r = rel.get(key)
        row[f"{key}_median_rel_sd"] = "" if r is None else f"{float(r):.3g}"
    verdict = maps.verdict
    row.update(
        status=maps.status,
        status_reason=maps.status_reason,
        verdict=verdict.verdict,
        verdict_reason=verdict.reason,
    )
    return [row]


def write_rate_table(rows, path: str | os.PathLike) -> Path:
    """The rows of :func:`rate_table_rows` (one per nucleus / region) as CSV, written atomically."""
    return write_csv(rows, path, RATE_TABLE_COLUMNS)


def save_result(
    maps,
    folder: str | os.PathLike,
    *,
    stem: str | None = None,
    overview: bool = True,
    extra: dict | None = None,
) -> dict:
    """Write every file of one result into ``folder`` (created if needed) and return name -> path.

    ``S_gamma_me.tif``, ``S_gamma_ac.tif``, ``S_lambda.tif``, ``S_phi.tif``, their sd maps and
    ``S_mask.tif`` (OME-TIFF with the pixel size in nm and the settings,
    :func:`~napari_mollifier.inverse.write_rate_maps`), ``S_rates.csv`` (the rates per region,
    :func:`rate_table_rows`), ``S_overview.png`` (with ``overview``) and ``S.json``, each written
    atomically. An earlier ``S.json`` is removed first and the new one written last, so that a
    complete ``S.json`` marks a complete set. ``S`` is ``stem`` (default: the source's file
    stem); ``extra`` adds entries to ``S.json``. Used by ``mollifier infer`` / ``batch`` and the
    fit widget's "Save all…", so both write the same files.
    """
    from ..inverse import write_rate_maps

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or Path(maps.source).stem
    (out / f"{stem}.json").unlink(missing_ok=True)
    paths = {}
    if overview:
        from ..plotting import overview_figure

        paths["overview"] = overview_figure(maps, out / f"{stem}_overview.png")
    paths["rates"] = write_rate_table(rate_table_rows(maps), out / f"{stem}_rates.csv")
    paths.update(write_rate_maps(maps, out, stem, extra=extra))
    return {k: Path(v) for k, v in paths.items()}
