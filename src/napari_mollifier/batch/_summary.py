"""The summary table of a batch: ``summary.csv``, one row per input."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..io import write_csv
from ._result import FileResult

SUMMARY_COLUMNS = (
    "file",
    "status",
    "reason",
    "verdict",
    "verdict_reason",
    "gamma_me_mean",
    "gamma_ac_mean",
    "lambda_mean",
    "gamma_me_rel_sd",
    "gamma_ac_rel_sd",
    "lambda_rel_sd",
    "runtime_s",
    "steps_done",
    "device",
    "outputs",
)


def write_summary(results: Iterable[FileResult], path: str | os.PathLike) -> Path:
    """summary.csv: one row per input (file, status, reason, mean rates, runtime, ...)."""
    return write_csv((r.row() for r in results), path, SUMMARY_COLUMNS)
