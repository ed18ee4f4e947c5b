"""The ``mollifier`` argument parser: every command, its options and its handler."""

from __future__ import annotations

import argparse

from ._batch import _cmd_batch
from ._infer import _cmd_config, _cmd_demo, _cmd_infer, _cmd_simulate
from ._scaling import _cmd_scaling

#: How ``--help`` groups the settings options; settings not named here are "advanced". The
#: comparison switches (config.COMPARISON_FIELDS) are accepted but not listed.
SETTINGS_GROUPS = {
    "fit": ("method", "arch", "optimizer", "steps", "learning_rate", "seed", "device"),
    "physics/model": (
        "kernel_radius_nm",
        "rate_scale_nm",
        "edge_margin_nm",
        "psf_sigma_nm",
        "calibration",
        "residual_tolerance",
        "smoothness",
        "noise_floor",
    ),
}
_GROUP_TITLES = {
    "fit": "fit (the training)",
    "physics/model": "physics/model (lengths in nm, whatever the pixel size)",
    "advanced": "advanced",
}


def _add_input_options(inp) -> None:
    """--pixel-size, --input and --mask: how an image (or a table) becomes phi and its nucleus."""
    inp.add_argument(
        "--pixel-size",
        type=float,
        metavar="NM",
        help="pixel size in nm (default: from the file); for a localisation table (.csv/.tsv/.txt) "
        "the pixel size of its rendering (default 10)",
    )
    inp.add_argument(
        "--input",
        choices=["intensity", "fraction"],
        default=None,
        help="intensity: raw image normalised to phi; fraction: pixels are phi in [0, 1]; default: the "
        "kind the file records (phi images written by this tool: fraction), else intensity",
    )
    inp.add_argument("--mask", help="nucleus mask TIFF (nonzero = nucleus); default: segmented")


def _add_read_options(inp) -> None:
    """What a file may not say itself: the plane of a stack, the unit of a table's x, y."""
    for flag, axis, word in (
        ("--channel", "C", "channel (or the colour of an RGB image)"),
        ("--plane", "Z", "z plane (or page of a stack of unnamed pages)"),
        ("--time", "T", "time point"),
    ):
        inp.add_argument(
            flag,
            type=int,
            metavar="N",
            help=f"a stack: analyse {word} N (0-based; OME axis {axis}); a stack without the choice "
            "is refused with its axes and sizes",
        )
    inp.add_argument(
        "--xy-unit",
        choices=["nm", "px"],
        help="a localisation table whose x, y columns state no unit (plain 'x', 'y'): nm, or px "
        "(camera pixels, with --camera-pixel-nm); a table's own unit ('x [nm]', Picasso, rapidSTORM) "
        "is always used",
    )
    inp.add_argument(
        "--camera-pixel-nm",
        type=float,
        metavar="NM",
        help="nm per camera pixel, for tables in camera pixels (overrides a Picasso .yaml's Pixelsize)",
    )


def _add_fit_options(p) -> None:
    """The input options and one option per setting of InferenceSettings (:func:`_add_settings_options`)."""
    inp = p.add_argument_group("input")
    _add_input_options(inp)
    _add_read_options(inp)
    inp.add_argument(
        "--intensity-levels",
        nargs=2,
        type=float,
        metavar=("EU", "HET"),
        help="intensity input: the image values of pure euchromatin (phi 0) and pure heterochromatin "
        "(phi 1) from a calibration (the settings euchromatin_level, heterochromatin_level); without "
        "them phi comes from the nucleus' Otsu class medians and the rates are undetermined",
    )
    files = p.add_argument_group(
        "settings files",
        "the settings come from the defaults, then --settings-from, then --config, then the options below",
    )
    files.add_argument(
        "--settings-from",
        metavar="FILE",
        help="the settings of an earlier result: its S.json or one of its map TIFFs (e.g. S_gamma_me.tif)",
    )
    files.add_argument(
        "--config",
        metavar="FILE",
        help="a configuration file (TOML, JSON or YAML) of settings, name = value; `mollifier config` "
        "writes one with every setting",
    )
    # Accepted for old command lines (the only model is chr); not listed.
    p.add_argument("--model", choices=["chr"], default="chr", help=argparse.SUPPRESS)
    _add_settings_options(p)


def _add_quiet_option(p) -> None:
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars or estimates on standard error (results and errors only)",
    )


