"""Several nuclei in one image: one fit per labelled nucleus, one table row each.

A label image (0 = background, each nucleus its own positive label; from a labels layer, a file,
or :func:`napari_mollifier.io.label_nuclei`) splits an image into nuclei. Each nucleus is fitted
on its own crop (its bounding box grown by a margin, :func:`nucleus_crop`) with its label as the
mask, through the same :func:`infer_rates` as a single nucleus; the other nuclei inside that crop
are replaced by the background level, so that one nucleus' domains do not enter its neighbour's
derivatives. A nucleus that cannot be fitted (too small, bad input) is recorded with its reason
and the others go on.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import InferenceSettings, resolved_kernel_radius_nm
from ..io import InputError, label_nuclei, load_image, one_line_error, read_image
from ._infer import RateMaps, infer_rates

__all__ = [
    "AUTO_LABELS",
    "NUCLEUS_COLUMNS",
    "NucleiMaps",
    "NucleusResult",
    "infer_nuclei",
    "iter_nuclei",
    "nucleus_crop",
    "read_labels",
    "write_nuclei_maps",
    "write_nuclei_table",
]

#: ``labels="auto"``: label every nucleus by automatic segmentation (:func:`label_nuclei`).
AUTO_LABELS = "auto"

#: Pixels added around the fit's own crop (the mollifier's margin + 2 px) when cutting a nucleus
#: out: room for the solver's growth of the crop to FFT-friendly sizes, so that a nucleus is
#: fitted on the same neighbourhood as when it is the only one in the image.
EXTRA_MARGIN_PX = 16

#: The columns of a nuclei table (``S_nuclei.csv``, the CLI's ``summary.csv`` with ``--labels``).
NUCLEUS_COLUMNS = (
    "label",
    "centroid_row_px",
    "centroid_col_px",
    "centroid_y_nm",
    "centroid_x_nm",
    "area_px",
    "area_um2",
    "status",
    "reason",
    "verdict",
    "verdict_reason",
    "gamma_me_mean",
    "gamma_ac_mean",
    "lambda_mean",
    "gamma_me_rel_sd",
    "gamma_ac_rel_sd",
    "runtime_s",
    "crop",
)


@dataclass
class NucleusResult:
    """One labelled nucleus: where it lies and what its fit gave.

    ``box`` is the crop of the image (rows, columns) it was fitted on, ``centroid_px`` its centre
    (row, column) in image pixels, ``area_px`` its label's pixel count. ``status`` is the fit's
    ("ok", "failed", "diverged", "cancelled"), "failed" with ``reason`` when no fit ran, or "not run"
    (stopped before it). ``maps`` holds the fit's maps on the crop grid (None without a fit).
    """

    label: int
    box: tuple[slice, slice]
    centroid_px: tuple[float, float]
    area_px: int
    status: str = "not run"
    reason: str = ""
    maps: RateMaps | None = None

    def row(self, pixel_size_nm: float) -> dict:
        """The nucleus' row of the nuclei table (:data:`NUCLEUS_COLUMNS`)."""
        r, c = self.centroid_px
        out = {
            "label": self.label,
            "centroid_row_px": f"{r:.2f}",
            "centroid_col_px": f"{c:.2f}",
            "centroid_y_nm": f"{r * pixel_size_nm:.1f}",
            "centroid_x_nm": f"{c * pixel_size_nm:.1f}",
            "area_px": self.area_px,
            "area_um2": f"{self.area_px * (pixel_size_nm / 1000.0) ** 2:.4g}",
            "status": self.status,
            "reason": self.reason,
            "crop": f"{self.box[0].start}:{self.box[0].stop},{self.box[1].start}:{self.box[1].stop}",
        }
        for k in ("verdict", "verdict_reason", "gamma_me_mean", "gamma_ac_mean", "lambda_mean"):
            out[k] = ""
        for k in ("gamma_me_rel_sd", "gamma_ac_rel_sd", "runtime_s"):
            out[k] = ""
        if self.maps is not None:
            s = self.maps.summary()
            v = self.maps.verdict
            out.update(verdict=v.verdict, verdict_reason=v.reason, runtime_s=f"{self.maps.fit.runtime_s:.2f}")
            for k in ("gamma_me", "gamma_ac", "lambda"):
                out[f"{k}_mean"] = f"{s[k]['mean']:.6g}"
            for k in ("gamma_me", "gamma_ac"):
                if "median_relative_sd" in s[k]:
                    out[f"{k}_rel_sd"] = f"{s[k]['median_relative_sd']:.3g}"
        return out


