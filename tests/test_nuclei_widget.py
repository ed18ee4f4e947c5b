"""Several nuclei in the "Infer rate maps" widget: "Label nuclei" and one fit per labelled nucleus."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari", reason="napari is not installed (dev extra)")

from _plugin_data import PIXEL_NM  # noqa: E402
from test_nuclei import two_nuclei  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("display", "one_thread")]


def test_label_nuclei_then_fit_each_nucleus_in_the_widget(make_napari_viewer_proxy, qtbot, tmp_path):
    from napari_mollifier._napari._fit_widget import FitWidget

    viewer = make_napari_viewer_proxy()
    img, truth = two_nuclei()
    truth[truth == 5] = 0
    geom = dict(scale=(PIXEL_NM, PIXEL_NM), translate=(2 * PIXEL_NM, 5 * PIXEL_NM), units=("nm", "nm"))
    image = viewer.add_image(img, name="cells", metadata={"input": "fraction"}, **geom)
    w = FitWidget(viewer)
    qtbot.addWidget(w)
    w.form.set_values(device="cpu", method="direct")
    assert w.labels_combo.currentText() == "(one nucleus: the mask above)"

    # "Label nuclei": a labels layer of every nucleus, placed on the image, chosen for the fit.
    found = w.label_nuclei()
    items = [w.labels_combo.itemText(i) for i in range(w.labels_combo.count())]
    assert found is not None and found.name == "cells nuclei" and "cells nuclei" in viewer.layers
    assert w.labels_combo.currentText() == "cells nuclei", (items, w.state.message)
    assert found.data.max() == 2 and tuple(found.translate) == tuple(image.translate)
    for k, label in ((1, 3), (2, 7)):  # each found nucleus holds one true nucleus' centre
        rows, cols = np.nonzero(truth == label)
        assert found.data[int(rows.mean()), int(cols.mean())] == k
    assert "2 nuclei labelled" in w.state.message

    # The user's own labels (3 and 7): one fit per nucleus, one table row each.
    viewer.add_labels(truth, name="cells labels", **geom)
    w.labels_combo.setCurrentText("cells labels")
    worker = w.start()
    assert worker is not None, w.state.message
    qtbot.waitUntil(
        lambda: w.worker is None and w.state.status not in ("running", "stopping"), timeout=60_000
    )
    assert w.state.status == "finished", w.state.message
    assert [r["label"] for r in w.nuclei_rows] == [3, 7]
    assert w.nuclei_table.rowCount() == 2 and w.nuclei_table.item(1, 0).text() == "7"
    for r in w.nuclei_rows:
        rows, cols = np.nonzero(truth == r["label"])
        assert float(r["centroid_row_px"]) == pytest.approx(rows.mean(), abs=0.01)
        assert float(r["centroid_col_px"]) == pytest.approx(cols.mean(), abs=0.01)
        assert r["status"] == "ok" and float(r["gamma_me_mean"]) > 0
    # Every nucleus' maps at its place in the image: finite only inside the two labels, both covered.
    me = viewer.layers["cells gamma_me"]
    assert me.data.shape == img.shape and tuple(me.translate) == tuple(image.translate)
    finite = np.isfinite(me.data)
    assert finite.any() and np.all(truth[finite] > 0)
    assert finite[truth == 3].mean() > 0.3 and finite[truth == 7].mean() > 0.3  # less the edge margin
    assert me.metadata["nuclei"] == w.nuclei_rows and viewer.layers["cells labels"].metadata["nuclei"]
    assert me.contrast_limits[1] > me.contrast_limits[0]
    assert "2 nuclei: 2 ok" in w.state.message

    # "Save all…" writes what `mollifier infer --labels` writes: one row per nucleus, maps in nm.
    import csv

    import tifffile

    from napari_mollifier._napari._save import save_all

    assert w.save_all_btn.isEnabled()
    paths = save_all(w, str(tmp_path / "saved"))
    assert paths is not None, w.state.message
    table = list(csv.DictReader(paths["nuclei"].open()))
    assert [int(r["label"]) for r in table] == [3, 7] and {r["status"] for r in table} == {"ok"}
    with tifffile.TiffFile(tmp_path / "saved" / "cells_gamma_me.tif") as tif:
        assert tif.pages[0].shape == img.shape and 'PhysicalSizeXUnit="nm"' in tif.ome_metadata
    assert (tmp_path / "saved" / "cells_nucleus7_gamma_me.tif").is_file()


def test_automatic_mask_of_a_phi_sample_in_the_widget(make_napari_viewer_proxy, qtbot):
    import tifffile
    from test_nuclei import SAMPLES, iou

    from napari_mollifier._napari._fit_widget import FitWidget

    viewer = make_napari_viewer_proxy()
    phi = tifffile.imread(SAMPLES / "nucleus2_phi.tif")
    viewer.add_image(phi, name="n2", scale=(PIXEL_NM, PIXEL_NM), metadata={"input": "fraction"})
    w = FitWidget(viewer)
    qtbot.addWidget(w)
    w.preview()  # segments automatically: the whole nucleus, not its heterochromatin domains
    assert w.state.message.startswith("Preview:"), w.state.message
    truth = tifffile.imread(SAMPLES / "nucleus2_mask.tif")
    assert iou(viewer.layers["n2 nucleus mask"].data, truth) >= 0.95
    # A speck too small to fit: the message names the widget's controls, not command-line options.
    speck = np.zeros((128, 128), np.float32)
    speck[50:70, 50:70] = 1.0
    viewer.add_image(speck, name="speck", scale=(PIXEL_NM, PIXEL_NM), metadata={"input": "fraction"})
    w.image_combo.setCurrentText("speck")
    w.preview()
    assert "automatic nucleus mask has only" in w.state.message
    assert "Nucleus mask" in w.state.message and "Input kind" in w.state.message
    assert "--" not in w.state.message
