"""Running many files: :func:`run_batch`, one after another in this process or on dask.distributed
(:mod:`._distributed`), after the checks for clashing names and finished files."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ..config import InferenceSettings
from ._distributed import _run_distributed
from ._file import infer_file
from ._result import FileResult
from ._resume import batch_key, completed_result
from ._summary import write_summary


def run_batch(
    images: Iterable,
    out,
    *,
    pixel_size_nm=None,
    mask=None,
    input: str = "intensity",
    settings: InferenceSettings | None = None,
    cancel: threading.Event | None = None,
    overview: bool = False,
    summary: bool = True,
    skip_existing: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Callable | None = None,
    check_memory: bool = True,
    on_estimate: Callable | None = None,
    labels=None,
    read=None,
) -> Iterator[tuple[int, int, FileResult | str]]:
    """Infer the images, as a generator; in this process or on dask.distributed.

    Parameters
    ----------
    images : iterable of paths
    out : path
        Output folder (maps, ``S.json`` per file, ``summary.csv``).
    pixel_size_nm, mask, input, settings, overview, skip_existing, read
        As for :func:`infer_file`.
    cancel : threading.Event, optional
        Stops the batch: files not started are listed as "not run"; a running fit stops after
        its current step (on dask workers at its next progress report) and is "cancelled".
    summary : bool
        Write ``out/summary.csv`` at the end (also after a cancel).
    workers : int, optional
        None: one file after the other in this process. N >= 1: a dask ``LocalCluster`` of N
        worker processes with one thread each (torch then uses one thread per worker).
    scheduler : str, optional
        Address of a running dask scheduler (``tcp://host:8786``) or its scheduler file (JSON);
        its workers must have this package installed and see ``out`` and the images at the same
        paths. Wins over ``workers``.
    progress : callable, optional
        In this process only (``workers`` and ``scheduler`` None): ``progress(i, event)`` for each
        progress event of file ``i``'s fit (the CLI draws a bar of training steps with it).
    check_memory : bool
        Refuse a file whose fit's memory estimate exceeds what is available (status "failed",
        :func:`napari_mollifier.infer_rates`); on dask each worker checks against its machine's
        memory when the file starts there.
    on_estimate : callable, optional
        In this process only: ``on_estimate(i, cost)`` with the :class:`FitCost` of file ``i``'s
        fit just before it starts (the CLI prints it).
    labels : None, "auto", path or callable
        As for :func:`infer_file` (e.g. :func:`sibling_labels`: a file with a label image beside
        it has each nucleus fitted); with ``summary``, ``out/nuclei.csv`` then lists every nucleus
        of every such file, one row each.

    Yields
    ------
    (i, n, path) or (i, n, FileResult)
        ``i`` is the index (0-based) of the file among the ``n`` inputs. In this process, ``path``
        comes before file ``i`` starts and its :class:`FileResult` when it is done; on dask only the
        results come, in the order the files finish.

    Returns
    -------
    list of FileResult
        In the order of ``images``.
    """
    images = [str(p) for p in images]
    n = len(images)
    kw = dict(
        pixel_size_nm=pixel_size_nm,
        mask=mask,
        input=input,
        settings=settings,
        overview=overview,
        check_memory=check_memory,
        labels=labels,
        read=read,
    )
    results: list[FileResult | None] = [None] * n
    # The summary is written also when the generator is closed early (the napari worker is quit, e.g.
    # from napari's activity dock or when the viewer closes): files not finished are "not run".
    why = "the batch was stopped before this file started"
    try:
        todo: list[int] = []
        stems: dict[str, str] = {}
        for i, image in enumerate(images):
            # Outputs are named by the file's stem: a second file with the same stem (another folder)
            # would overwrite the first one's maps.
            first = stems.setdefault(Path(image).stem, image)
            if first != image:
                results[i] = FileResult(
                    image,
                    "failed",
                    f"{image}: same name as {first}, whose outputs it would "
                    "overwrite; rename one of them or run the folders separately",
                )
                yield i, n, results[i]
                continue
            # Resume check here, before any worker starts: a finished batch re-run starts no cluster.
            done = _already_done(image, out, kw) if skip_existing else None
            if done is not None:
                results[i] = done
                yield i, n, done
            else:
                todo.append(i)
        if todo and (workers is not None or scheduler is not None):
            yield from _run_distributed(
                images, todo, results, out, kw, cancel, workers=workers, scheduler=scheduler
            )
        elif todo:
            yield from _run_here(images, todo, results, out, kw, cancel, progress, on_estimate)
    except Exception:
        why = "the batch ended with an error before this file's result came"
        raise
    finally:
        results = [
            r if r is not None else FileResult(images[i], "not run", why) for i, r in enumerate(results)
        ]
        if summary:
            Path(out).mkdir(parents=True, exist_ok=True)
            write_summary(results, Path(out) / "summary.csv")
        if summary and any(r is not None and r.nuclei for r in results):
            from ..inverse import write_nuclei_table

            rows = [dict(r, file=res.file) for res in results if res is not None for r in res.nuclei]
            write_nuclei_table(rows, Path(out) / "nuclei.csv", first={"file": ""})
    return results


def _already_done(image: str, out, kw: dict) -> FileResult | None:
    """The "skipped" result of a file finished earlier with the same key; None to run it (also when
    the key cannot be made: the run then reports why)."""
    try:
        key = batch_key(
            image,
            pixel_size_nm=kw["pixel_size_nm"],
            mask=kw["mask"],
            input=kw["input"],
            settings=kw["settings"],
            labels=kw["labels"],
            read=kw["read"],
        )
    except Exception:  # noqa: BLE001 - e.g. a missing mask: infer_file gives the one-line reason
        return None
    return completed_result(image, out, key["hash"], overview=kw["overview"])


def _run_here(
    images: list[str], todo: list[int], results: list, out, kw: dict, cancel, progress=None, on_estimate=None
) -> Iterator:
    n = len(images)
    for i in todo:
        if cancel is not None and cancel.is_set():
            break  # the files left are listed as "not run"
        yield i, n, images[i]
        on_event = None if progress is None else (lambda event, i=i: progress(i, event))
        on_cost = None if on_estimate is None else (lambda cost, i=i: on_estimate(i, cost))
        results[i] = infer_file(images[i], out, cancel=cancel, progress=on_event, on_estimate=on_cost, **kw)
        yield i, n, results[i]
