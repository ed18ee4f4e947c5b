"""Calibrate the fit cost model (napari_mollifier.inverse._cost.COST_MODEL): peak memory and time of
short fits, each in a fresh process.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/fit_cost_model.py [--quick]

Per configuration (a nucleus-like phi of n x n pixels at 20 nm from benchmarks/solver_scaling.py's
``nucleus(n)``, default settings but ``steps`` and the varied setting, CPU, one thread): the RSS
before fit_rates (torch and the package imported, the image made) and the process's peak RSS
after it (``ru_maxrss``): their difference is the fit's memory; fit_rates' time per step and its
set-up (the fit's wall time less its training steps). Least squares (non-negative) of the model's
coefficients; prints the COST_MODEL block to paste into src/napari_mollifier/inverse/_cost.py and
writes benchmarks/results/fit_cost_model.md with measured and modelled values (of the new
coefficients and of those in the code now). Memory does not depend on the machine's load; the times
do: re-calibrate them on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "fit_cost_model.md"
PIXEL_NM = 20.0
STEPS = 5

#: (n, settings overrides): the default grid fit over sizes; small rate scales (the banded rate
#: system grows as K x bandwidth); the network fields; float64.
CONFIGS = [
    (256, {}),
    (512, {}),
    (1024, {}),
    (1536, {}),
    (2048, {}),
    (512, {"rate_scale_nm": 100.0}),
    (512, {"rate_scale_nm": 60.0}),
    (1024, {"rate_scale_nm": 150.0}),
    (256, {"arch": "mlp"}),
    (512, {"arch": "mlp"}),
    (1024, {"arch": "mlp"}),
    (256, {"arch": "piratenet"}),
    (512, {"arch": "piratenet"}),
    (1024, {"arch": "piratenet"}),
    (256, {"arch": "convnet"}),
    (512, {"arch": "convnet"}),
    (1024, {"arch": "convnet"}),
    (512, {"precision": "float64"}),
    (1024, {"precision": "float64"}),
]
QUICK = [(256, {}), (512, {}), (1024, {}), (512, {"rate_scale_nm": 100.0})]


def _rss_now() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def one(n: int, overrides: dict, steps: int) -> dict:
    import torch

    sys.path.insert(0, str(HERE))
    from solver_scaling import nucleus

    from napari_mollifier.config import InferenceSettings
    from napari_mollifier.inverse import estimate_fit_cost, fit_rates

    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    phi, mask = nucleus(n)
    settings = InferenceSettings(device="cpu", steps=steps, **overrides)
    cost = estimate_fit_cost(phi.shape, mask, pixel_size_nm=PIXEL_NM, settings=settings, device="cpu")
    before = _rss_now()
    t = time.perf_counter()
    *_, fit = fit_rates(phi, mask, PIXEL_NM, settings)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "n": n,
        "settings": overrides,
        "crop": list(cost.crop_shape),
        "P": cost.pixels,
        "K": cost.rate_points,
        "Kmin": min(cost.rate_grid),
        "bw": cost.half_bandwidth,
        "rss_before": before,
        "rss_peak": peak,
        "memory": peak - before,
        "fit_s": wall,
        "steps": fit.steps_done,
        "step_s": fit.time_per_step_s,
        "setup_s": wall - fit.steps_done * fit.time_per_step_s,
        "status": fit.status,
    }


def features(r: dict) -> dict:
    """The model's terms of a measured row (as napari_mollifier.inverse._cost._model forms them)."""
    p, k, kmin, bw = r["P"], r["K"], r["Kmin"], r["bw"]
    s = r["settings"]
    return {
        "plogp": p * math.log2(p),
        "kband": k * kmin**2,
        "band": 16 * k * (bw + 1),
        "arch": s.get("arch", "grid"),
        "float64": s.get("precision") == "float64",
    }