@dataclass
class NucleiMaps:
    """The fits of every labelled nucleus of one image."""

    nuclei: list[NucleusResult]
    labels: np.ndarray
    pixel_size_nm: float
    source: str
    input_kind: str = "intensity"
    preprocessing: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.labels.shape)

    def assembled(self, key: str) -> np.ndarray:
        """One map of every nucleus on the image grid (float32, NaN outside the analysed regions):
        ``key`` is "gamma_me", "gamma_ac", "lambda", "phi_hat", "gamma_me_sd", "gamma_ac_sd" or
        "lambda_sd" (NaN where a fit has no such map)."""
        attr = {"lambda": "lam", "lambda_sd": "lam_sd"}.get(key, key)
        out = np.full(self.shape, np.nan, np.float32)
        for n in self.nuclei:
            if n.maps is None or getattr(n.maps, attr) is None:
                continue
            own = n.maps.mask & (self.labels[n.box] == n.label)
            out[n.box][own] = np.asarray(getattr(n.maps, attr), np.float32)[own]
        return out

    def analysed(self) -> np.ndarray:
        """The pixels of the image some nucleus' fit analysed."""
        out = np.zeros(self.shape, bool)
        for n in self.nuclei:
            if n.maps is not None:
                out[n.box] |= n.maps.mask & (self.labels[n.box] == n.label)
        return out

    def table(self) -> list[dict]:
        """One row per nucleus (:data:`NUCLEUS_COLUMNS`), in label order."""
        return [n.row(self.pixel_size_nm) for n in self.nuclei]

    @property
    def status(self) -> str:
        """ "ok" when every nucleus' fit is ok, else the first other status among them."""
        bad = [n.status for n in self.nuclei if n.status != "ok"]
        return bad[0] if bad else "ok"


def read_labels(labels, image: np.ndarray, *, name: str = "image") -> np.ndarray:
    """A checked label image (int64) for ``image``: a TIFF path, an array, or "auto"
    (:func:`label_nuclei` of the image). Labels must be whole non-negative numbers with the image's
    shape and at least one nucleus; raises :class:`InputError` naming the fix."""
    if isinstance(labels, str) and labels == AUTO_LABELS:
        out = label_nuclei(image, name=name)
        if not out.any():
            raise InputError(
                f"{name}: the automatic segmentation found no nucleus of at least 40x40 pixels; "
                "give a label image (--labels FILE) or check the input kind (--input)"
            )
        return out.astype(np.int64)
    where = str(labels) if isinstance(labels, (str, os.PathLike)) else f"{name} labels"
    if isinstance(labels, (str, os.PathLike)):
        if Path(labels).suffix.lower() not in (".tif", ".tiff"):
            raise InputError(f"{labels}: label images must be TIFF files")
        labels = read_image(labels, allow_constant=True).data
    arr = np.asarray(labels)
    if arr.shape != image.shape:
        raise InputError(
            f"{where}: label image shape {arr.shape} differs from the image shape {image.shape}; "
            "use the label image made for this image"
        )
    if arr.dtype.kind in "fc" and not (np.isfinite(arr).all() and np.array_equal(arr, np.round(arr))):
        raise InputError(f"{where}: the label image has fractional values; give whole-number labels")
    arr = arr.astype(np.int64)
    if arr.min() < 0:
        raise InputError(f"{where}: the label image has negative labels; use 0 for background")
    if not arr.any():
        raise InputError(f"{where}: the label image holds no nucleus (all 0); label the nuclei")
    return arr


