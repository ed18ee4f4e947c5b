"""`mollifier batch` and napari_mollifier.batch: dask backend, resume, failures, summary.csv.

Small simulated nuclei (64^2, 30 steps, one CPU thread) keep each test within ~20 s; most of a
dask test's time is starting the worker processes.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from _batch_data import FAST, write_corrupt, write_nuclei

from napari_mollifier.batch import (
    batch_key,
    completed_result,
    find_images,
    infer_file,
    run_batch,
    sibling_mask,
)
from napari_mollifier.cli import main

MAPS = ("gamma_me", "gamma_ac", "lambda", "phi", "mask")


pytestmark = pytest.mark.usefixtures("one_thread")


def _drain(gen):
    """Run a run_batch generator to its end; returns (yielded items, returned results)."""
    items = []
    while True:
        try:
            items.append(next(gen))
        except StopIteration as stop:
            return items, stop.value


def _summary(out: Path) -> dict[str, dict]:
    with open(out / "summary.csv", newline="") as fh:
        return {Path(r["file"]).name: r for r in csv.DictReader(fh)}


def _maps(out: Path, stem: str) -> dict[str, np.ndarray]:
    return {k: tifffile.imread(out / f"{stem}_{k}.tif") for k in MAPS}


def test_dask_workers_give_the_sequential_maps_exactly(tmp_path):
    images = write_nuclei(tmp_path / "in", 2)
    seq, dist = tmp_path / "seq", tmp_path / "dask"
    _, r_seq = _drain(run_batch(images, seq, mask=sibling_mask, input="fraction", settings=FAST))
    items, r_dist = _drain(
        run_batch(images, dist, mask=sibling_mask, input="fraction", settings=FAST, workers=2)
    )
    assert [r.status for r in r_seq] == ["ok"] * 2 and [r.status for r in r_dist] == ["ok"] * 2
    assert sorted(i for i, _, _ in items) == [0, 1]  # one result per file, none twice
    for p in images:
        a, b = _maps(seq, p.stem), _maps(dist, p.stem)
        for k in MAPS:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{p.name} {k}")
        ja, jb = (json.loads((d / f"{p.stem}.json").read_text()) for d in (seq, dist))
        assert ja["summary"] == jb["summary"] and ja["batch"]["key"] == jb["batch"]["key"]
    # the files are different nuclei (rotations), so equal maps are not a trivial match
    assert not np.array_equal(_maps(seq, images[0].stem)["phi"], _maps(seq, images[1].stem)["phi"])


def test_resume_skips_only_files_done_with_the_same_settings(tmp_path):
    images = write_nuclei(tmp_path / "in", 3)
    out = tmp_path / "out"
    kw = dict(mask=sibling_mask, input="fraction", settings=FAST, skip_existing=True)
    _, first = _drain(run_batch(images, out, **kw))
    assert [r.status for r in first] == ["ok"] * 3
    stamp = {p.stem: (out / f"{p.stem}_gamma_me.tif").stat().st_mtime_ns for p in images}

    # unchanged: everything skipped, summary keeps the means of the earlier run
    _, again = _drain(run_batch(images, out, **kw))
    assert [r.status for r in again] == ["skipped"] * 3
    assert [r.summary["gamma_me"]["mean"] for r in again] == [r.summary["gamma_me"]["mean"] for r in first]
    assert {p.stem: (out / f"{p.stem}_gamma_me.tif").stat().st_mtime_ns for p in images} == stamp
    rows = _summary(out)
    assert [rows[p.name]["status"] for p in images] == ["skipped"] * 3
    assert rows[images[0].name]["gamma_me_mean"] == f"{first[0].summary['gamma_me']['mean']:.6g}"

    # a changed input file, a lost output and a changed mask are redone; the rest skipped
    phi = tifffile.imread(images[0])
    tifffile.imwrite(
        images[0], phi + np.float32(0.01), imagej=True, resolution=(100.0, 100.0), metadata={"unit": "um"}
    )
    (out / f"{images[1].stem}_lambda.tif").unlink()
    _, third = _drain(run_batch(images, out, **kw))
    assert [r.status for r in third] == ["ok", "ok", "skipped"]

    # other settings (more steps): nothing skipped; no resume: nothing skipped
    _, fourth = _drain(run_batch(images[2:], out, **dict(kw, settings=FAST.model_copy(update={"steps": 31}))))
    assert [r.status for r in fourth] == ["ok"]
    _, fifth = _drain(run_batch(images[:1], out, **dict(kw, skip_existing=False)))
    assert [r.status for r in fifth] == ["ok"]


def test_resume_key_ignores_device_but_not_seed(tmp_path):
    (p,) = write_nuclei(tmp_path, 1)
    k = batch_key(p, mask=sibling_mask, input="fraction", settings=FAST)["hash"]
    assert (
        batch_key(
            p, mask=sibling_mask, input="fraction", settings=FAST.model_copy(update={"device": "auto"})
        )["hash"]
        == k
    )
    assert (
        batch_key(p, mask=sibling_mask, input="fraction", settings=FAST.model_copy(update={"seed": 1}))[
            "hash"
        ]
        != k
    )
    assert batch_key(p, mask=None, input="fraction", settings=FAST)["hash"] != k
    assert batch_key(p, mask=sibling_mask, input="fraction", settings=FAST, pixel_size_nm=12.0)["hash"] != k


def test_cancelled_or_diverged_records_are_not_taken_as_done(tmp_path):
    (p,) = write_nuclei(tmp_path / "in", 1)
    out = tmp_path / "out"
    r = infer_file(p, out, mask=sibling_mask, input="fraction", settings=FAST)
    assert r.status == "ok"
    key = json.loads((out / f"{p.stem}.json").read_text())["batch"]["key"]
    assert completed_result(p, out, key).status == "skipped"
    assert completed_result(p, out, key, overview=True) is None  # the overview PNG is missing
    assert completed_result(p, out, "another key") is None
    rec = json.loads((out / f"{p.stem}.json").read_text())
    (out / f"{p.stem}.json").write_text(json.dumps(dict(rec, diverged={"step": 3, "message": "x"})))
    assert completed_result(p, out, key) is None
    (out / f"{p.stem}.json").write_text("{ truncated")
    assert completed_result(p, out, key) is None


def test_cli_batch_reports_bad_files_and_exits_nonzero(tmp_path, capsys):
    folder = tmp_path / "in"
    write_nuclei(folder, 2)
    bad = write_corrupt(folder)
    out = tmp_path / "out"
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
        "30",
        "--device",
        "cpu",
        "--workers",
        "0",
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    rows = _summary(out)
    assert len(rows) == 5
    for name, p in bad.items():
        row = rows[p.name]
        assert row["status"] == "failed" and p.name in row["reason"] and "\n" not in row["reason"], name
        assert f"error: {row['reason']}" in err
        assert not (out / f"{p.stem}_gamma_me.tif").exists()
    assert "truncated" in rows[bad["truncated"].name]["reason"]
    assert "RGB" in rows[bad["rgb"].name]["reason"] and "NaN" in rows[bad["nan"].name]["reason"]
    assert [rows[f"n0{k}_phi.tif"]["status"] for k in range(2)] == ["ok", "ok"]
    assert "2 done, 0 skipped" in err and "3 not done of 5" in err
    # second run: the good files are skipped, the bad ones fail again
    assert main(argv) == 1
    rows = _summary(out)
    assert [rows[f"n0{k}_phi.tif"]["status"] for k in range(2)] == ["skipped", "skipped"]
    assert sum(r["status"] == "failed" for r in rows.values()) == 3
    # only good files: exit status 0
    assert main(argv[:-2] + ["--workers", "0", "--pattern", "n*_phi.tif"]) == 0


def test_cli_batch_rejects_an_empty_selection(tmp_path):
    (tmp_path / "in").mkdir()
    with pytest.raises(SystemExit, match="no file matches"):
        main(["batch", str(tmp_path / "in"), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="not a folder"):
        main(["batch", str(tmp_path / "nope"), "--out", str(tmp_path / "out")])


def test_stop_before_start_lists_every_file_as_not_run(tmp_path):
    import threading

    images = write_nuclei(tmp_path / "in", 2)
    cancel = threading.Event()
    cancel.set()
    _, res = _drain(
        run_batch(images, tmp_path / "out", mask=sibling_mask, input="fraction", settings=FAST, cancel=cancel)
    )
    assert [r.status for r in res] == ["not run", "not run"]
    assert _summary(tmp_path / "out")[images[0].name]["status"] == "not run"


def test_a_batch_closed_midway_still_writes_its_summary(tmp_path):
    """napari's worker closes the generator when it is quit (its activity dock, the viewer closing):
    summary.csv still lists every file."""
    images = write_nuclei(tmp_path / "in", 2)
    gen = run_batch(images, tmp_path / "out", mask=sibling_mask, input="fraction", settings=FAST)
    assert next(gen) == (0, 2, str(images[0]))  # the first file is about to start
    gen.close()
    summary = _summary(tmp_path / "out")
    assert [summary[p.name]["status"] for p in images] == ["not run", "not run"]
    assert summary[images[0].name]["reason"] == "the batch was stopped before this file started"


def test_a_damaged_image_without_a_mask_beside_it_reports_the_read_error(tmp_path):
    (tmp_path / "bad_phi.tif").write_bytes(b"II*\x00 truncated")
    r = infer_file(tmp_path / "bad_phi.tif", tmp_path / "out", mask=sibling_mask, input="fraction")
    assert r.status == "failed" and "not a readable TIFF" in r.reason and "mask" not in r.reason
    phi = write_nuclei(tmp_path / "in", 1)[0]
    (tmp_path / "in" / "n00_mask.tif").unlink()  # a good image without its mask: the mask is missing
    r = infer_file(phi, tmp_path / "out", mask=sibling_mask, input="fraction")
    assert r.status == "failed" and "no mask file beside it" in r.reason


def test_dask_stop_reports_not_run_and_writes_nothing_new(tmp_path):
    import threading

    images = write_nuclei(tmp_path / "in", 3)
    cancel = threading.Event()
    cancel.set()  # stopped at once: each task sees the stop before it starts its fit
    _, res = _drain(
        run_batch(
            images,
            tmp_path / "out",
            mask=sibling_mask,
            input="fraction",
            settings=FAST.model_copy(update={"steps": 400}),
            cancel=cancel,
            workers=1,
        )
    )
    assert [r.status for r in res] == ["not run"] * 3
    assert not list((tmp_path / "out").glob("*_gamma_me.tif"))


def test_find_images_leaves_masks_out(tmp_path):
    write_nuclei(tmp_path, 2)
    assert [p.name for p in find_images(tmp_path)] == ["n00_phi.tif", "n01_phi.tif"]


def test_import_loads_no_dask():
    """dask is imported by the distributed backend only, not by the package, the batch module or the CLI."""
    import subprocess
    import textwrap

    code = textwrap.dedent("""
        import json, sys
        import napari_mollifier, napari_mollifier.batch, napari_mollifier.cli
        print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed'))))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_same_stem_in_two_folders_is_not_overwritten(tmp_path):
    a = write_nuclei(tmp_path / "a", 1)[0]
    b = write_nuclei(tmp_path / "b", 2)[0]  # also n00_phi.tif, other folder
    _, res = _drain(run_batch([a, b], tmp_path / "out", mask=sibling_mask, input="fraction", settings=FAST))
    assert [r.status for r in res] == ["ok", "failed"]
    assert "same name as" in res[1].reason and str(b) in res[1].reason
    assert json.loads((tmp_path / "out" / "n00_phi.json").read_text())["input"] == str(a)


def test_a_rewrite_that_stops_halfway_is_not_taken_for_the_earlier_result(tmp_path, monkeypatch):
    from napari_mollifier.inverse import _infer

    (p,) = write_nuclei(tmp_path / "in", 1)
    out = tmp_path / "out"
    kw = dict(mask=sibling_mask, input="fraction", settings=FAST)
    assert infer_file(p, out, **kw).status == "ok"
    real = _infer.write_tiff

    def crash_on_lambda(path, *a, **k):
        if str(path).endswith("_lambda.tif"):
            raise OSError("disk full")
        return real(path, *a, **k)

    monkeypatch.setattr(_infer, "write_tiff", crash_on_lambda)
    other = FAST.model_copy(update={"steps": 31})
    r = infer_file(p, out, **dict(kw, settings=other))
    assert r.status == "failed" and "disk full" in r.reason
    monkeypatch.undo()
    # gamma maps of the 31-step fit now sit beside nothing: the 30-step run is redone, not skipped
    assert infer_file(p, out, skip_existing=True, **kw).status == "ok"
