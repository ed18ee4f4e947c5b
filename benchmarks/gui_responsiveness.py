"""Responsiveness of the "Infer rate maps" widget: how long the Start click takes, the longest
main-thread stall while a fit runs, and how long ``viewer.close()`` takes during a fit.

    xvfb-run -a env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gui_responsiveness.py
        [--sizes 64 128] [--steps 300] [--repeats 2] [--label after]
        [--out benchmarks/results/gui_responsiveness.md] [--profile PROFILE.txt]

For each image size a simulated nucleus (``simulate_nucleus``, circle mask, seed 1, 10 nm pixels)
is opened in a shown viewer with the widget docked, the import warm-up is awaited, and then:

* **Start**: wall time of ``FitWidget.start()`` (what the click runs: preparing the input and
  creating the map layers);
* **stall**: a 10 ms ``QTimer`` heartbeat runs on the main thread during a ``--steps`` fit
  (``report_every=2``); the longest gap between beats is the longest freeze the user sees;
* **close**: a second fit of 100 000 steps is started, left running 1 s, and ``viewer.close()``
  is timed (it cancels the fit and waits for the worker thread).

``--profile FILE`` also writes cProfile's top functions of the Start click and of the main thread
during the fit. The table (appended to ``--out`` under ``--label``) records the machine and load,
since other jobs on the machine change the figures.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "gui_responsiveness.md"
PIXEL_NM = 10.0


def _nucleus(size: int):
    from napari_mollifier import simulate_nucleus

    sim = simulate_nucleus(size, mask="circle", seed=1, t_end=3e3, pixel_size_nm=PIXEL_NM)
    return sim.phi.astype(np.float32), sim.mask.astype(np.uint8)


def _wait(app, cond, timeout=300.0):
    t0 = time.perf_counter()
    while not cond():
        app.processEvents()
        time.sleep(0.002)
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("the fit did not end in time")


def measure(size: int, steps: int, profile: list | None = None) -> dict:
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_mollifier._napari._fit import WARMED_UP
    from napari_mollifier._napari._fit_widget import FitWidget

    phi, mask = _nucleus(size)
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    sc = {"scale": (PIXEL_NM, PIXEL_NM), "units": ("nm", "nm")}
    viewer.add_image(phi, name="cell", metadata={"input": "fraction"}, **sc)
    viewer.add_labels(mask, name="cell nucleus mask", **sc)
    w = FitWidget(viewer)
    viewer.window.add_dock_widget(w, name="Infer rate maps")
    w.form.set_values(device="cpu", steps=steps, report_every=2)
    _wait(app, WARMED_UP.is_set)
    t_settle = time.perf_counter()
    _wait(app, lambda: time.perf_counter() - t_settle > 0.3)

    prof = cProfile.Profile() if profile is not None else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    worker = w.start()
    if prof:
        prof.disable()
    start_s = time.perf_counter() - t0
    beats: list = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: beats.append(time.perf_counter()))
    timer.start()
    updates: list = []
    worker.yielded.connect(lambda u: updates.append(u.step))
    prof_fit = cProfile.Profile() if profile is not None else None
    if prof_fit:
        prof_fit.enable()
    _wait(app, lambda: w.worker is None and w.state.status not in ("running", "stopping"))
    if prof_fit:
        prof_fit.disable()
    timer.stop()
    gaps = np.diff(beats) if len(beats) > 1 else np.array([np.nan])
    if profile is not None:
        for what, p in (("Start click", prof), ("main thread during the fit", prof_fit)):
            s = io.StringIO()
            pstats.Stats(p, stream=s).sort_stats("cumulative").print_stats(25)
            profile.append(f"## {size}x{size}: {what}\n\n{s.getvalue()}")

    # closing the viewer during a fit
    w.form.set_values(steps=100_000, report_every=5)
    w.start()
    t1 = time.perf_counter()
    _wait(app, lambda: time.perf_counter() - t1 > 1.0)
    t0 = time.perf_counter()
    viewer.close()
    close_s = time.perf_counter() - t0
    return {
        "size": size,
        "start_ms": start_s * 1e3,
        "stall_max_ms": float(np.nanmax(gaps)) * 1e3,
        "stall_median_ms": float(np.nanmedian(gaps)) * 1e3,
        "updates": len(updates),
        "close_ms": close_s * 1e3,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--label", default="")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--profile", type=Path, default=None)
    args = ap.parse_args(argv)
    import napari  # noqa: F401 - imported before the clock starts

    profile: list | None = [] if args.profile else None
    rows = []
    for size in args.sizes:
        for r in range(args.repeats):
            row = measure(size, args.steps, profile if r == 0 else None)
            row["repeat"] = r + 1
            rows.append(row)
            print(
                f"{size}x{size} #{r + 1}: Start {row['start_ms']:.0f} ms, "
                f"stall max {row['stall_max_ms']:.0f} ms "
                f"(median {row['stall_median_ms']:.1f} ms, {row['updates']} updates), close "
                f"{row['close_ms']:.0f} ms",
                flush=True,
            )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"\n### {args.label or 'run'} ({time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}, "
        f"{os.cpu_count()} CPUs, load average {load:.1f}, {args.steps} steps, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', '')})\n",
        "| image | repeat | Start click (ms) | max stall during fit (ms) | median beat (ms) | map updates "
        "| viewer.close() during a fit (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']}² | {r['repeat']} | {r['start_ms']:.0f} | {r['stall_max_ms']:.0f} | "
            f"{r['stall_median_ms']:.1f} | {r['updates']} | {r['close_ms']:.0f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not args.out.exists():
        args.out.write_text(
            "# Responsiveness of the fit widget\n\nWritten by benchmarks/gui_responsiveness.py.\n"
        )
    with args.out.open("a") as f:
        f.write("\n".join(lines) + "\n")
    if args.profile:
        args.profile.write_text("\n\n".join(profile))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
