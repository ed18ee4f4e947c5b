"""Does an uncalibrated intensity image fix the magnitude of the rates? Fits of one image under
assumed rate magnitudes, compared by how well each explains the data and the physics.

An intensity image is ``gain x blur(phi) + offset`` with gain and offset unknown. The plateau
calibration (``calibration="plateaus"``) puts the image's two modes on the plateau levels of a
simulated steady state, and those levels move with the magnitude of the rates (the euchromatin
plateau sits at phi 0.044 / 0.060 / 0.084 for 0.5x / 1x / 2x the default rates,
``benchmarks/results/joint_calibration.md``). Here each assumed magnitude's levels calibrate the
same image and the fit runs; the table gives, per assumption, the data term (misfit over the
estimated noise variance, ~1 for a fit within the noise), the steady-state residual relative to
the reaction term, and the fitted rates against the truth. If the data and the physics fit
equally well under every assumption while the rates follow the assumption, the image does not
determine the magnitude: only the pattern.

    PYTHONPATH=src .venv/bin/python benchmarks/scale_identifiability.py
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from joint_calibration import GAIN, OFFSET, score  # the same render's detector and the same scores
from scipy import ndimage as ndi

from napari_mollifier.config import InferenceSettings
from napari_mollifier.inverse._solver import RateFit, _fit_plateaus
from napari_mollifier.io import intensity_to_fraction
from napari_mollifier.physics import ChromatinModel
from napari_mollifier.simulate import render_intensity

OUT = Path(__file__).parent / "results" / "scale_identifiability.md"
CACHE = Path(__file__).parent / ".cache"
#: Plateau modes of simulated steady states against the rate magnitude (area fraction 1/3, 10 nm
#: pixels; joint_calibration.md's notes): magnitude over the default -> (low, high) mode of phi.
LEVELS_BY_MAGNITUDE = {0.5: (0.044, 0.986), 1.0: (0.060, 0.975), 2.0: (0.084, 0.955)}


def fit_with_levels(phi_n, mask, levels, settings):
    fit = None
    for item in _fit_plateaus(
        phi_n, mask, 10.0, settings, model=ChromatinModel(), cancel=None, levels=levels
    ):
        if isinstance(item, RateFit):
            fit = item
    return fit


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nuclei", nargs="+", default=["gradient_256_seed21", "patches_256_seed5"])
    ap.add_argument("--photons", type=float, nargs="+", default=[1000.0, 200.0])
    ap.add_argument("--blur-nm", type=float, default=15.0, help="PSF sigma of the render (nm)")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    settings = InferenceSettings(device="cpu", psf_sigma_nm=a.blur_nm, uncertainty="none")
    tol = settings.residual_tolerance
    cmd = "PYTHONPATH=src .venv/bin/python benchmarks/scale_identifiability.py " + " ".join(sys.argv[1:])
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    lines = [
        "# Does an uncalibrated image fix the magnitude of the rates?",
        "",
        f"`{cmd.strip()}` ({time.strftime('%Y-%m-%d')}; {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, one thread, load {load} at the start)",
        "",
        f"Simulated steady states (256², 10 nm; `benchmarks/.cache/nucleus_*.npz`, made by verdict_table.py) "
        f"rendered as {GAIN:g} × Poisson(photons × blur_σ{a.blur_nm:g}nm(0.3 + 0.7 φ)) + {OFFSET:g}, "
        "normalised by the Otsu class medians, then calibrated by the plateau levels of an assumed "
        "rate magnitude (0.5×, 1×, 2× the default: "
        + ", ".join(f"{k:g}× → {v[0]:.3f} / {v[1]:.3f}" for k, v in LEVELS_BY_MAGNITUDE.items())
        + "). data: misfit / estimated noise variance; residual: rms steady-state residual / rms "
        "reaction term; ratio: mean fitted rate / mean true rate over the interior 20 px inside the "
        "nucleus edge; r: Pearson correlation with the truth there.",
        "",
        "| nucleus | photons | assumed × | data | residual | ratio Γ_me | ratio Γ_ac | r Γ_me | r Γ_ac "
        "| gain | status |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in a.nuclei:
        sim = dict(np.load(CACHE / f"nucleus_{name}.npz"))
        mask = sim["mask"].astype(bool)
        inner = ndi.binary_erosion(mask, iterations=20)
        for photons in a.photons:
            counts = render_intensity(
                sim["phi"], mask, 10.0, photons=photons, precision_nm=a.blur_nm, seed=211
            )
            phi_n, _ = intensity_to_fraction(GAIN * counts + OFFSET, mask)
            for mag, levels in LEVELS_BY_MAGNITUDE.items():
                fit = fit_with_levels(phi_n, mask, levels, settings)
                L = fit.losses
                sc = score(fit, sim, inner)
                rel_residual = np.sqrt(L["residual"]) * tol
                lines.append(
                    f"| {name} | {photons:g} | {mag:g} | {L['data']:.3f} | {rel_residual:.4f} "
                    f"| {sc['ratio_me']:.2f} | {sc['ratio_ac']:.2f} | {sc['r_me']:.3f} | {sc['r_ac']:.3f} "
                    f"| {L['gain']:.4f} | {fit.status} |"
                )
                print(lines[-1], flush=True)
                a.out.parent.mkdir(parents=True, exist_ok=True)
                a.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
