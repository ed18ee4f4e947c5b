"""The ``mollifier`` command line: thin commands over the Python API.

Implemented: ``infer``, ``batch`` (a folder, on dask.distributed), ``simulate``, ``benchmark``,
``demo`` (docs/interfaces.md) and ``scaling`` (the per-domain scaling-law cross-check, docs/model.md
section 5).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from .io import atomic_write_text


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
    from . import benchmark as bm

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
    from . import benchmark as bm

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


def _settings(args, command: str):
    """InferenceSettings from the fit options; invalid values end the command with one line."""
    from pydantic import ValidationError

    from .config import COMPARISON_FIELDS, InferenceSettings

    kw = dict(
        method=args.method, arch=args.arch, optimizer=args.optimizer, seed=args.seed, device=args.device
    )
    if args.steps is not None:
        kw["steps"] = args.steps
    if args.kernel_radius_nm is not None:
        kw["kernel_radius_nm"] = args.kernel_radius_nm
    kw.update({k: getattr(args, k) for k in COMPARISON_FIELDS if getattr(args, k, None) is not None})
    if args.intensity_levels:
        if args.input != "intensity":
            raise SystemExit(
                f"mollifier {command}: --intensity-levels calibrates intensity input; "
                "drop it or use --input intensity"
            )
        kw["euchromatin_level"], kw["heterochromatin_level"] = args.intensity_levels
    try:
        return InferenceSettings(**kw)
    except ValidationError as exc:  # one line: the first problem, named by its field
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise SystemExit(
            f"mollifier {command}: invalid settings: {where + ': ' if where else ''}"
            f"{err['msg'].removeprefix('Value error, ')}"
        ) from None


def infer_files(
    images, out, *, pixel_size_nm=None, mask=None, input="intensity", settings=None, overview: bool = False
) -> list[tuple[str, str, str]]:
    """Infer and write each image; returns (file, status, reason) rows. A failing file never
    stops the others (the shared per-file step is napari_mollifier.batch.infer_file)."""
    from .batch import infer_file

    rows = []
    for image in images:
        r = infer_file(
            image,
            out,
            pixel_size_nm=pixel_size_nm,
            mask=mask,
            input=input,
            settings=settings,
            overview=overview,
        )
        if r.status == "ok":
            s = r.summary
            _log(
                f"{image}: ok in {r.runtime_s:.0f} s on {r.device}; mean Gamma_me "
                f"{s['gamma_me']['mean']:.4g}, Gamma_ac {s['gamma_ac']['mean']:.4g} (1/tau); "
                f"-> {r.outputs['json']}"
            )
        else:
            _log(f"error: {r.reason}")
        rows.append((str(image), r.status, r.reason))
    return rows


def _cmd_infer(args) -> int:
    settings = _settings(args, "infer")
    rows = infer_files(
        args.images,
        args.out,
        pixel_size_nm=args.pixel_size,
        mask=args.mask,
        input=args.input,
        settings=settings,
        overview=args.overview,
    )
    failed = [r for r in rows if r[1] != "ok"]
    if failed:
        _log(f"mollifier infer: {len(failed)} of {len(rows)} inputs failed")
    return 1 if failed else 0


class _ProgressBar:
    """A one-line text progress bar on standard error (redrawn in place on a terminal, one line per
    file otherwise, so that batch logs stay readable)."""

    def __init__(self, n: int, width: int = 30):
        self.n, self.width, self.done, self.counts = n, width, 0, {}
        self.t0 = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def update(self, result) -> None:
        self.done += 1
        self.counts[result.status] = self.counts.get(result.status, 0) + 1
        elapsed = time.perf_counter() - self.t0
        fill = int(self.width * self.done / max(self.n, 1))
        counts = ", ".join(f"{v} {k}" for k, v in sorted(self.counts.items()))
        eta = elapsed / self.done * (self.n - self.done)
        line = (
            f"[{'#' * fill}{'.' * (self.width - fill)}] {self.done}/{self.n} files ({counts}) "
            f"{elapsed:.0f} s, ~{eta:.0f} s left"
        )
        if self.tty:
            print("\r" + line, end="" if self.done < self.n else "\n", file=sys.stderr, flush=True)
        else:
            _log(line)


def _batch_mask(value):
    """--mask of ``batch``: None (segment), "sibling" (S_mask.tif beside each image) or one file."""
    if value is None:
        return None
    if value == "sibling":
        from .batch import sibling_mask

        return sibling_mask
    return value


def _cmd_batch(args) -> int:
    import os

    from .batch import find_images, run_batch
    from .io import InputError

    settings = _settings(args, "batch")
    try:
        images = find_images(args.folder, args.pattern)
    except InputError as exc:
        raise SystemExit(f"mollifier batch: {exc}") from None
    if not images:
        raise SystemExit(
            f"mollifier batch: no file matches {args.pattern!r} in {args.folder}; "
            "check the folder and --pattern"
        )
    if args.scheduler:
        where = f"the dask scheduler at {args.scheduler}"
        workers = None
    elif args.workers == 0:
        where, workers = "this process (no dask)", None
    else:
        workers = args.workers or _default_workers(len(images))
        where = f"a local dask cluster of {workers} worker process{'es' if workers > 1 else ''}"
    _log(
        f"mollifier batch: {len(images)} files on {where} into {args.out}/"
        f"{' (files done with the same settings are skipped)' if not args.no_resume else ''}"
    )
    bar = _ProgressBar(len(images))
    gen = run_batch(
        images,
        args.out,
        pixel_size_nm=args.pixel_size,
        mask=_batch_mask(args.mask),
        input=args.input,
        settings=settings,
        overview=args.overview,
        skip_existing=not args.no_resume,
        workers=workers,
        scheduler=args.scheduler,
    )
    results = []
    try:
        while True:
            item = next(gen)
            if not isinstance(item[2], str):
                r = item[2]
                if r.status in ("failed", "diverged", "cancelled"):
                    _log(f"error: {r.reason}")
                elif r.reason and r.status == "ok":
                    _log(f"notice: {r.reason}")
                bar.update(r)
    except StopIteration as stop:
        results = stop.value or []
    counts = {k: sum(r.status == k for r in results) for k in ("ok", "skipped", "failed", "diverged")}
    bad = [r for r in results if r.status not in ("ok", "skipped")]
    _log(
        f"mollifier batch: {counts['ok']} done, {counts['skipped']} skipped (already done), "
        f"{len(bad)} not done of {len(results)}; summary: {os.path.join(args.out, 'summary.csv')}"
    )
    return 1 if bad else 0


def _default_workers(n_files: int) -> int:
    """One worker per GPU when there are GPUs, else one per CPU core; never more than files."""
    import os

    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else (os.cpu_count() or 1)
    return max(1, min(n, n_files))


def _cmd_simulate(args) -> int:
    from .simulate import write_simulation

    paths = write_simulation(
        args.out,
        name=args.name,
        size=args.size,
        rates=args.rates,
        mask=args.mask,
        seed=args.seed,
        pixel_size_nm=args.pixel_size,
        localisations=args.localisations,
        beta=args.lamina_beta,
        photons=args.photons,
    )
    _log(f"mollifier simulate: wrote {', '.join(sorted(str(p) for p in paths.values()))}")
    return 0


def _cmd_demo(args) -> int:
    from ._samples import sample_images_dir
    from .config import InferenceSettings

    out = Path(args.out)
    root = Path(args.samples) if args.samples else sample_images_dir()
    images = sorted(root.glob("*_phi.tif"))
    if not images:
        raise SystemExit(
            f"mollifier demo: no *_phi.tif in {root}; regenerate them with "
            "`bash scripts/make_sample_images.sh`"
        )
    # The heterochromatin-fraction images with their masks: the path that is validated
    # (benchmarks/results/chromatin_recovery.md). Intensity input is not trustworthy yet.
    _log(
        f"mollifier demo: rate maps of {len(images)} sample nuclei (phi images with their masks) into {out}/"
    )
    rows = []
    for image in images:
        mask = image.with_name(image.name.replace("_phi.tif", "_mask.tif"))
        rows += infer_files(
            [image],
            out,
            mask=mask,
            input="fraction",
            settings=InferenceSettings(device=args.device),
            overview=True,
        )
    return 0 if all(r[1] == "ok" for r in rows) else 1


def _scaling_line(name: str, table, csv_path) -> str:
    """The one-line summary of ``mollifier scaling``."""
    s, m = table.summary(), table.meta
    line = (
        f"{name}: {s['domains']} domains (phi > {m['threshold']:.3g}, percentile {m['percentile']:g}), "
        f"{s['domains_with_rates']} with rates; median R {s['median_radius_nm']:.0f} nm, "
        f"d {s['median_spacing_nm']:.0f} nm; mean Gamma_ac {s['mean_gamma_ac']:.4g}, "
        f"Gamma_me {s['mean_gamma_me']:.4g} (1/tau, D = {m['diffusivity']:g} ell0^2/tau)"
    )
    if "ratio_gamma_ac" in s:
        line += (
            f"; scaling/maps: Gamma_ac x{s['ratio_gamma_ac']:.3g} (r {s['r_gamma_ac']:.2f}), "
            f"Gamma_me x{s['ratio_gamma_me']:.3g} (r {s['r_gamma_me']:.2f})"
        )
    return f"{line} -> {csv_path}"


def _cmd_scaling(args) -> int:
    from .scaling import scaling_crosscheck

    out = Path(args.out) / f"{Path(args.image).stem}_domains.csv"
    try:
        table = scaling_crosscheck(
            args.image,
            pixel_size_nm=args.pixel_size,
            mask=args.mask,
            input=args.input,
            maps=args.maps,
            percentile=args.percentile,
            neighbours=args.neighbours,
            min_area_px=args.min_area,
            smoothing_nm=args.smoothing_nm,
        )
    except ValueError as exc:  # InputError (one line naming the file) and invalid options
        _log(f"error: {exc}")
        return 1
    table.to_csv(out)
    print(_scaling_line(args.image, table, out), flush=True)
    return 0


def _add_fit_options(p) -> None:
    p.add_argument("--pixel-size", type=float, metavar="NM", help="pixel size in nm (default: from the file)")
    p.add_argument(
        "--input",
        choices=["intensity", "fraction"],
        default="intensity",
        help="intensity (default): raw image normalised to phi; fraction: pixels are phi in [0, 1]",
    )
    p.add_argument("--mask", help="nucleus mask TIFF (nonzero = nucleus); default: segmented")
    # Accepted for old command lines (the only model is chr); not listed.
    p.add_argument("--model", choices=["chr"], default="chr", help=argparse.SUPPRESS)
    p.add_argument("--method", choices=["pinn", "direct"], default="pinn")
    p.add_argument(
        "--arch",
        choices=["grid", "mlp", "piratenet", "convnet"],
        default="grid",
        help="grid: preconditioned free field (default, fastest); networks learning a correction to "
        "the smoothed data: mlp (coordinate MLP on Fourier features), piratenet (PirateNet on Fourier "
        "features), convnet (dilated convolutions of the smoothed data and coordinates); use "
        "--optimizer soap with them",
    )
    p.add_argument("--optimizer", choices=["adam", "soap"], default="adam")
    p.add_argument(
        "--intensity-levels",
        nargs=2,
        type=float,
        metavar=("EU", "HET"),
        help="intensity input: the image values of pure euchromatin (phi 0) and pure heterochromatin "
        "(phi 1) from a calibration; without them phi comes from the nucleus' Otsu class medians and "
        "the rates are relative patterns only",
    )
    p.add_argument("--steps", type=int, help="training steps (default 1200)")
    p.add_argument("--kernel-radius-nm", type=float, help="mollifier radius in nm")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    _add_comparison_options(p)


def _add_comparison_options(p) -> None:
    """``--derivatives``, ``--residual-form``, ... for the settings of ``COMPARISON_FIELDS``: accepted
    (typed and checked like the settings) but not listed by ``--help``; unset, they keep the defaults."""
    import typing

    from .config import COMPARISON_FIELDS, InferenceSettings

    for name in COMPARISON_FIELDS:
        annotation = InferenceSettings.model_fields[name].annotation
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        kw = {"type": int} if annotation is int or args == [int] else {"choices": typing.get_args(annotation)}
        p.add_argument("--" + name.replace("_", "-"), dest=name, default=None, help=argparse.SUPPRESS, **kw)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mollifier",
        description="Epigenetic rate maps from chromatin images "
        "with mollifier-layer PINNs, and the mollifier-vs-autodiff benchmarks.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser(
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

    i = sub.add_parser("infer", help="rate maps of one or more images")
    i.add_argument("images", nargs="+", metavar="IMAGE")
    i.add_argument("--out", required=True, help="output folder")
    i.add_argument("--overview", action="store_true", help="also write S_overview.png")
    _add_fit_options(i)
    i.set_defaults(func=_cmd_infer)

    bt = sub.add_parser(
        "batch",
        help="rate maps of every image in a folder, on dask.distributed",
        description="Each file's outputs as for `infer`, plus summary.csv (status and reason per "
        "file). Files whose outputs exist with the same settings are skipped (resume); a "
        "failing file never stops the others; exit status 1 when any file was not done.",
    )
    bt.add_argument("folder", metavar="FOLDER")
    bt.add_argument("--out", required=True, help="output folder")
    bt.add_argument(
        "--pattern",
        default="*.tif",
        help="glob of the images in FOLDER (default *.tif; *_mask.tif files are never taken as images)",
    )
    where = bt.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="local dask worker processes, one thread each "
        "(default: one per GPU, else one per CPU core); 0: run in this process without dask",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a running dask scheduler: its address, e.g. "
        "tcp://10.0.0.1:8786, or its scheduler file (JSON); see docs/cluster.md",
    )
    bt.add_argument("--no-resume", action="store_true", help="redo files whose outputs already exist")
    bt.add_argument("--overview", action="store_true", help="also write S_overview.png")
    _add_fit_options(bt)
    bt.set_defaults(func=_cmd_batch)
    for a in bt._actions:  # batch takes "sibling" too
        if a.dest == "mask":
            a.help = (
                "nucleus masks: 'sibling' = S_mask.tif beside each image S.tif (or A_mask.tif for "
                "A_B.tif); a FILE = one mask for every image; default: segmented"
            )

    s = sub.add_parser(
        "simulate", help="a simulated nucleus: phi, intensity image, truth maps (+ localisations)"
    )
    s.add_argument("--out", required=True)
    s.add_argument("--name", default="nucleus")
    s.add_argument("--size", type=int, default=256)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--rates", default="gradient", choices=["uniform", "gradient", "patches"])
    s.add_argument("--mask", default="ellipse", choices=["circle", "ellipse"])
    s.add_argument("--pixel-size", type=float, default=10.0, metavar="NM")
    s.add_argument("--lamina-beta", type=float, default=0.0, help="lamina affinity (0: off)")
    s.add_argument("--localisations", action="store_true", help="also write a localisation table (CSV, nm)")
    s.add_argument(
        "--photons",
        type=float,
        default=50.0,
        help="mean counts of a pure heterochromatin pixel in the "
        "intensity image (euchromatin: 0.3 of it); NAME.json records the levels (default 50)",
    )
    s.set_defaults(func=_cmd_simulate)

    sc = sub.add_parser(
        "scaling",
        help='per-domain scaling-law rates (docs/model.md, "Prior practical estimate"), optionally beside '
        "the rate maps of `mollifier infer` averaged per domain",
        description="Domains: nucleus pixels above a percentile of phi, 8-connected, at least "
        "--min-area pixels. Per domain R = sqrt(area/pi), d = mean centroid distance to the "
        "--neighbours nearest domains; Gamma_ac = D/d^2, Gamma_me = Gamma_ac/((d/R)^2 - 1), "
        "D = M A = 1 ell0^2/tau, lengths in ell0 = 10 nm, rates in 1/tau. Writes OUT/S_domains.csv "
        "(one row per domain) and prints a one-line summary.",
    )
    sc.add_argument("image", metavar="IMAGE")
    sc.add_argument("--out", default=".", help="folder of S_domains.csv (default: the current folder)")
    sc.add_argument(
        "--pixel-size", type=float, metavar="NM", help="pixel size in nm (default: from the file)"
    )
    sc.add_argument(
        "--input",
        choices=["intensity", "fraction"],
        default="intensity",
        help="intensity (default): raw image normalised to phi; fraction: pixels are phi in [0, 1]",
    )
    sc.add_argument("--mask", help="nucleus mask TIFF (nonzero = nucleus); default: segmented")
    sc.add_argument(
        "--maps",
        metavar="DIR",
        help="output folder of `mollifier infer` for this image "
        "(S_gamma_me.tif, S_gamma_ac.tif): adds their per-domain means and the comparison",
    )
    sc.add_argument(
        "--percentile",
        type=float,
        default=70.0,
        help="domain threshold: percentile of phi inside the nucleus (default 70: the top 30 %%)",
    )
    sc.add_argument(
        "--neighbours", type=int, default=5, help="d: mean distance to this many nearest domains (default 5)"
    )
    sc.add_argument(
        "--min-area",
        type=int,
        default=10,
        metavar="PX",
        help="drop domains smaller than this many pixels (default 10)",
    )
    sc.add_argument(
        "--smoothing-nm",
        type=float,
        metavar="NM",
        help="Gaussian sigma before the threshold (default: 0 for fraction, 20 nm for intensity input)",
    )
    sc.set_defaults(func=_cmd_scaling)

    d = sub.add_parser("demo", help="the README's main job: rate maps of the bundled sample nuclei")
    d.add_argument("--out", default="mollifier-demo", help="output folder (default: ./mollifier-demo)")
    d.add_argument(
        "--samples",
        default=None,
        help="folder of *_phi.tif / *_mask.tif sample images (default: the bundled sample_images/)",
    )
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
