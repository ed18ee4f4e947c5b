"""Rate maps of many files: one function shared by the ``mollifier`` CLI and the napari batch widget.

Each file is inferred and written on its own (docs/interfaces.md outputs); a file that fails is
recorded with a one-line reason and the others go on. ``summary.csv`` lists every input.

Files run one after another in this process (``workers=None``) or as tasks on dask.distributed
(``workers=N``: a local cluster of N single-threaded worker processes; ``scheduler=ADDRESS``: a
running cluster, e.g. one started by dask-jobqueue). Both paths call :func:`infer_file`, so the
per-file results are the same. dask is imported only when the distributed path is taken.

Resuming: every per-file JSON records a key (:func:`batch_key`) that hashes the input file's
bytes, the mask's bytes, the pixel size, the input kind, the settings that change the maps and the
package version; with ``skip_existing=True`` a file whose outputs are complete and carry the same
key is not run again (status "skipped"). The JSON is written last, so its presence means the maps
before it were written completely (each output is written atomically).
"""

from __future__ import annotations

from ._file import infer_file
from ._inputs import find_images, sibling_labels, sibling_mask
from ._result import FileResult
from ._resume import OUTPUT_FILE_KEYS, SD_FILE_KEYS, batch_key, completed_result
from ._run import run_batch
from ._summary import SUMMARY_COLUMNS, write_summary

__all__ = [
    "FileResult",
    "find_images",
    "sibling_labels",
    "sibling_mask",
    "infer_file",
    "run_batch",
    "write_summary",
    "batch_key",
    "completed_result",
    "SUMMARY_COLUMNS",
    "OUTPUT_FILE_KEYS",
    "SD_FILE_KEYS",
]
