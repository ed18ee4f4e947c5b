"""Microscope renders of a simulated nucleus: counts, PSF, detector, binning and SMLM tables.

Each check compares the render with what its physics says (expected counts, the PSF's second
moment, the per-localisation precision, the blinking mean) on synthetic fields, not on a fit.
"""

import math

import numpy as np
import pytest

from napari_mollifier.simulate import MODALITIES, render_microscope, render_smlm


def _uniform(size=128, value=0.5):
    return np.full((size, size), value), np.ones((size, size), bool)


def _delta(size=128):
    phi = np.zeros((size, size))
    phi[size // 2, size // 2] = 1.0
    return phi, np.ones((size, size), bool)


def test_mean_and_variance_of_a_uniform_region_follow_gain_photons_density_offset():
    # Interior of a uniform phi = 0.5 field, away from the dark border the blur pulls in.
    phi, mask = _uniform(160)
    gain, offset, photons, bg, eu = 2.5, 100.0, 100.0, 3.0, 0.3
    r = render_microscope(
        phi,
        mask,
        10.0,
        modality="airyscan",
        photons=photons,
        gain=gain,
        offset=offset,
        background=bg,
        read_noise=0.0,
        euchromatin_level=eu,
        seed=3,
    )
    inner = r.image[40:-40, 40:-40]
    lam = photons * (eu + (1 - eu) * 0.5) + bg  # 68 photons per pixel
    expected = gain * lam + offset
    sd_of_mean = gain * math.sqrt(lam / inner.size)
    assert abs(inner.mean() - expected) < 3 * sd_of_mean, (inner.mean(), expected)
    # Poisson counts before the gain: variance = gain^2 lam, so (variance / (mean - offset)) = gain.
    assert inner.var() / (inner.mean() - offset) == pytest.approx(gain, rel=0.05)
    assert r.truth["gain"] == gain and r.truth["offset"] == offset and r.truth["photons"] == photons


def test_read_noise_adds_its_variance():
    phi, mask = _uniform(160)
    kw = dict(modality="confocal", gain=1.0, offset=50.0, background=0.0, photons=20.0, seed=4)
    plain = render_microscope(phi, mask, 10.0, read_noise=0.0, **kw).image[40:-40, 40:-40]
    noisy = render_microscope(phi, mask, 10.0, read_noise=6.0, **kw).image[40:-40, 40:-40]
    assert noisy.var() - plain.var() == pytest.approx(36.0, rel=0.15)


@pytest.mark.parametrize("px", [10.0, 40.0, 80.0])
@pytest.mark.parametrize("modality", sorted(MODALITIES))
def test_psf_width_from_the_second_moment_of_a_point(modality, px):
    # Also on coarse simulation grids, where the STED PSF (sigma 21 nm) is a fraction of a pixel.
    phi, mask = _delta(161)
    r = render_microscope(
        phi,
        mask,
        px,
        modality=modality,
        photons=1e7,
        background=0.0,
        gain=1.0,
        offset=0.0,
        read_noise=0.0,
        euchromatin_level=0.0,
    )
    img = r.image
    y, x = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    m = img.sum()
    cx, cy = (img * x).sum() / m, (img * y).sum() / m
    sigma_x = math.sqrt((img * (x - cx) ** 2).sum() / m) * px
    sigma_y = math.sqrt((img * (y - cy) ** 2).sum() / m) * px
    want = MODALITIES[modality].psf_fwhm_nm / 2.3548
    assert r.truth["psf_sigma_nm"] == pytest.approx(want, rel=1e-4)
    assert sigma_x == pytest.approx(want, rel=0.05) and sigma_y == pytest.approx(want, rel=0.05)


def test_binning_sums_the_counts_of_the_fine_grid():
    # Same seed, same photons per simulation pixel: the 4x4-binned image is the block sum of the
    # fine one (gain, offset applied once per rendered pixel), and photons are per rendered pixel.
    rng = np.random.default_rng(0)
    phi, mask = rng.random((130, 130)), np.ones((130, 130), bool)
    kw = dict(modality="sted", background=1.0, read_noise=0.0, seed=7)
    fine = render_microscope(phi, mask, 10.0, photons=5.0, gain=1.0, offset=0.0, **kw)
    coarse = render_microscope(
        phi,
        mask,
        10.0,
        photons=80.0,
        background=16.0,
        gain=3.0,
        offset=10.0,
        render_pixel_size_nm=40.0,
        **{k: v for k, v in kw.items() if k != "background"},
    )
    assert coarse.image.shape == (32, 32) and coarse.truth["pixel_size_nm"] == 40.0
    blocks = fine.image[:128, :128].reshape(32, 4, 32, 4).sum(axis=(1, 3))
    np.testing.assert_allclose(coarse.image, 3.0 * blocks + 10.0)
    assert coarse.mask.shape == (32, 32) and coarse.mask.all()


def test_binned_heterochromatin_pixel_has_the_requested_photons():
    phi, mask = _uniform(160, 1.0)
    r = render_microscope(
        phi,
        mask,
        10.0,
        modality="confocal",
        photons=40.0,
        background=0.0,
        gain=1.0,
        offset=0.0,
        read_noise=0.0,
        render_pixel_size_nm=80.0,
        seed=2,
    )
    inner = r.image[5:-5, 5:-5]
    assert abs(inner.mean() - 40.0) < 3 * math.sqrt(40.0 / inner.size)
    assert r.truth["intensity_levels"] == [pytest.approx(12.0), pytest.approx(40.0)]


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(modality="widefield"), "modality must be one of"),
        (dict(gain=0.0), "gain must be > 0"),
        (dict(photons=-1.0), "photons must be > 0"),
        (dict(psf_fwhm_nm=float("nan")), "PSF FWHM"),
        (dict(background=-2.0), "background must be >= 0"),
        (dict(render_pixel_size_nm=25.0), "not a whole multiple"),
        (dict(euchromatin_level=1.5), "euchromatin_level"),
    ],
)
def test_bad_render_arguments_give_one_line_errors(kwargs, words):
    phi, mask = _uniform(32)
    with pytest.raises(ValueError, match=words) as err:
        render_microscope(phi, mask, 10.0, **kwargs)
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def smlm():
    phi, mask = _uniform(200, 1.0)
    mask[:20], mask[-20:], mask[:, :20], mask[:, -20:] = False, False, False, False
    return render_smlm(phi, mask, 10.0, emitters_per_um2=2000.0, localisations_per_emitter=3.0, seed=1)


