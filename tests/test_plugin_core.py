"""The plugin's Qt-free parts: solver box, fit preparation and worker generator, readers, writer,
sample data, batch. No napari viewer and no Qt here (those are in test_plugin_gui.py)."""

from __future__ import annotations

import csv
import json
import threading

import numpy as np
import pytest
import tifffile
from _plugin_data import PIXEL_NM, tiny_nucleus, write_nucleus

from napari_mollifier.batch import find_images, run_batch, sibling_mask
from napari_mollifier.config import InferenceSettings
from napari_mollifier.inverse import RateFit, fit_rates
from napari_mollifier.io import InputError, write_tiff

SETTINGS = InferenceSettings(steps=30, report_every=5, device="cpu")


pytestmark = pytest.mark.usefixtures("one_thread")  # one intra-op thread (tests/conftest.py)


def test_progress_events_carry_the_crop_box():
    phi, mask, _ = tiny_nucleus()
    items = list(fit_rates(phi, mask, PIXEL_NM, SETTINGS))
    fit = items[-1]
    assert isinstance(fit, RateFit)
    events = items[:-1]
    assert [e.step for e in events] == [5, 10, 15, 20, 25, 30, 30] and events[-1].done
    for ev in events:
        rows, cols = ev.box
        assert ev.maps["gamma_me"].shape == (rows.stop - rows.start, cols.stop - cols.start)
    full = np.full(phi.shape, np.nan, np.float32)
    full[events[-1].box] = events[-1].maps["gamma_me"]
    np.testing.assert_array_equal(full, fit.gamma_me)


def test_prepare_fit_uses_mask_and_crop():
    from napari_mollifier._napari._fit import prepare_fit, rect_mask

    phi, mask, _ = tiny_nucleus()
    inp = prepare_fit(phi, pixel_size_nm=PIXEL_NM, input_kind="fraction", mask=mask, settings=SETTINGS)
    np.testing.assert_array_equal(inp.mask, mask != 0)
    np.testing.assert_array_equal(inp.phi, phi.astype(np.float64))
    crop = (10.0, 69.4, 5.0, 60.0)
    cropped = prepare_fit(phi, pixel_size_nm=PIXEL_NM, input_kind="fraction", mask=mask, crop=crop)
    np.testing.assert_array_equal(cropped.mask, (mask != 0) & rect_mask(phi.shape, crop))
    rows, cols = np.nonzero(cropped.mask)
    assert rows.min() >= 10 and rows.max() <= 69 and cols.min() >= 5 and cols.max() <= 60
    assert cropped.preprocessing["crop_px"] == list(crop)
    # intensity input: the affine map of the estimated levels (unclipped inside the nucleus,
    # clipped to [0, 1] outside) with a PSF default, as infer_rates does
    img = 100 + 1000 * phi
    inten = prepare_fit(img, pixel_size_nm=PIXEL_NM, input_kind="intensity", mask=mask)
    norm = inten.preprocessing["normalisation"]
    affine = (img - norm["euchromatin_level"]) / (norm["heterochromatin_level"] - norm["euchromatin_level"])
    inside = inten.mask
    np.testing.assert_allclose(inten.phi[inside], affine[inside], atol=1e-6)  # float32 image
    np.testing.assert_allclose(inten.phi[~inside], np.clip(affine[~inside], 0, 1), atol=1e-6)
    assert inten.settings.psf_sigma_nm > 0
    assert "euchromatin_level" in inten.preprocessing["normalisation"]
    # intensity results carry the caution that their absolute scale is not reliable
    assert "do not determine the rates" in inten.preprocessing["caution"]
    assert "caution" not in cropped.preprocessing
    # calibrated levels (settings): phi = (I - eu) / (het - eu), and no caution
    cal = prepare_fit(
        img,
        pixel_size_nm=PIXEL_NM,
        input_kind="intensity",
        mask=mask,
        settings=InferenceSettings(euchromatin_level=100.0, heterochromatin_level=1100.0),
    )
    np.testing.assert_allclose(cal.phi[cal.mask], phi[cal.mask], atol=1e-5)
    assert "caution" not in cal.preprocessing


