"""Automatic nucleus segmentation, and several nuclei in one image: one fit and one table row each."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from _plugin_data import PIXEL_NM, tiny_nucleus

from napari_mollifier.cli import main
from napari_mollifier.io import InputError, label_nuclei, segment_nucleus, write_tiff

SAMPLES = Path(__file__).resolve().parents[1] / "sample_images"
FAST = ["--steps", "30", "--device", "cpu", "--input", "fraction", "--quiet"]


def iou(a, b) -> float:
    a, b = np.asarray(a) != 0, np.asarray(b) != 0
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize(
    "image",
    sorted(p.name for p in SAMPLES.glob("nucleus*_*.tif") if "_true" not in p.name and "_mask" not in p.name),
)
def test_automatic_mask_covers_each_sample_nucleus(image):
    # phi is ~0 outside a nucleus and a few hundredths in its euchromatin: the mask must be the
    # whole nucleus (the simulator's support), not its heterochromatin domains.
    truth = tifffile.imread(SAMPLES / f"{image.split('_')[0]}_mask.tif")
    mask = segment_nucleus(tifffile.imread(SAMPLES / image).astype(float), name=image)
    assert iou(mask, truth) >= 0.95


def test_a_too_small_automatic_mask_names_the_mask_and_input_options():
    img = np.zeros((128, 128))
    img[50:70, 50:70] = 1.0
    with pytest.raises(InputError) as err:
        segment_nucleus(img, name="speck.tif")
    text = str(err.value)
    assert text.startswith("speck.tif: the automatic nucleus mask has only")
    assert "--mask" in text and "--input fraction" in text and "\n" not in text


def test_infer_on_a_folder_says_to_use_batch(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    assert main(["infer", str(folder), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"{folder}: is a directory: use `mollifier batch {folder}`" in err
    assert "file not found" not in err


def test_label_nuclei_finds_each_of_two_sample_nuclei():
    a, b = (tifffile.imread(SAMPLES / f"nucleus{k}_phi.tif").astype(float) for k in (1, 2))
    truth = [tifffile.imread(SAMPLES / f"nucleus{k}_mask.tif") != 0 for k in (1, 2)]
    labels = label_nuclei(np.hstack([a, b]), name="two.tif")
    assert labels.max() == 2 and labels.dtype == np.int32
    zeros = np.zeros_like(truth[0])
    assert iou(labels == 1, np.hstack([truth[0], zeros])) >= 0.95
    assert iou(labels == 2, np.hstack([zeros, truth[1]])) >= 0.95


def two_nuclei():
    """An image with two tiny simulated nuclei (labels 3 and 7) and a speck too small to fit (5)."""
    img = np.zeros((80, 176), np.float32)
    labels = np.zeros(img.shape, np.uint16)
    for (r, c), seed, label in (((4, 8), 1, 3), ((12, 100), 2, 7)):
        phi, mask, _ = tiny_nucleus(64, seed)
        img[r : r + 64, c : c + 64] = phi
        labels[r : r + 64, c : c + 64][mask != 0] = label
    labels[70:76, 80:86] = 5
    return img, labels


def _centroid(labels, label):
    rows, cols = np.nonzero(labels == label)
    return rows.mean(), cols.mean()


def test_infer_with_labels_fits_each_nucleus_and_writes_a_row_each(tmp_path, capsys):
    img, labels = two_nuclei()
    image = write_tiff(tmp_path / "cells_phi.tif", img, PIXEL_NM)
    lab = write_tiff(tmp_path / "cells_labels.tif", labels, PIXEL_NM)
    out = tmp_path / "out"
    rc = main(["infer", str(image), "--labels", str(lab), "--out", str(out), *FAST])
    err = capsys.readouterr().err
    assert rc == 1, err  # the speck cannot be fitted; the two nuclei are
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [r["label"] for r in rows] == ["3", "5", "7"]
    assert [r["status"] for r in rows] == ["ok", "failed", "ok"]
    assert "nucleus 5" in rows[1]["reason"] and "40x40" in rows[1]["reason"]
    for r in rows:
        assert r["file"] == str(image)
        assert (float(r["centroid_row_px"]), float(r["centroid_col_px"])) == pytest.approx(
            _centroid(labels, int(r["label"])), abs=0.01
        )
        assert int(r["area_px"]) == int((labels == int(r["label"])).sum())
    assert all(float(r["gamma_me_mean"]) > 0 and r["verdict"] for r in (rows[0], rows[2]))
    # The maps of every nucleus on the image grid: finite exactly where a fitted nucleus is analysed.
    assembled = tifffile.imread(out / "cells_phi_gamma_me.tif")
    analysed = tifffile.imread(out / "cells_phi_mask.tif")
    assert set(np.unique(analysed)) == {0, 3, 7}
    assert np.array_equal(np.isfinite(assembled), analysed != 0)
    assert np.all(np.isin(labels[analysed != 0], (3, 7)) & (labels[analysed != 0] == analysed[analysed != 0]))
    # Each nucleus' own maps are those of its crop, at the crop's place in the image.
    for label in (3, 7):
        rec = json.loads((out / f"cells_phi_nucleus{label}.json").read_text())
        r0, r1, c0, c1 = rec["nucleus"]["crop_px"]
        own = tifffile.imread(out / f"cells_phi_nucleus{label}_gamma_me.tif")
        assert own.shape == (r1 - r0, c1 - c0)
        here = analysed[r0:r1, c0:c1] == label
        np.testing.assert_array_equal(own[here], assembled[r0:r1, c0:c1][here])
    # the per-image record and table
    rec = json.loads((out / "cells_phi.json").read_text())
    assert rec["status"] == "failed" and [n["label"] for n in rec["nuclei"]] == [3, 5, 7]
    assert (out / "cells_phi_nuclei.csv").read_text().count("\n") == 4
    assert "nucleus 3 at (row" in err and "nuclei, one row each" in err


def test_batch_fits_the_nuclei_of_an_image_with_a_label_image_beside_it(tmp_path):
    img, labels = two_nuclei()
    labels[labels == 5] = 0
    folder = tmp_path / "in"
    folder.mkdir()
    write_tiff(folder / "cells_phi.tif", img, PIXEL_NM)
    write_tiff(folder / "cells_labels.tif", labels, PIXEL_NM)
    out = tmp_path / "out"
    args = ["batch", str(folder), "--out", str(out), "--workers", "0", *FAST]
    assert main(args) == 0
    (row,) = list(csv.DictReader((out / "summary.csv").open()))  # the label image is no input
    assert row["status"] == "ok" and "2 nuclei" in row["reason"]
    nuclei = list(csv.DictReader((out / "nuclei.csv").open()))
    assert [(n["file"].endswith("cells_phi.tif"), n["label"], n["status"]) for n in nuclei] == [
        (True, "3", "ok"),
        (True, "7", "ok"),
    ]
    # resumed: skipped, and the nuclei table still lists them
    assert main(args) == 0
    assert list(csv.DictReader((out / "summary.csv").open()))[0]["status"] == "skipped"
    assert len(list(csv.DictReader((out / "nuclei.csv").open()))) == 2


def test_a_label_image_that_does_not_fit_the_image_is_refused_with_the_fix():
    from napari_mollifier.inverse import read_labels

    img, labels = two_nuclei()
    with pytest.raises(InputError, match=r"cells labels: label image shape \(80, 170\) differs"):
        read_labels(labels[:, :170], img, name="cells")
    with pytest.raises(InputError, match="fractional values"):
        read_labels(labels * 0.5, img, name="cells")
    with pytest.raises(InputError, match="no nucleus"):
        read_labels(np.zeros_like(labels), img, name="cells")


def test_nuclei_after_a_stop_are_listed_as_not_run():
    import threading

    from napari_mollifier import infer_nuclei

    img, labels = two_nuclei()
    stop = threading.Event()
    stop.set()
    result = infer_nuclei(img, labels, pixel_size_nm=PIXEL_NM, input="fraction", cancel=stop)
    assert [(n.label, n.status, n.maps) for n in result.nuclei] == [
        (3, "not run", None),
        (5, "not run", None),
        (7, "not run", None),
    ]
    assert np.isnan(result.assembled("gamma_me")).all() and result.status == "not run"


def test_a_phi_image_records_its_kind_and_is_fitted_as_phi_without_flags(tmp_path):
    """The φ images this tool writes (the bundled samples, `mollifier simulate`) record
    ``input: fraction``; `infer` and `batch` without ``--input`` fit them as φ, other TIFFs as
    intensity, and ``--input`` still wins."""
    from napari_mollifier.io import recorded_input_kind, resolve_input_kind

    root = Path(__file__).resolve().parents[1] / "sample_images"
    assert recorded_input_kind(root / "nucleus2_phi.tif") == "fraction"
    assert recorded_input_kind(root / "nucleus2_intensity.tif") == "intensity"
    phi, mask, _ = tiny_nucleus(64)
    write_tiff(tmp_path / "p.tif", phi, PIXEL_NM, metadata={"input": "fraction"})
    write_tiff(tmp_path / "m.tif", mask, PIXEL_NM)
    tifffile.imwrite(tmp_path / "plain.tif", phi)
    assert recorded_input_kind(tmp_path / "plain.tif") is None
    assert resolve_input_kind(tmp_path / "plain.tif", None) == "intensity"
    assert resolve_input_kind(tmp_path / "p.tif", "intensity") == "intensity"
    out = tmp_path / "out"
    args = ["infer", str(tmp_path / "p.tif"), "--mask", str(tmp_path / "m.tif"), "--out", str(out)]
    main([*args, "--method", "direct", "--uncertainty", "none", "--device", "cpu", "--quiet"])
    rec = json.loads((out / "p.json").read_text())
    assert rec["preprocessing"]["normalisation"] == "none (input is phi)"