def nucleus_crop(labels: np.ndarray, label: int, margin_px: int) -> tuple[slice, slice]:
    """The crop of one nucleus: its label's bounding box grown by ``margin_px``, clipped to the image."""
    rows, cols = np.nonzero(labels == label)
    return (
        slice(max(int(rows.min()) - margin_px, 0), min(int(rows.max()) + margin_px + 1, labels.shape[0])),
        slice(max(int(cols.min()) - margin_px, 0), min(int(cols.max()) + margin_px + 1, labels.shape[1])),
    )


def crop_margin_px(settings: InferenceSettings, pixel_size_nm: float) -> int:
    """The margin around a nucleus' bounding box: the fit's own (the mollifier's margin + 2 px)
    plus :data:`EXTRA_MARGIN_PX`."""
    from ..mollifier import mollifier_margin

    radius_px = resolved_kernel_radius_nm(settings, pixel_size_nm) / pixel_size_nm
    return int(mollifier_margin(radius_px, ("u",), kernel="spectral")) + 2 + EXTRA_MARGIN_PX


def _nucleus_image(data: np.ndarray, labels: np.ndarray, box, label: int) -> np.ndarray:
    """The crop of one nucleus with the other nuclei in it set to the background level (the median
    of the crop's unlabelled pixels; of the whole image's when the crop has none)."""
    crop, lab = data[box].copy(), labels[box]
    others = (lab != 0) & (lab != label)
    if others.any():
        bg = data[labels == 0]
        level = (
            float(np.median(crop[lab == 0])) if (lab == 0).any() else float(np.median(bg)) if bg.size else 0.0
        )
        crop[others] = level
    return crop


def iter_nuclei(
    image,
    labels,
    *,
    pixel_size_nm: float | None = None,
    input: str = "intensity",
    settings: InferenceSettings | None = None,
    margin_px: int | None = None,
    cancel: threading.Event | None = None,
    progress: Callable | None = None,
    check_memory: bool = True,
    name: str | None = None,
) -> Iterator[tuple[int, int, NucleusResult]]:
    """:func:`infer_nuclei` as a generator: yields ``(k, n, result)`` after each of the ``n``
    nuclei (``k`` from 0) and returns the :class:`NucleiMaps` (the napari widget shows each
    nucleus as it is done). Parameters as for :func:`infer_nuclei`."""
    settings = settings or InferenceSettings()
    # The image once, without a nucleus mask (each nucleus brings its own): read, pixel size checked.
    data, px, source, prep = load_image(image, pixel_size_nm=pixel_size_nm, name=name)
    lab = read_labels(labels, data, name=source)
    auto = isinstance(labels, str) and labels == AUTO_LABELS
    prep["labels"] = "segmented (every nucleus)" if auto else str(labels) if _is_path(labels) else "given"
    margin = crop_margin_px(settings, px) if margin_px is None else int(margin_px)
    ids = [int(v) for v in np.unique(lab) if v != 0]
    results: list[NucleusResult] = []
    for k, label in enumerate(ids):
        own = lab == label
        rows, cols = np.nonzero(own)
        box = nucleus_crop(lab, label, margin)
        res = NucleusResult(label, box, (float(rows.mean()), float(cols.mean())), int(own.sum()))
        results.append(res)
        if cancel is not None and cancel.is_set():
            res.reason = "stopped before this nucleus started"
            yield k, len(ids), res
            continue
        try:
            res.maps = infer_rates(
                _nucleus_image(data, lab, box, label),
                pixel_size_nm=px,
                mask=(lab[box] == label).astype(np.uint8),
                input=input,
                settings=settings,
                cancel=cancel,
                progress=None if progress is None else (lambda ev, label=label: progress(label, ev)),
                check_memory=check_memory,
                name=f"{source} nucleus {label}",
            )
            res.maps.preprocessing.update(
                nucleus={"label": label, "crop_px": [box[0].start, box[0].stop, box[1].start, box[1].stop]}
            )
            res.status = "cancelled" if res.maps.fit.cancelled else res.maps.status
            res.reason = "; ".join(filter(None, [res.maps.status_reason, *res.maps.notices]))
        except Exception as exc:  # noqa: BLE001 - one nucleus' failure must not stop the others
            res.status, res.reason = "failed", one_line_error(exc)
        yield k, len(ids), res
    return NucleiMaps(results, lab, px, source, input_kind=input, preprocessing=prep)


