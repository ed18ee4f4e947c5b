"""The result status of a fit: "ok" only when the maps can be read as rates.

The pure assessment against hand-made cases at its thresholds, then real fits: a NaN step is
"diverged" (in RateFit, S.json and the CLI's exit code), the direct read-out of a noisy nucleus is
"failed" (negative rates), and a default fit of the same noisy nucleus is "ok" with finite losses.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from _batch_data import FAST, nan_residual_at_step, variant, write_nuclei

from napari_mollifier.batch import infer_file, run_batch, sibling_mask
from napari_mollifier.cli import main
from napari_mollifier.config import InferenceSettings
from napari_mollifier.inverse import RateFit, fit_rates
from napari_mollifier.inverse._status import MAX_DATA_TERM, MAX_NEGATIVE_FRACTION, assess_fit
from napari_mollifier.io import write_tiff

pytestmark = pytest.mark.usefixtures("one_thread")

N = 1000  # pixels of the hand-made maps


def _maps(neg_me=0, neg_ac=0, nan_at=None):
    me, ac = np.full(N, 0.02), np.full(N, 0.03)
    me[:neg_me] = -0.01
    ac[N - neg_ac :] = -0.01
    phi = np.full(N, 0.5)
    if nan_at is not None:
        me[nan_at] = np.nan
    return me, ac, me / ac, phi


def _assess(maps=None, data=1.0, residual=1.0, **kw):
    return assess_fit(*(maps or _maps()), {"data": data, "residual": residual, "s_d": 0.01}, **kw)


# ------------------------------------------------------------------------------ pure assessment
def test_a_good_fit_is_ok_with_its_figures():
    a = _assess(trained=True)
    assert (a.status, a.reason) == ("ok", "")
    assert a.figures == dict(negative_gamma_me=0.0, negative_gamma_ac=0.0, data_term=1.0, non_finite=0)


def test_negative_rates_fail_just_above_the_threshold():
    at = int(MAX_NEGATIVE_FRACTION * N)
    assert _assess(_maps(neg_me=at), trained=True).status == "ok"
    assert _assess(_maps(neg_ac=at), trained=True).status == "ok"
    a = _assess(_maps(neg_me=at + 1), trained=False, method="direct")
    assert a.status == "failed" and a.figures["negative_gamma_me"] == pytest.approx((at + 1) / N)
    assert "Gamma_me in 5.1 %" in a.reason and "Gamma_ac" not in a.reason
    assert "do not determine the rates" in a.reason and "method pinn" in a.reason
    b = _assess(_maps(neg_me=740, neg_ac=200), trained=True)
    assert b.status == "failed" and "Gamma_me in 74 % and Gamma_ac in 20 %" in b.reason
    assert "method pinn" not in b.reason and "rate_scale_nm" in b.reason  # the way out of a trained fit
    assert "\n" not in b.reason


def test_a_data_misfit_far_outside_the_noise_fails():
    assert _assess(data=MAX_DATA_TERM, trained=True).status == "ok"
    a = _assess(data=49.0, trained=True)
    assert a.status == "failed" and "7.0 noise levels" in a.reason and "rms 0.07" in a.reason
    assert a.figures["data_term"] == 49.0


@pytest.mark.parametrize("where", ["map", "data", "residual"])
def test_non_finite_is_diverged_after_training_and_failed_for_the_read_out(where):
    maps = _maps(nan_at=3) if where == "map" else None
    terms = {"data": math.nan} if where == "data" else {"residual": math.inf} if where == "residual" else {}
    trained = _assess(maps, trained=True, **terms)
    direct = _assess(maps, trained=False, method="direct", **terms)
    assert trained.status == "diverged" and "training broke" in trained.reason
    assert direct.status == "failed" and "direct read-out is not finite" in direct.reason
    if where == "map":
        # one NaN in Gamma_me, so in lambda too
        assert trained.figures["non_finite"] == 2 and "2 NaN/Inf map values" in trained.reason
    else:
        assert f"non-finite {where} term" in trained.reason


def test_cancel_and_the_divergence_guard_come_first():
    bad = _maps(neg_me=900)
    a = _assess(bad, data=math.nan, trained=True, cancelled=True, steps_done=12)
    assert a.status == "cancelled" and "after 12 training steps" in a.reason
    b = _assess(bad, trained=True, diverged_message="training diverged at step 3 (loss nan)")
    assert (b.status, b.reason) == ("diverged", "training diverged at step 3 (loss nan)")


# ------------------------------------------------------------------------------ fits
def _fit(phi, mask, settings) -> RateFit:
    return [item for item in fit_rates(phi, mask.astype(bool), 10.0, settings)][-1]


def _noisy(noise=0.03):
    phi, mask = variant(0)
    return (phi + noise * np.random.default_rng(3).standard_normal(phi.shape)).astype(np.float32), mask


def test_a_nan_step_is_never_ok_in_the_fit_the_record_or_the_exit_code(tmp_path, monkeypatch, capsys):
    nan_residual_at_step(monkeypatch, 4)
    phi, mask = variant(0)
    fit = _fit(phi, mask, FAST)
    assert fit.status == "diverged" and fit.diverged and "diverged at step 4" in fit.status_reason
    monkeypatch.undo()
    nan_residual_at_step(monkeypatch, 4)  # the same broken step in the CLI's fit
    (image,) = write_nuclei(tmp_path / "in", 1)
    out = tmp_path / "out"
    argv = ["infer", str(image), "--out", str(out), "--mask", str(sibling_mask(image))]
    rc = main(argv + ["--input", "fraction", "--steps", "30", "--device", "cpu"])
    assert rc == 1
    rec = json.loads((out / f"{image.stem}.json").read_text())
    assert rec["status"] == "diverged" and "diverged at step 4" in rec["status_reason"]
    assert all(math.isfinite(rec["losses"][k]) for k in ("data", "residual", "total"))
    err = capsys.readouterr().err
    assert f"{image}: diverged in" in err and "diverged at step 4" in err and " ok in " not in err


def test_direct_read_out_of_a_noisy_nucleus_fails_with_the_reason_everywhere(tmp_path, capsys):
    phi, mask = _noisy()
    folder, out = tmp_path / "in", tmp_path / "out"
    image = write_tiff(folder / "noisy_phi.tif", phi, 10.0)
    write_tiff(folder / "noisy_mask.tif", mask, 10.0)
    argv = ["infer", str(image), "--out", str(out), "--mask", str(sibling_mask(image))]
    assert main(argv + ["--input", "fraction", "--method", "direct", "--device", "cpu"]) == 1
    rec = json.loads((out / "noisy_phi.json").read_text())
    assert rec["status"] == "failed" and "negative rates" in rec["status_reason"]
    assert rec["checks"]["negative_gamma_me"] > 0.5 and rec["steps_done"] == 0
    # no training: the losses are those of the read-out, finite
    assert all(math.isfinite(rec["losses"][k]) for k in ("data", "residual", "total"))
    assert (out / "noisy_phi_gamma_me.tif").is_file()  # written for inspection
    err = capsys.readouterr().err
    assert f"{image}: failed in" in err and "maps written for inspection only" in err
    # the batch: summary.csv carries the status and the reason; a re-run fits it again
    direct = InferenceSettings(method="direct", device="cpu")
    kw = dict(mask=sibling_mask, input="fraction", settings=direct, skip_existing=True)
    gen = run_batch([image], tmp_path / "batch", **kw)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            (r,) = stop.value
            break
    assert r.status == "failed" and r.reason.startswith(f"{image}: negative rates")
    (row,) = csv.DictReader(open(tmp_path / "batch" / "summary.csv"))
    assert row["status"] == "failed" and "negative rates" in row["reason"]
    assert row["outputs"].endswith("noisy_phi.json") and row["steps_done"] == "0"
    again = infer_file(image, tmp_path / "batch", **kw)
    assert again.status == "failed"  # not taken as done


def test_a_default_fit_of_the_same_noisy_nucleus_is_ok_with_finite_losses():
    phi, mask = _noisy()
    fit = _fit(phi, mask, InferenceSettings(device="cpu"))
    assert (fit.status, fit.status_reason, fit.message) == ("ok", "", "")
    assert not fit.diverged and fit.steps_done == 1200
    assert all(math.isfinite(fit.losses[k]) for k in ("data", "residual", "total"))
    assert fit.checks["negative_gamma_me"] == 0 and fit.checks["negative_gamma_ac"] == 0
    assert fit.checks["data_term"] < 2  # within the noise: far below MAX_DATA_TERM
    # the noise-free direct read-out is ok too, and its losses are finite (no training)
    clean = _fit(*variant(0), FAST.model_copy(update={"method": "direct"}))
    assert clean.status == "ok" and math.isfinite(clean.losses["total"]) and clean.steps_done == 0
