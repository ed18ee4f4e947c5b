"""Text progress bars on standard error (no dependency): a fit's training steps and a batch's files.

On a terminal a bar is redrawn in place with ``\\r``; otherwise (a log file, a pipe) it prints a
line only now and then (every ``every`` of the way, e.g. 10 %), so logs stay readable.
"""

from __future__ import annotations

import sys
import time

__all__ = ["FitProgress", "TextBar", "format_seconds"]


def format_seconds(s: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    s = max(0.0, float(s))
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


class TextBar:
    """``label [#####.....] done/total unit, extra, elapsed, ~left`` on ``stream``.

    Parameters
    ----------
    total : int
    label : str
        Printed before the bar (e.g. the file's name).
    unit : str
        What is counted (``steps``, ``files``).
    every : float
        Off a terminal, print when the count crosses another ``every`` of the total (0: at every
        update). The first update and the last are always printed.
    inplace : bool, optional
        Redraw in place; default: when ``stream`` is a terminal.
    """

    def __init__(
        self,
        total: int,
        *,
        label: str = "",
        unit: str = "",
        every: float = 0.1,
        width: int = 24,
        stream=None,
        inplace: bool | None = None,
    ):
        self.total, self.label, self.unit, self.every, self.width = int(total), label, unit, every, width
        self.stream = stream if stream is not None else sys.stderr
        if inplace is None:
            isatty = getattr(self.stream, "isatty", None)
            inplace = bool(isatty and isatty())
        self.inplace = inplace
        self.t0 = time.perf_counter()
        self.done = 0
        self._printed_bucket = -1
        self._moved = False
        self._printed_done = -1
        self._open = False  # an in-place line is on screen without its newline

    def line(self, done: int, extra: str = "") -> str:
        n = max(self.total, 1)
        frac = min(max(done / n, 0.0), 1.0)
        fill = int(self.width * frac)
        elapsed = time.perf_counter() - self.t0
        parts = [f"{done}/{self.total}{' ' + self.unit if self.unit else ''}"]
        if extra:
            parts.append(extra)
        parts.append(format_seconds(elapsed))
        if 0 < done < self.total:
            parts.append(f"~{format_seconds(elapsed / done * (self.total - done))} left")
        head = f"{self.label} " if self.label else ""
        return f"{head}[{'#' * fill}{'.' * (self.width - fill)}] " + ", ".join(parts)

    def update(self, done: int, extra: str = "", *, final: bool = False) -> None:
        """Show ``done`` of the total; ``final`` closes the bar (its line then ends)."""
        self.done = done
        text = self.line(done, extra)
        if self.inplace:
            # Pad with spaces: a shorter line must cover the end of the previous one.
            pad = max(0, getattr(self, "_last_len", 0) - len(text))
            self.stream.write("\r" + text + " " * pad + ("\n" if final else ""))
            self._last_len = 0 if final else len(text)
            self._open = not final
            self.stream.flush()
            return
        bucket = int(done / max(self.total, 1) / self.every) if self.every > 0 else done
        # The first update, the first with progress (a fit is running, not hung) and every new
        # bucket are printed.
        first_progress = done > 0 and not self._moved
        if (final and done != self._printed_done) or first_progress or bucket > self._printed_bucket:
            self._printed_bucket = max(bucket, self._printed_bucket)
            self._printed_done = done
            self._moved = self._moved or done > 0
            self.stream.write(text + "\n")
            self.stream.flush()

    def end_line(self) -> None:
        """End an in-place line left open (before another message is printed)."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False
            self._last_len = 0


class FitProgress:
    """The ``progress`` callback of :func:`napari_mollifier.infer_rates` drawn as a :class:`TextBar`
    of training steps with the current loss (``quiet``: draws nothing)."""

    def __init__(self, label: str, total_steps: int, *, quiet: bool = False, stream=None, inplace=None):
        self.quiet = quiet or total_steps <= 0  # the direct read-out has no steps
        self.bar = TextBar(total_steps, label=label, unit="steps", stream=stream, inplace=inplace)
        self.step = 0
        if not self.quiet:
            self.bar.update(0, "starting")

    def __call__(self, event) -> None:
        self.step = event.step
        if self.quiet:
            return
        if event.total_steps != self.bar.total:
            self.bar.total = event.total_steps
        loss = (event.losses or {}).get("total")
        extra = f"loss {loss:.4g}" if loss is not None else ""
        self.bar.update(event.step, extra, final=bool(getattr(event, "done", False)))

    def end_line(self) -> None:
        if not self.quiet:
            self.bar.end_line()
