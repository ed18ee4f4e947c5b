"""Writers: float32 TIFFs with pixel size and settings in their metadata, written atomically."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from ._atomic import atomic_write_bytes, atomic_write_text

__all__ = ["write_tiff", "write_json"]


def write_tiff(
    path: str | os.PathLike,
    data: np.ndarray,
    pixel_size_nm: float | None = None,
    *,
    metadata: dict | None = None,
) -> Path:
    """ImageJ-compatible TIFF (pixel size in µm as resolution) written atomically.

    ``metadata`` (JSON-serialisable) is stored in the ImageJ ``Info`` property, so that the settings
    travel with the map.
    """
    import tifffile

    buf = io.BytesIO()
    kwargs = {}
    if pixel_size_nm:
        px_um = pixel_size_nm / 1000.0
        kwargs["resolution"] = (1.0 / px_um, 1.0 / px_um)
    md = {"unit": "um"} if pixel_size_nm else {}
    if metadata:
        md["Info"] = json.dumps(metadata, default=str)
    tifffile.imwrite(buf, np.ascontiguousarray(data), imagej=True, metadata=md, **kwargs)
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