def _is_path(x) -> bool:
    return isinstance(x, (str, os.PathLike))


def infer_nuclei(
    image,
    labels,
    *,
    pixel_size_nm: float | None = None,
    input: str = "intensity",
    settings: InferenceSettings | None = None,
    margin_px: int | None = None,
    cancel: threading.Event | None = None,
    progress: Callable | None = None,
    check_memory: bool = True,
    name: str | None = None,
) -> NucleiMaps:
    """Rate maps of every labelled nucleus of an image, one fit per nucleus.

    Parameters
    ----------
    image : path or (H, W) array
        As for :func:`infer_rates`.
    labels : path, (H, W) array or "auto"
        Label image (0 = background, one positive label per nucleus; a TIFF file or an array, e.g.
        a napari labels layer's data), or "auto" to label every nucleus by automatic segmentation
        (:func:`napari_mollifier.io.label_nuclei`).
    pixel_size_nm, input, settings, check_memory
        As for :func:`infer_rates`; each nucleus is one fit with these settings.
    margin_px : int, optional
        Pixels around each nucleus' bounding box in its crop (default :func:`crop_margin_px`).
    cancel : threading.Event, optional
        Stops the running fit after its current step (its maps kept, status "cancelled") and
        starts no further nucleus (status "not run").
    progress : callable, optional
        ``progress(label, event)`` for each progress event of each nucleus' fit.
    name : str, optional
        How an array is named in messages (default "image").

    Returns
    -------
    NucleiMaps
        Per nucleus its crop, centroid, area, status and maps; :meth:`NucleiMaps.assembled` puts a
        map of every nucleus on the image grid, :meth:`NucleiMaps.table` gives the table rows.

    Raises
    ------
    InputError
        The image or the label image cannot be used (one line naming it and the fix). A nucleus
        that cannot be fitted does not raise: its status is "failed" with the reason.
    """
    gen = iter_nuclei(
        image,
        labels,
        pixel_size_nm=pixel_size_nm,
        input=input,
        settings=settings,
        margin_px=margin_px,
        cancel=cancel,
        progress=progress,
        check_memory=check_memory,
        name=name,
    )
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def _origin_of_crop(result: NucleiMaps, box) -> tuple[float, float]:
    """``origin_nm`` of a nucleus' crop: its pixel (0, 0)'s corner in the whole image's coordinates
    (those of a rendered table, else pixel centres at ``i x pixel size``)."""
    px = result.pixel_size_nm
    render = result.preprocessing.get("render") or {}
    base = render.get("origin_nm") or (-0.5 * px, -0.5 * px)
    return (float(base[0]) + box[0].start * px, float(base[1]) + box[1].start * px)


def write_nuclei_table(rows: list[dict], path, *, first: dict | None = None) -> Path:
    """A nuclei table as CSV (:data:`NUCLEUS_COLUMNS`, after the columns of ``first``), atomically."""
    from ..io import write_csv

    columns = [*(first or {}), *NUCLEUS_COLUMNS]
    return write_csv((dict(first or {}, **r) for r in rows), path, columns, ignore_extra=True)


