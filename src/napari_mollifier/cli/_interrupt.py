"""Ctrl-C in the long commands: the first SIGINT asks the work to stop cleanly (a
``threading.Event`` the fits check after every step), the second aborts at once.

Without this, Python turns SIGINT into a ``KeyboardInterrupt`` wherever the main thread happens to
be: a traceback, and the maps of a long fit lost.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

__all__ = ["Interrupts", "stop_on_interrupt"]


class Interrupts:
    """The state of :func:`stop_on_interrupt`: ``event`` is set by the first SIGINT; the second
    raises ``KeyboardInterrupt`` (the caller turns it into one line and exit status 130)."""

    def __init__(self, on_first: Callable[[], None] | None = None):
        self.event = threading.Event()
        self.count = 0
        self.on_first = on_first

    @property
    def interrupted(self) -> bool:
        return self.event.is_set()

    def handle(self, signum=None, frame=None) -> None:
        self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt
        self.event.set()
        if self.on_first is not None:
            self.on_first()


@contextlib.contextmanager
def stop_on_interrupt(
    on_first: Callable[[], None] | None = None, *, ignore_after: bool = False
) -> Iterator[Interrupts]:
    """Within the block, the first SIGINT sets ``Interrupts.event`` (and calls ``on_first``), a
    second one raises ``KeyboardInterrupt``. Outside the main thread (where signal handlers cannot
    be set) nothing is installed and the event is only set by the caller.

    ``ignore_after``: once interrupted, ignore SIGINT after the block instead of restoring the
    previous handler (the ``mollifier`` process is then only printing its last line and exiting; a
    further Ctrl-C there would kill it by the signal, without its exit status 130)."""
    state = Interrupts(on_first)
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous = signal.signal(signal.SIGINT, state.handle)
    try:
        yield state
    finally:
        ignore = ignore_after and state.count > 0
        signal.signal(signal.SIGINT, signal.SIG_IGN if ignore else previous)
