"""The ``mollifier`` command line: thin commands over the Python API.

Implemented: ``infer``, ``batch`` (a folder, on dask.distributed), ``simulate``, ``benchmark``,
``demo`` (docs/interfaces.md) and ``scaling`` (the per-domain scaling-law cross-check, docs/model.md,
"Scaling law").
"""

from __future__ import annotations

import sys

from ._common import settings_from_args
from ._infer import infer_files
from ._parser import build_parser

__all__ = ["build_parser", "infer_files", "main", "settings_from_args"]


def main(argv: list[str] | None = None) -> int:
    standalone = argv is None  # the `mollifier` program itself, not a call from Python
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    args.standalone = standalone
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C where a command does not handle it: one line, no traceback
        print(f"\nmollifier {args.command}: interrupted", file=sys.stderr, flush=True)
        return 130
