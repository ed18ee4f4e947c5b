"""Saving results and settings round trips: File > Save / Open of rate maps (the plugin's writer
and reader, napari's built-in writer), the fit widget's "Save all…" (the files `mollifier infer`
writes, maps as OME-TIFF in nm), "Load settings…" and the remembered settings, and the CLI's
``--settings-from`` / ``--config`` / ``mollifier config``.

GUI tests run under a display (``xvfb-run``); the one fit is the direct read-out of an 80² nucleus.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

pytest.importorskip("napari", reason="napari is not installed (dev extra)")

from _plugin_data import PIXEL_NM, tiny_nucleus, write_nucleus  # noqa: E402

from napari_mollifier.config import InferenceSettings  # noqa: E402
from napari_mollifier.io import write_json, write_tiff  # noqa: E402

PLUGIN = "napari-mollifier"
#: Settings unlike the defaults in every field the form shows.
EARLIER = InferenceSettings(
    method="pinn",
    arch="mlp",
    optimizer="soap",
    steps=77,
    learning_rate=0.002,
    kernel_radius_nm=12.0,
    rate_scale_nm=400.0,
    edge_margin_nm=60.0,
    residual_tolerance=0.4,
    smoothness=0.05,
    noise_floor=0.02,
    psf_sigma_nm=20.0,
    calibration="plateaus",
    euchromatin_level=100.0,
    heterochromatin_level=300.0,
    init_smoothing_px=1.5,
    precision="float64",
    uncertainty="bootstrap",
    bootstrap_fits=4,
    seed=3,
    device="cpu",
    report_every=7,
)


def _result_files(stem: str) -> set[str]:
    """The files of one result without sd maps (uncertainty "none"), as `mollifier infer
    --overview` and the widget's "Save all…" both write them."""
    maps = ("gamma_me", "gamma_ac", "lambda", "phi", "mask")
    return {f"{stem}_{k}.tif" for k in maps} | {f"{stem}.json", f"{stem}_overview.png", f"{stem}_rates.csv"}


def _notifications():
    from napari.utils.notifications import notification_manager

    return notification_manager.records


# ------------------------------------------------------------------ File > Save / Open
def _save_and_open_a_map(viewer, layer, tmp_path) -> None:
    """File > Save of a rate-map layer with napari's built-in writer and with the plugin's, each
    opened again with the plugin's reader."""
    import napari

    # napari's built-in writer loses the pixel size: the plugin's reader opens it all the same and
    # says what is missing, in one notification (no exception).
    plain = tmp_path / "builtin.tif"
    assert napari.save_layers(str(plain), [layer], plugin="napari") == [str(plain)]
    before = len(_notifications())
    (opened,) = viewer.open(str(plain), plugin=PLUGIN)
    np.testing.assert_array_equal(opened.data, layer.data)
    said = [str(n.message) for n in _notifications()[before:] if str(plain) in str(n.message)]
    assert len(said) == 1 and "no pixel size" in said[0] and "'Infer rate maps'" in said[0], said
    # The plugin's writer, to a name that says nothing of the map: all comes back.
    layer.contrast_limits = limits = (float(np.nanpercentile(layer.data, 20)), float(np.nanmax(layer.data)))
    renamed = tmp_path / "copy of the result.tif"
    assert napari.save_layers(str(renamed), [layer], plugin=PLUGIN) == [str(renamed)]
    with tifffile.TiffFile(renamed) as tif:
        assert re.search(r'PhysicalSizeX="10(\.0)?" PhysicalSizeXUnit="nm"', tif.ome_metadata)
    (back,) = viewer.open(str(renamed), plugin=PLUGIN)
    assert back.colormap.name == layer.colormap.name == "viridis"
    assert tuple(back.contrast_limits) == pytest.approx(limits)
    assert tuple(back.scale) == tuple(layer.scale) and [str(u) for u in back.units] == ["nanometer"] * 2
    for key in ("settings", "units", "map", "pixel_size_nm"):
        assert back.metadata[key] == layer.metadata[key], key


