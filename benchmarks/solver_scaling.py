"""Memory and time of the rate solver against image size (whole nuclei at 20 nm).

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/solver_scaling.py [--sizes 256 512 1024 2048]

Per size, in a fresh subprocess (so the RSS high-water mark is that size's alone): a nucleus-like
phi of n x n pixels at 20 nm (an ellipse filling ~80 % of the side, domains from thresholded
smoothed noise at the simulated nuclei's ~300 nm spacing, 1 % noise: simulate_nucleus costs
minutes at 1024^2 and more at 2048^2), default settings with steps=10 on the CPU. Reports the
RateProblem set-up time, the time of one rate solve (normal equations + banded Cholesky), the
training's time per step (fit_rates' time_per_step_s) and the peak RSS. Writes
benchmarks/results/solver_scaling.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "solver_scaling.md"
PIXEL_NM = 20.0


def nucleus(n: int, seed: int = 0):
    import numpy as np
    from scipy.ndimage import gaussian_filter

    from napari_mollifier.simulate import nucleus_mask

    rng = np.random.default_rng(seed)
    mask = nucleus_mask((n, n), "ellipse", semi_axes=(0.45 * n, 0.38 * n))
    smooth = gaussian_filter(rng.standard_normal((n, n)), 300.0 / PIXEL_NM / 4)
    smooth /= smooth.std()
    domains = 0.5 + 0.3 * np.tanh(2.0 * gaussian_filter(smooth, 1.0))
    phi = np.where(mask, domains, 0.2) + 0.01 * rng.standard_normal((n, n))
    return phi, mask


def one(n: int) -> dict:
    import torch

    from napari_mollifier.config import InferenceSettings
    from napari_mollifier.inverse import RateProblem, estimate_noise, fit_rates
    from napari_mollifier.physics import ChromatinModel

    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    phi, mask = nucleus(n)
    settings = InferenceSettings(device="cpu", steps=10)
    out = {"n": n}
    t = time.perf_counter()
    problem = RateProblem(
        phi, mask, PIXEL_NM, settings, ChromatinModel(), torch.device("cpu"), estimate_noise(phi, mask)
    )
    out["setup_s"] = time.perf_counter() - t
    out["crop"] = list(problem.phi.shape)
    out["K"] = problem.n_coef
    with torch.no_grad():
        d = problem.derivatives(problem.phi)
        problem.solve(d)
        t = time.perf_counter()
        for _ in range(3):
            problem.solve(d)
        out["solve_s"] = (time.perf_counter() - t) / 3
    out["rss_setup_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del problem, d
    t = time.perf_counter()
    *_, fit = fit_rates(phi, mask, PIXEL_NM, settings)
    out["fit_s"] = time.perf_counter() - t
    out["steps"] = fit.steps_done
    out["step_s"] = fit.time_per_step_s
    out["status"] = "diverged" if fit.diverged else "ok"
    out["rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per size")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a.one)))
        return
    rows = []
    for n in a.sizes:
        load = open("/proc/loadavg").read().split()[:3]
        try:
            r = subprocess.run(
                [sys.executable, __file__, "--one", str(n)],
                capture_output=True,
                text=True,
                timeout=a.timeout,
                env=dict(os.environ, OMP_NUM_THREADS="1"),
            )
            res = (
                json.loads(r.stdout.strip().splitlines()[-1])
                if r.returncode == 0
                else {"error": r.stderr[-300:]}
            )
        except subprocess.TimeoutExpired:
            res = {"error": f"over {a.timeout:.0f} s"}
        res.update(n=n, load=" ".join(load))
        print(res, flush=True)
        rows.append(res)
    lines = [
        "# Rate solver: memory and time against image size",
        "",
        "`OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/solver_scaling.py --sizes "
        + " ".join(map(str, a.sizes))
        + "`",
        "",
        "Synthetic nucleus-like phi at 20 nm (ellipse, thresholded smoothed noise, 1 % noise; not "
        "simulate_nucleus, which costs minutes at 1024^2), default settings, steps=10, CPU, one "
        "thread, each size in a fresh process. K: control points per rate map (every 500 nm). "
        "Set-up: RateProblem(); solve: normal equations + banded Cholesky for one field; step: "
        "fit_rates' time per training step; RSS: process high-water mark after set-up + 4 solves, "
        "and after the whole fit. Load: /proc/loadavg (1/5/15 min) at the start, 2 cores shared.",
        "",
        "| n | crop | K | set-up s | solve s | step s | steps | fit s | RSS set-up MB | RSS peak MB | load |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['n']} | | | | | | | | | | {r['load']} ({r['error'].strip()[-80:]}) |")
            continue
        lines.append(
            f"| {r['n']} | {r['crop'][0]}x{r['crop'][1]} | {r['K']} | {r['setup_s']:.2f} | "
            f"{r['solve_s']:.3f} | "
            f"{r['step_s']:.3f} | {r['steps']} | {r['fit_s']:.1f} | {r['rss_setup_mb']:.0f} | "
            f"{r['rss_peak_mb']:.0f} | {r['load']} |"
        )
    OUT.write_text("\n".join(lines) + "\n")
    print(OUT)


if __name__ == "__main__":
    main()
