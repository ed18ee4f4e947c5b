"""End to end: simulate files, infer from them through the CLI, check the outputs' contract."""

import json

import numpy as np
import pytest
import tifffile

from napari_mollifier.cli import main
from napari_mollifier.io import read_localisations
from napari_mollifier.io._readers import _pixel_size_from_tiff


def pixel_size(path):
    with tifffile.TiffFile(path) as tif:
        return _pixel_size_from_tiff(tif)[0]


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    assert (
        main(
            [
                "simulate",
                "--out",
                str(out),
                "--name",
                "n1",
                "--size",
                "128",
                "--mask",
                "circle",
                "--seed",
                "1",
                "--localisations",
            ]
        )
        == 0
    )
    return out


def test_simulate_writes_files_with_pixel_size(sim_dir):
    for suffix in ("intensity", "phi", "mask", "gamma_me_true", "gamma_ac_true"):
        assert pixel_size(sim_dir / f"n1_{suffix}.tif") == pytest.approx(10.0, rel=1e-6), suffix
    rec = json.loads((sim_dir / "n1.json").read_text())
    assert rec["residual_ratio"] < 0.1 and rec["pixel_size_nm"] == 10.0
    assert rec["photons"] == 50.0 and rec["intensity_levels"] == [pytest.approx(15.0), 50.0]
    x, y = read_localisations(sim_dir / "n1_localisations.csv")
    assert len(x) > 1000 and 0 <= x.min() and x.max() < 1280 + 100


def test_infer_outputs_follow_the_contract(sim_dir, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(
        [
            "infer",
            str(sim_dir / "n1_phi.tif"),
            "--out",
            str(out),
            "--input",
            "fraction",
            "--mask",
            str(sim_dir / "n1_mask.tif"),
            "--method",
            "direct",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    phi_in = tifffile.imread(sim_dir / "n1_phi.tif")
    for key in ("gamma_me", "gamma_ac", "lambda", "phi", "gamma_me_sd", "gamma_ac_sd", "lambda_sd"):
        path = out / f"n1_phi_{key}.tif"
        arr = tifffile.imread(path)
        assert arr.dtype == np.float32 and arr.shape == phi_in.shape, key
        assert pixel_size(path) == pytest.approx(10.0, rel=1e-6)
    # The result line quotes the median sd of each rate map as a share of it.
    assert "(1/tau) (median sd " in capsys.readouterr().err
    mask = tifffile.imread(out / "n1_phi_mask.tif")
    assert mask.dtype == np.uint8 and 0 < mask.sum() < mask.size
    me = tifffile.imread(out / "n1_phi_gamma_me.tif")
    assert np.isnan(me[mask == 0]).all() and np.isfinite(me[mask == 1]).all()
    lam = tifffile.imread(out / "n1_phi_lambda.tif")
    ac = tifffile.imread(out / "n1_phi_gamma_ac.tif")
    np.testing.assert_allclose(lam[mask == 1], me[mask == 1] / ac[mask == 1], rtol=1e-5)
    rec = json.loads((out / "n1_phi.json").read_text())
    assert rec["settings"]["method"] == "direct" and rec["pixel_size_nm"] == 10.0
    assert {"versions", "device", "runtime_s", "losses", "summary"} <= set(rec)
    # noise-free direct read-out of a steady state: the true mean rate comes back
    true_me = tifffile.imread(sim_dir / "n1_gamma_me_true.tif")
    assert rec["summary"]["gamma_me"]["mean"] == pytest.approx(
        float(np.nanmean(true_me[mask == 1])), rel=0.05
    )


def test_failing_input_is_reported_and_others_still_run(sim_dir, tmp_path, capsys):
    bad = tmp_path / "no_pixel_size.tif"
    tifffile.imwrite(bad, tifffile.imread(sim_dir / "n1_phi.tif"))
    out = tmp_path / "out"
    rc = main(
        [
            "infer",
            str(bad),
            str(sim_dir / "n1_phi.tif"),
            "--out",
            str(out),
            "--input",
            "fraction",
            "--mask",
            str(sim_dir / "n1_mask.tif"),
            "--method",
            "direct",
            "--device",
            "cpu",
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "no_pixel_size.tif: no pixel size" in err and "--pixel-size" in err
    assert (out / "n1_phi_gamma_me.tif").exists() and not (out / "no_pixel_size_gamma_me.tif").exists()


def test_calibrated_intensity_levels_reach_the_fit_and_the_record(sim_dir, tmp_path):
    # The levels NAME.json records are the render's own: the normalised image is then 0.3 + 0.7 phi
    # blurred and with counting noise, so its mean over the nucleus matches the true phi's.
    eu, het = json.loads((sim_dir / "n1.json").read_text())["intensity_levels"]
    out = tmp_path / "out"
    args = [
        "infer",
        str(sim_dir / "n1_intensity.tif"),
        "--out",
        str(out),
        "--mask",
        str(sim_dir / "n1_mask.tif"),
        "--method",
        "direct",
        "--device",
        "cpu",
    ]
    # The direct read-out of a noisy, blurred image is no result (negative rates: status failed,
    # exit 1), but its record, written for inspection, carries the calibration all the same.
    assert main(args + ["--intensity-levels", str(eu), str(het)]) == 1
    rec = json.loads((out / "n1_intensity.json").read_text())
    assert rec["status"] == "failed" and "negative rates" in rec["status_reason"]
    assert rec["settings"]["euchromatin_level"] == pytest.approx(eu)
    assert rec["settings"]["heterochromatin_level"] == pytest.approx(het)
    assert rec["preprocessing"]["normalisation"]["levels"].startswith("given")
    assert "caution" not in rec["preprocessing"]
    mask = tifffile.imread(sim_dir / "n1_mask.tif") > 0
    phi_true = tifffile.imread(sim_dir / "n1_phi.tif")
    img = tifffile.imread(sim_dir / "n1_intensity.tif").astype(float)
    assert np.mean((img[mask] - eu) / (het - eu)) == pytest.approx(np.mean(phi_true[mask]), abs=0.03)
    # uncalibrated: the caution is recorded
    assert main(args[:3] + [str(tmp_path / "plain")] + args[4:]) == 1
    assert (
        "do not determine the rates"
        in json.loads((tmp_path / "plain" / "n1_intensity.json").read_text())["preprocessing"]["caution"]
    )


@pytest.mark.parametrize(
    "extra, words",
    [
        (
            ["--intensity-levels", "50", "15"],
            "heterochromatin_level (15.0) must be above euchromatin_level (50.0)",
        ),
        (
            ["--intensity-levels", "15", "50", "--input", "fraction"],
            "--intensity-levels calibrates intensity input",
        ),
    ],
)
def test_bad_intensity_levels_end_with_one_line(sim_dir, tmp_path, extra, words):
    with pytest.raises(SystemExit) as info:
        main(
            ["infer", str(sim_dir / "n1_intensity.tif"), "--out", str(tmp_path), "--method", "direct"] + extra
        )
    assert words in str(info.value) and "\n" not in str(info.value)
