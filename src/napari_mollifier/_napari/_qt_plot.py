"""The live loss curve: a small QPainter plot (Qt).

matplotlib redrew its figure in 0.1-0.4 s of main-thread time per update on a 2-core CPU (log
axis and layout), which froze the viewer during fits; painting a few polylines takes well under
a millisecond. Repaints are also coalesced to at most a few per second.
"""

from __future__ import annotations

import math
import time

from qtpy.QtCore import QPointF, QRectF, Qt, QTimer
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

__all__ = ["LossPlot", "SERIES"]

#: (key in the loss history, legend, colour)
SERIES = (("total", "total", "#e8e8e8"), ("data", "data", "#4ea3f1"), ("residual", "PDE residual", "#f5a142"))


class LossPlot(QWidget):
    """Losses on a log scale against the step. ``set_history`` stores the data; the widget
    repaints at most every ``min_interval_s``."""

    def __init__(self, parent=None, *, min_interval_s: float = 0.25):
        super().__init__(parent)
        self.setMinimumHeight(120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("losses per step (log scale): total, data misfit and PDE residual")
        self.min_interval_s = min_interval_s
        self.history: list = []
        self.paints = 0
        self._last = 0.0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._repaint_now)

    def sizeHint(self):
        from qtpy.QtCore import QSize

        return QSize(260, 130)

    def set_history(self, history: list) -> None:
        self.history = list(history)
        wait = self.min_interval_s - (time.perf_counter() - self._last)
        if wait <= 0:
            self._repaint_now()
        elif not self._timer.isActive():
            self._timer.start(int(wait * 1000) + 1)

    def clear(self) -> None:
        self._timer.stop()
        self.history = []
        self._repaint_now()

    def series(self, key: str) -> tuple[list, list]:
        """(steps, log10 loss) of one series, finite positive values only."""
        xs, ys = [], []
        for r in self.history:
            v = r.get(key)
            if v is not None and v > 0 and math.isfinite(v):
                xs.append(r["step"])
                ys.append(math.log10(v))
        return xs, ys

    def _repaint_now(self) -> None:
        self._last = time.perf_counter()
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.paints += 1
        p = QPainter(self)
        try:
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            p.fillRect(self.rect(), QColor("#262930"))
            fm = p.fontMetrics()
            left, top, bottom, right = fm.horizontalAdvance("1e-10") + 8, 6, fm.height() + 6, 8
            area = QRectF(
                left, top, max(self.width() - left - right, 10), max(self.height() - top - bottom, 10)
            )
            p.setPen(QPen(QColor("#888888"), 1))
            p.drawRect(area)
            data = {key: self.series(key) for key, _, _ in SERIES}
            xs = [x for sx, _ in data.values() for x in sx]
            ys = [y for _, sy in data.values() for y in sy]
            if not xs:
                p.drawText(area, Qt.AlignmentFlag.AlignCenter, "loss curve (during a fit)")
                return
            x0, x1 = 0.0, max(max(xs), 1)
            y0, y1 = math.floor(min(ys)), math.ceil(max(ys))
            if y1 <= y0:
                y1 = y0 + 1

            def to_px(x, y):
                return QPointF(
                    area.left() + (x - x0) / (x1 - x0) * area.width(),
                    area.bottom() - (y - y0) / (y1 - y0) * area.height(),
                )

            p.setPen(QColor("#bbbbbb"))
            p.drawText(
                QRectF(0, area.top() - 2, left - 4, fm.height()), Qt.AlignmentFlag.AlignRight, f"1e{y1}"
            )
            p.drawText(
                QRectF(0, area.bottom() - fm.height() + 2, left - 4, fm.height()),
                Qt.AlignmentFlag.AlignRight,
                f"1e{y0}",
            )
            p.drawText(
                QRectF(area.left(), area.bottom() + 2, area.width(), fm.height()),
                Qt.AlignmentFlag.AlignRight,
                f"step {int(x1)}",
            )
            legend_x = area.left() + 4
            for key, label, colour in SERIES:
                sx, sy = data[key]
                p.setPen(QPen(QColor(colour), 1.5))
                if len(sx) > 1:
                    p.drawPolyline(QPolygonF([to_px(x, y) for x, y in zip(sx, sy)]))
                elif sx:
                    p.drawEllipse(to_px(sx[0], sy[0]), 2, 2)
                p.drawText(QPointF(legend_x, area.top() + fm.ascent() + 2), label)
                legend_x += fm.horizontalAdvance(label) + 10
        finally:
            p.end()
