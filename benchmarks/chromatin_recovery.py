"""Rate-map recovery on simulated 256^2 nuclei (issue 3 acceptance figures, work in progress).

    .venv/bin/python benchmarks/chromatin_recovery.py [--quick] [--out benchmarks/results/chromatin_recovery.md]

For each rate preset (gradient, patches: seed 11 and 12; uniform: seed 13; none of them are
the sample images) the forward simulator makes a steady state; Gaussian noise of sigma
0, 0.01, 0.03 is added to phi; ``fit_rates`` runs with default settings (grid architecture,
Adam, device cpu) given the true mask. Scores on the nucleus interior 20 px from its edge:
Pearson r and mean relative error of Gamma_me and Gamma_ac, spatial std/mean (the flat null
test for "uniform"), the global balance <Gamma_me (1 - phi)> / <Gamma_ac phi> of the fit and of
the truth on the same region, and the fit's wall time.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import binary_erosion

from napari_mollifier.config import InferenceSettings
from napari_mollifier.inverse import fit_rates
from napari_mollifier.simulate import simulate_nucleus

OUT = Path(__file__).resolve().parent / "results" / "chromatin_recovery.md"


def score(fit, sim, phi_true):
    inner = binary_erosion(sim.mask, iterations=20) & fit.analysed
    row = {}
    for name, est, true in (("me", fit.gamma_me, sim.gamma_me), ("ac", fit.gamma_ac, sim.gamma_ac)):
        e, t = est[inner], true[inner]
        row[f"r_{name}"] = float(np.corrcoef(e, t)[0, 1]) if np.std(t) > 1e-9 * np.mean(np.abs(t)) else float("nan")
        row[f"rel_{name}"] = float(np.mean(np.abs(e - t) / t))
        row[f"cv_{name}"] = float(np.std(e) / np.mean(e))
    row["balance_fit"] = float(np.mean((fit.gamma_me * (1 - fit.phi_hat))[inner]) /
                               np.mean((fit.gamma_ac * fit.phi_hat)[inner]))
    row["balance_true"] = float(np.mean((sim.gamma_me * (1 - phi_true))[inner]) /
                                np.mean((sim.gamma_ac * phi_true)[inner]))
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="gradient preset only")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--device", default="cpu", help="device of the fit (the simulation runs on the CPU)")
    ap.add_argument("--perturbation", action="store_true",
                    help="only the perturbation check: uniform rates vs Gamma_ac x 1.5 (same seed), noise 0 and 0.01")
    args = ap.parse_args()
    torch.set_flush_denormal(True)
    if args.perturbation:
        return perturbation(args)
    cases = [("gradient", 11), ("patches", 12), ("uniform", 13)][: 1 if args.quick else 3]
    lines = ["# Chromatin rate recovery on simulated nuclei (work in progress, issue 3)", "",
             f"Reproduce: `.venv/bin/python benchmarks/chromatin_recovery.py{' --quick' if args.quick else ''}`", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}; "
             f"fit on device {args.device}" + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else "")
             + " with default `InferenceSettings` (arch grid, Adam, 1200 steps, float32); input: phi with "
             "additive Gaussian noise, true mask; scored 20 px inside the nucleus edge.", "",
             "| preset | noise | r Γ_me | r Γ_ac | rel. err Γ_me | rel. err Γ_ac | std/mean Γ_me | std/mean Γ_ac "
             "| balance fit | balance truth | fit time |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for preset, seed in cases:
        sim = simulate_nucleus(256, rates=preset, seed=seed)
        for noise in (0.0, 0.01, 0.03):
            data = sim.phi + noise * np.random.default_rng(seed + 100).standard_normal(sim.phi.shape)
            t0 = time.perf_counter()
            *_, fit = fit_rates(data, sim.mask, sim.pixel_size_nm, InferenceSettings(device=args.device))
            dt = time.perf_counter() - t0
            r = score(fit, sim, sim.phi)
            line = (f"| {preset} (residual {sim.residual_ratio:.1%}) | {noise:g} | {r['r_me']:.3f} | {r['r_ac']:.3f} | "
                    f"{r['rel_me']:.1%} | {r['rel_ac']:.1%} | {r['cv_me']:.1%} | {r['cv_ac']:.1%} | "
                    f"{r['balance_fit']:.3f} | {r['balance_true']:.3f} | {dt:.0f} s |")
            print(line, flush=True)
            lines.append(line)
    lines += ["", "r is undefined (nan) for uniform true rates; there the flat null test is std/mean.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


def perturbation(args):
    """Gamma_ac x 1.5 (a TSA-like change) must raise the inferred Gamma_ac by 1.5 and lower lambda."""
    from napari_mollifier.simulate import rate_preset

    me, ac = rate_preset("uniform", (256, 256))
    out = args.out.with_name("chromatin_perturbation.md") if args.out == OUT else args.out
    lines = ["# Perturbation check: Gamma_ac x 1.5 (issue 3, work in progress)", "",
             "Reproduce: `.venv/bin/python benchmarks/chromatin_recovery.py --perturbation`", "",
             "Uniform rates (Gamma_me 0.002, Gamma_ac 0.004 /tau) vs Gamma_ac x 1.5, same seed (13) and mask; "
             "fraction input with Gaussian noise; default settings; means over the interior 20 px inside the edge.", "",
             "| noise | mean Γ_ac ratio (goal 1.5 ± 0.15) | mean λ base | mean λ perturbed | λ falls |",
             "|---:|---:|---:|---:|---|"]
    sims = [simulate_nucleus(256, rates=(me, f * ac), seed=13) for f in (1.0, 1.5)]
    for noise in (0.0, 0.01):
        means = []
        for sim in sims:
            data = sim.phi + noise * np.random.default_rng(113).standard_normal(sim.phi.shape)
            *_, fit = fit_rates(data, sim.mask, sim.pixel_size_nm, InferenceSettings(device=args.device))
            inner = binary_erosion(sim.mask, iterations=20) & fit.analysed
            means.append((float(np.mean(fit.gamma_ac[inner])), float(np.mean(fit.lam[inner]))))
        (ac0, l0), (ac1, l1) = means
        line = f"| {noise:g} | {ac1 / ac0:.3f} | {l0:.3f} | {l1:.3f} | {'yes' if l1 < l0 else 'no'} |"
        print(line, flush=True)
        lines.append(line)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
