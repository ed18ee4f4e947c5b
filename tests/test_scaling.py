"""The per-domain scaling-law estimate (docs/model.md, "Scaling law") against analytic lattices of discs,
its map comparison, its errors, and ``mollifier scaling`` end to end."""

import csv
import math

import numpy as np
import pytest
import tifffile

from napari_mollifier.cli import main
from napari_mollifier.io import InputError, write_tiff
from napari_mollifier.physics import ChromatinModel
from napari_mollifier.scaling import (
    DEFAULT_MIN_AREA_PX,
    DEFAULT_NEIGHBOURS,
    DEFAULT_PERCENTILE,
    DomainTable,
    compare_with_maps,
    domain_scaling_estimate,
    pearson_r,
    scaling_crosscheck,
    segment_domains,
)

SQRT3 = math.sqrt(3.0)


def disc(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def lattice(shape=(200, 200), a=30, r=6.0, n=6, first=15, kind="square"):
    """phi = 1 on discs of radius r (px) centred on a square (integer centres) or hexagonal lattice
    of spacing a (px); returns phi and the centres."""
    phi = np.zeros(shape)
    centres = []
    for i in range(n):
        for j in range(n):
            if kind == "square":
                cy, cx = first + a * i, first + a * j
            else:
                cy, cx = first + a * SQRT3 / 2 * i, first + a * j + (a / 2 if i % 2 else 0.0)
            phi[disc(shape, cy, cx, r)] = 1.0
            centres.append((cy, cx))
    return phi, np.array(centres, float)


def interior(table, lo, hi):
    """Domains whose centroids lie within [lo, hi] in both axes (all lattice neighbours present)."""
    return (
        (table.centroid_row >= lo)
        & (table.centroid_row <= hi)
        & (table.centroid_col >= lo)
        & (table.centroid_col <= hi)
    )


# --- (a) analytic lattices -----------------------------------------------------------------------


def test_square_lattice_radius_spacing_and_rates():
    a, r = 30, 6.0
    phi, _ = lattice(a=a, r=r)
    t = domain_scaling_estimate(phi, None, 10.0)
    assert len(t) == 36
    n_px = int(disc((40, 40), 20, 20, r).sum())  # the exact pixel count of one disc
    np.testing.assert_array_equal(t.area_px, n_px)
    # Equivalent-disc radius: a pixelated disc's area is pi r^2 to within its rim; 0.25 px here.
    assert np.all(np.abs(t.radius_nm / 10.0 - r) < 0.25)
    inner = interior(t, 15 + a, 15 + 4 * a)
    assert inner.sum() == 16
    # d: the mean distance to the 5 nearest = 4 at a and 1 (of 4 tied) at a sqrt(2); exact.
    d_px = a * (4 + math.sqrt(2)) / 5
    np.testing.assert_allclose(t.spacing_nm[inner], 10.0 * d_px, rtol=1e-12)
    # 10 nm pixels = 1 ell0: lengths in model units equal pixels; D = M A = 1.
    np.testing.assert_allclose(t.gamma_ac[inner], 1.0 / d_px**2, rtol=1e-12)
    r_px = math.sqrt(n_px / math.pi)
    np.testing.assert_allclose(t.gamma_me[inner], (1.0 / d_px**2) / ((d_px / r_px) ** 2 - 1), rtol=1e-12)
    # against the continuous radius r: the pixel count's rim error, ~2 dR/R in Gamma_me
    np.testing.assert_allclose(t.gamma_me[inner], (1.0 / d_px**2) / ((d_px / r) ** 2 - 1), rtol=0.05)
    # edge domains have neighbours farther away: their d is larger
    assert np.all(t.spacing_nm[~inner] > 10.0 * d_px)


def test_square_lattice_with_four_neighbours_gives_the_lattice_spacing():
    phi, _ = lattice()
    t = domain_scaling_estimate(phi, None, 10.0, neighbours=4)
    core = interior(t, 45, 135)  # all 4 nearest at a
    np.testing.assert_allclose(t.spacing_nm[core], 300.0, rtol=1e-12)


def test_hexagonal_lattice_spacing_and_centroids():
    a, r = 24.0, 5.0
    phi, centres = lattice(shape=(220, 220), a=a, r=r, n=8, first=12.3, kind="hex")
    t = domain_scaling_estimate(phi, None, 10.0)
    assert len(t) == 64
    # centroids of pixelated discs at non-integer centres: within 0.1 px of the true centres
    got = np.column_stack([t.centroid_row, t.centroid_col])
    dist = np.min(np.linalg.norm(got[:, None, :] - centres[None, :, :], axis=2), axis=1)
    assert dist.max() < 0.1
    # interior: 6 neighbours at a, so the 5 nearest are all at a
    inner = interior(t, 12.3 + a, 12.3 + 6 * a)
    assert inner.sum() >= 20
    np.testing.assert_allclose(t.spacing_nm[inner] / 10.0, a, rtol=0.01)
    np.testing.assert_allclose(t.gamma_ac[inner], 1.0 / a**2, rtol=0.02)
    np.testing.assert_allclose(t.gamma_me[inner], (1.0 / a**2) / ((a / r) ** 2 - 1), rtol=0.1)


# --- (b) the inverse identity --------------------------------------------------------------------


def test_rows_satisfy_r2_over_d2_equals_lambda_over_one_plus_lambda():
    rng = np.random.default_rng(4)
    phi = np.zeros((240, 240))
    for cy in range(20, 240, 40):
        for cx in range(20, 240, 40):
            phi[disc(phi.shape, cy + rng.integers(-5, 6), cx + rng.integers(-5, 6), rng.uniform(4, 11))] = 1.0
    t = domain_scaling_estimate(phi, None, 13.0)
    assert len(t) == 36 and np.isfinite(t.lam).all()
    R, d = t.radius_nm / 10.0, t.spacing_nm / 10.0
    np.testing.assert_allclose(R**2 / d**2, t.lam / (1 + t.lam), rtol=1e-12)
    np.testing.assert_allclose(t.gamma_me / t.gamma_ac, t.lam, rtol=1e-12)
    np.testing.assert_allclose(t.gamma_ac, 1.0 / d**2, rtol=1e-12)
    assert np.ptp(t.lam) > 0.05  # the radii differ, so the rows differ


# --- (c) units -----------------------------------------------------------------------------------


def test_doubling_the_pixel_size_quarters_the_rates():
    phi, _ = lattice()
    t1 = domain_scaling_estimate(phi, None, 10.0)
    t2 = domain_scaling_estimate(phi, None, 20.0)
    np.testing.assert_allclose(t2.gamma_ac, t1.gamma_ac / 4, rtol=1e-12)
    np.testing.assert_allclose(t2.gamma_me, t1.gamma_me / 4, rtol=1e-12)
    np.testing.assert_allclose(t2.lam, t1.lam, rtol=1e-12)
    np.testing.assert_allclose(t2.radius_nm, 2 * t1.radius_nm, rtol=1e-12)
    np.testing.assert_allclose(t2.spacing_nm, 2 * t1.spacing_nm, rtol=1e-12)


def test_model_sets_length_unit_and_diffusivity():
    phi, _ = lattice()
    base = domain_scaling_estimate(phi, None, 10.0)
    # ell0 = 20 nm: lengths in model units halve, rates in 1/tau grow 4x
    np.testing.assert_allclose(
        domain_scaling_estimate(phi, None, 10.0, model=ChromatinModel(ell0_nm=20.0)).gamma_ac,
        4 * base.gamma_ac,
        rtol=1e-12,
    )
    # D = M A
    t = domain_scaling_estimate(phi, None, 10.0, model=ChromatinModel(mobility=2.0, bulk=1.5))
    np.testing.assert_allclose(t.gamma_ac, 3 * base.gamma_ac, rtol=1e-12)
    np.testing.assert_allclose(t.gamma_me, 3 * base.gamma_me, rtol=1e-12)
    assert t.meta["diffusivity"] == 3.0
    t = domain_scaling_estimate(phi, None, 10.0, diffusivity=0.5)
    np.testing.assert_allclose(t.gamma_ac, 0.5 * base.gamma_ac, rtol=1e-12)


# --- segmentation details and (d) errors -----------------------------------------------------------


def test_small_components_dropped_and_mask_respected():
    phi, _ = lattice()
    speck = phi.copy()
    for y, x in ((1, 1), (30, 30), (60, 90)):
        speck[y, x] = 1.0  # single-pixel specks between the discs
    labels, thr = segment_domains(speck, None)
    assert labels.max() == 36 and thr == 0.0
    assert segment_domains(speck, None, min_area_px=1)[0].max() == 39
    # numbered 1..N in raster order
    t = domain_scaling_estimate(phi, None, 10.0)
    np.testing.assert_array_equal(t.label, np.arange(1, 37))
    assert np.all(np.diff(t.centroid_row) >= 0)
    # a mask that leaves out the last lattice row and column
    mask = np.zeros_like(phi, bool)
    mask[:150, :150] = True
    t = domain_scaling_estimate(phi, mask, 10.0)
    assert len(t) == 25 and not t.touches_edge.any()
    # a mask cutting discs: those are flagged
    mask[:, 140:] = False
    t = domain_scaling_estimate(phi, mask, 10.0)
    assert t.touches_edge.sum() == 5 and np.all(t.centroid_col[t.touches_edge] > 130)


def test_percentile_sets_the_threshold():
    yy, xx = np.mgrid[:200, :200]
    phi = 0.5 + 0.5 * np.cos(2 * np.pi * yy / 25) * np.cos(2 * np.pi * xx / 25)
    for p in (60, 80):
        labels, thr = segment_domains(phi, None, percentile=p)
        assert thr == pytest.approx(np.percentile(phi, p))
        assert (labels > 0).mean() == pytest.approx(1 - p / 100, abs=0.01)


def test_domain_with_d_not_above_r_gets_nan_rates_and_a_reason():
    phi = np.zeros((200, 200))
    phi[99:102, 20:180] = 1.0  # a bar: area 480 px, equivalent radius 12.4 px
    for cy, cx in ((92, 100), (108, 100), (92, 90), (108, 90), (92, 110), (108, 110)):
        phi[disc(phi.shape, cy, cx, 2)] = 1.0  # dots beside its centre, 8-14 px away
    t = domain_scaling_estimate(phi, None, 10.0)
    bar = int(np.argmax(t.area_px))
    assert t.spacing_nm[bar] <= t.radius_nm[bar]
    assert np.isnan(t.gamma_ac[bar]) and np.isnan(t.gamma_me[bar]) and np.isnan(t.lam[bar])
    assert "d <= R" in t.note[bar]
    others = np.arange(len(t)) != bar
    assert np.isfinite(t.gamma_me[others]).all() and all(n == "" for n in t.note[others])
    s = t.summary()
    assert s["domains"] == 7 and s["domains_with_rates"] == 6


@pytest.mark.parametrize(
    "case, match",
    [
        ("empty_mask", "mask is empty"),
        ("constant", "no chromatin domain"),
        ("too_few", "needs at least 6"),
        ("mask_shape", "mask shape"),
        ("nan", "NaN"),
    ],
)
def test_bad_input_raises_one_line_input_error(case, match):
    phi, _ = lattice()
    mask = None
    if case == "empty_mask":
        mask = np.zeros_like(phi)
    elif case == "constant":
        phi = np.full_like(phi, 0.3)
    elif case == "too_few":
        phi = np.zeros_like(phi)
        for c in (30, 90, 150):
            phi[disc(phi.shape, c, c, 6)] = 1.0
    elif case == "mask_shape":
        mask = np.ones((10, 10))
    elif case == "nan":
        phi[5, 5] = np.nan
    with pytest.raises(InputError, match=match) as info:
        domain_scaling_estimate(phi, mask, 10.0, name="cell.tif")
    assert "\n" not in str(info.value) and str(info.value).startswith("cell.tif: ")


@pytest.mark.parametrize(
    "kw", [{"percentile": 0}, {"percentile": 100}, {"neighbours": 0}, {"min_area_px": 0}]
)
def test_invalid_options_raise_value_error(kw):
    phi, _ = lattice()
    with pytest.raises(ValueError, match=next(iter(kw))):
        domain_scaling_estimate(phi, None, 10.0, **kw)


def test_invalid_pixel_size():
    with pytest.raises(ValueError, match="pixel_size_nm"):
        domain_scaling_estimate(lattice()[0], None, 0.0)


# --- comparison with maps ------------------------------------------------------------------------


def test_compare_with_constant_and_linear_maps():
    phi, _ = lattice()
    t = domain_scaling_estimate(phi, None, 10.0)
    yy, xx = np.mgrid[:200, :200].astype(float)
    me = 0.001 + 1e-5 * xx  # linear: the mean over a symmetric disc is the value at its centre
    ac = np.full(phi.shape, 0.004)
    ac[0, :] = np.nan  # NaN pixels (outside the analysed region) are ignored
    c = compare_with_maps(t, me, ac)
    assert t.map_gamma_me is None  # a copy
    np.testing.assert_allclose(c.map_gamma_me, 0.001 + 1e-5 * c.centroid_col, rtol=1e-12)
    np.testing.assert_allclose(c.map_gamma_ac, 0.004, rtol=1e-12)
    np.testing.assert_allclose(c.map_lam, c.map_gamma_me / 0.004, rtol=1e-12)
    s = c.summary()
    assert s["ratio_gamma_ac"] == pytest.approx(np.mean(t.gamma_ac) / 0.004, rel=1e-12)
    assert s["ratio_gamma_me"] == pytest.approx(np.mean(t.gamma_me) / np.mean(c.map_gamma_me), rel=1e-12)
    assert math.isnan(s["r_gamma_ac"])  # constant map: r undefined
    assert s["domains_compared"] == 36


def test_compare_with_maps_painted_from_the_estimate():
    rng = np.random.default_rng(7)
    phi = np.zeros((240, 240))
    for cy in range(20, 240, 40):
        for cx in range(20, 240, 40):
            phi[disc(phi.shape, cy, cx, rng.uniform(4, 11))] = 1.0
    t = domain_scaling_estimate(phi, None, 10.0)
    me, ac = np.full(phi.shape, np.nan), np.full(phi.shape, np.nan)
    for k, g_me, g_ac in zip(t.label, t.gamma_me, t.gamma_ac):
        me[t.labels == k], ac[t.labels == k] = 2 * g_me, 0.5 * g_ac
    s = compare_with_maps(t, me, ac).summary()
    assert s["ratio_gamma_me"] == pytest.approx(0.5) and s["ratio_gamma_ac"] == pytest.approx(2.0)
    assert s["r_gamma_me"] == pytest.approx(1.0) and s["r_gamma_ac"] == pytest.approx(1.0)
    # anti-correlated maps give r = -1
    s = compare_with_maps(t, -me, -ac).summary()
    assert s["r_gamma_me"] == pytest.approx(-1.0)
    with pytest.raises(InputError, match="shape"):
        compare_with_maps(t, me[:10], ac)


def test_pearson_r_edge_cases():
    assert math.isnan(pearson_r(np.ones(5), np.arange(5.0)))
    assert math.isnan(pearson_r(np.arange(2.0), np.arange(2.0)))
    assert pearson_r(np.arange(5.0), 3 * np.arange(5.0) + 1) == pytest.approx(1.0)


def test_table_rows_and_csv(tmp_path):
    phi, _ = lattice()
    t = domain_scaling_estimate(phi, None, 10.0)
    assert isinstance(t, DomainTable)
    rows = t.to_rows()
    assert len(rows) == 36 and set(rows[0]) == set(t.columns)
    assert isinstance(rows[0]["gamma_ac"], float) and isinstance(rows[0]["label"], int)
    path = tmp_path / "t.csv"
    t.to_csv(path)
    back = list(csv.DictReader(path.open()))
    assert len(back) == 36
    np.testing.assert_allclose([float(r["gamma_ac"]) for r in back], t.gamma_ac, rtol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


# --- (e) the command line, end to end ------------------------------------------------------------


@pytest.fixture
def files(tmp_path):
    phi, _ = lattice()
    mask = np.zeros(phi.shape, np.uint8)
    mask[2:198, 2:198] = 1
    write_tiff(tmp_path / "cell.tif", phi.astype(np.float32), 10.0)
    write_tiff(tmp_path / "cell_mask.tif", mask, 10.0)
    return tmp_path, phi, mask.astype(bool)


def read_csv(path):
    return list(csv.DictReader(path.open()))


def test_cli_defaults_match_the_api():
    from napari_mollifier.cli import build_parser

    a = build_parser().parse_args(["scaling", "x.tif"])
    assert (a.percentile, a.neighbours, a.min_area) == (
        DEFAULT_PERCENTILE,
        DEFAULT_NEIGHBOURS,
        DEFAULT_MIN_AREA_PX,
    )


def test_cli_scaling_writes_rows_and_a_summary_line(files, capsys):
    d, phi, mask = files
    out = d / "out"
    assert (
        main(
            [
                "scaling",
                str(d / "cell.tif"),
                "--mask",
                str(d / "cell_mask.tif"),
                "--input",
                "fraction",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and "36 domains" in line and str(out / "cell_domains.csv") in line
    rows = read_csv(out / "cell_domains.csv")
    ref = domain_scaling_estimate(phi, mask, 10.0)
    assert len(rows) == 36 and "map_gamma_me" not in rows[0]
    np.testing.assert_allclose([float(r["gamma_me"]) for r in rows], ref.gamma_me, rtol=1e-5)
    assert sorted(p.name for p in out.iterdir()) == ["cell_domains.csv"]  # no temporary file left
    # intensity input (affine in phi, 20 nm smoothing) finds the same domains
    write_tiff(d / "cell_int.tif", (100 + 1000 * phi).astype(np.uint16), 10.0)
    assert (
        main(["scaling", str(d / "cell_int.tif"), "--mask", str(d / "cell_mask.tif"), "--out", str(out)]) == 0
    )
    assert len(read_csv(out / "cell_int_domains.csv")) == 36


def test_cli_scaling_with_maps(files, capsys):
    d, phi, mask = files
    maps = d / "maps"
    me = np.where(mask, 0.002, np.nan).astype(np.float32)
    ac = np.where(mask, 0.004, np.nan).astype(np.float32)
    write_tiff(maps / "cell_gamma_me.tif", me, 10.0)
    write_tiff(maps / "cell_gamma_ac.tif", ac, 10.0)
    assert (
        main(
            [
                "scaling",
                str(d / "cell.tif"),
                "--mask",
                str(d / "cell_mask.tif"),
                "--input",
                "fraction",
                "--maps",
                str(maps),
                "--out",
                str(d),
            ]
        )
        == 0
    )
    line = capsys.readouterr().out
    assert "scaling/maps" in line
    rows = read_csv(d / "cell_domains.csv")
    np.testing.assert_allclose([float(r["map_gamma_me"]) for r in rows], 0.002, rtol=1e-6)
    np.testing.assert_allclose([float(r["map_lam"]) for r in rows], 0.5, rtol=1e-6)
    # the same through the API with arrays
    t = scaling_crosscheck(d / "cell.tif", mask=d / "cell_mask.tif", input="fraction", maps=(me, ac))
    assert t.summary()["ratio_gamma_me"] == pytest.approx(np.mean(t.gamma_me) / 0.002, rel=1e-6)


def test_cli_scaling_errors_are_one_line(files, capsys):
    d, phi, mask = files
    base = [
        "scaling",
        str(d / "cell.tif"),
        "--mask",
        str(d / "cell_mask.tif"),
        "--input",
        "fraction",
        "--out",
        str(d / "out"),
    ]
    # maps missing
    assert main(base + ["--maps", str(d / "nowhere")]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cell_gamma_me.tif: rate map not found" in err and "mollifier infer" in err
    # maps at another pixel size
    write_tiff(d / "m" / "cell_gamma_me.tif", np.zeros(phi.shape, np.float32), 20.0)
    write_tiff(d / "m" / "cell_gamma_ac.tif", np.ones(phi.shape, np.float32), 20.0)
    assert main(base + ["--maps", str(d / "m")]) == 1
    assert "20 nm per pixel" in capsys.readouterr().err
    # no pixel size in the file
    tifffile.imwrite(d / "bare.tif", phi.astype(np.float32))
    assert (
        main(["scaling", str(d / "bare.tif"), "--mask", str(d / "cell_mask.tif"), "--input", "fraction"]) == 1
    )
    err = capsys.readouterr().err.strip()
    assert "bare.tif: no pixel size" in err and "--pixel-size" in err
    # no domains: a constant nucleus
    write_tiff(d / "flat.tif", np.where(mask, 0.5, 0.0).astype(np.float32), 10.0)
    assert (
        main(
            [
                "scaling",
                str(d / "flat.tif"),
                "--mask",
                str(d / "cell_mask.tif"),
                "--input",
                "fraction",
                "--percentile",
                "99.9",
                "--out",
                str(d / "out"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "flat.tif" in err
    # empty mask
    write_tiff(d / "empty_mask.tif", np.zeros(phi.shape, np.uint8), 10.0)
    assert (
        main(["scaling", str(d / "cell.tif"), "--mask", str(d / "empty_mask.tif"), "--input", "fraction"])
        == 1
    )
    assert "mask is empty" in capsys.readouterr().err
    # an invalid option value
    assert main(base + ["--percentile", "100"]) == 1
    assert "percentile" in capsys.readouterr().err
    assert not (d / "out").exists() or not list((d / "out").iterdir())
