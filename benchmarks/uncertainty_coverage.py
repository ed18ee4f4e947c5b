"""Coverage of the rate maps' sd maps on simulated truth.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/uncertainty_coverage.py \
        [--methods sandwich bootstrap] [--bootstrap-fits 8] [--seeds 0 1 2] [--noise 0.01 0.03]

Per nucleus: a steady state of the chromatin model at 10 nm on a 256^2 grid ('gradient' and
'patches' rates, seeds 0-2; cached as .npz in --cache, about 15 s each to simulate), Gaussian noise
of 1 % and 3 % added (noise seed 100 + seed), then one default fit (fraction input, true mask, CPU)
per uncertainty method. Scored on the interior 20 px inside the nucleus edge (as
benchmarks/whole_nucleus.py scores): coverage = fraction of pixels with |estimate - truth| <=
1.64 sd (nominal 90 % for Gaussian errors), the median sd / mean of the true map, and q80 / q90:
the 80th / 90th percentile of |estimate - truth| / (1.64 sd), i.e. the factor on the sd that would
give 80 % / 90 % coverage (calibration of the sandwich's inflation). Each fit's scores are cached
as JSON beside the simulations; the table goes to benchmarks/results/uncertainty_coverage.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "uncertainty_coverage.md"
Z90 = 1.64


def simulated(cache: Path, rates: str, seed: int, n: int = 256) -> dict:
    """The cached simulated nucleus (simulated and saved on first use)."""
    from mollifier_bench.nuclei import cached_nucleus

    return cached_nucleus(cache / f"sim_{rates}_{n}_s{seed}.npz", n, rates, seed)


def score(fit, sim: dict) -> dict:
    """Coverage, width and calibration factors of each map's statistical sd on the scored pixels (the
    sd maps' systematic part, ``uncertainty.systematic_relative_sd``, taken off: this table compares
    the methods' spread; benchmarks/systematic_sd.py scores the total)."""
    from scipy.ndimage import binary_erosion

    from napari_mollifier.inverse._uncertainty import statistical_sd

    inner = binary_erosion(sim["mask"], iterations=20) & fit.analysed
    truth = {
        "gamma_me": sim["gamma_me"],
        "gamma_ac": sim["gamma_ac"],
        "lambda": sim["gamma_me"] / sim["gamma_ac"],
    }
    est = {"gamma_me": fit.gamma_me, "gamma_ac": fit.gamma_ac, "lambda": fit.lam}
    sds = {"gamma_me": fit.gamma_me_sd, "gamma_ac": fit.gamma_ac_sd, "lambda": fit.lam_sd}
    systematic = (getattr(fit, "uncertainty", None) or {}).get("systematic_relative_sd", 0.0)
    out = {}
    for key in truth:
        e, t = est[key][inner], truth[key][inner]
        s = statistical_sd(sds[key][inner], e, systematic)
        z = np.abs(e - t) / (Z90 * s)
        out[key] = {
            "coverage": float(np.mean(z <= 1.0)),
            "rel_sd": float(np.median(s) / np.mean(t)),
            "rel_err": float(np.mean(np.abs(e - t)) / np.mean(t)),
            "q80": float(np.quantile(z, 0.8)),
            "q90": float(np.quantile(z, 0.9)),
            "r": float(np.corrcoef(e, t)[0, 1]),
        }
    return out


def bootstrap_rows(cache: Path, rates: str, seed: int, noise: float, fits: int) -> list:
    """The parametric bootstrap around the default fit, two ways: the sd over the refits ("bootstrap",
    what ``uncertainty="bootstrap"`` writes) and the rms deviation of the refits from the fit itself
    ("bootstrap-rms": the refits' mean shift, the bias that fitting adds, included)."""
    import torch

    from napari_mollifier.config import InferenceSettings
    from napari_mollifier.inverse import RateFit, fit_rates

    path = cache / f"score_{rates}_s{seed}_n{noise:g}_bootstrap{fits}_both.json"
    if path.exists():
        return json.loads(path.read_text())
    torch.set_flush_denormal(True)
    sim = simulated(cache, rates, seed)
    data = sim["phi"] + noise * np.random.default_rng(100 + seed).standard_normal(sim["phi"].shape)

    def run(x, unc):
        for item in fit_rates(
            x.astype(np.float32), sim["mask"], 10.0, InferenceSettings(device="cpu", uncertainty=unc)
        ):
            if isinstance(item, RateFit):
                return item

    t = time.perf_counter()
    fit = run(data, "none")
    level = fit.losses["noise_estimate"]
    base = np.where(np.isfinite(fit.phi_hat), fit.phi_hat, data)
    rng = np.random.default_rng(seed + 1)
    keys = ("gamma_me", "gamma_ac", "lam")
    refits = {k: [] for k in keys}
    for _ in range(fits):
        f = run(base + level * rng.standard_normal(base.shape), "none")
        for k in keys:
            refits[k].append(getattr(f, k))
    wall = time.perf_counter() - t
    rows = []
    for name in ("bootstrap", "bootstrap-rms"):
        for k in keys:
            st = np.stack(refits[k])
            if name == "bootstrap":
                sd = np.std(st, axis=0, ddof=1)
            else:
                sd = np.sqrt(np.mean((st - getattr(fit, k)) ** 2, axis=0))
            setattr(fit, f"{k}_sd", sd)
        rows.append(
            {
                "rates": rates,
                "seed": seed,
                "noise": noise,
                "method": name,
                "fits": fits,
                "wall_s": wall,
                "status": fit.status,
                "figures": {"noise_estimate": level},
                "maps": score(fit, sim),
            }
        )
    path.write_text(json.dumps(rows))
    return rows


