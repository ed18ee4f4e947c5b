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
from ._gui_text import LABELS

__all__ = [
    "SettingsForm",
    "MAIN_FIELDS",
    "ADVANCED_FIELDS",
    "scroll_body",
    "wrapping_label",
    "elide_long_names",
    "device_label",
]

MAIN_FIELDS = ("method", "arch", "optimizer", "steps", "kernel_radius_nm", "device")
ADVANCED_FIELDS = (
    "learning_rate",
    "rate_scale_nm",
    "edge_margin_nm",
    "residual_tolerance",
    "smoothness",
    "noise_floor",
    "psf_sigma_nm",
    "psf_sigma_min_nm",
    "psf_sigma_max_nm",
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

# Optional fields whose 0 is invalid: "auto" sits at 0 and the box steps by 1 from it. And what
# "auto" means, where that is short to say.
AUTO_AT_ZERO = ("kernel_radius_nm",)
AUTO_TEXT = {
    "kernel_radius_nm": "auto (about 1 pixel)",
    "psf_sigma_min_nm": "off (PSF sigma as given)",
    "psf_sigma_max_nm": "off (PSF sigma as given)",
}
# Decimals of the float boxes (default 4): lengths in nm need two at most.
DECIMALS = {
    "kernel_radius_nm": 2,
    "rate_scale_nm": 2,
    "edge_margin_nm": 2,
    "psf_sigma_nm": 2,
    "psf_sigma_min_nm": 2,
    "psf_sigma_max_nm": 2,
}
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
        if name == "device":  # the devices there are here: auto, cpu, cuda:0 ... cuda:N-1, mps
            from ..inverse._device import device_choices

            w = QComboBox(self)
            for v in device_choices():
                w.addItem(device_label(v), v)
            w.setCurrentIndex(w.findData(default))
        elif kind == "choice":
            w = QComboBox(self)
            for v in extra:
                w.addItem(str(v), v)
            w.setCurrentIndex(list(extra).index(default))
        elif kind == "int":
            w = QSpinBox(self)
            # at least the schema's minimum (1 training step: 0 steps would "finish" at once)
            w.setRange(max(_lower_bound(info), 1 if name == "steps" else 0), 10_000_000)
            if name == "steps":
                w.setSingleStep(100)
            w.setValue(int(default))
        else:
            w = QDoubleSpinBox(self)
            w.setDecimals(DECIMALS.get(name, 4))
            w.setRange(-1.0 if extra and name not in AUTO_AT_ZERO else 0.0, 1e6)
            w.setSingleStep(0.01 if (default or 0) < 1 and name not in AUTO_AT_ZERO else 1.0)
            if extra:  # optional: the minimum shows as "auto" (None: the documented default)
                w.setSpecialValueText(AUTO_TEXT.get(name, "auto"))
            w.setValue(-1.0 if default is None else float(default))
        if isinstance(w, (QSpinBox, QDoubleSpinBox)):
            _fit_text_width(w)
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
                if name == "device" and w.findData(v) < 0:  # e.g. settings saved on a GPU machine
                    w.addItem(f"{device_label(v)} (not here)", v)
                w.setCurrentIndex(w.findData(v))
            elif isinstance(w, QSpinBox):
                w.setValue(int(v))
            else:
                w.setValue(w.minimum() if v is None else float(v))


def device_label(device: str) -> str:
    """How the device choice reads: ``cuda:1`` -> ``CUDA GPU 1``."""
    if device.startswith("cuda:"):
        return f"CUDA GPU {device.split(':', 1)[1]}"
    return DEVICE_LABELS.get(device, device)


def _lower_bound(info) -> int:
    """The ``ge`` constraint of an int field (0 without one)."""
    for m in info.metadata:
        ge = getattr(m, "ge", None)
        if ge is not None:
            return int(ge)
    return 0


def _fit_text_width(box) -> None:
    """A spin box at least as wide as its longest value and its special text (napari's style sheet
    squeezed "500.0000" to "500.C"): the width of the text plus the arrows and the frame."""
    from qtpy.QtWidgets import QStyle

    fm = box.fontMetrics()
    texts = [box.textFromValue(box.value()), box.textFromValue(box.maximum()), box.specialValueText()]
    text = max((t + box.suffix() for t in texts if t), key=fm.horizontalAdvance)
    arrows = box.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent) + 2 * box.style().pixelMetric(
        QStyle.PixelMetric.PM_SpinBoxFrameWidth
    )
    box.setMinimumWidth(fm.horizontalAdvance(text) + arrows + 16)


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


def elide_long_names(combo: QComboBox, chars: int = 18) -> None:
    """A layer-choice box that stays ``chars`` characters wide whatever the names (a long name
    widened the panel or was cut in the middle of a word), elides long names in the middle in its
    list and shows the chosen name whole in its tooltip."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)
    combo.view().setTextElideMode(Qt.TextElideMode.ElideMiddle)
    base = combo.toolTip()

    def show_whole(text: str) -> None:
        combo.setToolTip(f"{text}\n\n{base}" if text else base)

    combo.currentTextChanged.connect(show_whole)
    show_whole(combo.currentText())


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
