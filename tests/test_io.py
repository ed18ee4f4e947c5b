"""Tests of the input/output layer: image and table readers, preprocessing, atomic writes."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile")

from napari_mollifier.io import (  # noqa: E402
    MAX_PIXELS,
    InputError,
    read_image,
    read_localisations,
    render_localisations,
)
from napari_mollifier.io._atomic import atomic_write_text  # noqa: E402
from napari_mollifier.io._preprocess import (  # noqa: E402
    check_fraction,
    check_mask,
    intensity_to_fraction,
    segment_nucleus,
)

# Words that start the "what to do" part of a one-line InputError message.
_FIX = re.compile(
    r"\b(re-?export|export|save|replace|crop|check|give|use|convert|fix|remove|draw|"
    r"let|at least|provide|choose)\b",
    re.IGNORECASE,
)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _image(shape=(64, 80), dtype=np.uint16, seed=0):
    return _rng(seed).integers(1, 4000, shape).astype(dtype)


def _assert_one_line_naming(exc: pytest.ExceptionInfo, path) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and "\r" not in msg, f"message is not a single line: {msg!r}"
    assert os.path.basename(str(path)) in msg, f"message does not name the file: {msg!r}"
    return msg


# --------------------------------------------------------------------------------------------
# read_image: pixel size and data
# --------------------------------------------------------------------------------------------


def test_read_image_imagej_pixel_size_and_data(tmp_path):
    a = _image((64, 80))
    path = tmp_path / "imagej.tif"
    tifffile.imwrite(path, a, imagej=True, resolution=(1 / 0.01, 1 / 0.01), metadata={"unit": "um"})
    img = read_image(path)
    assert img.pixel_size_nm == pytest.approx(10.0, rel=1e-6)
    assert img.data.shape == (64, 80)
    np.testing.assert_array_equal(img.data, a.astype(np.float64))
    assert img.path == str(path)


def test_read_image_ome_pixel_size_and_data(tmp_path):
    a = _image((70, 48), dtype=np.uint16, seed=1)
    path = tmp_path / "cell.ome.tif"
    tifffile.imwrite(
        path,
        a,
        ome=True,
        metadata={
            "PhysicalSizeX": 0.012,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": 0.012,
            "PhysicalSizeYUnit": "µm",
        },
    )
    img = read_image(path)
    assert img.pixel_size_nm == pytest.approx(12.0, rel=1e-6)
    assert img.data.shape == (70, 48)
    np.testing.assert_array_equal(img.data, a.astype(np.float64))


def test_read_image_plain_tiff_has_no_pixel_size(tmp_path):
    a = _rng(2).normal(100.0, 10.0, (40, 50)).astype(np.float32)
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, a)
    img = read_image(path)
    assert img.pixel_size_nm is None
    assert img.data.shape == (40, 50)
    np.testing.assert_array_equal(img.data, a.astype(np.float64))


# --------------------------------------------------------------------------------------------
# read_image: rejections
# --------------------------------------------------------------------------------------------


def _write_rgb(p):
    tifffile.imwrite(p, _rng(3).integers(0, 255, (64, 64, 3)).astype(np.uint8), photometric="rgb")


def _write_stack(p):
    tifffile.imwrite(p, _image((3, 64, 64)), photometric="minisblack")


def _write_nan(p):
    a = _rng(4).normal(100.0, 5.0, (64, 64)).astype(np.float32)
    a[10, 12] = np.nan
    a[30, 40] = np.nan
    tifffile.imwrite(p, a)


def _write_constant(p):
    tifffile.imwrite(p, np.full((64, 64), 7, np.uint16))


def _write_small(p):
    tifffile.imwrite(p, _image((16, 16)))


def _write_truncated(p):
    tifffile.imwrite(p, _image((256, 256)))
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])


def _write_text(p):
    p.write_text("this is not an image\n1,2,3\n")


def _write_nothing(p):
    pass


# (writer, file name, pattern the message must contain)
_BAD_IMAGES = {
    "rgb": (_write_rgb, "rgb.tif", r"RGB.*grayscale"),
    "stack": (_write_stack, "stack.tif", r"stack with axes \wYX \(\w=3, Y=64, X=64\).*--plane N \(0-2\)"),
    "nan": (_write_nan, "nan.tif", r"2 NaN/Inf pixels"),
    "constant": (_write_constant, "constant.tif", r"constant"),
    "small": (_write_small, "small.tif", r"16x16.*too small.*32x32"),
    "truncated": (_write_truncated, "truncated.tif", r"not a readable TIFF.*re-export"),
    "text": (_write_text, "notes.tif", r"not a readable TIFF.*re-export"),
    "missing": (_write_nothing, "missing.tif", r"not found"),
}


@pytest.mark.parametrize("case", list(_BAD_IMAGES))
def test_read_image_rejects_bad_input(tmp_path, case):
    writer, name, pattern = _BAD_IMAGES[case]
    path = tmp_path / name
    writer(path)
    with pytest.raises(InputError, match=pattern) as exc:
        read_image(path)
    _assert_one_line_naming(exc, path)


_NO_FIX_HINT = pytest.mark.xfail(
    strict=True,
    reason="BUG: message gives no fix, contrary to the InputError contract "
    "('one line naming the file and the fix')",
)


@pytest.mark.parametrize("case", list(_BAD_IMAGES))
def test_read_image_rejection_gives_a_fix(tmp_path, case):
    writer, name, _ = _BAD_IMAGES[case]
    path = tmp_path / name
    writer(path)
    with pytest.raises(InputError) as exc:
        read_image(path)
    msg = _assert_one_line_naming(exc, path)
    assert _FIX.search(msg.replace(str(path), "")), f"no fix hint in {msg!r}"


def test_read_image_rejects_too_large(tmp_path):
    path = tmp_path / "huge.tif"
    tifffile.imwrite(path, np.zeros((MAX_PIXELS // 4096 + 1, 4096), np.uint8))
    with pytest.raises(InputError, match=r"too large.*crop") as exc:
        read_image(path)
    _assert_one_line_naming(exc, path)


# --------------------------------------------------------------------------------------------
# read_localisations
# --------------------------------------------------------------------------------------------


def _xy(n=150, seed=5):
    r = _rng(seed)
    return r.uniform(0.0, 5000.0, n), r.uniform(0.0, 3000.0, n)


def _f(v) -> str:
    """Shortest round-tripping decimal text of a float."""
    return repr(float(v))


def test_read_localisations_thunderstorm_csv(tmp_path):
    x, y = _xy(150)
    lines = ['"id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]","uncertainty [nm]"']
    for i, (xi, yi) in enumerate(zip(x, y), start=1):
        lines.append(f"{i},{i // 10 + 1},{_f(xi)},{_f(yi)},120.5,{1000 + i}.0,8.25")
    path = tmp_path / "thunderstorm.csv"
    path.write_text("\n".join(lines) + "\n")
    xr, yr = read_localisations(path)
    np.testing.assert_array_equal(xr, x)
    np.testing.assert_array_equal(yr, y)


def test_read_localisations_tab_separated(tmp_path):
    x, y = _xy(120, seed=6)
    lines = ["frame\tx_nm\ty_nm\tphotons"]
    for i, (xi, yi) in enumerate(zip(x, y), start=1):
        lines.append(f"{i}\t{_f(xi)}\t{_f(yi)}\t{500 + i}")
    path = tmp_path / "locs.tsv"
    path.write_text("\n".join(lines) + "\n")
    xr, yr = read_localisations(path)
    np.testing.assert_array_equal(xr, x)
    np.testing.assert_array_equal(yr, y)


def test_read_localisations_two_column_tab(tmp_path):
    x, y = _xy(100, seed=7)
    path = tmp_path / "xy.txt"
    path.write_text("x_nm\ty_nm\n" + "".join(f"{_f(a)}\t{_f(b)}\n" for a, b in zip(x, y)))
    xr, yr = read_localisations(path)
    np.testing.assert_array_equal(xr, x)
    np.testing.assert_array_equal(yr, y)


def _table(path, header, rows):
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return path


def test_read_localisations_rejects_missing_xy_columns(tmp_path):
    path = _table(
        tmp_path / "noxy.csv", "frame,posA,posB,photons", [f"{i},{i * 1.5},{i * 2.5},100" for i in range(150)]
    )
    with pytest.raises(InputError, match=r"no x column") as exc:
        read_localisations(path)
    msg = _assert_one_line_naming(exc, path)
    for col in ("frame", "posA", "posB", "photons"):
        assert col in msg
    assert "nm" in msg and _FIX.search(msg.replace(str(path), ""))


def test_read_localisations_converts_micrometre_units(tmp_path):
    # A unit in the header is explicit: µm are converted, not refused.
    path = _table(
        tmp_path / "um.csv",
        '"id","frame","x [µm]","y [µm]"',
        [f"{i},1,{i * 0.01},{i * 0.02}" for i in range(150)],
    )
    x, y = read_localisations(path)
    np.testing.assert_allclose(x, np.arange(150) * 10.0)
    np.testing.assert_allclose(y, np.arange(150) * 20.0)


def test_read_localisations_rejects_non_numeric_row_with_line_number(tmp_path):
    rows = [f"{i},{i * 3.0},{i * 4.0}" for i in range(150)]
    rows[48] = "48,abc,192.0"  # file line 50 (header is line 1)
    path = _table(tmp_path / "bad_row.csv", "frame,x [nm],y [nm]", rows)
    with pytest.raises(InputError, match=r"\bline 50\b") as exc:
        read_localisations(path)
    msg = _assert_one_line_naming(exc, path)
    assert _FIX.search(msg.replace(str(path), ""))


def test_read_localisations_line_number_counts_comment_and_blank_lines(tmp_path):
    rows = [f"{i},{i * 3.0},{i * 4.0}" for i in range(150)]
    rows[10] = "10,n/a,40.0"
    path = tmp_path / "commented.csv"
    # lines 1-2 comment and blank, 3 header, data from line 4: row index 10 is file line 14
    path.write_text("# exported by some tool\n\nframe,x [nm],y [nm]\n" + "".join(r + "\n" for r in rows))
    with pytest.raises(InputError, match=r"\bline 14\b"):
        read_localisations(path)


def test_read_localisations_rejects_too_few_rows(tmp_path):
    path = _table(tmp_path / "few.csv", "x [nm],y [nm]", [f"{i * 1.0},{i * 2.0}" for i in range(99)])
    with pytest.raises(InputError, match=r"only 99 localisations.*at least 100") as exc:
        read_localisations(path)
    _assert_one_line_naming(exc, path)


def test_read_localisations_accepts_exactly_100_rows(tmp_path):
    path = _table(tmp_path / "hundred.csv", "x [nm],y [nm]", [f"{i * 1.0},{i * 2.0}" for i in range(100)])
    x, y = read_localisations(path)
    assert len(x) == len(y) == 100
    assert x[-1] == 99.0 and y[-1] == 198.0


def test_read_localisations_rejects_binary(tmp_path):
    path = tmp_path / "garbage.csv"
    path.write_bytes(bytes([0xFF, 0xFE, 0x00, 0x80, 0xC3, 0x28]) + _rng(8).bytes(2000))
    with pytest.raises(InputError, match=r"not a text table.*CSV") as exc:
        read_localisations(path)
    _assert_one_line_naming(exc, path)


def test_read_localisations_rejects_missing_file(tmp_path):
    path = tmp_path / "absent.csv"
    with pytest.raises(InputError, match="not found") as exc:
        read_localisations(path)
    _assert_one_line_naming(exc, path)


# --------------------------------------------------------------------------------------------
# render_localisations
# --------------------------------------------------------------------------------------------


def test_render_localisations_counts_in_right_pixels():
    # (x, y) in nm -> pixel (row = floor(y/10), col = floor(x/10))
    x = np.array([5.0, 15.0, 15.0, 10.0, 99.9, 0.0, 119.99, 3.0])
    y = np.array([5.0, 25.0, 29.0, 0.0, 0.0, 39.99, 39.0, 12.0])
    img = render_localisations(x, y, 10.0, shape=(4, 12))
    assert img.shape == (4, 12)
    expected = np.zeros((4, 12))
    for r, c in [(0, 0), (2, 1), (2, 1), (0, 1), (0, 9), (3, 0), (3, 11), (1, 0)]:
        expected[r, c] += 1
    np.testing.assert_array_equal(img, expected)


def test_render_localisations_origin_shift():
    x = np.array([105.0, 125.0])
    y = np.array([1005.0, 1015.0])
    img = render_localisations(x, y, 10.0, shape=(3, 4), origin_nm=(1000.0, 100.0))
    expected = np.zeros((3, 4))
    expected[0, 0] = 1
    expected[1, 2] = 1
    np.testing.assert_array_equal(img, expected)


def test_render_localisations_default_shape_keeps_every_point():
    x, y = _xy(5000, seed=9)
    img = render_localisations(x, y, 20.0)
    assert img.shape == (int(np.ceil(y.max() / 20.0)) + 1, int(np.ceil(x.max() / 20.0)) + 1)
    assert img.sum() == 5000
    assert (img >= 0).all()


@pytest.mark.parametrize("px", [0.0, -5.0, float("nan")])
def test_render_localisations_rejects_bad_pixel_size(px):
    x, y = _xy(100)
    with pytest.raises(InputError, match="pixel size must be positive"):
        render_localisations(x, y, px)


def test_render_localisations_rejects_too_many_pixels():
    x = np.array([0.0, 1e6])
    y = np.array([0.0, 1e6])
    with pytest.raises(InputError, match=r"larger pixel size|crop") as exc:
        render_localisations(x, y, 10.0)
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError, match=str(MAX_PIXELS)):
        render_localisations(x[:1], y[:1], 10.0, shape=(4097, 4096))


# --------------------------------------------------------------------------------------------
# segmentation and masks
# --------------------------------------------------------------------------------------------


def _ellipse(shape=(128, 128), center=(62.0, 66.0), axes=(42.0, 30.0)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - center[0]) / axes[0]) ** 2 + ((xx - center[1]) / axes[1]) ** 2 <= 1.0


def test_segment_nucleus_finds_ellipse_with_holes():
    r = _rng(10)
    truth = _ellipse()
    img = np.where(truth, 100.0, 10.0)
    yy, xx = np.mgrid[:128, :128]
    for cy, cx in [(50, 60), (70, 72), (40, 70), (85, 58), (62, 55)]:  # dark euchromatin holes
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= 16] = 25.0
    img += r.normal(0.0, 6.0, img.shape)
    mask = segment_nucleus(img)
    assert mask.shape == truth.shape and mask.dtype == bool
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou >= 0.9, iou
    # holes are filled: every hole centre is inside the mask
    for cy, cx in [(50, 60), (70, 72), (40, 70), (85, 58), (62, 55)]:
        assert mask[cy, cx]


def test_segment_nucleus_rejects_constant_image():
    with pytest.raises(InputError, match="constant"):
        segment_nucleus(np.full((64, 64), 3.0), name="flat.tif")


def test_check_mask_accepts_good_mask():
    m = _ellipse().astype(np.uint8) * 255
    out = check_mask(m, (128, 128))
    assert out.dtype == bool
    np.testing.assert_array_equal(out, _ellipse())


@pytest.mark.parametrize(
    "case,pattern",
    [
        ("empty", r"empty.*nonzero mask"),
        ("whole", r"whole image.*nucleus only"),
        ("shape", r"differs from the image shape.*use a mask made for this image"),
        ("tiny", r"only 900 pixels.*at least 40x40"),
        ("3d", r"differs from the image shape"),
    ],
)
def test_check_mask_rejects(case, pattern):
    shape = (128, 128)
    if case == "empty":
        m = np.zeros(shape, bool)
    elif case == "whole":
        m = np.ones(shape, bool)
    elif case == "shape":
        m = np.zeros((128, 100), bool)
        m[20:100, 20:80] = True
    elif case == "tiny":
        m = np.zeros(shape, bool)
        m[10:40, 10:40] = True
    else:
        m = np.ones((1, 128, 128), bool)
    with pytest.raises(InputError, match=pattern) as exc:
        check_mask(m, shape, name="mask.tif")
    assert "mask.tif" in str(exc.value) and "\n" not in str(exc.value)


def test_check_fraction_accepts_unit_interval():
    mask = _ellipse()
    phi = np.where(mask, _rng(11).uniform(0.0, 1.0, mask.shape), 0.0)
    assert check_fraction(phi, mask) is phi


@pytest.mark.parametrize("lo,hi", [(-0.6, 1.0), (0.0, 1.6), (-2.0, 3.0)])
def test_check_fraction_rejects_out_of_range(lo, hi):
    mask = _ellipse()
    phi = np.zeros(mask.shape)
    idx = np.argwhere(mask)
    phi[tuple(idx[0])] = lo
    phi[tuple(idx[1])] = hi
    with pytest.raises(InputError, match=r"\[0, 1\].*--input intensity"):
        check_fraction(phi, mask, name="phi.tif")


def test_check_fraction_ignores_values_outside_mask():
    mask = _ellipse()
    phi = np.where(mask, np.linspace(0.0, 1.0, mask.size).reshape(mask.shape), 50.0)
    check_fraction(phi, mask)


def test_check_fraction_rejects_almost_constant():
    mask = _ellipse()
    phi = np.where(mask, 0.5 + 0.01 * _rng(12).uniform(0.0, 1.0, mask.shape), 0.0)
    with pytest.raises(InputError, match=r"varies by only.*no domains"):
        check_fraction(phi, mask, name="phi.tif")


# --------------------------------------------------------------------------------------------
# intensity_to_fraction
# --------------------------------------------------------------------------------------------


def test_intensity_to_fraction_recovers_two_level_pattern():
    mask = _ellipse()
    yy, xx = np.mgrid[:128, :128]
    phi_true = np.zeros((128, 128))
    for cy, cx, rad in [(45, 60, 6), (70, 75, 8), (85, 55, 5), (60, 50, 4), (35, 72, 5)]:
        phi_true[(yy - cy) ** 2 + (xx - cx) ** 2 <= rad**2] = 1.0
    phi_true *= mask
    assert 0 < phi_true.sum() < mask.sum()
    image = 30.0 + 70.0 * phi_true
    image[~mask] = 5.0  # background does not enter the normalisation
    phi, norm = intensity_to_fraction(image, mask, smoothing_px=0)
    np.testing.assert_allclose(phi[mask], phi_true[mask], atol=1e-9)
    assert (phi[~mask] == 0).all()
    assert norm["euchromatin_level"] == pytest.approx(30.0, abs=1e-9)
    assert norm["heterochromatin_level"] == pytest.approx(100.0, abs=1e-9)
    assert 30.0 < norm["threshold"] < 100.0


def test_intensity_to_fraction_keeps_noise_white_and_unbiased():
    # The fit estimates the noise and denoises; the normalisation must not smooth (which hid
    # the noise from the estimate) nor clip inside the nucleus (which biases noisy pixels).
    from napari_mollifier.inverse import estimate_noise

    mask = _ellipse()
    yy, xx = np.mgrid[:128, :128]
    phi_true = (np.sin(xx / 5.0) > 0.3).astype(float) * mask
    rng = np.random.default_rng(0)
    image = 30.0 + 70.0 * phi_true + 14.0 * rng.standard_normal((128, 128))  # noise 0.2 in phi units
    phi, norm = intensity_to_fraction(image, mask)
    scale = norm["heterochromatin_level"] - norm["euchromatin_level"]
    assert scale == pytest.approx(70.0, rel=0.1)  # class medians of noisy pixels: ~5 % low
    assert estimate_noise(phi, mask) == pytest.approx(14.0 / scale, rel=0.15)
    assert np.mean(phi[mask]) == pytest.approx(np.mean(phi_true[mask]), abs=0.02)
    assert phi[mask].min() < -0.3  # not clipped inside the nucleus


def test_intensity_to_fraction_with_calibrated_levels_is_exact():
    # Domains whose plateaus are not 0 and 1 (as in the chr steady states): the Otsu class
    # medians stretch phi, calibrated levels do not.
    mask = _ellipse()
    yy, xx = np.mgrid[:128, :128]
    phi_true = np.where(np.sin(xx / 6.0) * np.cos(yy / 7.0) > 0.2, 0.8, 0.1) * mask
    image = 30.0 + 70.0 * phi_true
    phi, norm = intensity_to_fraction(image, mask, levels=(30.0, 100.0))
    np.testing.assert_allclose(phi[mask], phi_true[mask], atol=1e-12)
    assert norm["levels"].startswith("given")
    stretched, norm_otsu = intensity_to_fraction(image, mask, smoothing_px=0)
    assert norm_otsu["levels"].startswith("Otsu")
    np.testing.assert_allclose(stretched[mask], (phi_true[mask] - 0.1) / 0.7, atol=1e-9)  # 1.43x the contrast


@pytest.mark.parametrize("levels", [(100.0, 30.0), (50.0, 50.0), (np.nan, 10.0), (0.0, np.inf)])
def test_intensity_to_fraction_rejects_bad_levels(levels):
    mask = _ellipse()
    with pytest.raises(InputError, match=r"cal.tif: the intensity levels must be finite"):
        intensity_to_fraction(np.where(mask, 50.0, 0.0), mask, levels=levels, name="cal.tif")


def test_intensity_to_fraction_rejects_levels_that_miss_the_nucleus():
    mask = _ellipse()
    image = np.where(mask, 3000.0, 0.0) + 100.0 * (np.arange(128) % 7)[None, :]  # counts in the thousands
    with pytest.raises(
        InputError, match=r"cal.tif: the intensity levels 15 / 50 do not bracket.*unit and channel"
    ):
        intensity_to_fraction(image, mask, levels=(15.0, 50.0), name="cal.tif")


def test_intensity_to_fraction_rejects_uniform_nucleus():
    mask = _ellipse()
    image = np.where(mask, 50.0, 0.0)
    with pytest.raises(InputError, match="uniformly bright"):
        intensity_to_fraction(image, mask, smoothing_px=0, name="flat.tif")


# --------------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------------


def test_atomic_write_text_writes_content(tmp_path):
    path = tmp_path / "sub" / "dir" / "result.json"
    text = '{"phi": 0.25, "unit": "µm"}\n'
    out = atomic_write_text(path, text)
    assert out == path
    assert path.read_text(encoding="utf-8") == text
    atomic_write_text(path, "second\n")
    assert path.read_text(encoding="utf-8") == "second\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["result.json"]


def test_atomic_write_text_failure_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "result.txt"
    path.write_text("old complete content\n")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new content that never lands\n" * 1000)
    monkeypatch.undo()
    assert path.read_text() == "old complete content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.txt"]


def test_atomic_write_text_failure_without_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "fresh.txt"

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(path, "data")
    monkeypatch.undo()
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []
