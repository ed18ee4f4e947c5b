"""The per-domain scaling-law estimate (docs/model.md, "Scaling law") against the true rate maps.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scaling_crosscheck.py [--fit] [--percentiles 60 70 80]
        [--out FILE]

Simulated 256^2 nuclei (``simulate_nucleus`` with default settings; presets uniform, seeds 21 and
22, and gradient, seeds 23 and 24: none of them are the sample images or the recovery benchmark's
nuclei). On the true phi and the true mask, ``domain_scaling_estimate`` (D = 1 ell0^2/tau, 10 nm
pixels, d = mean distance to the 5 nearest domains) gives one rate pair per domain; the true
maps averaged over each domain's pixels are the reference. Reported per nucleus and percentile:
the number of domains, median R and d, median R^2/d^2 against the truth's lambda/(1 + lambda),
ratio of the means over domains (scaling / true) of Gamma_ac, Gamma_me and lambda, and Pearson r
across domains (undefined for uniform true rates). With ``--fit``, ``fit_rates`` (default
settings, CPU) runs on the same phi and its maps, averaged per domain, are compared both with the
scaling estimate and with the truth.

The "d/2" columns (a post-hoc variant, not the estimate of model.md) evaluate the same closed form
with d replaced by half the mean spacing, the distance from a domain's centre to the edge of its
territory: Gamma_ac = 4 D / d^2, Gamma_me = Gamma_ac / ((d / 2R)^2 - 1).
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

from napari_mollifier.scaling import compare_with_maps, domain_scaling_estimate, pearson_r
from napari_mollifier.simulate import simulate_nucleus

OUT = Path(__file__).resolve().parent / "results" / "scaling_crosscheck.md"
CASES = (("uniform", 21), ("uniform", 22), ("gradient", 23), ("gradient", 24))


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


def _f(x: float, fmt: str = ".3f") -> str:
    return "nan" if not np.isfinite(x) else format(x, fmt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", action="store_true", help="also fit_rates maps (CPU, ~30-150 s per nucleus)")
    ap.add_argument("--percentiles", type=float, nargs="+", default=[60.0, 70.0, 80.0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_flush_denormal(True)
    cmd = " ".join(sys.argv[1:])
    lines = [
        '# Scaling-law estimate (docs/model.md, "Scaling law") vs the true rate maps, per domain',
        "",
        "Reproduce: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scaling_crosscheck.py"
        f"{(' ' + cmd) if cmd else ''}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}. "
        "Nuclei: simulate_nucleus(256, rates=preset, seed) with default settings (10 nm pixels, model "
        "defaults: true Γ_me 0.002, Γ_ac 0.004 /τ, λ 0.5 for uniform; gradient: Γ_me 0.8-1.2x, Γ_ac "
        "1.1-0.9x across x). Estimate on the true phi and mask: domains = nucleus pixels above the "
        "percentile of phi, 8-connected, >= 10 px; R = sqrt(area/π); d = mean centroid distance to the "
        "5 nearest domains; Γ_ac = D/d², Γ_me = Γ_ac/((d/R)² - 1), D = M A = 1 ℓ0²/τ, ℓ0 = 10 nm. "
        "Reference: the true maps averaged over each domain's pixels. Ratios are of the means over "
        "domains (scaling / true); r is Pearson's across domains (nan: uniform truth, r undefined).",
        "",
        "| nucleus | pct | domains | median R (nm) | median d (nm) | median R²/d² | true λ/(1+λ) "
        "| Γ_ac ratio | Γ_me ratio | λ ratio | r Γ_ac | r Γ_me | r λ | d/2: Γ_ac ratio | d/2: Γ_me ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    fit_lines = [
        "",
        "## With fit_rates maps (default settings, CPU), per domain at the 70th percentile",
        "",
        "| nucleus | fit time | Γ_ac scaling/fit | Γ_me scaling/fit | r Γ_ac scaling-fit "
        "| r Γ_me scaling-fit | Γ_ac fit/true | Γ_me fit/true | r Γ_ac fit-true | r Γ_me fit-true "
        "| fit spread Γ_ac | fit spread Γ_me |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for preset, seed in CASES:
        t0 = time.perf_counter()
        sim = simulate_nucleus(256, rates=preset, seed=seed)
        name = f"{preset} {seed} (residual {sim.residual_ratio:.1%})"
        print(f"{name}: simulated in {time.perf_counter() - t0:.0f} s", flush=True)
        for p in args.percentiles:
            t = compare_with_maps(
                domain_scaling_estimate(sim.phi, sim.mask, sim.pixel_size_nm, percentile=p),
                sim.gamma_me,
                sim.gamma_ac,
            )
            s = t.summary()
            r2d2 = float(np.median((t.radius_nm / t.spacing_nm) ** 2))
            true_frac = float(np.mean(t.map_lam / (1 + t.map_lam)))
            R, half = t.radius_nm / 10.0, t.spacing_nm / 20.0
            ok = half > R
            h_ac = 1.0 / half[ok] ** 2
            h_me = h_ac / ((half[ok] / R[ok]) ** 2 - 1)
            h_ratio = (
                np.mean(h_ac) / np.mean(t.map_gamma_ac[ok]),
                np.mean(h_me) / np.mean(t.map_gamma_me[ok]),
            )
            line = (
                f"| {name} | {p:g} | {s['domains']} | {s['median_radius_nm']:.0f} "
                f"| {s['median_spacing_nm']:.0f} "
                f"| {r2d2:.3f} | {true_frac:.3f} | {_f(s['ratio_gamma_ac'])} | {_f(s['ratio_gamma_me'])} "
                f"| {_f(s['ratio_lam'])} | {_f(s['r_gamma_ac'], '.2f')} | {_f(s['r_gamma_me'], '.2f')} "
                f"| {_f(s['r_lam'], '.2f')} | {h_ratio[0]:.3f} | {h_ratio[1]:.3f} |"
            )
            print(line, flush=True)
            lines.append(line)
            _write(args.out, lines + ["", "(run in progress)"])
        if args.fit:
            from napari_mollifier.config import InferenceSettings
            from napari_mollifier.inverse import fit_rates

            t0 = time.perf_counter()
            *_, fit = fit_rates(sim.phi, sim.mask, sim.pixel_size_nm, InferenceSettings(device="cpu"))
            dt = time.perf_counter() - t0
            t = domain_scaling_estimate(sim.phi, sim.mask, sim.pixel_size_nm)
            vs_fit = compare_with_maps(t, fit.gamma_me, fit.gamma_ac)
            vs_true = compare_with_maps(t, sim.gamma_me, sim.gamma_ac)
            s = vs_fit.summary()
            ok = np.isfinite(vs_fit.map_gamma_ac)
            fr = {
                k: float(np.mean(getattr(vs_fit, f"map_{k}")[ok]) / np.mean(getattr(vs_true, f"map_{k}")[ok]))
                for k in ("gamma_ac", "gamma_me")
            }
            rr = {
                k: pearson_r(getattr(vs_fit, f"map_{k}")[ok], getattr(vs_true, f"map_{k}")[ok])
                for k in ("gamma_ac", "gamma_me")
            }
            sp = {
                k: float(np.std(getattr(vs_fit, f"map_{k}")[ok]) / np.mean(getattr(vs_fit, f"map_{k}")[ok]))
                for k in ("gamma_ac", "gamma_me")
            }
            line = (
                f"| {name} | {dt:.0f} s | {_f(s['ratio_gamma_ac'])} | {_f(s['ratio_gamma_me'])} "
                f"| {_f(s['r_gamma_ac'], '.2f')} | {_f(s['r_gamma_me'], '.2f')} | {fr['gamma_ac']:.3f} "
                f"| {fr['gamma_me']:.3f} | {_f(rr['gamma_ac'], '.2f')} | {_f(rr['gamma_me'], '.2f')} "
                f"| {sp['gamma_ac']:.2%} | {sp['gamma_me']:.2%} |"
            )
            print(line, flush=True)
            fit_lines.append(line)
            _write(args.out, lines + fit_lines + ["", "(run in progress)"])
    notes = [
        "",
        "fit spread: std/mean across domains of the fit's per-domain means (for uniform truth this "
        "variation is the fit's error, so r scaling-fit there measures an error pattern the two share).",
    ]
    _write(args.out, lines + (fit_lines + notes if args.fit else []))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
