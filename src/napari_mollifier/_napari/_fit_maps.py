"""The result layers of the fit widget (napari): the four maps of a fit, updated in place while it
runs, and the read-out of the local rates at a clicked pixel."""

from __future__ import annotations

import napari.layers
import numpy as np

from ._fit import describe_point
from ._layers import FIT_MAP_KEYS, MAP_STYLE, contrast_limits

__all__ = ["MapLayers"]


class MapLayers:
    """Mixin of :class:`~._fit_widget.FitWidget`: the map layers of the current fit and the point
    read-out.

    Needs ``self.viewer``, ``self.result_layers``, ``self._input`` (the fit's input),
    ``self._source_name``, ``self._meta``, ``self._geom``, ``self.point_label`` and ``self._closed``.
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
                # update (napari refreshes them when they are shown).
                layer = self.viewer.add_image(
                    np.full(shape, np.nan, np.float32),
                    name=name,
                    contrast_limits=(0, 1),
                    metadata=dict(self._meta, map=key),
                    visible=key == "gamma_me",
                    **MAP_STYLE[key],
                    **self._geom,
                )
            elif tuple(layer.scale) != tuple(self._geom["scale"]) or tuple(layer.translate) != tuple(
                self._geom["translate"]
            ):
                layer.scale, layer.translate = self._geom["scale"], self._geom["translate"]
            self.result_layers[key] = layer
        return layer

    def _show(self, maps: dict, limits: dict, extra: dict | None = None) -> None:
        """Put the four maps (all of one step) into their layers, in place. ``extra`` (the final
        maps) also goes into the layers' metadata; live updates leave the metadata alone."""
        meta = None if extra is None else dict(self._meta, **extra)
        for key in FIT_MAP_KEYS:
            _update_in_place(
                self._map_layer(key),
                maps[key],
                limits[key],
                None if meta is None else dict(meta, map=key),
                force_limits=extra is not None,
            )

    def _show_final(self, key: str, data: np.ndarray) -> None:
        """One map that only a finished fit has (an sd map): into its layer, hidden at first."""
        _update_in_place(
            self._map_layer(key), data, contrast_limits(data), dict(self._meta, map=key), force_limits=True
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


def _update_in_place(
    layer, data: np.ndarray, limits, metadata: dict | None, *, force_limits: bool = False
) -> None:
    """New values for a map layer of the same shape: copied into the layer's own array and one
    refresh, instead of ``layer.data = ...`` (which re-derives dims and extents: ~3x the main-thread
    time per update, measured). The display range follows only when it moved by more than 5 %
    (each change also redraws the thumbnail and the layer controls)."""
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
    lo, hi = layer.contrast_limits
    tol = 0.05 * max(abs(limits[1] - limits[0]), 1e-30)
    if force_limits or abs(lo - limits[0]) > tol or abs(hi - limits[1]) > tol:
        layer.contrast_limits = limits  # widens the range if needed; updates the thumbnail
