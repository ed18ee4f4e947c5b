"""Localisation tables of single-molecule localisation microscopy, in the formats of the common
localisation programs, with their units made explicit, and their rendering to a density image.

Formats (chosen by the file's ending and its first line):

- **Picasso** ``.hdf5`` / ``.h5``: an HDF5 ``locs`` table (``x``, ``y`` in camera pixels, ``lpx``,
  ``lpy`` their precision in camera pixels, ``frame``, ``photons``, ...) and a companion ``.yaml``
  (several YAML documents) whose ``Pixelsize`` (nm per camera pixel) converts them to nm.
- **rapidSTORM** text: a first line ``# <localizations ...>`` whose ``<field>`` elements name each
  column (``Position-0-0`` x, ``Position-1-0`` y, ``Position-0-0-uncertainty``, ...) and its unit,
  then one space-separated row per localisation.
- **ThunderSTORM** CSV (or its tab-separated "XLS"): quoted headers with the unit in brackets,
  ``"x [nm]"``, ``"y [nm]"``, ``"uncertainty [nm]"`` or ``"uncertainty_xy [nm]"``, ...
- **SMLM challenge** CSV: ``frame,xnano,ynano,znano,intensity`` (nm).
- Any other delimited table with a header row: the x / y columns' unit comes from their name
  (``x [nm]``, ``x (px)``, ``x_nm``, ``xnm``); a table whose x, y carry no unit (``x``, ``y``) needs
  the unit said (``xy_unit="nm"`` or ``"px"`` with ``camera_pixel_nm``): it is never guessed.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._readers import MAX_PIXELS, InputError, check_pixel_size

__all__ = [
    "LocalisationTable",
    "ReadOptions",
    "MissingUnitError",
    "TABLE_SUFFIXES",
    "XY_UNITS",
    "DEFAULT_RENDER_PIXEL_NM",
    "RENDER_MARGIN_NM",
    "RenderedTable",
    "is_table",
    "read_localisations",
    "read_table",
    "render_localisations",
    "render_table",
]

#: File endings taken as localisation tables: delimited text (ThunderSTORM's "XLS" export is
#: tab-separated text, rapidSTORM writes .txt) and Picasso's HDF5.
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".xls", ".hdf5", ".h5")
#: Units a user may give for the x, y of a table that does not state them.
XY_UNITS = ("nm", "px")
#: Pixel size (nm) at which a localisation table is rendered unless another is given. The model's
#: lengths are in ell0 = 10 nm and the default settings assume ~10 nm pixels; choose about half the
#: localisation precision to the precision itself (10 nm for ThunderSTORM's typical 15-20 nm),
#: coarser only when there are fewer than ~1 localisation per pixel inside heterochromatin.
DEFAULT_RENDER_PIXEL_NM = 10.0
#: Margin (nm) around the localisations' bounding box in a rendering: room for the nucleus edge
#: and the background the segmentation and the fit's crop need.
RENDER_MARGIN_NM = 500.0
#: Fewest localisations rendered into an image.
MIN_LOCALISATIONS = 100
#: Localisations whose precisions differ by less than this factor are blurred with one Gaussian
#: (their class's geometric mean): each one's blur is within ~5 % of its own precision (finer
#: than a precision estimate is known; each class costs one small blur of the whole image).
PRECISION_CLASS_RATIO = 1.1
#: At most this many precision classes (a wider spread gets coarser classes).
MAX_PRECISION_CLASSES = 24

_LENGTH_NM = {
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometers": 1.0,
    "nano": 1.0,
    "um": 1e3,
    "µm": 1e3,
    "micron": 1e3,
    "micrometer": 1e3,
    "micrometers": 1e3,
    "mm": 1e6,
    "m": 1e9,
    "meter": 1e9,
}
_PIXEL_UNITS = ("px", "pix", "pixel", "pixels", "camera pixel", "camera pixels")


class MissingUnitError(InputError):
    """A table whose coordinates carry no unit (or are in camera pixels without a camera pixel
    size). ``needs`` is ``"unit"`` or ``"camera_pixel_nm"``; front ends name their own control."""

    def __init__(self, message: str, *, path: str, needs: str):
        super().__init__(message)
        self.path = path
        self.needs = needs


@dataclass(frozen=True)
class ReadOptions:
    """What an input file may not say itself, said by the user.

    Parameters
    ----------
    xy_unit : {"nm", "px"}, optional
        Unit of the x, y (and precision) columns of a table whose header states none; applies
        only to such tables (a header's own unit is a fact of the file).
    camera_pixel_nm : float, optional
        nm per camera pixel, for coordinates in camera pixels; overrides Picasso's ``Pixelsize``.
    plane : tuple of (axis, index)
        Which plane of a stack (OME axis letters: ``C`` channel, ``Z`` plane, ``T`` time point;
        ``C`` also picks a colour of an RGB image, ``Z`` the planes of a stack of unnamed pages).
    """

    xy_unit: str | None = None
    camera_pixel_nm: float | None = None
    plane: tuple = field(default_factory=tuple)

    def __post_init__(self):
        if self.xy_unit is not None and self.xy_unit not in XY_UNITS:
            raise InputError(f"xy unit must be one of {list(XY_UNITS)}, got {self.xy_unit!r}")
        plane = tuple((str(a).upper(), int(i)) for a, i in dict(self.plane).items())
        object.__setattr__(self, "plane", plane)

    @classmethod
    def of(cls, *, xy_unit=None, camera_pixel_nm=None, channel=None, plane=None, time=None) -> ReadOptions:
        """From the command line's / the API's separate choices (None: not chosen)."""
        picks = {a: v for a, v in (("C", channel), ("Z", plane), ("T", time)) if v is not None}
        return cls(xy_unit=xy_unit, camera_pixel_nm=camera_pixel_nm, plane=tuple(picks.items()))

    def record(self) -> dict:
        """The choices made (JSON): empty when none was."""
        out = {}
        if self.xy_unit is not None:
            out["xy_unit"] = self.xy_unit
        if self.camera_pixel_nm is not None:
            out["camera_pixel_nm"] = float(self.camera_pixel_nm)
        if self.plane:
            out["plane"] = dict(self.plane)
        return out


@dataclass
class LocalisationTable:
    """Localisations in nm, their precision (nm, or None when the table has none) and how the
    units were known (``units``: e.g. "column 'x [nm]'", "camera pixels x 130 nm (Pixelsize in
    locs.yaml)")."""

    x_nm: np.ndarray
    y_nm: np.ndarray
    precision_nm: np.ndarray | None
    path: str
    format: str
    units: str

    def record(self) -> dict:
        out = {"format": self.format, "units": self.units, "n_localisations": int(self.x_nm.size)}
        if self.precision_nm is not None:
            out["precision_median_nm"] = float(np.median(self.precision_nm))
        return out


# ------------------------------------------------------------------------------------------------
# Column names and their units


def _unit_scale(unit: str, path, what: str, camera_pixel_nm) -> tuple[float, str]:
    """nm per unit of ``unit`` (a length or camera pixels), and how it was known."""
    u = unit.strip().lower().replace("\xb5", "µ").replace("μ", "µ")
    if u in _LENGTH_NM:
        return _LENGTH_NM[u], f"{what} in {unit}"
    if u.replace("µ", "u") in _LENGTH_NM:
        return _LENGTH_NM[u.replace("µ", "u")], f"{what} in {unit}"
    if u in _PIXEL_UNITS:
        cam = _camera_pixel(camera_pixel_nm, path, f"{what} is in camera pixels")
        return cam, f"{what} in camera pixels x {cam:g} nm (camera pixel size given)"
    raise InputError(f"{path}: {what} is in {unit!r}, not a length; export x, y in nm or camera pixels")


def _camera_pixel(camera_pixel_nm, path, why: str) -> float:
    if camera_pixel_nm is None:
        raise MissingUnitError(
            f"{path}: {why}; give the camera pixel size in nm with --camera-pixel-nm NM "
            "(camera_pixel_nm=... in Python)",
            path=str(path),
            needs="camera_pixel_nm",
        )
    try:
        cam = float(camera_pixel_nm)
    except (TypeError, ValueError):
        cam = float("nan")
    if not (math.isfinite(cam) and 1.0 <= cam <= 10000.0):
        raise InputError(
            f"{path}: camera pixel size {camera_pixel_nm!r} nm is not a pixel size in sample space; "
            "give it in nm, e.g. 107 or 130"
        )
    return cam


_BRACKET = r"\s*[\[(]\s*([^\])]+?)\s*[\])]"


def _axis_column(name: str, axis: str) -> tuple[bool, str | None]:
    """Whether a (lower-case) column name is the ``axis`` coordinate, and its unit if it names one."""
    base = rf"(?:position[ _]?{axis}|{axis}[ _]?position|pos[ _]?{axis}|{axis})"
    m = re.fullmatch(base + _BRACKET, name)
    if m:
        return True, m.group(1)
    m = re.fullmatch(rf"{axis}[ _]?(nm|px|pix|um|µm|nano)", name)
    if m:
        return True, m.group(1)
    if re.fullmatch(base, name):
        return True, None
    return False, None


_PRECISION = r"(?:uncertainty(?:_xy)?|precision|locali[sz]ation[ _]precision|loc[ _]?precision)"


def _precision_column(name: str) -> tuple[bool, str | None]:
    m = re.fullmatch(_PRECISION + _BRACKET, name)
    if m:
        return True, m.group(1)
    m = re.fullmatch(_PRECISION + r"[ _](nm|px)", name)
    if m:
        return True, m.group(1)
    return (True, None) if re.fullmatch(_PRECISION, name) else (False, None)


# ------------------------------------------------------------------------------------------------
# Reading


def read_table(
    path, *, xy_unit: str | None = None, camera_pixel_nm: float | None = None
) -> LocalisationTable:
    """Read a localisation table of any supported format (module docstring) into nm.

    Parameters
    ----------
    path : path
    xy_unit : {"nm", "px"}, optional
        Unit of a table whose x, y columns state none (``x``, ``y``); ignored for the others.
    camera_pixel_nm : float, optional
        nm per camera pixel, for coordinates in camera pixels (required then; for Picasso it
        overrides the companion YAML's ``Pixelsize``).

    Returns
    -------
    LocalisationTable

    Raises
    ------
    MissingUnitError
        (an InputError) The unit of x, y is not stated, or camera pixels lack their size.
    InputError
        Any other problem: one line naming the file and the fix.
    """
    if xy_unit is not None and xy_unit not in XY_UNITS:
        raise InputError(f"{path}: xy unit must be one of {list(XY_UNITS)}, got {xy_unit!r}")
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found; check the path")
    if p.suffix.lower() in (".hdf5", ".h5"):
        t = _read_picasso(p, camera_pixel_nm)
    else:
        first = _first_line(p)
        if first.lstrip().startswith("# <localizations"):
            t = _read_rapidstorm(p, first, camera_pixel_nm)
        else:
            t = _read_delimited(p, xy_unit, camera_pixel_nm)
    if not (np.isfinite(t.x_nm).all() and np.isfinite(t.y_nm).all()):
        raise InputError(f"{p}: NaN/Inf coordinates; remove those rows")
    if t.x_nm.size < MIN_LOCALISATIONS:
        raise InputError(
            f"{p}: only {t.x_nm.size} localisations; at least {MIN_LOCALISATIONS} are needed to "
            "render an image"
        )
    if t.precision_nm is not None:
        t.precision_nm = _usable_precision(t.precision_nm)
    return t


def _usable_precision(prec: np.ndarray) -> np.ndarray | None:
    """Precisions with the unusable ones (NaN, Inf, <= 0: failed fits) set to the median of the
    others; None when none is usable."""
    prec = np.asarray(prec, dtype=np.float64)
    ok = np.isfinite(prec) & (prec > 0)
    if not ok.any():
        return None
    if not ok.all():
        prec = np.where(ok, prec, np.median(prec[ok]))
    return prec


def _not_text(p: Path) -> InputError:
    return InputError(f"{p}: not a text table; export the localisations as CSV with a header row")


def _first_line(p: Path) -> str:
    try:
        with open(p, encoding="utf-8-sig", errors="strict") as fh:
            for line in fh:
                if line.strip():
                    return line
    except UnicodeDecodeError:
        raise _not_text(p) from None
    raise InputError(f"{p}: the table has no data rows; export the localisations with a header row")


def _read_picasso(p: Path, camera_pixel_nm) -> LocalisationTable:
    import h5py

    try:
        with h5py.File(p, "r") as f:
            if "locs" not in f:
                raise InputError(
                    f"{p}: no 'locs' table in this HDF5 file (it holds {sorted(f.keys())[:5]}); "
                    "open the localisations that Picasso Localize or Render saved"
                )
            locs = f["locs"]
            names = locs.dtype.names or ()
            if not {"x", "y"} <= set(names):
                raise InputError(f"{p}: the 'locs' table has no x, y columns ({list(names)[:8]}); re-save it")
            x = np.asarray(locs.fields("x")[()], dtype=np.float64)
            y = np.asarray(locs.fields("y")[()], dtype=np.float64)
            lp = None
            if {"lpx", "lpy"} <= set(names):
                lpx = np.asarray(locs.fields("lpx")[()], np.float64)
                lp = 0.5 * (lpx + np.asarray(locs.fields("lpy")[()], np.float64))
    except InputError:
        raise
    except OSError as exc:
        raise InputError(
            f"{p}: not a readable HDF5 file ({' '.join(str(exc).split())[:80]}); re-save it in Picasso"
        ) from None
    yaml_path = p.with_suffix(".yaml")
    if camera_pixel_nm is not None:
        cam = _camera_pixel(camera_pixel_nm, p, "")
        units = f"camera pixels x {cam:g} nm (camera pixel size given)"
    else:
        found = _picasso_pixelsize(yaml_path)
        if found is None:
            why = "has no 'Pixelsize'" if yaml_path.is_file() else "is missing"
            raise MissingUnitError(
                f"{p}: Picasso localisations are in camera pixels and {yaml_path.name} {why}; give the "
                "camera pixel size in nm with --camera-pixel-nm NM (camera_pixel_nm=... in Python)",
                path=str(p),
                needs="camera_pixel_nm",
            )
        cam = _camera_pixel(found, p, "")
        units = f"camera pixels x {cam:g} nm (Pixelsize in {yaml_path.name})"
    return LocalisationTable(x * cam, y * cam, None if lp is None else lp * cam, str(p), "picasso", units)


def _picasso_pixelsize(yaml_path: Path) -> float | None:
    """``Pixelsize`` (nm) of Picasso's metadata: the last YAML document that has one (Picasso's own
    rule); None without the file or the key."""
    import yaml

    if not yaml_path.is_file():
        return None

    class _Loader(yaml.SafeLoader):
        """Safe loading that reads unknown tags (Python objects Picasso may dump) as None."""

    _Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    try:
        docs = list(yaml.load_all(yaml_path.read_text(encoding="utf-8", errors="replace"), Loader=_Loader))
    except yaml.YAMLError as exc:
        raise InputError(
            f"{yaml_path}: not readable YAML ({' '.join(str(exc).split())[:80]}); fix it or give "
            "the camera pixel size with --camera-pixel-nm NM"
        ) from None
    for doc in reversed(docs):
        if isinstance(doc, dict) and doc.get("Pixelsize"):
            return doc["Pixelsize"]
    return None


def _read_rapidstorm(p: Path, first: str, camera_pixel_nm) -> LocalisationTable:
    import xml.etree.ElementTree as ET

    import pandas as pd

    try:
        root = ET.fromstring(first.lstrip()[1:].strip())
    except ET.ParseError as exc:
        raise InputError(f"{p}: the rapidSTORM header is not XML ({exc}); re-export the table") from None
    fields = [(f.get("identifier", ""), f.get("unit", "")) for f in root.findall("field")]
    ids = [i for i, _ in fields]
    cols = {}
    for key, ident in (("x", "Position-0-0"), ("y", "Position-1-0")):
        if ident not in ids:
            raise InputError(
                f"{p}: the rapidSTORM header has no {ident} ({key}) field ({ids[:6]}); export it"
            )
        cols[key] = ids.index(ident)
    xunit = fields[cols["x"]][1]
    scale, units = _unit_scale(xunit, p, f"field Position-0-0 ({xunit})", camera_pixel_nm)
    unc = [ids.index(i) for i in ("Position-0-0-uncertainty", "Position-1-0-uncertainty") if i in ids]
    use = sorted({cols["x"], cols["y"], *unc})
    try:
        df = pd.read_csv(p, sep=r"\s+", header=None, skiprows=1, usecols=use, dtype=np.float64, engine="c")
    except (ValueError, pd.errors.ParserError) as exc:
        why = " ".join(str(exc).split())[:80]
        raise InputError(f"{p}: rows that are not numbers ({why}); fix or remove them") from None
    prec = None
    if unc:
        u_scale, _ = _unit_scale(fields[unc[0]][1] or fields[cols["x"]][1], p, "uncertainty", camera_pixel_nm)
        prec = np.mean([df[i].to_numpy() for i in unc], axis=0) * u_scale
    return LocalisationTable(
        df[cols["x"]].to_numpy() * scale, df[cols["y"]].to_numpy() * scale, prec, str(p), "rapidstorm", units
    )


def _header_line(p: Path) -> tuple[int, str]:
    """Index (0-based) and text of the header row: the first line neither blank nor a comment."""
    with open(p, encoding="utf-8-sig", errors="strict") as fh:
        for n, line in enumerate(fh):
            if line.strip() and not line.lstrip().startswith("#"):
                return n, line.rstrip("\r\n")
    raise InputError(f"{p}: the table has no data rows; export the localisations with a header row")


def _read_delimited(p: Path, xy_unit, camera_pixel_nm) -> LocalisationTable:
    import csv

    try:
        n_skip, line = _header_line(p)
    except UnicodeDecodeError:
        raise _not_text(p) from None
    try:
        delim = csv.Sniffer().sniff(line, delimiters=",;\t ").delimiter
    except csv.Error:
        delim = ","
    header = next(csv.reader([line], delimiter=delim, skipinitialspace=True))
    low = [h.strip().strip('"').strip().lower() for h in header]
    found = {}
    for axis in ("x", "y"):
        hits = [(i, unit) for i, h in enumerate(low) for ok, unit in [_axis_column(h, axis)] if ok]
        if not hits:
            raise InputError(
                f"{p}: no {axis} column (looked for '{axis} [nm]', '{axis}_nm', '{axis}nano', '{axis}'); "
                f"the header is {header[:8]}; export x and y in nm, e.g. ThunderSTORM's 'x [nm]', 'y [nm]'"
            )
        found[axis] = hits[0]
    (ix, xunit), (iy, _) = found["x"], found["y"]
    fmt = "csv"
    if "[" in header[ix]:
        fmt = "thunderstorm"
    elif low[ix] == "xnano":
        fmt = "smlm-challenge"
    if xunit is None:
        if xy_unit is None:
            raise MissingUnitError(
                f"{p}: the columns {header[ix]!r}, {header[iy]!r} carry no unit; say which: --xy-unit nm, "
                "or --xy-unit px with --camera-pixel-nm NM (xy_unit=..., camera_pixel_nm=... in Python)",
                path=str(p),
                needs="unit",
            )
        scale, units = _unit_scale(xy_unit, p, f"column {header[ix]!r}", camera_pixel_nm)
        units += " (unit given)"
    else:
        scale, units = _unit_scale(xunit, p, f"column {header[ix]!r}", camera_pixel_nm)
    precision = [(i, u) for i, h in enumerate(low) for ok, u in [_precision_column(h)] if ok]
    ip, punit = precision[0] if precision else (None, None)
    use = [ix, iy] + ([ip] if ip is not None else [])
    data = _numeric_columns(p, n_skip, delim, use, header)
    prec = None
    if ip is not None:
        what = f"column {header[ip]!r}"
        pscale = scale if punit is None else _unit_scale(punit, p, what, camera_pixel_nm)[0]
        prec = data[2] * pscale
    return LocalisationTable(data[0] * scale, data[1] * scale, prec, str(p), fmt, units)


def _numeric_columns(p: Path, n_skip: int, delim: str, use: list[int], header) -> list[np.ndarray]:
    """The columns ``use`` of a delimited table as float64 (pandas' C parser); a row that is not a
    number fails with its line number in the file."""
    import pandas as pd

    kw = dict(
        sep=delim if delim != " " else r"\s+",
        skiprows=n_skip,
        header=0,
        usecols=use,
        comment="#",
        skipinitialspace=True,
        encoding="utf-8-sig",
        engine="c",
        keep_default_na=False,  # "n/a" is a bad row to name, not a silent NaN
    )
    try:
        df = pd.read_csv(p, dtype=np.float64, **kw)
        return [df.iloc[:, sorted(use).index(i)].to_numpy() for i in use]
    except UnicodeDecodeError:
        raise _not_text(p) from None
    except (ValueError, pd.errors.ParserError):
        pass
    # Slow path, only to name the bad row: read as text, find the first cell that is no number.
    try:
        df = pd.read_csv(p, dtype=str, **kw)
    except pd.errors.ParserError as exc:
        why = " ".join(str(exc).split())[:80]
        raise InputError(f"{p}: not a consistent table ({why}); re-export it") from None
    cols = [df.iloc[:, sorted(use).index(i)] for i in use]
    bad = np.zeros(len(df), bool)
    for c in cols:
        bad |= pd.to_numeric(c, errors="coerce").isna().to_numpy()
    row = int(np.argmax(bad))
    line = _line_of_row(p, n_skip, row)
    raise InputError(
        f"{p}: line {line} has no numeric x/y ({[c.iloc[row] for c in cols]}); fix or remove that row"
    )


def _line_of_row(p: Path, n_skip: int, row: int) -> int:
    """1-based line number in the file of data row ``row`` (blank and comment lines skipped)."""
    seen = -1
    with open(p, encoding="utf-8-sig", errors="replace") as fh:
        for n, line in enumerate(fh, start=1):
            if n <= n_skip + 1 or not line.strip() or line.lstrip().startswith("#"):
                continue
            seen += 1
            if seen == row:
                return n
    return n_skip + 2 + row


# ------------------------------------------------------------------------------------------------
# Rendering


def render_localisations(
    x_nm: np.ndarray,
    y_nm: np.ndarray,
    pixel_size_nm: float = 10.0,
    *,
    shape: tuple[int, int] | None = None,
    origin_nm: tuple[float, float] = (0.0, 0.0),
    name: str = "localisations",
    precision_nm: np.ndarray | None = None,
) -> np.ndarray:
    """Density image of localisations (localisations per pixel) at ``pixel_size_nm``.

    Pixel (i, j) covers y in [origin_y + i p, origin_y + (i + 1) p) and likewise x; by default the
    image spans the localisations. Without ``precision_nm`` each localisation counts 1 in its
    pixel (a histogram). With it each localisation is a (discrete) Gaussian of sd its own precision
    (the usual rendering of SMLM data): localisations are grouped into classes of precision a
    factor :data:`PRECISION_CLASS_RATIO` wide, each class's histogram blurred with the class's
    geometric mean, so every localisation's blur is within ~5 % of its precision; the total
    stays the count (up to what the blur carries past the image's edge).
    ``name`` (the table's file) starts error messages.
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
    iy = np.floor((np.asarray(y_nm) - oy) / pixel_size_nm)
    ix = np.floor((np.asarray(x_nm) - ox) / pixel_size_nm)
    ok = (iy >= 0) & (iy < shape[0]) & (ix >= 0) & (ix < shape[1])
    flat = (iy[ok].astype(np.int64) * shape[1] + ix[ok].astype(np.int64)).astype(np.int64)
    n = shape[0] * shape[1]
    if precision_nm is None:
        return np.bincount(flat, minlength=n).astype(np.float64).reshape(shape)
    sigma = np.asarray(precision_nm, dtype=np.float64)[ok] / pixel_size_nm
    classes, centres = _precision_classes(sigma)
    # Gaussians compose (G_a * G_b = G_sqrt(a^2 + b^2)): from the widest class down, blur what has
    # been summed by the variance between two classes, add the next class, and blur the total by
    # the narrowest class at the end. Every blur is a small kernel: the cost is about one blur per
    # class however wide the precisions, and exact with the discrete Gaussian's semigroup.
    img = np.zeros(shape, dtype=np.float32)  # float32: half the time of each blur
    var_above = None
    for k in range(len(centres) - 1, -1, -1):
        if var_above is not None:
            img = _blur(img, var_above - centres[k] ** 2)
        sel = classes == k
        if sel.any():
            img += np.bincount(flat[sel], minlength=n).astype(np.float32).reshape(shape)
        var_above = centres[k] ** 2
    return (_blur(img, var_above) if var_above else img).astype(np.float64)


def _blur(img: np.ndarray, variance_px2: float) -> np.ndarray:
    """Separable blur by the discrete Gaussian of the given variance (pixels^2): its kernel
    exp(-t) I_n(t) has variance t on the grid exactly, even well below a pixel (a sampled Gaussian
    loses most of its width there), and two of them compose into one of the summed variance."""
    from scipy.ndimage import convolve1d
    from scipy.special import ive

    if variance_px2 <= 0:
        return img
    half = max(3, math.ceil(6 * math.sqrt(variance_px2)))
    kernel = ive(np.arange(-half, half + 1), variance_px2)
    kernel = (kernel / kernel.sum()).astype(img.dtype)
    img = convolve1d(img, kernel, axis=0, mode="constant")
    return convolve1d(img, kernel, axis=1, mode="constant")


def _precision_classes(sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class of each sigma (log-spaced classes a factor PRECISION_CLASS_RATIO wide, at most
    MAX_PRECISION_CLASSES) and each class's geometric-mean sigma."""
    if sigma.size == 0:
        return np.zeros(0, int), np.zeros(0)
    lo, hi = float(sigma.min()), float(sigma.max())
    step = math.log(PRECISION_CLASS_RATIO)
    n = max(1, min(MAX_PRECISION_CLASSES, math.ceil(math.log(hi / lo) / step) if hi > lo else 1))
    step = max(step, math.log(hi / lo) / n) if hi > lo else step
    classes = np.minimum(((np.log(sigma) - math.log(lo)) / step).astype(np.int64), n - 1)
    centres = lo * np.exp((np.arange(n) + 0.5) * step)
    if hi == lo:
        centres[:] = lo
    return classes, centres


def read_localisations(path, *, xy_unit: str | None = None, camera_pixel_nm: float | None = None):
    """x and y (nm) of a localisation table (:func:`read_table`)."""
    t = read_table(path, xy_unit=xy_unit, camera_pixel_nm=camera_pixel_nm)
    return t.x_nm, t.y_nm


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
    table: dict = field(default_factory=dict)

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
            f"plus {self.margin_nm:g} nm"
            + (
                ", each a Gaussian of sd its localisation precision"
                if "precision_median_nm" in self.table
                else " (no precision column: a histogram)"
            ),
            **self.table,
        }


