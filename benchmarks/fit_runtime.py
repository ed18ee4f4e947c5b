"""Wall time of one default fit per sample nucleus (the runtime target: <= 60 s per 256^2
nucleus with default settings on the 2-core CPU).

    .venv/bin/python benchmarks/fit_runtime.py [--threads N] [--out FILE]

Runs ``infer_rates`` on each ``sample_images/nucleus*_phi.tif`` with its mask (fraction input,
default settings, CPU), as ``mollifier demo`` does, and writes the times, the time per training
step and the load average before and after each fit (a busy machine shows there).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from napari_mollifier.config import InferenceSettings
from napari_mollifier.inverse import infer_rates

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "results" / "fit_runtime.md"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    rows = []
    for phi in sorted((ROOT / "sample_images").glob("nucleus*_phi.tif")):
        mask = phi.with_name(phi.name.replace("_phi", "_mask"))
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        res = infer_rates(phi, mask=mask, input="fraction", settings=InferenceSettings(device="cpu"))
        wall = time.perf_counter() - t0
        per_step = res.fit.time_per_step_s
        rows.append((phi.name, wall, per_step, load0, os.getloadavg()[0]))
        print(f"{phi.name}: {wall:.1f} s", flush=True)
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    lines = [
        "# Fit runtime of the sample nuclei (default settings, CPU)",
        "",
        "Reproduce: `.venv/bin/python benchmarks/fit_runtime.py"
        f"{f' --threads {args.threads}' if args.threads else ''}`",
        "",
        f"Machine: {cpu}, {os.cpu_count()} logical cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} intra-op threads); {time.strftime('%Y-%m-%d')}.",
        "",
        "| image | wall time (load, read, fit, maps) | time per training step "
        "| load average before / after |",
        "|---|---:|---:|---:|",
    ]
    for name, wall, per_step, l0, l1 in rows:
        step = f"{per_step * 1e3:.1f} ms"
        lines.append(f"| {name} | {wall:.1f} s | {step} | {l0:.2f} / {l1:.2f} |")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"table: {args.out}")


if __name__ == "__main__":
    main()
