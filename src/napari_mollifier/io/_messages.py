"""One-line error messages for the CLI, the batch summary and the napari widgets."""

from __future__ import annotations

from pathlib import Path

from ._readers import InputError

__all__ = ["one_line_error"]


def one_line_error(exc: BaseException, source=None) -> str:
    """The first line of an error, for a status line or a table cell.

    A pydantic ``ValidationError`` becomes ``invalid setting FIELD: MESSAGE`` (its first error).
    With ``source`` (a file) the line names it: input and value errors are prefixed by the file
    unless they already name it; other errors also carry their type (an unexpected failure).
    """
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else ""
    if hasattr(exc, "errors") and callable(exc.errors):  # pydantic ValidationError
        try:
            e = exc.errors()[0]
            text = f"invalid setting {'.'.join(str(x) for x in e['loc'])}: {e['msg']}"
        except Exception:  # noqa: BLE001 - not a pydantic error after all: keep the first line
            pass
    if source is None:
        return text or type(exc).__name__
    if isinstance(exc, InputError | ValueError):
        return text if Path(str(source)).name in text else f"{source}: {text or type(exc).__name__}"
    return f"{source}: {type(exc).__name__}: {text}" if text else f"{source}: {type(exc).__name__}"
