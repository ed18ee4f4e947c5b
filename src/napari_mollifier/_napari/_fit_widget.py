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
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QGroupBox, QVBoxLayout, QWidget

from ..inverse import judge_fit, psf_width_summary
from ..io import one_line_error
from ._fit import (
    WARMED_UP,
    FitState,
    MapUpdate,
    fit_cost,
    fit_updates,
    maps_of_fit,
    sd_maps_of_fit,
    warm_up,
)
from ._fit_input import AUTO_MASK, NO_CROP, InputSection
from ._fit_maps import MapLayers
from ._gui_text import for_the_widget
from ._layers import FIT_MAP_KEYS, RATE_UNITS, SD_MAP_KEYS, contrast_limits
from ._nuclei import NucleiSection
from ._qt_plot import LossPlot
from ._qt_settings import (
    SettingsForm,
    elide_long_names,
    run_controls,
    scroll_body,
    wrapping_label,
)
from ._qt_worker import StopsOnClose, launch, start_cancellable
from ._save import results_section

if TYPE_CHECKING:
    import napari.viewer

__all__ = ["AUTO_MASK", "NO_CROP", "FitWidget"]

#: Milliseconds between adding the hidden map layers after Start (the event loop runs between).
LAYER_GAP_MS = 0


class FitWidget(StopsOnClose, InputSection, NucleiSection, MapLayers, QWidget):
    """Dock widget "Infer rate maps".

    The input section (layer choices, preprocessing) is :class:`~._fit_input.InputSection`, the
    result layers and point read-out :class:`~._fit_maps.MapLayers`, several nuclei
    :class:`~._nuclei.NucleiSection`; this class lays out the panel and runs the fit.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.state = FitState()
        self.worker = None
        self.fit = None  # the last RateFit
        self.nuclei_result = None  # the last fit of several nuclei (NucleiMaps)
        self.result_layers: dict = {}  # FIT_MAP_KEYS -> Image layer of the current / last fit
        self._input = None
        self._image_name = ""
        self._meta: dict = {}
        self._closed = False
        self._notices: list = []  # filled by the worker thread (GPU out of memory -> CPU)
        self._pending_layers: list = []  # map layers still to add after Start (one per event-loop turn)
        self._next_update = None  # the newest live maps not shown yet
        self._build()
        self._connect()
        self._refresh_layers()
        if not WARMED_UP.is_set():
            # Not a daemon: closing the viewer while the thread imports would otherwise let the
            # interpreter finalise under a half-done torch import, which aborted the process
            # ("terminate called without an active exception"); shutdown now waits for it (~2 s).
            threading.Thread(target=warm_up, name="mollifier-warm-up", daemon=False).start()

    # ---------------------------------------------------------------- layout
    def _build(self) -> None:
        lay = scroll_body(self)
        self._build_input(lay)
        for combo in (self.image_combo, self.mask_combo, self.crop_combo):
            elide_long_names(combo)
        self._build_nuclei(lay)
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
        # Only Γ_me is shown when a fit starts (the maps overlap); this says where the others are.
        self.maps_label = wrapping_label("", rbox)
        rlay.addWidget(self.maps_label)
        units = wrapping_label(f"<small>{RATE_UNITS}</small>", rbox)
        rlay.addWidget(units)
        lay.addWidget(rbox)
        lay.addWidget(results_section(self))
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
        self._connect_input()
        self.viewer.mouse_drag_callbacks.append(self._on_click)
        self._connect_nuclei()
        self._watch_app()
        self._update_device_label()

    def _on_message(self, text: str) -> None:
        self.status_label.setText(text)

    # ---------------------------------------------------------------- device
    def _update_device_label(self, *_) -> None:
        from ..inverse import resolve_device

        if self.state.device and self.state.status in ("running", "stopping"):
            self.device_label.setText(f"Using: <b>{self.state.device}</b>")
            return
        choice = self.form.widgets["device"].currentData()
        try:
            dev = resolve_device(choice)
        except ValueError as exc:
            self.device_label.setText(f"<span style='color:#d33'>{_message(exc)}</span>")
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
        if self.nuclei_layer() is not None or self.labels_combo.currentIndex() > 0:
            return self.start_nuclei()  # a labels layer of nuclei: one fit per nucleus
        from ..inverse import resolve_device

        try:
            settings = self.form.settings()
            if settings.method == "pinn" and settings.steps < 1:
                raise ValueError("Steps is 0: set at least 1 training step")
            device = _describe_device(resolve_device(settings.device))
            image, inp = self._prepare(settings)
            # Refused here, before the worker allocates anything, when it would not fit in memory.
            cost = fit_cost(inp)
        except Exception as exc:  # noqa: BLE001 - input problems are shown, not raised
            self.state.status = "failed"
            self.state.message = _message(exc)
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
        self.nuclei_result = None
        self.loss_plot.clear()
        self.progress.setRange(0, max(inp.settings.training_steps, 1))
        self.progress.setFormat("%v / %m steps")
        self.progress.setValue(0)
        self.state.device = device
        self.state.total_steps = inp.settings.training_steps
        self.state.step = 0
        self.state.status = "running"
        self.state.message = (
            f"Fitting {image.name} ({inp.settings.method}, {inp.settings.arch}) on {device}… "
            f"Estimate: {cost.describe()}."
        )
        self.result_layers = {}
        self._notices = []
        self._rewatch()  # make sure the window whose closing must stop this worker is watched
        self.worker = start_cancellable(
            fit_updates,
            inp,
            notices=self._notices,
            connect={
                "yielded": self._on_update,
                "returned": self._on_returned,
                "errored": self._on_error,
                "finished": self._on_finished,
            },
            # in napari's activity dock and in the dialog that asks before closing the window
            task_name=f"Mollifier fit of {image.name!r} ({inp.settings.training_steps} steps on {device})",
            start=False,
        )
        # Γ_me's layer appears now (empty until the first maps), the hidden ones one per turn of
        # the event loop after the click: each costs napari 0.1-0.6 s of GUI time (its vispy node
        # and its controls panel), and all seven at once froze the click for seconds. The fit
        # starts once they are in: made while it ran, they took twice as long (the worker holds
        # the GIL between torch calls) and froze the view mid-fit. All are only updated in place
        # afterwards (an update costs ~10 ms).
        self._map_layer("gamma_me")
        if inp.settings.uncertainty == "none":
            for key in SD_MAP_KEYS:
                self.result_layers.pop(key, None)
        self._pending_layers = [
            *FIT_MAP_KEYS[1:],
            *(SD_MAP_KEYS if inp.settings.uncertainty != "none" else ()),
        ]
        self.maps_label.setText(_hidden_maps_hint(image.name, ["gamma_me", *self._pending_layers]))
        # Paint now (our widget's repaint flushes the window's pending updates, the canvas with
        # its new layer included), so that the first drawing happens during the click rather than
        # as a freeze in the middle of the fit.
        self.repaint()
        QTimer.singleShot(LAYER_GAP_MS, self._add_pending_layer)
        return self.worker

    def _add_pending_layer(self) -> None:
        """Add the next hidden map layer of the fit (NaN until its maps arrive; an sd map's only
        once the fit has finished), then schedule the one after it; after the last, start the
        fit's worker."""
        if self._closed:
            return
        try:
            if self._pending_layers and self.fit is None:
                key = self._pending_layers.pop(0)
                layer = self._map_layer(key)
                if key in SD_MAP_KEYS:  # a layer of an earlier fit, reused: not this fit's sds
                    layer.data = np.full(layer.data.shape, np.nan, np.float32)
        finally:
            if self._pending_layers:
                QTimer.singleShot(LAYER_GAP_MS, self._add_pending_layer)
            elif self.worker is not None:
                launch(self.worker)

    def stop(self) -> None:
        """Ask the fit to stop after its current step; the latest maps are kept."""
        if self.worker is not None:
            self.state.status = "stopping"
            self.state.message = "Stopping after the current step…"
            self.worker.cancel_event.set()

    def _on_update(self, u: MapUpdate) -> None:
        """The worker's maps of one step: kept, and shown at the next turn of the event loop. When
        updates queue up (a busy GUI, a loaded machine), only the newest is shown."""
        if self._closed:
            return
        first = self._next_update is None
        self._next_update = u
        if first:
            QTimer.singleShot(0, self._apply_update)

    def _apply_update(self) -> None:
        u, self._next_update = self._next_update, None
        if u is None or self._closed or self.fit is not None:  # the final maps are in already
            return
        # The progress bar repaints synchronously: before the layer updates, so that the canvas
        # redraw they schedule is not pulled into this call. Its text carries the loss (a label
        # with changing wrapped text would re-layout the dock at every update).
        self.progress.setFormat(f"%v / %m steps, loss {u.losses.get('total', math.nan):.3g}")
        if u.total_steps > self.progress.maximum():  # several fits (a PSF width search, plateau passes)
            self.progress.setMaximum(u.total_steps)
            self.state.total_steps = u.total_steps
        self.progress.setValue(u.step)
        self._show(u.maps, u.limits, ranges=u.ranges)
        self.state.step = u.step
        self.loss_plot.set_history(u.history)
        if self._notices and self.state.message != self._notices[-1]:  # fell back to the CPU
            self.state.device = "CPU"
            self.state.message = for_the_widget(self._notices[-1])
        # Last: napari's activity bar processes pending events when it moves (a nested update
        # then finds this one done).
        _step_activity(self.worker, u.step, u.total_steps)

    def _on_returned(self, fit) -> None:
        if self._closed:
            return
        self.fit = fit
        self._next_update = None  # a live update still queued is older than these maps
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
                "status": fit.status,
                "status_reason": fit.status_reason,
                "history": fit.history,
            },
        )
        # The sd maps (hidden layers beside the maps) exist only once the fit has finished.
        for key, sd in sd_maps_of_fit(fit).items():
            self._show_final(key, sd)
        if fit.history:
            self.loss_plot.set_history(fit.history)
        self.progress.setFormat("%v / %m steps")
        self.progress.setValue(fit.steps_done if fit.cancelled else self.progress.maximum())
        self.state.step = fit.steps_done
        s = _means(fit)
        if fit.status in ("failed", "diverged"):
            # The maps stay shown for inspection, but the label must not pass them for a result.
            self.state.status = fit.status
            self.state.message = (
                f"{fit.status.capitalize()} after {fit.steps_done} steps ({fit.runtime_s:.1f} s on "
                f"{fit.device}): {fit.status_reason}. The maps are shown for inspection only."
            )
            return
        verb = f"Stopped at step {fit.steps_done}" if fit.cancelled else f"Done ({fit.steps_done} steps)"
        self.state.status = "stopped" if fit.cancelled else "finished"
        verdict = judge_fit(fit, self._input.preprocessing, self._input.input_kind)
        psf_note = psf_width_summary(fit.losses)
        fallback = "".join(f"{for_the_widget(n)}. " for n in self._notices + ([psf_note] if psf_note else []))
        self.state.message = (
            f"{fallback}{verb} in {fit.runtime_s:.1f} s on {fit.device}: mean Γ_me {s[0]:.3g} /τ, "
            f"Γ_ac {s[1]:.3g} /τ, λ {s[2]:.3g}. Rates {verdict.verdict}: {verdict.reason}. "
            "Click a pixel for local rates."
        )

    def _on_error(self, exc) -> None:
        if self._closed:
            return
        self.state.status = "failed"
        self.state.message = f"Failed: {_message(exc)}"

    def _on_finished(self) -> None:
        self.worker = None
        self._pending_layers = []
        if self._closed:
            return
        if self.state.status in ("running", "stopping"):  # aborted without a result
            self.state.status = "stopped"
        self._on_status()

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
        self._disconnect_nuclei()
        if self._on_click in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.remove(self._on_click)
        self._unwatch()


def _message(exc: BaseException) -> str:
    """An error as one line in the widget's words (its controls, not the command line's options)."""
    return for_the_widget(one_line_error(exc))


def _hidden_maps_hint(source: str, keys) -> str:
    """Where the maps not shown are: hidden layers in napari's layer list (Γ_me alone is shown at
    first, as the maps overlap)."""
    hidden = [f"<i>{source} {k}</i>" for k in keys if k != "gamma_me"]
    if not hidden:
        return ""
    return (
        f"<small>Shown: <b>{source} gamma_me</b>. The other maps are hidden layers in the layer "
        f"list ({', '.join(hidden)}): click their eye icon to show one.</small>"
    )


def _step_activity(worker, step: int, total: int) -> None:
    """Move the fit's bar in napari's activity dock to ``step`` of ``total`` training steps."""
    pbar = getattr(worker, "pbar", None)
    if pbar is None:
        return
    if pbar.total != total:
        pbar.total = total
    if step > pbar.n:
        pbar.update(step - pbar.n)


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
