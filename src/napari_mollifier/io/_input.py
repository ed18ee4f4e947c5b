"""One loader of analysis input: an image (file or array), its pixel size and the nucleus mask.

Shared by :func:`napari_mollifier.inverse.infer_rates`, the scaling-law cross-check
(:func:`napari_mollifier.scaling.scaling_crosscheck`) and the napari fit widget, so that all three
read, check and record their input the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._preprocess import (
    SEGMENTATION_FIX,
    SEGMENTATION_METHOD,
    check_mask,
    localisation_coverage_notice,
    segment_nucleus,
)
from ._readers import InputError, check_pixel_size, read_image
from ._tables import DEFAULT_RENDER_PIXEL_NM, ReadOptions, is_table, render_table

__all__ = ["LoadedInput", "load_image", "load_input"]


@dataclass(frozen=True)
class LoadedInput:
    """A checked image with its pixel size and nucleus mask.

    ``preprocessing`` records where the pixel size came from (``"pixel_size_source"``) and how the
    mask was obtained (``"mask"``); for a localisation table, how it was rendered (``"render"``:
    pixel size, origin in nm, shape) and one-line ``"notices"`` (a mask that leaves out many
    localisations); callers add their own steps (normalisation, crop) to it.
    """

    data: np.ndarray
    mask: np.ndarray
    pixel_size_nm: float
    source: str
    preprocessing: dict = field(default_factory=dict)


def load_input(
    image,
    *,
    pixel_size_nm: float | None = None,
    mask=None,
    name: str | None = None,
    mask_label: str | None = None,
    segmentation_fix: str = SEGMENTATION_FIX,
    read: ReadOptions | None = None,
) -> LoadedInput:
    """Read or check an image, resolve its pixel size and get the nucleus mask.

    Parameters
    ----------
    image : path or (H, W) array
        TIFF / OME-TIFF file (pixel size read from its metadata; a stack needs its plane chosen in
        ``read``), a localisation table (``.csv``, ``.tsv``, ``.txt``, ``.xls``, Picasso ``.hdf5``:
        rendered to localisations per pixel over its bounding box plus a margin,
        :func:`render_table`) or an array (float64 copy).
    pixel_size_nm : float, optional
        Overrides the file's pixel size; required for arrays and files without one; for a table,
        the pixel size of its rendering (default :data:`DEFAULT_RENDER_PIXEL_NM`). Checked
        against :data:`PIXEL_SIZE_RANGE_NM`.
    mask : path or (H, W) array, optional
        Nucleus mask (nonzero inside): a TIFF file or an array; segmented when None
        (:func:`segment_nucleus`: half-way between background and euchromatin, largest region).
    name : str, optional
        How an array is named in messages and in ``source`` (default ``"image"``; a file is
        named by its path).
    mask_label : str, optional
        How a given mask array is recorded (``preprocessing["mask"]``, default ``"given"``) and
        named in messages (``f"{source} {mask_label}"``; default: the source).
    segmentation_fix : str
        What a too small automatic mask's message suggests (default: the command line's options;
        the widget names its own controls).
    read : ReadOptions, optional
        What the file does not say itself: the unit of a table's x, y and the camera pixel size,
        the plane of a stack. Recorded as ``preprocessing["plane"]`` (axes and indices) and
        ``preprocessing["read"]`` (a table's unit choices).

    Returns
    -------
    LoadedInput

    Raises
    ------
    InputError
        One line naming the input and the fix.
    """
    read = read or ReadOptions()
    if is_table(image):
        data, px, source, prep = _read_table(image, pixel_size_nm, read)
    elif isinstance(image, (str, os.PathLike)):
        data, px, source, prep = _read_file(image, pixel_size_nm, read)
    else:
        data, px, source, prep = _check_array(image, pixel_size_nm, name or "image")
    m = _nucleus_mask(mask, data, source, prep, mask_label, segmentation_fix)
    if "render" in prep and mask is None:
        notice = localisation_coverage_notice(data, m, name=source)
        prep["localisations_in_mask"] = float(data[m].sum() / max(data.sum(), 1.0))
        if notice:
            prep.setdefault("notices", []).append(notice)
    return LoadedInput(data=data, mask=m, pixel_size_nm=px, source=source, preprocessing=prep)


def load_image(
    image, *, pixel_size_nm: float | None = None, name: str | None = None, read: ReadOptions | None = None
):
    """Read or check an image and resolve its pixel size, as :func:`load_input` does, without a
    nucleus mask (several nuclei bring their own). Returns ``(data, pixel_size_nm, source, record)``."""
    read = read or ReadOptions()
    if is_table(image):
        return _read_table(image, pixel_size_nm, read)
    if isinstance(image, (str, os.PathLike)):
        return _read_file(image, pixel_size_nm, read)
    return _check_array(image, pixel_size_nm, name or "image")


def _read_file(path, pixel_size_nm, read: ReadOptions) -> tuple[np.ndarray, float, str, dict]:
    data = read_image(path, plane=dict(read.plane))
    # `is None`, not falsiness: a given 0 nm must be rejected, not replaced by the file's value.
    px = pixel_size_nm if pixel_size_nm is not None else data.pixel_size_nm
    if px is None:
        why = data.metadata.get("pixel_size_problem")
        raise InputError(
            f"{data.path}: no pixel size in the file's metadata{f' ({why})' if why else ''}; "
            "give it with --pixel-size NM (pixel_size_nm=...)"
        )
    src = {
        "pixel_size_source": "argument"
        if pixel_size_nm is not None
        else data.metadata.get("pixel_size_source", "")
    }
    check_pixel_size(px, name=data.path, source=src["pixel_size_source"])
    if "plane" in data.metadata:
        src["plane"] = data.metadata["plane"]
    return data.data, float(px), data.path, src


def _read_table(path, pixel_size_nm, read: ReadOptions) -> tuple[np.ndarray, float, str, dict]:
    """A localisation table rendered over its own extent (counts per pixel: intensity input)."""
    px = DEFAULT_RENDER_PIXEL_NM if pixel_size_nm is None else pixel_size_nm
    rendered = render_table(path, px, xy_unit=read.xy_unit, camera_pixel_nm=read.camera_pixel_nm)
    prep = {
        "pixel_size_source": "argument (render pixel size)"
        if pixel_size_nm is not None
        else f"default render pixel size of tables ({DEFAULT_RENDER_PIXEL_NM:g} nm)",
        "render": rendered.record(),
    }
    if read.record():
        prep["read"] = {k: v for k, v in read.record().items() if k != "plane"}
    return rendered.data, rendered.pixel_size_nm, rendered.path, prep


def _check_array(image, pixel_size_nm, name: str) -> tuple[np.ndarray, float, str, dict]:
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim != 2:
        raise InputError(f"{name}: expected a 2-D image, got shape {arr.shape}")
    if pixel_size_nm is None:
        raise InputError(f"{name}: an array carries no pixel size; pass pixel_size_nm")
    if not np.isfinite(arr).all():
        raise InputError(f"{name}: NaN/Inf pixels; replace them before analysis")
    check_pixel_size(pixel_size_nm, name=name, source="argument")
    return arr, float(pixel_size_nm), name, {"pixel_size_source": "argument"}


def _nucleus_mask(
    mask, data: np.ndarray, source: str, prep: dict, mask_label: str | None, fix: str = SEGMENTATION_FIX
) -> np.ndarray:
    """The nucleus mask: segmented when None, else read (TIFF) or taken and checked; how it was
    obtained goes to ``prep["mask"]``."""
    if mask is None:
        prep["mask"] = SEGMENTATION_METHOD
        return segment_nucleus(data, name=source, fix=fix)
    if isinstance(mask, (str, os.PathLike)):
        mdata = (
            read_image(mask, allow_constant=True).data
            if Path(mask).suffix.lower() in (".tif", ".tiff")
            else None
        )
        if mdata is None:
            raise InputError(f"{mask}: masks must be TIFF files")
        prep["mask"] = str(mask)
        return check_mask(mdata, data.shape, name=prep["mask"])
    prep["mask"] = mask_label or "given"
    where = source if mask_label is None else f"{source} {mask_label}"
    return check_mask(np.asarray(mask), data.shape, name=where)
