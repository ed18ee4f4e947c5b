"""Markdown tables of benchmark records, with the machine they ran on."""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Sequence

from ._deps import require_psutil


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
    parts = [
        f"CPU: {cpu}, {os.cpu_count()} logical cores, "
        f"{require_psutil().virtual_memory().total / 2**30:.0f} GiB RAM",
        f"torch {torch.__version__} ({torch.get_num_threads()} intra-op threads), "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}",
    ]
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
    lines = [
        "# Derivative benchmark: mollifier layer vs recursive autodiff",
        "",
        f"Reproduce: `{command}`",
        "",
        f"Machine: {machine_description(recs)}",
        "",
        "One full training step (forward, residual, loss, backward, Adam) of a 4 × 128 tanh "
        "coordinate MLP on an n × n grid; residual of order 1 (u_x + u_y), 2 (Laplacian) or "
        "4 (biharmonic); mollifier radius 6 grid points. `data` is the same step with no PDE "
        "term. Memory: " + (recs[0].get("memory_source", "") if recs else "") + ".",
        "",
        "| grid | order | method | time / step | peak memory | status |",
        "|---:|---:|---|---:|---:|---|",
    ]
    for r in recs:
        status = r["status"] + (f" ({r['error']})" if r.get("error") and r["status"] != "ok" else "")
        lines.append(
            f"| {r['grid']}² | {r['order']} | {r['method']} | {_fmt_time(r.get('time_per_step_s'))} | "
            f"{_fmt_mem(r.get('peak_memory_bytes'))} | {status} |"
        )
    by = {(r["grid"], r["order"], r["method"]): r for r in recs}
    lines += [
        "",
        "## Autodiff / mollifier",
        "",
        "| grid | order | time ratio | memory ratio |",
        "|---:|---:|---:|---:|",
    ]
    for (n, order, method), r in sorted(by.items()):
        if method != "mollifier" or (n, order, "autodiff") not in by:
            continue
        a = by[(n, order, "autodiff")]
        lines.append(
            f"| {n}² | {order} | {_ratio(a.get('time_per_step_s'), r.get('time_per_step_s'))} | "
            f"{_ratio(a.get('peak_memory_bytes'), r.get('peak_memory_bytes'))} |"
        )
    lines += [
        "",
        "## Physics overhead: mollifier order-4 step / data-only step (goal <= 1.5)",
        "",
        "| grid | ratio |",
        "|---:|---:|",
    ]
    for (n, order, method), r in sorted(by.items()):
        if method == "mollifier" and order == 4 and (n, 0, "data") in by:
            d = by[(n, 0, "data")]
            lines.append(
                f"| {n}² | {_ratio(r.get('time_per_step_s'), d.get('time_per_step_s')).rstrip('×')} |"
            )
    return "\n".join(lines) + "\n"


def _fmt(v, spec="{:.3f}"):
    return "—" if v is None or (isinstance(v, float) and v != v) else spec.format(v)


def _fmt_grid(r: dict) -> str:
    """Grid of a fit record: "128" samples for the 1-D problem, "32²" for the 2-D ones."""
    n = r.get("grid")
    if n is None:
        return "—"
    return f"{n}" if r.get("problem") == "langevin" else f"{n}²"


def _common_losses(fits: Sequence[dict]) -> dict:
    """Per (problem, grid, steps, arch, method, noise): the loss every optimiser reached (the larger of their
    lowest training losses), and per record the steps it took to get there."""
    from .fits import steps_to_loss

    groups: dict = {}
    for r in fits:
        if r.get("status") == "ok" and r.get("curves"):
            groups.setdefault(
                (r["problem"], r.get("grid"), r.get("steps"), r["arch"], r["method"], r["noise"]), []
            ).append(r)
    out = {}
    for recs in groups.values():
        target = max(min(r["curves"]["loss"]) for r in recs)
        for r in recs:
            n = steps_to_loss(r["curves"]["step"], r["curves"]["loss"], target)
            out[id(r)] = (target, n, None if n is None else n * r["time_per_step_s"])
    return out