@pytest.mark.parametrize(
    "data, px, words",
    [
        (np.zeros((80, 80, 3)), 10.0, ["RGB", "single-channel"]),
        (np.zeros((4, 80, 80)), 10.0, ["2-D", "pick one plane"]),
        (np.full((80, 80), np.nan), 10.0, ["NaN", "pick the image"]),
        (None, 0.0, ["pixel size", "type it in"]),
    ],
)
def test_prepare_fit_errors_are_one_line_with_the_fix(data, px, words):
    from napari_mollifier._napari._fit import prepare_fit

    phi, mask, _ = tiny_nucleus()
    with pytest.raises(InputError) as err:
        prepare_fit(phi if data is None else data, pixel_size_nm=px, input_kind="fraction", mask=mask)
    msg = str(err.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_fit_updates_yield_full_maps_and_stop_consistently():
    from napari_mollifier._napari._fit import fit_updates, prepare_fit

    phi, mask, _ = tiny_nucleus()
    inp = prepare_fit(
        phi,
        pixel_size_nm=PIXEL_NM,
        input_kind="fraction",
        mask=mask,
        settings=SETTINGS.model_copy(update={"steps": 2000}),
    )
    cancel = threading.Event()
    gen = fit_updates(inp, cancel=cancel, min_interval_s=0.0)
    updates = [next(gen), next(gen)]
    cancel.set()
    with pytest.raises(StopIteration) as stop:
        while True:
            updates.append(next(gen))
    fit = stop.value.value
    assert isinstance(fit, RateFit) and fit.cancelled and 10 <= fit.steps_done < 2000
    u = updates[-1]
    assert set(u.maps) == {"gamma_me", "gamma_ac", "lambda", "phi_hat"}
    assert all(m.shape == phi.shape and m.dtype == np.float32 for m in u.maps.values())
    inside = np.isfinite(u.maps["gamma_me"])
    assert inside.sum() > 500 and not inside[0, 0]
    np.testing.assert_allclose(
        u.maps["lambda"][inside], (u.maps["gamma_me"] / u.maps["gamma_ac"])[inside], rtol=1e-5
    )
    assert [h["step"] for h in u.history] == list(range(5, u.step + 1, 5))
    lo, hi = u.limits["gamma_me"]
    assert lo < hi and lo >= np.nanmin(u.maps["gamma_me"])
    # throttling: with a long interval only the first progress event is passed on
    gen = fit_updates(inp.__class__(**{**inp.__dict__, "settings": SETTINGS}), min_interval_s=60.0)
    first = next(gen)
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert first.step == 5 and stop.value.value.steps_done == 30


def test_describe_point_has_units():
    from napari_mollifier._napari._fit import describe_point

    text = describe_point(
        3, 4, {"gamma_me": 0.0021, "gamma_ac": 0.004, "lambda": 0.525, "phi_hat": 0.3}, 10.0
    )
    assert "Γ_me = 0.0021 /τ" in text and "Γ_ac = 0.004 /τ" in text and "λ = 0.525" in text
    assert "(y 30, x 40) nm" in text and "ℓ0 = 10 nm" in text
    assert "outside the analysed region" in describe_point(0, 0, {"gamma_me": np.nan, "gamma_ac": np.nan})


# ------------------------------------------------------------------ readers and writer
def test_tiff_reader_gives_scale_units_and_metadata(tmp_path):
    from napari_mollifier._napari._reader import get_tiff_reader

    phi, mask, _ = tiny_nucleus()
    path = write_tiff(tmp_path / "n_phi.tif", phi, 12.5, metadata={"settings": {"steps": 7}})
    assert get_tiff_reader(str(tmp_path / "n.png")) is None
    reader = get_tiff_reader(str(path))
    ((data, kw, kind),) = reader(str(path))
    assert kind == "image" and data.dtype == np.float32 and data.shape == phi.shape
    np.testing.assert_array_equal(data, phi)
    assert kw["scale"] == (12.5, 12.5) and kw["units"] == ("nm", "nm")
    assert kw["metadata"]["settings"] == {"steps": 7} and kw["metadata"]["pixel_size_nm"] == pytest.approx(
        12.5
    )
    mpath = write_tiff(tmp_path / "n_mask.tif", mask, 12.5)
    ((mdata, mkw, mkind),) = reader([str(mpath)])
    assert mkind == "labels" and mdata.dtype == np.uint8 and mdata.sum() == mask.sum()


def test_ome_tiff_pixel_size(tmp_path):
    from napari_mollifier._napari._reader import read_tiff

    phi, _, _ = tiny_nucleus()
    path = tmp_path / "cell.ome.tif"
    tifffile.imwrite(
        path,
        phi,
        ome=True,
        metadata={
            "axes": "YX",
            "PhysicalSizeX": 0.016,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": 0.016,
            "PhysicalSizeYUnit": "µm",
        },
    )
    ((data, kw, kind),) = read_tiff(str(path))
    assert kind == "image" and kw["scale"] == pytest.approx((16.0, 16.0))
    assert kw["metadata"]["pixel_size_source"] == "OME PhysicalSizeX"


@pytest.mark.parametrize(
    "case, words, shape, kind",
    [
        ("rgb", ["no pixel size", "'Infer rate maps'"], (64, 64, 3), "rgb"),
        ("stack", [], (3, 64, 64), "image"),
        ("nopixel", ["no pixel size", "napari's built-in writer", "'Infer rate maps'"], (64, 64), "image"),
        ("napari", ["no pixel size", "napari's built-in writer"], (64, 64), "image"),
    ],
)
def test_tiff_reader_opens_any_tiff_and_says_what_it_lacks(tmp_path, monkeypatch, case, words, shape, kind):
    """RGB images, stacks and TIFFs without a pixel size (a plain one, one saved by napari's
    built-in writer) open as they are; what a fit would lack (the pixel size) is a one-line
    notification naming the file and the fix. A stack with its pixel size opens with its axes and
    no notification (the fit widget fits the plane shown)."""
    from napari_mollifier._napari import _reader

    said = []
    monkeypatch.setattr(_reader, "notify", said.append)
    path = tmp_path / f"{case}.tif"
    rng = np.random.default_rng(0)
    if case == "rgb":
        data = rng.integers(0, 255, shape, dtype=np.uint8)
        tifffile.imwrite(path, data, photometric="rgb")
    elif case == "stack":
        data = rng.random(shape).astype(np.float32)
        write_tiff(path, data, 10.0)
    elif case == "nopixel":
        data = rng.random(shape).astype(np.float32)
        tifffile.imwrite(path, data)
    else:
        from napari_builtins.io import napari_write_image

        data = rng.random(shape).astype(np.float32)
        napari_write_image(str(path), data, {"scale": (12.5, 12.5), "name": "cell"})
    reader = _reader.get_tiff_reader(str(path))
    ((back, kw, layer_type),) = reader(str(path))
    np.testing.assert_array_equal(back, data)
    assert layer_type == "image" and kw.get("rgb", False) == (kind == "rgb")
    if not words:
        assert said == [] and kw["metadata"]["axes"].endswith("YX"), (said, kw["metadata"])
    else:
        assert len(said) == 1 and "\n" not in said[0] and str(path) in said[0], said
        assert all(w in said[0] for w in words), said[0]
    if case in ("nopixel", "napari"):
        assert "scale" not in kw and kw["metadata"]["pixel_size_nm"] is None
    else:
        assert kw["scale"][-2:] == (10.0, 10.0) if case == "stack" else True


def test_tiff_reader_refuses_an_unreadable_file_in_one_line(tmp_path):
    from napari_mollifier._napari._reader import get_tiff_reader

    path = tmp_path / "corrupt.tif"
    path.write_bytes(b"II*\x00 this is not a tiff")
    reader = get_tiff_reader(str(path))
    assert reader is not None  # a TIFF: the reader claims it and explains what is wrong
    with pytest.raises(InputError) as err:
        reader(str(path))
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "not a readable TIFF" in msg and "re-export" in msg, msg


def test_writer_round_trip(tmp_path):
    """A layer saved by the plugin's writer comes back with its pixel size (OME, in nm), settings,
    colour map, display range and units, whatever the file is called."""
    from napari_mollifier._napari._reader import read_tiff
    from napari_mollifier._napari._writer import pixel_size_from_meta, write_rate_map

    rng = np.random.default_rng(1)
    data = rng.random((48, 40)).astype(np.float64) * 0.004
    data[:5] = np.nan
    settings = InferenceSettings(steps=11).model_dump()
    meta = {
        "scale": (20.0, 20.0),
        "units": ("nanometer", "nanometer"),
        "name": "c gamma_ac",
        "colormap": {"name": "viridis"},
        "contrast_limits": [0.001, 0.003],
        "metadata": {"settings": settings, "step": 11, "units": "rates in 1/tau"},
    }
    (out,) = write_rate_map(str(tmp_path / "renamed"), data, meta)
    assert out.endswith("renamed.tif")
    with tifffile.TiffFile(out) as tif:
        assert tif.asarray().dtype == np.float32
        assert 'PhysicalSizeX="20.0" PhysicalSizeXUnit="nm"' in tif.ome_metadata
    ((back, kw, kind),) = read_tiff(out)
    np.testing.assert_array_equal(back, data.astype(np.float32))
    assert kw["scale"] == (20.0, 20.0) and kw["units"] == ("nm", "nm")
    assert kw["colormap"] == "viridis" and kw["contrast_limits"] == (0.001, 0.003)
    assert kw["metadata"]["settings"] == settings and kw["metadata"]["step"] == 11
    assert kw["metadata"]["units"] == "rates in 1/tau" and kw["metadata"]["map"] == "gamma_ac"
    # A map written by `mollifier infer` (no display stored) and renamed: its map's style.
    path = write_tiff(tmp_path / "lambda copy.tif", data, 20.0, metadata={"map": "lambda"})
    ((_, kw2, _),) = read_tiff(str(path))
    assert kw2["colormap"] == "turbo" and kw2["contrast_limits"][1] < 0.005
    assert pixel_size_from_meta({"scale": (1.0, 0.02), "units": ("µm", "µm")}) == pytest.approx(20.0)
    assert (
        pixel_size_from_meta({"scale": (1.0, 1.0), "units": ("pixel", "pixel")}) is None
    )  # napari's default
    assert pixel_size_from_meta({"scale": (8.0, 8.0), "units": ("pixel", "pixel")}) == 8.0
    with pytest.raises(ValueError, match="2-D"):
        write_rate_map(str(tmp_path / "x.tif"), np.zeros((2, 4, 4)), meta)


def test_localisation_reader(tmp_path):
    from napari_mollifier._napari._reader import get_localisations_reader
    from napari_mollifier._samples import sample_images_dir

    table = sample_images_dir() / "nucleus1_localisations.csv"
    reader = get_localisations_reader(str(table))
    ((img, kw, kind),) = reader(str(table))
    n = sum(1 for _ in open(table)) - 1
    assert kind == "image" and img.sum() == n and kw["metadata"]["n_localisations"] == n
    # Rendered over the table's bounding box plus a margin; translate puts pixel centres at
    # origin + (i + 1/2) x pixel size in the table's nm coordinates.
    oy, ox = kw["metadata"]["origin_nm"]
    assert kw["scale"] == (10.0, 10.0) and kw["translate"] == (oy + 5.0, ox + 5.0)
    ((coarse, kw20, _),) = reader(str(table), pixel_size_nm=20.0)
    assert coarse.sum() == n and kw20["scale"] == (20.0, 20.0) and coarse.shape[0] < img.shape[0]
    other = tmp_path / "points.csv"
    other.write_text("axis-0,axis-1\n1,2\n")
    assert get_localisations_reader(str(other)) is None  # not a localisation table: another reader's
    um = tmp_path / "um.csv"
    um.write_text("x [µm],y [µm]\n" + "\n".join(f"{i * 0.01},{i * 0.02}" for i in range(200)))
    ((dens, kw_um, _),) = get_localisations_reader(str(um))(str(um))  # a stated unit is converted
    assert dens.sum() == pytest.approx(200, rel=1e-6) and kw_um["metadata"]["origin_nm"][1] < 0


def test_sample_data_layers():
    from napari_mollifier._napari._sample_data import nucleus2

    layers = nucleus2()
    names = [kw["name"] for _, kw, _ in layers]
    assert names == [
        "nucleus2",
        "nucleus2 intensity",
        "nucleus2 gamma_me true",
        "nucleus2 gamma_ac true",
        "nucleus2 nucleus mask",
    ]
    kinds = [k for _, _, k in layers]
    assert kinds == ["image"] * 4 + ["labels"]
    assert all(kw["scale"] == (10.0, 10.0) for _, kw, _ in layers)
    phi, kw, _ = layers[0]
    assert kw["metadata"]["input"] == "fraction" and 0 <= phi.min() and phi.max() <= 1
    truth = layers[2][0]
    assert truth.shape == phi.shape and np.nanmax(truth) > 0


# ------------------------------------------------------------------ batch
def test_batch_skips_a_corrupt_file_and_writes_summary(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    write_nucleus(src, "a", seed=1)
    write_nucleus(src, "b", seed=2)
    (src / "c_phi.tif").write_bytes(b"II*\x00 broken")
    (src / "c_mask.tif").write_bytes((src / "a_mask.tif").read_bytes())
    images = find_images(src, "*_phi.tif")
    assert [p.name for p in images] == ["a_phi.tif", "b_phi.tif", "c_phi.tif"]
    assert sibling_mask(images[0]).name == "a_mask.tif"
    gen = run_batch(images, out, mask=sibling_mask, input="fraction", settings=SETTINGS)
    events = []
    with pytest.raises(StopIteration) as stop:
        while True:
            events.append(next(gen))
    results = stop.value.value
    assert [(e[0], e[1]) for e in events] == [(0, 3), (0, 3), (1, 3), (1, 3), (2, 3), (2, 3)]
    assert [r.status for r in results] == ["ok", "ok", "failed"]
    assert "not a readable TIFF" in results[2].reason and "c_phi.tif" in results[2].reason
    for stem in ("a_phi", "b_phi"):
        for suffix in ("gamma_me", "gamma_ac", "lambda", "phi", "mask"):
            assert (out / f"{stem}_{suffix}.tif").exists()
        rec = json.loads((out / f"{stem}.json").read_text())
        assert rec["settings"]["steps"] == 30
    assert not list(out.glob("c_phi_*"))
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [r["status"] for r in rows] == ["ok", "ok", "failed"]
    assert float(rows[0]["gamma_me_mean"]) == pytest.approx(results[0].summary["gamma_me"]["mean"], rel=1e-5)
    assert rows[2]["reason"] == results[2].reason and rows[2]["gamma_me_mean"] == ""


def test_batch_cancel_lists_files_not_run(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    write_nucleus(src, "a")
    write_nucleus(src, "b")
    cancel = threading.Event()
    cancel.set()
    gen = run_batch(
        find_images(src, "*_phi.tif"),
        out,
        mask=sibling_mask,
        input="fraction",
        settings=SETTINGS,
        cancel=cancel,
    )
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert [r.status for r in stop.value.value] == ["not run", "not run"]
    assert [r["status"] for r in csv.DictReader(open(out / "summary.csv"))] == ["not run", "not run"]


def test_plugin_compute_modules_import_no_gui():
    """Readers, writer, sample data and the fit worker are usable without napari or Qt."""
    import os
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "import napari_mollifier._napari._reader, napari_mollifier._napari._writer\n"
        "import napari_mollifier._napari._sample_data, napari_mollifier._napari._fit\n"
        "import napari_mollifier._napari._render, napari_mollifier.batch\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"},
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    gui = [
        m
        for m in loaded
        if m.split(".")[0] in ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui")
    ]
    assert not gui, gui
