"""The shared training loop (napari_mollifier.optim.train) on small analytic problems: convergence to
a known minimiser, the divergence guard, cancellation, the alignment logging's exclusion from the
step time, the learning-rate schedule; and the chromatin fit's training schedule and step count."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch
from _batch_data import FAST, variant

from napari_mollifier.config import ARCHS, InferenceSettings
from napari_mollifier.inverse import RateFit, fit_rates
from napari_mollifier.inverse._schedule import ARCH_TRAINING, training_schedule
from napari_mollifier.optim import (
    TrainingEvent,
    TrainingOutcome,
    TrainingSchedule,
    _loop,
    divergence_reason,
    run_training,
    train,
)

A = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
B = torch.tensor([3.0, 0.0, -1.5], dtype=torch.float64)


def _two_wells(x):
    """Loss terms ||x - a||^2 and ||x - b||^2: their sum is least at (a + b) / 2, value ||a - b||^2 / 2."""
    return lambda: {"data": (x - A).pow(2).sum(), "residual": (x - B).pow(2).sum()}


@pytest.mark.parametrize("optimizer", ["adam", "soap"])
def test_converges_to_the_minimiser_of_the_summed_terms(optimizer):
    # A 3 x 1 matrix, so SOAP preconditions it as a weight matrix rather than falling back to Adam.
    x = torch.zeros(3, 1, dtype=torch.float64, requires_grad=True)
    schedule = TrainingSchedule(steps=400, learning_rate=0.1, optimizer=optimizer)
    out = run_training(lambda: _two_wells(x[:, 0])(), [x], schedule)
    assert isinstance(out, TrainingOutcome) and out.steps_done == 400 and not out.cancelled
    assert out.diverged_step is None and out.reason == ""
    np.testing.assert_allclose(x.detach()[:, 0].numpy(), ((A + B) / 2).numpy(), atol=1e-3)
    minimum = float((A - B).pow(2).sum()) / 2
    assert out.best_loss == pytest.approx(minimum, rel=1e-5)
    assert len(out.history) == 400 and out.history[-1]["total"] == pytest.approx(minimum, rel=1e-5)
    assert set(out.losses) == {"data", "residual", "total"}


def test_combine_sets_the_minimised_loss():
    """With the data term weighted 3x the minimiser moves to (3 a + b) / 4; combine gets 1-based steps."""
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    seen = []

    def combine(step, terms, params):
        seen.append(step)
        assert params[0] is x
        return 3.0 * terms["data"] + terms["residual"]

    out = run_training(_two_wells(x), [x], TrainingSchedule(steps=400, learning_rate=0.1), combine=combine)
    np.testing.assert_allclose(x.detach().numpy(), ((3 * A + B) / 4).numpy(), atol=1e-3)
    assert seen == list(range(1, 401))
    assert out.history[0]["total"] == pytest.approx(3 * float(A.pow(2).sum()) + float(B.pow(2).sum()))


def test_events_every_report_every_steps_and_at_the_end_then_the_outcome():
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    calls = {"n": 0}

    def terms():
        calls["n"] += 1
        return _two_wells(x)(), calls["n"]  # the state: which call it was

    items = list(train(terms, [x], TrainingSchedule(steps=23, learning_rate=0.1, report_every=10)))
    events, out = items[:-1], items[-1]
    assert all(isinstance(e, TrainingEvent) for e in events) and isinstance(out, TrainingOutcome)
    assert [e.step for e in events] == [10, 20, 23] and all(e.total_steps == 23 for e in events)
    assert [e.state for e in events] == [10, 20, 23] and out.state == 23
    # the first step's losses are those of the starting point x = 0
    assert out.history[0]["data"] == pytest.approx(float(A.pow(2).sum()))
    assert events[0].losses == {k: out.history[9][k] for k in ("data", "residual", "total")}


def test_nan_stops_at_its_step_and_keeps_the_last_good_state():
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    calls = {"n": 0}

    def terms():
        calls["n"] += 1
        t = _two_wells(x)()
        if calls["n"] == 5:
            t["residual"] = t["residual"] * math.nan
        return t, calls["n"]

    out = run_training(terms, [x], TrainingSchedule(steps=50, learning_rate=0.1, report_every=1))
    assert out.diverged and out.diverged_step == 5 and out.reason == "loss nan"
    assert out.steps_done == 4 and out.state == 4 and len(out.history) == 4
    assert all(math.isfinite(v) for v in out.losses.values())
    assert torch.isfinite(x).all()  # the NaN step's update was not applied


def test_an_exploding_loss_trips_the_guard_and_none_switches_it_off():
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    calls = {"n": 0}

    def terms():
        calls["n"] += 1
        t = _two_wells(x)()
        if calls["n"] == 3:
            t["data"] = t["data"] * 1e6
        return t

    out = run_training(terms, [x], TrainingSchedule(steps=10, learning_rate=1e-3))
    assert out.diverged_step == 3 and "exploded" in out.reason and out.steps_done == 2
    calls["n"] = 0
    free = run_training(terms, [x], TrainingSchedule(steps=10, learning_rate=1e-3, divergence_factor=None))
    assert not free.diverged and free.steps_done == 10
    assert divergence_reason(2e4, 1.0) != "" and divergence_reason(0.9e4, 1.0) == ""
    assert divergence_reason(math.inf, math.inf) == "loss inf" and divergence_reason(5.0, math.inf) == ""


class _CancelBeforeStep:
    """A cancel flag that is set when step ``k + 1`` asks: the loop checks it once before each step."""

    def __init__(self, k):
        self.k, self.asked = k, 0

    def is_set(self):
        self.asked += 1
        return self.asked > self.k


@pytest.mark.parametrize("k", [0, 1, 37])
def test_cancel_after_k_steps_counts_k_steps_between_reports(k):
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    schedule = TrainingSchedule(steps=100, learning_rate=0.1, report_every=50)
    items = list(train(_two_wells(x), [x], schedule, cancel=_CancelBeforeStep(k)))
    out = items[-1]
    assert out.cancelled and out.steps_done == k and len(out.history) == k and len(items) == 1
    assert (out.time_per_step_s > 0) == (k > 0)


def test_alignment_is_logged_on_its_steps_and_left_out_of_the_step_time(monkeypatch):
    """A fake clock: each loss evaluation takes 1 s, each alignment log 100 s; the time per step is 1 s."""
    clock = {"t": 0.0}
    monkeypatch.setattr(_loop, "time", types.SimpleNamespace(perf_counter=lambda: clock["t"]))
    real = _loop.loss_term_gradients

    def slow_gradients(losses, params):
        clock["t"] += 100.0
        return real(losses, params)

    monkeypatch.setattr(_loop, "loss_term_gradients", slow_gradients)
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    wells = _two_wells(x)

    def terms():
        clock["t"] += 1.0
        return wells()

    out = run_training(terms, [x], TrainingSchedule(steps=10, learning_rate=0.1, alignment_every=4))
    assert [s for s, _ in out.alignment] == [1, 5, 9]
    assert out.time_per_step_s == pytest.approx(1.0)
    # step 1 at x = 0: the gradients 2 (0 - a) and 2 (0 - b), cosine of a and b
    cosine = float(A @ B / (A.norm() * B.norm()))
    assert out.alignment[0][1] == pytest.approx(cosine, abs=1e-12)


def test_learning_rate_schedule_warm_up_and_cosine_to_five_percent():
    s = TrainingSchedule(steps=120, learning_rate=0.1, warmup_steps=60)
    assert s.warmup == 20  # at most a sixth of the fit
    assert s.learning_rate_at(1) == pytest.approx(1e-3)  # warm-up starts at 1 %
    assert s.learning_rate_at(11) == pytest.approx(0.1 * (0.01 + 0.99 * 10 / 20))
    assert s.learning_rate_at(21) == pytest.approx(0.1)  # the peak after the warm-up
    assert s.learning_rate_at(71) == pytest.approx(0.1 * (0.05 + 0.95 * 0.5))  # half-way down the cosine
    assert s.learning_rate_at(121) == pytest.approx(0.005)  # 5 % at the end of the decay
    plain = TrainingSchedule(steps=40, learning_rate=0.2)
    assert plain.learning_rate_at(1) == pytest.approx(0.2)
    assert plain.learning_rate_at(41) == pytest.approx(0.01)
    constant = TrainingSchedule(steps=40, learning_rate=0.2, final_lr_fraction=1.0)
    assert constant.learning_rate_at(40) == 0.2
    assert constant.make_scheduler(torch.optim.SGD([torch.zeros(1)])) is None


@pytest.mark.parametrize("warmup, fraction", [(60, 0.05), (0, 0.05), (0, 1.0), (10, 0.2)])
def test_the_loop_applies_the_schedule(warmup, fraction):
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    s = TrainingSchedule(steps=120, learning_rate=0.1, warmup_steps=warmup, final_lr_fraction=fraction)
    out = run_training(_two_wells(x), [x], s)
    for row in out.history:
        assert row["lr"] == pytest.approx(s.learning_rate_at(row["step"]), rel=1e-12, abs=1e-15), row["step"]


def test_schedule_rejects_bad_values():
    for bad in (
        dict(steps=-1),
        dict(learning_rate=0.0),
        dict(final_lr_fraction=0.0),
        dict(final_lr_fraction=1.5),
        dict(optimizer="sgd"),
        dict(divergence_factor=0.5),
        dict(report_every=-1),
    ):
        with pytest.raises(ValueError):
            TrainingSchedule(**{"steps": 10, "learning_rate": 0.1, **bad})


def test_training_schedule_of_the_chromatin_fit():
    assert set(ARCH_TRAINING) == set(ARCHS)
    settings = InferenceSettings(optimizer="soap", steps=300, report_every=7, alignment_every=3)
    grid = training_schedule(settings)
    assert (grid.optimizer, grid.learning_rate, grid.warmup_steps) == ("adam", 5e-2, 0)  # a free field: Adam
    assert (grid.steps, grid.report_every, grid.alignment_every, grid.final_lr_fraction) == (300, 7, 3, 0.05)
    pirate = training_schedule(InferenceSettings(arch="piratenet", optimizer="soap"))
    assert (pirate.optimizer, pirate.learning_rate, pirate.warmup_steps, pirate.soap_eps) == (
        "soap",
        3e-3,
        200,
        1e-3,
    )
    mlp = training_schedule(InferenceSettings(arch="mlp", learning_rate=2e-4))
    assert (mlp.optimizer, mlp.learning_rate, mlp.soap_eps) == ("adam", 2e-4, 1e-8)
    assert training_schedule(InferenceSettings(method="direct")).steps == 0


def test_a_fit_cancelled_between_reports_counts_the_steps_it_trained():
    phi, mask = variant(0)
    settings = FAST.model_copy(update={"steps": 100, "report_every": 50})
    items = list(fit_rates(phi, mask.astype(bool), 10.0, settings, cancel=_CancelBeforeStep(13)))
    fit = items[-1]
    assert isinstance(fit, RateFit) and fit.cancelled and fit.status == "cancelled"
    assert fit.steps_done == 13 and fit.history == [] and "after 13 training steps" in fit.status_reason
    assert items[-2].done and items[-2].step == 13
