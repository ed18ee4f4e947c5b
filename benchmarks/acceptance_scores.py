"""Scores of the chromatin acceptance fits, one table row per fit.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/acceptance_scores.py [--out FILE.md]

The seven 256^2 fits of tests/test_acceptance_chromatin.py (default settings, fraction input with
the true mask, the same nuclei, noise and seeds), on one thread so that runs compare exactly.
Per map: r against the truth (meaningless for uniform rates), mean relative error and spatial
std/mean on the nucleus interior 20 px inside the edge; the mean Gamma_ac; the fit's seconds.
Used to check that a refactoring leaves the fits' numbers unchanged.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch
from scipy.ndimage import binary_erosion

from napari_mollifier.config import InferenceSettings
from napari_mollifier.inverse import fit_rates, infer_rates
from napari_mollifier.simulate import rate_preset, render_intensity, simulate_nucleus

SEEDS = {"gradient": 21, "patches": 22, "uniform": 23}


def scores(fit, sim, inner):
    out = []
    for est, true in ((fit.gamma_me, sim.gamma_me), (fit.gamma_ac, sim.gamma_ac)):
        e, t = est[inner], true[inner]
        r = float(np.corrcoef(e, t)[0, 1]) if np.std(t) > 0 else float("nan")
        out += [r, float(np.mean(np.abs(e - t) / t)), float(np.std(e) / np.mean(e))]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    sims = {}

    def sim(preset, f=1.0):
        if (preset, f) not in sims:
            rates = preset
            if f != 1.0:
                me, ac = rate_preset(preset, (256, 256), seed=SEEDS[preset])
                rates = (me, f * ac)
            sims[preset, f] = simulate_nucleus(256, rates=rates, seed=SEEDS[preset])
        return sims[preset, f]

    rows = [
        "| fit | r me | rel me | sd/mean me | r ac | rel ac | sd/mean ac | mean ac | s |",
        "|---|" + "---:|" * 8,
    ]
    cases = [
        ("gradient", 1.0, 0.0),
        ("gradient", 1.0, 0.03),
        ("patches", 1.0, 0.0),
        ("uniform", 1.0, 0.03),
        ("uniform", 1.0, 0.01),
        ("uniform", 1.5, 0.01),
        ("gradient-intensity", 1.0, 0.0),
    ]
    for preset, f, noise in cases:
        t0 = time.perf_counter()
        if preset == "gradient-intensity":
            s = sim("gradient")
            photons, eu = 1000.0, 0.3
            img = render_intensity(
                s.phi, s.mask, s.pixel_size_nm, photons=photons, euchromatin_level=eu, seed=5
            )
            st = InferenceSettings(
                device="cpu", euchromatin_level=eu * photons, heterochromatin_level=photons
            )
            fit = infer_rates(
                img, pixel_size_nm=s.pixel_size_nm, mask=s.mask, input="intensity", settings=st
            ).fit
        else:
            s = sim(preset, f)
            data = s.phi + noise * np.random.default_rng(100).standard_normal(s.phi.shape)
            *_, fit = fit_rates(data, s.mask, s.pixel_size_nm, InferenceSettings(device="cpu"))
        inner = binary_erosion(s.mask, iterations=20) & fit.analysed
        v = scores(fit, s, inner)
        line = (
            f"| {preset} x{f} noise {noise} | "
            + " | ".join(f"{x:.4f}" for x in v)
            + f" | {np.mean(fit.gamma_ac[inner]):.6f} | {time.perf_counter() - t0:.0f} |"
        )
        rows.append(line)
        print(line, flush=True)
    if a.out:
        header = [
            "# Chromatin acceptance fits: scores",
            "",
            "Reproduce: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/acceptance_scores.py "
            "--out benchmarks/results/acceptance_scores.md`",
            "(the seven 256² fits of tests/test_acceptance_chromatin.py, default settings, one thread; "
            f"the last column is seconds on this machine, load {os.getloadavg()[0]:.1f}, "
            f"{time.strftime('%Y-%m-%d')}).",
            "Per map: r against the truth (undefined for uniform rates: ~0), mean relative error, "
            "spatial std/mean, on the interior 20 px inside the nucleus edge.",
            "",
        ]
        with open(a.out, "w") as f:
            f.write("\n".join(header + rows) + "\n")


if __name__ == "__main__":
    sys.exit(main())
