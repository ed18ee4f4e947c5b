"""The live loss curve (matplotlib's Qt canvas), redrawn at most a few times a second (Qt)."""

from __future__ import annotations

import time

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import QTimer

__all__ = ["LossPlot"]

_SERIES = (("total", "total", "k"), ("data", "data", "tab:blue"), ("residual", "PDE residual", "tab:orange"))


class LossPlot(FigureCanvasQTAgg):
    """Losses (log scale) against the step. ``set_history`` is cheap: the drawing itself happens
    at most every ``min_interval_s`` (a pending redraw picks up the latest history)."""

    def __init__(self, parent=None, *, min_interval_s: float = 0.5):
        fig = Figure(figsize=(3.2, 1.8), dpi=80, layout="constrained")
        super().__init__(fig)
        self.setParent(parent)
        self.setMinimumHeight(130)
        self.ax = fig.add_subplot(111)
        self.lines = {}
        for key, label, colour in _SERIES:
            (self.lines[key],) = self.ax.plot([], [], color=colour, lw=1.2, label=label)
        self.ax.set_yscale("log")
        self.ax.set_xlabel("step", fontsize=8)
        self.ax.set_ylabel("loss", fontsize=8)
        self.ax.tick_params(labelsize=7)
        self.ax.legend(fontsize=7, loc="upper right", frameon=False)
        self.min_interval_s = min_interval_s
        self.draws = 0
        self._history: list = []
        self._last = 0.0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._redraw)

    def set_history(self, history: list) -> None:
        self._history = history
        wait = self.min_interval_s - (time.perf_counter() - self._last)
        if wait <= 0:
            self._redraw()
        elif not self._timer.isActive():
            self._timer.start(int(wait * 1000) + 1)

    def clear(self) -> None:
        self._timer.stop()
        self._history = []
        self._redraw()

    def _redraw(self) -> None:
        h = self._history
        steps = [r["step"] for r in h]
        for key, line in self.lines.items():
            line.set_data(steps, [max(r.get(key, float("nan")), 1e-12) for r in h])
        if h:
            self.ax.relim()
            self.ax.autoscale_view()
        self._last = time.perf_counter()
        self.draws += 1
        self.draw_idle()
