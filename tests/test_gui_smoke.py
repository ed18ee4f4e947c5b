"""GUI smoke tests: napari finds the plugin, and the canvas renders (Qt + OpenGL + display work).

The canvas test needs a real (or virtual) X display with OpenGL: run the suite with
`bash scripts/test.sh`, which uses `xvfb-run` and Mesa's software renderer.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "napari", reason="napari is not installed (it comes with the dev extra: pip install -e '.[dev]')"
)
yaml = pytest.importorskip("yaml")

pytestmark = pytest.mark.gui

MANIFEST = Path(__file__).resolve().parents[1] / "napari.yaml"


@pytest.fixture(autouse=True)
def _require_display():
    # Without a display Qt's xcb platform aborts the whole pytest process: fail this test instead.
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
    ):
        pytest.fail("no display: run GUI tests under a (virtual) X display, e.g. `bash scripts/test.sh`")


def test_napari_discovers_the_plugin(make_napari_viewer_proxy):
    from npe2 import PluginManager

    make_napari_viewer_proxy()  # initialises napari's plugins, as starting napari does
    pm = PluginManager.instance()
    expected = yaml.safe_load(MANIFEST.read_text())
    assert expected["name"] in pm, f"napari did not discover {expected['name']!r}"
    manifest = pm.get_manifest(expected["name"])
    assert manifest.display_name == expected["display_name"]
    assert not pm.is_disabled(expected["name"])


def test_canvas_screenshot(make_napari_viewer_proxy):
    # show=True: a hidden viewer's screenshot has the right shape but stays blank, even under xvfb.
    viewer = make_napari_viewer_proxy(show=True)
    ramp = np.add.outer(np.arange(48.0), np.arange(64.0))  # a diagonal ramp, 48 x 64
    viewer.add_image(ramp, name="ramp", colormap="gray")
    shot = viewer.screenshot(size=(120, 160), canvas_only=True, flash=False)
    assert shot.shape == (120, 160, 4)
    assert shot.dtype == np.uint8
    # The ramp must actually be drawn: many grey levels, not a blank canvas.
    assert len(np.unique(shot[..., 0])) > 16, "the canvas rendered (almost) nothing"
