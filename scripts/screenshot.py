"""Screenshot of the napari plugin for the README: a sample nucleus, the "Infer rate maps" widget
docked, a short fit, the maps side by side.

    xvfb-run -a -s "-screen 0 1600x1200x24" python scripts/screenshot.py [--steps 400] [--out PATH]

(no xvfb-run needed on a desktop). Writes docs/plugin_screenshot.png by default. On a CPU shared with
other jobs, OMP_NUM_THREADS=1 makes the fit much faster (31 s instead of 12 min measured here).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "plugin_screenshot.png")
    ap.add_argument("--sample", default="nucleus2", choices=["nucleus1", "nucleus2", "nucleus3"])
    ap.add_argument("--steps", type=int, default=400, help="training steps of the fit (default 400)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    import napari
    import torch
    from qtpy.QtWidgets import QApplication

    torch.set_flush_denormal(True)
    viewer = napari.Viewer(title="napari-mollifier", show=True)
    viewer.window.resize(1500, 1060)
    viewer.open_sample("napari-mollifier", args.sample)
    _, widget = viewer.window.add_plugin_dock_widget("napari-mollifier", "Infer rate maps")
    app = QApplication.instance()
    widget.form.set_values(steps=args.steps, report_every=25, device=args.device)
    assert widget.image_combo.currentText() == args.sample and widget.input_kind.currentData() == "fraction"
    if widget.start() is None:
        raise SystemExit(f"the fit did not start: {widget.status_label.text()}")
    t0 = time.perf_counter()
    while widget.worker is not None:
        app.processEvents()
        time.sleep(0.02)
        if time.perf_counter() - t0 > 1800:
            raise SystemExit("the fit took more than 30 minutes")
    if widget.state.status != "finished":
        raise SystemExit(f"the fit ended as {widget.state.status}: {widget.state.message}")
    print(widget.state.message)

    # The input and three maps side by side; a click in the nucleus reports the local rates.
    name = args.sample
    for layer in viewer.layers:
        layer.visible = layer.name in (name, f"{name} gamma_me", f"{name} gamma_ac", f"{name} lambda")
    grid = viewer.canvas.grid if hasattr(viewer, "canvas") else viewer.grid  # napari >= 0.9: viewer.canvas
    grid.enabled = True
    grid.shape = (2, 2)
    viewer.reset_view()
    me = viewer.layers[f"{name} gamma_me"]
    h, w = me.data.shape
    widget.report_at(me.data_to_world((h * 0.45, w * 0.55)))
    for _ in range(20):
        app.processEvents()
        time.sleep(0.05)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.out), canvas_only=False, flash=False)
    print(f"wrote {args.out}")
    viewer.close()


if __name__ == "__main__":
    main()
