"""The benchmark harness: record contract, honest out-of-memory handling, report, CLI."""

import json
import sys

import pytest

from mollifier_bench import derivative_configs, derivatives_markdown, run_configs
from napari_mollifier.cli import main

KEYS = {
    "problem": str,
    "order": int,
    "arch": str,
    "method": str,
    "grid": int,
    "memory_source": str,
    "device": str,
    "status": str,
}


def _check_contract(rec):
    for key, typ in KEYS.items():
        assert isinstance(rec[key], typ), (key, rec)
    for key in ("time_per_step_s", "peak_memory_bytes", "recovery_r", "recovery_rel_error"):
        assert key in rec


def test_records_follow_the_contract_and_autodiff_costs_more():
    configs = [c for c in derivative_configs(grids=(24,), orders=(4,)) if c["method"] != "data"]
    recs = list(run_configs([dict(c, min_time_s=0.2, max_steps=5) for c in configs], "cpu"))
    assert [r["method"] for r in recs] == ["mollifier", "autodiff"]
    for r in recs:
        _check_contract(r)
        assert r["status"] == "ok", r
        assert r["time_per_step_s"] > 0 and r["peak_memory_bytes"] >= 0
        assert r["memory_source"].startswith("peak RSS")
    moll, auto = recs
    # Even on a tiny grid, 4th-order autodiff holds many more activations than one convolution.
    assert auto["peak_memory_bytes"] > moll["peak_memory_bytes"]


def test_a_configuration_that_does_not_fit_is_a_result_not_a_crash():
    cfg = dict(problem="derivatives", arch="mlp", grid=96, order=4, method="autodiff", max_steps=1)
    (rec,) = run_configs([cfg], "cpu", memory_cap_bytes=64 * 2**20)
    _check_contract(rec)
    assert rec["status"] == "out_of_memory", rec
    assert rec["time_per_step_s"] is None and rec["peak_memory_bytes"] is None


def test_quick_set_and_bad_order():
    quick = derivative_configs(grids=(64, 128), quick=True)
    assert ("autodiff", 128, 4) not in {(c["method"], c["grid"], c["order"]) for c in quick}
    assert ("mollifier", 128, 4) in {(c["method"], c["grid"], c["order"]) for c in quick}
    with pytest.raises(ValueError, match="order"):
        derivative_configs(grids=(8,), orders=(3,))


def test_markdown_ratios():
    base = dict(problem="derivatives", arch="mlp", status="ok", memory_source="m", device="cpu")
    recs = [
        dict(base, grid=64, order=0, method="data", time_per_step_s=0.1, peak_memory_bytes=2**20),
        dict(base, grid=64, order=4, method="mollifier", time_per_step_s=0.12, peak_memory_bytes=2**21),
        dict(base, grid=64, order=4, method="autodiff", time_per_step_s=6.0, peak_memory_bytes=2**27),
        dict(
            base,
            grid=256,
            order=4,
            method="autodiff",
            status="out_of_memory",
            time_per_step_s=None,
            peak_memory_bytes=None,
            error="RuntimeError: can't allocate memory",
        ),
    ]
    md = derivatives_markdown(recs, "mollifier benchmark")
    assert "| 64² | 4 | 50.0× | 64.0× |" in md
    assert "| 64² | 1.2 |" in md
    assert "out_of_memory" in md and "Machine: CPU" in md


# ~12 s (benchmark configurations in fresh processes): with the slow fits.
@pytest.mark.slow
def test_cli_writes_json(tmp_path):
    out = tmp_path / "b.json"
    md = tmp_path / "b.md"
    rc = main(
        [
            "benchmark",
            "--grids",
            "16",
            "--orders",
            "2",
            "--device",
            "cpu",
            "--json",
            str(out),
            "--markdown",
            str(md),
            "--min-time-s",
            "0.2",
        ]
    )
    assert rc == 0
    recs = json.loads(out.read_text())
    assert {(r["method"], r["order"]) for r in recs} == {("data", 0), ("mollifier", 2), ("autodiff", 2)}
    assert all(r["status"] == "ok" for r in recs)
    assert "--grids 16" in md.read_text()


def test_cli_rejects_unknown_problem():
    with pytest.raises(SystemExit, match="unknown problem 'nonsense'"):
        main(["benchmark", "--problems", "nonsense", "--device", "cpu"])


def test_cli_without_psutil_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)  # `import psutil` now raises ImportError
    with pytest.raises(SystemExit, match=r"pip install 'napari-mollifier\[bench\]'"):
        main(["benchmark", "--grids", "8", "--orders", "1", "--device", "cpu"])
