"""Rate maps of many files: one function shared by the ``mollifier`` CLI and the napari batch widget.

Each file is inferred and written on its own (docs/interfaces.md outputs); a file that fails is
recorded with a one-line reason and the others go on. ``summary.csv`` lists every input.
"""

from __future__ import annotations

import csv
import io
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .config import InferenceSettings
from .io import InputError, atomic_write_text

__all__ = ["FileResult", "find_images", "sibling_mask", "infer_file", "run_batch", "write_summary",
           "SUMMARY_COLUMNS"]

SUMMARY_COLUMNS = ("file", "status", "reason", "gamma_me_mean", "gamma_ac_mean", "lambda_mean", "runtime_s",
                   "steps_done", "device", "outputs")


@dataclass
class FileResult:
    """What happened to one input file."""

    file: str
    status: str  # "ok", "failed", "cancelled" or "not run"
    reason: str = ""
    outputs: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    runtime_s: float = 0.0
    steps_done: int = 0
    device: str = ""

    def row(self) -> dict:
        s = self.summary
        mean = lambda k: f"{s[k]['mean']:.6g}" if k in s else ""  # noqa: E731
        return {"file": self.file, "status": self.status, "reason": self.reason,
                "gamma_me_mean": mean("gamma_me"), "gamma_ac_mean": mean("gamma_ac"),
                "lambda_mean": mean("lambda"), "runtime_s": f"{self.runtime_s:.2f}" if self.status == "ok" else "",
                "steps_done": self.steps_done if self.status == "ok" else "", "device": self.device,
                "outputs": str(self.outputs.get("json", ""))}


def find_images(folder: str | os.PathLike, pattern: str = "*.tif") -> list[Path]:
    """Files in ``folder`` matching the glob ``pattern``, sorted; masks (``*_mask.tif``) are left out."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder; choose the folder that holds the images")
    return sorted(p for p in root.glob(pattern) if p.is_file() and not p.stem.endswith("_mask"))


def sibling_mask(image: str | os.PathLike) -> Path:
    """The mask file beside an image: ``S_mask.tif`` for ``S.tif``, or ``A_mask.tif`` for ``A_B.tif``
    (``nucleus1_phi.tif`` -> ``nucleus1_mask.tif``)."""
    p = Path(image)
    candidates = [p.with_name(f"{p.stem}_mask{p.suffix}")]
    if "_" in p.stem:
        candidates.append(p.with_name(f"{p.stem.rsplit('_', 1)[0]}_mask{p.suffix}"))
    for c in candidates:
        if c.exists():
            return c
    raise InputError(f"{p}: no mask file beside it (looked for {', '.join(c.name for c in candidates)}); "
                     "add one or let the nucleus be segmented automatically")


def infer_file(image, out, *, pixel_size_nm=None, mask=None, input: str = "intensity",
               settings: InferenceSettings | None = None, cancel: threading.Event | None = None,
               progress: Callable | None = None, overview: bool = False) -> FileResult:
    """Infer one file and write its outputs; never raises for a bad input (status "failed").

    ``mask`` is None (segment), a path, or a callable ``image -> path`` (e.g. :func:`sibling_mask`).
    A fit stopped through ``cancel`` is not written (status "cancelled").
    """
    from .inverse import infer_rates, write_rate_maps

    try:
        m = mask(image) if callable(mask) else mask
        maps = infer_rates(image, pixel_size_nm=pixel_size_nm, mask=m, input=input, settings=settings,
                           cancel=cancel, progress=progress)
        if maps.fit.cancelled:
            return FileResult(str(image), "cancelled", "stopped before the fit finished; nothing written")
        paths = write_rate_maps(maps, out)
        if overview:
            from .plotting import overview_figure

            overview_figure(maps, Path(out) / f"{Path(image).stem}_overview.png")
        return FileResult(str(image), "ok", outputs={k: str(v) for k, v in paths.items()}, summary=maps.summary(),
                          runtime_s=maps.fit.runtime_s, steps_done=maps.fit.steps_done, device=maps.fit.device)
    except (InputError, ValueError) as exc:
        return FileResult(str(image), "failed", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - one input's failure must not stop the others
        first = str(exc).splitlines()[0] if str(exc) else ""
        return FileResult(str(image), "failed", f"{image}: {type(exc).__name__}: {first}")


def write_summary(results: Iterable[FileResult], path: str | os.PathLike) -> Path:
    """summary.csv: one row per input (file, status, reason, mean rates, runtime, ...)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in results:
        w.writerow(r.row())
    return atomic_write_text(path, buf.getvalue())


def run_batch(images: Iterable, out, *, pixel_size_nm=None, mask=None, input: str = "intensity",
              settings: InferenceSettings | None = None, cancel: threading.Event | None = None,
              overview: bool = False, summary: bool = True) -> Iterator[tuple[int, int, FileResult | str]]:
    """Infer the images one by one, as a generator.

    Yields ``(i, n, path)`` before file ``i`` (0-based) of ``n`` starts and ``(i, n, FileResult)``
    when it is done; writes ``out/summary.csv`` at the end (also after a cancel, listing the files
    not run) and returns the list of :class:`FileResult`.
    """
    images = [str(p) for p in images]
    n = len(images)
    results: list[FileResult] = []
    for i, image in enumerate(images):
        if cancel is not None and cancel.is_set():
            results += [FileResult(p, "not run", "the batch was stopped") for p in images[i:]]
            break
        yield i, n, image
        res = infer_file(image, out, pixel_size_nm=pixel_size_nm, mask=mask, input=input, settings=settings,
                         cancel=cancel, overview=overview)
        results.append(res)
        yield i, n, res
    if summary:
        Path(out).mkdir(parents=True, exist_ok=True)
        write_summary(results, Path(out) / "summary.csv")
    return results
