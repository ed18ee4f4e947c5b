"""The "Several nuclei" section of the fit widget (Qt): a labels layer of nuclei to fit one by one,
the "Label nuclei" button that makes one by automatic segmentation, and the table of the nuclei.

With a labels layer chosen, Start fits every labelled nucleus in turn in the thread worker
(:func:`~._nuclei_fit.nuclei_updates`); the map layers hold every nucleus' maps at its place in
the image, and the table one row per nucleus (also in the map and labels layers' metadata,
``"nuclei"``).
"""

from __future__ import annotations

import napari.layers
import numpy as np
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from ..io import InputError, one_line_error
from ._gui_text import for_the_widget
from ._layers import FIT_MAP_KEYS, RATE_UNITS, SD_MAP_KEYS

__all__ = ["ONE_NUCLEUS", "NucleiSection"]

ONE_NUCLEUS = "(one nucleus: the mask above)"

#: The table's columns: (header, key of the nuclei table row).
TABLE_COLUMNS = (
    ("label", "label"),
    ("row", "centroid_row_px"),
    ("col", "centroid_col_px"),
    ("area px", "area_px"),
    ("Γ_me", "gamma_me_mean"),
    ("Γ_ac", "gamma_ac_mean"),
    ("λ", "lambda_mean"),
    ("status", "status"),
    ("verdict", "verdict"),
)


