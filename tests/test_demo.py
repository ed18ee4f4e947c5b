"""``mollifier demo``: the outputs named after each nucleus and the batch's summary.csv (short fits)."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import pytest
from _batch_data import FAST
from _plugin_data import write_nucleus

from napari_mollifier.batch import SUMMARY_COLUMNS


def test_demo_writes_summary_csv_and_names_outputs_after_the_nucleus(tmp_path, monkeypatch, one_thread):
    from napari_mollifier.cli import _infer

    samples, out = tmp_path / "samples", tmp_path / "demo"
    for k in range(2):  # nucleus00_phi.tif + nucleus00_mask.tif, ...
        write_nucleus(samples, f"nucleus0{k}", size=64, seed=1 + k)
    monkeypatch.setattr(_infer, "demo_settings", lambda device="auto": FAST)
    rc = _infer._cmd_demo(SimpleNamespace(out=str(out), samples=str(samples), device="cpu"))
    assert rc == 0
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if "_phi_" in n], names  # no nucleus00_phi_phi.tif
    for stem in ("nucleus00", "nucleus01"):
        for suffix in ("_gamma_me.tif", "_gamma_ac.tif", "_lambda.tif", "_phi.tif", ".json", "_overview.png"):
            assert f"{stem}{suffix}" in names
    with open(out / "summary.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert tuple(reader.fieldnames) == SUMMARY_COLUMNS
    assert [r["file"] for r in rows] == [str(samples / f"nucleus0{k}_phi.tif") for k in (0, 1)]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert all(float(r["gamma_me_mean"]) > 0 and r["verdict"] for r in rows)
    assert rows[0]["outputs"] == str(out / "nucleus00.json")


def test_demo_refuses_to_write_into_the_samples_folder(tmp_path):
    from napari_mollifier.cli import _infer

    with pytest.raises(SystemExit, match="is the samples folder"):
        _infer._cmd_demo(SimpleNamespace(out=str(tmp_path), samples=str(tmp_path), device="cpu"))
