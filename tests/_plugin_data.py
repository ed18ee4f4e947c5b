"""Small inputs shared by the plugin tests (tiny simulated nuclei, written as TIFFs)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

PIXEL_NM = 10.0


@functools.lru_cache(maxsize=4)
def tiny_nucleus(size: int = 80, seed: int = 1):
    """(phi, mask, gamma_me) of a small simulated nucleus (a fraction of a second to make)."""
    from napari_mollifier import simulate_nucleus

    sim = simulate_nucleus(size, mask="circle", seed=seed, t_end=3e3, pixel_size_nm=PIXEL_NM)
    return sim.phi.astype(np.float32), sim.mask.astype(np.uint8), sim.gamma_me.astype(np.float32)


def write_nucleus(folder: Path, stem: str = "cell", size: int = 80, seed: int = 1) -> tuple[Path, Path]:
    """``stem_phi.tif`` and ``stem_mask.tif`` (with pixel size) in ``folder``."""
    from napari_mollifier.io import write_tiff

    phi, mask, _ = tiny_nucleus(size, seed)
    folder.mkdir(parents=True, exist_ok=True)
    return (
        write_tiff(folder / f"{stem}_phi.tif", phi, PIXEL_NM, metadata={"simulated": True}),
        write_tiff(folder / f"{stem}_mask.tif", mask, PIXEL_NM),
    )