class NucleiSection:
    """Mixin of :class:`~._fit_widget.FitWidget`: several nuclei in one image.

    Needs what :class:`~._fit_input.InputSection` and :class:`~._fit_maps.MapLayers` need, and
    the widget's ``state``, ``progress``, ``worker``, ``_on_error`` and ``_on_finished``.
    """

    def _build_nuclei(self, lay: QVBoxLayout) -> None:
        box = QGroupBox("Several nuclei", self)
        form = QFormLayout(box)
        self.labels_combo = QComboBox(box)
        self.labels_combo.setToolTip(
            "a labels layer with one label per nucleus: Start then fits every nucleus in turn, each "
            "on its own crop with its label as the mask"
        )
        form.addRow("Labels", self.labels_combo)
        self.label_btn = QPushButton("Label nuclei", box)
        self.label_btn.setToolTip(
            "add a labels layer with every nucleus of the image found by automatic segmentation "
            "(one label each; edit it before fitting)"
        )
        form.addRow(self.label_btn)
        self.nuclei_table = QTableWidget(0, len(TABLE_COLUMNS), box)
        self.nuclei_table.setHorizontalHeaderLabels([h for h, _ in TABLE_COLUMNS])
        self.nuclei_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.nuclei_table.setToolTip("one row per nucleus of the last fit of several nuclei")
        self.nuclei_table.verticalHeader().setVisible(False)
        self.nuclei_table.setMaximumHeight(180)
        self.nuclei_table.setVisible(False)
        form.addRow(self.nuclei_table)
        lay.addWidget(box)
        self.nuclei_rows: list[dict] = []

    def _connect_nuclei(self) -> None:
        self.label_btn.clicked.connect(self.label_nuclei)
        self.viewer.layers.events.inserted.connect(self._refresh_labels_choice)
        self.viewer.layers.events.removed.connect(self._refresh_labels_choice)
        self.state.events.status.connect(self._nuclei_enabled)
        self._refresh_labels_choice()

    def _disconnect_nuclei(self) -> None:
        for ev in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            try:
                ev.disconnect(self._refresh_labels_choice)
            except Exception:  # noqa: BLE001 - the viewer may already be torn down
                pass

    def _refresh_labels_choice(self, *_) -> None:
        if self._closed:
            return
        names = [ONE_NUCLEUS] + [ly.name for ly in self._layers_of("Labels") if ly.data.ndim == 2]
        if [self.labels_combo.itemText(i) for i in range(self.labels_combo.count())] == names:
            return
        current = self.labels_combo.currentText()
        self.labels_combo.blockSignals(True)
        self.labels_combo.clear()
        self.labels_combo.addItems(names)
        if current in names:
            self.labels_combo.setCurrentText(current)
        self.labels_combo.blockSignals(False)

    def _nuclei_enabled(self, *_) -> None:
        busy = self.state.status in ("running", "stopping")
        self.labels_combo.setEnabled(not busy)
        self.label_btn.setEnabled(not busy)

    def nuclei_layer(self):
        """The chosen labels layer of nuclei, or None (one nucleus)."""
        name = self.labels_combo.currentText()
        return None if not name or name == ONE_NUCLEUS else self._layer(name)

    # ---------------------------------------------------------------- automatic labels
    def label_nuclei(self):
        """Add (or refresh) the labels layer "<image> nuclei": every nucleus of the chosen image,
        one label each, and choose it; returns the layer (None when nothing was found)."""
        from ..io import label_nuclei

        try:
            image = self.image_layer()
            labels = label_nuclei(np.asarray(image.data, dtype=float), name=image.name)
        except Exception as exc:  # noqa: BLE001 - shown to the user, one line
            self.state.message = for_the_widget(one_line_error(exc))
            return None
        if not labels.any():
            self.state.message = (
                f"{image.name}: no nucleus of at least 40x40 pixels found; check the Input kind, or "
                "paint the nuclei into a labels layer"
            )
            return None
        name = f"{image.name} nuclei"
        layer = self._layer(name)
        if isinstance(layer, napari.layers.Labels) and layer.data.shape == labels.shape:
            layer.data = labels
        else:
            if layer is not None:
                self.viewer.layers.remove(layer)
            layer = self.viewer.add_labels(labels, name=name, opacity=0.4, **self._geometry(image))
        self._refresh_labels_choice()
        self.labels_combo.setCurrentText(name)
        self.state.message = (
            f"{int(labels.max())} nuclei labelled in {name!r}; edit the layer if needed, then Start "
            "to fit each of them"
        )
        return layer

    # ---------------------------------------------------------------- fitting every nucleus
    def start_nuclei(self):
        """Fit every nucleus of the chosen labels layer in a thread worker; returns the worker
        (None when the input is not usable)."""
        from ._fit import FitInput
        from ._nuclei_fit import nuclei_updates
        from ._qt_worker import start_cancellable

        try:
            settings = self.form.settings()
            image = self.image_layer()
            layer = self.nuclei_layer()
            if layer is None:
                raise InputError(
                    f"the labels layer {self.labels_combo.currentText()!r} is gone; pick another"
                )
            if not self.pixel_size.value() > 0:
                raise InputError(f"{image.name}: the layer has no pixel size; type it in (nm)")
            data, labels = np.asarray(image.data), np.asarray(layer.data)
            if labels.shape != data.shape:
                raise InputError(
                    f"{layer.name}: shape {labels.shape} differs from the image's {data.shape}; "
                    "pick the labels of this image or press Label nuclei"
                )
            n = len(np.unique(labels[labels > 0]))
            if n == 0:
                raise InputError(
                    f"{layer.name}: the labels layer holds no nucleus; paint or press Label nuclei"
                )
        except Exception as exc:  # noqa: BLE001 - input problems are shown, not raised
            self.state.status = "failed"
            self.state.message = for_the_widget(one_line_error(exc))
            return None
        px = float(self.pixel_size.value())
        kind = self.input_kind.currentData()
        # The whole image is the "input" of the map layers: they cover it, each nucleus at its place.
        self._input = FitInput(
            phi=np.zeros(data.shape, np.float32),
            mask=labels > 0,
            pixel_size_nm=px,
            settings=settings,
            input_kind=kind,
            source=image.name,
            preprocessing={"labels": layer.name},
        )
        self._geom = self._geometry(image)
        self._meta = {
            "mollifier_map": True,
            "source": image.name,
            "input": kind,
            "pixel_size_nm": px,
            "settings": settings.model_dump(),
            "preprocessing": {"labels": layer.name},
            "units": RATE_UNITS,
        }
        self._source_name = image.name
        self._nuclei_layer = layer
        self.fit = None
        self.nuclei_result = None
        self.nuclei_rows = []
        self.nuclei_table.setRowCount(0)
        self.nuclei_table.setVisible(True)
        self.loss_plot.clear()
        self.progress.setRange(0, n)
        self.progress.setFormat("%v / %m nuclei")
        self.progress.setValue(0)
        self.state.total_steps = settings.training_steps
        self.state.step = 0
        self.state.status = "running"
        self.state.message = f"Fitting {n} nuclei of {image.name} ({layer.name}) one after another…"
        self.result_layers = {}
        self._rewatch()
        self.worker = start_cancellable(
            nuclei_updates,
            data,
            labels,
            pixel_size_nm=px,
            input_kind=kind,
            settings=settings,
            name=image.name,
            connect={
                "yielded": self._on_nucleus_done,
                "returned": self._on_nuclei_returned,
                "errored": self._on_error,
                "finished": self._on_finished,
            },
        )
        for key in FIT_MAP_KEYS:
            self._map_layer(key)
        return self.worker

    def _on_nucleus_done(self, u) -> None:
        if self._closed:
            return
        self.progress.setValue(u.done)
        self.nuclei_rows.append(u.row)
        self._add_table_row(u.row)
        self._show({k: u.maps[k] for k in FIT_MAP_KEYS}, {k: u.limits[k] for k in FIT_MAP_KEYS})
        self._last_nuclei_update = u
        self.state.message = f"Nucleus {u.row['label']} ({u.done} of {u.total}): {u.row['status']}" + (
            f": {for_the_widget(u.row['reason'])}" if u.row["status"] != "ok" and u.row["reason"] else ""
        )

    def _add_table_row(self, row: dict) -> None:
        i = self.nuclei_table.rowCount()
        self.nuclei_table.insertRow(i)
        for j, (_, key) in enumerate(TABLE_COLUMNS):
            value = row.get(key, "")
            if key.endswith("_mean") and value != "":
                value = f"{float(value):.3g}"
            item = QTableWidgetItem(str(value))
            if key == "status" and row.get("reason"):
                item.setToolTip(for_the_widget(row["reason"]))
            if key == "verdict" and row.get("verdict_reason"):
                item.setToolTip(row["verdict_reason"])
            self.nuclei_table.setItem(i, j, item)
        self.nuclei_table.resizeColumnsToContents()

    def _on_nuclei_returned(self, result) -> None:
        if self._closed or result is None:
            return
        rows = result.table()
        self.nuclei_rows = rows
        self.nuclei_result = result  # what "Save all…" writes
        u = getattr(self, "_last_nuclei_update", None)
        extra = {"nuclei": rows, "status": result.status}
        if u is not None:
            self._show({k: u.maps[k] for k in FIT_MAP_KEYS}, {k: u.limits[k] for k in FIT_MAP_KEYS}, extra)
            for key in SD_MAP_KEYS:
                if np.isfinite(u.maps[key]).any():
                    self._show_final(key, u.maps[key])
        layer = getattr(self, "_nuclei_layer", None)
        if layer is not None and layer in self.viewer.layers:
            layer.metadata = dict(layer.metadata, nuclei=rows)
        counts: dict = {}
        for r in rows:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        tally = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        stopped = any(r["status"] in ("cancelled", "not run") for r in rows)
        self.state.status = "stopped" if stopped else ("finished" if result.status == "ok" else "failed")
        self.state.message = (
            f"{len(rows)} nuclei: {tally}. The map layers hold every nucleus at its place; the table "
            "has one row per nucleus. Click a pixel for local rates."
        )
