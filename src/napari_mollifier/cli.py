"""The ``mollifier`` command line: thin commands over the Python API.

Implemented now: ``benchmark`` and ``demo``. ``infer``, ``batch`` and ``simulate``
(docs/interfaces.md) arrive with the inference issue.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from .io import atomic_write_text


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _describe(r: dict) -> str:
    t = r.get("time_per_step_s")
    m = r.get("peak_memory_bytes")
    figures = "" if t is None else f"{t * 1e3:9.1f} ms/step {(m or 0) / 2**20:9.0f} MiB"
    return (f"{r['problem']:<12} {r['grid']:>4}^2 order {r['order']} {r['method']:<9} "
            f"{r['status']:<13} {figures} {r.get('error', '') if r['status'] != 'ok' else ''}").rstrip()


def run_benchmark(*, quick: bool, problems, grids, orders, device: str, json_path, markdown_path,
                  memory_cap_gb, command: str, min_time_s: float = 2.0) -> list[dict]:
    from . import benchmark as bm

    configs: list[dict] = []
    for problem in problems:
        if problem != "derivatives":
            raise SystemExit(f"mollifier benchmark: problem {problem!r} is not implemented yet; "
                             "available: derivatives")
        configs += bm.derivative_configs(grids or (bm.QUICK_GRIDS if quick else bm.FULL_GRIDS), orders,
                                         quick=quick)
    configs = [dict(c, min_time_s=min_time_s) for c in configs]
    _log(f"mollifier benchmark: {len(configs)} configurations on {bm.resolve_device(device)}, "
         "each in a fresh process")
    records = []
    cap = int(memory_cap_gb * 2**30) if memory_cap_gb else None
    for i, rec in enumerate(bm.run_configs(configs, device, memory_cap_bytes=cap), 1):
        records.append(rec)
        _log(f"[{i}/{len(configs)}] {_describe(rec)}")
        if json_path:  # keep what is finished if a later configuration crashes the run
            atomic_write_text(json_path, json.dumps(records, indent=1) + "\n")
    if json_path:
        _log(f"records: {json_path}")
    else:
        print(json.dumps(records, indent=1))
    if markdown_path:
        atomic_write_text(markdown_path, bm.derivatives_markdown(records, command))
        _log(f"table: {markdown_path}")
    return records


def _cmd_benchmark(args) -> int:
    command = "mollifier " + " ".join(shlex.quote(a) for a in args.argv)
    records = run_benchmark(quick=args.quick, problems=args.problems, grids=args.grids, orders=args.orders,
                            device=args.device, json_path=args.json, markdown_path=args.markdown,
                            memory_cap_gb=args.memory_cap_gb, command=command, min_time_s=args.min_time_s)
    return 0 if all(r["status"] in ("ok", "out_of_memory") for r in records) else 1


def _cmd_demo(args) -> int:
    out = Path(args.out)
    _log(f"mollifier demo: inference is not implemented yet; running the quick benchmark into {out}/")
    records = run_benchmark(quick=True, problems=["derivatives"], grids=None, orders=(1, 2, 4),
                            device=args.device, json_path=out / "benchmark.json",
                            markdown_path=out / "benchmark.md", memory_cap_gb=None,
                            command=f"mollifier demo --out {shlex.quote(str(out))}")
    print((out / "benchmark.md").read_text())
    return 0 if all(r["status"] in ("ok", "out_of_memory") for r in records) else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mollifier", description="Epigenetic rate maps from chromatin images "
                                "with mollifier-layer PINNs, and the mollifier-vs-autodiff benchmarks.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser("benchmark", help="mollifier vs autodiff: time per training step and peak memory",
                       description="Each configuration runs in a fresh process; configurations that do not "
                       "fit in memory are recorded with status out_of_memory.")
    b.add_argument("--quick", action="store_true", help="small grids only (under 2 minutes on 2 CPU cores)")
    b.add_argument("--json", type=Path, help="write the records (JSON list) here; default: standard output")
    b.add_argument("--markdown", type=Path, help="also write a markdown table with the machine description")
    b.add_argument("--problems", nargs="+", default=["derivatives"], metavar="P", help="default: derivatives")
    b.add_argument("--grids", nargs="+", type=int, metavar="N", help="grid sizes (points per side)")
    b.add_argument("--orders", nargs="+", type=int, default=[1, 2, 4], choices=[1, 2, 4], metavar="K",
                   help="residual orders (1, 2, 4)")
    b.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    b.add_argument("--memory-cap-gb", type=float, help="CPU: cap each configuration's memory (default: "
                   "what is available, less 1.5 GiB)")
    b.add_argument("--min-time-s", type=float, default=2.0, help="time each configuration for at least this "
                   "long (median of 2 to 20 steps after a warm-up step; default 2)")
    b.set_defaults(func=_cmd_benchmark)

    d = sub.add_parser("demo", help="the README's main job (for now: the quick benchmark)")
    d.add_argument("--out", default="mollifier-demo", help="output folder (default: ./mollifier-demo)")
    d.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    d.set_defaults(func=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
