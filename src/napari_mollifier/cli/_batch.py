"""``mollifier batch``: a folder of images on dask.distributed, with a progress bar."""

from __future__ import annotations

from pathlib import Path

from ._common import _log, read_options_from_args, settings_from_args
from ._interrupt import stop_on_interrupt
from ._progress import FitProgress, TextBar


class _ProgressBar:
    """The batch's files as a :class:`TextBar` with the count of each status (redrawn in place on a
    terminal, one line per file otherwise, so that batch logs stay readable)."""

    def __init__(self, n: int, *, inplace: bool | None = None, quiet: bool = False):
        self.bar = TextBar(n, unit="files", every=0, inplace=inplace)
        self.n, self.done, self.counts, self.quiet = n, 0, {}, quiet

    def update(self, result) -> None:
        self.done += 1
        self.counts[result.status] = self.counts.get(result.status, 0) + 1
        if self.quiet:
            return
        counts = ", ".join(f"{v} {k}" for k, v in sorted(self.counts.items()))
        self.bar.update(self.done, counts, final=self.done >= self.n)

    def end_line(self) -> None:
        self.bar.end_line()


def _batch_mask(value):
    """--mask of ``batch``: None (segment), "sibling" (S_mask.tif beside each image) or one file."""
    if value is None:
        return None
    if value == "sibling":
        from ..batch import sibling_mask

        return sibling_mask
    return value


def _batch_labels(value):
    """--labels of ``batch``: "sibling" (the label image beside each image, when there is one),
    "auto" (every nucleus segmented) or "none"."""
    if value == "sibling":
        from ..batch import sibling_labels

        return sibling_labels
    return None if value in (None, "none") else value


def _cmd_batch(args) -> int:
    import os

    from ..batch import find_images, run_batch
    from ..io import InputError

    settings = settings_from_args(args, "batch")
    read = read_options_from_args(args)
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
    quiet = getattr(args, "quiet", False)
    in_process = workers is None and not args.scheduler
    # In this process each fit draws its own bar of steps (in place on a terminal); the files'
    # bar is then printed as a line after each file instead of being redrawn under it.
    bar = _ProgressBar(len(images), inplace=False if in_process else None, quiet=quiet)
    fit_bars: dict = {}

    steps = settings.training_steps

    def fit_progress(i, event) -> None:
        if i in fit_bars:
            fit_bars[i](event)

    def show_estimate(i, cost) -> None:
        end_lines()
        _log(f"estimate: {cost.describe()}")

    def end_lines() -> None:  # before a message: no bar is left mid-line
        bar.end_line()
        for b in fit_bars.values():
            b.end_line()

    def on_first_interrupt() -> None:
        end_lines()
        _log(
            "mollifier batch: stopping (Ctrl-C): no new file starts, running fits stop after their "
            "current step (not written); press Ctrl-C again to abort at once"
        )

    results: list = []
    seen: dict = {}
    kw = dict(
        pixel_size_nm=args.pixel_size,
        read=read,
        mask=_batch_mask(args.mask),
        input=args.input,
        settings=settings,
        overview=args.overview,
        skip_existing=not args.no_resume,
        workers=workers,
        scheduler=args.scheduler,
        check_memory=not args.no_memory_check,
        labels=_batch_labels(getattr(args, "labels", "sibling")),
    )
    with stop_on_interrupt(on_first_interrupt, ignore_after=getattr(args, "standalone", False)) as interrupts:
        gen = run_batch(
            images,
            args.out,
            cancel=interrupts.event,
            progress=None if quiet else fit_progress,
            on_estimate=None if quiet else show_estimate,
            **kw,
        )
        try:
            while True:
                item = next(gen)
                if isinstance(item[2], str) and not quiet:  # a file starts in this process
                    label = f"file {item[0] + 1}/{item[1]} {Path(item[2]).name}"
                    fit_bars.clear()
                    fit_bars[item[0]] = FitProgress(label, steps)
                if not isinstance(item[2], str):
                    r = item[2]
                    seen[item[0]] = r
                    for b in fit_bars.values():
                        b.end_line()
                    fit_bars.clear()
                    if r.status in ("failed", "diverged") or (
                        r.status == "cancelled" and not interrupts.interrupted
                    ):
                        bar.end_line()
                        _log(f"error: {r.reason}")
                    elif r.reason and r.status == "ok":
                        bar.end_line()
                        _log(f"notice: {r.reason}")
                    bar.update(r)
        except StopIteration as stop:
            results = stop.value or []
        except KeyboardInterrupt:  # the second Ctrl-C: stop at once, keep the record of what was done
            end_lines()
            gen.close()  # stops the cluster (dask)
            summary = _write_aborted_summary(images, seen, args.out)
            _log(f"mollifier batch: aborted (second Ctrl-C); summary of the files done: {summary}")
            return 130
    bar.end_line()
    counts = {k: sum(r.status == k for r in results) for k in ("ok", "skipped", "failed", "diverged")}
    bad = [r for r in results if r.status not in ("ok", "skipped")]
    _log(
        f"mollifier batch: {counts['ok']} done, {counts['skipped']} skipped (already done), "
        f"{len(bad)} not done of {len(results)}; summary: {os.path.join(args.out, 'summary.csv')}"
    )
    if interrupts.interrupted:
        _log("mollifier batch: interrupted (Ctrl-C); files not done are marked in summary.csv")
        return 130
    return 1 if bad else 0


def _write_aborted_summary(images, seen: dict, out) -> str:
    """summary.csv after an abort: the results so far, the other files "not run"."""
    from ..batch import FileResult, write_summary

    rows = [
        seen.get(i) or FileResult(str(p), "not run", "the batch was aborted (Ctrl-C)")
        for i, p in enumerate(images)
    ]
    path = Path(out) / "summary.csv"
    Path(out).mkdir(parents=True, exist_ok=True)
    write_summary(rows, path)
    return str(path)


def _default_workers(n_files: int) -> int:
    """One worker per GPU when there are GPUs, else one per CPU core; never more than files."""
    import os

    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else (os.cpu_count() or 1)
    return max(1, min(n, n_files))
