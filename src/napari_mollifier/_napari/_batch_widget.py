"""The "Batch rate maps" dock widget (Qt): every matching file of a folder, one by one, in a worker.

The work is :func:`napari_mollifier.batch.run_batch`, the same function behind the CLI: each
file's docs/interfaces.md outputs, bad files skipped with a one-line reason, summary.csv. "Workers"
0 runs the files one by one in the worker thread; N > 0 runs them on a local dask cluster of N
processes (like ``mollifier batch --workers N``), which the worker thread drives.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..batch import FileResult, find_images, run_batch, sibling_mask
from ._qt_settings import SettingsForm, input_kind_box, pixel_size_box, run_controls, scroll_body
from ._qt_worker import StopsOnClose, start_cancellable

if TYPE_CHECKING:
    import napari

__all__ = ["BatchWidget"]

MASK_CHOICES = (
    ("segment each nucleus automatically", None),
    ("mask file beside each image (S_mask.tif)", "sibling"),
)


class BatchWidget(StopsOnClose, QWidget):
    """Dock widget "Batch rate maps"."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.worker = None
        self.results: list[FileResult] = []
        self._closed = False
        self._build()
        self._watch_app()

    def _build(self) -> None:
        lay = scroll_body(self)
        box = QGroupBox("Files", self)
        form = QFormLayout(box)
        self.folder = QLineEdit(box)
        self.folder.setPlaceholderText("folder with the images")
        form.addRow("Input folder", self._with_browse(self.folder, "Choose the input folder"))
        self.pattern = QLineEdit("*.tif", box)
        self.pattern.setToolTip(
            "glob pattern of the images in the folder, e.g. *_phi.tif (files *_mask.tif are "
            "never taken as images)"
        )
        form.addRow("Pattern", self.pattern)
        self.out = QLineEdit(box)
        self.out.setPlaceholderText("folder for the maps and summary.csv")
        form.addRow("Output folder", self._with_browse(self.out, "Choose the output folder"))
        self.pixel_size = pixel_size_box(
            box,
            "from each file",
            "pixel size in nm; 'from each file' reads it from "
            "the TIFF metadata (files without one are listed as failed)",
        )
        form.addRow("Pixel size", self.pixel_size)
        self.input_kind = input_kind_box(box)
        form.addRow("Input", self.input_kind)
        self.mask_mode = QComboBox(box)
        for label, value in MASK_CHOICES:
            self.mask_mode.addItem(label, value)
        self.mask_mode.setToolTip(
            "where each nucleus mask comes from; beside-each-image looks for S_mask.tif, "
            "then A_mask.tif for A_B.tif (nucleus1_phi.tif -> nucleus1_mask.tif)"
        )
        form.addRow("Nucleus masks", self.mask_mode)
        self.workers = QSpinBox(box)
        self.workers.setRange(0, 64)
        self.workers.setValue(0)
        self.workers.setSpecialValueText("0 (one by one, here)")
        self.workers.setToolTip(
            "0: the files run one by one in this napari process; N: a local dask cluster "
            "of N worker processes, one file each at a time (one torch thread per worker)"
        )
        form.addRow("Workers", self.workers)
        self.skip_done = QCheckBox("skip files already done with the same settings", box)
        self.skip_done.setChecked(True)
        self.skip_done.setToolTip(
            "a file whose maps and S.json exist in the output folder, made from the same "
            "file bytes, mask and settings, is not fitted again (status 'skipped')"
        )
        form.addRow("Resume", self.skip_done)
        lay.addWidget(box)

        sbox = QGroupBox("Settings", self)
        slay = QVBoxLayout(sbox)
        self.form = SettingsForm(sbox)
        slay.addWidget(self.form)
        lay.addWidget(sbox)

        rbox, rlay, self.start_btn, self.progress, self.status_label = run_controls(
            self, "Run", progress_format="%v / %m files", status="Choose the folders, then Start."
        )
        self.table = QTableWidget(0, 3, rbox)
        self.table.setHorizontalHeaderLabels(["file", "status", "reason"])
        self.table.horizontalHeader().setStretchLastSection(True)
        rlay.addWidget(self.table)
        self.open_btn = QPushButton("Open results as layers", rbox)
        self.open_btn.setEnabled(False)
        rlay.addWidget(self.open_btn)
        lay.addWidget(rbox)
        self.start_btn.clicked.connect(self._on_start_stop)
        self.open_btn.clicked.connect(self.open_results)

    def _with_browse(self, edit: QLineEdit, title: str) -> QWidget:
        w = QWidget(self)
        h = QHBoxLayout(w)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(edit, 1)
        b = QPushButton("Browse…", w)

        def browse():
            d = QFileDialog.getExistingDirectory(self, title, edit.text() or str(Path.home()))
            if d:
                edit.setText(d)

        b.clicked.connect(browse)
        h.addWidget(b)
        return w

    # ---------------------------------------------------------------- running
    def _on_start_stop(self) -> None:
        if self.worker is not None:
            self.stop()
        else:
            self.start()

    def start(self):
        """Start the batch in a thread worker; returns it (None when the inputs are not usable)."""
        if self.worker is not None:
            return self.worker
        try:
            settings = self.form.settings()
            if not self.out.text().strip():
                raise ValueError("choose an output folder")
            images = find_images(self.folder.text().strip(), self.pattern.text().strip() or "*.tif")
            if not images:
                raise ValueError(f"no file matches {self.pattern.text()!r} in {self.folder.text()}")
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.status_label.setText(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return None
        self.results = []
        self.table.setRowCount(0)
        self.open_btn.setEnabled(False)
        self.progress.setRange(0, len(images))
        self.progress.setValue(0)
        self._n = len(images)
        mask = sibling_mask if self.mask_mode.currentData() == "sibling" else None
        self._rewatch()  # make sure the window whose closing must stop this worker is watched
        self.worker = start_cancellable(
            run_batch,
            images,
            self.out.text().strip(),
            pixel_size_nm=self.pixel_size.value() or None,
            mask=mask,
            input=self.input_kind.currentData(),
            settings=settings,
            skip_existing=self.skip_done.isChecked(),
            workers=self.workers.value() or None,
            connect={
                "yielded": self._on_item,
                "returned": self._on_returned,
                "errored": self._on_error,
                "finished": self._on_finished,
            },
        )
        self._set_busy(True)
        self.status_label.setText(f"{len(images)} files: starting…")
        return self.worker

    def stop(self) -> None:
        if self.worker is not None:
            self.status_label.setText("Stopping after the current file's current step…")
            self.start_btn.setEnabled(False)
            self.worker.cancel_event.set()

    def _set_busy(self, busy: bool) -> None:
        self.start_btn.setText("Stop" if busy else "Start")
        self.start_btn.setEnabled(True)
        for w in (
            self.form,
            self.folder,
            self.pattern,
            self.out,
            self.pixel_size,
            self.input_kind,
            self.mask_mode,
            self.workers,
            self.skip_done,
        ):
            w.setEnabled(not busy)

    def _on_item(self, item) -> None:
        if self._closed:
            return
        i, n, what = item
        if isinstance(what, FileResult):
            # Counted, not taken from i: dask workers finish files in any order.
            self._add_row(what)
            self.progress.setValue(self.table.rowCount())
            if self.workers.value():
                self.status_label.setText(f"{self.table.rowCount()} / {n} files done")
        else:
            self.status_label.setText(f"File {i + 1} / {n}: {Path(what).name}…")

    def _add_row(self, r: FileResult) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        for col, text in enumerate((Path(r.file).name, r.status, r.reason)):
            cell = QTableWidgetItem(text)
            cell.setToolTip(r.file if col == 0 else (r.reason or r.file))
            self.table.setItem(row, col, cell)

    def _on_returned(self, results) -> None:
        if self._closed:
            return
        self.results = list(results)
        shown = {self.table.item(r, 0).toolTip() for r in range(self.table.rowCount())}
        for r in self.results:  # files not run after a stop
            if r.status == "not run" and r.file not in shown:
                self._add_row(r)
        ok = sum(r.status in ("ok", "skipped") for r in self.results)
        skipped = sum(r.status == "skipped" for r in self.results)
        failed = [r for r in self.results if r.status in ("failed", "diverged")]
        self.status_label.setText(
            f"{ok} of {len(self.results)} files done"
            f"{f' ({skipped} skipped: done before)' if skipped else ''}, {len(failed)} failed; "
            f"summary: {Path(self.out.text().strip()) / 'summary.csv'}"
        )
        self.open_btn.setEnabled(ok > 0)

    def _on_error(self, exc) -> None:
        if not self._closed:
            self.status_label.setText(f"Batch failed: {str(exc).splitlines()[0] if str(exc) else exc!r}")

    def _on_finished(self) -> None:
        self.worker = None
        if not self._closed:
            self._set_busy(False)

    # ---------------------------------------------------------------- results
    def open_results(self) -> list:
        """Add every written map of the last batch as layers (with pixel size and settings); returns them."""
        from ._reader import read_tiff

        added = []
        for r in self.results:
            if r.status not in ("ok", "skipped"):
                continue
            stem = Path(r.file).stem
            for key in ("phi", "gamma_me", "gamma_ac", "lambda"):
                path = r.outputs.get(key)
                if not path:
                    continue
                for data, kw, kind in read_tiff(path):
                    kw["name"] = f"{stem} {key if key != 'phi' else 'phi_hat'}"
                    kw["visible"] = key == "gamma_me"
                    added.append(getattr(self.viewer, f"add_{kind}")(data, **kw))
        return added

    # ---------------------------------------------------------------- closing
    def shutdown(self, timeout: float = 60.0) -> None:
        if self._closed:
            return
        self._closed = True
        if self.worker is not None:
            self.worker.join(timeout)
        self._unwatch()