def paper_markdown(records: Sequence[dict], command: str, figure: str | None = None) -> str:
    """The papers' experiments: fits per problem x architecture x method x optimiser x noise,
    mollifier vs autodiff at the highest noise, SOAP vs Adam, and the 4th-order step costs."""
    fits = [r for r in records if r.get("kind") == "fit"]
    steps = [r for r in records if r.get("problem") == "chromatin" and r.get("kind", "step") == "step"]
    common = _common_losses(fits)
    lines = [
        "# The papers' benchmarks: mollifier vs autodiff, architectures, SOAP vs Adam",
        "",
        f"Reproduce: `{command}`",
        "",
        f"Machine: {machine_description(records)}",
        "",
        'Problems (docs/method.md, "Benchmark problems"; mollifier_bench.problems, '
        "napari_mollifier.inverse): "
        "`langevin` u_t = u + λ(t), 128 samples; `heat` 0 = λ(x, y) ∇²u + m, 32²; `chromatin` the "
        "4th-order chr model, a simulated 'gradient' nucleus, both rate maps (the record keeps the worse "
        "map's r and error). Noise: Gaussian, as a fraction of std(u) (chromatin: of std(φ) in the "
        "nucleus, ~0.3). λ is solved each step by least squares on a smooth basis (variable projection); "
        "the network is trained. Chromatin with autodiff: the network's correction to the (fixed, mollified) "
        "smoothed-data start is differentiated by recursive autograd and lap(μ) taken by the chain rule; the "
        "grid field and the ConvNet have no coordinates to differentiate. r: Pearson correlation of the "
        "recovered and true λ (chromatin: Γ_me and "
        "Γ_ac) on the scored region; rel. error: ‖λ̂ − λ‖₂/‖λ‖₂. Time per step excludes the alignment "
        "logging. Peak memory: " + (records[0].get("memory_source", "") if records else "") + ". "
        "'Steps to common loss': steps until the training loss first reaches the larger of the lowest "
        "losses of Adam and SOAP in the same row group (so both reach it).",
        "",
    ]
    for problem in ("langevin", "heat", "chromatin"):
        recs = [r for r in fits if r["problem"] == problem]
        if not recs:
            continue
        lines += [
            f"## {problem} (order {recs[0]['order']})",
            "",
            "| grid | arch | method | optimizer | noise | r | rel. error | time / step | peak memory | "
            "steps | final loss | steps to common loss | time to common loss | status |",
            "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in sorted(
            recs,
            key=lambda r: (
                -r.get("grid", 0),
                r["arch"],
                r["method"],
                r["noise"],
                r["optimizer"],
                r.get("steps", 0),
            ),
        ):
            target, n, t = common.get(id(r), (None, None, None))
            status = r["status"] + (f" ({r.get('error', '')[:80]})" if r["status"] != "ok" else "")
            lines.append(
                f"| {_fmt_grid(r)} | {r['arch']} | {r['method']} | {r['optimizer']} | {r['noise']:g} | "
                f"{_fmt(r.get('recovery_r'))} | {_fmt(r.get('recovery_rel_error'))} | "
                f"{_fmt_time(r.get('time_per_step_s'))} | {_fmt_mem(r.get('peak_memory_bytes'))} | "
                f"{r.get('steps')} | {_fmt(r.get('final_loss'), '{:.3g}')} | {_fmt(n, '{:d}')} | "
                f"{_fmt(t, '{:.1f} s')} | {status} |"
            )
        if problem == "chromatin" and any(r.get("grid", 128) < 96 for r in recs):
            # Measured on the quick benchmark's 64^2 nucleus: r of -0.8 to -0.97 with 3-20 % error.
            lines += [
                "",
                "Below 96²: the scored region (the nucleus eroded by 20 px) is small and the true maps "
                "barely vary in it, so r says little there; compare the rel. errors.",
            ]
        lines.append("")
    lines += _mollifier_vs_autodiff(fits) + _soap_vs_adam(fits, common) + _chromatin_steps(steps)
    if figure:
        lines += [
            "## Gradient alignment during training",
            "",
            "Alignment score of the data and residual gradients (1: aligned, −1: opposed; "
            "docs/method.md), Adam against SOAP, mollifier fits:",
            "",
            f"![alignment]({figure})",
            "",
        ]
    return "\n".join(lines) + "\n"


def _mollifier_vs_autodiff(fits) -> list[str]:
    by = {
        (
            r["problem"],
            r.get("grid", 0),
            r.get("steps", 0),
            r["arch"],
            r["method"],
            r["optimizer"],
            r["noise"],
        ): r
        for r in fits
        if r["status"] == "ok"
    }
    rows = []
    for (problem, grid, n_steps, arch, method, opt, noise), m in sorted(by.items()):
        a = by.get((problem, grid, n_steps, arch, "autodiff", opt, noise))
        if method != "mollifier" or a is None:
            continue
        em, ea = m.get("recovery_rel_error"), a.get("recovery_rel_error")
        verdict = "—" if em is None or ea is None else ("mollifier" if em < ea else "autodiff")
        rows.append(
            f"| {problem} | {_fmt_grid(m)} | {n_steps} | {arch} | {opt} | {noise:g} | {_fmt(em)} | "
            f"{_fmt(ea)} | {verdict} | "
            f"{_ratio(a.get('time_per_step_s'), m.get('time_per_step_s'))} | "
            f"{_ratio(a.get('peak_memory_bytes'), m.get('peak_memory_bytes'))} |"
        )
    if not rows:
        return []
    return [
        "## Mollifier vs autodiff (same data, architecture, steps, optimiser and noise)",
        "",
        "| problem | grid | steps | arch | optimizer | noise | rel. error mollifier | rel. error autodiff | "
        "better | time ratio (autodiff / mollifier) | memory ratio |",
        "|---|---:|---:|---|---|---:|---:|---:|---|---:|---:|",
        *rows,
        "",
    ]