# ------------------------------------------------------------------ the fit widget
@pytest.mark.gui
def test_save_all_file_save_load_settings_and_remembered_settings(
    make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch
):
    import napari

    from napari_mollifier._napari import _save
    from napari_mollifier._napari._fit_widget import FitWidget

    viewer = make_napari_viewer_proxy()
    phi, mask, _ = tiny_nucleus()
    viewer.add_image(phi, name="cell 1", scale=(PIXEL_NM, PIXEL_NM), units=("nm", "nm"))
    viewer.add_labels(mask, name="cell mask", scale=(PIXEL_NM, PIXEL_NM))
    w = FitWidget(viewer)
    qtbot.addWidget(w)
    assert not w.save_all_btn.isEnabled()  # nothing to save before a fit
    w.input_kind.setCurrentIndex(w.input_kind.findData("fraction"))
    w.mask_combo.setCurrentText("cell mask")
    w.form.set_values(method="direct", device="cpu", seed=5, rate_scale_nm=450.0, uncertainty="none")
    w.start()
    qtbot.waitUntil(
        lambda: w.worker is None and w.state.status not in ("running", "stopping"), timeout=60_000
    )
    assert w.state.status == "finished" and w.save_all_btn.isEnabled()

    # Save all: the files of `mollifier infer`, maps as OME-TIFF with the pixel size in nm.
    out = tmp_path / "saved"
    monkeypatch.setattr(_save, "choose_folder", lambda parent: str(out))
    w.save_all_btn.click()
    names = {p.name for p in out.iterdir()}
    fit = w.fit
    # (uncertainty "none": no sd maps, and no hidden sd layers to create)
    expected = _result_files("cell_1")
    assert names == expected
    assert f"Saved {len(expected)} files" in w.status_label.text()
    with tifffile.TiffFile(out / "cell_1_gamma_me.tif") as tif:
        assert tif.is_ome
        pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
        assert pixels["PhysicalSizeX"] == pixels["PhysicalSizeY"] == PIXEL_NM
        assert pixels["PhysicalSizeXUnit"] == pixels["PhysicalSizeYUnit"] == "nm"
        np.testing.assert_array_equal(tif.asarray(), fit.gamma_me.astype(np.float32))
    (row,) = list(csv.DictReader(open(out / "cell_1_rates.csv")))
    inside = fit.analysed
    assert row["region"] == "nucleus" and int(row["analysed_pixels"]) == inside.sum()
    assert float(row["gamma_me_mean"]) == pytest.approx(np.mean(fit.gamma_me[inside]), rel=1e-5)
    assert float(row["lambda_median"]) == pytest.approx(np.median(fit.lam[inside]), rel=1e-5)
    assert float(row["gamma_ac_std"]) == pytest.approx(np.std(fit.gamma_ac[inside]), rel=1e-5)
    assert row["gamma_me_median_rel_sd"] == ""  # no sd maps
    record = json.loads((out / "cell_1.json").read_text())
    assert row["status"] == record["status"] == "ok" and row["verdict"] == record["verdict"] != ""
    assert record["settings"] == fit.settings and record["pixel_size_nm"] == PIXEL_NM

    # A folder that cannot be made: one line in the panel, nothing raised.
    blocked = tmp_path / "a file"
    blocked.write_text("x")
    monkeypatch.setattr(_save, "choose_folder", lambda parent: str(blocked / "sub"))
    w.save_all_btn.click()
    assert w.status_label.text().startswith("Could not save:") and str(blocked) in w.status_label.text()

    # File > Save / Open of the fit's Gamma_ac layer.
    _save_and_open_a_map(viewer, viewer.layers["cell 1 gamma_ac"], tmp_path)

    # The four maps selected together: the plugin's writer is napari's first choice, one file each.
    from napari.plugins._npe2 import file_extensions_string_for_layers

    keys = ("gamma_me", "gamma_ac", "lambda", "phi_hat")
    four = [viewer.layers[f"cell 1 {k}"] for k in keys]
    assert file_extensions_string_for_layers(four)[1][0].command == "napari-mollifier.write_rate_map_layers"
    written = napari.save_layers(str(tmp_path / "maps.tif"), four, plugin=PLUGIN)
    assert sorted(Path(p).name for p in written) == sorted(f"maps_cell_1_{k}.tif" for k in keys)
    (back,) = viewer.open(str(tmp_path / "maps_cell_1_lambda.tif"), plugin=PLUGIN)
    assert back.colormap.name == "turbo" and back.metadata["settings"] == fit.settings

    # A new widget starts from the settings of the last fit (kept in the test's own folder).
    from napari_mollifier._napari._last_settings import last_settings_path

    assert json.loads(last_settings_path().read_text())["seed"] == 5
    assert str(last_settings_path()).startswith(os.environ["NAPARI_MOLLIFIER_CONFIG_DIR"])
    w2 = FitWidget(viewer)
    qtbot.addWidget(w2)
    assert w2.form.values() == w.form.values() and w2.form.values()["seed"] == 5

    # Load settings: from S.json and from a map TIFF of an earlier result, into the form.
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    write_json(earlier / "old.json", {"status": "ok", "settings": EARLIER.model_dump()})
    write_tiff(
        earlier / "old_lambda.tif",
        phi,
        PIXEL_NM,
        metadata={"map": "lambda", "settings": EARLIER.model_dump()},
    )
    for name in ("old.json", "old_lambda.tif"):
        w2.form.set_values(
            **{k: v for k, v in InferenceSettings().model_dump().items() if k in w2.form.widgets}
        )
        monkeypatch.setattr(_save, "choose_settings_file", lambda parent, n=name: str(earlier / n))
        w2.load_settings_btn.click()
        assert w2.form.settings() == EARLIER, name
        assert f"Loaded the settings of {name}" in w2.status_label.text()
        assert (
            "Not in this form" not in w2.status_label.text()
        )  # its comparison switches are at their defaults
    monkeypatch.setattr(_save, "choose_settings_file", lambda parent: str(earlier / "old_lambda.tif.missing"))
    w2.load_settings_btn.click()
    assert "Could not load settings" in w2.status_label.text() and "--" not in w2.status_label.text()
    assert w2.form.settings() == EARLIER  # a failed load leaves the form alone