def test_smlm_precision_column_and_the_spread_around_each_emitter(smlm):
    t = smlm.table
    prec = t[:, 6]
    assert prec.min() >= 10.0 and prec.max() <= 25.0
    assert np.median(prec) == pytest.approx(15.0, rel=0.1) and prec.std() > 1.0  # drawn, not constant
    d = (t[:, 2:4] - smlm.emitter_xy_nm[smlm.emitter]) / prec[:, None]
    assert d.std() == pytest.approx(1.0, rel=0.1)
    rms = np.sqrt(((t[:, 2:4] - smlm.emitter_xy_nm[smlm.emitter]) ** 2).mean(axis=0))
    np.testing.assert_allclose(rms, np.sqrt((prec**2).mean()), rtol=0.1)


def test_smlm_localisations_per_emitter_and_emitter_density(smlm):
    counts = np.bincount(smlm.emitter, minlength=smlm.truth["emitters"])
    assert counts.mean() == pytest.approx(3.0, rel=0.1) and counts.min() >= 1 and counts.max() > 5
    area_um2 = (160 * 0.01) ** 2  # the 160^2 nucleus at 10 nm, pure heterochromatin
    assert smlm.truth["emitters"] == pytest.approx(2000.0 * area_um2, rel=0.05)
    assert smlm.truth["localisations"] == len(smlm.table)


def test_bad_smlm_arguments_give_one_line_errors():
    phi, mask = _uniform(16)
    for kwargs, words in [
        (dict(localisations_per_emitter=0.5), "localisations_per_emitter must be >= 1"),
        (dict(precision_range_nm=(25.0, 10.0)), "precision range"),
        (dict(emitters_per_um2=0.0), "emitters_per_um2"),
    ]:
        with pytest.raises(ValueError, match=words) as err:
            render_smlm(phi, mask, 10.0, **kwargs)
        assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------
