"""The CLI's progress bars, --quiet, and Ctrl-C: the first stops the fit and keeps its maps, the
batch marks the files it did not finish; both exit with status 130 and without a traceback."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_mollifier.cli import main
from napari_mollifier.cli._progress import FitProgress, TextBar
from napari_mollifier.inverse import ProgressEvent

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    for name, seed in (("a", 1), ("b", 2)):
        args = ["simulate", "--out", str(out), "--name", name, "--size", "128", "--mask", "circle"]
        assert main(args + ["--seed", str(seed)]) == 0
    return out


def _fit_args(sim_dir, out, steps):
    return [
        "--out",
        str(out),
        "--input",
        "fraction",
        "--mask",
        str(sim_dir / "a_mask.tif"),
        "--steps",
        str(steps),
        "--device",
        "cpu",
    ]


# --------------------------------------------------------------------------------------------
# the text bar
# --------------------------------------------------------------------------------------------


def test_text_bar_redraws_in_place_on_a_terminal():
    s = io.StringIO()
    bar = TextBar(100, label="f.tif", unit="steps", stream=s, inplace=True)
    for k in range(0, 101, 10):
        bar.update(k, f"loss {1 / (k + 1):.3g}", final=k == 100)
    text = s.getvalue()
    assert text.count("\r") == 11 and text.count("\n") == 1 and text.endswith("\n")
    assert "100/100 steps" in text and "~" in text and "left" in text


def test_text_bar_prints_a_line_every_tenth_off_a_terminal():
    s = io.StringIO()
    bar = TextBar(1000, unit="steps", stream=s, inplace=False)
    for k in range(0, 1001, 10):
        bar.update(k, final=k == 1000)
    lines = s.getvalue().splitlines()
    # the start, the first step (alive, not hung), then one line per 10 %
    assert 10 <= len(lines) <= 13, lines
    assert lines[0].startswith("[....") and "0/1000 steps" in lines[0]
    assert "1000/1000 steps" in lines[-1] and "\r" not in s.getvalue()


def test_fit_progress_shows_steps_and_loss():
    s = io.StringIO()
    fp = FitProgress("x.tif", 200, stream=s, inplace=False)
    for k in (50, 100, 150, 200):
        fp(ProgressEvent(k, 200, {"total": 2.5 / k}, 0.1 * k))
    fp(ProgressEvent(200, 200, {"total": 2.5 / 200}, 20.0, done=True))  # the end: no repeated line
    lines = s.getvalue().splitlines()
    assert [ln.split("] ")[1].split(",")[0] for ln in lines] == [
        f"{k}/200 steps" for k in (0, 50, 100, 150, 200)
    ]
    assert "loss 0.0125" in lines[-1]
    quiet = io.StringIO()
    fq = FitProgress("x.tif", 200, stream=quiet, quiet=True)
    fq(ProgressEvent(50, 200, {"total": 1.0}, 1.0))
    assert quiet.getvalue() == "" and fq.step == 50


# --------------------------------------------------------------------------------------------
# mollifier infer: progress and --quiet
# --------------------------------------------------------------------------------------------


def test_infer_prints_step_counts_and_quiet_silences_them(sim_dir, tmp_path, capsys):
    image = str(sim_dir / "a_phi.tif")
    assert main(["infer", image, *_fit_args(sim_dir, tmp_path / "o1", 100)]) == 0
    err = capsys.readouterr().err
    assert "a_phi.tif [" in err and "100/100 steps" in err and "loss " in err
    assert "50/100 steps" in err and ": ok in" in err
    assert main(["infer", image, *_fit_args(sim_dir, tmp_path / "o2", 100), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "steps" not in err and "[" not in err and ": ok in" in err  # the result line stays


def test_batch_in_process_shows_each_fit_and_quiet_silences_it(sim_dir, tmp_path, capsys):
    args = ["batch", str(sim_dir), "--pattern", "*_phi.tif", "--mask", "sibling", "--workers", "0"]
    args += ["--input", "fraction", "--steps", "50", "--device", "cpu"]
    assert main(args + ["--out", str(tmp_path / "o1")]) == 0
    err = capsys.readouterr().err
    assert "file 1/2 a_phi.tif [" in err and "file 2/2 b_phi.tif [" in err and "50/50 steps" in err
    assert "2/2 files, 2 ok" in err
    assert main(args + ["--out", str(tmp_path / "o2"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "steps" not in err and "files," not in err and "2 done" in err


# --------------------------------------------------------------------------------------------
# Ctrl-C
# --------------------------------------------------------------------------------------------


def _run_until_progress(args, *, timeout=240, signals=1):
    """Run ``mollifier ARGS`` in a subprocess; SIGINT after the first progress line with a loss."""
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("OMP_NUM_THREADS", "1")
    p = subprocess.Popen(
        [sys.executable, "-m", "napari_mollifier.cli", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    lines, t0 = [], time.monotonic()
    try:
        for line in p.stderr:
            lines.append(line)
            if "loss " in line:
                for k in range(signals):
                    if k:
                        time.sleep(0.05)
                    p.send_signal(signal.SIGINT)
                break
            assert time.monotonic() - t0 < timeout, "".join(lines)
        rest = p.stderr.read()
        rc = p.wait(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
    return rc, "".join(lines), rest


def test_ctrl_c_stops_infer_and_keeps_the_maps(sim_dir, tmp_path):
    out = tmp_path / "out"
    second = sim_dir / "b_phi.tif"
    args = ["infer", str(sim_dir / "a_phi.tif"), str(second), *_fit_args(sim_dir, out, 20000)]
    rc, before, after = _run_until_progress(args)
    assert rc == 130, before + after
    assert "Traceback" not in before + after
    # The progress bar may close first, at the step the maps are of (when that step was not shown yet).
    *bar, last = [ln for ln in after.splitlines() if ln.strip()]
    assert len(bar) <= 1 and last.startswith("mollifier infer: interrupted; wrote the maps of step ")
    assert "(cancelled)" in last and str(out) in last
    rec = json.loads((out / "a_phi.json").read_text())
    assert rec["status"] == "cancelled" and rec["cancelled"] is True
    assert 0 < rec["steps_done"] < 20000 and f"step {rec['steps_done']} " in last
    assert all(f" {rec['steps_done']}/20000 steps" in b for b in bar), bar
    mask = tifffile.imread(out / "a_phi_mask.tif") == 1
    for key in ("gamma_me", "gamma_ac", "lambda", "phi"):
        assert np.isfinite(tifffile.imread(out / f"a_phi_{key}.tif")[mask]).all(), key
    assert not (out / "b_phi.json").exists()  # the files left are not started
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_second_ctrl_c_aborts_without_a_traceback(sim_dir, tmp_path):
    args = ["infer", str(sim_dir / "a_phi.tif"), *_fit_args(sim_dir, tmp_path / "out", 20000)]
    rc, before, after = _run_until_progress(args, signals=2)
    assert rc == 130 and "Traceback" not in before + after
    # The second signal may land after the first has already stopped the fit and written its maps
    # (the progress bar then closes first, at the step the maps are of).
    *bar, last = [ln for ln in after.splitlines() if ln.strip()]
    assert len(bar) <= 1 and all("/20000 steps" in b for b in bar), bar
    assert last.startswith(("mollifier infer: aborted", "mollifier infer: interrupted"))


def test_ctrl_c_stops_an_in_process_batch_with_a_summary(sim_dir, tmp_path):
    out = tmp_path / "out"
    args = ["batch", str(sim_dir), "--pattern", "*_phi.tif", "--mask", "sibling", "--workers", "0"]
    args += ["--input", "fraction", "--steps", "20000", "--device", "cpu", "--out", str(out)]
    rc, before, after = _run_until_progress(args)
    assert rc == 130 and "Traceback" not in before + after
    assert "interrupted (Ctrl-C)" in after
    rows = (out / "summary.csv").read_text().splitlines()[1:]
    status = {r.split(",")[0].rsplit("/", 1)[-1]: r.split(",")[1] for r in rows}
    assert status == {"a_phi.tif": "cancelled", "b_phi.tif": "not run"}
    assert not (out / "a_phi.json").exists()  # a batch's cancelled fit is not written: a re-run fits it