def _add_memory_check_option(p) -> None:
    from ..inverse._cost import FORCE_OPTION

    p.add_argument(
        FORCE_OPTION,
        action="store_true",
        help="fit a file even when its memory estimate exceeds 80 %% of the memory available (by "
        "default such a file is refused before its fit starts, with the pixel size, rate scale or "
        "crop that would fit)",
    )


def _add_settings_options(p) -> None:
    """``--<field-name-with-dashes>`` for every field of InferenceSettings but the two intensity
    levels (``--intensity-levels``) and the PSF width's bounds (``--psf-sigma-range``), generated
    from the schema: the type and choices from the annotation, the help from the description and
    default. Unset, an option leaves the setting's default (its dest is the field name and its
    default None). The comparison switches are accepted and checked like the others but hidden
    from ``--help``."""
    from ..config import COMPARISON_FIELDS, InferenceSettings, option_name
    from ._common import SETTING_OPTION_FIELDS

    groups = {key: p.add_argument_group(title) for key, title in _GROUP_TITLES.items() if key != "advanced"}
    groups["advanced"] = p.add_argument_group(_GROUP_TITLES["advanced"])
    where = {name: key for key, names in SETTINGS_GROUPS.items() for name in names}
    order = [n for names in SETTINGS_GROUPS.values() for n in names if n in SETTING_OPTION_FIELDS]
    for name in order + [n for n in SETTING_OPTION_FIELDS if n not in order]:
        info = InferenceSettings.model_fields[name]
        kw = _option_kind(name, info.annotation)
        if name in COMPARISON_FIELDS:
            p.add_argument(option_name(name), dest=name, default=None, help=argparse.SUPPRESS, **kw)
            continue
        group = groups[where.get(name, "advanced")]
        group.add_argument(option_name(name), dest=name, default=None, help=_option_help(info), **kw)
    groups["physics/model"].add_argument(
        "--psf-sigma-range",
        nargs=2,
        type=float,
        metavar=("MIN", "MAX"),
        help="fit the PSF width (sigma, nm) between MIN and MAX instead of taking --psf-sigma-nm: the "
        "fit runs at 5 widths (about 6 fits' time) and keeps the one of lowest loss, reported on the "
        "result line; bright images pin it (simulated nuclei at 1000 counts per pixel: within 15 %%), "
        "dim ones do not, and then the rates are undetermined (the settings psf_sigma_min_nm, "
        "psf_sigma_max_nm)",
    )


def _option_kind(name: str, annotation) -> dict:
    """argparse keywords of a settings field's annotation: choices for a Literal, else a type (the
    optional X of ``X | None``); booleans become --name / --no-name."""
    import typing

    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = args[0] if typing.get_origin(annotation) is not typing.Literal and len(args) == 1 else annotation
    if typing.get_origin(base) is typing.Literal:
        values = typing.get_args(base)
        return {"choices": values, "type": type(values[0])}
    if base is bool:
        return {"action": argparse.BooleanOptionalAction}
    if base is int:
        return {"type": int, "metavar": "N"}
    if base is float:
        unit = name.rsplit("_", 1)[-1]
        return {"type": float, "metavar": unit.upper() if unit in ("nm", "px") else "X"}
    return {"type": base}