def render_table(
    path: str | os.PathLike,
    pixel_size_nm: float = DEFAULT_RENDER_PIXEL_NM,
    *,
    margin_nm: float = RENDER_MARGIN_NM,
    xy_unit: str | None = None,
    camera_pixel_nm: float | None = None,
) -> RenderedTable:
    """Read a localisation table and render it over the localisations' bounding box plus
    ``margin_nm`` (not from (0, 0): a cell at x = 36 µm gives an image of the cell's size).

    The origin is a multiple of the pixel size, so renderings of tables in one coordinate frame at
    one pixel size share a pixel grid. ``xy_unit`` and ``camera_pixel_nm`` as for
    :func:`read_table`; a precision column blurs each localisation (:func:`render_localisations`).
    """
    p = Path(path)
    t = read_table(p, xy_unit=xy_unit, camera_pixel_nm=camera_pixel_nm)
    x, y = t.x_nm, t.y_nm
    px = check_pixel_size(pixel_size_nm, name=str(p), source="render pixel size")
    margin = max(0.0, float(margin_nm))
    oy = math.floor((float(y.min()) - margin) / px) * px
    ox = math.floor((float(x.min()) - margin) / px) * px
    shape = (
        int(math.floor((float(y.max()) + margin - oy) / px)) + 1,
        int(math.floor((float(x.max()) + margin - ox) / px)) + 1,
    )
    img = render_localisations(
        x, y, px, shape=shape, origin_nm=(oy, ox), name=str(p), precision_nm=t.precision_nm
    )
    return RenderedTable(img, px, (oy, ox), int(len(x)), str(p), margin, t.record())
