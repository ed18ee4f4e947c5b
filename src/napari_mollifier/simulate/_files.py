"""Write a simulated nucleus to files (the sample images and ``mollifier simulate``)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..io import atomic_write_text, write_tiff
from ..physics import ChromatinModel
from ._nucleus import simulate_nucleus
from ._render import (
    MODALITIES,
    THUNDERSTORM_HEADER,
    render_intensity,
    render_localisation_table,
    render_microscope,
    render_smlm,
)

__all__ = ["write_simulation", "RENDER_MODALITIES", "IMAGE_OPTIONS", "SMLM_OPTIONS"]

#: What ``modalities`` may name: the image presets and the localisation table.
RENDER_MODALITIES = (*sorted(MODALITIES), "smlm")
#: ``render_options`` keys of the image modalities (render_microscope) and of "smlm" (render_smlm).
IMAGE_OPTIONS = (
    "psf_fwhm_nm",
    "photons",
    "background",
    "gain",
    "offset",
    "read_noise",
    "render_pixel_size_nm",
)
SMLM_OPTIONS = ("emitters_per_um2", "localisations_per_emitter")


def _check_renders(modalities: Sequence[str], options: dict, pixel_size_nm: float) -> None:
    """Refuse unknown modalities and options before the (slow) simulation: one-line ValueErrors.

    Each image option is tried on a tiny blank field through the render itself, so the checks
    and the messages are the render's own.
    """
    for m in modalities:
        if m not in RENDER_MODALITIES:
            raise ValueError(f"modality must be one of {list(RENDER_MODALITIES)}, got {m!r}")
    images = [m for m in modalities if m != "smlm"]
    for key, value in options.items():
        if key not in IMAGE_OPTIONS + SMLM_OPTIONS:
            raise ValueError(f"unknown render option {key!r}")
        if value is None:
            continue
        if key in IMAGE_OPTIONS and not images:
            raise ValueError(f"{key} applies to the image modalities {sorted(MODALITIES)}; none was asked")
        if key in SMLM_OPTIONS and "smlm" not in modalities:
            raise ValueError(f"{key} applies to the 'smlm' modality, which was not asked")
    image_kw = {k: options[k] for k in IMAGE_OPTIONS if options.get(k) is not None}
    smlm_kw = {k: options[k] for k in SMLM_OPTIONS if options.get(k) is not None}
    k = math.ceil(image_kw.get("render_pixel_size_nm", pixel_size_nm) / pixel_size_nm) if images else 1
    blank = np.zeros((max(k, 2), max(k, 2)))
    for m in images:
        render_microscope(blank, blank > 0, pixel_size_nm, modality=m, **image_kw)
    if "smlm" in modalities:
        render_smlm(blank, blank > 0, pixel_size_nm, **smlm_kw)


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
    modalities: Sequence[str] = (),
    render_options: dict | None = None,
) -> dict:
    """Simulate and write NAME_intensity.tif (uint16 counts), NAME_phi.tif (float32), NAME_mask.tif,
    NAME_gamma_me_true.tif, NAME_gamma_ac_true.tif, NAME.json and optionally NAME_localisations.csv.
    All TIFFs carry the pixel size. The intensity image has ``photons`` mean counts in pure
    heterochromatin and ``euchromatin_level`` of that in euchromatin; its metadata and NAME.json
    record these as ``intensity_levels`` (the calibration ``mollifier infer --intensity-levels`` takes).

    Each of ``modalities`` (names in :data:`RENDER_MODALITIES`) adds a render of the same
    nucleus: "sted", "airyscan", "confocal" write NAME_<modality>.tif (float32 detector output,
    :func:`render_microscope`; with a render pixel larger than the simulation's also
    NAME_<modality>_mask.tif on its pixels), "smlm" writes NAME_smlm.csv (ThunderSTORM columns with
    a precision per localisation, :func:`render_smlm`). ``render_options`` override the presets
    (keys :data:`IMAGE_OPTIONS`, :data:`SMLM_OPTIONS`; None = the preset). The images carry only
    the pixel size and the modality, as a microscope's file would; the truth of each render
    (gain, offset, PSF, photons, ...) goes to NAME.json under ``renders``. Bad modalities or
    options raise ValueError before anything is simulated.
    """
    out = Path(out)
    modalities = list(dict.fromkeys(modalities))  # each once, in the order asked
    options = dict(render_options or {})
    _check_renders(modalities, options, pixel_size_nm)
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
            metadata=dict(meta, input="intensity", **levels),
        ),
        "phi": write_tiff(
            out / f"{name}_phi.tif", sim.phi.astype(np.float32), px, metadata=dict(meta, input="fraction")
        ),
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
    renders = {}
    image_kw = {k: options[k] for k in IMAGE_OPTIONS if options.get(k) is not None}
    smlm_kw = {k: options[k] for k in SMLM_OPTIONS if options.get(k) is not None}
    for m in modalities:
        if m == "smlm":
            r = render_smlm(sim.phi, sim.mask, px, euchromatin_level=euchromatin_level, seed=seed, **smlm_kw)
            lines = [",".join(f'"{h}"' for h in THUNDERSTORM_HEADER)]
            lines += [
                f"{int(t[0])},{int(t[1])},{t[2]:.2f},{t[3]:.2f},{t[4]:.0f},{t[5]:.0f},{t[6]:.2f}"
                for t in r.table
            ]
            paths["smlm"] = atomic_write_text(out / f"{name}_smlm.csv", "\n".join(lines) + "\n")
            renders[m] = dict(r.truth, files=[paths["smlm"].name])
            continue
        r = render_microscope(
            sim.phi, sim.mask, px, modality=m, euchromatin_level=euchromatin_level, seed=seed, **image_kw
        )
        rpx = r.truth["pixel_size_nm"]
        tag = {"simulated": True, "modality": m}
        paths[m] = write_tiff(out / f"{name}_{m}.tif", r.image.astype(np.float32), rpx, metadata=tag)
        files = [paths[m].name]
        if r.truth["bin_factor"] > 1:
            paths[f"{m}_mask"] = write_tiff(out / f"{name}_{m}_mask.tif", r.mask.astype(np.uint8), rpx)
            files.append(paths[f"{m}_mask"].name)
        renders[m] = dict(r.truth, files=files)
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
    if renders:
        record["renders"] = renders
    paths["json"] = atomic_write_text(out / f"{name}.json", json.dumps(record, indent=1) + "\n")
    return paths
