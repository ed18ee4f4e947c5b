"""Chromatin fit, mollifier vs autodiff derivatives: recovery error against the training step.

    .venv/bin/python benchmarks/experiments/chromatin_autodiff_curve.py ARCH METHOD STEPS OUT.json
        [GRID] [NOISE] [FORM]

The data of ``mollifier benchmark --problems chromatin --grids GRID --noise NOISE`` (gradient
nucleus, data seed 7; GRID default 64, NOISE default 0.05 of std(phi)), Adam, the solver's
defaults; METHOD is the ``derivatives`` setting (mollifier or autodiff); FORM the
``residual_form`` (default nested; autodiff always takes the chain rule, so "chain" puts the
mollifier on the same formula). Every 25 steps the
current rate maps are scored as the benchmark scores its records (inner nucleus: the mask eroded
by 20 px; the worse map's rel. error and r) and OUT.json is rewritten (atomically), so a run
stopped early keeps its curve. Why: at 4th order an autodiff step of the PirateNet takes ~17 s
at 64^2 on one CPU core, so a whole fit (hours) may have to be cut short; both methods follow the
same learning-rate schedule of STEPS steps, so their errors at equal steps compare.

    .venv/bin/python benchmarks/experiments/chromatin_autodiff_curve.py --table OUT.md RUN.json [RUN.json ...]

renders saved runs as a table: the worse map's rel. error every 100 steps, and seconds per step.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mollifier_bench.fits import chromatin_recovery, prepare
from napari_mollifier.config import InferenceSettings
from napari_mollifier.inverse import fit_rates
from napari_mollifier.io import atomic_write_text


def table(out: Path, runs: list[Path]) -> None:
    recs = [json.loads(p.read_text()) for p in runs]
    marks = sorted({p["step"] for r in recs for p in r["curve"] if p["step"] % 100 == 0})
    lines = [
        "# Chromatin fit: recovery error against the step, mollifier vs autodiff",
        "",
        "Reproduce: `.venv/bin/python benchmarks/experiments/chromatin_autodiff_curve.py ARCH METHOD STEPS "
        "OUT.json GRID NOISE [FORM]` per row, then `--table`. Gradient nucleus (data seed 7), Adam, solver "
        "defaults; the worse map's rel. error on the nucleus eroded by 20 px; s / step: wall time over the "
        "steps run (set-up and scoring included; one thread each, two runs side by side).",
        "",
        "| grid | noise | arch | derivatives | residual form | "
        + " | ".join(f"step {m}" for m in marks)
        + " | s / step |",
        "|---:|---:|---|---|---|" + "---:|" * (len(marks) + 1),
    ]
    for r in recs:
        at = {p["step"]: p["rel_error"] for p in r["curve"]}
        last = r["curve"][-1]
        cells = " | ".join("—" if m not in at else f"{at[m]:.3f}" for m in marks)
        lines.append(
            f"| {r['grid']}² | {r['noise']:g} | {r['arch']} | {r['method']} | "
            f"{'chain (autodiff always)' if r['method'] == 'autodiff' else r.get('residual_form', 'nested')}"
            " | "
            f"{cells} | "
            f"{last['wall_s'] / last['step']:.3g} |"
        )
    atomic_write_text(out, "\n".join(lines) + "\n")


def main():
    if sys.argv[1] == "--table":
        table(Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]])
        return
    arch, method, steps, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    grid = int(sys.argv[5]) if len(sys.argv) > 5 else 64
    noise = float(sys.argv[6]) if len(sys.argv) > 6 else 0.05
    form = sys.argv[7] if len(sys.argv) > 7 else "nested"
    torch.set_flush_denormal(True)
    sim, phi = prepare(dict(problem="chromatin", grid=grid, noise=noise))
    settings = InferenceSettings(
        arch=arch, derivatives=method, steps=steps, device="cpu", report_every=25, residual_form=form
    )
    record = dict(
        arch=arch,
        method=method,
        steps=steps,
        grid=grid,
        noise=noise,
        residual_form=form,
        threads=torch.get_num_threads(),
        curve=[],
    )
    t0 = time.perf_counter()
    for event in fit_rates(phi, sim.mask, sim.pixel_size_nm, settings):
        if not hasattr(event, "maps") or event.maps is None:
            continue
        # The event's maps cover the analysed crop (NaN outside the analysed region).
        full = {}
        for name in ("gamma_me", "gamma_ac"):
            full[name] = np.full(sim.phi.shape, np.nan)
            full[name][event.box] = event.maps[name]
        (r_me, r_ac), (rel_me, rel_ac) = chromatin_recovery(
            full["gamma_me"], full["gamma_ac"], sim, np.isfinite(full["gamma_me"])
        )
        point = dict(
            step=event.step,
            wall_s=time.perf_counter() - t0,
            loss=event.losses.get("total"),
            rel_error_gamma_me=rel_me,
            r_gamma_me=r_me,
            rel_error_gamma_ac=rel_ac,
            r_gamma_ac=r_ac,
            rel_error=max(rel_me, rel_ac),
            r=min(r_me, r_ac),
        )
        record["curve"].append(point)
        atomic_write_text(out, json.dumps(record, indent=1))
        print(
            f"{arch} {method} step {event.step}: rel. error {point['rel_error']:.3f}, r {point['r']:.3f}, "
            f"loss {point['loss']:.4g}, {point['wall_s']:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
