"""Optional dependencies of the harness, imported when first needed."""

from __future__ import annotations

#: The one-line message when psutil (the ``bench`` extra) is missing.
PSUTIL_MISSING = "the benchmarks need psutil, which is not installed: pip install 'napari-mollifier[bench]'"


def require_psutil():
    """The psutil module; ImportError with a one-line install hint when it is not installed."""
    try:
        import psutil as module
    except ImportError:
        raise ImportError(PSUTIL_MISSING) from None
    return module
