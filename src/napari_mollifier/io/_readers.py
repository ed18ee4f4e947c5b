"""Readers: TIFF / OME-TIFF images with their pixel size (localisation tables: :mod:`._tables`).

Every problem with an input raises :class:`InputError`, one line naming the file and the fix.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "InputError",
    "ImageData",
    "read_image",
    "read_tiff_as_is",
    "recorded_input_kind",
    "resolve_input_kind",
    "select_plane",
    "check_pixel_size",
    "MAX_PIXELS",
    "PIXEL_SIZE_RANGE_NM",
]

#: Largest image accepted (pixels); beyond it a 2-core CPU fit would take hours: crop first.
MAX_PIXELS = 4096 * 4096
#: Pixel sizes (nm) accepted for analysis. Chromatin domains are ~50-300 nm across and the model's
#: length unit is 10 nm: below 1 nm or above 1 µm a value is almost surely in the wrong unit
#: (0.01 meant as µm, or 10 µm from a resolution tag in inches).
PIXEL_SIZE_RANGE_NM = (1.0, 1000.0)
_UNIT_TO_NM = {
    "nm": 1.0,
    "nanometer": 1.0,
    "um": 1e3,
    "µm": 1e3,
    "\\u00B5m": 1e3,
    "micron": 1e3,
    "micrometer": 1e3,
    "mm": 1e6,
    "millimeter": 1e6,
    "cm": 1e7,
    "centimeter": 1e7,
    "m": 1e9,
    "meter": 1e9,
    "inch": 2.54e7,
}


class InputError(ValueError):
    """A bad input file or argument; the message is one line naming the file and the fix."""


@dataclass
class ImageData:
    data: np.ndarray
    pixel_size_nm: float | None
    path: str
    metadata: dict = field(default_factory=dict)


def _unit_nm(unit: str | None) -> float | None:
    if unit is None:
        return None
    u = str(unit).strip().lower().replace("\xb5", "µ")
    return _UNIT_TO_NM.get(u) or _UNIT_TO_NM.get(u.replace("µ", "u"))


def check_pixel_size(pixel_size_nm, *, name: str = "image", source: str = "") -> float:
    """A pixel size (nm) that can be analysed: finite, positive and within :data:`PIXEL_SIZE_RANGE_NM`.

    Raises
    ------
    InputError
        One line naming ``name``, where the value came from (``source``) and the fix, e.g. a size
        given in µm where nm are expected.
    """
    lo, hi = PIXEL_SIZE_RANGE_NM
    where = f" (from {source})" if source and source != "argument" else ""
    try:
        px = float(pixel_size_nm)
    except (TypeError, ValueError):
        raise InputError(
            f"{name}: pixel size {pixel_size_nm!r} is not a number; give it in nm with --pixel-size NM"
        ) from None
    if not math.isfinite(px) or px <= 0:
        raise InputError(
            f"{name}: pixel size {px:g} nm{where} must be a positive number; give it in nm "
            "with --pixel-size NM"
        )
    if px < lo:
        raise InputError(
            f"{name}: pixel size {px:g} nm{where} is below {lo:g} nm, probably a value in µm; "
            f"give it in nm with --pixel-size NM (e.g. {px * 1e3:g} for {px:g} µm)"
        )
    if px > hi:
        raise InputError(
            f"{name}: pixel size {px:g} nm{where} is above {hi:g} nm, too coarse for chromatin "
            "domains or a wrong unit; check the file's calibration or give --pixel-size NM in nm"
        )
    return px


def _pixel_size_from_tiff(tif) -> tuple[float | None, str]:
    """Pixel size in nm from OME, ImageJ or plain TIFF resolution tags, with its source.

    Without a usable size the source says why when the file has a calibration in a unit that is
    not a length ("unit 'pixel' is not a length"); it is "" when the file has none.
    """
    if tif.is_ome and tif.ome_metadata:
        m = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', tif.ome_metadata)
        if m:
            u = re.search(r'PhysicalSizeXUnit="([^"]+)"', tif.ome_metadata)
            scale = _unit_nm(u.group(1) if u else "µm")
            if scale:
                return float(m.group(1)) * scale, "OME PhysicalSizeX"
            return None, f"OME unit {u.group(1)!r} is not a length"
    page = tif.pages[0]
    tags = page.tags
    if "XResolution" in tags:
        num, den = tags["XResolution"].value
        if num and den and num / den not in (1.0, 72.0):
            pixels_per_unit = num / den
            unit = None
            if tif.is_imagej and tif.imagej_metadata:
                unit = tif.imagej_metadata.get("unit")
            if unit is None and "ResolutionUnit" in tags:
                unit = {2: "inch", 3: "cm"}.get(int(tags["ResolutionUnit"].value))
            scale = _unit_nm(unit)
            if scale:
                return scale / pixels_per_unit, f"TIFF resolution ({unit})"
            if unit is not None:
                return None, f"unit {unit!r} is not a length"
    return None, ""


def read_image(
    path: str | os.PathLike,
    *,
    allow_nan: bool = False,
    allow_constant: bool = False,
    plane=None,
    keep_stack: bool = False,
) -> ImageData:
    """Read a grayscale TIFF / OME-TIFF plane and its pixel size.

    A stack (channels, planes, time points: the OME axes string of tifffile's ``series.axes``)
    gives the plane chosen by ``plane`` (:func:`select_plane`); without a choice it is refused
    with the axes and their sizes. ``keep_stack=True`` returns a stack whole (singleton axes
    dropped; its axes in ``metadata["axes"]``), for a viewer that picks the plane itself.

    ``allow_nan=True`` accepts NaN pixels (rate maps are NaN outside the analysed region);
    ``allow_constant=True`` accepts constant images (a mask may be all 0 or all 1: the mask
    checks then say what is wrong with it). The JSON record that :func:`write_tiff` stores (in the
    OME ``Image`` ``Description``; files of earlier versions: the ImageJ ``Info`` property) comes
    back as ``metadata["info"]``.

    Raises
    ------
    InputError
        Missing or unreadable file, RGB, stacks, NaN/Inf, constant images, images too small or
        too large: one line naming the file and what to do.
    """
    import tifffile

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found; check the path (and the --pattern of a batch)")
    # tifffile logs its complaints about damaged files and carries on (a tag whose value lies past
    # the end of a truncated file is dropped): collect them instead of printing them; a value
    # offset past the end makes our one-line InputError.
    tiff_log = logging.getLogger("tifffile")
    collect = _Collect()
    saved = tiff_log.level, tiff_log.propagate
    tiff_log.setLevel(logging.WARNING)
    tiff_log.propagate = False
    tiff_log.addHandler(collect)
    try:
        with tifffile.TiffFile(p) as tif:
            _check_before_reading(tif, p)
            data = tif.asarray()
            pixel_size, source = _pixel_size_from_tiff(tif)
            axes = tif.series[0].axes if tif.series else ""
            info = _saved_metadata(tif)
        damaged = [m for m in collect.messages if re.search(r"offset|truncat", m, re.IGNORECASE)]
        if damaged:
            raise InputError(
                f"{p}: not a readable TIFF (truncated or damaged: {' '.join(damaged[0].split())[:80]}); "
                "re-export or copy it again"
            )
    except InputError:
        raise
    except MemoryError:
        raise InputError(f"{p}: not enough memory to read it; crop the image to the nucleus first") from None
    except Exception as exc:  # tifffile raises many types for truncated / non-TIFF files
        raise InputError(
            f"{p}: not a readable TIFF ({type(exc).__name__}: {' '.join(str(exc).split())[:80]}); "
            "re-export it as TIFF or OME-TIFF"
        ) from None
    finally:
        tiff_log.removeHandler(collect)
        tiff_log.setLevel(saved[0])
        tiff_log.propagate = saved[1]
    data = np.asarray(data)
    if len(axes) != data.ndim:
        axes = "Q" * (data.ndim - 2) + "YX"
    keep = [i for i, n in enumerate(data.shape) if n != 1 or axes[i] in "YX"]
    data, axes = data.reshape([data.shape[i] for i in keep]), "".join(axes[i] for i in keep)
    if data.ndim == 3 and axes[-1] != "S" and data.shape[-1] in (3, 4) and data.dtype == np.uint8:
        axes = axes[:-1] + "S"  # 8-bit RGB without a samples axis in its metadata
    chosen, stack_axes = {}, axes
    if not (keep_stack and data.ndim > 2):
        data, chosen = select_plane(data, axes, plane, name=str(p))
        axes = "YX"
    h, w = data.shape[axes.index("Y")], data.shape[axes.index("X")]
    if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
        raise InputError(f"{p}: unsupported pixel type {data.dtype}; use integer or float gray values")
    data = data.astype(np.float64)
    if not np.isfinite(data).all() and not (
        allow_nan and not np.isinf(data).any() and np.isfinite(data).any()
    ):
        n = int((~np.isfinite(data)).sum())
        raise InputError(
            f"{p}: {n} NaN/Inf pixels; replace them (e.g. by 0 outside the nucleus) before analysis"
        )
    if min(h, w) < 32:
        raise InputError(
            f"{p}: image of {h}x{w} pixels is too small; at least "
            "32x32 pixels are needed (several chromatin domains across)"
        )
    if h * w > MAX_PIXELS:
        raise InputError(
            f"{p}: image of {h}x{w} pixels is too large (limit "
            f"{MAX_PIXELS} pixels); crop it to the nucleus first"
        )
    if not allow_constant and float(np.nanmax(data)) == float(np.nanmin(data)):
        raise InputError(
            f"{p}: the image is constant ({np.nanmax(data):g}); check the export (channel, "
            "contrast) and give an image of the stained nucleus"
        )
    meta = _file_record(pixel_size, source, info)
    if data.ndim > 2:
        meta["axes"] = axes
    if chosen:
        meta["plane"] = {"axes": stack_axes, **chosen}
    return ImageData(data=data, pixel_size_nm=pixel_size, path=str(p), metadata=meta)


def _file_record(pixel_size, source: str, info: str | None) -> dict:
    """What a file says of itself: where its pixel size came from (or why there is none) and the
    JSON record :func:`write_tiff` stored (as text when it is not JSON)."""
    meta = {"pixel_size_source": source} if pixel_size is not None else {}
    if pixel_size is None and source:
        meta["pixel_size_problem"] = source
    if info:
        try:
            meta["info"] = json.loads(info)
        except ValueError:
            meta["info"] = str(info)
    return meta


def recorded_input_kind(image) -> str | None:
    """The input kind a TIFF written by this package records (``"fraction"`` for a phi image,
    ``"intensity"``; the ``input`` of its JSON record), or None (no such record, not a TIFF path,
    unreadable). Lets a phi image be fitted as phi without the user saying so."""
    import tifffile

    if not isinstance(image, (str, os.PathLike)) or Path(image).suffix.lower() not in (".tif", ".tiff"):
        return None
    try:
        with tifffile.TiffFile(image) as tif:
            text = _saved_metadata(tif)
        kind = json.loads(text).get("input") if text else None
    except Exception:  # noqa: BLE001 - any unreadable record: no recorded kind; the reader says why later
        return None
    return kind if kind in ("fraction", "intensity") else None


def resolve_input_kind(image, input: str | None) -> str:
    """``input`` when given, else the kind the file records (:func:`recorded_input_kind`), else
    ``"intensity"`` (what a microscope gives)."""
    return input or recorded_input_kind(image) or "intensity"


def _saved_metadata(tif) -> str | None:
    """The JSON that :func:`write_tiff` stores with an image: the OME ``Image`` ``Description`` (or
    the ImageJ ``Info`` property of files written by earlier versions); None when there is none."""
    if tif.is_ome and tif.ome_metadata:
        import xml.etree.ElementTree as ET

        try:
            root = ET.fromstring(tif.ome_metadata)
        except ET.ParseError:
            return None
        for el in root.iter():
            if el.tag.rsplit("}", 1)[-1] == "Description" and (el.text or "").lstrip().startswith("{"):
                return el.text
        return None
    if tif.is_imagej:
        return (tif.imagej_metadata or {}).get("Info")
    return None


def read_tiff_as_is(path: str | os.PathLike) -> ImageData:
    """Any readable TIFF's pixels and pixel size, without the checks of :func:`read_image` (RGB,
    stacks, constant or tiny images come back as they are; the pixel size is None when the file
    has none). For viewers, which show what a file holds; the analysis reads with
    :func:`read_image`.

    Raises
    ------
    InputError
        The file is missing or not a readable TIFF: one line naming it and the fix.
    """
    import tifffile

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found; check the path")
    try:
        with tifffile.TiffFile(p) as tif:
            if not tif.series or not len(tif.pages):
                raise InputError(f"{p}: not a readable TIFF (it holds no image); re-export it as TIFF")
            data = np.squeeze(tif.asarray())
            pixel_size, source = _pixel_size_from_tiff(tif)
            axes = tif.series[0].axes
            info = _saved_metadata(tif)
    except InputError:
        raise
    except Exception as exc:  # tifffile raises many types for truncated / non-TIFF files
        raise InputError(
            f"{p}: not a readable TIFF ({type(exc).__name__}: {' '.join(str(exc).split())[:80]}); "
            "re-export it as TIFF or OME-TIFF"
        ) from None
    meta = {"axes": axes, **_file_record(pixel_size, source, info)}
    return ImageData(data=data, pixel_size_nm=pixel_size, path=str(p), metadata=meta)


class _Collect(logging.Handler):
    """Keeps the messages of log records (tifffile's warnings while a file is read)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _check_before_reading(tif, p: Path) -> None:
    """Refuse huge and truncated files from their header, before their pixels are loaded (a
    40000^2 image must fail with a message, not fill the memory)."""
    if not tif.series or not len(tif.pages):
        raise InputError(f"{p}: not a readable TIFF (it holds no image); re-export it as TIFF or OME-TIFF")
    shape = tuple(int(n) for n in tif.series[0].shape if int(n) != 1)
    n_pixels = math.prod(shape[:2]) if len(shape) >= 2 else math.prod(shape)
    if len(shape) == 2 and n_pixels > MAX_PIXELS:
        raise InputError(
            f"{p}: image of {shape[0]}x{shape[1]} pixels is too large (limit {MAX_PIXELS} "
            "pixels); crop it to the nucleus first"
        )
    size = p.stat().st_size
    page = tif.pages[0]
    offsets = getattr(page, "dataoffsets", ()) or ()
    counts = getattr(page, "databytecounts", ()) or ()
    ends = [int(o) + int(c) for o, c in zip(offsets, counts) if int(c) > 0]
    if ends and max(ends) > size:
        raise InputError(
            f"{p}: not a readable TIFF (truncated: {size} bytes where the image data needs "
            f"{max(ends)}); re-export or copy it again"
        )


#: What each OME axis letter (tifffile's ``series.axes``) is called, and the choice that picks it.
_AXIS_WORDS = {"C": "channel", "Z": "plane", "T": "time point", "S": "colour", "I": "plane", "Q": "plane"}
_AXIS_OPTION = {
    "C": "--channel",
    "Z": "--plane",
    "T": "--time",
    "S": "--channel",
    "I": "--plane",
    "Q": "--plane",
}


def select_plane(data: np.ndarray, axes: str, plane=None, *, name: str = "image") -> tuple[np.ndarray, dict]:
    """The 2-D plane of a stack chosen by ``plane`` (axis letter -> index), and the choice made.

    ``axes`` is the OME axes string of ``data`` (``TZCYX``, ``CYX``, ``YXS`` for RGB, ``IYX`` or
    ``QYX`` for a plain multi-page TIFF). ``plane`` maps ``C`` (channel), ``Z`` (plane) and ``T``
    (time point) to an index; ``C`` picks the colour of an RGB image (axis ``S``) when there is no
    ``C`` axis, ``Z`` the page of a stack of unnamed pages (``I`` / ``Q``) when there is no ``Z``.
    Choices for axes the image does not have are ignored (one choice fits a folder of 2-D images).

    Raises
    ------
    InputError
        An axis left unchosen (the message lists the axes and their sizes and names the option for
        each: ``--channel N``, ``--plane N``, ``--time N``), an index out of range, RGB without a
        channel chosen.
    """
    picks = {str(k).upper(): int(v) for k, v in dict(plane or {}).items()}
    if "C" in picks and "C" not in axes and "S" in axes:
        picks["S"] = picks.pop("C")
    if "Z" in picks and "Z" not in axes:
        unnamed = [a for a in axes if a in "IQ"]
        if len(unnamed) == 1:
            picks[unnamed[0]] = picks.pop("Z")
    extra = [(i, a) for i, a in enumerate(axes) if a not in "YX"]
    sizes = ", ".join(f"{a}={n}" for a, n in zip(axes, data.shape))
    missing = [a for _, a in extra if a not in picks]
    if missing == ["S"] and len(extra) == 1:
        raise InputError(
            f"{name}: RGB(A) image ({sizes}); RGB is not an image of a chromatin stain: export the "
            "chromatin channel as a grayscale 2-D TIFF, or take one colour with --channel 0, 1 or 2"
        )
    if missing:
        how = " ".join(f"{_AXIS_OPTION[a]} N (0-{data.shape[axes.index(a)] - 1})" for a in missing)
        words = " and ".join(_AXIS_WORDS[a] for a in missing)
        raise InputError(
            f"{name}: a stack with axes {axes} ({sizes}); choose the {words} to analyse with {how}"
        )
    chosen = {}
    index = []
    for i, a in enumerate(axes):
        if a in "YX":
            index.append(slice(None))
            continue
        k, n = picks[a], data.shape[i]
        if not 0 <= k < n:
            raise InputError(
                f"{name}: {_AXIS_WORDS[a]} {k} does not exist: axis {a} has {n} (0-{n - 1}); "
                f"choose one with {_AXIS_OPTION[a]} N"
            )
        chosen[a] = k
        index.append(k)
    return np.asarray(data[tuple(index)]), chosen
