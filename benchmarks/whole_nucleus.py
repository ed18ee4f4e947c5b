"""Whole simulated nuclei at 10 nm: fit time, peak memory and accuracy against image size.

    PYTHONPATH=src .venv/bin/python benchmarks/whole_nucleus.py [--sizes 256 512 1024 2048] [--threads 2]

Per size: a steady state of the chromatin model simulated at 10 nm on an n x n grid (``gradient``
rates, seed 21; cached in benchmarks/.cache/, since simulating a 2048^2 nucleus takes about an
hour on one core), 1 % Gaussian noise added (seed 100), then one default fit with the true mask,
fraction input, CPU, in a fresh process so that the peak RSS (the process's high-water mark) is
that fit's alone. Scores on the nucleus interior 20 px inside the edge: Pearson r and mean
relative error of each map against the truth. The table goes to
benchmarks/results/whole_nucleus.md with the load average at the start of each fit.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
OUT = HERE / "results" / "whole_nucleus.md"
SEED, NOISE_SEED, NOISE = 21, 100, 0.01


def simulated(n: int):
    """The cached simulated nucleus of side n (simulated and saved on first use)."""
    from mollifier_bench.nuclei import cached_preset

    return cached_preset(CACHE, "gradient", SEED, n)


def one(n: int, threads: int, device: str = "cpu") -> dict:
    import numpy as np
    import torch
    from scipy.ndimage import binary_erosion

    from napari_mollifier.config import InferenceSettings
    from napari_mollifier.inverse import infer_rates

    torch.set_num_threads(threads)
    sim = simulated(n)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    data = sim["phi"] + NOISE * np.random.default_rng(NOISE_SEED).standard_normal(sim["phi"].shape)
    t = time.perf_counter()
    result = infer_rates(
        data.astype(np.float32),
        pixel_size_nm=10.0,
        mask=sim["mask"],
        input="fraction",
        settings=InferenceSettings(device=device),
    )
    wall = time.perf_counter() - t
    fit = result.fit
    inner = binary_erosion(sim["mask"], iterations=20) & fit.analysed
    out = {
        "n": n,
        "fit_s": wall,
        "step_s": fit.time_per_step_s,
        "steps": fit.steps_done,
        "status": fit.status,
        "rss_before_mb": rss0,
        "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "device": fit.device,
        "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if fit.device.startswith("cuda") else None,
        "sim_residual": float(sim["residual_ratio"]),
    }
    for key in ("gamma_me", "gamma_ac"):
        e, tr = getattr(fit, key)[inner], sim[key][inner]
        out[f"r_{key}"] = float(np.corrcoef(e, tr)[0, 1])
        out[f"rel_{key}"] = float(np.mean(np.abs(e - tr) / tr))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    ap.add_argument("--threads", type=int, default=2, help="torch threads of each fit")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per size")
    ap.add_argument("--device", default="cpu", help="the fits' device (cpu, cuda, mps)")
    ap.add_argument("--out", default=None, help="table path (default benchmarks/results/whole_nucleus.md)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a.one, a.threads, a.device)))
        return
    rows = []
    for n in a.sizes:
        simulated(n)  # outside the timed process
        load = " ".join(open("/proc/loadavg").read().split()[:3])
        try:
            r = subprocess.run(
                [sys.executable, __file__, "--one", str(n), "--threads", str(a.threads)]
                + ["--device", a.device],
                capture_output=True,
                text=True,
                timeout=a.timeout,
            )
            res = (
                json.loads(r.stdout.strip().splitlines()[-1])
                if r.returncode == 0
                else {"error": r.stderr[-300:]}
            )
        except subprocess.TimeoutExpired:
            res = {"error": f"over {a.timeout:.0f} s"}
        res.update(n=n, load=load)
        print(res, flush=True)
        rows.append(res)
    lines = [
        "# Whole simulated nuclei at 10 nm: time, memory and accuracy against size",
        "",
        f"`PYTHONPATH=src .venv/bin/python benchmarks/whole_nucleus.py --sizes {' '.join(map(str, a.sizes))} "
        f"--threads {a.threads} --device {a.device}` ({time.strftime('%Y-%m-%d')}, {_machine(a.device)}, "
        f"torch {_torch_version()})",
        "",
        "Simulated steady state (gradient rates, seed 21) at 10 nm, 1 % Gaussian noise, true mask, "
        f"fraction input, default settings, device {a.device}, each fit in a fresh process. Fit s: wall "
        "time of infer_rates (set-up, read-out, training, maps); RSS: the process's peak resident memory "
        "(the simulated data loaded before the fit are in it). r / rel: Pearson r and mean relative "
        "error against the truth on the interior 20 px inside the nucleus edge. Load: /proc/loadavg "
        "at the start. GPU MB: torch's peak allocation on the GPU (CUDA only).",
        "",
        "| n | fit s | step s | steps | peak RSS MB | GPU MB | status | r Γ_me | rel Γ_me | r Γ_ac "
        "| rel Γ_ac | load |",
        "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['n']} | | | | | | {r['error'].strip()[-80:]} | | | | | {r['load']} |")
            continue
        lines.append(
            f"| {r['n']} | {r['fit_s']:.1f} | {r['step_s']:.4f} | {r['steps']} | {r['rss_peak_mb']:.0f} | "
            f"{'' if r.get('gpu_peak_mb') is None else format(r['gpu_peak_mb'], '.0f')} | "
            f"{r['status']} | {r['r_gamma_me']:.4f} | {r['rel_gamma_me']:.4f} | {r['r_gamma_ac']:.4f} | "
            f"{r['rel_gamma_ac']:.4f} | {r['load']} |"
        )
    out = Path(a.out) if a.out else OUT
    out.write_text("\n".join(lines) + "\n")
    print(out)


def _machine(device: str) -> str:
    import os

    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"{os.cpu_count()}-core CPU"


def _torch_version() -> str:
    import torch

    return torch.__version__


if __name__ == "__main__":
    main()
