"""`mollifier benchmark` for the papers' experiments: configurations, fit records, the report."""

import json

import numpy as np
import pytest

from mollifier_bench import fit_configs, paper_markdown, run_configs
from mollifier_bench.cli import benchmark_configs
from mollifier_bench.fits import steps_to_loss
from napari_mollifier.cli import main


def test_configurations_cover_the_grid_and_skip_what_cannot_run():
    full = benchmark_configs(quick=False, problems=["paper"])
    fits = [c for c in full if c.get("kind") == "fit"]
    # langevin: 2 archs x 2 methods; heat: 3 mollifier archs + 2 autodiff; chromatin: 4 mollifier archs;
    # each x 2 optimisers x 3 noise levels, less chromatin grid + SOAP (the free field is trained by Adam).
    assert len(fits) == (4 + 5 + 4) * 2 * 3 - 3
    assert fits[0]["noise"] == 0.05 and fits[-1]["noise"] == 0.0  # acceptance level first
    assert not any(c["arch"] in ("convnet", "grid") and c["method"] == "autodiff" for c in fits)
    assert {c["noise"] for c in fits} == {0.0, 0.01, 0.05}
    steps = [c for c in full if c.get("kind") == "step"]
    assert {(c["grid"], c["method"]) for c in steps} == {
        (n, m) for n in (64, 128, 256) for m in ("mollifier", "autodiff")
    }
    assert full[-1]["grid"] == 256 and full[-1]["kind"] == "step"  # the longest last
    only_steps = benchmark_configs(quick=False, problems=["chromatin"], kinds=("step",))
    assert only_steps == steps
    # Chromatin fits with autodiff only when asked for (an autodiff step is ~100x a mollifier one
    # at 64^2), coordinate networks only; --grids sets the chromatin nucleus size of the fits.
    asked = benchmark_configs(
        quick=False,
        problems=["chromatin"],
        kinds=("fit",),
        grids=[64, 96],
        methods=("mollifier", "autodiff"),
        optimizers=("adam",),
        noises=(0.05,),
    )
    assert {(c["grid"], c["arch"], c["method"]) for c in asked} == {
        (n, a, m)
        for n in (64, 96)
        for a, m in [
            ("grid", "mollifier"),
            ("mlp", "mollifier"),
            ("piratenet", "mollifier"),
            ("convnet", "mollifier"),
            ("mlp", "autodiff"),
            ("piratenet", "autodiff"),
        ]
    }
    quick = benchmark_configs(quick=True, problems=["paper"])
    assert not any(
        c["problem"] == "chromatin" and c["method"] == "autodiff" for c in quick if c.get("kind") == "fit"
    )
    assert {c["noise"] for c in quick if c.get("kind") == "fit"} == {0.05}
    assert all(c["steps"] <= 300 for c in quick if c.get("kind") == "fit")
    with pytest.raises(ValueError, match="unknown fit problem"):
        fit_configs(["nope"])


def test_steps_to_loss():
    assert steps_to_loss([0, 10, 20, 30], [5.0, 3.0, 1.0, 0.5], 1.0) == 21
    assert steps_to_loss([0, 10], [5.0, 3.0], 1.0) is None


def _rec(problem, arch, method, optimizer, noise, rel, loss_curve, tps=0.01):
    steps = list(range(0, 10 * len(loss_curve), 10))
    return dict(
        problem=problem,
        kind="fit",
        order=1,
        arch=arch,
        method=method,
        optimizer=optimizer,
        noise=noise,
        grid=64,
        steps=steps[-1] + 1,
        status="ok",
        recovery_r=0.9,
        recovery_rel_error=rel,
        time_per_step_s=tps,
        peak_memory_bytes=2**20,
        final_loss=loss_curve[-1],
        memory_source="test",
        curves=dict(
            step=steps,
            loss=loss_curve,
            loss_data=loss_curve,
            loss_residual=[0.0] * len(loss_curve),
            alignment_step=[0],
            alignment=[0.5],
        ),
    )


def test_report_compares_methods_and_optimisers_at_a_common_loss():
    recs = [
        _rec("langevin", "mlp", "mollifier", "adam", 0.05, 0.10, [4, 2, 1.0, 0.8]),
        _rec("langevin", "mlp", "mollifier", "soap", 0.05, 0.08, [4, 0.9, 0.5, 0.4], tps=0.02),
        _rec("langevin", "mlp", "autodiff", "adam", 0.05, 0.20, [4, 3, 2, 1.5], tps=0.05),
        _rec("langevin", "mlp", "autodiff", "soap", 0.05, 0.05, [4, 3, 2, 1.2], tps=0.05),
    ]
    md = paper_markdown(recs, "mollifier benchmark --problems langevin")
    # Common loss of the mollifier pair: max(0.8, 0.4) = 0.8; Adam reaches it at step 30 (31 steps,
    # 0.31 s), SOAP at step 20 (21 steps x 0.02 s = 0.42 s).
    assert "| langevin | 64 | mlp | mollifier | 0.05 | 0.8 | 31 / 21 | 0.3 / 0.4 | 0.100 / 0.080 |" in md
    # Mollifier vs autodiff, per optimiser: better with Adam, worse with SOAP; autodiff 5x slower per step.
    assert "| langevin | 64 | 31 | mlp | adam | 0.05 | 0.100 | 0.200 | mollifier | 5.0× | 1.0× |" in md
    assert "| langevin | 64 | 31 | mlp | soap | 0.05 | 0.080 | 0.050 | autodiff | 2.5× | 1.0× |" in md