def fit_model(rows: list[dict]) -> dict:
    """Non-negative least squares of COST_MODEL's coefficients from the measured rows.

    Memory in relative terms (each row weighted by 1 / its value), so that the small fits count as
    much as the large ones; times likewise."""
    import numpy as np
    from scipy.optimize import nnls

    def solve(a, b):
        a, b = np.asarray(a, float), np.asarray(b, float)
        w = 1.0 / b
        scale = np.abs(a * w[:, None]).max(0)
        scale[scale == 0] = 1.0
        x, _ = nnls(a * w[:, None] / scale, b * w)
        return x / scale

    grid = [r for r in rows if features(r)["arch"] == "grid" and not features(r)["float64"]]
    f = [features(r) for r in grid]
    mem = solve([[1.0, r["P"], x["band"]] for r, x in zip(grid, f)], [r["memory"] for r in grid])
    step = solve([[x["plogp"], x["kband"]] for x in f], [r["step_s"] for r in grid])
    setup = solve([[1.0, x["plogp"], x["kband"]] for x in f], [r["setup_s"] for r in grid])
    model = {
        "constant": float(mem[0]),
        "per_pixel": float(mem[1]),
        "per_band": float(mem[2]),
        "cpu": {
            "setup_constant": float(setup[0]),
            "setup_fft": float(setup[1]),
            "setup_band": float(setup[2]),
            "step_fft": float(step[0]),
            "step_band": float(step[1]),
        },
        "network_constant": {},
        "network_per_pixel": {},
        "network_step_fft": {},
        "float64_factor": 2.0,
    }
    model["cpu"]["float64_step_factor"] = 2.0

    def grid_memory(r):
        x = features(r)
        return model["constant"] + model["per_pixel"] * r["P"] + model["per_band"] * x["band"]

    def grid_step(r):
        x = features(r)
        return model["cpu"]["step_fft"] * x["plogp"] + model["cpu"]["step_band"] * x["kband"]

    # Each network: the extra memory (a constant and per pixel) and time per step (per P log2 P)
    # over the grid field's model, least squares.
    for arch in ("mlp", "piratenet", "convnet"):
        rs = [r for r in rows if features(r)["arch"] == arch]
        const, per_px, step_fft = 0.0, 0.0, 0.0
        if len(rs) >= 2:
            extra = [r["memory"] - grid_memory(r) for r in rs]
            const, per_px = (float(v) for v in solve([[1.0, r["P"]] for r in rs], extra))
        elif rs:
            per_px = max(0.0, (rs[0]["memory"] - grid_memory(rs[0])) / rs[0]["P"])
        if rs:
            extra = [(r["step_s"] - grid_step(r), features(r)["plogp"]) for r in rs]
            step_fft = max(0.0, sum(e * p for e, p in extra) / sum(p * p for _, p in extra))
        model["network_constant"][arch] = const
        model["network_per_pixel"][arch] = per_px
        model["network_step_fft"][arch] = step_fft
    # float64: the per-pixel memory and the time per step (its FFT part) against float32's.
    rs = [r for r in rows if features(r)["float64"]]
    if rs:
        ratios = [
            (r["memory"] - model["constant"] - model["per_band"] * features(r)["band"])
            / (model["per_pixel"] * r["P"])
            for r in rs
        ]
        model["float64_factor"] = max(1.0, sum(ratios) / len(ratios))
        ratios = [
            (r["step_s"] - model["cpu"]["step_band"] * features(r)["kband"])
            / (model["cpu"]["step_fft"] * features(r)["plogp"])
            for r in rs
        ]
        model["cpu"]["float64_step_factor"] = max(1.0, sum(ratios) / len(ratios))
    return model


def _model_block(m: dict) -> str:
    """COST_MODEL as Python source, one coefficient a line (ruff-formatted as it stands)."""

    def value(v, indent: str) -> str:
        if isinstance(v, dict):
            inner = "".join(f'{indent}    "{k}": {value(x, indent + "    ")},\n' for k, x in v.items())
            return "{\n" + inner + indent + "}"
        return f"{v:.4g}".replace("e+0", "e0").replace("e+", "e")

    return "COST_MODEL = " + value(m, "")


def _label(r: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in r["settings"].items()) or "default"


