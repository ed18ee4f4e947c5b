"""Stacks, RGB and localisation tables in napari: the plugin's readers open stacks whole and
Picasso / rapidSTORM tables, the fit widget lists 3-D and RGB layers, pre-chooses the layer
selected in the layer list and fits the plane the viewer shows."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari", reason="napari is not installed (dev extra)")

from _plugin_data import PIXEL_NM, tiny_nucleus  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("display")]
PLUGIN = "napari-mollifier"


def _widget(viewer, qtbot):
    from napari_mollifier._napari._fit_widget import FitWidget

    w = FitWidget(viewer)
    qtbot.addWidget(w)
    return w


def _items(combo):
    return [combo.itemText(i) for i in range(combo.count())]


def _stack_of_nuclei():
    """Three planes of heterochromatin fraction that differ in structure: the nucleus, its mirror
    image and its square."""
    phi, mask, _ = tiny_nucleus(80, 1)
    return np.stack([phi, np.flipud(phi), phi**2]).astype(np.float32), mask


def test_stack_and_rgb_layers_are_listed_and_the_active_layer_is_chosen(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    stack, _ = _stack_of_nuclei()
    viewer.add_image(stack[1], name="flat", scale=(PIXEL_NM, PIXEL_NM))
    viewer.add_image(stack, name="stack", scale=(1.0, PIXEL_NM, PIXEL_NM))
    viewer.add_image(np.zeros((80, 80, 3), np.uint8), name="photo", rgb=True)
    viewer.layers.selection.active = viewer.layers["stack"]
    w = _widget(viewer, qtbot)
    assert _items(w.image_combo) == ["flat", "stack", "photo"]
    assert w.image_combo.currentText() == "stack"  # the layer selected in the layer list
    assert "the plane shown is fitted" in w.plane_label.text()
    viewer.layers.selection.active = viewer.layers["photo"]
    assert w.image_combo.currentText() == "photo"
    assert "RGB: not a chromatin stain" in w.plane_label.text() and "Split RGB" in w.plane_label.text()
    w.start()
    msg = w.status_label.text()
    assert "RGB layer is not an image of a chromatin stain" in msg and "Split RGB" in msg
    assert "no image layer chosen" not in msg and "--" not in msg
    viewer.layers.selection.active = viewer.layers["flat"]
    assert w.image_combo.currentText() == "flat" and w.plane_label.text() == "2-D image"


def test_the_plane_shown_is_the_plane_fitted(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    stack, mask = _stack_of_nuclei()
    layer = viewer.add_image(
        stack,
        name="stack",
        scale=(1.0, PIXEL_NM, PIXEL_NM),
        units=("pixel", "nm", "nm"),
        metadata={"input": "fraction"},
    )
    viewer.add_labels(mask, name="stack nucleus mask", scale=(PIXEL_NM, PIXEL_NM))
    w = _widget(viewer, qtbot)
    w.image_combo.setCurrentText("stack")
    assert w.mask_combo.currentText() == "stack nucleus mask"
    for plane in (2, 1):
        viewer.dims.set_current_step(0, plane)
        assert f"axis 0 {plane} of 3" in w.plane_label.text()
        image, inp = w._prepare()
        assert image.name == layer.name and inp.phi.shape == (80, 80)
        m = inp.mask
        np.testing.assert_allclose(inp.phi[m], stack[plane][m], atol=1e-6)  # fraction input: phi is the plane
        assert not np.allclose(inp.phi[m], stack[3 - plane][m], atol=1e-2)
    corners = np.array([[10, 10], [10, 70], [70, 70], [70, 10]], float) * PIXEL_NM
    viewer.add_shapes([corners], shape_type="rectangle", name="box")
    w.crop_combo.setCurrentText("box")
    assert w._crop_rect(layer) == pytest.approx((10.0, 70.0, 10.0, 70.0))  # pixels of the stack's Y, X
    w.crop_combo.setCurrentText("(whole image)")
    w.preview()  # the 2-D preview of the plane lies on the image's Y, X geometry
    shown = viewer.layers["stack phi (input)"]
    assert shown.data.shape == (80, 80) and tuple(shown.scale) == (PIXEL_NM, PIXEL_NM)


def test_plugin_reader_opens_a_stack_whole_and_a_picasso_table(make_napari_viewer_proxy, tmp_path):
    import h5py
    import tifffile
    import yaml

    viewer = make_napari_viewer_proxy()
    data = np.random.default_rng(0).random((2, 3, 64, 64)).astype(np.float32)
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "ZCYX", "unit": "um"}, resolution=(50, 50))
    (layer,) = viewer.open(str(path), plugin=PLUGIN)
    assert layer.data.shape == (2, 3, 64, 64) and layer.metadata["axes"] == "ZCYX"
    assert tuple(layer.scale)[-2:] == pytest.approx((20.0, 20.0))

    r = np.random.default_rng(1)
    rec = np.zeros(
        500, [("frame", "u4"), ("x", "f4"), ("y", "f4"), ("photons", "f4"), ("lpx", "f4"), ("lpy", "f4")]
    )
    rec["x"], rec["y"], rec["lpx"], rec["lpy"] = r.uniform(10, 30, 500), r.uniform(10, 20, 500), 0.12, 0.12
    with h5py.File(tmp_path / "locs.hdf5", "w") as f:
        f.create_dataset("locs", data=rec)
    (tmp_path / "locs.yaml").write_text(yaml.dump_all([{"Frames": 100}, {"Pixelsize": 100}]))
    (density,) = viewer.open(str(tmp_path / "locs.hdf5"), plugin=PLUGIN)
    assert density.name == "locs density" and density.metadata["n_localisations"] == 500
    assert density.metadata["render"]["units"].startswith("camera pixels x 100 nm")
    assert float(density.data.sum()) == pytest.approx(500.0, rel=1e-3)


def test_unitless_table_tells_the_gui_fix(make_napari_viewer_proxy, tmp_path):
    from napari_mollifier._napari._render import render_localisations_widget

    path = tmp_path / "plain.csv"
    r = np.random.default_rng(2)
    path.write_text(
        "x,y\n" + "".join(f"{a},{b}\n" for a, b in zip(r.uniform(0, 40, 300), r.uniform(0, 30, 300)))
    )
    viewer = make_napari_viewer_proxy()
    with pytest.raises(Exception) as err:
        viewer.open(str(path), plugin=PLUGIN)
    chain, e = [], err.value
    while e is not None:
        chain.append(str(e))
        e = e.__cause__ or e.__context__
    ours = [c for c in chain if "state no unit" in c]
    assert ours and "Render localisations" in ours[0] and "--" not in ours[0]
    data, kw, kind = render_localisations_widget(path, 10.0, "camera pixels", 160.0)
    assert kind == "image" and kw["metadata"]["render"]["units"].startswith(
        "column 'x' in camera pixels x 160"
    )
