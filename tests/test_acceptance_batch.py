"""Batch acceptance: 20 simulated nuclei and 3 corrupt files on 2 local dask workers.

All good files are written, the 3 corrupt ones are reported in summary.csv, the exit status is
non-zero, and a re-run skips every finished file. Prints the figures (``pytest -s``).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest
import torch
from _batch_data import nucleus, write_corrupt, write_nuclei

from napari_mollifier.cli import main

N_GOOD, SIZE, STEPS = 20, 96, 60


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "summary.csv", newline="") as fh:
        return {Path(r["file"]).name: r for r in csv.DictReader(fh)}


@pytest.mark.slow
def test_batch_of_20_with_3_corrupt_files_on_2_workers(tmp_path, capsys):
    torch.set_flush_denormal(True)
    nucleus(SIZE)  # simulate once, outside the timed runs
    folder, out = tmp_path / "in", tmp_path / "out"
    good = write_nuclei(folder, N_GOOD, size=SIZE)
    bad = write_corrupt(folder, size=SIZE)
    argv = [
        "batch",
        str(folder),
        "--out",
        str(out),
        "--pattern",
        "*_phi.tif",
        "--input",
        "fraction",
        "--mask",
        "sibling",
        "--steps",
        str(STEPS),
        "--device",
        "cpu",
        "--workers",
        "2",
    ]

    t0 = time.perf_counter()
    rc = main(argv)
    first_s = time.perf_counter() - t0
    err = capsys.readouterr().err
    rows = _rows(out)
    assert rc == 1
    assert len(rows) == N_GOOD + 3
    assert all(rows[p.name]["status"] == "ok" for p in good)
    for p in good:
        for key in ("gamma_me", "gamma_ac", "lambda", "phi", "mask"):
            assert (out / f"{p.stem}_{key}.tif").is_file()
        assert (out / f"{p.stem}.json").is_file()
    for kind, p in bad.items():
        r = rows[p.name]
        assert r["status"] == "failed" and p.name in r["reason"] and "\n" not in r["reason"], kind
        assert f"error: {r['reason']}" in err
        assert not list(out.glob(f"{p.stem}_*"))
    assert not list(out.glob(".*.tmp"))  # no temporary files left behind

    t0 = time.perf_counter()
    rc2 = main(argv)
    second_s = time.perf_counter() - t0
    rows2 = _rows(out)
    assert rc2 == 1
    assert all(rows2[p.name]["status"] == "skipped" for p in good)
    assert all(rows2[p.name]["status"] == "failed" for p in bad.values())
    assert [rows2[p.name]["gamma_me_mean"] for p in good] == [rows[p.name]["gamma_me_mean"] for p in good]
    fit_s = sum(float(rows[p.name]["runtime_s"]) for p in good)
    print(
        f"\nacceptance: {N_GOOD} good + 3 corrupt files ({SIZE}x{SIZE}, {STEPS} steps) on 2 local workers: "
        f"first run {first_s:.1f} s (exit {rc}; {N_GOOD} ok, 3 failed; sum of fit times {fit_s:.1f} s), "
        f"re-run {second_s:.1f} s (exit {rc2}; {N_GOOD} skipped, 3 failed)"
    )
