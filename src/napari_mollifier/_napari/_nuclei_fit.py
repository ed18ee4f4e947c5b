"""The compute side of fitting several nuclei in the 'Infer rate maps' widget, without Qt: the
generator its thread worker runs (one fit per labelled nucleus, the maps assembled on the image
grid as each nucleus is done)."""

from __future__ import annotations

import threading
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np

from ..config import InferenceSettings
from ..inverse import NucleiMaps, iter_nuclei
from ._layers import FIT_MAP_KEYS, SD_MAP_KEYS, contrast_limits

__all__ = ["NucleiUpdate", "nuclei_updates"]


@dataclass
class NucleiUpdate:
    """What the worker yields after each nucleus: its table row and the maps of every nucleus done
    so far on the image grid (NaN elsewhere), ready to show."""

    done: int
    total: int
    row: dict
    maps: dict  # FIT_MAP_KEYS (and SD_MAP_KEYS where fitted) -> float32 (H, W)
    limits: dict  # the same keys -> (lo, hi) display range


def nuclei_updates(
    data,
    labels,
    *,
    pixel_size_nm: float,
    input_kind: str,
    settings: InferenceSettings,
    name: str = "image",
    cancel: threading.Event | None = None,
) -> Generator[NucleiUpdate, None, NucleiMaps]:
    """Fit every labelled nucleus of ``data`` in turn (:func:`napari_mollifier.inverse.iter_nuclei`),
    yield a :class:`NucleiUpdate` after each and return the :class:`NucleiMaps`. Setting ``cancel``
    stops the running fit after its current step (its maps kept) and starts no further nucleus."""
    from ._fit import warm_up

    warm_up()  # as for one fit: not two importers at once
    shape = np.asarray(data).shape
    full = {k: np.full(shape, np.nan, np.float32) for k in FIT_MAP_KEYS + SD_MAP_KEYS}
    attrs = {"lambda": "lam", "lambda_sd": "lam_sd"}
    gen = iter_nuclei(
        np.asarray(data, dtype=np.float64),
        np.asarray(labels),
        pixel_size_nm=pixel_size_nm,
        input=input_kind,
        settings=settings,
        cancel=cancel,
        name=name,
    )
    while True:
        try:
            k, n, res = next(gen)
        except StopIteration as stop:
            return stop.value
        if res.maps is not None:
            own = res.maps.mask & (np.asarray(labels)[res.box] == res.label)
            for key, arr in full.items():
                value = getattr(res.maps, attrs.get(key, key))
                if value is not None:
                    arr[res.box][own] = np.asarray(value, np.float32)[own]
        maps = {k2: v.copy() for k2, v in full.items()}
        yield NucleiUpdate(
            k + 1,
            n,
            res.row(pixel_size_nm),
            maps,
            {k2: contrast_limits(v) for k2, v in maps.items()},
        )