def one(cache: Path, rates: str, seed: int, noise: float, method: str, fits: int) -> dict:
    import torch

    from napari_mollifier.config import InferenceSettings
    from napari_mollifier.inverse import RateFit, fit_rates

    path = cache / f"score_{rates}_s{seed}_n{noise:g}_{method}{fits if method == 'bootstrap' else ''}.json"
    if path.exists():
        return json.loads(path.read_text())
    torch.set_flush_denormal(True)
    sim = simulated(cache, rates, seed)
    data = sim["phi"] + noise * np.random.default_rng(100 + seed).standard_normal(sim["phi"].shape)
    settings = InferenceSettings(device="cpu", uncertainty=method, bootstrap_fits=fits)
    t = time.perf_counter()
    fit = None
    for item in fit_rates(data.astype(np.float32), sim["mask"], 10.0, settings):
        if isinstance(item, RateFit):
            fit = item
    res = {
        "rates": rates,
        "seed": seed,
        "noise": noise,
        "method": method,
        "fits": fits if method == "bootstrap" else 1,
        "wall_s": time.perf_counter() - t,
        "status": fit.status,
        "figures": {k: v for k, v in fit.uncertainty.items() if k != "median_relative_sd"},
        "maps": score(fit, sim),
    }
    path.write_text(json.dumps(res))
    return res


def table(rows: list, title: str) -> list:
    lines = [
        f"### {title}",
        "",
        "| rates | seed | noise | method | status | map | r | mean rel err | coverage | median sd / mean "
        "| q80 | q90 | corr. area px | wall s |",
        "|---|---:|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        for key, m in r["maps"].items():
            area = r["figures"].get("correlation_area_px")
            lines.append(
                f"| {r['rates']} | {r['seed']} | {r['noise']:.0%} | {r['method']} | {r['status']} | {key} | "
                f"{m['r']:.3f} | {m['rel_err']:.3f} | {m['coverage']:.2f} | {m['rel_sd']:.3f} | "
                f"{m['q80']:.2f} | {m['q90']:.2f} | {'' if area is None else format(area, '.1f')} | "
                f"{r['wall_s']:.0f} |"
            )
    return lines


def summary(rows: list, calibration_seeds: list) -> list:
    """Per method, map and seed group (the calibration seeds, then the others): median and lowest
    coverage, nuclei at >= 80 %, median width, and the median / largest factor on the sd that 80 %
    coverage would need."""
    lines = [
        "| method | map | seeds | nuclei | median coverage | min coverage | nuclei >= 0.80 "
        "| median sd / mean | median q80 | max q80 |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    groups = [
        ("calibration", lambda r: r["seed"] in calibration_seeds),
        ("check", lambda r: r["seed"] not in calibration_seeds),
    ]
    for method in sorted({r["method"] for r in rows}):
        for label, keep in groups:
            sub = [r for r in rows if r["method"] == method and keep(r)]
            if not sub:
                continue
            seeds = " ".join(str(s) for s in sorted({r["seed"] for r in sub}))
            for key in ("gamma_me", "gamma_ac", "lambda"):
                cov = [r["maps"][key]["coverage"] for r in sub]
                rel = [r["maps"][key]["rel_sd"] for r in sub]
                q80 = [r["maps"][key]["q80"] for r in sub]
                lines.append(
                    f"| {method} | {key} | {label} ({seeds}) | {len(sub)} | {np.median(cov):.2f} | "
                    f"{min(cov):.2f} | {sum(c >= 0.8 for c in cov)} | {np.median(rel):.3f} | "
                    f"{np.median(q80):.2f} | {max(q80):.2f} |"
                )
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", nargs="+", default=["sandwich", "bootstrap"])
    ap.add_argument("--bootstrap-fits", type=int, default=8)
    ap.add_argument("--rates", nargs="+", default=["gradient", "patches"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--noise", type=float, nargs="+", default=[0.01, 0.03])
    ap.add_argument("--calibration-seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--cache", default="/tmp/unc17")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args()
    cache = Path(a.cache)
    rows = []
    for method in a.methods:
        for rates in a.rates:
            for seed in a.seeds:
                for noise in a.noise:
                    if method == "bootstrap":
                        rs = bootstrap_rows(cache, rates, seed, noise, a.bootstrap_fits)
                    else:
                        rs = [one(cache, rates, seed, noise, method, a.bootstrap_fits)]
                    for r in rs:
                        print(json.dumps(r), flush=True)
                        rows.append(r)
    lines = [
        "# Coverage of the rate maps' sd maps on simulated nuclei",
        "",
        f"`OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/uncertainty_coverage.py --methods "
        f"{' '.join(a.methods)} --bootstrap-fits {a.bootstrap_fits} --seeds {' '.join(map(str, a.seeds))} "
        f"--noise {' '.join(map(str, a.noise))}` ({time.strftime('%Y-%m-%d')})",
        "",
        "Simulated steady states at 10 nm, 256^2, Gaussian noise added to phi, true mask, fraction input, "
        "default settings but the uncertainty method. Scored on the interior 20 px inside the nucleus "
        "edge. Coverage: fraction of pixels with |estimate - truth| <= 1.64 sd (nominal 0.90). q80 / q90: "
        "the factor on the sd that would give 80 % / 90 % coverage (1 or less: covered). Median sd / "
        "mean: the median sd over the mean of the true map (the band's width).",
        "",
        "## Summary",
        "",
        *summary(rows, a.calibration_seeds),
        "",
        "## Per nucleus",
        "",
        *table(rows, "All fits"),
    ]
    Path(a.out).write_text("\n".join(lines) + "\n")
    print(a.out)


if __name__ == "__main__":
    main()