def test_report_pairs_only_fits_of_the_same_grid_and_length():
    """A chromatin autodiff fit at 64^2 is compared with the mollifier fit at 64^2, not with the
    128^2 one, and fits of different lengths are not paired."""

    def chrom(grid, method, steps, rel):
        return dict(
            _rec("chromatin", "mlp", method, "adam", 0.05, rel, [4.0] * (steps // 10)), grid=grid, order=4
        )

    md = paper_markdown(
        [
            chrom(128, "mollifier", 120, 0.05),
            chrom(64, "mollifier", 60, 0.20),
            chrom(64, "autodiff", 60, 0.30),
            chrom(64, "autodiff", 120, 0.01),
        ],
        "cmd",
    )
    pairs = [line for line in md.splitlines() if line.startswith("| chromatin | ")]
    assert pairs == ["| chromatin | 64² | 51 | mlp | adam | 0.05 | 0.200 | 0.300 | mollifier | 1.0× | 1.0× |"]
    assert "| 128² | mlp | mollifier | adam | 0.05 |" in md and "| 64² | mlp | autodiff | adam | 0.05 |" in md


# ~18 s each (benchmark fits in fresh processes): in the slow run, to keep the default run short.
@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_fit_records_in_fresh_processes(tmp_path):
    """Short fits of each problem through the runner: the records carry the contract's fields,
    finite figures and the training curves; an impossible combination is an error record."""
    configs = (
        fit_configs(
            ["langevin"],
            archs=["piratenet"],
            methods=["autodiff"],
            optimizers=["soap"],
            noises=[0.01],
            steps=12,
        )
        + fit_configs(
            ["heat"],
            archs=["convnet"],
            methods=["mollifier"],
            optimizers=["adam"],
            noises=[0.0],
            steps=6,
            grid=20,
        )
        + fit_configs(["chromatin"], archs=["grid"], optimizers=["adam"], noises=[0.0], steps=10, grid=64)
    )
    configs.append(dict(configs[1], method="autodiff"))  # a convnet has no coordinates to differentiate
    recs = list(run_configs(configs, "cpu", timeout_s=600))
    for r in recs[:3]:
        assert r["status"] == "ok", r.get("traceback", r.get("error"))
        assert r["time_per_step_s"] > 0 and r["peak_memory_bytes"] > 0
        assert np.isfinite(r["recovery_rel_error"]) and -1 <= r["recovery_r"] <= 1
        c = r["curves"]
        assert len(c["step"]) == len(c["loss"]) > 1 and all(-1 <= a <= 1 for a in c["alignment"])
    assert recs[0]["curves"]["alignment_step"] == [0, 10]
    assert (
        recs[2]["recovery_r_me"] >= recs[2]["recovery_r"]
        and recs[2]["recovery_r_ac"] >= recs[2]["recovery_r"]
    )
    assert recs[3]["status"] == "error" and "convnet" in recs[3]["error"]


# ~18 s each (benchmark fits in fresh processes): in the slow run, to keep the default run short.
@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_cli_paper_benchmark_writes_table_and_figure(tmp_path):
    out, md = tmp_path / "p.json", tmp_path / "p.md"
    rc = main(
        [
            "benchmark",
            "--problems",
            "langevin",
            "--archs",
            "piratenet",
            "--optimizers",
            "adam",
            "soap",
            "--noise",
            "0.05",
            "--steps",
            "11",
            "--device",
            "cpu",
            "--json",
            str(out),
            "--markdown",
            str(md),
        ]
    )
    assert rc == 0
    recs = json.loads(out.read_text())
    assert {(r["method"], r["optimizer"]) for r in recs} == {
        (m, o) for m in ("mollifier", "autodiff") for o in ("adam", "soap")
    }
    text = md.read_text()
    assert "## SOAP vs Adam" in text and "## Mollifier vs autodiff" in text
    png = tmp_path / "p_alignment.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "p_alignment.png" in text


def test_report_gives_the_4th_order_step_ratios():
    recs = [
        dict(
            problem="chromatin",
            kind="step",
            order=4,
            arch="mlp",
            method=m,
            grid=n,
            status=st,
            time_per_step_s=t,
            peak_memory_bytes=b,
            memory_source="test",
        )
        for m, n, st, t, b in (
            ("mollifier", 64, "ok", 0.02, 2**20),
            ("autodiff", 64, "ok", 2.0, 100 * 2**20),
            ("mollifier", 256, "ok", 0.2, 4 * 2**20),
            ("autodiff", 256, "out_of_memory", None, None),
        )
    ]
    md = paper_markdown(recs, "mollifier benchmark --problems chromatin --kinds step")
    assert "| 64² | 100.0× | 100.0× |" in md
    assert "| 256² | autodiff | — | — | out_of_memory" in md
    assert "| 256² | — | — |" in md  # no ratio where autodiff did not fit
