"""npe2 readers: TIFF / OME-TIFF images with their pixel size, and localisation tables (Qt-free).

A reader hook returns None only for files that are not of its kind; for its own kind of file
every problem surfaces as the one-line :class:`~napari_mollifier.io.InputError` of the io module
(RGB, stacks, no pixel size, ...), naming the file and the fix.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from ..io import (
    DEFAULT_RENDER_PIXEL_NM,
    TABLE_SUFFIXES,
    InputError,
    MissingUnitError,
    read_image,
    render_table,
)
from ._layers import MAP_STYLE, contrast_limits, image_layer_kwargs, map_key

__all__ = [
    "get_tiff_reader",
    "get_localisations_reader",
    "read_tiff",
    "read_localisation_table",
    "DEFAULT_RENDER_PIXEL_NM",
    "XY_UNIT_CHOICES",
]

#: The unit choices of the render widget: what the file states, or a unit for tables stating none.
XY_UNIT_CHOICES = {"as stated in the file": None, "nm": "nm", "camera pixels": "px"}

_TIFF = (".tif", ".tiff")
_TABLES = TABLE_SUFFIXES


def _paths(path) -> list[str] | None:
    if isinstance(path, (list, tuple)):
        return [os.fspath(p) for p in path]
    if isinstance(path, (str, os.PathLike)):
        return [os.fspath(path)]
    return None


def get_tiff_reader(path):
    """npe2 reader hook: a reader for (lists of) ``.tif`` / ``.tiff`` files, else None."""
    paths = _paths(path)
    if not paths or not all(p.lower().endswith(_TIFF) for p in paths):
        return None
    return read_tiff


def read_tiff(path) -> list[tuple]:
    """Layer data of one or more TIFF / OME-TIFF files: an image (a labels layer for ``*_mask``
    files) with ``scale`` = pixel size, ``units`` nm, and the file's settings in ``metadata``.
    A stack opens whole (its OME axes in ``metadata["axes"]``, a slider per extra axis; the fit
    widget fits the plane shown); an RGB image opens as an RGB layer."""
    return [_tiff_layer(p) for p in _paths(path)]


def _tiff_layer(path: str) -> tuple:
    img = read_image(path, allow_nan=True, keep_stack=True)
    p = Path(img.path)
    if not img.pixel_size_nm:
        raise InputError(
            f"{p}: no pixel size in the file's metadata; set it (Fiji: Image > Properties, in nm or "
            "µm) and save again, or open it with napari's built-in reader and type the pixel size "
            "into 'Infer rate maps'"
        )
    info = img.metadata.get("info")
    meta = dict(info) if isinstance(info, dict) else ({"info": info} if info else {})
    meta.update(
        source=str(p),
        pixel_size_nm=img.pixel_size_nm,
        pixel_size_source=img.metadata.get("pixel_size_source", ""),
    )
    kw = dict(name=p.stem, metadata=meta, **image_layer_kwargs(img.pixel_size_nm))
    axes = img.metadata.get("axes")
    if axes:  # a stack or an RGB image: the pixel size on its Y, X axes
        return _stack_layer(img.data, axes, kw, img.pixel_size_nm)
    origin = meta.get("origin_nm")
    if isinstance(origin, (list, tuple)) and len(origin) == 2:
        # Maps of a rendered localisation table: placed where the table's density layer lies.
        kw["translate"] = _table_translate(origin, img.pixel_size_nm)
    data = img.data
    finite = data[np.isfinite(data)]
    if (
        p.stem.lower().endswith("_mask")
        and np.array_equal(finite, np.round(finite))
        and finite.min() >= 0
        and finite.max() < 2**16
    ):
        return data.astype(np.uint16 if finite.max() > 255 else np.uint8), kw, "labels"
    key = map_key(p.stem)
    if key is not None:
        kw.update(MAP_STYLE[key], contrast_limits=contrast_limits(data))
    return data.astype(np.float32), kw, "image"


def _stack_layer(data: np.ndarray, axes: str, kw: dict, px: float) -> tuple:
    """Layer data of a stack (slider axes first, then Y, X) or an RGB image (Y, X, S)."""
    kw["metadata"]["axes"] = axes
    if axes.endswith("S"):
        top = float(np.nanmax(data)) or 1.0
        return (data / top).astype(np.float32), dict(kw, rgb=True), "image"
    n = data.ndim
    kw.update(scale=(1.0,) * (n - 2) + (px, px), units=("pixel",) * (n - 2) + ("nm", "nm"))
    kw["axis_labels"] = tuple(axes)
    return data.astype(np.float32), kw, "image"


def _header(path: str) -> list[str] | None:
    try:
        with open(path, encoding="utf-8-sig", errors="strict") as fh:
            for line in fh:
                if line.strip() and not line.lstrip().startswith("#"):
                    delim = next((d for d in ",;\t" if d in line), " ")
                    return next(csv.reader([line], delimiter=delim, skipinitialspace=True))
    except (OSError, UnicodeDecodeError):
        return None
    return None


def _has_locs(path: str) -> bool:
    """Whether an HDF5 file holds Picasso's ``locs`` table (other HDF5 files are left to others)."""
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return "locs" in f
    except (OSError, ImportError):
        return False


