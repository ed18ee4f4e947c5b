"""A form for :class:`~napari_mollifier.config.InferenceSettings`, built from its pydantic fields (Qt).

Defaults come from the field defaults and tooltips from the field descriptions, so the form
follows the settings schema; the common fields are shown, the rest sit in a collapsed
"Advanced settings" section. The comparison switches (:data:`~napari_mollifier.config.COMPARISON_FIELDS`)
are not shown: the form's settings keep their defaults.
"""

from __future__ import annotations

import types
import typing

from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..config import InferenceSettings

__all__ = ["SettingsForm", "MAIN_FIELDS", "ADVANCED_FIELDS", "scroll_body", "wrapping_label"]

MAIN_FIELDS = ("method", "arch", "optimizer", "steps", "kernel_radius_nm", "device")
ADVANCED_FIELDS = (
    "learning_rate",
    "rate_scale_nm",
    "edge_margin_nm",
    "residual_tolerance",
    "smoothness",
    "noise_floor",
    "psf_sigma_nm",
    "calibration",
    "euchromatin_level",
    "heterochromatin_level",
    "init_smoothing_px",
    "precision",
    "uncertainty",
    "bootstrap_fits",
    "seed",
    "report_every",
)

LABELS = {
    "method": "Method",
    "arch": "Architecture",
    "optimizer": "Optimiser",
    "steps": "Steps",
    "kernel_radius_nm": "Kernel radius (nm)",
    "device": "Device",
    "learning_rate": "Learning rate",
    "rate_scale_nm": "Rate scale (nm)",
    "edge_margin_nm": "Edge margin (nm)",
    "residual_tolerance": "Residual tolerance",
    "smoothness": "Smoothness",
    "noise_floor": "Noise floor",
    "psf_sigma_nm": "PSF sigma (nm)",
    "calibration": "Intensity calibration",
    "euchromatin_level": "Euchromatin intensity (φ = 0)",
    "heterochromatin_level": "Heterochromatin intensity (φ = 1)",
    "init_smoothing_px": "Initial smoothing (px)",
    "precision": "Precision",
    "uncertainty": "Uncertainty (sd maps)",
    "bootstrap_fits": "Bootstrap refits",
    "seed": "Seed",
    "report_every": "Report every (steps)",
}
# Optional fields whose 0 is invalid: "auto" sits at 0 and the box steps by 1 from it. And what
# "auto" means, where that is short to say.
AUTO_AT_ZERO = ("kernel_radius_nm",)
AUTO_TEXT = {"kernel_radius_nm": "auto (about 1 pixel)"}
DEVICE_LABELS = {"auto": "auto", "cuda": "CUDA", "mps": "MPS", "cpu": "CPU"}


def _kind(annotation):
    """('choice', values) | ('int', None) | ('float', optional: bool)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "choice", typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _kind(args[0])[0], True
    if annotation is int:
        return "int", False
    return "float", False


class SettingsForm(QWidget):
    """Widgets for the settings fields; ``settings()`` validates them into an InferenceSettings."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.widgets: dict[str, QWidget] = {}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        main = QFormLayout()
        lay.addLayout(main)
        for name in MAIN_FIELDS:
            main.addRow(LABELS[name], self._make(name))
        self.advanced_toggle = QToolButton(self)
        self.advanced_toggle.setText("Advanced settings")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setChecked(False)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setArrowType(_arrow(False))
        lay.addWidget(self.advanced_toggle)
        self.advanced = QWidget(self)
        adv = QFormLayout(self.advanced)
        adv.setContentsMargins(12, 0, 0, 0)
        for name in ADVANCED_FIELDS:
            adv.addRow(LABELS[name], self._make(name))
        self.advanced.setVisible(False)
        lay.addWidget(self.advanced)
        self.advanced_toggle.toggled.connect(self._toggle_advanced)

    def _toggle_advanced(self, on: bool) -> None:
        self.advanced.setVisible(on)
        self.advanced_toggle.setArrowType(_arrow(on))

    def _make(self, name: str) -> QWidget:
        info = InferenceSettings.model_fields[name]
        default = info.default
        kind, extra = _kind(info.annotation)
        if kind == "choice":
            w = QComboBox(self)
            for v in extra:
                w.addItem(DEVICE_LABELS.get(v, v) if name == "device" else str(v), v)
            w.setCurrentIndex(list(extra).index(default))
        elif kind == "int":
            w = QSpinBox(self)
            w.setRange(0, 10_000_000)
            if name == "steps":
                w.setSingleStep(100)
            w.setValue(int(default))
        else:
            w = QDoubleSpinBox(self)
            w.setDecimals(4)
            w.setRange(-1.0 if extra and name not in AUTO_AT_ZERO else 0.0, 1e6)
            w.setSingleStep(0.01 if (default or 0) < 1 and name not in AUTO_AT_ZERO else 1.0)
            if extra:  # optional: the minimum shows as "auto" (None: the documented default)
                w.setSpecialValueText(AUTO_TEXT.get(name, "auto"))
            w.setValue(-1.0 if default is None else float(default))
        w.setToolTip(info.description or "")
        w.setObjectName(f"mollifier_{name}")
        self.widgets[name] = w
        return w

    def values(self) -> dict:
        out = {}
        for name, w in self.widgets.items():
            if isinstance(w, QComboBox):
                out[name] = w.currentData()
            elif isinstance(w, QSpinBox):
                out[name] = int(w.value())
            else:
                v = float(w.value())
                optional = _kind(InferenceSettings.model_fields[name].annotation)[1]
                out[name] = None if (optional and v == w.minimum()) else v
        return out

    def settings(self) -> InferenceSettings:
        """The settings (pydantic ValidationError for invalid values)."""
        return InferenceSettings(**self.values())

    def set_values(self, **values) -> None:
        for name, v in values.items():
            w = self.widgets[name]
            if isinstance(w, QComboBox):
                w.setCurrentIndex(w.findData(v))
            elif isinstance(w, QSpinBox):
                w.setValue(int(v))
            else:
                w.setValue(w.minimum() if v is None else float(v))


