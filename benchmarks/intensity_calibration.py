"""How exactly must an intensity image be mapped to phi for the rates to come out right?

    .venv/bin/python benchmarks/intensity_calibration.py [--fits] [--photons P ...]

Part 1 (seconds): the true steady state of a simulated 256^2 "gradient" nucleus (seed 11, as in
chromatin_recovery.py) is mapped to ``alpha * phi + beta`` and read out directly (exact spectral
derivatives, rates by least squares on the smooth basis, no training). The table gives the mean
inferred rate over the true mean for each (alpha, beta): how precisely the intensity -> phi map must
be known.

Part 1b: the rms steady-state residual that the least-squares rates leave, relative to the
reaction, for the same maps of phi_true and of phi_true blurred by the PSF: a sharp minimum at
(1, 0) means the physics itself could fix the calibration.

Part 2 (``--fits``; about 1-2 min per fit on 2 CPU cores): the nucleus is rendered as an intensity
image (euchromatin level 0.3, 15 nm blur, Poisson counts) and normalised three ways before the
default PINN fit (15 nm blur in the data term):

- ``exact``: the render's own map, phi = (I / photons - 0.3) / 0.7 (unknowable from a real image);
- ``otsu``: the tool's normalisation (class medians of the Otsu split, ``intensity_to_fraction``);
- ``two-phase model``: levels from a least-squares fit of the image by a blurred two-phase model
  (midpoint threshold, the chr model's logistic interface of width sqrt(kappa / 2A) = 1 ell0 and
  the 15 nm blur), iterated; a better image-only estimate than ``otsu``.

Each row gives the map's actual relation to the truth (least-squares ``a * blur(phi) + b`` on the
interior), then Pearson r and mean ratio of both rates (interior 20 px inside the edge).
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

OUT = Path(__file__).resolve().parent / "results" / "intensity_calibration.md"
EU_LEVEL, PSF_NM = 0.3, 15.0


def two_phase_levels(img, mask, psf_px, interface_px=1.0, iterations=4):
    """(contrast, euchromatin level) of ``img`` from a blurred two-phase model fitted by least squares.

    The chr model's interface is logistic with rate sqrt(2A/kappa) (1 per ell0), whose variance
    pi^2/3 matches a Gaussian of sigma ~1.8 ell0; it is combined with the PSF. The threshold is
    re-set to the midpoint of the fitted levels (where a symmetric interface is crossed).
    """
    from skimage.filters import threshold_otsu

    smooth = ndi.gaussian_filter(img, psf_px)
    t = threshold_otsu(smooth[mask])
    ring = ndi.binary_dilation(mask, iterations=int(3 * psf_px) + 2)
    sigma = np.hypot(psf_px, 1.8 * interface_px)
    nucleus = ndi.gaussian_filter(mask.astype(float), psf_px)
    for _ in range(iterations):
        het = ndi.gaussian_filter(((smooth > t) & mask).astype(float), sigma)
        cols = np.vstack([nucleus[ring], het[ring], np.ones(int(ring.sum()))]).T
        eu, contrast, background = np.linalg.lstsq(cols, img[ring], rcond=None)[0]
        t = background + eu + contrast / 2
    return contrast, eu + background


def scan(sim, inner):
    settings = InferenceSettings(device="cpu", method="direct", precision="float64")
    alphas, betas = (0.95, 0.98, 1.0, 1.02, 1.05), (-0.02, 0.0, 0.02)
    lines = [
        "## Part 1: direct read-out of alpha x phi_true + beta (mean rate / true mean, Γ_me / Γ_ac)",
        "",
        "| alpha \\ beta | " + " | ".join(f"{b:+.2f}" for b in betas) + " |",
        "|---|" + "---:|" * len(betas),
    ]
    for a in alphas:
        cells = []
        for b in betas:
            *_, fit = fit_rates(a * sim.phi + b, sim.mask, sim.pixel_size_nm, settings)
            cells.append(
                f"{np.mean(fit.gamma_me[inner]) / np.mean(sim.gamma_me[inner]):.2f} / "
                f"{np.mean(fit.gamma_ac[inner]) / np.mean(sim.gamma_ac[inner]):.2f}"
            )
        lines.append(f"| {a:.2f} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines


def residual_ratio(phi, sim):
    """Steady-state residual / reaction (rms) left by the direct read-out of ``phi``."""
    from napari_mollifier.inverse import RateProblem
    from napari_mollifier.physics import ChromatinModel

    settings = InferenceSettings(device="cpu", method="direct", precision="float64")
    p = RateProblem(
        phi, sim.mask, sim.pixel_size_nm, settings, ChromatinModel(), torch.device("cpu"), noise_level=0.01
    )
    with torch.no_grad():
        d = p.derivatives(p.phi)
        coef = p.solve(d)
        react = p.basis.expand(coef[: p.n_coef])[p.interior] * (1 - d["u"][p.interior].double())
        return float(torch.sqrt(p.residual_energy(d, coef) / react.pow(2).mean()))


def residual_scan(sim):
    """Could the physics calibrate the image? The residual the best smooth rates leave, per (alpha, beta)."""
    alphas, betas = (0.95, 0.98, 1.0, 1.02, 1.05), (-0.02, 0.0, 0.02)
    blurred = ndi.gaussian_filter(np.where(sim.mask, sim.phi, 0.0), PSF_NM / sim.pixel_size_nm)
    lines = []
    for title, src in (("phi_true", sim.phi), (f"phi_true blurred by the {PSF_NM:g} nm PSF", blurred)):
        lines += [
            "",
            f"## Part 1b: rms residual / reaction after the direct read-out of alpha x {title} + beta",
            "",
            "| alpha \\ beta | " + " | ".join(f"{b:+.2f}" for b in betas) + " |",
            "|---|" + "---:|" * len(betas),
        ]
        for a in alphas:
            lines.append(
                f"| {a:.2f} | " + " | ".join(f"{residual_ratio(a * src + b, sim):.3g}" for b in betas) + " |"
            )
            print(lines[-1], flush=True)
    return lines


def fits(sim, inner, photons, normalisations=("exact", "otsu", "two-phase model")):
    lines = [
        "",
        "## Part 2: intensity render, three normalisations, default PINN fit (15 nm blur in the data term)",
        "",
        "| photons | normalisation | map vs truth | r Γ_me | r Γ_ac | mean ratio Γ_me | mean ratio Γ_ac "
        "| fit time |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    m = sim.mask
    blur_true = ndi.gaussian_filter(np.where(m, sim.phi, 0.0), PSF_NM / sim.pixel_size_nm)
    settings = InferenceSettings(device="cpu", psf_sigma_nm=PSF_NM)
    for p in photons:
        img = render_intensity(sim.phi, m, sim.pixel_size_nm, photons=p, seed=211)
        contrast, eu = two_phase_levels(img, m, PSF_NM / sim.pixel_size_nm)
        for name in normalisations:
            if name == "exact":
                phi = (img / p - EU_LEVEL) / (1 - EU_LEVEL)
            elif name == "otsu":
                phi, _ = intensity_to_fraction(img, m)
            else:
                phi = (img - eu) / contrast
            phi = np.where(m, phi, np.clip(phi, 0, 1))
            a, b = np.linalg.lstsq(
                np.vstack([blur_true[inner], np.ones(int(inner.sum()))]).T, phi[inner], rcond=None
            )[0]
            t0 = time.perf_counter()
            *_, fit = fit_rates(phi, m, sim.pixel_size_nm, settings)
            dt = time.perf_counter() - t0
            cells = []
            for est, true in ((fit.gamma_me, sim.gamma_me), (fit.gamma_ac, sim.gamma_ac)):
                cells.append(float(np.corrcoef(est[inner], true[inner])[0, 1]))
            ratios = [
                np.mean(fit.gamma_me[inner]) / np.mean(sim.gamma_me[inner]),
                np.mean(fit.gamma_ac[inner]) / np.mean(sim.gamma_ac[inner]),
            ]
            lines.append(
                f"| {p:g} | {name} | {a:.3f} blur(φ) {b:+.3f} | {cells[0]:.3f} | {cells[1]:.3f} | "
                f"{ratios[0]:.2f} | {ratios[1]:.2f} | {dt:.0f} s |"
            )
            print(lines[-1], flush=True)
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fits", action="store_true", help="also part 2 (full fits of intensity renders)")
    ap.add_argument(
        "--photons",
        type=float,
        nargs="+",
        default=[1e6, 50.0],
        help="part 2: mean counts of a heterochromatin pixel (default 1e6 and 50)",
    )
    ap.add_argument(
        "--normalisations",
        nargs="+",
        default=["exact", "otsu", "two-phase model"],
        choices=["exact", "otsu", "two-phase model"],
        help="part 2: which intensity -> phi maps",
    )
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_flush_denormal(True)
    sim = simulate_nucleus(256, rates="gradient", seed=11)
    inner = ndi.binary_erosion(sim.mask, iterations=20)
    cmd = " ".join(sys.argv[1:])
    lines = [
        "# Intensity -> phi calibration and the rates",
        "",
        f"Reproduce: `.venv/bin/python benchmarks/intensity_calibration.py{(' ' + cmd) if cmd else ''}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} "
        f"({torch.get_num_threads()} intra-op threads). Nucleus: 256^2 'gradient' preset, seed 11 "
        f"(steady-state residual {sim.residual_ratio:.1%} of the reaction).",
        "",
    ]
    lines += scan(sim, inner)
    lines += residual_scan(sim)
    if args.fits:
        lines += fits(sim, inner, args.photons, args.normalisations)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
