"""Faults during a fit: divergence keeps the last good maps, GPU out-of-memory falls back to the CPU,
and re-running with the same seed on the CPU gives identical maps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _batch_data import FAST, nan_residual_at_step, variant, write_nuclei

from napari_mollifier import infer_rates  # noqa: E402
from napari_mollifier.batch import infer_file, sibling_mask  # noqa: E402
from napari_mollifier.inverse import ProgressEvent, RateFit, _infer, fit_rates  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _fit(settings, phi=None, mask=None):
    if phi is None:
        phi, mask = variant(0)
    events, fit = [], None
    for item in fit_rates(phi, mask.astype(bool), 10.0, settings):
        if isinstance(item, RateFit):
            fit = item
        else:
            events.append(item)
    return events, fit


def test_exploding_loss_stops_with_a_message_and_finite_maps():
    events, fit = _fit(FAST.model_copy(update={"learning_rate": 1e3, "steps": 60}))
    assert fit.diverged and fit.diverged_step == 2 and fit.steps_done == 1
    assert "diverged at step 2" in fit.message and "learning rate" in fit.message
    assert np.isfinite(fit.gamma_me[fit.analysed]).all() and np.isfinite(fit.phi_hat[fit.analysed]).all()
    # a sane learning rate does not trip the guard
    _, ok = _fit(FAST.model_copy(update={"steps": 60}))
    assert not ok.diverged and ok.diverged_step is None and ok.message == ""
    assert fit.status == "diverged" and "diverged at step 2" in fit.status_reason
    assert ok.status == "ok" and ok.status_reason == ""


def test_nan_loss_keeps_the_maps_of_the_last_good_step(monkeypatch):
    nan_residual_at_step(monkeypatch, 7)
    events, fit = _fit(FAST.model_copy(update={"report_every": 1}))
    assert fit.diverged and fit.diverged_step == 7 and "loss nan" in fit.message
    assert fit.steps_done == 6  # the steps trained: step 7's update was not applied
    assert fit.status == "diverged" and fit.status_reason == fit.message
    assert all(np.isfinite(fit.losses[k]) for k in ("data", "residual", "total"))
    step6 = [e for e in events if e.step == 6 and not e.done][0]
    final = events[-1]
    assert final.done
    for key, full in (("gamma_me", fit.gamma_me), ("gamma_ac", fit.gamma_ac), ("phi_hat", fit.phi_hat)):
        np.testing.assert_array_equal(final.maps[key], step6.maps[key])
        crop = full[final.box]
        np.testing.assert_allclose(crop, step6.maps[key], rtol=1e-6, equal_nan=True)
    assert np.isfinite(fit.gamma_me[fit.analysed]).all()


def test_diverged_file_is_written_reported_and_not_skipped(tmp_path):
    (image,) = write_nuclei(tmp_path / "in", 1)
    out = tmp_path / "out"
    s = FAST.model_copy(update={"learning_rate": 1e3})
    r = infer_file(image, out, mask=sibling_mask, input="fraction", settings=s)
    assert r.status == "diverged" and "diverged at step 2" in r.reason and image.name in r.reason
    rec = json.loads((out / f"{image.stem}.json").read_text())
    assert rec["diverged"]["step"] == 2
    assert rec["status"] == "diverged" and "diverged at step 2" in rec["status_reason"]
    assert (out / f"{image.stem}_gamma_me.tif").exists()
    again = infer_file(image, out, mask=sibling_mask, input="fraction", settings=s, skip_existing=True)
    assert again.status == "diverged"  # fitted again, not taken as done


def _oom_once(monkeypatch, after_events: int):
    """Make the first fit raise CUDA out-of-memory after ``after_events`` progress events."""
    real = _infer.fit_rates
    seen = []

    def fake(phi, mask, px, settings, cancel=None):
        seen.append(settings.device)
        if len(seen) == 1:
            for k, item in enumerate(real(phi, mask, px, settings, cancel=cancel)):
                if k >= after_events:
                    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
                yield item
        else:
            yield from real(phi, mask, px, settings, cancel=cancel)

    monkeypatch.setattr(_infer, "fit_rates", fake)
    return seen


@pytest.mark.parametrize("after_events", [0, 2])
def test_gpu_out_of_memory_falls_back_to_cpu_with_a_notice(tmp_path, monkeypatch, after_events):
    (image,) = write_nuclei(tmp_path / "in", 1)
    mask = sibling_mask(image)
    s = FAST.model_copy(update={"device": "auto"})
    expected = infer_rates(image, mask=mask, input="fraction", settings=FAST)
    seen = _oom_once(monkeypatch, after_events)
    events = []
    with pytest.warns(RuntimeWarning, match="GPU out of memory"):
        maps = infer_rates(image, mask=mask, input="fraction", settings=s, progress=events.append)
    assert seen == ["auto", "cpu"]
    assert maps.fit.device == "cpu" and maps.fit.settings["device"] == "cpu"
    assert len(maps.notices) == 1 and "fitted on the CPU instead" in maps.notices[0]
    assert image.name in maps.notices[0]
    np.testing.assert_array_equal(maps.gamma_me, expected.gamma_me)
    assert all(isinstance(e, ProgressEvent) for e in events) and events[-1].done


def test_out_of_memory_through_infer_file_is_ok_with_the_notice_in_summary_and_json(tmp_path, monkeypatch):
    (image,) = write_nuclei(tmp_path / "in", 1)
    out = tmp_path / "out"
    _oom_once(monkeypatch, 1)
    with pytest.warns(RuntimeWarning):
        r = infer_file(
            image,
            out,
            mask=sibling_mask,
            input="fraction",
            settings=FAST.model_copy(update={"device": "auto"}),
        )
    assert r.status == "ok" and "fitted on the CPU instead" in r.reason and "\n" not in r.reason
    rec = json.loads((out / f"{image.stem}.json").read_text())
    assert rec["notices"] == [r.reason] and rec["device"] == "cpu"


def test_out_of_memory_on_the_cpu_is_a_failure_not_a_loop(tmp_path, monkeypatch):
    (image,) = write_nuclei(tmp_path / "in", 1)
    seen = _oom_once(monkeypatch, 0)
    r = infer_file(image, tmp_path / "out", mask=sibling_mask, input="fraction", settings=FAST)
    assert seen == ["cpu"]
    assert r.status == "failed" and "OutOfMemoryError" in r.reason and image.name in r.reason


def test_same_seed_on_cpu_gives_identical_maps(tmp_path):
    (image,) = write_nuclei(tmp_path / "in", 1)
    mask = sibling_mask(image)
    a = infer_rates(image, mask=mask, input="fraction", settings=FAST)
    b = infer_rates(image, mask=mask, input="fraction", settings=FAST)
    for k in ("gamma_me", "gamma_ac", "lam", "phi_hat"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)
    assert a.fit.losses == b.fit.losses
    # the comparison can fail: one more step changes the maps
    c = infer_rates(image, mask=mask, input="fraction", settings=FAST.model_copy(update={"steps": 31}))
    assert not np.array_equal(a.gamma_me, c.gamma_me, equal_nan=True)
