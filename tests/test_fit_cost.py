"""The fit cost estimate: the geometry RateProblem uses, memory against a measured fit, and the refusal
of a fit that would not fit in memory (API, CLI, batch)."""

import csv
import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from napari_mollifier.cli import main
from napari_mollifier.config import InferenceSettings
from napari_mollifier.inverse import (
    FitTooLargeError,
    RateProblem,
    _cost,
    estimate_fit_cost,
    estimate_noise,
    infer_rates,
)
from napari_mollifier.io import write_tiff
from napari_mollifier.physics import ChromatinModel
from napari_mollifier.simulate import nucleus_mask


def _nucleus(n: int, seed: int = 0):
    """An elliptic nucleus with smooth domains and 1 % noise (as benchmarks/solver_scaling.py)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    mask = nucleus_mask((n, n), "ellipse", semi_axes=(0.45 * n, 0.38 * n))
    smooth = gaussian_filter(rng.standard_normal((n, n)), 4.0)
    phi = np.where(mask, 0.5 + 0.3 * np.tanh(2.0 * smooth / smooth.std()), 0.2)
    return phi + 0.01 * rng.standard_normal((n, n)), mask


@pytest.mark.parametrize(
    "n, px, rate_scale, residual_form",
    [(128, 10.0, 500.0, "nested"), (160, 20.0, 60.0, "chain"), (150, 15.0, 45.0, "nested")],
)
def test_estimate_sizes_the_fit_as_rate_problem_does(n, px, rate_scale, residual_form):
    phi, mask = _nucleus(n)
    s = InferenceSettings(rate_scale_nm=rate_scale, residual_form=residual_form, device="cpu")
    problem = RateProblem(phi, mask, px, s, ChromatinModel(), torch.device("cpu"), estimate_noise(phi, mask))
    cost = estimate_fit_cost(phi.shape, mask, pixel_size_nm=px, settings=s)
    assert cost.crop_shape == tuple(problem.phi.shape)
    assert cost.rate_grid == problem.basis.grid and cost.rate_points == problem.n_coef
    assert cost.half_bandwidth == problem._bw
    assert cost.device == "cpu" and cost.steps == s.steps


def test_memory_estimate_grows_linearly_with_the_pixels():
    """At the default rate scale the band of the rate system is small: doubling the side of the
    crop multiplies the estimate's growth above its constant by ~4 (the pixel count)."""
    s = InferenceSettings(device="cpu")
    m = {
        n: estimate_fit_cost((n, n), pixel_size_nm=20.0, settings=s).memory_bytes
        - _cost.COST_MODEL["constant"]
        for n in (512, 1024, 2048)
    }
    assert m[1024] / m[512] == pytest.approx(4.0, rel=0.1)
    assert m[2048] / m[1024] == pytest.approx(4.0, rel=0.1)
    # A finer rate scale adds the banded system's K x bandwidth on top.
    fine = estimate_fit_cost(
        (512, 512), pixel_size_nm=20.0, settings=s.model_copy(update={"rate_scale_nm": 60})
    )
    assert fine.memory_bytes > 2 * (m[512] + _cost.COST_MODEL["constant"])


