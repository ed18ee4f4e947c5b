"""The per-file step of a batch for an image of several nuclei: :func:`infer_nuclei_file`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..config import InferenceSettings
from ..io import one_line_error
from ._result import FileResult
from ._resume import batch_key, completed_result


def infer_nuclei_file(
    image,
    out,
    labels,
    *,
    pixel_size_nm=None,
    input: str = "intensity",
    settings: InferenceSettings | None = None,
    cancel: threading.Event | None = None,
    progress: Callable | None = None,
    skip_existing: bool = False,
    check_memory: bool = True,
) -> FileResult | None:
    """Fit every labelled nucleus of one file and write its outputs
    (:func:`napari_mollifier.inverse.write_nuclei_maps`); never raises for a bad input.

    ``labels`` is "auto", a label image path, or a callable ``image -> path or None``
    (:func:`sibling_labels`); returns None when the callable finds no label image (the file is then
    one nucleus: :func:`infer_file` goes on). The result's ``nuclei`` holds one row per nucleus;
    its status is "ok" when every nucleus is ok, else the first other status, and ``reason`` counts
    the nuclei by status. Other parameters as for :func:`infer_file`.
    """
    from ..inverse import infer_nuclei, write_nuclei_maps

    try:
        lab = labels(image) if callable(labels) else labels
        if lab is None:
            return None
        key = batch_key(image, pixel_size_nm=pixel_size_nm, input=input, settings=settings, labels=lab)
        if skip_existing:
            done = completed_result(image, out, key["hash"])
            if done is not None:
                return done
        result = infer_nuclei(
            image,
            lab,
            pixel_size_nm=pixel_size_nm,
            input=input,
            settings=settings,
            cancel=cancel,
            progress=None if progress is None else (lambda label, ev: progress(ev)),
            check_memory=check_memory,
        )
        paths = write_nuclei_maps(result, out, extra={"batch": {"key": key["hash"], "fields": key["fields"]}})
    except Exception as exc:  # noqa: BLE001 - one input's failure must not stop the others
        return FileResult(str(image), "failed", one_line_error(exc, image))
    rows = result.table()
    counts: dict = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    tally = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    fits = [n.maps.fit for n in result.nuclei if n.maps is not None]
    verdicts = sorted({r["verdict"] for r in rows if r["verdict"]})
    return FileResult(
        str(image),
        result.status,
        f"{len(rows)} nuclei: {tally} (one row each in {Path(paths['nuclei']).name})",
        outputs={k: str(v) for k, v in paths.items()},
        summary=_mean_summary(result),
        runtime_s=sum(f.runtime_s for f in fits),
        steps_done=max((f.steps_done for f in fits), default=0),
        device=fits[0].device if fits else "",
        verdict=", ".join(verdicts),
        verdict_reason="per nucleus: see the nuclei table",
        nuclei=rows,
    )


def _mean_summary(result) -> dict:
    """Mean rates over every analysed pixel of every nucleus (the file's row of summary.csv)."""
    analysed = result.analysed()
    out = {}
    for key in ("gamma_me", "gamma_ac", "lambda"):
        v = result.assembled(key)[analysed]
        if v.size:
            out[key] = {"mean": float(np.mean(v))}
    return out
