"""Closing napari right after opening the fit widget: the process must exit cleanly.

The widget imports torch's optimiser machinery in a background thread when it opens. As a daemon
thread, a viewer closed during that import let the interpreter finalise under the half-done import,
which could abort the process ("terminate called without an active exception"). The thread is not
a daemon, so interpreter shutdown waits for it: at exit (atexit handlers run after non-daemon
threads are joined) the warm-up has finished.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("napari", reason="napari is not installed (dev extra)")

pytestmark = pytest.mark.gui

SCRIPT = textwrap.dedent(
    """
    import atexit

    import napari

    from napari_mollifier._napari._fit import WARMED_UP
    from napari_mollifier._napari._fit_widget import FitWidget

    atexit.register(lambda: print("warmed up at exit:", WARMED_UP.is_set(), flush=True))
    viewer = napari.Viewer(show=False)
    viewer.window.add_dock_widget(FitWidget(viewer))
    viewer.close()
    print("viewer closed; warmed up:", WARMED_UP.is_set(), flush=True)
    """
)


def test_closing_the_viewer_while_the_widget_warms_up_exits_cleanly(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", OMP_NUM_THREADS="1")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "terminate called" not in out, out
    assert "warmed up at exit: True" in proc.stdout, out
