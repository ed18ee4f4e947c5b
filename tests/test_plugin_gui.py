"""The napari plugin in a viewer: readers / writer / sample data through napari, the "Infer rate maps"
widget (live updates, stop, finish, point report, closing, responsiveness) and the batch widget.

Run under a display (``xvfb-run``); fits are tiny (80 x 80 pixels, tens of steps).
"""

from __future__ import annotations

import csv
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("napari", reason="napari is not installed (dev extra)")

from _plugin_data import PIXEL_NM, tiny_nucleus, write_nucleus  # noqa: E402

from napari_mollifier.config import COMPARISON_FIELDS, InferenceSettings  # noqa: E402
from napari_mollifier.io import write_tiff  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("display", "one_thread")]
PLUGIN = "napari-mollifier"
MAPS = ("gamma_me", "gamma_ac", "lambda", "phi_hat")


def _add_nucleus(viewer, size=80, seed=1, scale=PIXEL_NM):
    phi, mask, _ = tiny_nucleus(size, seed)
    image = viewer.add_image(
        phi,
        name="cell",
        scale=(scale, scale),
        translate=(3 * scale, 0.0),
        units=("nm", "nm"),
        metadata={"input": "fraction"},
    )
    labels = viewer.add_labels(
        mask, name="cell nucleus mask", scale=(scale, scale), translate=(3 * scale, 0.0), units=("nm", "nm")
    )
    return image, labels


def _widget(viewer, qtbot, **settings):
    from napari_mollifier._napari._fit_widget import FitWidget

    w = FitWidget(viewer)
    qtbot.addWidget(w)
    w.form.set_values(device="cpu", **settings)
    return w


def _wait_done(qtbot, w, timeout=60_000):
    """Wait until the widget's fit has ended (a fast fit may end while start() is still adding
    layers, before a waitSignal could be entered)."""
    qtbot.waitUntil(
        lambda: w.worker is None and w.state.status not in ("running", "stopping"), timeout=timeout
    )


def _maps(viewer, source="cell"):
    return {k: viewer.layers[f"{source} {k}"] for k in MAPS if f"{source} {k}" in viewer.layers}


# ------------------------------------------------------------------ readers, writer, sample data
def test_reader_and_writer_round_trip_in_napari(make_napari_viewer_proxy, tmp_path):
    import napari

    viewer = make_napari_viewer_proxy()
    phi, _, _ = tiny_nucleus()
    path = write_tiff(tmp_path / "cell_gamma_me.tif", phi * 0.01, 12.5, metadata={"note": "x"})
    (layer,) = viewer.open(str(path), plugin=PLUGIN)
    assert tuple(layer.scale) == (12.5, 12.5) and [str(u) for u in layer.units] == ["nanometer"] * 2
    np.testing.assert_allclose(layer.data, phi * 0.01, rtol=1e-6)
    assert layer.colormap.name == "magma" and layer.metadata["note"] == "x"
    settings = InferenceSettings(steps=17).model_dump()
    layer.metadata = dict(layer.metadata, settings=settings)
    layer.data = np.where(phi > 0.5, np.nan, layer.data).astype(np.float64)
    out = tmp_path / "saved.tif"
    written = napari.save_layers(str(out), [layer], plugin=PLUGIN)
    assert written == [str(out)]
    (back,) = viewer.open(str(out), plugin=PLUGIN)
    assert back.data.dtype == np.float32 and tuple(back.scale) == (12.5, 12.5)
    np.testing.assert_array_equal(back.data, layer.data.astype(np.float32))
    assert back.metadata["settings"] == settings and back.metadata["note"] == "x"


