"""The ``mollifier`` command line: thin commands over the Python API.

Implemented: ``infer``, ``batch`` (a folder, on dask.distributed), ``simulate``, ``benchmark``,
``demo`` (docs/interfaces.md) and ``scaling`` (the per-domain scaling-law cross-check, docs/model.md,
"Scaling law").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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

    from mollifier_bench.cli import add_benchmark_parser

    add_benchmark_parser(sub)

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
        help='per-domain scaling-law rates (docs/model.md, "Scaling law"), optionally beside '
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