_MEASURE = textwrap.dedent(
    """
    import json, sys
    import torch
    sys.path.insert(0, {tests!r})
    from test_fit_cost import _nucleus
    from napari_mollifier.config import InferenceSettings
    from napari_mollifier.inverse import fit_rates
    torch.set_num_threads(1)
    phi, mask = _nucleus(256)
    kib = lambda key: next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key))
    before = kib("VmRSS:")
    *_, fit = fit_rates(phi, mask, 20.0, InferenceSettings(device="cpu", steps=5))
    # VmHWM is this process's own peak; getrusage's ru_maxrss is not: it keeps the parent's RSS
    # from before the exec, so under a large pytest process it reads hundreds of MB too high.
    print(json.dumps({{"growth": (kib("VmHWM:") - before) * 1024}}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_memory_estimate_matches_a_measured_fit(tmp_path):
    """The peak RSS growth of a 256^2 fit (5 steps, fresh process) is within 50 % of the estimate."""
    import os
    from pathlib import Path

    code = _MEASURE.format(tests=str(Path(__file__).parent))
    # A clean environment: earlier tests in the same run leave variables behind (dask's nanny
    # copies its worker settings into this process's environment).
    keep = ("PATH", "HOME", "PYTHONPATH", "VIRTUAL_ENV", "LANG", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["OMP_NUM_THREADS"] = "1"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    growth = json.loads(r.stdout.strip().splitlines()[-1])["growth"]
    phi, mask = _nucleus(256)
    est = estimate_fit_cost(
        phi.shape, mask, pixel_size_nm=20.0, settings=InferenceSettings(device="cpu", steps=5)
    )
    assert est.memory_bytes == pytest.approx(growth, rel=0.5), (est.memory_bytes, growth)


def test_time_estimate_by_device_and_method():
    s = InferenceSettings(device="cpu")
    cpu = estimate_fit_cost((512, 512), pixel_size_nm=20.0, settings=s)
    direct = estimate_fit_cost(
        (512, 512), pixel_size_nm=20.0, settings=s.model_copy(update={"method": "direct"})
    )
    assert cpu.seconds > direct.seconds > 0 and direct.steps == 0
    longer = estimate_fit_cost((512, 512), pixel_size_nm=20.0, settings=s.model_copy(update={"steps": 2400}))
    searched = estimate_fit_cost(
        (512, 512),
        pixel_size_nm=20.0,
        settings=s.model_copy(update={"psf_sigma_min_nm": 10.0, "psf_sigma_max_nm": 30.0}),
    )
    assert searched.seconds == pytest.approx(6 * cpu.seconds)  # five search fits and the chosen one again
    assert longer.seconds - direct.seconds == pytest.approx(2 * (cpu.seconds - direct.seconds))
    cuda = estimate_fit_cost(
        (512, 512), pixel_size_nm=20.0, settings=s, device="cuda", available_bytes=10**10
    )
    assert cuda.seconds is None and "time unknown" in cuda.describe()


def test_describe_is_one_line_with_the_numbers():
    cost = _cost.FitCost(
        (801, 925), 801 * 925, (34, 38), 211, 1_234_000_000, 185.0, 20_000_000_000, "cpu", 1200
    )
    assert (
        cost.describe() == "~3 min, ~1.2 GB of 20 GB available (crop 801 x 925 px, 2 x 1292 rate points, cpu)"
    )
    assert cost.fits_in_memory
    assert not _cost.FitCost((9, 9), 81, (2, 2), 7, 900, None, 1000, "cpu", 0).fits_in_memory  # > 80 %


def test_available_memory_reads_the_machine():
    avail = _cost.available_memory("cpu")
    assert avail is None or 10**7 < avail < 10**15
    if sys.platform.startswith("linux"):
        assert avail is not None


def _set_available(monkeypatch, limit: int) -> None:
    """Pretend the machine has the memory that puts the refusal threshold at ``limit`` bytes."""
    avail = int(limit / _cost.MEMORY_SAFETY)
    monkeypatch.setattr(_cost, "available_memory", lambda device="cpu": avail)


def _named_values_fit(message: str, shape, mask, px: float, settings) -> list[str]:
    """Each value the refusal names (a binned pixel size, a rate scale) fits by the estimate."""
    checked = []
    if m := re.search(r"bin the image (\d+)x to ([\d.]+) nm pixels", message):
        b, new_px = int(m.group(1)), float(m.group(2))
        assert new_px == pytest.approx(b * px)
        binned = np.asarray(mask)[::b, ::b]
        c = estimate_fit_cost(
            binned.shape,
            binned,
            pixel_size_nm=new_px,
            settings=settings.model_copy(update={"kernel_radius_nm": None}),
        )
        assert c.fits_in_memory, message
        checked.append("bin")
    if m := re.search(r"--rate-scale-nm ([\d.]+)", message):
        c = estimate_fit_cost(
            shape,
            mask,
            pixel_size_nm=px,
            settings=settings.model_copy(update={"rate_scale_nm": float(m.group(1))}),
        )
        assert c.fits_in_memory, message
        checked.append("rate scale")
    return checked


def test_infer_rates_refuses_before_the_fit_and_names_the_binning_that_fits(monkeypatch):
    """Memory between what the image binned 2x and the image itself need: the refusal names the
    binning (which fits) and no rate scale (the band of the rate system is small here, so a coarser
    rate basis would not help)."""
    phi, mask = _nucleus(512)
    s = InferenceSettings(device="cpu", steps=2)
    est = estimate_fit_cost(phi.shape, mask, pixel_size_nm=20.0, settings=s)
    binned = estimate_fit_cost(mask[::2, ::2].shape, mask[::2, ::2], pixel_size_nm=40.0, settings=s)
    _set_available(monkeypatch, (binned.memory_bytes + est.memory_bytes) // 2)

    def no_fit(*a, **k):
        raise AssertionError("the fit started")

    monkeypatch.setattr("napari_mollifier.inverse._infer.fit_rates", no_fit)
    with pytest.raises(FitTooLargeError) as info:
        infer_rates(phi, pixel_size_nm=20.0, mask=mask, input="fraction", settings=s)
    msg = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in msg
    assert msg.startswith("image: not fitted") and "--no-memory-check (check_memory=False)" in msg
    assert info.value.cost.memory_bytes == est.memory_bytes
    assert "bin the image 2x to 40 nm pixels" in msg and "--rate-scale-nm" not in msg, msg
    assert _named_values_fit(msg, phi.shape, mask, 20.0, s) == ["bin"]
    assert re.search(r"crop the image or its mask to at most ~\d+ x \d+ px", msg)


def test_cli_batch_refuses_the_file_that_does_not_fit_and_fits_the_other(monkeypatch, tmp_path, capsys):
    from _batch_data import nucleus, write_nuclei

    folder, out = tmp_path / "in", tmp_path / "out"
    (small_path,) = write_nuclei(folder, 1)  # 64^2 at 10 nm
    small_phi, small_mask = nucleus(64)
    big_phi, big_mask = _nucleus(512, seed=2)
    write_tiff(folder / "big.tif", big_phi.astype(np.float32), 50.0)
    write_tiff(folder / "big_mask.tif", big_mask.astype(np.uint8), 50.0)
    # At 50 nm pixels a 250 nm rate scale is a fine rate basis, whose banded system is half of the
    # big file's estimate; the memory leaves room for the small file and for the big one at twice
    # that rate scale.
    s = InferenceSettings(device="cpu", steps=30, rate_scale_nm=250.0)
    small = estimate_fit_cost(small_phi.shape, small_mask, pixel_size_nm=10.0, settings=s)
    big = estimate_fit_cost(big_phi.shape, big_mask, pixel_size_nm=50.0, settings=s)
    coarse = estimate_fit_cost(
        big_phi.shape, big_mask, pixel_size_nm=50.0, settings=s.model_copy(update={"rate_scale_nm": 500})
    )
    limit = int(1.02 * max(coarse.memory_bytes, small.memory_bytes))
    assert limit < big.memory_bytes
    _set_available(monkeypatch, limit)
    rc = main(
        [
            "batch",
            str(folder),
            "--out",
            str(out),
            "--workers",
            "0",
            "--input",
            "fraction",
            "--mask",
            "sibling",
            "--steps",
            "30",
            "--rate-scale-nm",
            "250",
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    refusals = [line for line in err.splitlines() if "not fitted" in line]
    assert len(refusals) == 1, err
    line = refusals[0]
    assert "big.tif: not fitted" in line and small_path.name not in line
    assert "--no-memory-check" in line and "--rate-scale-nm" in line
    assert "rate scale" in _named_values_fit(line, big_phi.shape, big_mask, 50.0, s), line
    # The fitted file printed its estimate first; the refused one wrote nothing.
    assert err.count("estimate: ") == 1 and "(crop " in err
    assert (out / f"{small_path.stem}.json").exists() and not list(out.glob("big*"))
    rows = {r["file"].rsplit("/", 1)[-1]: r for r in csv.DictReader(open(out / "summary.csv"))}
    assert rows[small_path.name]["status"] == "ok" and rows["big.tif"]["status"] == "failed"
    assert "not fitted" in rows["big.tif"]["reason"]


def test_cli_infer_refuses_with_exit_1_and_no_memory_check_fits(monkeypatch, tmp_path, capsys):
    from _batch_data import write_nuclei

    (image,) = write_nuclei(tmp_path, 1)
    monkeypatch.setattr(_cost, "available_memory", lambda device="cpu": 1000)
    args = ["infer", str(image), "--mask", str(tmp_path / "n00_mask.tif"), "--input", "fraction"]
    args += ["--steps", "30", "--device", "cpu", "--out"]
    assert main([*args, str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert f"{image}: not fitted" in err and "estimate:" not in err
    assert len([line for line in err.splitlines() if "not fitted" in line]) == 1
    assert not (tmp_path / "a").exists() or not list((tmp_path / "a").iterdir())
    assert main([*args, str(tmp_path / "b"), "--no-memory-check"]) == 0
    assert (tmp_path / "b" / "n00_phi.json").exists()
    assert "estimate: " in capsys.readouterr().err