def _is_rapidstorm(path: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.readline().lstrip().startswith("# <localizations")
    except OSError:
        return False


def _names_axis(header: list[str], axis: str) -> bool:
    low = [h.strip().strip('"').lower() for h in header]
    return any(
        h == axis
        or h.startswith((f"{axis} ", f"{axis}_", f"{axis}[", f"{axis}(", f"position_{axis}"))
        or h == f"{axis}nm"
        for h in low
    )


def get_localisations_reader(path):
    """npe2 reader hook: a reader for localisation tables (Picasso HDF5, rapidSTORM text, or a
    header naming x and y columns), else None."""
    paths = _paths(path)
    if not paths or len(paths) != 1 or not paths[0].lower().endswith(_TABLES):
        return None
    if paths[0].lower().endswith((".hdf5", ".h5")):
        return read_localisation_table if _has_locs(paths[0]) else None
    if _is_rapidstorm(paths[0]):
        return read_localisation_table
    header = _header(paths[0])
    if header is None or not (_names_axis(header, "x") and _names_axis(header, "y")):
        return None
    return read_localisation_table


def _table_translate(origin_nm, pixel_size_nm: float) -> tuple[float, float]:
    """napari ``translate`` (nm) of a rendering whose pixel (0, 0) starts at ``origin_nm``: pixel
    centres at origin + (i + 1/2) x pixel size."""
    half = 0.5 * float(pixel_size_nm)
    return (float(origin_nm[0]) + half, float(origin_nm[1]) + half)


def read_localisation_table(
    path, pixel_size_nm: float = DEFAULT_RENDER_PIXEL_NM, *, xy_unit=None, camera_pixel_nm=None
) -> list[tuple]:
    """A localisation table (x, y in nm; ThunderSTORM-style headers) rendered to a density image
    (localisations per pixel) at ``pixel_size_nm`` over the localisations' bounding box plus a margin
    (:func:`napari_mollifier.io.render_table`, as ``mollifier infer`` renders it). The layer's
    ``translate`` puts it at the table's coordinates: pixel centres at origin + (i + 1/2) x pixel
    size, in nm, so it overlays other data of the same frame. ``xy_unit`` and ``camera_pixel_nm``
    as for :func:`napari_mollifier.io.read_table`; a table whose x, y state no unit (or camera
    pixels without their size) fails with the fix in the Render localisations widget."""
    p = Path(_paths(path)[0])
    try:
        r = render_table(p, pixel_size_nm, xy_unit=xy_unit, camera_pixel_nm=camera_pixel_nm)
    except MissingUnitError as exc:
        what = (
            "the x, y columns state no unit"
            if exc.needs == "unit"
            else "the coordinates are in camera pixels and the file gives no camera pixel size"
        )
        raise InputError(
            f"{p}: {what}; render it with Plugins > Mollifier rate maps > Render localisations, "
            "choosing 'xy unit' (nm, or camera pixels with 'camera pixel nm')"
        ) from None
    meta = {
        "source": str(p),
        "pixel_size_nm": float(r.pixel_size_nm),
        "n_localisations": r.n_localisations,
        "origin_nm": [float(v) for v in r.origin_nm],
        "rendered": f"localisations per {r.pixel_size_nm:g} nm pixel",
        "render": r.record(),
    }
    kw = dict(name=f"{p.stem} density", metadata=meta, colormap="gray", **image_layer_kwargs(r.pixel_size_nm))
    kw["translate"] = _table_translate(r.origin_nm, r.pixel_size_nm)
    return [(r.data.astype(np.float32), kw, "image")]
