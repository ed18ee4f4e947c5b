"""``mollifier infer``, ``simulate`` and ``demo``: one file (or the sample nuclei) at a time."""

from __future__ import annotations

import sys
from pathlib import Path

from ._common import _log, read_options_from_args, settings_from_args
from ._interrupt import stop_on_interrupt
from ._progress import FitProgress


def infer_files(
    images,
    out,
    *,
    pixel_size_nm=None,
    mask=None,
    input="intensity",
    settings=None,
    overview: bool = False,
    quiet: bool = False,
    cancel=None,
    results: list | None = None,
    check_memory: bool = True,
    stem=None,
    labels=None,
    read=None,
) -> list[tuple[str, str, str]]:
    """Infer and write each image; returns (file, status, reason) rows. A failing file never
    stops the others (the shared per-file step is napari_mollifier.batch.infer_file). One line
    per file on standard error: "ok" with the mean rates, or the status ("failed", "diverged")
    and its reason.

    Before each fit one line gives its time and memory estimate ("estimate: ~3 min, ~1.2 GB of
    20 GB available (crop ...)"), and each fit draws a progress bar, on standard error unless
    ``quiet``. With ``check_memory`` a file whose estimate exceeds 80 % of the memory available is
    refused ("failed", nothing written; its line names the pixel size, rate scale or crop that
    would fit). ``read`` (ReadOptions) picks a stack's plane and states a table's units. Setting
    ``cancel`` (a ``threading.Event``) stops the running fit after its current
    step, writes its maps with status "cancelled" and starts no further file. ``results`` (a list)
    receives each file's FileResult. ``stem`` (a callable ``image -> str``) names each file's
    outputs (default: the file's name without its extension).
    receives each file's FileResult. ``labels`` (a label image or "auto") fits each labelled
    nucleus on its own and writes ``out/summary.csv`` with one row per nucleus.
    """
    from ..batch import infer_file
    from ..config import InferenceSettings

    steps = (settings or InferenceSettings()).training_steps
    rows = []
    results_list = results if results is not None else []
    for image in images:
        if cancel is not None and cancel.is_set():
            break  # interrupted: the files left are not started
        bar = FitProgress(Path(image).name, steps, quiet=quiet)
        r = infer_file(
            image,
            out,
            pixel_size_nm=pixel_size_nm,
            mask=mask,
            input=input,
            settings=settings,
            overview=overview,
            cancel=cancel,
            progress=bar,
            write_cancelled=True,
            check_memory=check_memory,
            on_estimate=None if quiet else _estimate_printer(bar),
            stem=None if stem is None else stem(image),
            labels=labels,
            read=read,
        )
        bar.end_line()
        results_list.append(r)
        if r.status == "cancelled":
            pass  # the caller says what was kept
        elif r.nuclei:
            _log(f"{image}: {r.reason}; -> {r.outputs['json']}")
            for row in r.nuclei:
                _log(f"  {_nucleus_line(row)}")
        elif r.status == "ok":
            s = r.summary
            rel = [s[k].get("median_relative_sd") for k in ("gamma_me", "gamma_ac")]
            # The median sd of each map as a share of the map (docs/method.md, "Uncertainty").
            spread = f" (median sd {rel[0]:.1%}, {rel[1]:.1%})" if None not in rel else ""
            _log(
                f"{image}: ok in {r.runtime_s:.0f} s on {r.device}; mean Gamma_me "
                f"{s['gamma_me']['mean']:.4g}, Gamma_ac {s['gamma_ac']['mean']:.4g} (1/tau){spread}; "
                f"{r.verdict or 'no verdict'}: {r.verdict_reason}; -> {r.outputs['json']}"
            )
            if r.reason:  # notices (e.g. a mask that leaves out localisations, a GPU fall-back)
                _log(f"notice: {r.reason}")
        elif r.outputs:  # the fit ran, but its maps cannot be read as rates (failed / diverged)
            why = r.reason.removeprefix(f"{image}: ")
            _log(
                f"{image}: {r.status} in {r.runtime_s:.0f} s on {r.device}: {why}; "
                f"maps written for inspection only -> {r.outputs['json']}"
            )
        else:
            _log(f"error: {r.reason}")
        rows.append((str(image), r.status, r.reason))
    if labels is not None and results_list:
        from ..inverse import write_nuclei_table

        table = [dict(n, file=r.file) for r in results_list for n in r.nuclei]
        if table:
            path = write_nuclei_table(table, Path(out) / "summary.csv", first={"file": ""})
            _log(f"mollifier infer: {len(table)} nuclei, one row each in {path}")
    return rows


def _nucleus_line(row: dict) -> str:
    """One nucleus of a label image: where, how large, its status and mean rates (or why not)."""
    where = f"nucleus {row['label']} at (row {row['centroid_row_px']}, col {row['centroid_col_px']})"
    line = f"{where}, {row['area_px']} px: {row['status']}"
    if row["status"] != "ok" and row["reason"]:
        line += f": {row['reason']}"
    if row["gamma_me_mean"]:
        line += f"; mean Gamma_me {row['gamma_me_mean']}, Gamma_ac {row['gamma_ac_mean']} (1/tau)"
    return line


def _estimate_printer(bar):
    """The ``on_estimate`` of a fit: its estimate as one line, below the file's progress bar."""

    def show(cost) -> None:
        bar.end_line()
        _log(f"estimate: {cost.describe()}")

    return show


