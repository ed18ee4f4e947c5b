"""The "Batch rate maps" widget in a viewer: the reason of a bad file, the table's columns, the steps
of the running file, the verdict and caution of intensity results, the nuclei opened side by side,
and the summary of a stopped batch. Tiny nuclei (64 x 64), tens of steps; run under a display."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import tifffile

pytest.importorskip("napari", reason="napari is not installed (dev extra)")

from _plugin_data import write_nucleus  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("display", "one_thread")]


def write_nuclei(folder: Path, n: int) -> None:
    """``n00_phi.tif`` + ``n00_mask.tif``, ... : small simulated nuclei (64 x 64, 10 nm pixels)."""
    for k in range(n):
        write_nucleus(folder, f"n{k:02d}", size=64, seed=1 + k % 2)


def _batch_widget(viewer, qtbot, src, out, *, input="fraction", steps=20):
    from napari_mollifier._napari._batch_widget import BatchWidget

    w = BatchWidget(viewer)
    qtbot.addWidget(w)
    w.folder.setText(str(src))
    w.pattern.setText("*_phi.tif")
    w.out.setText(str(out))
    w.input_kind.setCurrentIndex(w.input_kind.findData(input))
    w.mask_mode.setCurrentIndex(w.mask_mode.findData("sibling"))
    w.form.set_values(device="cpu", steps=steps, report_every=10)
    return w


def _table(w):
    cols = [w.table.horizontalHeaderItem(c).text() for c in range(w.table.columnCount())]
    return [
        {c: (w.table.item(r, k).text(), w.table.item(r, k).toolTip()) for k, c in enumerate(cols)}
        for r in range(w.table.rowCount())
    ]


def test_batch_with_a_corrupt_file_shows_its_read_error_steps_and_tiles_the_results(
    make_napari_viewer_proxy, qtbot, tmp_path
):
    viewer = make_napari_viewer_proxy()
    src, out = tmp_path / "in", tmp_path / "out"
    write_nuclei(src, 2)
    bad = src / "bad_phi.tif"  # damaged, and no mask beside it
    bad.write_bytes(b"II*\x00 truncated")
    tifffile.imwrite(src / "nopx_phi.tif", tifffile.imread(src / "n00_phi.tif"))  # no pixel size
    (src / "nopx_mask.tif").write_bytes((src / "n00_mask.tif").read_bytes())
    w = _batch_widget(viewer, qtbot, src, out)
    steps_seen = []
    w.file_progress.valueChanged.connect(steps_seen.append)
    worker = w.start()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    rows = _table(w)
    assert [(r["file"][0], r["status"][0]) for r in rows] == [
        ("bad_phi.tif", "failed"),
        ("n00_phi.tif", "ok"),
        ("n01_phi.tif", "ok"),
        ("nopx_phi.tif", "failed"),
    ]
    # The read error, not "no mask file"; the reason first, the full path in the tooltips.
    reason, tip = rows[0]["reason"]
    assert reason.startswith("not a readable TIFF") and "no mask" not in reason, reason
    assert str(src) not in reason and str(bad) in tip and rows[0]["file"][1] == str(bad)
    summary = {Path(r["file"]).name: r for r in csv.DictReader(open(out / "summary.csv"))}
    assert "not a readable TIFF" in summary["bad_phi.tif"]["reason"]
    # The steps of each running file reached the widget (reports every 10 of 20 steps).
    assert steps_seen.count(20) == 2 and 10 in steps_seen, steps_seen
    assert w.file_progress.maximum() == 20
    assert "2 of 4 files done, 2 failed" in w.status_label.text()
    # The advice names the widget's controls, not command-line options.
    assert rows[3]["reason"][0].startswith("no pixel size") and "Pixel size box" in rows[3]["reason"][0]
    assert not [r for r in rows for text, tip in r.values() if "--" in text + tip]

    added = w.open_results()
    assert len(added) == 8 and all(ly.metadata["verdict"] == rows[1]["verdict"][0] for ly in added[:4])
    a, b = viewer.layers["n00_phi gamma_me"], viewer.layers["n01_phi gamma_me"]
    assert tuple(viewer.layers["n00_phi lambda"].translate) == tuple(a.translate)  # a nucleus's maps together
    # The second nucleus lies beside the first, not on it.
    (y0, x0), (y1, x1) = a.translate, b.translate
    assert y1 == y0 and x1 - x0 >= a.data.shape[1] * a.scale[1], (a.translate, b.translate)
    assert b.extent.world[0][1] >= a.extent.world[1][1]  # no overlap in x
    names = viewer.layers["batch file names"]
    assert list(names.text.values) == ["n00_phi", "n01_phi"]
    assert [tuple(p) for p in names.data] == [tuple(a.translate), tuple(b.translate)]


def test_intensity_results_carry_their_verdict_and_a_caution(make_napari_viewer_proxy, qtbot, tmp_path):
    viewer = make_napari_viewer_proxy()
    src, out = tmp_path / "in", tmp_path / "out"
    write_nuclei(src, 1)
    w = _batch_widget(viewer, qtbot, src, out, input="intensity")
    worker = w.start()
    assert worker is not None and "Caution: intensity input" in w.status_label.text()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    (row,) = _table(w)
    # Uncalibrated intensity: undetermined, whatever the fit's status, with the reason in the tooltip.
    assert row["verdict"][0] == "undetermined" and "uncalibrated intensity" in row["verdict"][1]
    status = w.status_label.text()
    assert "Caution: intensity input" in status and "without calibration levels" in status
    (rec,) = csv.DictReader(open(out / "summary.csv"))
    assert rec["verdict"] == "undetermined"


def test_a_stopped_batch_lists_the_cancelled_and_unstarted_files(make_napari_viewer_proxy, qtbot, tmp_path):
    viewer = make_napari_viewer_proxy()
    src, out = tmp_path / "in", tmp_path / "out"
    write_nuclei(src, 3)
    w = _batch_widget(viewer, qtbot, src, out, steps=400)
    w.file_progress.valueChanged.connect(lambda v: v > 0 and w.stop())  # Stop at the first step report
    worker = w.start()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    rows = _table(w)
    assert [(r["file"][0], r["status"][0]) for r in rows] == [
        ("n00_phi.tif", "cancelled"),
        ("n01_phi.tif", "not run"),
        ("n02_phi.tif", "not run"),
    ]
    assert rows[1]["reason"][0] == "the batch was stopped before this file started"
    assert "0 of 3 files done, 0 failed, stopped: 1 cancelled, 2 not run" in w.status_label.text()
    summary = [(Path(r["file"]).name, r["status"]) for r in csv.DictReader(open(out / "summary.csv"))]
    assert summary == [("n00_phi.tif", "cancelled"), ("n01_phi.tif", "not run"), ("n02_phi.tif", "not run")]
    assert not w.open_btn.isEnabled()


def test_batch_widget_fits_the_nuclei_of_a_file_with_a_label_image_beside_it(
    make_napari_viewer_proxy, qtbot, tmp_path
):
    """A label image beside a file (``cells_labels.tif``): its nuclei are fitted one by one and the
    batch writes one row per nucleus (nuclei.csv), as ``mollifier batch`` does."""
    from _plugin_data import PIXEL_NM
    from test_nuclei import two_nuclei

    from napari_mollifier.io import write_tiff

    viewer = make_napari_viewer_proxy()
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    img, labels = two_nuclei()
    labels[labels == 5] = 0
    write_tiff(src / "cells_phi.tif", img, PIXEL_NM)
    write_tiff(src / "cells_labels.tif", labels, PIXEL_NM)
    w = _batch_widget(viewer, qtbot, src, out)
    w.mask_mode.setCurrentIndex(0)  # segmented: the labels bring the masks
    worker = w.start()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    assert [r["file"][0] for r in _table(w)] == ["cells_phi.tif"]  # the label image is no input
    nuclei = list(csv.DictReader((out / "nuclei.csv").open()))
    assert [n["label"] for n in nuclei] == ["3", "7"]


def test_batch_widget_fits_the_chosen_plane_of_stacks_and_names_its_own_control(
    make_napari_viewer_proxy, qtbot, tmp_path
):
    """Stacks in a GUI batch: the plane chosen under "Stack plane" is fitted (recorded in S.json);
    without a choice the file fails with its axes and the widget's control named, no CLI flag."""
    import json

    import numpy as np

    viewer = make_napari_viewer_proxy()
    src = tmp_path / "in"
    write_nuclei(src, 1)
    phi = tifffile.imread(src / "n00_phi.tif")
    stack = np.stack([np.zeros_like(phi), phi])  # plane 1 is the nucleus
    tifffile.imwrite(
        src / "n00_phi.tif", stack, imagej=True, metadata={"axes": "ZYX", "unit": "um"}, resolution=(100, 100)
    )
    w = _batch_widget(viewer, qtbot, src, tmp_path / "none")
    worker = w.start()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    row = _table(w)[0]
    status, reason = row["status"][0], row["reason"][0]
    assert status == "failed" and "Stack plane" in reason and "--" not in reason, reason

    w = _batch_widget(viewer, qtbot, src, tmp_path / "z1")
    w.stack_index["Z"].setValue(1)
    worker = w.start()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    assert [r["status"][0] for r in _table(w)] == ["ok"], _table(w)
    record = json.loads((tmp_path / "z1" / "n00_phi.json").read_text())
    assert record["preprocessing"]["plane"]["Z"] == 1
