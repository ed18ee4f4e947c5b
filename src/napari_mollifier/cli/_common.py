"""What every command shares: messages on standard error and the settings from the fit options."""

from __future__ import annotations

import sys


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


#: The settings that ``--intensity-levels EU HET`` sets together; every other field of
#: InferenceSettings has its own option, ``--<field-name-with-dashes>`` (cli._parser).
INTENSITY_LEVEL_FIELDS = ("euchromatin_level", "heterochromatin_level")
#: The settings that ``--psf-sigma-range MIN MAX`` sets together (the fitted PSF width's bounds).
PSF_RANGE_FIELDS = ("psf_sigma_min_nm", "psf_sigma_max_nm")


def _setting_option_fields() -> tuple[str, ...]:
    from ..config import InferenceSettings

    paired = INTENSITY_LEVEL_FIELDS + PSF_RANGE_FIELDS
    return tuple(name for name in InferenceSettings.model_fields if name not in paired)


#: The settings fields with an option of their own (the comparison switches among them, hidden).
SETTING_OPTION_FIELDS = _setting_option_fields()


def settings_from_files(args, command: str) -> dict:
    """The settings of ``--settings-from FILE`` (an earlier result: S.json or a map TIFF), then of
    ``--config FILE`` over them (TOML, JSON or YAML); a bad file ends the command with one line."""
    from ..io import InputError, read_settings_file

    kw: dict = {}
    for option in ("settings_from", "config"):
        path = getattr(args, option, None)
        if path:
            try:
                kw.update(read_settings_file(path))
            except InputError as exc:
                raise SystemExit(f"mollifier {command}: {exc}") from None
    return kw


def settings_from_args(args, command: str):
    """InferenceSettings from the fit options: the defaults, overridden by ``--settings-from``,
    then ``--config``, then each option given on the command line; invalid values end the command
    with one line that names the option."""
    from pydantic import ValidationError

    from ..config import InferenceSettings, option_name

    kw = settings_from_files(args, command)
    kw.update({name: v for name in SETTING_OPTION_FIELDS if (v := getattr(args, name, None)) is not None})
    if getattr(args, "intensity_levels", None):
        if args.input not in (None, "intensity"):
            raise SystemExit(
                f"mollifier {command}: --intensity-levels calibrates intensity input; "
                "drop it or use --input intensity"
            )
        kw["euchromatin_level"], kw["heterochromatin_level"] = args.intensity_levels
    if getattr(args, "psf_sigma_range", None):
        kw["psf_sigma_min_nm"], kw["psf_sigma_max_nm"] = args.psf_sigma_range
    try:
        return InferenceSettings(**kw)
    except ValidationError as exc:  # one line: the first problem, named by its option
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        if where in INTENSITY_LEVEL_FIELDS:
            where = "--intensity-levels"
        elif where in PSF_RANGE_FIELDS:
            where = "--psf-sigma-range"
        elif where:
            where = option_name(where)
        raise SystemExit(
            f"mollifier {command}: invalid settings: {where + ': ' if where else ''}"
            f"{err['msg'].removeprefix('Value error, ')}"
        ) from None


def read_options_from_args(args):
    """The :class:`~napari_mollifier.io.ReadOptions` of the command's options."""
    from ..io import InputError, ReadOptions

    try:
        return ReadOptions.of(
            xy_unit=getattr(args, "xy_unit", None),
            camera_pixel_nm=getattr(args, "camera_pixel_nm", None),
            channel=getattr(args, "channel", None),
            plane=getattr(args, "plane", None),
            time=getattr(args, "time", None),
        )
    except InputError as exc:
        raise SystemExit(f"mollifier: {exc}") from None