def test_an_unreadable_tiff_reaches_the_user_in_one_line(make_napari_viewer_proxy, tmp_path):
    viewer = make_napari_viewer_proxy()
    path = tmp_path / "corrupt.tif"
    path.write_bytes(b"II*\x00 this is not a tiff")
    with pytest.raises(Exception) as err:
        viewer.open(str(path), plugin=PLUGIN)
    chain, e = [], err.value
    while e is not None:
        chain.append(e)
        e = e.__cause__ or e.__context__
    ours = [str(x) for x in chain if type(x).__name__ == "InputError"]
    assert ours and "\n" not in ours[0] and "not a readable TIFF" in ours[0], [str(x) for x in chain]
    assert len(viewer.layers) == 0


def test_sample_data_opens_with_truth_layers(make_napari_viewer_proxy):
    import napari.layers

    viewer = make_napari_viewer_proxy()
    viewer.open_sample(PLUGIN, "nucleus1")
    names = [ly.name for ly in viewer.layers]
    assert names == [
        "nucleus1",
        "nucleus1 intensity",
        "nucleus1 gamma_me true",
        "nucleus1 gamma_ac true",
        "nucleus1 nucleus mask",
    ]
    for ly in viewer.layers:
        assert tuple(ly.scale) == (10.0, 10.0), ly.name
    assert isinstance(viewer.layers["nucleus1 nucleus mask"], napari.layers.Labels)
    truth = viewer.layers["nucleus1 gamma_me true"]
    assert truth.colormap.name == "magma" and not truth.visible and np.nanmax(truth.data) > 0


# ------------------------------------------------------------------ the fit widget
def test_widget_defaults_tooltips_and_device(make_napari_viewer_proxy, qtbot):
    from napari_mollifier._napari._fit_widget import FitWidget

    viewer = make_napari_viewer_proxy()
    _add_nucleus(viewer, scale=12.0)
    w = FitWidget(viewer)
    qtbot.addWidget(w)
    defaults = InferenceSettings()
    assert w.form.settings() == defaults
    for name in ("arch", "steps", "kernel_radius_nm", "rate_scale_nm"):
        assert w.form.widgets[name].toolTip() == InferenceSettings.model_fields[name].description
    assert w.form.widgets["device"].toolTip()
    # the kernel radius: blank ("auto") is about one pixel at the image's pixel size
    radius = w.form.widgets["kernel_radius_nm"]
    assert radius.text() == "auto (about 1 pixel)" and w.form.values()["kernel_radius_nm"] is None
    w.form.set_values(kernel_radius_nm=20.0)
    assert w.form.settings().kernel_radius_nm == 20.0
    radius.stepDown()
    radius.stepDown()
    assert w.form.settings().kernel_radius_nm == 18.0
    w.form.set_values(kernel_radius_nm=None)
    assert w.form.settings() == defaults
    # every setting but the comparison switches is in the form
    assert set(w.form.widgets) == set(InferenceSettings.model_fields) - set(COMPARISON_FIELDS)
    assert not w.form.advanced.isVisibleTo(w) and w.form.advanced_toggle.text() == "Advanced settings"
    w.form.advanced_toggle.setChecked(True)
    assert w.form.advanced.isVisibleTo(w)
    assert w.image_combo.currentText() == "cell" and w.pixel_size.value() == pytest.approx(12.0)
    assert w.input_kind.currentData() == "fraction" and w.mask_combo.currentText() == "cell nucleus mask"
    assert "Device: <b>CPU</b>" in w.device_label.text()  # no GPU on the test machine
    plain = viewer.add_image(np.random.default_rng(0).random((64, 64)), name="plain")  # napari default scale
    w.image_combo.setCurrentText("plain")
    assert w.pixel_size.value() == 0 and w.pixel_size.text() == "type the pixel size (nm)"
    w.form.set_values(method="direct")
    assert w.start() is None and "pixel size" in w.status_label.text() and w.state.status == "failed"
    viewer.layers.remove(plain)
    assert w.image_combo.currentText() == "cell" and w.pixel_size.value() == pytest.approx(12.0)
    if not torch.cuda.is_available():
        w.form.set_values(device="cuda")
        assert "no CUDA GPU" in w.device_label.text()
        w.form.set_values(device="auto")
    w.form.set_values(learning_rate=0.02, psf_sigma_nm=None)
    assert w.form.settings().learning_rate == 0.02 and w.form.settings().psf_sigma_nm is None


