"""The "Results" section of the fit widget (Qt): "Save all…" writes every file of the last fit as
``mollifier infer`` does (:func:`napari_mollifier.io.save_result`); "Load settings…" fills the
settings form from an earlier result or a configuration file; and the form starts from the
settings of the last fit (:mod:`._last_settings`)."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import QFileDialog, QGroupBox, QHBoxLayout, QPushButton

from ..io import one_line_error
from ._last_settings import remember_settings, remembered_settings

__all__ = [
    "results_section",
    "save_all",
    "load_settings",
    "rate_maps_of",
    "choose_folder",
    "choose_settings_file",
]

_SETTINGS_FILTER = "Earlier result or settings (*.json *.tif *.tiff *.toml *.yaml *.yml);;All files (*)"


def choose_folder(parent) -> str:
    """The folder to save into, from a dialog ("" when cancelled)."""
    return QFileDialog.getExistingDirectory(parent, "Save all results into a folder")


def choose_settings_file(parent) -> str:
    """An earlier result's S.json / map TIFF or a configuration file, from a dialog ("" when cancelled)."""
    return QFileDialog.getOpenFileName(parent, "Load settings from an earlier result", "", _SETTINGS_FILTER)[
        0
    ]


def results_section(widget) -> QGroupBox:
    """The "Results" group of the fit widget: "Save all…" (enabled once a fit has ended) and
    "Load settings…"; also fills the form with the remembered settings and remembers the settings
    of each fit as it starts.

    ``widget`` is the :class:`~._fit_widget.FitWidget` (its ``form``, ``state``, ``fit``, ``_input``).
    """
    box = QGroupBox("Results", widget)
    row = QHBoxLayout(box)
    widget.save_all_btn = QPushButton("Save all…", box)
    widget.save_all_btn.setToolTip(
        "write the maps (OME-TIFF with the pixel size in nm), the settings and record (S.json), the "
        "overview figure (PNG) and the table of rates (CSV) of the last fit into a folder"
    )
    widget.save_all_btn.setEnabled(False)
    widget.load_settings_btn = QPushButton("Load settings…", box)
    widget.load_settings_btn.setToolTip(
        "fill the settings from an earlier result (its S.json or a map TIFF) or a configuration file "
        "(TOML, JSON, YAML)"
    )
    row.addWidget(widget.save_all_btn)
    row.addWidget(widget.load_settings_btn)
    widget.save_all_btn.clicked.connect(lambda: save_all(widget))
    widget.load_settings_btn.clicked.connect(lambda: load_settings(widget))

    def on_status(*_) -> None:
        busy = widget.state.status in ("running", "stopping")
        done = widget.fit is not None or getattr(widget, "nuclei_result", None) is not None
        widget.save_all_btn.setEnabled(done and not busy)
        widget.load_settings_btn.setEnabled(not busy)
        if widget.state.status == "running":
            remember_settings(widget.form.values())

    widget.state.events.status.connect(on_status)
    remembered = {k: v for k, v in remembered_settings().items() if k in widget.form.widgets}
    if remembered:
        widget.form.set_values(**remembered)
    return box


def rate_maps_of(widget):
    """The widget's last fit as :class:`~napari_mollifier.inverse.RateMaps` (what the CLI saves)."""
    from ..inverse import RateMaps

    inp = widget._input
    return RateMaps.of_fit(
        widget.fit,
        inp.phi,
        inp.pixel_size_nm,
        inp.source,
        preprocessing=inp.preprocessing,
        notices=getattr(widget, "_notices", None),  # e.g. a fall-back to the CPU
        input_kind=inp.input_kind,
    )


def save_all(widget, folder: str | None = None) -> dict | None:
    """Write every file of the widget's last fit into ``folder`` (asked for when None); returns
    name -> path, or None when cancelled or failed (the widget's message says why). After a fit of
    several nuclei: each nucleus' files, the maps of all on the image grid and the table of one row
    per nucleus (:func:`~napari_mollifier.inverse.write_nuclei_maps`, as ``mollifier infer
    --labels`` writes them)."""
    from ..inverse import write_nuclei_maps
    from ..io import result_stem, save_result

    nuclei = getattr(widget, "nuclei_result", None) if widget.fit is None else None
    if widget.fit is None and nuclei is None:
        widget.state.message = "Nothing to save yet: fit an image first."
        return None
    folder = folder or choose_folder(widget)
    if not folder:
        return None
    widget.state.message = f"Saving to {folder}…"
    widget.repaint()  # the message shows while the files (the overview figure: ~1 s) are written
    try:
        if nuclei is not None:
            paths = write_nuclei_maps(nuclei, folder, stem=result_stem(nuclei.source))
        else:
            paths = save_result(rate_maps_of(widget), folder, stem=result_stem(widget._input.source))
    except Exception as exc:  # noqa: BLE001 - shown in the panel, not raised into Qt
        widget.state.message = f"Could not save: {one_line_error(exc)}"
        return None
    stem = paths["json"].stem
    if nuclei is not None:
        widget.state.message = (
            f"Saved {len(paths)} files of {len(nuclei.table())} nuclei to {folder}: the maps of all "
            f"nuclei ({stem}_*.tif), each nucleus' own ({stem}_nucleus<label>_*), {stem}_nuclei.csv "
            f"and {stem}.json."
        )
    else:
        widget.state.message = (
            f"Saved {len(paths)} files to {folder}: the maps ({stem}_*.tif), {stem}.json, "
            f"{stem}_overview.png and {stem}_rates.csv."
        )
    return paths


def load_settings(widget, path: str | None = None) -> dict | None:
    """Fill the settings form from ``path`` (asked for when None): an earlier result's S.json or
    map TIFF, or a configuration file; returns the fields set, or None (the message says why)."""
    from ..io import read_settings_file

    path = path or choose_settings_file(widget)
    if not path:
        return None
    try:
        values = read_settings_file(path)
    except Exception as exc:  # noqa: BLE001 - shown in the panel, not raised into Qt
        widget.state.message = f"Could not load settings: {one_line_error(exc)}"
        return None
    shown = {k: v for k, v in values.items() if k in widget.form.widgets}
    widget.form.set_values(**shown)
    from ..config import InferenceSettings

    # Fields without a box here (the comparison switches) matter only where the file changes them.
    fields = InferenceSettings.model_fields
    left = sorted(k for k in set(values) - set(shown) if k not in fields or values[k] != fields[k].default)
    note = f" Not in this form (kept at their defaults): {', '.join(left)}." if left else ""
    widget.state.message = f"Loaded the settings of {Path(path).name}.{note}"
    return shown
