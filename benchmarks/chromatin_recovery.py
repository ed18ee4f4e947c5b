"""Rate-map recovery on simulated 256^2 nuclei (the acceptance figures).

    .venv/bin/python benchmarks/chromatin_recovery.py [--quick] [--arch grid|mlp|piratenet|convnet]
        [--optimizer adam|soap] [--steps N] [--input fraction|intensity] [--photons P ...] [--out FILE]

For each rate preset (gradient, patches: seed 11 and 12; uniform: seed 13; none of them are
the sample images) the forward simulator makes a steady state; Gaussian noise of sigma
0, 0.01, 0.03 is added to phi; ``fit_rates`` runs with default settings (grid architecture,
Adam, device cpu) given the true mask. Scores on the nucleus interior 20 px from its edge:
Pearson r and mean relative error of Gamma_me and Gamma_ac, spatial std/mean (the flat null
test for "uniform"), the global balance <Gamma_me (1 - phi)> / <Gamma_ac phi> of the fit and of
the truth on the same region, and the fit's wall time.

``--input intensity`` renders each steady state as an intensity image instead (euchromatin
level 0.3, Poisson counts with ``--photons`` per heterochromatin pixel, 15 nm localisation
blur: ``render_intensity``) and runs ``infer_rates`` on it with the true mask, as
``mollifier infer --input intensity --mask`` would.
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
from scipy.ndimage import binary_erosion

from napari_mollifier.config import InferenceSettings
from napari_mollifier.inverse import fit_rates, infer_rates
from napari_mollifier.simulate import render_intensity, simulate_nucleus

OUT = Path(__file__).resolve().parent / "results" / "chromatin_recovery.md"


def score(fit, sim, phi_true):
    inner = binary_erosion(sim.mask, iterations=20) & fit.analysed
    row = {}
    for name, est, true in (("me", fit.gamma_me, sim.gamma_me), ("ac", fit.gamma_ac, sim.gamma_ac)):
        e, t = est[inner], true[inner]
        row[f"r_{name}"] = (
            float(np.corrcoef(e, t)[0, 1]) if np.std(t) > 1e-9 * np.mean(np.abs(t)) else float("nan")
        )
        row[f"rel_{name}"] = float(np.mean(np.abs(e - t) / t))
        row[f"cv_{name}"] = float(np.std(e) / np.mean(e))
    row["balance_fit"] = float(
        np.mean((fit.gamma_me * (1 - fit.phi_hat))[inner]) / np.mean((fit.gamma_ac * fit.phi_hat)[inner])
    )
    row["balance_true"] = float(
        np.mean((sim.gamma_me * (1 - phi_true))[inner]) / np.mean((sim.gamma_ac * phi_true)[inner])
    )
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="gradient preset only")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--device", default="cpu", help="device of the fit (the simulation runs on the CPU)")
    ap.add_argument("--arch", choices=("grid", "mlp", "piratenet", "convnet"), default="grid")
    ap.add_argument("--optimizer", choices=("adam", "soap"), default="adam")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the settings' default)")
    ap.add_argument("--input", choices=("fraction", "intensity"), default="fraction")
    ap.add_argument(
        "--photons",
        type=float,
        nargs="+",
        default=[50.0],
        help="intensity input: mean counts of a heterochromatin pixel (one row per value)",
    )
    ap.add_argument("--presets", nargs="+", default=None, help="subset of gradient, patches, uniform")
    ap.add_argument(
        "--noise",
        type=float,
        nargs="+",
        default=[0.0, 0.01, 0.03],
        help="fraction input: Gaussian noise levels on phi (default 0 0.01 0.03)",
    )
    ap.add_argument(
        "--perturbation",
        action="store_true",
        help="only the perturbation check: uniform rates vs Gamma_ac x 1.5 (same seed), noise 0 and 0.01",
    )
    args = ap.parse_args()
    torch.set_flush_denormal(True)
    if args.perturbation:
        return perturbation(args)
    cases = [("gradient", 11), ("patches", 12), ("uniform", 13)][: 1 if args.quick else 3]
    if args.presets:
        cases = [c for c in cases if c[0] in args.presets]
    over = {"arch": args.arch, "optimizer": args.optimizer}
    if args.steps is not None:
        over["steps"] = args.steps
    settings = InferenceSettings(device=args.device, **over)
    cmd = " ".join(sys.argv[1:])
    if args.out == OUT:  # one results file per configuration; the default one keeps its name
        tags = [
            t
            for t, default in ((args.arch, "grid"), (args.optimizer, "adam"), (args.input, "fraction"))
            if t != default
        ] + ([f"{args.steps}steps"] if args.steps is not None else [])
        if tags:
            args.out = OUT.with_name(f"chromatin_recovery_{'_'.join(tags)}.md")
    level_name = "photons" if args.input == "intensity" else "noise"
    lines = [
        "# Chromatin rate recovery on simulated nuclei",
        "",
        f"Reproduce: `.venv/bin/python benchmarks/chromatin_recovery.py{(' ' + cmd) if cmd else ''}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} "
        f"({torch.get_num_threads()} intra-op threads); "
        f"fit on device {args.device}"
        + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else "")
        + f"; settings: arch {settings.arch}, optimizer {settings.optimizer}, {settings.steps} steps, "
        f"{settings.precision}, residual {settings.residual_form}, otherwise defaults; input: "
        + (
            "phi with additive Gaussian noise"
            if args.input == "fraction"
            else "intensity render (Poisson, 15 nm blur, euchromatin level 0.3)"
        )
        + ", true mask; scored 20 px inside the nucleus edge. Fit time includes preprocessing.",
        "",
        f"| preset | {level_name} | r Γ_me | r Γ_ac | rel. err Γ_me | rel. err Γ_ac | std/mean Γ_me "
        "| std/mean Γ_ac "
        "| balance fit | balance truth | fit time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    levels = tuple(args.noise) if args.input == "fraction" else tuple(args.photons)
    for preset, seed in cases:
        sim = simulate_nucleus(256, rates=preset, seed=seed)
        for level in levels:
            t0 = time.perf_counter()
            if args.input == "fraction":
                data = sim.phi + level * np.random.default_rng(seed + 100).standard_normal(sim.phi.shape)
                *_, fit = fit_rates(data, sim.mask, sim.pixel_size_nm, settings)
            else:
                img = render_intensity(sim.phi, sim.mask, sim.pixel_size_nm, photons=level, seed=seed + 200)
                maps = infer_rates(
                    img, pixel_size_nm=sim.pixel_size_nm, mask=sim.mask, input="intensity", settings=settings
                )
                fit = maps.fit
            dt = time.perf_counter() - t0
            r = score(fit, sim, sim.phi)
            line = (
                f"| {preset} (residual {sim.residual_ratio:.1%}) | {level:g} | {r['r_me']:.3f} | "
                f"{r['r_ac']:.3f} | "
                f"{r['rel_me']:.1%} | {r['rel_ac']:.1%} | {r['cv_me']:.1%} | {r['cv_ac']:.1%} | "
                f"{r['balance_fit']:.3f} | {r['balance_true']:.3f} | {dt:.0f} s |"
            )
            print(line, flush=True)
            lines.append(line)
            _write(args.out, lines + ["", "(run in progress: rows still to come)", ""])  # keep finished rows
    lines += ["", "r is undefined (nan) for uniform true rates; there the flat null test is std/mean.", ""]
    _write(args.out, lines)
    print(f"wrote {args.out}")


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)


def perturbation(args):
    """Gamma_ac x 1.5 (a TSA-like change) must raise the inferred Gamma_ac by 1.5 and lower lambda."""
    from napari_mollifier.simulate import rate_preset

    me, ac = rate_preset("uniform", (256, 256))
    out = args.out.with_name("chromatin_perturbation.md") if args.out == OUT else args.out
    lines = [
        "# Perturbation check: Gamma_ac x 1.5",
        "",
        "Reproduce: `.venv/bin/python benchmarks/chromatin_recovery.py --perturbation`",
        "",
        "Uniform rates (Gamma_me 0.002, Gamma_ac 0.004 /tau) vs Gamma_ac x 1.5, same seed (13) and mask; "
        "fraction input with Gaussian noise; default settings; means over the interior 20 px inside the "
        "edge.",
        "",
        "| noise | mean Γ_ac ratio (goal 1.5 ± 0.15) | mean λ base | mean λ perturbed | λ falls |",
        "|---:|---:|---:|---:|---|",
    ]
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