def _modelled(r: dict, model: dict) -> tuple[float, float, float]:
    """(memory, step s, fit s) of a row under ``model``."""
    from napari_mollifier.config import InferenceSettings
    from napari_mollifier.inverse import _cost

    saved = dict(_cost.COST_MODEL)
    _cost.COST_MODEL.update(model)
    try:
        s = InferenceSettings(device="cpu", steps=r["steps"], **r["settings"])
        mem, total = _cost._model(r["P"], r["K"], r["Kmin"], r["bw"], r["steps"], s, "cpu")
        _, setup = _cost._model(r["P"], r["K"], r["Kmin"], r["bw"], 0, s, "cpu")
    finally:
        _cost.COST_MODEL.clear()
        _cost.COST_MODEL.update(saved)
    return mem, (total - setup) / max(r["steps"], 1), total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="four grid fits (256-1024) only")
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per configuration")
    ap.add_argument(
        "--rows", help="a saved JSON list of rows (from an earlier run): fit them instead of measuring"
    )
    ap.add_argument(
        "--configs",
        help="measure these configurations only, JSON [[n, {settings}], ...]; with --rows appended to them",
    )
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        n, overrides = json.loads(a.one)
        print(json.dumps(one(n, overrides, a.steps)))
        return
    from napari_mollifier.inverse import _cost

    current = json.loads(json.dumps(_cost.COST_MODEL))
    rows = json.loads(Path(a.rows).read_text()) if a.rows else []
    if a.configs or not a.rows:
        configs = json.loads(a.configs) if a.configs else QUICK if a.quick else CONFIGS
        for n, overrides in configs:
            load = open("/proc/loadavg").read().split()[:3]
            try:
                r = subprocess.run(
                    [sys.executable, __file__, "--one", json.dumps([n, overrides]), "--steps", str(a.steps)],
                    capture_output=True,
                    text=True,
                    timeout=a.timeout,
                    env=dict(os.environ, OMP_NUM_THREADS="1"),
                )
                res = (
                    json.loads(r.stdout.strip().splitlines()[-1])
                    if r.returncode == 0
                    else {"n": n, "settings": overrides, "error": r.stderr.strip()[-300:]}
                )
            except subprocess.TimeoutExpired:
                res = {"n": n, "settings": overrides, "error": f"over {a.timeout:.0f} s"}
            res["load"] = " ".join(load)
            print(json.dumps(res), flush=True)
            rows.append(res)
        (OUT.with_suffix(".json")).write_text(json.dumps(rows, indent=1) + "\n")
    good = [r for r in rows if "error" not in r]
    model = fit_model(good)
    block = _model_block(model)
    print(block)
    lines = [
        "# Fit cost model: measured and modelled memory and time",
        "",
        "`OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/fit_cost_model.py"
        + (" --quick" if a.quick else "")
        + "` (rows saved in `fit_cost_model.json`; `--rows` refits them)",
        "",
        f"Nucleus-like phi of n x n pixels at {PIXEL_NM:g} nm (`benchmarks/solver_scaling.py`'s `nucleus`), "
        f"default settings but {a.steps} steps and the setting shown, CPU, one thread, each row in a fresh "
        "process. Memory: peak RSS (ru_maxrss) less the RSS before fit_rates (torch and the package "
        "imported, the image made). Step: fit_rates' time per training step; set-up: the fit's wall "
        "time less its steps. Model: the coefficients below (non-negative least squares, relative "
        "errors); `code` = the coefficients in `_cost.py` when this ran. Load: /proc/loadavg "
        "(1/5/15 min) at the start of the row; the times depend on it, memory does not.",
        "",
        "| n | setting | crop | K | bw | memory MB | model MB | code MB | step s | model step s | "
        "set-up s | fit s | model fit s | load |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(rows, key=lambda r: (_label(r) != "default", _label(r), r["n"])):
        setting = _label(r)
        if "error" in r:
            lines.append(f"| {r['n']} | {setting} | | | | | | | | | | | | {r['load']} ({r['error'][-80:]}) |")
            continue
        mem, step, total = _modelled(r, model)
        code_mem = _modelled(r, current)[0]
        lines.append(
            f"| {r['n']} | {setting} | {r['crop'][0]}x{r['crop'][1]} | {r['K']} | {r['bw']} | "
            f"{r['memory'] / 1e6:.0f} | {mem / 1e6:.0f} | {code_mem / 1e6:.0f} | {r['step_s']:.3f} | "
            f"{step:.3f} | {r['setup_s']:.2f} | {r['fit_s']:.1f} | {total:.1f} | {r['load']} |"
        )
    lines += [
        "",
        "Fitted coefficients (paste into `src/napari_mollifier/inverse/_cost.py`):",
        "",
        "```python",
    ]
    lines += [block, "```", ""]
    OUT.write_text("\n".join(lines))
    print(OUT)


if __name__ == "__main__":
    main()