def _soap_vs_adam(fits, common) -> list[str]:
    by = {
        (
            r["problem"],
            r.get("grid", 0),
            r.get("steps", 0),
            r["arch"],
            r["method"],
            r["noise"],
            r["optimizer"],
        ): r
        for r in fits
        if r["status"] == "ok"
    }
    rows = []
    for (problem, grid, n_steps, arch, method, noise, opt), adam in sorted(by.items()):
        soap = by.get((problem, grid, n_steps, arch, method, noise, "soap"))
        if opt != "adam" or soap is None:
            continue
        target, na, ta = common.get(id(adam), (None, None, None))
        _, ns, ts = common.get(id(soap), (None, None, None))
        rows.append(
            f"| {problem} | {_fmt_grid(adam)} | {arch} | {method} | {noise:g} | "
            f"{_fmt(target, '{:.3g}')} | {_fmt(na, '{:d}')} / "
            f"{_fmt(ns, '{:d}')} | {_fmt(ta, '{:.1f}')} / {_fmt(ts, '{:.1f}')} | "
            f"{_fmt(adam.get('recovery_rel_error'))} / {_fmt(soap.get('recovery_rel_error'))} |"
        )
    if not rows:
        return []
    return [
        "## SOAP vs Adam (Adam / SOAP)",
        "",
        "| problem | grid | arch | method | noise | common loss | steps to it | seconds to it | "
        "final rel. error |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]


def _chromatin_steps(steps) -> list[str]:
    if not steps:
        return []
    lines = [
        "## 4th order: one training step of the chromatin residual (coordinate MLP 4 × 128)",
        "",
        "| grid | method | time / step | peak memory | status |",
        "|---:|---|---:|---:|---|",
    ]
    by = {}
    for r in sorted(steps, key=lambda r: (r["grid"], r["method"])):
        by[(r["grid"], r["method"])] = r
        status = r["status"] + (f" ({r.get('error', '')[:80]})" if r["status"] != "ok" else "")
        lines.append(
            f"| {r['grid']}² | {r['method']} | {_fmt_time(r.get('time_per_step_s'))} | "
            f"{_fmt_mem(r.get('peak_memory_bytes'))} | {status} |"
        )
    lines += ["", "| grid | time ratio (autodiff / mollifier) | memory ratio |", "|---:|---:|---:|"]
    for (n, method), r in sorted(by.items()):
        a = by.get((n, "autodiff"))
        if method == "mollifier" and a is not None:
            lines.append(
                f"| {n}² | {_ratio(a.get('time_per_step_s'), r.get('time_per_step_s'))} | "
                f"{_ratio(a.get('peak_memory_bytes'), r.get('peak_memory_bytes'))} |"
            )
    return lines + [""]


def alignment_figure(records: Sequence[dict], path) -> bool:
    """Alignment score against step, Adam vs SOAP, one panel per problem (mollifier fits);
    False when no record has an alignment curve."""
    fits = [
        r
        for r in records
        if r.get("kind") == "fit"
        and r.get("status") == "ok"
        and r.get("method") == "mollifier"
        and r.get("curves", {}).get("alignment")
    ]
    problems = [p for p in ("langevin", "heat", "chromatin") if any(r["problem"] == p for r in fits)]
    if not problems:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(problems), figsize=(4.2 * len(problems), 3.4), squeeze=False)
    colours = {"adam": "tab:blue", "soap": "tab:red"}
    styles = ["-", "--", ":", "-."]
    for ax, problem in zip(axes[0], problems):
        recs = [r for r in fits if r["problem"] == problem]
        archs = sorted({r["arch"] for r in recs})
        noises = sorted({r["noise"] for r in recs})
        noise = noises[len(noises) // 2]  # the middle noise level keeps the panel readable
        for r in recs:
            if r["noise"] != noise:
                continue
            c = r["curves"]
            ax.plot(
                c["alignment_step"],
                c["alignment"],
                styles[archs.index(r["arch"]) % 4],
                color=colours.get(r["optimizer"], "k"),
                lw=1.2,
                label=f"{r['optimizer']} {r['arch']}",
            )
        ax.set_title(f"{problem}, noise {noise:g}")
        ax.set_xlabel("step")
        ax.set_ylim(-1.05, 1.05)
        ax.axhline(0, color="0.7", lw=0.6)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("alignment score")
    fig.tight_layout()
    import io as _io

    from napari_mollifier.io import atomic_write_bytes

    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return True