def test_preview_makes_an_editable_mask_and_the_fit_uses_it(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    phi, mask, _ = tiny_nucleus()
    image = viewer.add_image(
        np.where(mask > 0, 500 + 500 * phi, 20.0), name="raw", scale=(PIXEL_NM, PIXEL_NM)
    )
    w = _widget(viewer, qtbot, method="direct")
    assert w.mask_combo.currentText() == "(segment automatically)"
    w.input_kind.setCurrentIndex(w.input_kind.findData("intensity"))
    w.preview()
    labels = viewer.layers["raw nucleus mask"]
    phi_layer = viewer.layers["raw phi (input)"]
    assert w.mask_combo.currentText() == "raw nucleus mask"
    assert tuple(labels.scale) == tuple(image.scale) == tuple(phi_layer.scale)
    assert labels.data.sum() > 0.8 * (mask > 0).sum()
    shown = phi_layer.data[np.isfinite(phi_layer.data)]
    # the affine map of the two levels (not clipped inside the nucleus): the image is 500 + 500 phi
    norm = phi_layer.metadata["preprocessing"]["normalisation"]
    scale = norm["heterochromatin_level"] - norm["euchromatin_level"]
    assert shown.size == labels.data.sum()
    inside = np.isfinite(phi_layer.data)
    np.testing.assert_allclose(
        phi_layer.data[inside], (500 + 500 * phi[inside] - norm["euchromatin_level"]) / scale, atol=1e-4
    )
    assert "euchromatin_level" in phi_layer.metadata["preprocessing"]["normalisation"]
    # the user erases the right half of the mask: the fit must use the edited layer
    edited = labels.data.copy()
    edited[:, 45:] = 0
    labels.data = edited
    w.start()
    _wait_done(qtbot, w)
    # Half of a blurred intensity image of a not quite steady nucleus does not determine the rates
    # (negative over most of it, trained or not): the widget says "failed" and why, and shows the maps.
    assert w.state.status == "failed" and "negative rates" in w.state.message, w.state.message
    assert (
        "do not determine the rates" in w._meta["preprocessing"]["caution"]
    )  # intensity: the caution travels
    assert w.fit.analysed.any() and not w.fit.analysed[:, 45:].any()


def test_crop_rectangle_restricts_the_analysed_region(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    image, _ = _add_nucleus(viewer)
    # rectangle in world coordinates (nm): rows 10..69 of the image (translate 30 nm), cols 0..40
    viewer.add_shapes(
        [np.array([[130.0, 0.0], [130.0, 400.0], [720.0, 400.0], [720.0, 0.0]])],
        shape_type="rectangle",
        name="box",
        units=("nm", "nm"),
    )
    # A short trained fit: the direct read-out of this cut nucleus (simulated only to t = 3e3, not
    # quite steady) has negative rates over a quarter of it (status "failed").
    w = _widget(viewer, qtbot, steps=30)
    w.crop_combo.setCurrentText("box")
    w.start()
    _wait_done(qtbot, w)
    assert w.state.status == "finished", w.state.message
    rows, cols = np.nonzero(w.fit.analysed)
    assert rows.min() >= 10 and rows.max() <= 69 and cols.max() <= 40
    assert w._input.preprocessing["crop_px"] == pytest.approx([10.0, 69.0, 0.0, 40.0])


def test_widget_fits_the_psf_width_and_says_what_it_found(make_napari_viewer_proxy, qtbot):
    """PSF bounds in the advanced settings: five fits (the progress bar counts them all), the
    chosen width in the result's record and a sentence on it in the status."""
    viewer = make_napari_viewer_proxy()
    _add_nucleus(viewer)
    w = _widget(viewer, qtbot, steps=40, psf_sigma_min_nm=5.0, psf_sigma_max_nm=20.0, uncertainty="none")
    w.start()
    _wait_done(qtbot, w)
    assert w.state.status == "finished", w.state.message
    assert len(w.fit.losses["psf_search"]) == 5 and w.progress.maximum() == 5 * 40
    width = w.fit.losses["psf_sigma_nm"]
    assert 5.0 <= width <= 20.0 and w.fit.settings["psf_sigma_nm"] == width
    assert f"{width:.3g} nm" in w.state.message and "PSF sigma" in w.state.message, w.state.message


def test_widget_shows_the_estimate_and_refuses_a_fit_that_would_not_fit(
    make_napari_viewer_proxy, qtbot, monkeypatch
):
    from napari_mollifier.inverse import _cost

    viewer = make_napari_viewer_proxy()
    _add_nucleus(viewer)
    w = _widget(viewer, qtbot, steps=30)
    monkeypatch.setattr(_cost, "available_memory", lambda device="cpu": 1000)
    assert w.start() is None and w.worker is None  # refused before a worker starts
    assert w.state.status == "failed" and "cell: not fitted" in w.state.message, w.state.message
    assert "crop the image" in w.status_label.text() and "--no-memory-check" not in w.status_label.text()
    assert not _maps(viewer)
    monkeypatch.undo()
    w.start()
    assert "Estimate: ~" in w.state.message and "rate points, cpu)" in w.state.message, w.state.message
    _wait_done(qtbot, w)
    assert w.state.status == "finished", w.state.message


def test_a_failed_fit_says_failed_and_why_not_done(make_napari_viewer_proxy, qtbot):
    # The direct read-out of a noisy nucleus: rates negative almost everywhere (status "failed").
    viewer = make_napari_viewer_proxy()
    phi, mask, _ = tiny_nucleus()
    noisy = phi + 0.03 * np.random.default_rng(3).standard_normal(phi.shape).astype(np.float32)
    viewer.add_image(noisy, name="cell", scale=(PIXEL_NM, PIXEL_NM), units=("nm", "nm"))
    viewer.add_labels(mask, name="cell nucleus mask", scale=(PIXEL_NM, PIXEL_NM), units=("nm", "nm"))
    w = _widget(viewer, qtbot, method="direct")
    w.image_combo.setCurrentText("cell")
    w.input_kind.setCurrentIndex(w.input_kind.findData("fraction"))
    w.mask_combo.setCurrentText("cell nucleus mask")
    w.start()
    _wait_done(qtbot, w)
    assert w.fit.status == "failed" and w.state.status == "failed", w.state.message
    text = w.status_label.text()
    assert text.startswith("Failed") and "negative rates" in text and "inspection only" in text
    assert "Done" not in text
    assert all(ly.metadata["status"] == "failed" for ly in _maps(viewer).values())
    assert w.start_btn.text() == "Start" and w.form.isEnabled()


def test_fit_flow_live_updates_stop_and_finish(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    image, _ = _add_nucleus(viewer)
    w = _widget(viewer, qtbot, steps=5000, report_every=5)
    assert w.start_btn.text() == "Start"
    updates = []
    worker = w.start()
    worker.yielded.connect(lambda u: updates.append((u.step, u.maps["gamma_me"].copy())))
    assert w.start_btn.text() == "Stop" and not w.form.isEnabled()
    assert w.state.status == "running"
    # live: the layers appear and then change in place (same layer objects)
    qtbot.waitUntil(lambda: len(_maps(viewer)) == 4, timeout=60_000)
    first = dict(_maps(viewer))
    qtbot.waitUntil(lambda: len(updates) >= 3 and not w._pending_layers, timeout=60_000)
    # The four maps and the three sd maps (NaN until the fit finishes) beside the image and mask.
    assert all(_maps(viewer)[k] == first[k] for k in MAPS) and len(viewer.layers) == 9
    assert updates[-1][0] > updates[0][0]
    assert not np.allclose(updates[0][1], updates[-1][1], equal_nan=True)
    assert 0 < w.progress.value() < 5000
    # stop mid-way: the button stops, the fit ends with the latest (consistent) maps
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        w.start_btn.click()
    fit = w.fit
    assert fit.cancelled and 0 < fit.steps_done < 5000 and w.state.status == "stopped"
    layers = _maps(viewer)
    np.testing.assert_array_equal(layers["gamma_me"].data, fit.gamma_me)
    np.testing.assert_array_equal(layers["gamma_ac"].data, fit.gamma_ac)
    np.testing.assert_array_equal(layers["lambda"].data, fit.lam)
    np.testing.assert_array_equal(layers["phi_hat"].data, fit.phi_hat)
    inside = fit.analysed
    np.testing.assert_allclose(
        layers["lambda"].data[inside],
        layers["gamma_me"].data[inside] / layers["gamma_ac"].data[inside],
        rtol=1e-5,
    )
    assert all(ly.metadata["step"] == fit.steps_done and ly.metadata["cancelled"] for ly in layers.values())
    assert w.start_btn.text() == "Start" and w.form.isEnabled()
    # a full (short) run into the same layers
    w.form.set_values(steps=40, report_every=10)
    w.start()
    _wait_done(qtbot, w)
    fit = w.fit
    assert not fit.cancelled and fit.steps_done == 40 and w.state.status == "finished"
    layers = _maps(viewer)
    # The finished fit fills its three sd maps' hidden layers (a stopped fit has none).
    assert all(layers[k] == first[k] for k in MAPS) and len(viewer.layers) == 9
    for key, arr in (("gamma_me_sd", fit.gamma_me_sd), ("lambda_sd", fit.lam_sd)):
        ly = viewer.layers[f"cell {key}"]
        np.testing.assert_array_equal(ly.data, arr)
        assert not ly.visible and ly.metadata["map"] == key
    for key, arr in (
        ("gamma_me", fit.gamma_me),
        ("gamma_ac", fit.gamma_ac),
        ("lambda", fit.lam),
        ("phi_hat", fit.phi_hat),
    ):
        ly = layers[key]
        np.testing.assert_array_equal(ly.data, arr)
        assert tuple(ly.scale) == tuple(image.scale) and tuple(ly.translate) == tuple(image.translate)
        assert ly.metadata["settings"] == fit.settings and ly.metadata["settings"]["steps"] == 40
        assert ly.metadata["pixel_size_nm"] == PIXEL_NM and ly.metadata["map"] == key
        assert ly.metadata["source"] == "cell" and ly.metadata["step"] == 40
    assert layers["gamma_me"].colormap.name == "magma" and layers["lambda"].colormap.name == "turbo"
    assert w.progress.value() == w.progress.maximum() == 40
    steps, log_total = w.loss_plot.series("total")
    assert steps == [10, 20, 30, 40] and log_total[-1] == pytest.approx(np.log10(fit.history[-1]["total"]))
    assert "Done (40 steps)" in w.status_label.text()


def test_clicking_a_pixel_reports_the_local_rates(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    _add_nucleus(viewer)
    w = _widget(viewer, qtbot, method="direct")
    w.start()
    _wait_done(qtbot, w)
    me = viewer.layers["cell gamma_me"].data
    row, col = 40, 37
    assert np.isfinite(me[row, col])
    world = (row * PIXEL_NM + 3 * PIXEL_NM, col * PIXEL_NM)  # the layers are translated by 3 pixels
    w._on_click(viewer, SimpleNamespace(type="mouse_press", position=world))
    text = w.point_label.text()
    assert f"row {row}, col {col}" in text
    assert f"Γ_me = {me[row, col]:.3g} /τ" in text
    assert f"Γ_ac = {viewer.layers['cell gamma_ac'].data[row, col]:.3g} /τ" in text
    assert f"λ = {viewer.layers['cell lambda'].data[row, col]:.3g}" in text and "ℓ0 = 10 nm" in text
    assert "outside the analysed region" in w.report_at((3 * PIXEL_NM, 0.0))
    assert "outside the image" in w.report_at((-500.0, -500.0))


def test_closing_the_widget_stops_the_worker(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    _add_nucleus(viewer)
    w = _widget(viewer, qtbot, steps=100_000, report_every=5)
    worker = w.start()
    qtbot.waitUntil(lambda: len(_maps(viewer)) == 4, timeout=60_000)
    t0 = time.perf_counter()
    w.close()
    assert worker.stopped.is_set() and worker.cancel_event.is_set()
    assert time.perf_counter() - t0 < 10
    assert w._on_click not in viewer.mouse_drag_callbacks
    qtbot.waitUntil(lambda: not worker.is_running, timeout=10_000)


@pytest.mark.parametrize("how", ["viewer", "dock"])
def test_closing_the_viewer_or_the_dock_stops_the_worker(make_napari_viewer_proxy, qtbot, how):
    from napari_mollifier._napari._fit_widget import FitWidget

    viewer = make_napari_viewer_proxy()
    _add_nucleus(viewer)
    w = FitWidget(viewer)
    viewer.window.add_dock_widget(w, name="Infer rate maps")
    w.form.set_values(device="cpu", steps=100_000, report_every=5)
    worker = w.start()
    qtbot.waitUntil(lambda: len(_maps(viewer)) == 4, timeout=60_000)
    if how == "viewer":
        viewer.close()  # the widget watches the main window
    else:
        viewer.window.remove_dock_widget(w)  # what the dock's close button does
    # it stopped the fit and waited for the thread while closing
    assert w._closed and worker.stopped.is_set() and worker.cancel_event.is_set()


def test_gui_stays_responsive_while_fitting(make_napari_viewer_proxy, qtbot):
    """A 10 ms heartbeat on the main thread while a fit runs: the longest gap is the longest freeze.
    The Start click creates the shown map layer and the next turns of the event loop the hidden
    ones, one each (napari's cost, once per fit), so the heartbeat covers the fit from the moment
    the map layers are in to the end of training (benchmarks/gui_responsiveness.py times it all).

    The bound is a freeze a user notices (0.5 s), not the 0.2 s the benchmark meets on an idle
    machine: here two test workers share two cores, which alone stalls the main thread ~0.2 s now
    and then. A fit or a map computed on the main thread stops the heartbeat for seconds, and
    frequent short stalls show in the 95th percentile."""
    from qtpy.QtCore import QTimer

    viewer = make_napari_viewer_proxy(show=True)
    _add_nucleus(viewer, size=96)
    w = _widget(viewer, qtbot, steps=400, report_every=2)
    viewer.window.add_dock_widget(w, name="Infer rate maps")
    from napari_mollifier._napari._fit import WARMED_UP

    qtbot.waitUntil(WARMED_UP.is_set, timeout=60_000)  # the widget's import warm-up (as when a user opens it)
    qtbot.wait(200)  # let the window settle before measuring
    beats = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: beats.append(time.perf_counter()))
    updates = []
    t0 = time.perf_counter()
    worker = w.start()
    start_s = time.perf_counter() - t0
    worker.yielded.connect(lambda u: updates.append(u.step))
    qtbot.waitUntil(lambda: not w._pending_layers, timeout=60_000)
    timer.start()
    _wait_done(qtbot, w, timeout=120_000)
    qtbot.wait(50)
    timer.stop()
    gaps = np.diff(beats)
    print(
        f"\nStart click {start_s * 1e3:.0f} ms (creates 1 layer); during the fit: {len(beats)} beats, "
        f"max main-thread stall {gaps.max() * 1e3:.0f} ms, median {np.median(gaps) * 1e3:.1f} ms, "
        f"{len(updates)} layer updates"
    )
    assert w.state.status == "finished" and len(updates) >= 3
    assert gaps.max() < 0.5, f"the GUI froze for {gaps.max() * 1e3:.0f} ms"
    p95 = np.percentile(gaps, 95)
    assert p95 < 0.05, f"the GUI stalled often: 95th percentile gap {p95 * 1e3:.0f} ms"


# ------------------------------------------------------------------ the batch widget
def test_batch_widget_over_a_folder_with_a_corrupt_file(make_napari_viewer_proxy, qtbot, tmp_path):
    from napari_mollifier._napari._batch_widget import BatchWidget

    viewer = make_napari_viewer_proxy()
    src, out = tmp_path / "in", tmp_path / "out"
    write_nucleus(src, "a", seed=1)
    write_nucleus(src, "b", seed=2)
    (src / "bad_phi.tif").write_bytes(b"II*\x00 truncated")
    (src / "bad_mask.tif").write_bytes((src / "a_mask.tif").read_bytes())
    w = BatchWidget(viewer)
    qtbot.addWidget(w)
    w.folder.setText(str(src))
    w.pattern.setText("*_phi.tif")
    w.out.setText(str(out))
    w.input_kind.setCurrentIndex(w.input_kind.findData("fraction"))
    w.mask_mode.setCurrentIndex(w.mask_mode.findData("sibling"))
    w.form.set_values(device="cpu", steps=20, report_every=10)
    worker = w.start()
    assert w.start_btn.text() == "Stop"
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    table = [[w.table.item(r, c).text() for c in range(4)] for r in range(w.table.rowCount())]
    assert [row[:2] for row in table] == [["a_phi.tif", "ok"], ["b_phi.tif", "ok"], ["bad_phi.tif", "failed"]]
    assert table[2][3].startswith("not a readable TIFF")  # the reason column: file, status, verdict, reason
    assert w.progress.value() == 3 and "2 of 3 files done, 1 failed" in w.status_label.text()
    for stem in ("a_phi", "b_phi"):
        assert all(
            (out / f"{stem}_{s}.tif").exists() for s in ("gamma_me", "gamma_ac", "lambda", "phi", "mask")
        )
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [
        (r["file"].endswith(n), r["status"]) for r, n in zip(rows, ("a_phi.tif", "b_phi.tif", "bad_phi.tif"))
    ] == [(True, "ok"), (True, "ok"), (True, "failed")]
    assert w.open_btn.isEnabled()
    added = w.open_results()
    assert [ly.name for ly in added] == [
        f"{s}_phi {k}" for s in "ab" for k in ("phi_hat", "gamma_me", "gamma_ac", "lambda")
    ]
    assert all(tuple(ly.scale) == (PIXEL_NM, PIXEL_NM) for ly in added)
    assert viewer.layers["a_phi gamma_me"].metadata["settings"]["steps"] == 20
    assert w.start_btn.text() == "Start"


# ------------------------------------------------------------------ the manifest's widgets
def test_widgets_open_from_the_plugins_menu(make_napari_viewer_proxy, qtbot):
    from napari_mollifier._samples import sample_images_dir

    viewer = make_napari_viewer_proxy()
    _, fit_w = viewer.window.add_plugin_dock_widget(PLUGIN, "Infer rate maps")
    _, batch_w = viewer.window.add_plugin_dock_widget(PLUGIN, "Batch rate maps")
    _, render_w = viewer.window.add_plugin_dock_widget(PLUGIN, "Render localisations")
    assert type(fit_w).__name__ == "FitWidget" and type(batch_w).__name__ == "BatchWidget"
    render_w.table.value = sample_images_dir() / "nucleus1_localisations.csv"
    render_w.pixel_size_nm.value = 20.0
    render_w()
    layer = viewer.layers["nucleus1_localisations density 20 nm"]
    assert tuple(layer.scale) == (20.0, 20.0) and layer.metadata["n_localisations"] > 1000
    # the combo follows the layers
    assert fit_w.image_combo.currentText() == "nucleus1_localisations density 20 nm"
    assert fit_w.pixel_size.value() == pytest.approx(20.0)
