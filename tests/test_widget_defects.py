"""The "Infer rate maps" widget as a microscopist meets it: the map layers' contrast and colour bar,
the input kind of a layer that does not record it, messages in the widget's words, renders at
several pixel sizes, cheap map updates, readable settings boxes, refused empty settings, and the GPU
handling (device list, out-of-memory fall-back to the CPU, freed memory, napari's activity dock).

Run under a display (``xvfb-run``); fits are tiny (64 x 64 pixels, a few tens of steps).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

pytest.importorskip("napari", reason="napari is not installed (dev extra)")

from _plugin_data import PIXEL_NM, tiny_nucleus  # noqa: E402

from napari_mollifier.config import InferenceSettings  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("display", "one_thread")]
PLUGIN = "napari-mollifier"


def _add_cell(viewer, size=64, name="cell", input_kind="fraction"):
    phi, mask, _ = tiny_nucleus(size, 1)
    geo = {"scale": (PIXEL_NM, PIXEL_NM), "units": ("nm", "nm")}
    image = viewer.add_image(phi, name=name, metadata={"input": input_kind}, **geo)
    viewer.add_labels(mask, name=f"{name} nucleus mask", **geo)
    return image


def _widget(viewer, qtbot, **settings):
    from napari_mollifier._napari._fit_widget import FitWidget

    w = FitWidget(viewer)
    qtbot.addWidget(w)
    w.form.set_values(**{"device": "cpu", "steps": 20, "report_every": 5, "uncertainty": "none", **settings})
    return w


def _wait_done(qtbot, w, timeout=60_000):
    qtbot.waitUntil(
        lambda: w.worker is None and w.state.status not in ("running", "stopping"), timeout=timeout
    )


# ------------------------------------------------------------ a live fit: contrast, colour bar, activity
def test_live_maps_contrast_colour_bar_and_activity_dock(make_napari_viewer, qtbot, monkeypatch):
    from napari_mollifier._napari import _fit_widget
    from napari_mollifier._napari._layers import contrast_limits

    steps = []
    real = _fit_widget._step_activity

    def step_activity(worker, step, total):
        real(worker, step, total)
        steps.append((step, worker.pbar.n, worker.pbar.total))

    monkeypatch.setattr(_fit_widget, "_step_activity", step_activity)
    viewer = make_napari_viewer()  # not the plugin proxy: the test reads napari's task list
    _add_cell(viewer)
    w = _widget(viewer, qtbot, steps=5000)
    live = []
    show = w._show

    def show_and_look(maps, limits, extra=None, ranges=None):
        show(maps, limits, extra, ranges)
        if extra is None:  # a live update: the layer as it left it
            live.append((tuple(viewer.layers["cell gamma_me"].contrast_limits_range), ranges["gamma_me"]))

    w._show = show_and_look
    worker = w.start()
    # the fit's bar in napari's activity dock, under the name napari's close dialog lists
    name = "Mollifier fit of 'cell' (5000 steps on CPU)"
    assert worker.pbar.desc.startswith(name)
    assert any(name in s for s in viewer.window._task_status_manager.get_status())
    qtbot.waitUntil(lambda: len(live) >= 2 and len(steps) >= 2, timeout=60_000)
    w.stop()
    _wait_done(qtbot, w)
    assert w.state.status == "stopped"
    assert all(n == step and t == 5000 for step, n, t in steps) and steps[-1][0] > steps[0][0]
    # while the fit runs the contrast slider spans the map's values, not napari's first (0, 1)
    for (lo, hi), (dlo, dhi) in live:
        assert hi - lo <= 1.01 * (dhi - dlo) + 1e-12 and hi == pytest.approx(dhi)
    layer = viewer.layers["cell gamma_me"]
    data = np.asarray(layer.data)
    finite = data[np.isfinite(data)]
    assert finite.max() < 0.5  # rates of ~1e-3: the old (0, 1) range pinned the slider
    assert tuple(layer.contrast_limits_range) == pytest.approx((finite.min(), finite.max()), rel=1e-5)
    assert tuple(layer.contrast_limits) == pytest.approx(contrast_limits(data), rel=1e-5)
    assert layer.colorbar.visible  # the shown map has napari's colour bar
    assert layer.metadata["units"] == "1/tau"
    assert viewer.layers["cell lambda"].metadata["units"].startswith("1")


# ------------------------------------------------------------------ input kind and the messages' words
def test_input_kind_follows_a_layer_without_a_record_and_says_so(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    _add_cell(viewer)
    w = _widget(viewer, qtbot)
    assert w.input_kind.currentData() == "fraction"
    rng = np.random.default_rng(0)
    geo = {"scale": (PIXEL_NM, PIXEL_NM), "units": ("nm", "nm")}
    phi, mask, _ = tiny_nucleus(64, 1)
    viewer.add_image(200 + 800 * phi, name="raw", **geo)  # no "input" metadata
    viewer.add_labels(mask, name="raw nucleus mask", **geo)
    w.image_combo.setCurrentText("raw")
    assert w.input_kind.currentData() == "intensity"
    assert "Input set to “intensity”" in w.status_label.text()
    viewer.add_image(rng.random((64, 64)), name="phi map", **geo)
    w.image_combo.setCurrentText("phi map")
    assert w.input_kind.currentData() == "fraction" and "within [0, 1]" in w.status_label.text()
    # the user insists on "fraction" for the raw image: the message names the widget's controls
    w.image_combo.setCurrentText("raw")
    w.input_kind.setCurrentIndex(w.input_kind.findData("fraction"))
    assert w.start() is None and w.state.status == "failed"
    text = w.status_label.text()
    assert re.search(r"--[a-z]", text) is None and "Input “fraction (φ)” expects values in [0, 1]" in text
    assert "choose Input “intensity”" in text


def test_messages_name_the_widget_controls_not_the_options():
    from napari_mollifier._napari._gui_text import for_the_widget

    assert for_the_widget("x: no nucleus found; give a mask with --mask") == (
        "x: no nucleus found; pick a labels layer as Nucleus mask"
    )
    assert for_the_widget("x: 527 pixels; coarser pixel size (--pixel-size 20) or give a mask (--mask)") == (
        "x: 527 pixels; coarser pixel size (Pixel size 20 nm) or pick a labels layer as Nucleus mask"
    )
    assert for_the_widget("or --rate-scale-nm 1500 (coarser)") == "or “Rate scale (nm)” 1500 (coarser)"
    from napari_mollifier.io._preprocess import SEGMENTATION_FIX

    assert re.search(r"--[a-z]", for_the_widget(SEGMENTATION_FIX)) is None
    assert "--" not in for_the_widget("device 'cuda' was asked for; use --device auto or cpu")


# ------------------------------------------------------------------ renders at several pixel sizes
def test_render_at_another_pixel_size_adds_a_layer(make_napari_viewer_proxy):
    from napari_mollifier._samples import sample_images_dir

    viewer = make_napari_viewer_proxy()
    _, render_w = viewer.window.add_plugin_dock_widget(PLUGIN, "Render localisations")
    render_w.table.value = sample_images_dir() / "nucleus1_localisations.csv"
    for px in (20.0, 40.0):
        render_w.pixel_size_nm.value = px
        render_w()
    fine, coarse = (
        viewer.layers["nucleus1_localisations density 20 nm"],
        viewer.layers["nucleus1_localisations density 40 nm"],
    )
    assert tuple(fine.scale) == (20.0, 20.0) and tuple(coarse.scale) == (40.0, 40.0)


# ------------------------------------------------------------------ cheap updates
def test_map_updates_are_throttled(monkeypatch):
    from napari_mollifier._napari import _fit
    from napari_mollifier.inverse import ProgressEvent

    phi, mask, _ = tiny_nucleus(64, 1)
    settings = InferenceSettings(device="cpu")
    inp = _fit.prepare_fit(phi, pixel_size_nm=PIXEL_NM, input_kind="fraction", mask=mask, settings=settings)
    box = (slice(0, 64), slice(0, 64))
    maps = {k: np.full((64, 64), 0.002) for k in ("gamma_me", "gamma_ac", "lambda", "phi_hat")}

    class Final:  # stands for the RateFit that ends the fit
        pass

    final = Final()

    def fake_fit_rates(*args, **kwargs):
        for step in range(1, 101):  # 100 progress events in a few ms
            yield ProgressEvent(step, 100, {"total": 1.0}, 0.0, maps=maps, box=box)
        yield final

    monkeypatch.setattr(_fit, "fit_rates", fake_fit_rates)
    monkeypatch.setattr(_fit, "RateFit", Final)
    gen = _fit.fit_updates(inp, min_interval_s=60.0)
    updates = []
    with pytest.raises(StopIteration) as end:
        while True:
            updates.append(next(gen))
    assert [u.step for u in updates] == [1]  # the first, then none for a minute
    assert updates[0].maps["gamma_me"].dtype == np.float32 and end.value.value is final


def test_start_adds_the_maps_one_at_a_time_and_points_to_the_hidden_ones(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    image = _add_cell(viewer)
    viewer.layers.selection.active = image
    w = _widget(viewer, qtbot, uncertainty="laplace")
    assert w.maps_label.text() == ""

    def maps():
        return [ly.name for ly in viewer.layers if ly.metadata.get("mollifier_map")]

    w.start()
    assert maps() == ["cell gamma_me"]  # the click makes the shown map only ...
    hint = w.maps_label.text()
    assert "cell gamma_me" in hint and "layer list" in hint
    qtbot.waitUntil(lambda: not w._pending_layers, timeout=60_000)  # ... the event loop the others
    assert len(maps()) == 7
    for key in ("gamma_ac", "lambda", "phi_hat", "gamma_me_sd"):
        assert f"cell {key}" in hint and not viewer.layers[f"cell {key}"].visible
    # no switch of the layer controls per new layer
    assert viewer.layers.selection.active.name == image.name and len(viewer.layers.selection) == 1
    _wait_done(qtbot, w)
    # closed before its worker started (it waits for the hidden layers): cancelled and ended at once
    w.form.set_values(steps=100_000)
    worker = w.start()
    assert w._pending_layers and not getattr(worker, "_started", False)
    w.shutdown()
    assert worker.cancel_event.is_set() and worker.stopped.is_set()


# ------------------------------------------------------------------ readable boxes, a hint for hidden maps
def test_settings_boxes_show_their_values_and_long_names_fit(make_napari_viewer_proxy, qtbot):
    from qtpy.QtWidgets import QAbstractSpinBox, QComboBox

    viewer = make_napari_viewer_proxy()
    _add_cell(viewer)
    long_name = "2024-05-17 HeLa H2B-mEos3.2 nucleus 12 (drift corrected) nucleus mask"
    viewer.add_labels(tiny_nucleus(64, 1)[1], name=long_name)
    w = _widget(viewer, qtbot)
    for name, box in w.form.widgets.items():
        if isinstance(box, QAbstractSpinBox):
            shown = box.textFromValue(box.maximum()) + box.suffix()
            assert box.minimumWidth() > box.fontMetrics().horizontalAdvance(shown), name
    assert w.form.widgets["rate_scale_nm"].decimals() <= 2  # "500.00", not "500.0000"
    combo = w.mask_combo
    assert combo.sizeAdjustPolicy() == QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
    assert combo.minimumContentsLength() > 0
    combo.setCurrentText(long_name)
    assert long_name in combo.toolTip()


# ------------------------------------------------------------------ refused settings
def test_zero_steps_and_a_zero_pixel_size_are_refused_clearly(make_napari_viewer_proxy, qtbot, monkeypatch):
    viewer = make_napari_viewer_proxy()
    _add_cell(viewer)
    w = _widget(viewer, qtbot)
    steps = w.form.widgets["steps"]
    steps.setValue(0)
    assert steps.minimum() == 1 and steps.value() == 1
    # through the API (or a settings file) 0 steps still reaches the widget: refused, not "Done"
    monkeypatch.setattr(w.form, "settings", lambda: InferenceSettings(steps=0, device="cpu"))
    assert w.start() is None and w.state.status == "failed"
    assert "Steps is 0" in w.status_label.text() and "Done" not in w.status_label.text()
    monkeypatch.undo()
    w.pixel_size.setValue(0.0)  # typed over the layer's 10 nm
    assert w.start() is None
    assert "must be positive" in w.status_label.text() and "no pixel size" not in w.status_label.text()


# ------------------------------------------------------------------ GPU handling
def test_device_choice_lists_every_gpu(monkeypatch, qtbot):
    from napari_mollifier._napari._qt_settings import SettingsForm

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    form = SettingsForm()
    qtbot.addWidget(form)
    box = form.widgets["device"]
    assert [box.itemData(i) for i in range(box.count())][:4] == ["auto", "cpu", "cuda:0", "cuda:1"]
    assert box.itemText(3) == "CUDA GPU 1"
    form.set_values(device="cuda:1")
    assert form.settings().device == "cuda:1"
    form.set_values(device="cuda:5")  # e.g. settings saved on a bigger machine: shown, marked
    assert box.currentText() == "CUDA GPU 5 (not here)" and form.settings().device == "cuda:5"


def test_release_gpu_memory_empties_the_cache_only_after_cuda(monkeypatch):
    from napari_mollifier.inverse._device import release_gpu_memory

    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append(1))
    assert not release_gpu_memory("cpu") and not calls
    assert release_gpu_memory("cuda:1") and release_gpu_memory("auto") and len(calls) == 2


def test_gpu_out_of_memory_falls_back_to_the_cpu(make_napari_viewer_proxy, qtbot, monkeypatch):
    from napari_mollifier._napari import _fit
    from napari_mollifier.inverse import _device

    real = _fit.fit_rates
    devices, released = [], []

    def fit_rates(phi, mask, px, settings, **kw):
        devices.append(settings.device)
        if len(devices) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        yield from real(phi, mask, px, settings, **kw)

    monkeypatch.setattr(_fit, "fit_rates", fit_rates)
    monkeypatch.setattr(_device, "release_gpu_memory", lambda d: released.append(str(d)))
    viewer = make_napari_viewer_proxy()
    _add_cell(viewer)
    w = _widget(viewer, qtbot, device="auto")  # "auto" would be the GPU on a GPU machine
    w.start()
    _wait_done(qtbot, w)
    assert devices == ["auto", "cpu"] and w.state.status == "finished"
    text = w.status_label.text()
    assert "GPU out of memory" in text and "fitted on the CPU instead" in text
    assert released == ["auto", "cpu"]  # after the failed try, and once the fit has ended
    assert w.fit.device == "cpu"
