"""Writers: float32 OME-TIFFs with pixel size and settings in their metadata, written atomically."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from ._atomic import atomic_write_bytes, atomic_write_text

__all__ = ["write_tiff", "write_json", "write_csv"]


def write_tiff(
    path: str | os.PathLike,
    data: np.ndarray,
    pixel_size_nm: float | None = None,
    *,
    metadata: dict | None = None,
) -> Path:
    """A 2-D image as OME-TIFF (pixel size in nm as the OME ``PhysicalSizeX/Y``), written atomically.

    The OME-XML carries the physical pixel size and its unit (``PhysicalSizeXUnit="nm"``), which
    Fiji (Bio-Formats), QuPath, bioio and napari read; the TIFF resolution tags hold the same size
    in pixels per cm for readers that ignore OME-XML. ``metadata`` (JSON-serialisable: the fit's
    settings, the map's name, units and display range) is stored as JSON in the OME ``Image``
    ``Description``, so that the settings travel with the map (:func:`read_image` returns it as
    ``metadata["info"]``).
    """
    import tifffile

    arr = np.ascontiguousarray(data)
    ome: dict = {"axes": "YX" if arr.ndim == 2 else None}
    kwargs: dict = {}
    if pixel_size_nm:
        px = float(pixel_size_nm)
        ome.update(PhysicalSizeX=px, PhysicalSizeXUnit="nm", PhysicalSizeY=px, PhysicalSizeYUnit="nm")
        per_cm = 1e7 / px
        kwargs.update(resolution=(per_cm, per_cm), resolutionunit="CENTIMETER")
    if metadata:
        ome["Description"] = json.dumps(metadata, default=_jsonable)
    if ome["axes"] is None:
        del ome["axes"]
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, ome=True, photometric="minisblack", metadata=ome, **kwargs)
    return atomic_write_bytes(path, buf.getvalue())


def write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=1, default=_jsonable) + "\n")


def _jsonable(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def write_csv(rows, path: str | os.PathLike, columns, *, ignore_extra: bool = False) -> Path:
    """Rows (dicts) as a CSV table with ``columns`` in that order, written atomically; a key
    outside ``columns`` is an error unless ``ignore_extra``."""
    import csv

    buf = io.StringIO()
    w = csv.DictWriter(
        buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore" if ignore_extra else "raise"
    )
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return atomic_write_text(path, buf.getvalue())
