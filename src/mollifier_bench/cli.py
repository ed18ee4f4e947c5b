"""``mollifier benchmark``: the sub-parser and the orchestration of the benchmark runs.

napari_mollifier's CLI adds the ``benchmark`` subcommand with :func:`add_benchmark_parser`; this
module imports neither torch nor psutil until a run starts.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

from napari_mollifier.io import atomic_write_text


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _describe(r: dict) -> str:
    t = r.get("time_per_step_s")
    m = r.get("peak_memory_bytes")
    figures = "" if t is None else f"{t * 1e3:9.1f} ms/step {(m or 0) / 2**20:9.0f} MiB"
    if r.get("kind") == "fit":
        e = r.get("recovery_rel_error")
        figures += (
            "" if e is None else f"  {r['arch']} {r['optimizer']} noise {r['noise']:g}: rel. error {e:.3f}"
        )
    grid = f"{r['grid']:>4}" + (
        "  " if r.get("problem") == "langevin" else "^2"
    )  # the 1st-order problem is 1-D
    return (
        f"{r['problem']:<12} {grid} order {r['order']} {r['method']:<9} "
        f"{r['status']:<13} {figures} {r.get('error', '') if r['status'] != 'ok' else ''}"
    ).rstrip()


PAPER_PROBLEMS = ("langevin", "heat", "chromatin")
BENCHMARK_PROBLEMS = ("derivatives",) + PAPER_PROBLEMS


def benchmark_configs(
    *,
    quick: bool,
    problems,
    grids=None,
    orders=(1, 2, 4),
    archs=None,
    methods=None,
    optimizers=("adam", "soap"),
    noises=None,
    steps=None,
    kinds=("step", "fit"),
) -> list[dict]:
    """The configurations ``mollifier benchmark`` runs (see its --help)."""
    import mollifier_bench as bm

    problems = [q for p in problems for q in (PAPER_PROBLEMS if p == "paper" else (p,))]
    configs: list[dict] = []
    for problem in dict.fromkeys(problems):
        if problem not in BENCHMARK_PROBLEMS:
            raise SystemExit(
                f"mollifier benchmark: unknown problem {problem!r}; choose from "
                f"{', '.join(BENCHMARK_PROBLEMS)} or paper"
            )
        if problem == "derivatives":
            configs += bm.derivative_configs(
                grids or (bm.QUICK_GRIDS if quick else bm.FULL_GRIDS), orders, quick=quick
            )
            continue
        if problem == "chromatin" and "step" in kinds:
            configs += bm.chromatin_step_configs(grids or ((32, 64) if quick else bm.FULL_GRIDS))
        if "fit" not in kinds:
            continue
        # --quick: the highest noise only (the mollifier-vs-autodiff acceptance level), fewer steps,
        # a smaller nucleus; under 5 minutes on 2 CPU cores.
        q_noise = noises or ((0.05,) if quick else (0.0, 0.01, 0.05))
        # (Measured idle: 297 s with ConvNet in the heat problem too and a 96^2 nucleus, too close to the
        # line: ~5 s of every configuration is the fresh process importing torch, 8.5 s simulating 96^2.)
        quick_archs = {"langevin": ("piratenet",), "heat": ("piratenet",), "chromatin": ("grid", "mlp")}
        q_archs = archs or (quick_archs[problem] if quick else None)
        q_grid = 64 if (quick and problem == "chromatin") else None
        # Chromatin fits with autodiff derivatives only when asked for (--methods): at 4th order a step
        # takes 2-5 s at 64^2 on one CPU core (~100x the mollifier's), so a 1200-step fit takes 40 min to 2 h.
        fit_methods = methods or (("mollifier",) if problem == "chromatin" else ("mollifier", "autodiff"))
        # --grids sets the chromatin nucleus size of the fits as well as the step grids.
        fit_grids = grids if (grids and problem == "chromatin") else (q_grid,)
        fits = [
            c
            for n in fit_grids
            for c in bm.fit_configs(
                [problem],
                archs=q_archs,
                methods=fit_methods,
                optimizers=optimizers,
                noises=q_noise,
                quick=quick,
                steps=steps,
                grid=n,
            )
        ]
        # Quick: the alignment score every 25 steps, not 10 (each log costs two backward passes).
        configs += [dict(c, alignment_every=25) for c in fits] if quick else fits
    # The acceptance comparisons first (highest noise, then lower), the longest step last, so that an
    # interrupted run has written the most telling records.
    noise_rank = {0.05: 0, 0.01: 1}
    return sorted(
        configs,
        key=lambda c: (
            c.get("kind") == "step" and c["grid"] > 128,
            noise_rank.get(c.get("noise"), 2) if c.get("kind") == "fit" else -1,
        ),
    )


def run_benchmark(
    *,
    quick: bool,
    problems,
    grids,
    orders,
    device: str,
    json_path,
    markdown_path,
    memory_cap_gb,
    command: str,
    min_time_s: float = 2.0,
    archs=None,
    methods=None,
    optimizers=("adam", "soap"),
    noises=None,
    steps=None,
    figure_path=None,
    kinds=("step", "fit"),
) -> list[dict]:
    import mollifier_bench as bm

    configs = benchmark_configs(
        quick=quick,
        problems=problems,
        grids=grids,
        orders=orders,
        archs=archs,
        methods=methods,
        optimizers=optimizers,
        noises=noises,
        steps=steps,
        kinds=kinds,
    )
    configs = [dict(c, min_time_s=min_time_s) for c in configs]
    _log(
        f"mollifier benchmark: {len(configs)} configurations on {bm.resolve_device(device)}, "
        "each in a fresh process"
    )
    records = []
    cap = int(memory_cap_gb * 2**30) if memory_cap_gb else None
    if figure_path is None and markdown_path and any(c.get("kind") == "fit" for c in configs):
        figure_path = Path(markdown_path).with_name(Path(markdown_path).stem + "_alignment.png")

    def write_report(final: bool):
        paper = [r for r in records if r.get("problem") in PAPER_PROBLEMS]
        figure = figure_path if final and figure_path and bm.alignment_figure(paper, figure_path) else None
        if final and figure:
            _log(f"alignment figure: {figure}")
        if markdown_path:
            parts = []
            if any(r.get("problem") == "derivatives" for r in records):
                parts.append(bm.derivatives_markdown(records, command))
            if paper:
                rel = None if figure is None else os.path.relpath(figure, Path(markdown_path).parent)
                parts.append(bm.paper_markdown(paper, command, rel))
            if not final:
                parts.append(f"\n(run in progress: {len(records)} of {len(configs)} configurations)\n")
            atomic_write_text(markdown_path, "\n".join(parts))

    for i, rec in enumerate(bm.run_configs(configs, device, memory_cap_bytes=cap), 1):
        records.append(rec)
        _log(f"[{i}/{len(configs)}] {_describe(rec)}")
        if json_path:  # keep what is finished if a later configuration crashes the run
            atomic_write_text(json_path, json.dumps(records, indent=1) + "\n")
        if i < len(configs):
            write_report(final=False)
    if json_path:
        _log(f"records: {json_path}")
    else:
        print(json.dumps(records, indent=1))
    write_report(final=True)
    if markdown_path:
        _log(f"table: {markdown_path}")
    return records


def _cmd_benchmark(args) -> int:
    from ._deps import require_psutil

    try:
        require_psutil()
    except ImportError as exc:
        raise SystemExit(f"mollifier benchmark: {exc}") from None
    command = "mollifier " + " ".join(shlex.quote(a) for a in args.argv)
    records = run_benchmark(
        quick=args.quick,
        problems=args.problems,
        grids=args.grids,
        orders=args.orders,
        device=args.device,
        json_path=args.json,
        markdown_path=args.markdown,
        memory_cap_gb=args.memory_cap_gb,
        command=command,
        min_time_s=args.min_time_s,
        archs=args.archs,
        methods=args.methods,
        optimizers=args.optimizers,
        noises=args.noise,
        steps=args.steps,
        figure_path=args.figure,
        kinds=args.kinds,
    )
    return 0 if all(r["status"] in ("ok", "out_of_memory") for r in records) else 1


def add_benchmark_parser(subparsers) -> None:
    """Add the ``benchmark`` subcommand to ``mollifier``'s argparse subparsers."""
    b = subparsers.add_parser(
        "benchmark",
        help="mollifier vs autodiff: time per training step and peak memory",
        description="Each configuration runs in a fresh process; configurations that do not "
        "fit in memory are recorded with status out_of_memory.",
    )
    b.add_argument(
        "--quick",
        action="store_true",
        help="small grids, fewer steps, 5 %% noise, one or two archs per "
        "problem (about 4 minutes on 2 CPU cores)",
    )
    b.add_argument("--json", type=Path, help="write the records (JSON list) here; default: standard output")
    b.add_argument("--markdown", type=Path, help="also write a markdown table with the machine description")
    b.add_argument(
        "--problems",
        nargs="+",
        default=["derivatives"],
        metavar="P",
        help="derivatives (default: one training step, orders 1/2/4), langevin (1st order), heat "
        "(2nd order), chromatin (4th order: step costs per grid and fits), or paper (the three)",
    )
    b.add_argument("--grids", nargs="+", type=int, metavar="N", help="grid sizes (points per side)")
    b.add_argument(
        "--orders",
        nargs="+",
        type=int,
        default=[1, 2, 4],
        choices=[1, 2, 4],
        metavar="K",
        help="residual orders (1, 2, 4)",
    )
    b.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    b.add_argument(
        "--memory-cap-gb",
        type=float,
        help="CPU: cap each configuration's memory (default: what is available, less 1.5 GiB)",
    )
    b.add_argument(
        "--min-time-s",
        type=float,
        default=2.0,
        help="time each configuration for at least this "
        "long (median of 2 to 20 steps after a warm-up step; default 2)",
    )
    b.add_argument(
        "--archs",
        nargs="+",
        metavar="A",
        help="fit problems: architectures (default: every one the "
        "problem supports: mlp, piratenet, convnet for heat, grid for chromatin)",
    )
    b.add_argument(
        "--methods",
        nargs="+",
        choices=["mollifier", "autodiff"],
        help="fit problems: derivative methods (default: both for langevin and heat, mollifier for "
        "chromatin, whose autodiff fits take 2-5 s per step at 64^2 on one CPU core; ask for them here)",
    )
    b.add_argument("--optimizers", nargs="+", default=["adam", "soap"], choices=["adam", "soap"])
    b.add_argument(
        "--noise",
        nargs="+",
        type=float,
        metavar="S",
        help="fit problems: noise levels as fractions "
        "of the data's standard deviation (default 0 0.01 0.05; --quick: 0.05)",
    )
    b.add_argument("--steps", type=int, help="fit problems: training steps (default per problem)")
    b.add_argument(
        "--kinds",
        nargs="+",
        default=["step", "fit"],
        choices=["step", "fit"],
        help="chromatin: single-step cost records, whole fits, or both (default)",
    )
    b.add_argument(
        "--figure", type=Path, help="fit problems: alignment-score figure (PNG); default beside --markdown"
    )
    b.set_defaults(func=_cmd_benchmark)
