"""``mollifier batch``: a folder of images on dask.distributed, with a progress bar."""

from __future__ import annotations

import sys
import time

from ._common import _log, settings_from_args


class _ProgressBar:
    """A one-line text progress bar on standard error (redrawn in place on a terminal, one line per
    file otherwise, so that batch logs stay readable)."""

    def __init__(self, n: int, width: int = 30):
        self.n, self.width, self.done, self.counts = n, width, 0, {}
        self.t0 = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def update(self, result) -> None:
        self.done += 1
        self.counts[result.status] = self.counts.get(result.status, 0) + 1
        elapsed = time.perf_counter() - self.t0
        fill = int(self.width * self.done / max(self.n, 1))
        counts = ", ".join(f"{v} {k}" for k, v in sorted(self.counts.items()))
        eta = elapsed / self.done * (self.n - self.done)
        line = (
            f"[{'#' * fill}{'.' * (self.width - fill)}] {self.done}/{self.n} files ({counts}) "
            f"{elapsed:.0f} s, ~{eta:.0f} s left"
        )
        if self.tty:
            print("\r" + line, end="" if self.done < self.n else "\n", file=sys.stderr, flush=True)
        else:
            _log(line)


def _batch_mask(value):
    """--mask of ``batch``: None (segment), "sibling" (S_mask.tif beside each image) or one file."""
    if value is None:
        return None
    if value == "sibling":
        from ..batch import sibling_mask

        return sibling_mask
    return value


def _cmd_batch(args) -> int:
    import os

    from ..batch import find_images, run_batch
    from ..io import InputError

    settings = settings_from_args(args, "batch")
    try:
        images = find_images(args.folder, args.pattern)
    except InputError as exc:
        raise SystemExit(f"mollifier batch: {exc}") from None
    if not images:
        raise SystemExit(
            f"mollifier batch: no file matches {args.pattern!r} in {args.folder}; "
            "check the folder and --pattern"
        )
    if args.scheduler:
        where = f"the dask scheduler at {args.scheduler}"
        workers = None
    elif args.workers == 0:
        where, workers = "this process (no dask)", None
    else:
        workers = args.workers or _default_workers(len(images))
        where = f"a local dask cluster of {workers} worker process{'es' if workers > 1 else ''}"
    _log(
        f"mollifier batch: {len(images)} files on {where} into {args.out}/"
        f"{' (files done with the same settings are skipped)' if not args.no_resume else ''}"
    )
    bar = _ProgressBar(len(images))
    gen = run_batch(
        images,
        args.out,
        pixel_size_nm=args.pixel_size,
        mask=_batch_mask(args.mask),
        input=args.input,
        settings=settings,
        overview=args.overview,
        skip_existing=not args.no_resume,
        workers=workers,
        scheduler=args.scheduler,
    )
    results = []
    try:
        while True:
            item = next(gen)
            if not isinstance(item[2], str):
                r = item[2]
                if r.status in ("failed", "diverged", "cancelled"):
                    _log(f"error: {r.reason}")
                elif r.reason and r.status == "ok":
                    _log(f"notice: {r.reason}")
                bar.update(r)
    except StopIteration as stop:
        results = stop.value or []
    counts = {k: sum(r.status == k for r in results) for k in ("ok", "skipped", "failed", "diverged")}
    bad = [r for r in results if r.status not in ("ok", "skipped")]
    _log(
        f"mollifier batch: {counts['ok']} done, {counts['skipped']} skipped (already done), "
        f"{len(bad)} not done of {len(results)}; summary: {os.path.join(args.out, 'summary.csv')}"
    )
    return 1 if bad else 0


def _default_workers(n_files: int) -> int:
    """One worker per GPU when there are GPUs, else one per CPU core; never more than files."""
    import os

    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else (os.cpu_count() or 1)
    return max(1, min(n, n_files))