def _arrow(expanded: bool):
    return Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow


class _WidthFollower(QObject):
    """Keeps a scroll area as wide as its body's minimum width (which grows when napari's style
    sheet is applied after docking)."""

    def __init__(self, area: QScrollArea):
        super().__init__(area)
        self.area = area

    def eventFilter(self, obj, ev) -> bool:
        if ev.type() in (QEvent.Type.LayoutRequest, QEvent.Type.StyleChange, QEvent.Type.Show):
            fit_scroll_width(self.area)
        return False


def scroll_body(widget: QWidget) -> QVBoxLayout:
    """Give ``widget`` a vertically scrolling body and return the body's layout (a dock shorter than
    the panel would otherwise squeeze its rows on top of each other). The panel keeps the width
    of its content."""
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    area = QScrollArea(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    body = QWidget(area)
    area.setWidget(body)
    outer.addWidget(area)
    body.installEventFilter(_WidthFollower(area))
    return QVBoxLayout(body)


def fit_scroll_width(area: QScrollArea) -> None:
    """The scroll area as wide as its body's content (plus the scroll bar)."""
    width = area.widget().minimumSizeHint().width() + area.verticalScrollBar().sizeHint().width() + 4
    if area.minimumWidth() != width:
        area.setMinimumWidth(width)


def wrapping_label(text: str, parent=None) -> QLabel:
    """A word-wrapping label whose text never widens the panel (long messages wrap instead)."""
    label = QLabel(text, parent)
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label


def pixel_size_box(parent, special_text: str, tooltip: str) -> QDoubleSpinBox:
    """Pixel-size entry in nm; 0 shows ``special_text`` (nothing chosen yet)."""
    box = QDoubleSpinBox(parent)
    box.setRange(0.0, 1e5)
    box.setDecimals(3)
    box.setSuffix(" nm")
    box.setSpecialValueText(special_text)
    box.setToolTip(tooltip)
    return box


def input_kind_box(parent) -> QComboBox:
    """Choice of input kind (the values infer_rates takes)."""
    box = QComboBox(parent)
    box.addItem("intensity", "intensity")
    box.addItem("fraction (φ)", "fraction")
    box.setToolTip(
        "intensity: raw image, normalised inside the nucleus to the heterochromatin fraction φ; "
        "fraction: the pixel values already are φ in [0, 1]"
    )
    return box


def run_controls(parent, title: str, *, progress_format: str, status: str, start_tooltip: str = ""):
    """A "Start" button beside a progress bar over a status label, in a group box.

    Returns ``(box, layout, start_button, progress_bar, status_label)``; callers add their own
    widgets (loss curve, file table, ...) to ``layout``.
    """
    box = QGroupBox(title, parent)
    lay = QVBoxLayout(box)
    row = QHBoxLayout()
    start = QPushButton("Start", box)
    if start_tooltip:
        start.setToolTip(start_tooltip)
    row.addWidget(start)
    progress = QProgressBar(box)
    progress.setRange(0, 1)
    progress.setValue(0)
    progress.setFormat(progress_format)
    row.addWidget(progress, 1)
    lay.addLayout(row)
    label = wrapping_label(status, box)
    lay.addWidget(label)
    return box, lay, start, progress, label
