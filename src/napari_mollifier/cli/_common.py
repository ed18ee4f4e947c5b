"""What every command shares: messages on standard error and the settings from the fit options."""

from __future__ import annotations

import sys


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def settings_from_args(args, command: str):
    """InferenceSettings from the fit options; invalid values end the command with one line."""
    from pydantic import ValidationError

    from ..config import COMPARISON_FIELDS, InferenceSettings

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
