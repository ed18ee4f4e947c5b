"""npe2 readers: TIFF / OME-TIFF images with their pixel size, and localisation tables (Qt-free).

A reader hook returns None only for files that are not of its kind. The TIFF reader opens every
readable TIFF and says in a notification what a file lacks for a fit (no pixel size, RGB, a
stack); only an unreadable file raises the one-line :class:`~napari_mollifier.io.InputError` of
the io module, naming the file and the fix. The localisation reader raises it for any bad table.
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
    read_tiff_as_is,
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
    """Layer data of one or more TIFF / OME-TIFF files: an image (a labels layer for masks) with
    ``scale`` = pixel size, ``units`` nm, and the file's settings in ``metadata``.

    Any readable TIFF opens, as napari's own reader would open it: a file without a pixel size
    (a plain TIFF, or one saved by napari's built-in writer) opens at napari's default scale, and
    RGB images open as RGB layers and stacks whole (their OME axes in ``metadata["axes"]``,
    a slider per extra axis; the fit widget fits the plane shown); each time a notification says
    what the file lacks for a fit and what to do. Only an unreadable file raises (one-line
    :class:`InputError`). A map written by this plugin gets back its colour map and display range
    from the metadata stored with it, whatever the file's name."""
    return [_tiff_layer(p) for p in _paths(path)]


def notify(message: str) -> None:
    """Show a one-line message in napari's notification area (a warning)."""
    from napari.utils.notifications import show_warning

    show_warning(message)


def _tiff_layer(path: str) -> tuple:
    try:
        img = read_image(path, allow_nan=True, allow_constant=True, keep_stack=True)
        problem = ""
    except InputError as exc:
        try:
            img = read_tiff_as_is(path)
        except InputError:
            raise exc from None  # not readable at all: the analysis reader's message
        problem = str(exc)
    p = Path(img.path)
    px = img.pixel_size_nm
    info = img.metadata.get("info")
    meta = dict(info) if isinstance(info, dict) else ({"info": info} if info else {})
    meta.update(source=str(p), pixel_size_nm=px, pixel_size_source=img.metadata.get("pixel_size_source", ""))
    data = img.data
    said = [f"{problem} (opened as it is)"] if problem else []
    if not px:
        why = img.metadata.get("pixel_size_problem")
        said.append(
            f"{'' if said else f'{p}: '}no pixel size in the file's metadata{f' ({why})' if why else ''}, "
            "e.g. a TIFF saved by napari's built-in writer; opened at 1 pixel per unit: type the pixel "
            "size (nm) into 'Infer rate maps', or set it (Fiji: Image > Properties) and save again"
        )
    if said:
        notify("; ".join(said))
    axes = img.metadata.get("axes") or ""
    if px and data.ndim > 2 and len(axes) == data.ndim:  # a stack or an RGB image: Y, X get the size
        return _stack_layer(data, axes, dict(name=p.stem, metadata=meta, **image_layer_kwargs(px)), px)
    if data.ndim > 2 and axes:
        meta["axes"] = axes
    kw = dict(name=p.stem, metadata=meta)
    rgb = (
        data.ndim == 3
        and data.shape[-1] in (3, 4)
        and ("S" in img.metadata.get("axes", "S") or data.dtype == np.uint8)
    )
    if px:
        n_lead = data.ndim - (3 if rgb else 2)
        lead = (1.0,) * max(n_lead, 0)
        geom = image_layer_kwargs(px)
        kw.update(scale=lead + geom["scale"], units=("pixel",) * len(lead) + geom["units"])
    if rgb:
        kw["rgb"] = True
        return data, kw, "image"
    origin = meta.get("origin_nm")
    if px and data.ndim == 2 and isinstance(origin, (list, tuple)) and len(origin) == 2:
        # Maps of a rendered localisation table: placed where the table's density layer lies.
        kw["translate"] = _table_translate(origin, px)
    finite = data[np.isfinite(data)]
    if (
        (p.stem.lower().endswith("_mask") or meta.get("map") == "mask")
        and finite.size
        and np.array_equal(finite, np.round(finite))
        and finite.min() >= 0
        and finite.max() < 2**16
    ):
        return data.astype(np.uint16 if finite.max() > 255 else np.uint8), kw, "labels"
    kw.update(_map_display(meta, p.stem, data))
    return data.astype(np.float32), kw, "image"


def _map_display(meta: dict, stem: str, data: np.ndarray) -> dict:
    """Colour map and display range of a map: those stored by the plugin's writer
    (``meta["display"]``), else its map's style (the map named in ``meta["map"]``, else by the
    file name's suffix); nothing for other images."""
    key = map_key("_" + str(meta["map"])) if meta.get("map") else None
    key = key or map_key(stem)
    out = dict(MAP_STYLE[key]) if key else {}
    display = meta.get("display") if isinstance(meta.get("display"), dict) else {}
    cmap = display.get("colormap")
    if isinstance(cmap, str) and _known_colormap(cmap):
        out["colormap"] = cmap
    limits = display.get("contrast_limits")
    if (
        isinstance(limits, (list, tuple))
        and len(limits) == 2
        and all(isinstance(v, (int, float)) and np.isfinite(v) for v in limits)
        and limits[1] > limits[0]
    ):
        out["contrast_limits"] = (float(limits[0]), float(limits[1]))
    elif key or out:
        out["contrast_limits"] = contrast_limits(data)
    return out


def _known_colormap(name: str) -> bool:
    from napari.utils.colormaps import AVAILABLE_COLORMAPS

    return name in AVAILABLE_COLORMAPS


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
