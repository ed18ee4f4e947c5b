"""The "Infer rate maps" dock widget (Qt): pick an image, preview its preprocessing, fit, watch.

The widget only reads the form and shows :class:`~._fit.FitState`; training runs in a napari
thread worker over :func:`~._fit.fit_updates` (Qt-free), and layers change only in the worker's
``yielded`` / ``returned`` callbacks, which run on the main thread.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING

import napari.layers
import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox, QFormLayout, QGroupBox, QPushButton, QVBoxLayout, QWidget

from ..io import InputError
from ._fit import (
    WARMED_UP,
    FitState,
    MapUpdate,
    describe_point,
    fit_updates,
    maps_of_fit,
    prepare_fit,
    warm_up,
)
from ._layers import MAP_KEYS, MAP_STYLE, RATE_UNITS, contrast_limits
from ._qt_plot import LossPlot
from ._qt_settings import (
    SettingsForm,
    input_kind_box,
    pixel_size_box,
    run_controls,
    scroll_body,
    wrapping_label,
)
from ._qt_worker import StopsOnClose, start_cancellable
from ._writer import pixel_size_from_meta

if TYPE_CHECKING:
    import napari.viewer

__all__ = ["FitWidget"]

AUTO_MASK = "(segment automatically)"
NO_CROP = "(whole image)"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    if hasattr(exc, "errors") and callable(exc.errors):  # pydantic ValidationError
        try:
            e = exc.errors()[0]
            return f"invalid setting {'.'.join(str(x) for x in e['loc'])}: {e['msg']}"
        except Exception:  # noqa: BLE001
            pass
    return text[0] if text else type(exc).__name__


class FitWidget(StopsOnClose, QWidget):
    """Dock widget "Infer rate maps"."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.state = FitState()
        self.worker = None
        self.fit = None  # the last RateFit
        self.result_layers: dict = {}  # MAP_KEYS -> Image layer of the current / last fit
        self._input = None
        self._image_name = ""
        self._meta: dict = {}
        self._closed = False
        self._build()
        self._connect()
        self._refresh_layers()
        if not WARMED_UP.is_set():
            threading.Thread(target=warm_up, name="mollifier-warm-up", daemon=True).start()

    # ---------------------------------------------------------------- layout
    def _build(self) -> None:
        lay = scroll_body(self)
        box = QGroupBox("Input", self)
        form = QFormLayout(box)
        self.image_combo = QComboBox(box)
        self.image_combo.setToolTip("the image layer of the nucleus (2-D, one channel)")
        form.addRow("Image", self.image_combo)
        self.pixel_size = pixel_size_box(
            box,
            "type the pixel size (nm)",
            "pixel size in nm (prefilled from the layer's scale; the plugin's readers set it from the file)",
        )
        form.addRow("Pixel size", self.pixel_size)
        self.input_kind = input_kind_box(box)
        form.addRow("Input", self.input_kind)
        self.mask_combo = QComboBox(box)
        self.mask_combo.setToolTip(
            "nucleus mask: a labels layer (paint or erase it; nonzero = nucleus) or "
            "automatic segmentation; the fit uses the layer's current data"
        )
        form.addRow("Nucleus mask", self.mask_combo)
        self.crop_combo = QComboBox(box)
        self.crop_combo.setToolTip(
            "optional: analyse only the inside of the last rectangle of a shapes layer"
        )
        form.addRow("Crop", self.crop_combo)
        self.preview_btn = QPushButton("Preview preprocessing", box)
        self.preview_btn.setToolTip(
            "show the nucleus mask (an editable labels layer) and the normalised φ the fit will use"
        )
        form.addRow(self.preview_btn)
        lay.addWidget(box)

        sbox = QGroupBox("Settings", self)
        slay = QVBoxLayout(sbox)
        self.form = SettingsForm(sbox)
        slay.addWidget(self.form)
        self.device_label = wrapping_label("", sbox)
        slay.addWidget(self.device_label)
        lay.addWidget(sbox)

        rbox, rlay, self.start_btn, self.progress, self.status_label = run_controls(
            self,
            "Fit",
            start_tooltip="start the fit; while it runs this button stops it (the latest maps are kept)",
            progress_format="not started",
            status="Pick an image layer, then Start.",
        )
        self.loss_plot = LossPlot(rbox)
        rlay.addWidget(self.loss_plot)
        self.point_label = wrapping_label("Click on the image to read the local rates.", rbox)
        self.point_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        rlay.addWidget(self.point_label)
        units = wrapping_label(f"<small>{RATE_UNITS}</small>", rbox)
        rlay.addWidget(units)
        lay.addWidget(rbox)
        lay.addStretch(1)

    def _connect(self) -> None:
        self.image_combo.currentTextChanged.connect(self._on_image_changed)
        self.preview_btn.clicked.connect(self.preview)
        self.start_btn.clicked.connect(self._on_start_stop)
        self.form.widgets["device"].currentIndexChanged.connect(self._update_device_label)
        self.state.events.status.connect(self._on_status)
        self.state.events.message.connect(self._on_message)
        self.state.events.device.connect(self._update_device_label)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self.viewer.mouse_drag_callbacks.append(self._on_click)
        self._watch_app()
        self._update_device_label()

    def _on_message(self, text: str) -> None:
        self.status_label.setText(text)

    # ---------------------------------------------------------------- layer choices
    def _layers_of(self, kind: str) -> list:
        cls = getattr(napari.layers, kind)
        return [ly for ly in self.viewer.layers if isinstance(ly, cls)]

    def _refresh_layers(self, *_) -> None:
        if self._closed:
            return
        for combo, kind, first in (
            (self.image_combo, "Image", None),
            (self.mask_combo, "Labels", AUTO_MASK),
            (self.crop_combo, "Shapes", NO_CROP),
        ):
            current = combo.currentText()
            names = ([first] if first else []) + [
                ly.name
                for ly in self._layers_of(kind)
                if kind != "Image" or (ly.ndim == 2 and not ly.rgb and ly.name not in self._result_names())
            ]
            if [combo.itemText(i) for i in range(combo.count())] == names:
                continue
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)
            combo.blockSignals(False)
        if self.image_combo.currentText() != self._image_name:
            self._on_image_changed(self.image_combo.currentText())

    def _result_names(self) -> set:
        """Layers this widget made (maps, previews): not offered as the image to fit."""
        return {
            ly.name
            for ly in self.viewer.layers
            if ly.metadata.get("mollifier_map") or ly.metadata.get("mollifier_preview")
        }

    def _layer(self, name: str):
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def _on_image_changed(self, name: str) -> None:
        self._image_name = name
        layer = self._layer(name)
        if layer is None:
            return
        px = pixel_size_from_meta({"scale": list(layer.scale), "units": [str(u) for u in layer.units]})
        self.pixel_size.setValue(px or 0.0)  # 0 shows "type it in": the layer has no pixel size
        kind = layer.metadata.get("input")
        if kind in ("intensity", "fraction"):
            self.input_kind.setCurrentIndex(self.input_kind.findData(kind))
        mask_name = f"{name} nucleus mask"
        self.mask_combo.setCurrentText(mask_name if mask_name in self.viewer.layers else AUTO_MASK)

    # ---------------------------------------------------------------- preprocessing
    def image_layer(self):
        layer = self._layer(self.image_combo.currentText())
        if layer is None:
            raise InputError(
                "no image layer chosen; open an image (File > Open, or File > Open Sample > "
                "Mollifier rate maps) and pick it"
            )
        return layer

    def _geometry(self, layer) -> dict:
        return {"scale": tuple(layer.scale), "translate": tuple(layer.translate), "units": tuple(layer.units)}

    def _mask_data(self, image):
        """The chosen labels layer's current data; with automatic segmentation, a new labels layer
        holding the segmentation (so it can be inspected and edited)."""
        name = self.mask_combo.currentText()
        if name and name != AUTO_MASK:
            layer = self._layer(name)
            if layer is None:
                raise InputError(f"the mask layer {name!r} is gone; pick another or segment automatically")
            return np.asarray(layer.data)
        from ..io import segment_nucleus

        mask = segment_nucleus(np.asarray(image.data, dtype=float), name=image.name).astype(np.uint8)
        label_name = f"{image.name} nucleus mask"
        existing = self._layer(label_name)
        if (
            existing is not None
            and isinstance(existing, napari.layers.Labels)
            and existing.data.shape == mask.shape
        ):
            existing.data = mask
        else:
            self.viewer.add_labels(mask, name=label_name, opacity=0.3, **self._geometry(image))
        self._refresh_layers()
        self.mask_combo.setCurrentText(label_name)
        return mask

    def _crop_rect(self, image):
        name = self.crop_combo.currentText()
        if not name or name == NO_CROP:
            return None
        shapes = self._layer(name)
        if shapes is None or not len(shapes.data):
            raise InputError(f"the crop layer {name!r} holds no rectangle; draw one or choose {NO_CROP}")
        verts = np.asarray(shapes.data[-1], dtype=float)[:, -2:]
        world = np.array([shapes.data_to_world(v) for v in verts])
        px = np.array([image.world_to_data(w) for w in world])[:, -2:]
        return (px[:, 0].min(), px[:, 0].max(), px[:, 1].min(), px[:, 1].max())

    def _prepare(self, settings=None):
        image = self.image_layer()
        if not self.pixel_size.value() > 0:
            raise InputError(
                f"{image.name}: the layer has no pixel size; type it in (nm) or open the file with "
                "the Mollifier reader (File > Open), which reads it from the metadata"
            )
        settings = settings if settings is not None else self.form.settings()
        inp = prepare_fit(
            image.data,
            pixel_size_nm=self.pixel_size.value(),
            input_kind=self.input_kind.currentData(),
            settings=settings,
            mask=self._mask_data(image),
            crop=self._crop_rect(image),
            name=image.name,
        )
        return image, inp

    def preview(self) -> None:
        """Show the mask (labels layer) and the normalised φ the fit would use."""
        try:
            image, inp = self._prepare()
        except Exception as exc:  # noqa: BLE001 - shown to the user, one line
            self.state.message = _one_line(exc)
            return
        name = f"{image.name} phi (input)"
        meta = {
            "mollifier_preview": True,
            "preprocessing": inp.preprocessing,
            "input": inp.input_kind,
            "pixel_size_nm": inp.pixel_size_nm,
        }
        shown = np.where(inp.mask, inp.phi, np.nan).astype(np.float32)
        layer = self._layer(name)
        if layer is not None and isinstance(layer, napari.layers.Image) and layer.data.shape == shown.shape:
            layer.data = shown
            layer.metadata = meta
        else:
            self.viewer.add_image(
                shown,
                name=name,
                colormap="gray",
                contrast_limits=(0.0, 1.0),
                metadata=meta,
                **self._geometry(image),
            )
        self.state.message = (
            f"Preview: {int(inp.mask.sum())} pixels analysed, normalisation "
            f"{_short(inp.preprocessing.get('normalisation'))}. Edit the mask layer to change it."
        )

    # ---------------------------------------------------------------- device
    def _update_device_label(self, *_) -> None:
        from ..inverse._solver import resolve_device

        if self.state.device and self.state.status in ("running", "stopping"):
            self.device_label.setText(f"Using: <b>{self.state.device}</b>")
            return
        choice = self.form.widgets["device"].currentData()
        try:
            dev = resolve_device(choice)
        except ValueError as exc:
            self.device_label.setText(f"<span style='color:#d33'>{_one_line(exc)}</span>")
            return
        self.device_label.setText(f"Device: <b>{_describe_device(dev)}</b>")

    # ---------------------------------------------------------------- fitting
    @property
    def running(self) -> bool:
        return self.worker is not None

    def _on_start_stop(self) -> None:
        if self.running:
            self.stop()
        else:
            self.start()

    def start(self):
        """Start a fit in a thread worker; returns the worker (None if the input is not usable)."""
        if self.running:
            return self.worker
        from ..inverse._solver import resolve_device

        try:
            settings = self.form.settings()
            device = _describe_device(resolve_device(settings.device))
            image, inp = self._prepare(settings)
        except Exception as exc:  # noqa: BLE001 - input problems are shown, not raised
            self.state.status = "failed"
            self.state.message = _one_line(exc)
            return None
        self._input = inp
        self._geom = self._geometry(image)
        self._meta = {
            "mollifier_map": True,
            "source": image.name,
            "input": inp.input_kind,
            "pixel_size_nm": inp.pixel_size_nm,
            "settings": inp.settings.model_dump(),
            "preprocessing": inp.preprocessing,
            "units": RATE_UNITS,
        }
        self._source_name = image.name
        self.fit = None
        self.loss_plot.clear()
        self.progress.setRange(0, max(inp.settings.steps if inp.settings.method == "pinn" else 0, 1))
        self.progress.setFormat("%v / %m steps")
        self.progress.setValue(0)
        self.state.device = device
        self.state.total_steps = inp.settings.steps if inp.settings.method == "pinn" else 0
        self.state.step = 0
        self.state.status = "running"
        self.state.message = f"Fitting {image.name} ({inp.settings.method}, {inp.settings.arch}) on {device}…"
        self.result_layers = {}
        self._rewatch()  # make sure the window whose closing must stop this worker is watched
        self.worker = start_cancellable(
            fit_updates,
            inp,
            connect={
                "yielded": self._on_update,
                "returned": self._on_returned,
                "errored": self._on_error,
                "finished": self._on_finished,
            },
        )
        # The four layers appear now (empty until the first maps) and are only updated in place
        # afterwards: creating a layer costs napari ~0.1-0.4 s of GUI time, an in-place update ~10 ms.
        for key in MAP_KEYS:
            self._map_layer(key)
        # Paint now (our widget's repaint flushes the window's pending updates, the canvas with
        # its new layers included), so that the first drawing of the new layers happens during
        # the click rather than as a freeze in the middle of the fit.
        self.repaint()
        return self.worker

    def stop(self) -> None:
        """Ask the fit to stop after its current step; the latest maps are kept."""
        if self.worker is not None:
            self.state.status = "stopping"
            self.state.message = "Stopping after the current step…"
            self.worker.cancel_event.set()

    def _on_update(self, u: MapUpdate) -> None:
        if self._closed:
            return
        # The progress bar repaints synchronously: before the layer updates, so that the canvas
        # redraw they schedule is not pulled into this call. Its text carries the loss (a label
        # with changing wrapped text would re-layout the dock at every update).
        self.progress.setFormat(f"%v / %m steps, loss {u.losses.get('total', math.nan):.3g}")
        self.progress.setValue(u.step)
        self._show(u.maps, u.limits)
        self.state.step = u.step
        self.loss_plot.set_history(u.history)

    def _on_returned(self, fit) -> None:
        if self._closed:
            return
        self.fit = fit
        maps = maps_of_fit(fit)
        self._show(
            maps,
            {k: contrast_limits(v) for k, v in maps.items()},
            {
                "step": fit.steps_done,
                "total_steps": self.state.total_steps,
                "losses": fit.losses,
                "runtime_s": fit.runtime_s,
                "device": fit.device,
                "cancelled": fit.cancelled,
                "history": fit.history,
            },
        )
        if fit.history:
            self.loss_plot.set_history(fit.history)
        self.progress.setFormat("%v / %m steps")
        self.progress.setValue(fit.steps_done if fit.cancelled else self.progress.maximum())
        self.state.step = fit.steps_done
        s = _means(fit)
        verb = f"Stopped at step {fit.steps_done}" if fit.cancelled else f"Done ({fit.steps_done} steps)"
        self.state.status = "stopped" if fit.cancelled else "finished"
        self.state.message = (
            f"{verb} in {fit.runtime_s:.1f} s on {fit.device}: mean Γ_me {s[0]:.3g} /τ, "
            f"Γ_ac {s[1]:.3g} /τ, λ {s[2]:.3g}. Click a pixel for local rates."
        )
        if "caution" in self._input.preprocessing:  # intensity input: the absolute scale is unreliable
            self.state.message += " Intensity input: read the maps as relative patterns (see the README)."

    def _on_error(self, exc) -> None:
        if self._closed:
            return
        self.state.status = "failed"
        self.state.message = f"Failed: {_one_line(exc)}"

    def _on_finished(self) -> None:
        self.worker = None
        if self._closed:
            return
        if self.state.status in ("running", "stopping"):  # aborted without a result
            self.state.status = "stopped"
        self._on_status()

    def _map_layer(self, key: str):
        """The layer of one map: this fit's, else an image layer of that name and shape (reused),
        else a new one (NaN until the first maps arrive)."""
        name = f"{self._source_name} {key}"
        shape = self._input.phi.shape
        layer = self.result_layers.get(key)
        if layer is None or layer not in self.viewer.layers or layer.name != name:
            layer = self._layer(name)
            if layer is not None and not (
                isinstance(layer, napari.layers.Image) and layer.data.shape == shape
            ):
                self.viewer.layers.remove(layer)
                layer = None
            if layer is None:
                # Only Gamma_me is shown at first: the maps overlap, and hidden layers cost nothing to
                # update (napari refreshes them when they are shown).
                layer = self.viewer.add_image(
                    np.full(shape, np.nan, np.float32),
                    name=name,
                    contrast_limits=(0, 1),
                    metadata=dict(self._meta, map=key),
                    visible=key == "gamma_me",
                    **MAP_STYLE[key],
                    **self._geom,
                )
            elif tuple(layer.scale) != tuple(self._geom["scale"]) or tuple(layer.translate) != tuple(
                self._geom["translate"]
            ):
                layer.scale, layer.translate = self._geom["scale"], self._geom["translate"]
            self.result_layers[key] = layer
        return layer

    def _show(self, maps: dict, limits: dict, extra: dict | None = None) -> None:
        """Put the four maps (all of one step) into their layers, in place. ``extra`` (the final
        maps) also goes into the layers' metadata; live updates leave the metadata alone."""
        meta = None if extra is None else dict(self._meta, **extra)
        for key in MAP_KEYS:
            _update_in_place(
                self._map_layer(key),
                maps[key],
                limits[key],
                None if meta is None else dict(meta, map=key),
                force_limits=extra is not None,
            )

    def _on_status(self, *_) -> None:
        busy = self.state.status in ("running", "stopping")
        self.start_btn.setText("Stop" if busy else "Start")
        self.start_btn.setEnabled(self.state.status != "stopping" or self.worker is None)
        for w in (
            self.form,
            self.preview_btn,
            self.image_combo,
            self.pixel_size,
            self.input_kind,
            self.mask_combo,
            self.crop_combo,
        ):
            w.setEnabled(not busy)
        self._update_device_label()

    # ---------------------------------------------------------------- point report
    def _on_click(self, viewer, event) -> None:
        if event.type == "mouse_press" and not self._closed and self.result_layers:
            self.report_at(event.position)

    def report_at(self, world_position) -> str:
        """Report the local rates at a world position (what a click does); returns the text."""
        layer = self.result_layers.get("gamma_me")
        if layer is None or layer not in self.viewer.layers:
            return ""
        pos = np.asarray(layer.world_to_data(world_position))[-2:]
        row, col = (int(round(float(v))) for v in pos)
        shape = layer.data.shape
        if not (0 <= row < shape[0] and 0 <= col < shape[1]):
            text = f"pixel (row {row}, col {col}) is outside the image"
        else:
            values = {
                k: float(ly.data[row, col])
                for k, ly in self.result_layers.items()
                if ly in self.viewer.layers
            }
            text = describe_point(row, col, values, layer.metadata.get("pixel_size_nm"))
        self.point_label.setText(text)
        self.viewer.status = text
        return text

    # ---------------------------------------------------------------- closing
    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop the fit (cancel + quit), wait for the worker thread, disconnect from the viewer."""
        if self._closed:
            return
        self._closed = True
        worker = self.worker
        if worker is not None:
            worker.join(timeout)
        try:
            self.viewer.layers.events.inserted.disconnect(self._refresh_layers)
            self.viewer.layers.events.removed.disconnect(self._refresh_layers)
        except Exception:  # noqa: BLE001 - the viewer may already be torn down
            pass
        if self._on_click in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.remove(self._on_click)
        self._unwatch()


def _update_in_place(
    layer, data: np.ndarray, limits, metadata: dict | None, *, force_limits: bool = False
) -> None:
    """New values for a map layer of the same shape: copied into the layer's own array and one
    refresh, instead of ``layer.data = ...`` (which re-derives dims and extents: ~3x the main-thread
    time per update, measured). The display range follows only when it moved by more than 5 %
    (each change also redraws the thumbnail and the layer controls)."""
    own = layer.data
    if (
        isinstance(own, np.ndarray)
        and own.shape == data.shape
        and own.dtype == np.float32
        and own.flags.writeable
    ):
        own[...] = data
        layer.refresh(thumbnail=False, highlight=False, extent=False)  # a no-op while the layer is hidden
    else:
        layer.data = np.array(data, dtype=np.float32)
    if metadata is not None:
        layer.metadata = metadata
    lo, hi = layer.contrast_limits
    tol = 0.05 * max(abs(limits[1] - limits[0]), 1e-30)
    if force_limits or abs(lo - limits[0]) > tol or abs(hi - limits[1]) > tol:
        layer.contrast_limits = limits  # widens the range if needed; updates the thumbnail


def _short(norm) -> str:
    if isinstance(norm, dict):
        return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in norm.items())
    return str(norm)


def _means(fit) -> tuple[float, float, float]:
    m = fit.analysed
    if not m.any():
        return (math.nan,) * 3
    return float(np.mean(fit.gamma_me[m])), float(np.mean(fit.gamma_ac[m])), float(np.mean(fit.lam[m]))


def _describe_device(dev) -> str:
    if dev.type == "cuda":
        import torch

        return f"CUDA GPU ({torch.cuda.get_device_name(dev)})"
    return {"mps": "Apple GPU (MPS)", "cpu": "CPU"}.get(dev.type, str(dev))