def _option_help(info) -> str:
    """The field's description (``%`` escaped for argparse) and its default, where not None."""
    text = (info.description or "").replace("%", "%%")
    if info.default is not None:
        text += f"{'; ' if text else ''}default: {info.default}"
    return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mollifier",
        description="Epigenetic rate maps from chromatin images "
        "with mollifier-layer PINNs, and the mollifier-vs-autodiff benchmarks.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from mollifier_bench.cli import add_benchmark_parser

    add_benchmark_parser(sub)

    i = sub.add_parser(
        "infer",
        help="rate maps of one or more images",
        description="Rate maps of each IMAGE (TIFF / OME-TIFF, one plane of a stack chosen with "
        "--channel/--plane/--time, or a localisation table: ThunderSTORM .csv, rapidSTORM .txt, Picasso "
        ".hdf5 with its .yaml, SMLM challenge .csv, any .csv/.tsv whose x, y state their unit or with "
        "--xy-unit; rendered over its own extent, each localisation blurred by its precision). "
        "A progress bar per file goes to standard error, after one line with the fit's time and "
        "memory estimate; a file whose fit would not fit in memory is refused (failed) before it "
        "starts. Ctrl-C stops the running fit after its current step and keeps its maps (status "
        "cancelled, exit status 130); a second Ctrl-C "
        "aborts at once. Exit status 1 when any input failed.",
    )
    i.add_argument("images", nargs="+", metavar="IMAGE")
    i.add_argument("--out", required=True, help="output folder")
    i.add_argument("--overview", action="store_true", help="also write S_overview.png")
    i.add_argument(
        "--labels",
        metavar="LABELS",
        help="several nuclei: a label image TIFF (0 = background, one label per nucleus), or 'auto' to "
        "label every nucleus by automatic segmentation; each nucleus is fitted on its own crop "
        "(S_nucleus<L>_*.tif, S_nuclei.csv) and summary.csv gets one row per nucleus",
    )
    _add_quiet_option(i)
    _add_memory_check_option(i)
    _add_fit_options(i)
    i.set_defaults(func=_cmd_infer)

    bt = sub.add_parser(
        "batch",
        help="rate maps of every image in a folder, on dask.distributed",
        description="Each file's outputs as for `infer`, plus summary.csv (status and reason per "
        "file). A file whose fit would not fit in memory is refused (failed) before it starts. "
        "Files whose outputs exist with the same settings are skipped (resume); a "
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
    bt.add_argument(
        "--labels",
        choices=["sibling", "auto", "none"],
        default="sibling",
        help="several nuclei per image: sibling (default): an image with a label image beside it "
        "(S_labels.tif, or A_labels.tif for A_B.tif) has each nucleus fitted, one row each in "
        "nuclei.csv; auto: label every nucleus of every image by automatic segmentation; none: "
        "one nucleus per image",
    )
    _add_quiet_option(bt)
    _add_memory_check_option(bt)
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
        default=None,
        help="mean counts of a pure heterochromatin pixel in the "
        "intensity image (euchromatin: 0.3 of it); NAME.json records the levels (default 50); with "
        "--modality also the photons of the microscope images (default: the modality's)",
    )
    r = s.add_argument_group(
        "microscope renders",
        "each --modality adds NAME_<modality>.tif (sted, airyscan, confocal: float32 detector output) "
        "or NAME_smlm.csv (smlm: localisations), with its truth in NAME.json under 'renders'; the "
        "options below override the modality's typical values",
    )
    r.add_argument(
        "--modality",
        nargs="+",
        default=[],
        choices=["sted", "airyscan", "confocal", "smlm"],
        help="microscope render(s) of the nucleus (PSF FWHM sted 50, airyscan 140, confocal 250 nm)",
    )
    r.add_argument("--psf-fwhm-nm", type=float, metavar="NM", help="PSF full width at half maximum")
    r.add_argument("--gain", type=float, help="detector output per photon")
    r.add_argument("--offset", type=float, help="detector output at zero photons")
    r.add_argument("--background", type=float, metavar="PHOTONS", help="background photons per pixel")
    r.add_argument("--read-noise", type=float, metavar="SD", help="Gaussian detector noise (output units)")
    r.add_argument(
        "--render-pixel-size",
        type=float,
        metavar="NM",
        help="pixel size of the images: a whole multiple of --pixel-size; counts are summed over the "
        "blocks (default: --pixel-size)",
    )
    r.add_argument("--emitters-per-um2", type=float, help="smlm: emitters per um^2 of heterochromatin (3000)")
    r.add_argument(
        "--localisations-per-emitter", type=float, metavar="MEAN", help="smlm: mean repeats of an emitter (3)"
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
    _add_input_options(sc)
    _add_read_options(sc)
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

    cf = sub.add_parser(
        "config",
        help="write a configuration file (TOML) with every fit setting, for --config",
        description="A TOML file with every field of the fit settings, each with its description: the "
        "defaults, or the settings of an earlier result (--from). Edit it and give it to "
        "`mollifier infer --config FILE` or `mollifier batch --config FILE`.",
    )
    cf.add_argument(
        "--from", dest="settings_from", metavar="FILE", help="S.json or a map TIFF of an earlier result"
    )
    cf.add_argument("--out", metavar="FILE", help="the file to write (default: standard output)")
    cf.set_defaults(func=_cmd_config)

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
