"""Readers: TIFF / OME-TIFF images with their pixel size, and localisation tables.

Every problem with an input raises :class:`InputError`, one line naming the file and the fix.
"""

from __future__ import annotations

import csv
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
    "read_localisations",
    "render_localisations",
    "render_table",
    "is_table",
    "RenderedTable",
    "TABLE_SUFFIXES",
    "DEFAULT_RENDER_PIXEL_NM",
    "RENDER_MARGIN_NM",
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


#: File name endings taken as localisation tables (text with a header row, x and y in nm;
#: ThunderSTORM's "XLS" export is tab-separated text).
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".xls")
#: Pixel size (nm) at which a localisation table is rendered unless another is given. The model's
#: lengths are in ell0 = 10 nm and the default settings assume ~10 nm pixels; choose about half the
#: localisation precision to the precision itself (10 nm for ThunderSTORM's typical 15-20 nm),
#: coarser only when there are fewer than ~1 localisation per pixel inside heterochromatin.
DEFAULT_RENDER_PIXEL_NM = 10.0
#: Margin (nm) around the localisations' bounding box in a rendering: room for the nucleus edge
#: and the background the segmentation and the fit's crop need.
RENDER_MARGIN_NM = 500.0


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
    path: str | os.PathLike, *, allow_nan: bool = False, allow_constant: bool = False
) -> ImageData:
    """Read a single-plane grayscale TIFF / OME-TIFF and its pixel size.

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
    data = np.squeeze(data)
    if data.ndim == 3 and data.shape[-1] in (3, 4) and ("S" in axes or data.dtype == np.uint8):
        raise InputError(
            f"{p}: RGB(A) image of shape {data.shape}; export a single grayscale channel "
            "(the chromatin stain) as a 2-D TIFF"
        )
    if data.ndim != 2:
        raise InputError(
            f"{p}: expected one 2-D image, got shape {data.shape} (axes {axes or '?'}); "
            "save the one plane/channel to analyse (e.g. a maximum projection) as a 2-D TIFF"
        )
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
    if min(data.shape) < 32:
        raise InputError(
            f"{p}: image of {data.shape[0]}x{data.shape[1]} pixels is too small; at least "
            "32x32 pixels are needed (several chromatin domains across)"
        )
    if data.size > MAX_PIXELS:
        raise InputError(
            f"{p}: image of {data.shape[0]}x{data.shape[1]} pixels is too large (limit "
            f"{MAX_PIXELS} pixels); crop it to the nucleus first"
        )
    if not allow_constant and float(np.nanmax(data)) == float(np.nanmin(data)):
        raise InputError(
            f"{p}: the image is constant ({np.nanmax(data):g}); check the export (channel, "
            "contrast) and give an image of the stained nucleus"
        )
    if pixel_size is not None:
        meta = {"pixel_size_source": source}
    else:
        meta = {"pixel_size_problem": source} if source else {}
    if info:
        try:
            meta["info"] = json.loads(info)
        except ValueError:
            meta["info"] = str(info)
    return ImageData(data=data, pixel_size_nm=pixel_size, path=str(p), metadata=meta)


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
    meta: dict = {"axes": axes}
    if pixel_size is not None:
        meta["pixel_size_source"] = source
    elif source:
        meta["pixel_size_problem"] = source
    if info:
        try:
            meta["info"] = json.loads(info)
        except ValueError:
            meta["info"] = str(info)
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


_X_NAMES = ("x [nm]", "x_nm", "x (nm)", "x", "xnm", "position_x", "x_position")
_Y_NAMES = ("y [nm]", "y_nm", "y (nm)", "y", "ynm", "position_y", "y_position")


def _find_column(header: list[str], names, path, axis) -> int:
    low = [h.strip().strip('"').lower() for h in header]
    for name in names:
        if name in low:
            return low.index(name)
    for i, h in enumerate(low):  # e.g. 'x [µm]' is a unit we must not take as nm
        if re.fullmatch(rf"{axis}\s*[\[(]\s*(\S+)\s*[\])]", h):
            unit = re.fullmatch(rf"{axis}\s*[\[(]\s*(\S+)\s*[\])]", h).group(1)
            raise InputError(f"{path}: column '{header[i]}' is in {unit}, not nm; convert the table to nm")
    raise InputError(
        f"{path}: no {axis} column (looked for {', '.join(repr(n) for n in names[:3])}); "
        f"the header is {header[:8]}; export x and y in nm, e.g. ThunderSTORM's 'x [nm]', 'y [nm]'"
    )


def read_localisations(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """x and y (nm) of a localisation table (CSV / TSV / TXT with a header row)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found; check the path")
    try:
        text = p.read_text(encoding="utf-8-sig", errors="strict")
    except UnicodeDecodeError:
        raise InputError(
            f"{p}: not a text table; export the localisations as CSV with a header row"
        ) from None
    # Keep each kept line's number in the file, for error messages.
    numbered = [
        (n, ln)
        for n, ln in enumerate(text.splitlines(), start=1)
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    lines = [ln for _, ln in numbered]
    if len(lines) < 2:
        raise InputError(f"{p}: the table has no data rows; export the localisations with a header row")
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t ")
        delim = dialect.delimiter
    except csv.Error:
        delim = ","
    rows = list(csv.reader(lines, delimiter=delim, skipinitialspace=True))
    header = rows[0]
    ix = _find_column(header, _X_NAMES, p, "x")
    iy = _find_column(header, _Y_NAMES, p, "y")
    xs, ys = [], []
    for (n, _), row in zip(numbered[1:], rows[1:]):
        try:
            xs.append(float(row[ix]))
            ys.append(float(row[iy]))
        except (ValueError, IndexError):
            raise InputError(
                f"{p}: line {n} has no numeric x/y ({row[:4]}); fix or remove that row"
            ) from None
    x, y = np.asarray(xs), np.asarray(ys)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputError(f"{p}: NaN/Inf coordinates; remove those rows")
    if len(x) < 100:
        raise InputError(f"{p}: only {len(x)} localisations; at least 100 are needed to render an image")
    return x, y


def render_localisations(
    x_nm: np.ndarray,
    y_nm: np.ndarray,
    pixel_size_nm: float = 10.0,
    *,
    shape: tuple[int, int] | None = None,
    origin_nm: tuple[float, float] = (0.0, 0.0),
    name: str = "localisations",
) -> np.ndarray:
    """Histogram localisations into a density image (counts per pixel) at ``pixel_size_nm``.

    Pixel (i, j) covers y in [origin_y + i p, origin_y + (i + 1) p) and likewise x; by default the
    image spans the localisations. ``name`` (the table's file) starts error messages.
    """
    if not (
        isinstance(pixel_size_nm, (int, float, np.floating, np.integer))
        and math.isfinite(pixel_size_nm)
        and pixel_size_nm > 0
    ):
        raise InputError(
            f"{name}: pixel size must be positive (a number of nm), got {pixel_size_nm!r}; "
            "choose a render pixel size such as 10 nm"
        )
    oy, ox = origin_nm
    if shape is None:
        shape = (
            int(math.ceil((y_nm.max() - oy) / pixel_size_nm)) + 1,
            int(math.ceil((x_nm.max() - ox) / pixel_size_nm)) + 1,
        )
    if shape[0] * shape[1] > MAX_PIXELS:
        raise InputError(
            f"{name}: rendering at {pixel_size_nm} nm gives {shape[0]}x{shape[1]} pixels (limit "
            f"{MAX_PIXELS}); use a larger pixel size or crop the table"
        )
    iy = np.floor((y_nm - oy) / pixel_size_nm).astype(int)
    ix = np.floor((x_nm - ox) / pixel_size_nm).astype(int)
    ok = (iy >= 0) & (iy < shape[0]) & (ix >= 0) & (ix < shape[1])
    img = np.zeros(shape, dtype=np.float64)
    np.add.at(img, (iy[ok], ix[ok]), 1.0)
    return img


def is_table(path) -> bool:
    """Whether ``path`` names a localisation table (by its ending, :data:`TABLE_SUFFIXES`)."""
    return isinstance(path, (str, os.PathLike)) and Path(path).suffix.lower() in TABLE_SUFFIXES


@dataclass
class RenderedTable:
    """A localisation table rendered to counts per pixel over its own extent.

    Pixel (i, j) covers y in [origin_y + i p, origin_y + (i + 1) p) and likewise x, so its centre
    lies at ``origin_nm + (i + 1/2) p`` in the table's coordinates (nm).
    """

    data: np.ndarray
    pixel_size_nm: float
    origin_nm: tuple[float, float]
    n_localisations: int
    path: str
    margin_nm: float = RENDER_MARGIN_NM

    def record(self) -> dict:
        """How the image was made (saved with results as ``preprocessing["render"]``)."""
        return {
            "table": self.path,
            "n_localisations": self.n_localisations,
            "pixel_size_nm": self.pixel_size_nm,
            "origin_nm": [float(v) for v in self.origin_nm],
            "shape": [int(n) for n in self.data.shape],
            "margin_nm": self.margin_nm,
            "image": f"localisations per {self.pixel_size_nm:g} nm pixel over the table's bounding box "
            f"plus {self.margin_nm:g} nm",
        }


def render_table(
    path: str | os.PathLike,
    pixel_size_nm: float = DEFAULT_RENDER_PIXEL_NM,
    *,
    margin_nm: float = RENDER_MARGIN_NM,
) -> RenderedTable:
    """Read a localisation table and render it over the localisations' bounding box plus
    ``margin_nm`` (not from (0, 0): a cell at x = 36 µm gives an image of the cell's size).

    The origin is a multiple of the pixel size, so renderings of tables in one coordinate frame at
    one pixel size share a pixel grid.
    """
    p = Path(path)
    x, y = read_localisations(p)
    px = check_pixel_size(pixel_size_nm, name=str(p), source="render pixel size")
    margin = max(0.0, float(margin_nm))
    oy = math.floor((float(y.min()) - margin) / px) * px
    ox = math.floor((float(x.min()) - margin) / px) * px
    shape = (
        int(math.floor((float(y.max()) + margin - oy) / px)) + 1,
        int(math.floor((float(x.max()) + margin - ox) / px)) + 1,
    )
    img = render_localisations(x, y, px, shape=shape, origin_nm=(oy, ox), name=str(p))
    return RenderedTable(img, px, (oy, ox), int(len(x)), str(p), margin)
