"""``mollifier scaling``: the per-domain scaling-law estimate, optionally beside fitted maps."""

from __future__ import annotations

from pathlib import Path

from ._common import _log, read_options_from_args


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
    from ..io import resolve_input_kind
    from ..scaling import scaling_crosscheck

    out = Path(args.out) / f"{Path(args.image).stem}_domains.csv"
    try:
        table = scaling_crosscheck(
            args.image,
            pixel_size_nm=args.pixel_size,
            mask=args.mask,
            input=resolve_input_kind(args.image, args.input),
            maps=args.maps,
            percentile=args.percentile,
            neighbours=args.neighbours,
            min_area_px=args.min_area,
            smoothing_nm=args.smoothing_nm,
            read=read_options_from_args(args),
        )
    except ValueError as exc:  # InputError (one line naming the file) and invalid options
        _log(f"error: {exc}")
        return 1
    table.to_csv(out)
    print(_scaling_line(args.image, table, out), flush=True)
    return 0
