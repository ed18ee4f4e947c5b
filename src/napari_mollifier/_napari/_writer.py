"""npe2 writer: an image layer (a rate map) to a float32 OME-TIFF with its pixel size, settings and
display (Qt-free)."""

from __future__ import annotations

import os

import numpy as np

from ..io import write_tiff
from ._layers import map_key

__all__ = ["write_rate_map", "write_rate_map_layers", "pixel_size_from_meta"]

_TO_NM = {
    "nm": 1.0,
    "nanometer": 1.0,
    "um": 1e3,
    "µm": 1e3,
    "micrometer": 1e3,
    "micron": 1e3,
    "mm": 1e6,
    "millimeter": 1e6,
    "m": 1e9,
    "meter": 1e9,
}


def pixel_size_from_meta(meta: dict) -> float | None:
    """Pixel size in nm from a layer's ``scale`` and ``units`` (a scale in pixel units counts as nm,
    this plugin's convention, except napari's default scale 1: unknown, None)."""
    scale = meta.get("scale")
    if scale is None or len(scale) < 1:
        return None
    px = float(scale[-1])
    units = meta.get("units")
    if units:
        unit = str(units[-1]).strip().lower().replace("\xb5", "µ")
        factor = _TO_NM.get(unit)
        if factor:
            px *= factor
        elif unit in ("pixel", "px", "") and px == 1.0:
            return None  # napari's default: no physical pixel size known
    return px if px > 0 else None


def write_rate_map(path: str, data, meta: dict) -> list[str]:
    """npe2 single-layer writer: ``data`` as float32 OME-TIFF (:func:`~napari_mollifier.io.write_tiff`);
    the pixel size from the layer's scale, and as JSON in the OME-XML the layer's ``metadata`` (fit
    settings, units, ...), which map it is (``map``) and its display (``display``: colour map
    name and contrast limits), so that the plugin's reader restores the layer whatever the file's
    name."""
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise ValueError(f"{path}: only 2-D image layers can be written as rate maps, got shape {arr.shape}")
    if not path.lower().endswith((".tif", ".tiff")):
        path = path + ".tif"
    md = dict(meta.get("metadata") or {})
    name = str(meta.get("name", ""))
    md.setdefault("layer_name", name)
    if not md.get("map") and map_key(name):
        md["map"] = map_key(name)
    display = _display(meta)
    if display:
        md["display"] = display
    out = write_tiff(path, arr.astype(np.float32), pixel_size_from_meta(meta), metadata=md)
    return [os.fspath(out)]


def _display(meta: dict) -> dict:
    """The colour map's name and the contrast limits of a layer's state (what is known of them)."""
    out = {}
    cmap = meta.get("colormap")
    name = cmap.get("name") if isinstance(cmap, dict) else getattr(cmap, "name", cmap)
    if isinstance(name, str) and name:
        out["colormap"] = name
    limits = meta.get("contrast_limits")
    if limits is not None and len(limits) == 2:
        out["contrast_limits"] = [float(limits[0]), float(limits[1])]
    return out


def write_rate_map_layers(path: str, layer_data: list) -> list[str]:
    """npe2 multi-layer writer (2 or more image layers, e.g. the four maps of a fit selected
    together): each layer as :func:`write_rate_map` writes it, to ``P_<layer name>.tif`` where
    ``P`` is ``path`` without its ``.tif`` / ``.tiff`` ending. napari offers this writer first for
    such a selection (a single image layer gets napari's own writer first; pick
    :func:`write_rate_map`'s file type)."""
    from ..io import result_stem

    ext = next((e for e in (".tiff", ".tif") if path.lower().endswith(e)), "")
    base = path[: len(path) - len(ext)]
    written = []
    for data, meta, _ in layer_data:
        written += write_rate_map(f"{base}_{result_stem(str(meta.get('name') or 'layer'))}.tif", data, meta)
    return written
