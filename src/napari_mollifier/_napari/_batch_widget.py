"""The "Batch rate maps" dock widget (Qt): every matching file of a folder, one by one, in a worker.

The work is :func:`napari_mollifier.batch.run_batch`, the same function behind the CLI: each
file's docs/interfaces.md outputs, bad files skipped with a one-line reason, summary.csv. "Workers"
0 runs the files one by one in the worker thread, with the training steps of the running file on a
second progress bar; N > 0 runs them on a local dask cluster of N processes (like
``mollifier batch --workers N``), which the worker thread drives.

The table has one row per file: its name, status, verdict (what the maps are worth,
:func:`napari_mollifier.inverse.judge_rates`) and the reason, with the full path in the tooltips.
"Open results as layers" tiles the nuclei in a grid (each nucleus's maps are moved by ``translate``,
its maps stacked on each other), so that they lie side by side at their true scale.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..batch import FileResult, find_images, run_batch, sibling_labels, sibling_mask
from ._qt_settings import SettingsForm, input_kind_box, pixel_size_box, run_controls, scroll_body
from ._qt_worker import StopsOnClose, start_cancellable

if TYPE_CHECKING:
    import napari

__all__ = ["BatchWidget"]

MASK_CHOICES = (
    ("segment each nucleus automatically", None),
    ("mask file beside each image (S_mask.tif)", "sibling"),
)

#: The table's columns.
COLUMNS = ("file", "status", "verdict", "reason")

#: Shown with the results of intensity input: the verdict says why for each file.
INTENSITY_CAUTION = (
    "Caution: intensity input. The rates are only as good as the map from intensity to the "
    "heterochromatin fraction; without calibration levels they are undetermined (see each file's "
    "verdict)."
)

#: Space between the tiles of "Open results as layers", as a share of the largest nucleus.
TILE_GAP = 0.1


class _StepSignal(QObject):
    """Carries a fit's progress events from the worker thread to the widget (a queued signal:
    ``step(file index, step, total steps)``)."""

    step = Signal(int, int, int)


# The shared checks word their advice for the command line (``give it with --pixel-size NM``); the
# table names this widget's controls instead. Whole phrases first, then any flag left.
_PHRASES = (
    (r" ?\(pixel_size_nm=\.\.\.\)", ""),
    (r"(?:give it )?(?:in nm )?with --pixel-size NM(?: in nm)?", "type it in nm in the Pixel size box"),
    (r"give --pixel-size NM in nm", "type the pixel size in nm in the Pixel size box"),
    (r"--pixel-size (\d+(?:\.\d+)?)", r"Pixel size \1 nm"),
    (r"\(and the --pattern of a batch\)", "(and the Pattern box)"),
    (
        r"give a mask with --mask|give a mask \(--mask\)|give --mask",
        "put a mask file beside the image and choose it under Nucleus masks",
    ),
    (r"check the --mask path", "check the mask file beside the image"),
    (r"--input fraction expects", "Input “fraction (φ)” expects"),
    (r"use --input intensity for raw images", "choose Input “intensity” for raw images"),
    (r"use --device auto or cpu", "choose Device auto or CPU"),
)
_CONTROLS = {
    "input": "Input",
    "mask": "Nucleus masks",
    "pixel-size": "Pixel size",
    "pattern": "Pattern",
    "xy-unit": "Table xy unit",
    "camera-pixel-nm": "Camera pixel",
    "channel": "Stack plane: channel",
    "plane": "Stack plane: plane",
    "time": "Stack plane: time",
}


def for_the_batch_widget(text: str) -> str:
    """``text`` with the command-line options it quotes replaced by this widget's controls (the
    settings fields by their labels in the form)."""
    from ._qt_settings import LABELS

    for pattern, repl in _PHRASES:
        text = re.sub(pattern, repl, text)

    def control(m: re.Match) -> str:
        flag = m.group(1)
        name = _CONTROLS.get(flag) or LABELS.get(flag.replace("-", "_"))
        return f"“{name}”" if name else m.group(0)

    return re.sub(r"(?<![\w-])--([a-z][a-z0-9-]*)", control, text)


def short_reason(r: FileResult) -> str:
    """The reason of a row without the file's folder: the file's own path is dropped from the
    start (the file column names it) and the folder from the paths inside (e.g. its mask's);
    command-line options are named as this widget's controls (:func:`for_the_batch_widget`).
    ``ok`` results without a reason give their verdict's reason when the rates are not determined."""
    reason = for_the_batch_widget(r.reason)
    if not reason and r.status in ("ok", "skipped") and r.verdict and r.verdict != "determined":
        reason = f"rates {r.verdict}: {r.verdict_reason}"
    reason = reason.removeprefix(f"{r.file}: ")
    folder = str(Path(r.file).parent)
    if folder not in ("", "."):
        reason = reason.replace(folder + os.sep, "")
    return reason


def tile_offsets(extents: list[tuple[float, float]], gap: float = TILE_GAP) -> list[tuple[float, float]]:
    """Where each of ``len(extents)`` nuclei goes in a near-square grid, row by row.

    Parameters
    ----------
    extents : list of (height, width)
        Each nucleus's image size in world units (nm).
    gap : float
        Space between tiles as a share of the largest height / width.

    Returns
    -------
    list of (dy, dx)
        The offset (added to the layers' ``translate``) of each nucleus.
    """
    if not extents:
        return []
    cols = math.ceil(math.sqrt(len(extents)))
    cell_h = max(h for h, _ in extents) * (1 + gap)
    cell_w = max(w for _, w in extents) * (1 + gap)
    return [((k // cols) * cell_h, (k % cols) * cell_w) for k in range(len(extents))]


def batch_summary_line(results: list[FileResult], summary, input_kind: str = "fraction") -> str:
    """The status line after a batch: files done, failed, cancelled and not run (a stopped batch),
    results whose rates are not determined, the caution for intensity input, and summary.csv."""
    count = lambda *st: sum(r.status in st for r in results)  # noqa: E731
    ok, skipped, failed = count("ok", "skipped"), count("skipped"), count("failed", "diverged")
    cancelled, not_run = count("cancelled"), count("not run")
    parts = [
        f"{ok} of {len(results)} files done{f' ({skipped} skipped: done before)' if skipped else ''}",
        f"{failed} failed",
    ]
    if cancelled or not_run:
        parts.append(f"stopped: {cancelled} cancelled, {not_run} not run")
    open_ = sum(r.status in ("ok", "skipped") and r.verdict not in ("", "determined") for r in results)
    if open_:
        parts.append(f"{open_} with rates not determined (see the verdict column)")
    line = f"{', '.join(parts)}; summary: {summary}"
    if input_kind == "intensity":
        line = f"{line}. {INTENSITY_CAUTION}"
    return line


class BatchWidget(StopsOnClose, QWidget):
    """Dock widget "Batch rate maps"."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.worker = None
        self.results: list[FileResult] = []
        self._closed = False
        self._n = 0
        self._input = "intensity"  # the input kind of the running / last batch
        self._running = ""  # the name of the file running now
        self._build()
        self._watch_app()

    def _build_read_options(self, box, form) -> None:
        """What a file may not say itself (as ``--xy-unit``, ``--camera-pixel-nm``, ``--channel``,
        ``--plane``, ``--time`` of ``mollifier batch``): the unit of a table's x, y, and the plane of
        a stack; choices for axes a file lacks are ignored, so one choice serves a folder."""
        self.xy_unit = QComboBox(box)
        for label, value in (("as stated in each table", None), ("nm", "nm"), ("camera pixels", "px")):
            self.xy_unit.addItem(label, value)
        self.xy_unit.setToolTip(
            "the unit of x, y in localisation tables whose header states none (a header's own unit wins)"
        )
        form.addRow("Table xy unit", self.xy_unit)
        self.camera_pixel = QDoubleSpinBox(box)
        self.camera_pixel.setRange(0.0, 10000.0)
        self.camera_pixel.setDecimals(1)
        self.camera_pixel.setSuffix(" nm")
        self.camera_pixel.setSpecialValueText("from the file")
        self.camera_pixel.setToolTip("nm per camera pixel, for tables in camera pixels (overrides Picasso's)")
        form.addRow("Camera pixel", self.camera_pixel)
        row = QHBoxLayout()
        self.stack_index = {}
        for axis, label in (("C", "channel"), ("Z", "plane"), ("T", "time")):
            spin = QSpinBox(box)
            spin.setRange(-1, 100000)
            spin.setValue(-1)
            spin.setSpecialValueText(f"{label}: –")
            spin.setPrefix(f"{label} ")
            spin.setToolTip(f"the {label} (0-based) to analyse in stacks that have one; – : not chosen")
            self.stack_index[axis] = spin
            row.addWidget(spin)
        form.addRow("Stack plane", row)

    def read_options(self):
        """The :class:`~napari_mollifier.io.ReadOptions` of the form."""
        from ..io import ReadOptions

        picks = tuple((a, s.value()) for a, s in self.stack_index.items() if s.value() >= 0)
        return ReadOptions(
            xy_unit=self.xy_unit.currentData(),
            camera_pixel_nm=self.camera_pixel.value() or None,
            plane=picks,
        )

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
        self._build_read_options(box, form)
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
        self.file_progress = QProgressBar(rbox)
        self.file_progress.setRange(0, 1)
        self.file_progress.setValue(0)
        self.file_progress.setFormat("this file: %v / %m steps")
        self.file_progress.setToolTip(
            "training steps of the file running now (with Workers 0; dask workers report files only)"
        )
        rlay.insertWidget(1, self.file_progress)
        self._steps = _StepSignal(self)
        self._steps.step.connect(self._on_step)
        self.table = QTableWidget(0, len(COLUMNS), rbox)
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        # The short columns as wide as their text, the reason in the rest, wrapped onto more lines.
        header = self.table.horizontalHeader()
        for col in range(len(COLUMNS) - 1):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.table.setWordWrap(True)
        self.table.setMinimumHeight(180)
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
        self._input = self.input_kind.currentData()
        self.file_progress.setRange(0, max(settings.training_steps, 1))
        self.file_progress.setValue(0)
        workers = self.workers.value() or None
        self.file_progress.setVisible(workers is None)
        mask = sibling_mask if self.mask_mode.currentData() == "sibling" else None
        self._rewatch()  # make sure the window whose closing must stop this worker is watched
        self.worker = start_cancellable(
            run_batch,
            images,
            self.out.text().strip(),
            pixel_size_nm=self.pixel_size.value() or None,
            mask=mask,
            # A label image beside a file (cells_labels.tif) fits its nuclei one by one, as the CLI.
            labels=sibling_labels,
            read=self.read_options(),
            input=self.input_kind.currentData(),
            settings=settings,
            skip_existing=self.skip_done.isChecked(),
            workers=workers,
            # Called in the worker thread: the signal takes each step to the widget's thread.
            progress=None if workers else self._emit_step,
            connect={
                "yielded": self._on_item,
                "returned": self._on_returned,
                "errored": self._on_error,
                "finished": self._on_finished,
            },
        )
        self._set_busy(True)
        caution = f" {INTENSITY_CAUTION}" if self._input == "intensity" else ""
        self.status_label.setText(f"{len(images)} files: starting…{caution}")
        return self.worker

    def _emit_step(self, i: int, event) -> None:
        """run_batch's progress callback (worker thread): one fit's progress event."""
        self._steps.step.emit(int(i), int(event.step), int(event.total_steps))

    def _on_step(self, i: int, step: int, total: int) -> None:
        if self._closed or self.worker is None:
            return
        self.file_progress.setRange(0, max(total, 1))
        self.file_progress.setValue(min(step, max(total, 1)))
        name = getattr(self, "_running", "")
        self.status_label.setText(f"File {i + 1} / {self._n}: {name}: step {step} / {total}")

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
            self._running = Path(what).name
            self.file_progress.setValue(0)
            self.status_label.setText(f"File {i + 1} / {n}: {Path(what).name}…")

    def _add_row(self, r: FileResult) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        texts = (Path(r.file).name, r.status, r.verdict, short_reason(r))
        full = for_the_batch_widget(r.reason)
        tips = (r.file, full or r.file, r.verdict_reason or r.verdict, full or short_reason(r))
        for col, (text, tip) in enumerate(zip(texts, tips)):
            cell = QTableWidgetItem(text)
            cell.setToolTip(tip)
            self.table.setItem(row, col, cell)
        # All rows: a new row can widen a short column, which narrows the reason of the others.
        self.table.resizeRowsToContents()

    def _on_returned(self, results) -> None:
        if self._closed:
            return
        self.results = list(results)
        shown = {self.table.item(r, 0).toolTip() for r in range(self.table.rowCount())}
        for r in self.results:  # files not run after a stop
            if r.status == "not run" and r.file not in shown:
                self._add_row(r)
        self.status_label.setText(
            batch_summary_line(self.results, Path(self.out.text().strip()) / "summary.csv", self._input)
        )
        self.open_btn.setEnabled(any(r.status in ("ok", "skipped") for r in self.results))

    def _on_error(self, exc) -> None:
        if not self._closed:
            self.status_label.setText(f"Batch failed: {str(exc).splitlines()[0] if str(exc) else exc!r}")

    def _on_finished(self) -> None:
        self.worker = None
        if not self._closed:
            self._set_busy(False)

    # ---------------------------------------------------------------- results
    def open_results(self) -> list:
        """Add every written map of the last batch as layers (with pixel size and settings); returns them.

        The nuclei are tiled in a grid (:func:`tile_offsets`): each one's maps are moved by the
        same ``translate``, so they overlay each other and not the other nuclei. Each layer's
        metadata carries the file's status, verdict and verdict reason. A points layer "batch file
        names" writes each nucleus's name above its tile (not among the returned map layers)."""
        from ._reader import read_tiff

        nuclei = []  # per result: its layers' [(data, kwargs, kind)]
        for r in self.results:
            if r.status not in ("ok", "skipped"):
                continue
            stem = Path(r.outputs.get("json") or r.file).stem
            layers = []
            for key in ("phi", "gamma_me", "gamma_ac", "lambda"):
                path = r.outputs.get(key)
                if not path:
                    continue
                for data, kw, kind in read_tiff(path):
                    kw["name"] = f"{stem} {key if key != 'phi' else 'phi_hat'}"
                    kw["visible"] = key == "gamma_me"
                    kw["metadata"] = dict(
                        kw.get("metadata") or {},
                        status=r.status,
                        verdict=r.verdict,
                        verdict_reason=r.verdict_reason,
                    )
                    layers.append((data, kw, kind))
            if layers:
                nuclei.append(layers)
        extents = []
        for layers in nuclei:
            data, kw, _ = layers[0]
            scale = kw.get("scale") or (1.0, 1.0)
            extents.append((data.shape[-2] * scale[-2], data.shape[-1] * scale[-1]))
        # The grid starts where the first nucleus lies (a rendered table's maps carry their origin);
        # the others are placed by the grid alone: different files share no coordinates.
        y0, x0 = (nuclei[0][0][1].get("translate") or (0.0, 0.0)) if nuclei else (0.0, 0.0)
        added, corners, names, units = [], [], [], None
        for layers, (dy, dx) in zip(nuclei, tile_offsets(extents)):
            for data, kw, kind in layers:
                kw["translate"] = (y0 + dy, x0 + dx)
                added.append(getattr(self.viewer, f"add_{kind}")(data, **kw))
            corners.append(kw["translate"])
            units = kw.get("units", units)
            names.append(kw["name"].rsplit(" ", 1)[0])
        if corners:
            # Each tile's name above its top-left corner: which nucleus is which in the grid.
            self.viewer.add_points(
                corners,
                name="batch file names",
                size=1,
                face_color="transparent",
                border_color="transparent",
                border_width=0,
                **({"units": units} if units else {}),
                text={"string": names, "anchor": "lower_left", "color": "white", "size": 10},
            )
        return added

    # ---------------------------------------------------------------- closing
    def shutdown(self, timeout: float = 60.0) -> None:
        if self._closed:
            return
        self._closed = True
        if self.worker is not None:
            self.worker.join(timeout)
        self._unwatch()
