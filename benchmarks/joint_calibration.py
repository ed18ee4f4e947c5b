"""Rates from uncalibrated intensities: the imaging levels fitted with the rates, or calibrated by
the double well's plateaus, against the Otsu map.

    PYTHONPATH=src .venv/bin/python benchmarks/joint_calibration.py [--photons P ...] [--seeds S ...]

A simulated 256^2 'gradient' nucleus (10 nm pixels) is rendered as counts
(``render_intensity``: euchromatin at 0.3 of heterochromatin, 15 nm Gaussian blur, Poisson counts
with ``photons`` per heterochromatin pixel) and turned into an uncalibrated image
``GAIN x counts + OFFSET``. The tool's Otsu normalisation maps it to phi_n, then:

- ``exact``: the render's own map (unknowable from a real image; the reference);
- ``fixed``: today's default, phi = phi_n;
- ``plateaus``: ``calibration="plateaus"`` (the two modes of the smoothed image put on a steady
  state's plateau levels, then re-read from the fitted field and refitted);
- ``joint``: ``calibration="joint"`` (phi_n = gain x PSF(phi_hat) + offset by least squares each
  step, the residual relative to lap(mu)).

Each row: Pearson r of both maps and the mean-rate ratios on the interior (20 px inside the edge),
and the fitted gain and offset against the true ones (in phi_n's units: the truth is the render's
``GAIN photons (0.3 + 0.7 blur(phi)) + OFFSET`` mapped through the same Otsu levels). Simulations
are cached under ``--cache`` (/tmp/cal17 by default).
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
from scipy import ndimage as ndi

from napari_mollifier.config import InferenceSettings
from napari_mollifier.inverse import fit_rates
from napari_mollifier.io import intensity_to_fraction
from napari_mollifier.simulate import render_intensity, simulate_nucleus
from napari_mollifier.simulate._nucleus import GAMMA_AC, GAMMA_ME, rate_preset

OUT = Path(__file__).resolve().parent / "results" / "joint_calibration.md"
EU_LEVEL, PSF_NM, GAIN, OFFSET = 0.3, 15.0, 2.7, 100.0


def nucleus(size: int, seed: int, cache: Path, rate_scale: float = 1.0) -> dict:
    """The 'gradient' preset at ``rate_scale`` times the default rates (cached)."""
    tag = "" if rate_scale == 1.0 else f"_x{rate_scale:g}"
    path = cache / f"sim{size}_s{seed}{tag}.npz"
    if path.exists():
        return dict(np.load(path))
    me, ac = rate_preset(
        "gradient", (size, size), gamma_me=GAMMA_ME * rate_scale, gamma_ac=GAMMA_AC * rate_scale
    )
    s = simulate_nucleus(size, rates=(me, ac), seed=seed)
    out = dict(phi=s.phi, gamma_me=s.gamma_me, gamma_ac=s.gamma_ac, mask=s.mask)
    out["pixel_size_nm"] = s.pixel_size_nm
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def uncalibrated(sim: dict, photons: float, seed: int) -> np.ndarray:
    counts = render_intensity(
        sim["phi"], sim["mask"], float(sim["pixel_size_nm"]), photons=photons, precision_nm=PSF_NM, seed=seed
    )
    return GAIN * counts + OFFSET


def score(fit, sim: dict, inner: np.ndarray) -> dict:
    out = {}
    for name, est in (("me", fit.gamma_me), ("ac", fit.gamma_ac)):
        true = sim[f"gamma_{name}"]
        out[f"r_{name}"] = float(np.corrcoef(est[inner], true[inner])[0, 1])
        out[f"ratio_{name}"] = float(np.mean(est[inner]) / np.mean(true[inner]))
    return out


def run(sim: dict, photons: float, seed: int, variant: str, steps: int) -> dict:
    img = uncalibrated(sim, photons, seed)
    m = sim["mask"].astype(bool)
    phi, norm = intensity_to_fraction(img, m)
    scale = norm["heterochromatin_level"] - norm["euchromatin_level"]
    true_gain = GAIN * photons * (1 - EU_LEVEL) / scale
    true_offset = (GAIN * photons * EU_LEVEL + OFFSET - norm["euchromatin_level"]) / scale
    calibration = variant
    if variant == "exact":
        phi = np.where(m, (phi - true_offset) / true_gain, np.clip((phi - true_offset) / true_gain, 0, 1))
        calibration = "fixed"
    settings = InferenceSettings(device="cpu", psf_sigma_nm=PSF_NM, calibration=calibration, steps=steps)
    t0 = time.perf_counter()
    *_, fit = fit_rates(phi, m, float(sim["pixel_size_nm"]), settings)
    inner = ndi.binary_erosion(m, iterations=20)
    out = score(fit, sim, inner)
    gain, offset = (true_gain, true_offset) if variant == "exact" else (1.0, 0.0)
    out.update(
        time_s=time.perf_counter() - t0,
        status=fit.status,
        gain=fit.losses.get("gain", gain) / true_gain,
        offset=fit.losses.get("offset", offset) - true_offset,
        passes=fit.losses.get("plateau_passes", 1),
    )
    return out


HEADER = [
    "| variant | rates | photons | seed | r Γ_me | r Γ_ac | mean Γ_me / true | mean Γ_ac / true "
    "| gain / true | offset − true | fits | status | time |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photons", type=float, nargs="+", default=[1e4, 1000.0, 200.0, 50.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[11], help="simulation seeds (render seed + 200)")
    variants = ["exact", "fixed", "plateaus", "joint"]
    ap.add_argument("--variants", nargs="+", default=variants, choices=variants)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument(
        "--rate-scale", type=float, default=1.0, help="rates of the nucleus over the preset's (default 1)"
    )
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/cal17"))
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--append", action="store_true", help="add the rows to an existing table")
    args = ap.parse_args()
    torch.set_flush_denormal(True)
    cmd = " ".join(sys.argv[1:])
    script = "benchmarks/joint_calibration.py"
    if args.append:
        lines = args.out.read_text().rstrip("\n").split("\n")
        lines.insert(2, f"Rows added by: `PYTHONPATH=src .venv/bin/python {script} {cmd}`")
    else:
        lines = [
            "# Uncalibrated intensities: plateau calibration and joint fit of the levels",
            "",
            f"Reproduce: `PYTHONPATH=src .venv/bin/python {script}{(' ' + cmd) if cmd else ''}`",
            "",
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"torch {torch.__version__} ({torch.get_num_threads()} intra-op threads). "
            f"Nucleus: {args.size}^2 'gradient' preset, 10 nm pixels; image = {GAIN:g} x "
            f"Poisson(photons x blur_{PSF_NM:g}nm(0.3 + 0.7 phi)) + {OFFSET:g}; {args.steps} steps per fit.",
            "gain / true: fitted gain over the true one; offset − true: in units of the Otsu-normalised "
            "image (1 = the Otsu level difference). fits: passes of the plateau calibration.",
            "",
            *HEADER,
        ]
    for seed in args.seeds:
        sim = nucleus(args.size, seed, args.cache, args.rate_scale)
        for p in args.photons:
            for v in args.variants:
                r = run(sim, p, seed + 200, v, args.steps)
                cal = "– | –" if v == "fixed" else f"{r['gain']:.3f} | {r['offset']:+.3f}"
                lines.append(
                    f"| {v} | {args.rate_scale:g}x | {p:g} | {seed} | {r['r_me']:.3f} | {r['r_ac']:.3f} | "
                    f"{r['ratio_me']:.2f} | {r['ratio_ac']:.2f} | {cal} | {r['passes']} | {r['status']} | "
                    f"{r['time_s']:.0f} s |"
                )
                print(lines[-1], flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
