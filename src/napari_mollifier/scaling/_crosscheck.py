"""The end-to-end cross-check of one image (``mollifier scaling``): read and preprocess it, estimate
the scaling-law rates per domain, and optionally compare them with rate maps."""

from __future__ import annotations

import os
from pathlib import Path

from ..io import load_input
from ..physics import ChromatinModel
from ._compare import compare_with_maps, read_map_pair
from ._domains import DEFAULT_MIN_AREA_PX, DEFAULT_PERCENTILE
from ._estimate import DEFAULT_NEIGHBOURS, domain_scaling_estimate
from ._table import DomainTable


def scaling_crosscheck(
    image,
    *,
    pixel_size_nm: float | None = None,
    mask=None,
    input: str = "intensity",
    maps=None,
    percentile: float = DEFAULT_PERCENTILE,
    neighbours: int = DEFAULT_NEIGHBOURS,
    min_area_px: int = DEFAULT_MIN_AREA_PX,
    smoothing_nm: float | None = None,
    model: ChromatinModel = ChromatinModel(),
    read=None,
) -> DomainTable:
    """The scaling-law estimate of one image, read and preprocessed as :func:`infer_rates` does,
    optionally beside the per-domain means of rate maps (``mollifier scaling``).

    Parameters
    ----------
    image : path or (H, W) array
        TIFF / OME-TIFF file (pixel size from its metadata) or an array.
    pixel_size_nm : float, optional
        Overrides the file's pixel size; required for arrays and files without one.
    mask : path or (H, W) array, optional
        Nucleus mask (nonzero inside); segmented automatically (Otsu) when absent.
    read : ReadOptions, optional
        A stack's plane, a table's units (:func:`napari_mollifier.io.load_input`).
    input : {"intensity", "fraction"}
        Raw intensity (normalised inside the nucleus to phi) or phi itself.
    maps : folder, RateMaps or (gamma_me, gamma_ac), optional
        Rate maps to average per domain: a folder of ``mollifier infer`` outputs
        (``S_gamma_me.tif``, ``S_gamma_ac.tif`` with S the image's stem), an object with
        ``gamma_me`` / ``gamma_ac`` arrays, or the two arrays.
    percentile, neighbours, min_area_px
        As in :func:`domain_scaling_estimate`.
    smoothing_nm : float, optional
        Gaussian sigma before thresholding; default 0 for fraction input and 20 nm for intensity
        input (photon noise would otherwise cut domains into fragments).
    model : ChromatinModel

    Raises
    ------
    InputError
        One line naming the input and the fix.
    """
    from ..config import InferenceSettings
    from ..inverse import to_fraction

    inp = load_input(image, pixel_size_nm=pixel_size_nm, mask=mask, read=read)
    data, m, px, source, prep = inp.data, inp.mask, inp.pixel_size_nm, inp.source, inp.preprocessing
    phi, _ = to_fraction(
        data, m, input=input, pixel_size_nm=px, settings=InferenceSettings(), name=source, prep=prep
    )
    if smoothing_nm is None:
        smoothing_nm = 20.0 if input == "intensity" else 0.0
    table = domain_scaling_estimate(
        phi,
        m,
        px,
        percentile=percentile,
        neighbours=neighbours,
        min_area_px=min_area_px,
        smoothing_px=float(smoothing_nm) / px,
        model=model,
        name=source,
    )
    table.meta.update(source=source, input=input, smoothing_nm=float(smoothing_nm), mask=prep.get("mask", ""))
    if maps is None:
        return table
    if isinstance(maps, (str, os.PathLike)):
        stem = Path(source).stem if isinstance(image, (str, os.PathLike)) else "image"
        me, ac = read_map_pair(maps, stem, shape=data.shape, pixel_size_nm=px)
        table.meta["maps"] = str(maps)
    elif hasattr(maps, "gamma_me"):
        me, ac = maps.gamma_me, maps.gamma_ac
        table.meta["maps"] = "given"
    else:
        me, ac = maps
        table.meta["maps"] = "given"
    return compare_with_maps(table, me, ac)