# ------------------------------------------------------------------ the CLI
def _cli_settings(argv):
    from napari_mollifier.cli._common import settings_from_args
    from napari_mollifier.cli._parser import build_parser

    args = build_parser().parse_args(["infer", "cell.tif", "--out", "o", *argv])
    return settings_from_args(args, "infer")


def test_settings_from_and_config_precedence(tmp_path):
    """defaults < --settings-from (an earlier result) < --config < the options on the command line."""
    sjson = write_json(tmp_path / "old.json", {"status": "ok", "settings": EARLIER.model_dump()})
    tif = write_tiff(
        tmp_path / "old_gamma_me.tif",
        np.random.default_rng(0).random((40, 40)),
        10.0,
        metadata={"settings": EARLIER.model_dump()},
    )
    assert _cli_settings(["--settings-from", str(sjson)]) == EARLIER
    assert _cli_settings(["--settings-from", str(tif)]) == EARLIER
    config = tmp_path / "run.toml"
    config.write_text('steps = 500\nseed = 11\nrate_scale_nm = 600.0\narch = "grid"\noptimizer = "adam"\n')
    s = _cli_settings(["--settings-from", str(sjson), "--config", str(config), "--seed", "21"])
    assert (s.steps, s.seed, s.rate_scale_nm, s.arch) == (500, 21, 600.0, "grid")
    assert s.psf_sigma_nm == EARLIER.psf_sigma_nm and s.uncertainty == EARLIER.uncertainty
    # JSON and YAML configuration files, a [settings] table
    (tmp_path / "run.json").write_text(json.dumps({"steps": 9, "network_width": 64}))
    assert _cli_settings(["--config", str(tmp_path / "run.json")]).network_width == 64
    (tmp_path / "run.yaml").write_text("settings:\n  steps: 8\n  uncertainty: none\n")
    s = _cli_settings(["--config", str(tmp_path / "run.yaml"), "--steps", "4"])
    assert (s.steps, s.uncertainty) == (4, "none")
    # Bad files: one line naming the file and what is wrong.
    bad = tmp_path / "bad.toml"
    bad.write_text("stepz = 3\n")
    with pytest.raises(SystemExit) as err:
        _cli_settings(["--config", str(bad)])
    assert (
        str(bad) in str(err.value)
        and "unknown setting 'stepz'" in str(err.value)
        and "\n" not in str(err.value)
    )
    bad.write_text("steps = -3\n")
    with pytest.raises(SystemExit, match=r"invalid setting 'steps'"):
        _cli_settings(["--config", str(bad)])


def test_infer_writes_the_files_of_save_all_with_the_settings_of_an_earlier_result(tmp_path):
    """`mollifier infer --overview` writes what "Save all…" writes (maps as OME-TIFF in nm, the
    rates table), and `--settings-from` one of its maps repeats its settings."""
    from napari_mollifier.cli import main

    phi, mask = write_nucleus(tmp_path / "in", "cell")
    common = ["--input", "fraction", "--mask", str(mask), "--quiet"]
    first = ["--overview", "--method", "direct", "--uncertainty", "none", "--seed", "4", "--device", "cpu"]
    assert main(["infer", str(phi), "--out", str(tmp_path / "a"), *common, *first]) == 0
    assert {p.name for p in (tmp_path / "a").iterdir()} == _result_files("cell_phi")
    with tifffile.TiffFile(tmp_path / "a" / "cell_phi_gamma_ac.tif") as tif:
        pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
        assert (pixels["PhysicalSizeX"], pixels["PhysicalSizeXUnit"]) == (PIXEL_NM, "nm")
    (row,) = list(csv.DictReader(open(tmp_path / "a" / "cell_phi_rates.csv")))
    record = json.loads((tmp_path / "a" / "cell_phi.json").read_text())
    assert float(row["gamma_me_mean"]) == pytest.approx(record["summary"]["gamma_me"]["mean"], rel=1e-5)
    again = ["--settings-from", str(tmp_path / "a" / "cell_phi_lambda.tif")]
    assert main(["infer", str(phi), "--out", str(tmp_path / "b"), *common, *again]) == 0
    assert json.loads((tmp_path / "b" / "cell_phi.json").read_text())["settings"] == record["settings"]


def test_mollifier_config_writes_every_field(tmp_path, capsys):
    """`mollifier config` writes a TOML file with every field of the settings model, which
    `--config` reads back to the same settings (here an earlier result's)."""
    from napari_mollifier.cli import main

    sjson = write_json(tmp_path / "old.json", {"settings": EARLIER.model_dump()})
    out = tmp_path / "all.toml"
    assert main(["config", "--from", str(sjson), "--out", str(out)]) == 0
    text = out.read_text()
    for name in InferenceSettings.model_fields:
        assert re.search(rf"^#? ?{name} =", text, re.MULTILINE), name
    assert _cli_settings(["--config", str(out)]) == EARLIER
    assert main(["config"]) == 0
    assert "steps = 1200" in capsys.readouterr().out
