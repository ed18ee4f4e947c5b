"""The dask.distributed backend of a batch: the cluster (local or a running scheduler), the task sent
to each worker (:func:`_infer_task`, at module top level so that workers import it by name), worker
GPU placement, cancellation through a named ``distributed.Event`` and the results of lost tasks.

dask is imported inside the functions only, when a batch takes this path.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from ._file import infer_file
from ._result import FileResult


def _pick_gpu() -> None:
    """On a dask worker of a machine with several GPUs, use GPU (worker number mod GPU count), so
    that local workers spread over the GPUs instead of all sharing the first."""
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return
    idx = name if isinstance(name, int) else sum(str(name).encode())
    torch.cuda.set_device(int(idx) % torch.cuda.device_count())


def _infer_task(image: str, out: str, kw: dict, cancel_name: str | None = None) -> FileResult:
    """One file on a dask worker: :func:`infer_file`, stopped through a named ``distributed.Event``."""
    settings = kw.get("settings")
    if settings is None or settings.device in ("auto", "cuda"):
        _pick_gpu()
    local = threading.Event()
    progress = None
    if cancel_name is not None:
        from distributed import Event

        remote = Event(cancel_name)
        if remote.is_set():  # the batch was stopped before this file started
            return FileResult(image, "not run", "the batch was stopped before this file started")

        def progress(_event) -> None:  # at every progress report of the solver (every report_every steps)
            try:
                if remote.is_set():
                    local.set()
            except Exception:  # noqa: BLE001 - a lost scheduler must not fail the fit
                pass

    return infer_file(image, out, cancel=local, progress=progress, **kw)


def _run_distributed(
    images: list[str],
    todo: list[int],
    results: list,
    out,
    kw: dict,
    cancel,
    *,
    workers: int | None,
    scheduler: str | None,
) -> Iterator:
    import logging

    from distributed import Client, Event, LocalCluster, wait

    n = len(images)
    cluster = None
    if scheduler:
        # An address (tcp://host:8786) or a scheduler file (`dask scheduler --scheduler-file F`).
        if Path(scheduler).is_file():
            client = Client(scheduler_file=str(scheduler), timeout="30s")
        else:
            client = Client(scheduler, timeout="30s")
    else:
        # Processes, one thread each: torch holds the GIL in parts of a step, and dask's nanny sets
        # OMP_NUM_THREADS=1 in each worker so that N workers do not oversubscribe N cores.
        with _without_malloc_trim(), _workers_ignore_sigint():
            cluster = LocalCluster(
                n_workers=max(1, min(int(workers or 1), len(todo))),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
        client = Client(cluster)
    cancel_name = f"mollifier-cancel-{uuid.uuid4().hex}"
    try:
        remote_cancel = Event(cancel_name, client=client)
        token = uuid.uuid4().hex[:8]
        # pure=False and a unique key per file: a file is run once per batch, never taken from an
        # earlier batch's cached result on a shared scheduler.
        futures = [
            client.submit(
                _infer_task,
                images[i],
                str(out),
                kw,
                cancel_name,
                key=f"mollifier-{token}-{i}",
                pure=False,
                retries=0,
            )
            for i in todo
        ]
        index = {f.key: i for i, f in zip(todo, futures)}
        pending = set(futures)
        stopping = False
        while pending:
            if cancel is not None and cancel.is_set() and not stopping:
                # Queued files then return "not run" at once, running fits stop at their next
                # progress report ("cancelled", nothing written); the loop collects them all.
                stopping = True
                remote_cancel.set()
            try:
                done, pending = wait(pending, timeout=0.5, return_when="FIRST_COMPLETED")
            except TimeoutError:
                continue
            for f in sorted(done, key=lambda f: index[f.key]):
                i = index[f.key]
                results[i] = _future_result(f, images[i])
                yield i, n, results[i]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


@contextlib.contextmanager
def _workers_ignore_sigint():
    """Start local workers with SIGINT ignored (they inherit it): Ctrl-C in a terminal reaches the
    whole process group, and workers killed by it would turn their files into "failed" ones. The
    batch itself handles Ctrl-C (stop: queued files "not run", running fits "cancelled")."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _without_malloc_trim():
    """Start local dask workers without dask's ``MALLOC_TRIM_THRESHOLD_=65536``.

    Any explicit trim threshold switches off glibc's dynamic mmap threshold, so every array of
    128 KiB or more (a 128^2 float64 map) is mmap'ed and page-faulted afresh at each allocation:
    measured here, a 128^2 fit took 8.8-9.6 s with it against 4.1-5.9 s without, and a 1-worker
    batch ran 2.4x slower than the same files in one process. The nanny copies the variable into
    this process's environment when it spawns a worker, so a value left there by an earlier cluster
    is removed too (dask's default value only; a user's own setting is kept).
    """
    import dask

    key = "MALLOC_TRIM_THRESHOLD_"
    left = os.environ.get(key) == "65536"
    if left:
        del os.environ[key]
    try:
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{key}": None}):
            yield
    finally:
        if left and key not in os.environ:
            os.environ[key] = "65536"


def _future_result(future, image: str) -> FileResult:
    """The FileResult of a finished future, or a "failed"/"not run" one for a lost or cancelled task."""
    if future.status == "cancelled":
        return FileResult(image, "not run", "the batch was stopped before this file started")
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker when a file crashes its worker process
        first = str(exc).splitlines()[0] if str(exc) else ""
        return FileResult(
            image,
            "failed",
            f"{image}: the worker running it failed ({type(exc).__name__}: "
            f"{first[:120]}); run this file alone with `mollifier infer` to see why",
        )
