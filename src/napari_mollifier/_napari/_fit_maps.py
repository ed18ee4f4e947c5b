"""The result layers of the fit widget (napari): the four maps of a fit, updated in place while it
runs, and the read-out of the local rates at a clicked pixel."""

from __future__ import annotations

import napari.layers
import numpy as np

from ._fit import describe_point
from ._layers import FIT_MAP_KEYS, MAP_STYLE, MAP_UNITS, contrast_limits, data_range

__all__ = ["MapLayers"]


class MapLayers:
    """Mixin of :class:`~._fit_widget.FitWidget`: the map layers of the current fit and the point
    read-out.

    Needs ``self.viewer``, ``self.result_layers``, ``self._input`` (the fit's input),
    ``self._source_name``, ``self._meta``, ``self._geom``, ``self.point_label``, ``self._closed``
    and ``self._pending_layers`` (the map layers not added yet).
    """

    def _map_layer(self, key: str):
        """The layer of one map: this fit's, else an image layer of that name and shape (reused),
        else a new one (NaN until the first maps arrive)."""
        name = f"{self._source_name} {key}"
        shape = self._input.phi.shape
        layer = self.result_layers.get(key)
        if layer is None or layer not in self.viewer.layers or layer.name != name:
            layer = self._layer(name)
            if layer is not None and not (
                isinstance(layer, napari.layers.Image) and layer.data.shape == shape
            ):
                self.viewer.layers.remove(layer)
                layer = None
            if layer is None:
                # Only Gamma_me is shown at first: the maps overlap, and hidden layers cost nothing to
                # update (napari refreshes them when they are shown). The contrast limits (and the
                # slider's range) follow the data from the first maps on (_update_in_place).
                layer = _add_quietly(
                    self.viewer,
                    np.full(shape, np.nan, np.float32),
                    name=name,
                    metadata=dict(self._meta, map=key, units=MAP_UNITS.get(key, "")),
                    visible=key == "gamma_me",
                    **MAP_STYLE[key],
                    **self._geom,
                )
                _show_colorbar(layer)
            elif tuple(layer.scale) != tuple(self._geom["scale"]) or tuple(layer.translate) != tuple(
                self._geom["translate"]
            ):
                layer.scale, layer.translate = self._geom["scale"], self._geom["translate"]
            self.result_layers[key] = layer
        return layer

    def _show(self, maps: dict, limits: dict, extra: dict | None = None, ranges: dict | None = None) -> None:
        """Put the four maps (all of one step) into their layers, in place. ``extra`` (the final
        maps) also goes into the layers' metadata; live updates leave the metadata alone.
        ``ranges``: the contrast sliders' spans (computed from the maps when not given)."""
        meta = None if extra is None else dict(self._meta, **extra)
        for key in FIT_MAP_KEYS:
            if extra is None and key in self._pending_layers:
                continue  # its (hidden) layer is still to be added; the next update fills it
            _update_in_place(
                self._map_layer(key),
                maps[key],
                limits[key],
                None if meta is None else dict(meta, map=key, units=MAP_UNITS.get(key, "")),
                force_limits=extra is not None,
                span=(ranges or {}).get(key),
            )

    def _show_final(self, key: str, data: np.ndarray) -> None:
        """One map that only a finished fit has (an sd map): into its layer, hidden at first."""
        _update_in_place(
            self._map_layer(key),
            data,
            contrast_limits(data),
            dict(self._meta, map=key, units=MAP_UNITS.get(key, "")),
            force_limits=True,
        )

    # ---------------------------------------------------------------- point report
    def _on_click(self, viewer, event) -> None:
        if event.type == "mouse_press" and not self._closed and self.result_layers:
            self.report_at(event.position)

    def report_at(self, world_position) -> str:
        """Report the local rates at a world position (what a click does); returns the text."""
        layer = self.result_layers.get("gamma_me")
        if layer is None or layer not in self.viewer.layers:
            return ""
        pos = np.asarray(layer.world_to_data(world_position))[-2:]
        row, col = (int(round(float(v))) for v in pos)
        shape = layer.data.shape
        if not (0 <= row < shape[0] and 0 <= col < shape[1]):
            text = f"pixel (row {row}, col {col}) is outside the image"
        else:
            values = {
                k: float(ly.data[row, col])
                for k, ly in self.result_layers.items()
                if ly in self.viewer.layers
            }
            text = describe_point(row, col, values, layer.metadata.get("pixel_size_nm"))
        self.point_label.setText(text)
        self.viewer.status = text
        return text


def _add_quietly(viewer, data, **kwargs):
    """``viewer.add_image`` that leaves the layer selection as it was: napari makes a new layer the
    selected, active one, and each change of the active layer swaps the layer-control panel and
    re-emits the selection (about a fifth of the cost of adding a map layer, profiled). The
    selection's events are held while the layer goes in and the selection is put back before
    they resume, so nothing listening to it sees a change."""
    selection = viewer.layers.selection
    active, selected = selection.active, list(selection)
    with selection.events.blocker_all():
        layer = viewer.add_image(data, **kwargs)
        selection.clear()
        selection.update(selected)
        if active is not None:
            selection.active = active
    return layer


def _show_colorbar(layer) -> None:
    """Napari's colour bar beside the shown map (napari >= 0.5.5 has ``layer.colorbar``; it has
    no title: the units are in the layer's metadata and in the widget's read-out)."""
    bar = getattr(layer, "colorbar", None)
    if bar is not None:
        bar.visible = bool(layer.visible)


def _update_in_place(
    layer,
    data: np.ndarray,
    limits,
    metadata: dict | None,
    *,
    force_limits: bool = False,
    span: tuple[float, float] | None = None,
) -> None:
    """New values for a map layer of the same shape: copied into the layer's own array and one
    refresh, instead of ``layer.data = ...`` (which re-derives dims and extents: ~3x the main-thread
    time per update, measured). The display range follows only when it moved by more than 5 %
    (each change also redraws the thumbnail and the layer controls), and only for a shown layer
    while the fit runs (a hidden one gets its range at the next update after it is shown, and at
    the end). The contrast slider spans the map's values (``span``; napari's default range is the
    first data's, or (0, 1), which left the slider pinned for rates of ~0.001)."""
    own = layer.data
    if (
        isinstance(own, np.ndarray)
        and own.shape == data.shape
        and own.dtype == np.float32
        and own.flags.writeable
    ):
        own[...] = data
        layer.refresh(thumbnail=False, highlight=False, extent=False)  # a no-op while the layer is hidden
    else:
        layer.data = np.array(data, dtype=np.float32)
    if metadata is not None:
        layer.metadata = metadata
    if not (force_limits or layer.visible):
        return
    lo, hi = layer.contrast_limits
    tol = 0.05 * max(abs(limits[1] - limits[0]), 1e-30)
    if force_limits or abs(lo - limits[0]) > tol or abs(hi - limits[1]) > tol:
        rlo, rhi = span if span is not None else data_range(data, limits)
        rlo, rhi = min(rlo, limits[0]), max(rhi, limits[1])
        # the range first (napari clips the old limits into it), then the limits inside it
        layer.contrast_limits_range = (rlo, rhi)
        layer.contrast_limits = limits
