"""Write a simulated nucleus to files (the sample images and ``mollifier simulate``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..io import atomic_write_text, write_tiff
from ..physics import ChromatinModel
from ._nucleus import simulate_nucleus
from ._render import THUNDERSTORM_HEADER, render_intensity, render_localisation_table

__all__ = ["write_simulation"]


def write_simulation(
    out: str | os.PathLike,
    *,
    name: str = "nucleus",
    size: int = 256,
    rates: str = "gradient",
    mask: str = "ellipse",
    seed: int = 0,
    pixel_size_nm: float = 10.0,
    localisations: bool = False,
    beta: float = 0.0,
    photons: float = 50.0,
    euchromatin_level: float = 0.3,
) -> dict:
    """Simulate and write NAME_intensity.tif (uint16 counts), NAME_phi.tif (float32), NAME_mask.tif,
    NAME_gamma_me_true.tif, NAME_gamma_ac_true.tif, NAME.json and optionally NAME_localisations.csv.
    All TIFFs carry the pixel size. The intensity image has ``photons`` mean counts in pure
    heterochromatin and ``euchromatin_level`` of that in euchromatin; its metadata and NAME.json
    record these as ``intensity_levels`` (the calibration ``mollifier infer --intensity-levels`` takes)."""
    out = Path(out)
    sim = simulate_nucleus(
        size, rates=rates, mask=mask, seed=seed, pixel_size_nm=pixel_size_nm, model=ChromatinModel(beta=beta)
    )
    px = sim.pixel_size_nm
    meta = {"simulated": True, "rates": rates, "seed": seed, "residual_ratio": sim.residual_ratio}
    intensity = render_intensity(
        sim.phi, sim.mask, px, seed=seed, photons=photons, euchromatin_level=euchromatin_level
    )
    levels = {"photons": photons, "intensity_levels": [euchromatin_level * photons, photons]}
    paths = {
        "intensity": write_tiff(
            out / f"{name}_intensity.tif",
            np.clip(intensity, 0, 65535).astype(np.uint16),
            px,
            metadata=dict(meta, **levels),
        ),
        "phi": write_tiff(out / f"{name}_phi.tif", sim.phi.astype(np.float32), px, metadata=meta),
        "mask": write_tiff(out / f"{name}_mask.tif", sim.mask.astype(np.uint8), px),
        "gamma_me": write_tiff(
            out / f"{name}_gamma_me_true.tif", sim.gamma_me.astype(np.float32), px, metadata=meta
        ),
        "gamma_ac": write_tiff(
            out / f"{name}_gamma_ac_true.tif", sim.gamma_ac.astype(np.float32), px, metadata=meta
        ),
    }
    if localisations:
        table = render_localisation_table(sim.phi, sim.mask, px, seed=seed, per_pixel=1.0)
        lines = [",".join(f'"{h}"' for h in THUNDERSTORM_HEADER)]
        lines += [
            f"{int(r[0])},{int(r[1])},{r[2]:.1f},{r[3]:.1f},{r[4]:.0f},{r[5]:.0f},{r[6]:.0f}" for r in table
        ]
        paths["localisations"] = atomic_write_text(out / f"{name}_localisations.csv", "\n".join(lines) + "\n")
    record = dict(
        meta,
        **levels,
        name=name,
        size=size,
        mask=mask,
        pixel_size_nm=px,
        model=sim.model.to_dict(),
        time_tau=sim.time,
        files={k: str(Path(v).name) for k, v in paths.items()},
    )
    paths["json"] = atomic_write_text(out / f"{name}.json", json.dumps(record, indent=1) + "\n")
    return paths