def _cmd_infer(args) -> int:
    settings = settings_from_args(args, "infer")
    if args.labels is not None and args.mask is not None:
        raise SystemExit(
            "mollifier infer: --labels and --mask exclude each other; each label is a nucleus' mask"
        )
    read = read_options_from_args(args)
    results: list = []
    try:
        with stop_on_interrupt(ignore_after=getattr(args, "standalone", False)) as interrupts:
            rows = infer_files(
                args.images,
                args.out,
                pixel_size_nm=args.pixel_size,
                mask=args.mask,
                input=args.input,
                settings=settings,
                overview=args.overview,
                quiet=getattr(args, "quiet", False),
                cancel=interrupts.event,
                results=results,
                check_memory=not args.no_memory_check,
                labels=args.labels,
                read=read,
            )
    except KeyboardInterrupt:  # the second Ctrl-C: stop at once, without a traceback
        if sys.stderr.isatty():
            print(file=sys.stderr)  # end the progress bar's line
        _log("mollifier infer: aborted (second Ctrl-C); the running file's maps were not written")
        return 130
    if interrupts.interrupted:
        _log(_interrupted_line(results, args.out))
        return 130
    failed = [r for r in rows if r[1] != "ok"]
    if failed:
        _log(f"mollifier infer: {len(failed)} of {len(rows)} inputs not ok (failed or diverged)")
    return 1 if failed else 0


def _interrupted_line(results: list, out) -> str:
    """The one line after Ctrl-C: which maps were kept."""
    last = results[-1] if results else None
    if last is not None and last.status == "cancelled" and last.outputs:
        return f"mollifier infer: interrupted; wrote the maps of step {last.steps_done} (cancelled) to {out}"
    return f"mollifier infer: interrupted; no maps of the running file were written (to {out})"


#: ``mollifier simulate`` options of the renders: option -> (render option, modalities it applies to).
_RENDER_FLAGS = {
    "--psf-fwhm-nm": ("psf_fwhm_nm", "image"),
    "--gain": ("gain", "image"),
    "--offset": ("offset", "image"),
    "--background": ("background", "image"),
    "--read-noise": ("read_noise", "image"),
    "--render-pixel-size": ("render_pixel_size_nm", "image"),
    "--emitters-per-um2": ("emitters_per_um2", "smlm"),
    "--localisations-per-emitter": ("localisations_per_emitter", "smlm"),
}


def _cmd_simulate(args) -> int:
    from ..simulate import write_simulation

    images = [m for m in args.modality if m != "smlm"]
    render_options = {"photons": args.photons if images else None}
    for flag, (key, kind) in _RENDER_FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is None:
            continue
        if (kind == "image" and not images) or (kind == "smlm" and "smlm" not in args.modality):
            need = "sted, airyscan or confocal" if kind == "image" else "smlm"
            raise SystemExit(f"mollifier simulate: {flag} needs --modality {need}")
        render_options[key] = value
    try:
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
            photons=50.0 if args.photons is None else args.photons,
            modalities=args.modality,
            render_options=render_options,
        )
    except ValueError as exc:  # a render setting out of range: one line, no traceback
        raise SystemExit(f"mollifier simulate: {exc}") from None
    _log(f"mollifier simulate: wrote {', '.join(sorted(str(p) for p in paths.values()))}")
    return 0


def demo_settings(device: str = "auto"):
    """The settings of ``mollifier demo``: the defaults, on ``device``."""
    from ..config import InferenceSettings

    return InferenceSettings(device=device)


def demo_name(image) -> str:
    """The outputs' name of a sample nucleus: its file name without ``_phi.tif``
    (``nucleus1_phi.tif`` -> ``nucleus1``, whose fitted phi is ``nucleus1_phi.tif``, not
    ``nucleus1_phi_phi.tif``)."""
    return Path(image).stem.removesuffix("_phi")


def _cmd_demo(args) -> int:
    from .._samples import sample_images_dir
    from ..batch import write_summary

    out = Path(args.out)
    root = Path(args.samples) if args.samples else sample_images_dir()
    if out.resolve() == root.resolve():
        # NAME_phi.tif (the fitted phi) and NAME.json would overwrite the samples themselves.
        raise SystemExit(f"mollifier demo: --out {out} is the samples folder; choose another output folder")
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
    rows, results = [], []
    for image in images:
        mask = image.with_name(image.name.replace("_phi.tif", "_mask.tif"))
        rows += infer_files(
            [image],
            out,
            mask=mask,
            input="fraction",
            settings=demo_settings(args.device),
            overview=True,
            results=results,
            stem=demo_name,
        )
    # The same table as a batch's: one row per sample nucleus.
    out.mkdir(parents=True, exist_ok=True)
    summary = write_summary(results, out / "summary.csv")
    _log(f"mollifier demo: summary of {len(results)} nuclei -> {summary}")
    return 0 if all(r[1] == "ok" for r in rows) else 1


def _cmd_config(args) -> int:
    """``mollifier config``: a TOML file of every setting (the defaults, or an earlier result's)."""
    from ..config import InferenceSettings
    from ..io import InputError, atomic_write_text, read_settings_file, settings_template

    try:
        given = read_settings_file(args.settings_from) if args.settings_from else {}
    except InputError as exc:
        raise SystemExit(f"mollifier config: {exc}") from None
    text = settings_template(InferenceSettings(**given))
    if args.out:
        atomic_write_text(args.out, text)
        _log(f"mollifier config: wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0
