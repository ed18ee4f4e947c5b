"""A microscope-like round trip through the napari plugin, timed: a ThunderSTORM table of two
nuclei -> open -> label the nuclei -> fit every nucleus -> save all -> reopen the maps and read
the table; then the same from the command line.

The table is made from the bundled sample nuclei 1 and 2 (``sample_images/``): each rendered as an
SMLM localisation table (``simulate.render_smlm``: repeated localisations, precision 10-25 nm),
nucleus 2 shifted 3 µm to the right, both written as one ThunderSTORM CSV (``x [nm]``, ``y [nm]``,
``uncertainty [nm]``). The GUI steps drive the real widgets (a napari viewer under a virtual
display, as a user's clicks would call them); each step's wall time is recorded.

    xvfb-run -a PYTHONPATH=src .venv/bin/python benchmarks/round_trip.py

writes benchmarks/results/round_trip.md (and leaves the files in ``--work``).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "round_trip.md"
SHIFT_NM = 3000.0


def write_two_nuclei_table(path: Path, seed: int = 7, emitters_per_um2: float = 30000.0) -> dict:
    """The ThunderSTORM CSV of sample nuclei 1 and 2 side by side; returns their true mean rates."""
    from napari_mollifier.simulate import render_smlm
    from napari_mollifier.simulate._render import THUNDERSTORM_HEADER

    rows, truth = [], {}
    for k, name in enumerate(("nucleus1", "nucleus2")):
        phi = tifffile.imread(ROOT / "sample_images" / f"{name}_phi.tif")
        mask = tifffile.imread(ROOT / "sample_images" / f"{name}_mask.tif") > 0
        r = render_smlm(phi, mask, 10.0, emitters_per_um2=emitters_per_um2, seed=seed + k)
        table = r.table.copy()
        table[:, 2] += k * SHIFT_NM
        rows.append(table)
        me = tifffile.imread(ROOT / "sample_images" / f"{name}_gamma_me_true.tif")[mask]
        ac = tifffile.imread(ROOT / "sample_images" / f"{name}_gamma_ac_true.tif")[mask]
        truth[name] = (float(me.mean()), float(ac.mean()))
    table = np.concatenate(rows)
    table[:, 0] = np.arange(1, len(table) + 1)
    lines = [",".join(f'"{h}"' for h in THUNDERSTORM_HEADER)]
    lines += [",".join(f"{v:.2f}" if j in (2, 3, 6) else f"{v:.0f}" for j, v in enumerate(t)) for t in table]
    path.write_text("\n".join(lines) + "\n")
    return truth | {"localisations": len(table)}


def wait_for(app, done, timeout_s: float) -> None:
    t0 = time.perf_counter()
    while not done():
        app.processEvents()
        time.sleep(0.01)
        if time.perf_counter() - t0 > timeout_s:
            raise TimeoutError("the fit did not finish in time")


def gui_round_trip(table: Path, work: Path, steps: int | None) -> tuple[list, list]:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_mollifier._napari._fit_widget import FitWidget
    from napari_mollifier._napari._save import save_all

    times = []
    app = QApplication.instance() or QApplication([])

    t = time.perf_counter()
    viewer = napari.Viewer(show=False)
    (layer,) = viewer.open(str(table), plugin="napari-mollifier")
    times.append(
        ("open the table (File › Open)", time.perf_counter() - t, f"layer {layer.name!r} {layer.data.shape}")
    )

    t = time.perf_counter()
    w = FitWidget(viewer)
    if steps:
        w.form.set_values(steps=steps)
    w.form.set_values(device="cpu")
    labels = w.label_nuclei()
    n = int(labels.data.max()) if labels is not None else 0
    times.append(("Label nuclei", time.perf_counter() - t, f"{n} nuclei labelled"))

    t = time.perf_counter()
    worker = w.start()
    if worker is None:
        raise RuntimeError(w.state.message)
    wait_for(app, lambda: w.worker is None and w.state.status not in ("running", "stopping"), 1800)
    times.append(("Start (fit every nucleus)", time.perf_counter() - t, w.state.message))

    t = time.perf_counter()
    paths = save_all(w, str(work / "saved"))
    if paths is None:
        raise RuntimeError(w.state.message)
    times.append(("Save all…", time.perf_counter() - t, f"{len(paths)} files"))

    t = time.perf_counter()
    viewer2 = napari.Viewer(show=False)
    reopened = viewer2.open(str(paths["gamma_me"]), plugin="napari-mollifier")
    with open(paths["nuclei"], newline="") as f:
        rows = list(csv.DictReader(f))
    times.append(
        (
            "reopen a map and read the table",
            time.perf_counter() - t,
            f"{reopened[0].name}: scale {tuple(round(float(s), 2) for s in reopened[0].scale)} nm, "
            f"{len(rows)} rows",
        )
    )
    viewer.close()
    viewer2.close()
    return times, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/mollifier-round-trip"))
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the settings')")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    torch.set_flush_denormal(True)
    a.work.mkdir(parents=True, exist_ok=True)
    # A first-time user: the widget's remembered settings go to (and come from) a fresh folder.
    os.environ["NAPARI_MOLLIFIER_CONFIG_DIR"] = str(a.work / "config")
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    table = a.work / "two_nuclei_thunderstorm.csv"
    t = time.perf_counter()
    truth = write_two_nuclei_table(table)
    made = time.perf_counter() - t

    times, rows = gui_round_trip(table, a.work, a.steps)

    cli_out = a.work / "cli"
    cmd = [sys.executable, "-m", "napari_mollifier.cli", "infer", str(table), "--labels", "auto"]
    cmd += ["--out", str(cli_out), "--device", "cpu", "--quiet"] + (
        ["--steps", str(a.steps)] if a.steps else []
    )
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    cli_s = time.perf_counter() - t
    cli_rows = []
    if (cli_out / "summary.csv").is_file():
        cli_rows = list(csv.DictReader((cli_out / "summary.csv").open()))

    lines = [
        "# Round trip: a localisation table of two nuclei through the plugin and the command line",
        "",
        "`xvfb-run -a env PYTHONPATH=src .venv/bin/python benchmarks/round_trip.py"
        + (f" --steps {a.steps}" if a.steps else "")
        + f"` ({time.strftime('%Y-%m-%d')}; {platform.machine()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__} CPU, load {load} at the start)",
        "",
        f"Table: sample nuclei 1 and 2 as SMLM localisations ({truth['localisations']} rows, ThunderSTORM "
        f"CSV, 30 000 emitters per µm² of heterochromatin, made in {made:.1f} s), nucleus 2 shifted "
        f"{SHIFT_NM / 1000:g} µm. Default settings" + (f" but {a.steps} steps" if a.steps else "") + ".",
        "",
        "| step (GUI) | s | what it gave |",
        "|---|---:|---|",
        *[f"| {s} | {dt:.1f} | {what} |" for s, dt, what in times],
        f"| **GUI total** | **{sum(dt for _, dt, _ in times):.1f}** | |",
        f"| `mollifier infer TABLE --labels auto --out DIR` | {cli_s:.1f} | exit {proc.returncode}, "
        f"{len(cli_rows)} rows in summary.csv |",
        "",
        "The table the GUI saved (`<stem>_nuclei.csv`), against the truth of each sample nucleus:",
        "",
        "| label | centroid x nm | area µm² | mean Γ_me | mean Γ_ac | status | verdict |",
        "|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.get('label')} | {float(r.get('centroid_x_nm') or 'nan'):.0f} | "
            f"{float(r.get('area_um2') or 'nan'):.2f} | {float(r.get('gamma_me_mean') or 'nan'):.5f} | "
            f"{float(r.get('gamma_ac_mean') or 'nan'):.5f} | {r.get('status')} | {r.get('verdict')} |"
        )
    lines += [
        "",
        "True mean rates: "
        + "; ".join(
            f"{k}: Γ_me {v[0]:.5f}, Γ_ac {v[1]:.5f}" for k, v in truth.items() if k != "localisations"
        ),
    ]
    if proc.returncode not in (0, 1):
        lines += [
            "",
            f"The command line failed: `{proc.stderr.strip().splitlines()[-1] if proc.stderr else ''}`",
        ]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