def write_nuclei_maps(
    result: NucleiMaps, out_dir, stem: str | None = None, *, extra: dict | None = None
) -> dict:
    """Write the maps of every nucleus (docs/interfaces.md, "Several nuclei"):

    - ``S_nucleus<L>_gamma_me.tif`` ... and ``S_nucleus<L>.json`` per nucleus with label L that was
      fitted: the single-nucleus outputs (:func:`write_rate_maps`) on its crop, placed in the
      image's coordinates (``origin_nm``) and with the crop in the record's ``"nucleus"``;
    - ``S_gamma_me.tif``, ``S_gamma_ac.tif``, ``S_lambda.tif``, ``S_phi.tif`` (and the sd maps):
      every nucleus' map on the image grid, NaN elsewhere; ``S_mask.tif``: the labels of the
      analysed pixels (uint16, 0 elsewhere);
    - ``S_nuclei.csv``: one row per nucleus (:data:`NUCLEUS_COLUMNS`);
    - ``S.json`` last: status ("ok" when every nucleus is ok), the table, the labels' source and
      ``extra`` (the batch's resume key).

    Returns name -> path (``"json"``: S.json, ``"nuclei"``: the table).
    """
    from .. import __version__
    from ..io import write_json, write_tiff
    from ._infer import write_rate_maps

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or Path(result.source).stem
    (out / f"{stem}.json").unlink(missing_ok=True)  # S.json marks a complete set: it goes last
    px = result.pixel_size_nm
    meta = {"pixel_size_nm": px, "source": result.source, "nuclei": len(result.nuclei)}
    render = result.preprocessing.get("render")
    if render:
        meta["origin_nm"] = render["origin_nm"]
    paths: dict = {}
    for n in result.nuclei:
        if n.maps is None:
            continue
        crop = {"label": n.label, "crop_px": [n.box[0].start, n.box[0].stop, n.box[1].start, n.box[1].stop]}
        own = write_rate_maps(
            n.maps,
            out,
            f"{stem}_nucleus{n.label}",
            extra={"nucleus": crop},
            origin_nm=_origin_of_crop(result, n.box),
        )
        paths[f"nucleus{n.label}"] = own["json"]
    keys = ["gamma_me", "gamma_ac", "lambda", "phi_hat"]
    if any(n.maps is not None and n.maps.gamma_me_sd is not None for n in result.nuclei):
        keys += ["gamma_me_sd", "gamma_ac_sd", "lambda_sd"]
    for key in keys:
        name = "phi" if key == "phi_hat" else key
        paths[name] = write_tiff(
            out / f"{stem}_{name}.tif", result.assembled(key), px, metadata=dict(meta, map=name)
        )
    analysed = result.analysed()
    labels = np.where(analysed, result.labels, 0).astype(
        np.uint16 if result.labels.max() < 2**16 else np.uint32
    )
    paths["mask"] = write_tiff(out / f"{stem}_mask.tif", labels, px, metadata=meta)
    rows = result.table()
    paths["nuclei"] = write_nuclei_table(rows, out / f"{stem}_nuclei.csv")
    summary = {}
    for key, label in (("gamma_me", "gamma_me"), ("gamma_ac", "gamma_ac"), ("lambda", "lambda")):
        v = result.assembled(key)[analysed]
        summary[label] = {"mean": float(np.mean(v))} if v.size else {}
    summary["analysed_pixels"] = int(analysed.sum())
    record = {
        "status": result.status,
        "status_reason": "; ".join(
            f"nucleus {n.label}: {n.status}" + (f" ({n.reason})" if n.reason else "")
            for n in result.nuclei
            if n.status != "ok"
        ),
        "input": result.source,
        "input_kind": result.input_kind,
        "pixel_size_nm": px,
        "preprocessing": result.preprocessing,
        "nuclei": rows,
        "summary": summary,
        "settings": next((n.maps.fit.settings for n in result.nuclei if n.maps is not None), None),
        "versions": {"napari-mollifier": __version__},
    }
    fitted = next((n.maps.fit for n in result.nuclei if n.maps is not None), None)
    record["uncertainty"] = {"method": (fitted.uncertainty or {}).get("method")} if fitted else None
    record.update(extra or {})
    paths["json"] = write_json(out / f"{stem}.json", record)
    return paths
