"""``mollifier infer``, ``simulate`` and ``demo``: one file (or the sample nuclei) at a time."""

from __future__ import annotations

from pathlib import Path

from ._common import _log, settings_from_args


def infer_files(
    images, out, *, pixel_size_nm=None, mask=None, input="intensity", settings=None, overview: bool = False
) -> list[tuple[str, str, str]]:
    """Infer and write each image; returns (file, status, reason) rows. A failing file never
    stops the others (the shared per-file step is napari_mollifier.batch.infer_file). One line
    per file on standard error: "ok" with the mean rates, or the status ("failed", "diverged")
    and its reason."""
    from ..batch import infer_file

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
        elif r.outputs:  # the fit ran, but its maps cannot be read as rates (failed / diverged)
            why = r.reason.removeprefix(f"{image}: ")
            _log(
                f"{image}: {r.status} in {r.runtime_s:.0f} s on {r.device}: {why}; "
                f"maps written for inspection only -> {r.outputs['json']}"
            )
        else:
            _log(f"error: {r.reason}")
        rows.append((str(image), r.status, r.reason))
    return rows


def _cmd_infer(args) -> int:
    settings = settings_from_args(args, "infer")
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
        _log(f"mollifier infer: {len(failed)} of {len(rows)} inputs not ok (failed or diverged)")
    return 1 if failed else 0


def _cmd_simulate(args) -> int:
    from ..simulate import write_simulation

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
    from .._samples import sample_images_dir
    from ..config import InferenceSettings

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
