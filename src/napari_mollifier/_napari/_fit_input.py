"""The "Input" section of the fit widget (Qt): the layer choices (image, nucleus mask, crop), the
pixel size and input kind, and the preprocessing the fit will use (with its preview layer)."""

from __future__ import annotations

import napari.layers
import numpy as np
from qtpy.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLabel, QPushButton, QVBoxLayout

from ..io import InputError, one_line_error
from ._fit import prepare_fit
from ._gui_text import for_the_widget
from ._qt_settings import input_kind_box, pixel_size_box
from ._writer import pixel_size_from_meta

__all__ = ["AUTO_MASK", "NO_CROP", "InputSection", "guess_input_kind"]

AUTO_MASK = "(segment automatically)"
#: What a too small automatic mask suggests, in the widget's words.
SEGMENTATION_FIX = (
    "paint a labels layer and pick it as the Nucleus mask, or check the Input kind (fraction for "
    "heterochromatin-fraction images, intensity for raw ones)"
)
NO_CROP = "(whole image)"


class InputSection:
    """Mixin of :class:`~._fit_widget.FitWidget`: the input widgets and what they choose.

    Needs ``self.viewer``, ``self.form`` (the settings), ``self.state`` and ``self._closed``.
    """

    def _build_input(self, lay: QVBoxLayout) -> None:
        box = QGroupBox("Input", self)
        form = QFormLayout(box)
        self.image_combo = QComboBox(box)
        self.image_combo.setToolTip(
            "the image layer of the nucleus (one channel; of a stack, the plane the viewer shows); "
            "the layer selected in the layer list is chosen when it is an image"
        )
        form.addRow("Image", self.image_combo)
        self.plane_label = QLabel("", box)
        self.plane_label.setWordWrap(True)
        self.plane_label.setToolTip(
            "which plane of a stack is fitted: the one the viewer shows (move its sliders to choose); "
            "an RGB layer is split into its channels first (layer list: right-click > Split RGB), "
            "then the chromatin channel's layer is picked"
        )
        self.plane_label.setMinimumHeight(2 * self.plane_label.fontMetrics().height() + 4)
        form.addRow("Plane", self.plane_label)
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

    # ---------------------------------------------------------------- layer choices
    def _layers_of(self, kind: str) -> list:
        cls = getattr(napari.layers, kind)
        return [ly for ly in self.viewer.layers if isinstance(ly, cls)]

    def _connect_input(self) -> None:
        """Follow the layer list's selection (the active image layer is pre-chosen) and the
        viewer's sliders (the plane of a stack that will be fitted)."""
        self.viewer.layers.selection.events.active.connect(self._on_active_layer)
        self.viewer.dims.events.current_step.connect(self._show_plane)

    def _on_active_layer(self, *_) -> None:
        if self._closed:
            return
        active = self.viewer.layers.selection.active
        if active is None or not isinstance(active, napari.layers.Image):
            return
        if self.image_combo.findText(active.name) >= 0:
            self.image_combo.setCurrentText(active.name)

    def _refresh_layers(self, *_) -> None:
        if self._closed:
            return
        first_fill = self.image_combo.count() == 0
        for combo, kind, first in (
            (self.image_combo, "Image", None),
            (self.mask_combo, "Labels", AUTO_MASK),
            (self.crop_combo, "Shapes", NO_CROP),
        ):
            current = combo.currentText()
            # Every image layer is offered, stacks and RGB too: choosing one says what to do with it.
            names = ([first] if first else []) + [
                ly.name
                for ly in self._layers_of(kind)
                if kind != "Image" or ly.name not in self._result_names()
            ]
            if [combo.itemText(i) for i in range(combo.count())] == names:
                continue
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)
            combo.blockSignals(False)
        if first_fill:
            self._on_active_layer()
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
        self._show_plane()
        if layer is None:
            return
        px = pixel_size_from_meta({"scale": list(layer.scale), "units": [str(u) for u in layer.units]})
        self.pixel_size.setValue(px or 0.0)  # 0 shows "type it in": the layer has no pixel size
        kind = layer.metadata.get("input")
        if kind in ("intensity", "fraction"):
            self.input_kind.setCurrentIndex(self.input_kind.findData(kind))
        else:  # not recorded (napari's own reader, a layer made in the console): guess from the values
            kind = guess_input_kind(layer.data)
            self.input_kind.setCurrentIndex(self.input_kind.findData(kind))
            self.state.message = (
                f"Input set to “{self.input_kind.currentText()}”: {name} does not record what it holds "
                + (
                    "and its values lie within [0, 1]; choose “intensity” if it is a raw image."
                    if kind == "fraction"
                    else "and its values exceed [0, 1]; choose “fraction (φ)” if it already is φ."
                )
            )
        mask_name = f"{name} nucleus mask"
        self.mask_combo.setCurrentText(mask_name if mask_name in self.viewer.layers else AUTO_MASK)

    # ---------------------------------------------------------------- planes of stacks
    def _plane_index(self, layer) -> tuple[int, ...]:
        """Indices of the viewer's current slice on the leading (non-Y, X) axes of ``layer``."""
        data_pt = np.asarray(layer.world_to_data(self.viewer.dims.point), dtype=float)
        lead = data_pt[-layer.ndim : -2]
        shape = layer.data.shape[: layer.ndim - 2]
        return tuple(int(np.clip(round(v), 0, n - 1)) for v, n in zip(lead, shape))

    def _plane_text(self, layer) -> str:
        if layer is None or not isinstance(layer, napari.layers.Image):
            return ""
        if layer.rgb:
            return "RGB: not a chromatin stain; split it (layer list: right-click > Split RGB)"
        if layer.ndim <= 2:
            return "2-D image"
        labels = list(getattr(layer, "axis_labels", ()) or ())[: layer.ndim - 2]
        if len(labels) != layer.ndim - 2:
            labels = [""] * (layer.ndim - 2)
        # napari's own labels are numbers ("-3"): name those axes by their position
        labels = [a if a and not a.lstrip("-").isdigit() else f"axis {i}" for i, a in enumerate(labels)]
        idx = self._plane_index(layer)
        where = ", ".join(f"{a} {i} of {n}" for a, i, n in zip(labels, idx, layer.data.shape))
        return f"{where}: the plane shown is fitted (move the viewer's sliders to choose)"

    def _show_plane(self, *_) -> None:
        if self._closed:
            return
        self.plane_label.setText(self._plane_text(self._layer(self.image_combo.currentText())))

    def image_plane(self, layer) -> tuple[np.ndarray, str]:
        """The 2-D data of an image layer to fit and its name: of a stack the plane the viewer
        shows (named with its indices), an RGB layer refused with how to split it."""
        if layer.rgb:
            raise InputError(
                f"{layer.name}: an RGB layer is not an image of a chromatin stain; split it "
                "(right-click the layer in the layer list > Split RGB) and pick the chromatin channel"
            )
        if layer.ndim <= 2:
            return np.asarray(layer.data), layer.name
        idx = self._plane_index(layer)
        plane = np.asarray(layer.data[idx])
        return plane, f"{layer.name} [{', '.join(str(i) for i in idx)}]"

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
        """Scale, translate and units of the Y, X axes (2-D results of a stack's plane)."""
        return {
            "scale": tuple(layer.scale)[-2:],
            "translate": tuple(layer.translate)[-2:],
            "units": tuple(layer.units)[-2:],
        }

    def _mask_data(self, image, data=None):
        """The chosen labels layer's current data; with automatic segmentation, a new labels layer
        holding the segmentation (so it can be inspected and edited)."""
        name = self.mask_combo.currentText()
        if name and name != AUTO_MASK:
            layer = self._layer(name)
            if layer is None:
                raise InputError(f"the mask layer {name!r} is gone; pick another or segment automatically")
            return np.asarray(layer.data)
        from ..io import segment_nucleus

        data = np.asarray(image.data if data is None else data, dtype=float)
        mask = segment_nucleus(data, name=image.name, fix=SEGMENTATION_FIX).astype(np.uint8)
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
        # A rectangle's corners at the viewer's current slice: a stack's plane (the leading axes)
        # is where the viewer is, its Y, X the rectangle's.
        here = np.asarray(self.viewer.dims.point, dtype=float)
        px = np.array([image.world_to_data(np.r_[here[: here.size - 2], w[-2:]]) for w in world])[:, -2:]
        return (px[:, 0].min(), px[:, 0].max(), px[:, 1].min(), px[:, 1].max())

    def _prepare(self, settings=None):
        image = self.image_layer()
        data, name = self.image_plane(image)  # an RGB layer is refused first: its fix comes first
        if not self.pixel_size.value() > 0:
            if pixel_size_from_meta({"scale": list(image.scale), "units": [str(u) for u in image.units]}):
                raise InputError(f"{image.name}: the pixel size must be positive; type it in (nm)")
            raise InputError(
                f"{image.name}: the layer has no pixel size; type it in (nm) or open the file with "
                "the Mollifier reader (File > Open), which reads it from the metadata"
            )
        settings = settings if settings is not None else self.form.settings()
        inp = prepare_fit(
            data,
            pixel_size_nm=self.pixel_size.value(),
            input_kind=self.input_kind.currentData(),
            settings=settings,
            mask=self._mask_data(image, data),
            crop=self._crop_rect(image),
            name=name,
        )
        return image, inp

    def preview(self) -> None:
        """Show the mask (labels layer) and the normalised φ the fit would use."""
        try:
            image, inp = self._prepare()
        except Exception as exc:  # noqa: BLE001 - shown to the user, one line
            self.state.message = for_the_widget(one_line_error(exc))
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


def guess_input_kind(data) -> str:
    """ "fraction" when the image's finite values lie within [0, 1] (give or take 5 % of noise),
    else "intensity"; looks at every pixel of an image up to ~512 pixels a side, a strided
    sample of a larger one; of a stack, its first plane only (a lazy stack stays unread)."""
    shape = np.shape(data)
    step = max(1, -(-max(shape[-2:], default=1) // 512))
    lead = (0,) * max(len(shape) - 2, 0)
    index = (*lead, slice(None, None, step), slice(None, None, step)) if len(shape) >= 2 else ...
    v = np.asarray(data[index], dtype=float)
    v = v[np.isfinite(v)]
    return "fraction" if v.size and v.min() >= -0.05 and v.max() <= 1.05 else "intensity"


def _short(norm) -> str:
    if isinstance(norm, dict):
        return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in norm.items())
    return str(norm)
