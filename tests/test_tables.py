"""Localisation tables as input: rendered over their own extent (not from (0, 0)) in the CLI, the
batch and the plugin's reader, placed at their true position, with a notice when the automatic
mask leaves out many localisations."""

import json

import numpy as np
import pytest
import tifffile

from napari_mollifier.cli import main
from napari_mollifier.io import (
    RENDER_MARGIN_NM,
    InputError,
    load_input,
    read_localisations,
    render_table,
)
from napari_mollifier.simulate import THUNDERSTORM_HEADER, render_localisation_table, simulate_nucleus

OFFSET_X_NM = 30_000.0


def _write_table(path, x, y):
    lines = [",".join(f'"{h}"' for h in THUNDERSTORM_HEADER)]
    lines += [f"{i + 1},1,{a:.1f},{b:.1f},120,1000,15" for i, (a, b) in enumerate(zip(x, y))]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def nucleus_xy():
    sim = simulate_nucleus(128, rates="gradient", mask="circle", seed=3)
    t = render_localisation_table(sim.phi, sim.mask, 10.0, seed=3, per_pixel=1.0)
    return t[:, 2], t[:, 3]


@pytest.fixture(scope="module")
def shifted_table(tmp_path_factory, nucleus_xy):
    """The simulated cell moved +30 µm in x: rendered from (0, 0) it would be 3000 pixels wide."""
    x, y = nucleus_xy
    return _write_table(tmp_path_factory.mktemp("tables") / "cell.csv", x + OFFSET_X_NM, y)


def _expected_grid(x, y, px=10.0, margin=RENDER_MARGIN_NM):
    oy, ox = np.floor((y.min() - margin) / px) * px, np.floor((x.min() - margin) / px) * px
    shape = (int(np.floor((y.max() + margin - oy) / px)) + 1, int(np.floor((x.max() + margin - ox) / px)) + 1)
    return (oy, ox), shape


def test_render_table_spans_the_cell_plus_a_margin(shifted_table):
    x, y = read_localisations(shifted_table)
    r = render_table(shifted_table)
    origin, shape = _expected_grid(x, y)
    assert r.origin_nm == pytest.approx(origin) and r.data.shape == shape
    assert r.data.sum() == pytest.approx(len(x), rel=1e-6)  # every localisation is inside (blur kept)
    assert shape[1] < 250 and r.origin_nm[1] > OFFSET_X_NM - 600  # the cell's size, not 3000+ px
    coarse = render_table(shifted_table, 20.0)
    assert coarse.data.sum() == pytest.approx(len(x), rel=1e-6) and coarse.data.shape[1] < shape[1]
    with pytest.raises(InputError, match="probably a value in µm"):
        render_table(shifted_table, 0.01)


def test_cli_infers_from_a_table_over_its_bounding_box(shifted_table, tmp_path, capsys):
    out = tmp_path / "out"
    # What is tested here is the table's path to the maps; whether 20 steps determine the rates is
    # the status's verdict (tests/test_status.py): 0 (ok) or 1 (failed), never an input error.
    rc = main(["infer", str(shifted_table), "--out", str(out), "--steps", "20", "--device", "cpu"])
    assert rc in (0, 1) and "error:" not in capsys.readouterr().err
    x, y = read_localisations(shifted_table)
    origin, shape = _expected_grid(x, y)
    for key in ("gamma_me", "gamma_ac", "lambda", "phi", "mask"):
        assert tifffile.imread(out / f"cell_{key}.tif").shape == shape, key
    rec = json.loads((out / "cell.json").read_text())
    render = rec["preprocessing"]["render"]
    assert render["origin_nm"] == pytest.approx(list(origin)) and render["shape"] == list(shape)
    assert render["n_localisations"] == len(x) and rec["pixel_size_nm"] == 10.0
    assert "default render pixel size" in rec["preprocessing"]["pixel_size_source"]
    assert rec["preprocessing"]["localisations_in_mask"] > 0.8 and not rec["notices"]
    # --pixel-size is the render's pixel size
    out20 = tmp_path / "out20"
    args = ["infer", str(shifted_table), "--out", str(out20), "--pixel-size", "20", "--method", "direct"]
    assert main(args + ["--device", "cpu"]) in (0, 1)
    rec20 = json.loads((out20 / "cell.json").read_text())
    assert rec20["pixel_size_nm"] == 20.0 and rec20["preprocessing"]["pixel_size_source"].startswith(
        "argument"
    )


def test_plugin_reader_places_the_table_at_its_true_position(shifted_table, tmp_path):
    from napari_mollifier._napari._reader import get_localisations_reader, read_tiff

    ((img, kw, kind),) = get_localisations_reader(str(shifted_table))(str(shifted_table))
    x, y = read_localisations(shifted_table)
    (oy, ox), shape = _expected_grid(x, y)
    assert kind == "image" and img.shape == shape and img.sum() == len(x)
    assert kw["scale"] == (10.0, 10.0) and kw["translate"] == pytest.approx((oy + 5.0, ox + 5.0))
    assert kw["metadata"]["origin_nm"] == pytest.approx([oy, ox])
    # The pixel holding a localisation is drawn where that localisation is (world coordinates, nm).
    i, j = np.floor((y[0] - oy) / 10.0), np.floor((x[0] - ox) / 10.0)
    centre = np.array(kw["translate"]) + np.array(kw["scale"]) * (i, j)
    assert np.abs(centre - (y[0], x[0])).max() <= 5.0 + 1e-9
    # The CLI's maps of the table open at the same place.
    out = tmp_path / "maps"
    assert main(
        ["infer", str(shifted_table), "--out", str(out), "--method", "direct", "--device", "cpu"]
    ) in (
        0,
        1,
    )
    ((_, map_kw, _),) = read_tiff(str(out / "cell_gamma_me.tif"))
    assert map_kw["translate"] == pytest.approx(kw["translate"])


def test_low_coverage_mask_warns_in_the_cli_and_the_record(nucleus_xy, tmp_path, capsys):
    # The cell plus a sparse spread of localisations over 8 µm around it: the segmented nucleus
    # holds well under 80 % of them.
    x, y = nucleus_xy
    rng = np.random.default_rng(0)
    n = len(x)
    bx, by = rng.uniform(-3000, 5000, n), rng.uniform(-3000, 5000, n)
    table = _write_table(tmp_path / "spread.csv", np.r_[x, bx], np.r_[y, by])
    inp = load_input(table)
    assert inp.preprocessing["localisations_in_mask"] < 0.8
    (notice,) = inp.preprocessing["notices"]
    assert "keeps only" in notice and "--pixel-size" in notice and "\n" not in notice
    # A given mask is the user's choice: no notice.
    assert "notices" not in load_input(table, mask=inp.mask.astype(np.uint8)).preprocessing
    out = tmp_path / "out"
    rc = main(["infer", str(table), "--out", str(out), "--method", "direct", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc in (0, 1) and "keeps only" in err and "error:" not in err
    rec = json.loads((out / "spread.json").read_text())
    assert rec["preprocessing"]["notices"] == [notice] and notice in rec["notices"]


def test_batch_takes_tables_with_a_csv_pattern(shifted_table, tmp_path):
    out = tmp_path / "out"
    folder = shifted_table.parent
    args = ["batch", str(folder), "--pattern", "*.csv", "--out", str(out), "--workers", "0"]
    assert main(args + ["--method", "direct", "--device", "cpu", "--quiet"]) in (0, 1)
    row = (out / "summary.csv").read_text().splitlines()[1]
    assert "cell.csv" in row and (",ok," in row or ",failed," in row)
    assert (out / "cell_gamma_me.tif").exists()
