"""A napari generator worker that a cancel Event stops between training steps (Qt)."""

from __future__ import annotations

import functools
import threading

from napari.qt.threading import GeneratorWorker, create_worker

__all__ = ["CancellableWorker", "NamedTask", "launch", "start_cancellable"]


class CancellableWorker(GeneratorWorker):
    """``quit()`` also sets the generator's ``cancel`` Event, so a fit stops after its current step
    instead of at the next yield (napari calls ``quit`` when the viewer closes with tasks running).
    ``stopped`` is set once the worker thread is done, whatever the way (wait on it to join)."""

    def __init__(self, func, *args, **kwargs):
        self.cancel_event: threading.Event = kwargs.get("cancel") or threading.Event()
        kwargs["cancel"] = self.cancel_event
        self.stopped = threading.Event()
        super().__init__(func, *args, **kwargs)

    def quit(self) -> None:
        self.cancel_event.set()
        super().quit()

    def work(self):
        try:
            return super().work()
        finally:
            try:
                self._gen.close()  # run the generator's cleanup now, in this thread
            except Exception:  # noqa: BLE001 - a generator that fails while closing must not hide the result
                pass
            self.stopped.set()

    def join(self, timeout: float = 30.0) -> bool:
        """Stop (cancel + quit) and wait for the thread; True when it has ended."""
        self.quit()
        if not getattr(self, "_started", False):
            # never started (its start was deferred): run it now, cancelled, so that it ends as a
            # finished task (napari would otherwise list it as pending when the window closes)
            launch(self)
        return self.stopped.wait(timeout)


class NamedTask(functools.partial):
    """A generator function under a readable name: napari lists a running worker's task by
    ``str(func)`` (in the dialog that asks before closing the window), which for a plain function is
    ``<function fit_updates at 0x7f...>``."""

    def __new__(cls, func, name: str):
        self = super().__new__(cls, func)
        self.name = name
        return self

    def __str__(self) -> str:
        return self.name

    __repr__ = __str__


def start_cancellable(
    func, *args, connect: dict, task_name: str = "", start: bool = True, **kwargs
) -> CancellableWorker:
    """Create and start a :class:`CancellableWorker` (a napari worker: errors are notified and the
    task is registered with the viewer) with ``connect`` = signal name -> callback.

    ``task_name`` names the task in napari's close dialog and gives it a progress bar in napari's
    activity dock (``worker.pbar``; indeterminate until the caller sets its ``total`` and steps it:
    the fit yields maps at most every half second, not once per step). ``start=False`` leaves the
    starting to :func:`launch`."""
    extra = {}
    if task_name:
        func = NamedTask(func, task_name)
        extra["_progress"] = {"total": 0, "desc": task_name}
    worker = create_worker(
        func, *args, _worker_class=CancellableWorker, _connect=connect, _start_thread=False, **extra, **kwargs
    )
    if start:
        launch(worker)
    return worker


def launch(worker: CancellableWorker) -> None:
    """Start a worker made by ``start_cancellable(..., start=False)`` (once)."""
    if not getattr(worker, "_started", False):
        worker._started = True
        worker.start()


class StopsOnClose:
    """Mixin for dock widgets with a ``shutdown()``: it runs when the widget is closed, removed from
    its dock (napari's close button reparents it to None), when the viewer window closes, and when
    the application quits."""

    _watched_window = None

    def _watch_app(self) -> None:
        from qtpy.QtWidgets import QApplication

        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    def _unwatch(self) -> None:
        from qtpy.QtWidgets import QApplication

        app = QApplication.instance()
        if app is not None:
            try:
                app.aboutToQuit.disconnect(self.shutdown)
            except (TypeError, RuntimeError):
                pass
        if self._watched_window is not None:
            self._watched_window.removeEventFilter(self)
            self._watched_window = None

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)

    def _rewatch(self) -> None:
        """Watch the current top-level window (the dock first, napari's main window once docked)."""
        if getattr(self, "_closed", False) or self.parent() is None:
            return
        win = self.window()
        if win is not self and win is not self._watched_window:
            if self._watched_window is not None:
                self._watched_window.removeEventFilter(self)
            win.installEventFilter(self)
            self._watched_window = win

    def event(self, ev) -> bool:
        from qtpy.QtCore import QEvent

        if ev.type() == QEvent.Type.ParentChange:
            if self.parent() is None:
                if self._watched_window is not None:  # taken out of its dock: the user closed it
                    self.shutdown()
            else:
                self._rewatch()
        elif ev.type() == QEvent.Type.Show:
            self._rewatch()
        return super().event(ev)

    def eventFilter(self, obj, ev) -> bool:
        from qtpy.QtCore import QEvent, QTimer

        if obj is self._watched_window:
            if ev.type() == QEvent.Type.Close:
                if ev.spontaneous():  # the user may still cancel napari's confirmation dialog
                    QTimer.singleShot(0, self._shutdown_if_window_closed)
                else:
                    self.shutdown()
            elif ev.type() == QEvent.Type.ParentChange:  # the dock went into the main window
                QTimer.singleShot(0, self._rewatch)
        return False

    def _shutdown_if_window_closed(self) -> None:
        if self._watched_window is not None and not self._watched_window.isVisible():
            self.shutdown()
