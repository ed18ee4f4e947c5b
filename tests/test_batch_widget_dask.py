"""The batch widget's "Workers" box: the same run_batch on a local dask cluster (Qt, no canvas:
runs offscreen without a viewer)."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("napari", reason="napari is not installed (dev extra)")
pytest.importorskip("pytestqt")

from _batch_data import write_corrupt, write_nuclei

pytestmark = [
    pytest.mark.gui,
    pytest.mark.usefixtures("one_thread"),
]  # one intra-op thread: tests/conftest.py

# No canvas here, the widget alone: without a display Qt can run offscreen. Set before pytest-qt
# creates the QApplication (a session fixture, created before any fixture of this module).
if sys.platform.startswith("linux") and not (
    os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
):
    os.environ["QT_QPA_PLATFORM"] = "offscreen"


def test_batch_widget_runs_on_two_dask_workers_and_resumes(qtbot, tmp_path):
    from napari_mollifier._napari._batch_widget import BatchWidget

    src, out = tmp_path / "in", tmp_path / "out"
    write_nuclei(src, 3)
    bad = write_corrupt(src)["rgb"]
    (src / "bad_nan_phi.tif").unlink()
    (src / "bad_truncated_phi.tif").unlink()
    w = BatchWidget(SimpleNamespace())  # the viewer is only needed to open results as layers
    qtbot.addWidget(w)
    w.folder.setText(str(src))
    w.pattern.setText("*_phi.tif")
    w.out.setText(str(out))
    w.input_kind.setCurrentIndex(w.input_kind.findData("fraction"))
    w.mask_mode.setCurrentIndex(w.mask_mode.findData("sibling"))
    w.form.set_values(device="cpu", steps=30, report_every=10)
    w.workers.setValue(2)

    def run():
        worker = w.start()
        assert worker is not None and not w.workers.isEnabled()
        with qtbot.waitSignal(worker.finished, timeout=120_000):
            pass
        return {w.table.item(r, 0).text(): w.table.item(r, 1).text() for r in range(w.table.rowCount())}

    table = run()
    assert table == {"n00_phi.tif": "ok", "n01_phi.tif": "ok", "n02_phi.tif": "ok", bad.name: "failed"}
    assert w.progress.value() == 4 and "3 of 4 files done, 1 failed" in w.status_label.text()
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [Path(r["file"]).name for r in rows] == sorted(table)  # summary in input order
    table = run()
    assert table == {
        "n00_phi.tif": "skipped",
        "n01_phi.tif": "skipped",
        "n02_phi.tif": "skipped",
        bad.name: "failed",
    }
    assert "(3 skipped: done before)" in w.status_label.text() and w.workers.isEnabled()
