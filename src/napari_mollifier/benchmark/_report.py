"""Markdown tables of benchmark records, with the machine they ran on."""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Sequence

import psutil


def machine_description(records: Sequence[dict] = ()) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpus = sorted({r["device_name"] for r in records if r.get("device_name")})
    parts = [f"CPU: {cpu}, {os.cpu_count()} logical cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM",
             f"torch {torch.__version__}, Python {platform.python_version()}, {platform.system()} {platform.release()}"]
    if gpus:
        parts.append("GPU: " + ", ".join(gpus))
    parts.append(f"date: {datetime.date.today().isoformat()}")
    return "; ".join(parts)


def _fmt_time(t):
    return "—" if t is None else (f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s")


def _fmt_mem(b):
    return "—" if b is None else f"{b / 2**20:,.0f} MiB"


def _ratio(a, b):
    return "—" if not a or not b else f"{a / b:.1f}×"


def derivatives_markdown(records: Sequence[dict], command: str) -> str:
    """Table of the "derivatives" problem with autodiff/mollifier ratios and physics overhead."""
    recs = [r for r in records if r.get("problem") == "derivatives"]
    lines = ["# Derivative benchmark: mollifier layer vs recursive autodiff", "",
             f"Reproduce: `{command}`", "", f"Machine: {machine_description(recs)}", "",
             "One full training step (forward, residual, loss, backward, Adam) of a 4 × 128 tanh "
             "coordinate MLP on an n × n grid; residual of order 1 (u_x + u_y), 2 (Laplacian) or "
             "4 (biharmonic); mollifier radius 6 grid points. `data` is the same step with no PDE "
             "term. Memory: " + (recs[0].get("memory_source", "") if recs else "") + ".", "",
             "| grid | order | method | time / step | peak memory | status |",
             "|---:|---:|---|---:|---:|---|"]
    for r in recs:
        status = r["status"] + (f" ({r['error']})" if r.get("error") and r["status"] != "ok" else "")
        lines.append(f"| {r['grid']}² | {r['order']} | {r['method']} | {_fmt_time(r.get('time_per_step_s'))} | "
                     f"{_fmt_mem(r.get('peak_memory_bytes'))} | {status} |")
    by = {(r["grid"], r["order"], r["method"]): r for r in recs}
    lines += ["", "## Autodiff / mollifier", "", "| grid | order | time ratio | memory ratio |",
              "|---:|---:|---:|---:|"]
    for (n, order, method), r in sorted(by.items()):
        if method != "mollifier" or (n, order, "autodiff") not in by:
            continue
        a = by[(n, order, "autodiff")]
        lines.append(f"| {n}² | {order} | {_ratio(a.get('time_per_step_s'), r.get('time_per_step_s'))} | "
                     f"{_ratio(a.get('peak_memory_bytes'), r.get('peak_memory_bytes'))} |")
    lines += ["", "## Physics overhead: mollifier order-4 step / data-only step (goal <= 1.5)", "",
              "| grid | ratio |", "|---:|---:|"]
    for (n, order, method), r in sorted(by.items()):
        if method == "mollifier" and order == 4 and (n, 0, "data") in by:
            d = by[(n, 0, "data")]
            lines.append(f"| {n}² | {_ratio(r.get('time_per_step_s'), d.get('time_per_step_s')).rstrip('×')} |")
    return "\n".join(lines) + "\n"