# mollifier simulate --modality


def _simulate(out, *extra):
    from napari_mollifier.cli import main

    base = ["simulate", "--out", str(out), "--name", "n", "--size", "64", "--mask", "circle", "--seed", "2"]
    return main(base + list(extra))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("renders")
    extra = ["--modality", "confocal", "smlm", "--render-pixel-size", "20", "--gain", "4", "--offset", "90"]
    assert _simulate(out, *extra) == 0
    return out


def test_cli_writes_the_renders_and_their_truth(rendered):
    import json

    import tifffile

    from napari_mollifier.io import read_image, read_localisations
    from napari_mollifier.io._readers import _pixel_size_from_tiff

    rec = json.loads((rendered / "n.json").read_text())
    conf = rec["renders"]["confocal"]
    assert (conf["gain"], conf["offset"], conf["psf_fwhm_nm"]) == (4.0, 90.0, 250.0)
    assert conf["pixel_size_nm"] == 20.0 and conf["bin_factor"] == 2
    assert conf["files"] == ["n_confocal.tif", "n_confocal_mask.tif"]
    with tifffile.TiffFile(rendered / "n_confocal.tif") as tif:
        img = tif.asarray()
        assert _pixel_size_from_tiff(tif)[0] == pytest.approx(20.0, rel=1e-6)
    assert img.dtype == np.float32 and list(img.shape) == conf["shape"] == [32, 32]
    inside = tifffile.imread(rendered / "n_confocal_mask.tif").astype(bool)
    assert 0.5 < inside.mean() < 0.8  # the circle's block majority on the 20 nm pixels
    assert np.median(img[~inside]) < np.median(img[inside])  # the exterior has background only
    assert "gain" not in json.dumps(read_image(rendered / "n_confocal.tif").metadata.get("info", {}))
    sm = rec["renders"]["smlm"]
    x, y = read_localisations(rendered / "n_smlm.csv")
    assert len(x) == sm["localisations"] > sm["emitters"] > 0
    prec = np.loadtxt(rendered / "n_smlm.csv", delimiter=",", skiprows=1)[:, 6]
    assert prec.min() >= 10.0 and prec.max() <= 25.0


def test_cli_renders_leave_the_default_outputs_unchanged(rendered, tmp_path):
    import json

    import tifffile

    from napari_mollifier.io import read_image

    assert _simulate(tmp_path) == 0
    rec = json.loads((tmp_path / "n.json").read_text())
    assert "renders" not in rec and rec["photons"] == 50.0
    for f in ("n_intensity.tif", "n_phi.tif", "n_mask.tif"):
        # Pixels and the stored record (an OME-TIFF's UUID differs between any two writes).
        np.testing.assert_array_equal(tifffile.imread(tmp_path / f), tifffile.imread(rendered / f), err_msg=f)
        a, b = (read_image(d / f, allow_constant=True).metadata.get("info") for d in (tmp_path, rendered))
        assert a == b, f
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["n.json", "n_intensity.tif", "n_phi.tif", "n_mask.tif", "n_gamma_me_true.tif", "n_gamma_ac_true.tif"]
    )


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--gain", "2"], "--gain needs --modality sted, airyscan or confocal"),
        (["--modality", "smlm", "--psf-fwhm-nm", "80"], "--psf-fwhm-nm needs --modality"),
        (["--modality", "sted", "--localisations-per-emitter", "2"], "needs --modality smlm"),
        (["--modality", "sted", "--render-pixel-size", "25"], "not a whole multiple"),
        (["--modality", "confocal", "--gain", "-1"], "gain must be > 0"),
        (
            ["--modality", "smlm", "--localisations-per-emitter", "0.5"],
            "localisations_per_emitter must be >= 1",
        ),
    ],
)
def test_cli_bad_render_options_give_one_line_errors_before_simulating(tmp_path, extra, words):
    with pytest.raises(SystemExit) as err:
        _simulate(tmp_path / "out", *extra)
    msg = str(err.value.code)
    assert msg.startswith("mollifier simulate: ") and words in msg and "\n" not in msg
    assert not (tmp_path / "out").exists()
