"""Batch throughput: files per minute of ``mollifier batch`` against the number of local dask workers.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/batch_throughput.py [--files 12] [--size 128]
        [--steps 600] [--workers 1 2] [--sequential] [--out benchmarks/results/batch_throughput.md]

One nucleus is simulated (``simulate_nucleus``, circle mask, seed 1) and written as ``--files``
distinct phi images with their masks (rotations and flips of it, then a faint ripple, so that no
two files are the same bytes). Each worker count runs the whole folder through
``napari_mollifier.batch.run_batch`` (what ``mollifier batch --input fraction --mask sibling
--device cpu --workers N`` does) into a fresh output folder; the wall time includes starting and
stopping the local cluster. ``--sequential`` adds the in-process path without dask (``--workers 0``)
as the baseline. The markdown table records the machine, the settings and the load average, since
other jobs on the machine change the figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "batch_throughput.md"


def write_folder(folder: Path, n: int, size: int) -> list[Path]:
    """``n`` distinct nuclei ``nKK_phi.tif`` + ``nKK_mask.tif`` (10 nm pixels) from one simulation."""
    from napari_mollifier.io import write_tiff
    from napari_mollifier.simulate import simulate_nucleus

    sim = simulate_nucleus(size, mask="circle", seed=1)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        phi, mask = np.rot90(sim.phi, k % 4), np.rot90(sim.mask, k % 4)
        if (k // 4) % 2:
            phi, mask = phi.T, mask.T
        phi = phi + 0.002 * (k // 8) * np.sin(np.arange(phi.shape[1]) / 3.0)[None, :]
        paths.append(write_tiff(folder / f"n{k:02d}_phi.tif", np.ascontiguousarray(phi, np.float32), 10.0))
        write_tiff(folder / f"n{k:02d}_mask.tif", np.ascontiguousarray(mask, np.uint8), 10.0)
    return paths


def run(images, out: Path, settings, workers: int | None) -> dict:
    from napari_mollifier.batch import run_batch, sibling_mask

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    gen = run_batch(images, out, mask=sibling_mask, input="fraction", settings=settings, workers=workers)
    first = None
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            results = stop.value
            break
        if first is None and not isinstance(item[2], str):
            first = time.perf_counter() - t0
    wall = time.perf_counter() - t0
    ok = [r for r in results if r.status == "ok"]
    return {
        "workers": workers,
        "files": len(results),
        "ok": len(ok),
        "wall_s": wall,
        "first_s": first,
        "files_per_min": 60.0 * len(ok) / wall,
        "mean_fit_s": float(np.mean([r.runtime_s for r in ok])),
    }


def machine() -> str:
    import dask
    import distributed
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} logical cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}, "
        f"dask {dask.__version__}, distributed {distributed.__version__}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=12)
    ap.add_argument("--size", type=int, default=128, help="image side (pixels)")
    ap.add_argument("--steps", type=int, default=600, help="training steps per file")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--sequential", action="store_true", help="also run in this process without dask")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--note", default="", help="a sentence appended under the table (e.g. what else ran)")
    args = ap.parse_args(argv)

    import torch

    from napari_mollifier.config import InferenceSettings

    torch.set_flush_denormal(True)
    torch.set_num_threads(1)  # like each dask worker (the nanny sets OMP_NUM_THREADS=1)
    settings = InferenceSettings(steps=args.steps, device="cpu")
    tmp = Path(tempfile.mkdtemp(prefix="batch_throughput_"))
    try:
        print(f"simulating and writing {args.files} nuclei of {args.size}^2 ...", file=sys.stderr, flush=True)
        images = write_folder(tmp / "in", args.files, args.size)
        rows = []
        counts = ([0] if args.sequential else []) + list(args.workers)
        for w in counts:
            load0 = os.getloadavg()[0]
            row = run(images, tmp / f"out{w}", settings, None if w == 0 else w)
            row["load"] = (load0, os.getloadavg()[0])
            rows.append(row)
            print(
                f"workers {w}: {row['ok']}/{row['files']} files in {row['wall_s']:.1f} s = "
                f"{row['files_per_min']:.1f} files/min",
                file=sys.stderr,
                flush=True,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    base = next((r for r in rows if r["workers"] == 1), rows[0])
    shown = [a for a in (argv or sys.argv[1:])]
    if "--note" in shown:  # the note is printed below the table, not in the command line
        k = shown.index("--note")
        del shown[k : k + 2]
    cmd = "OMP_NUM_THREADS=1 python benchmarks/batch_throughput.py " + " ".join(shown)
    lines = [
        "# Batch throughput against local dask workers",
        "",
        f"Command: `{cmd.strip()}`  ",
        f"Machine: {machine()}  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"{args.files} simulated nuclei of {args.size}x{args.size} pixels "
        "(phi input with masks, 10 nm pixels), "
        f"{args.steps} training steps each (grid field, Adam, float32, CPU), one torch thread per worker. "
        "Wall time from the call to the summary.csv, including starting and stopping the local cluster "
        "(worker processes import torch); 'first file' is when the first result came back.",
        "",
        "| workers | files ok | wall (s) | first file (s) | files / min | speed-up vs 1 worker "
        "| mean fit (s) | load avg (start, end) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        label = "0 (in process, no dask)" if r["workers"] is None else str(r["workers"])
        lines.append(
            f"| {label} | {r['ok']}/{r['files']} | {r['wall_s']:.1f} | {r['first_s']:.1f} | "
            f"{r['files_per_min']:.1f} | {r['files_per_min'] / base['files_per_min']:.2f} | "
            f"{r['mean_fit_s']:.2f} | {r['load'][0]:.2f}, {r['load'][1]:.2f} |"
        )
    lines += [
        "",
        "Figures from one run; the load average shows how busy the machine was (it counts this "
        "benchmark's own workers too)." + (f" {args.note}" if args.note else ""),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"table: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # the guard matters: dask's worker processes are spawned
    raise SystemExit(main())
