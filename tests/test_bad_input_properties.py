"""Property-based tests (hypothesis): generated bad inputs are rejected with a one-line InputError
that names the file, by the readers, by preprocessing, end to end by ``infer_rates``, and by
``infer_file`` as status "failed" with a one-line reason (never another exception type).

Each example counts itself in ``CASES``; the module prints the counts when it ends (``pytest -s``
shows them): how many bad inputs of each kind were tried.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tifffile
from _batch_data import variant
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_mollifier import infer_rates
from napari_mollifier.batch import infer_file
from napari_mollifier.config import InferenceSettings
from napari_mollifier.io import (
    MAX_PIXELS,
    InputError,
    MissingUnitError,
    check_mask,
    read_image,
    read_localisations,
    render_localisations,
    write_tiff,
)

# conftest.py flushes denormals to zero (torch.set_flush_denormal), so hypothesis must not draw them.
CASES: Counter = Counter()
_ids = itertools.count()
QUICK = InferenceSettings(steps=3, device="cpu")
PROPS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    total = sum(CASES.values())
    print(f"\nbad-input cases tried: {total} ({', '.join(f'{k} {v}' for k, v in sorted(CASES.items()))})")


def _name(tmp_path: Path, kind: str, suffix: str = ".tif") -> Path:
    return tmp_path / f"{kind}_{next(_ids)}{suffix}"


def _assert_input_error(call, path: Path) -> str:
    """``call()`` raises InputError (not a subclass of anything else we did not mean) with one line
    naming ``path``; returns the message."""
    with pytest.raises(Exception) as exc:  # noqa: PT011 - the type is checked exactly below
        call()
    # MissingUnitError: the InputError of a table whose units are not stated (it says which).
    assert type(exc.value) in (InputError, MissingUnitError), f"{type(exc.value).__name__}: {exc.value}"
    msg = str(exc.value)
    assert "\n" not in msg and "\r" not in msg, msg
    assert path.name in msg, msg
    return msg


def _assert_failed_result(path: Path, expected: str, **kw) -> None:
    """``infer_file`` reports the same one-line InputError message as status "failed"."""
    r = infer_file(path, path.parent / "out", settings=QUICK, **kw)
    assert (r.status, r.reason) == ("failed", expected)


# ------------------------------------------------------------------------------------------ images
dims = st.integers(32, 72)
int_dtypes = st.sampled_from([np.uint8, np.uint16, np.int16, np.int32])
float_dtypes = st.sampled_from([np.float32, np.float64])


IMAGE_KINDS = [
    "rgb",
    "stack",
    "channels",
    "nonfinite",
    "constant",
    "tiny",
    "truncated",
    "garbage",
    "line",
    "complex",
]


@st.composite
def bad_tiffs(draw, kind: str):
    """(kind, writer(path)) of a TIFF of the given kind that must be rejected whatever its details."""
    h, w = draw(dims), draw(dims)
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if kind == "rgb":
        c = draw(st.sampled_from([3, 4]))
        dt = draw(st.sampled_from([np.uint8, np.uint16]))
        a = rng.integers(0, 200, (h, w, c)).astype(dt)
        return kind, lambda p: tifffile.imwrite(p, a, photometric="rgb")
    if kind == "stack":
        z = draw(st.integers(2, 5))
        a = rng.integers(0, 4000, (z, h, w)).astype(draw(int_dtypes))
        ij = draw(st.booleans()) and a.dtype in (np.uint8, np.uint16)
        return kind, lambda p: tifffile.imwrite(p, a, imagej=ij, photometric="minisblack")
    if kind == "channels":
        a = rng.random((h, w, 2)).astype(np.float32)
        return kind, lambda p: tifffile.imwrite(p, a, photometric="minisblack", planarconfig="contig")
    if kind == "nonfinite":
        a = rng.normal(100, 10, (h, w)).astype(draw(float_dtypes))
        n = draw(st.integers(1, 20))
        vals = draw(st.lists(st.sampled_from([np.nan, np.inf, -np.inf]), min_size=n, max_size=n))
        a.flat[rng.choice(a.size, n, replace=False)] = vals
        if draw(st.booleans()):
            a[:] = draw(st.sampled_from([np.nan, np.inf]))  # all of it
        return kind, lambda p: tifffile.imwrite(p, a)
    if kind == "constant":
        v = draw(st.one_of(st.integers(0, 255), st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False)))
        dt = np.uint8 if isinstance(v, int) else np.float32
        a = np.full((h, w), v, dt)
        return kind, lambda p: write_tiff(p, a, 10.0)
    if kind == "tiny":
        th, tw = draw(st.integers(2, 31)), draw(st.integers(2, 200))
        a = rng.integers(0, 4000, (th, tw) if draw(st.booleans()) else (tw, th)).astype(np.uint16)
        return kind, lambda p: write_tiff(p, a, 10.0)
    if kind == "truncated":
        a = rng.integers(0, 4000, (h, w)).astype(draw(st.sampled_from([np.uint16, np.float32])))
        layout = draw(st.sampled_from(["plain", "imagej", "ome", "zlib", "tiled"]))
        frac = draw(st.floats(0.0, 0.97, allow_subnormal=False))

        def write(p):
            kw = {
                "imagej": dict(imagej=True, resolution=(100.0, 100.0), metadata={"unit": "um"}),
                "ome": dict(ome=True),
                "zlib": dict(compression="zlib"),
                "tiled": dict(tile=(16, 16)),
                "plain": {},
            }[layout]
            tifffile.imwrite(p, a, **kw)
            raw = p.read_bytes()
            p.write_bytes(raw[: int(frac * len(raw))])

        return f"truncated-{layout}", write
    if kind == "garbage":
        head = draw(st.sampled_from([b"", b"II*\x00", b"MM\x00*", b"II+\x00"]))
        body = draw(st.binary(max_size=600))
        return kind, lambda p: p.write_bytes(head + body)
    if kind == "line":
        a = rng.integers(0, 4000, (1, draw(st.integers(32, 400)))).astype(np.uint16)
        return kind, lambda p: tifffile.imwrite(p, a)
    a = (rng.random((h, w)) + 1j * rng.random((h, w))).astype(np.complex64)
    return kind, lambda p: tifffile.imwrite(p, a)


@pytest.mark.parametrize("family", IMAGE_KINDS)
def test_bad_tiffs_are_rejected_by_the_reader_and_end_to_end(tmp_path, family):
    # One property per kind, so that every kind gets its share of examples.
    @settings(PROPS, max_examples=25)
    @given(case=bad_tiffs(family))
    def prop(case):
        _check_bad_tiff(tmp_path, case)

    prop()


def _check_bad_tiff(tmp_path, case):
    kind, write = case
    path = _name(tmp_path, kind)
    write(path)
    CASES[f"image:{kind.split('-')[0]}"] += 1
    _assert_input_error(lambda: read_image(path), path)
    msg = _assert_input_error(
        lambda: infer_rates(path, pixel_size_nm=10.0, input="fraction", settings=QUICK), path
    )
    _assert_failed_result(path, msg, pixel_size_nm=10.0, input="fraction")


@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(extra=st.integers(1, 3 * MAX_PIXELS), wide=st.booleans())
def test_huge_images_are_rejected_before_their_pixels_are_read(tmp_path, extra, wide):
    n = MAX_PIXELS + extra
    h = 4096 + 1 + extra % 4096
    w = math.ceil(n / h)
    path = _name(tmp_path, "huge")
    # an empty (sparse) file with the header of an h x w image: its pixels are never written
    tifffile.imwrite(path, shape=(w, h) if wide else (h, w), dtype=np.uint8)
    CASES["image:huge"] += 1
    msg = _assert_input_error(lambda: read_image(path), path)
    assert "too large" in msg and "crop" in msg
    path.unlink()


# ------------------------------------------------------------------------------------ pixel sizes
@PROPS
@given(
    px=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False).filter(
            lambda v: not 1.0 <= v <= 1000.0
        ),
        st.sampled_from([0.0, -10.0, 0.01, 0.1, 0.999, 1000.5, 1e4, 2.54e7]),
    )
)
def test_implausible_pixel_sizes_are_rejected(tmp_path, px):
    phi, _ = variant(0)
    path = _name(tmp_path, "px")
    write_tiff(path, phi, 10.0)
    CASES["pixel size: argument"] += 1
    msg = _assert_input_error(
        lambda: infer_rates(path, pixel_size_nm=px, input="fraction", settings=QUICK), path
    )
    assert "--pixel-size" in msg
    _assert_failed_result(path, msg, pixel_size_nm=px, input="fraction")


@PROPS
@given(
    unit=st.sampled_from(["pixel", "pixels", "furlong", "frame", "s", "inch", "cm", "mm", "m", "um", "nm"]),
    per_unit=st.floats(1e-3, 1e9, allow_subnormal=False),
)
def test_file_calibrations_in_wrong_units_are_rejected(tmp_path, unit, per_unit):
    """ImageJ calibration ``per_unit`` pixels per ``unit``: either not a length or outside 1-1000 nm."""
    from napari_mollifier.io._readers import _unit_nm

    scale = _unit_nm(unit)
    px_nm = None if scale is None else scale / per_unit
    if px_nm is not None and 1.0 <= px_nm <= 1000.0 or per_unit in (1.0, 72.0):
        return  # a plausible calibration (or none): not a bad case
    phi, _ = variant(0)
    path = _name(tmp_path, "unit")
    tifffile.imwrite(path, phi, imagej=True, resolution=(per_unit, per_unit), metadata={"unit": unit})
    CASES["pixel size: file unit"] += 1
    msg = _assert_input_error(lambda: infer_rates(path, input="fraction", settings=QUICK), path)
    assert "--pixel-size" in msg


# ------------------------------------------------------------------------------------------ masks
MASK_KINDS = ["empty", "full", "shape", "small", "fractional", "nonfinite"]


@st.composite
def bad_masks(draw, kind: str):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    shape = (64, 64)
    if kind == "empty":
        return kind, np.zeros(shape, draw(st.sampled_from([np.uint8, np.float32])))
    if kind == "full":
        return kind, np.full(shape, draw(st.integers(1, 255)), np.uint8)
    if kind == "shape":
        h, w = draw(st.integers(32, 96)), draw(st.integers(32, 96))
        if (h, w) == shape:
            w += 1
        m = np.zeros((h, w), np.uint8)
        m[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 1
        return kind, m
    if kind == "small":
        r = draw(st.integers(1, 22))
        m = np.zeros(shape, np.uint8)
        yy, xx = np.mgrid[:64, :64]
        m[(yy - 32) ** 2 + (xx - 32) ** 2 < r * r] = 1
        return kind, m
    if kind == "fractional":
        m = rng.random(shape).astype(np.float32) * draw(st.floats(0.01, 1000.0, allow_subnormal=False))
        return kind, m
    m = np.zeros(shape, np.float32)
    m[10:50, 10:50] = 1.0
    m[rng.integers(0, 64), rng.integers(0, 64)] = draw(st.sampled_from([np.nan, np.inf]))
    return kind, m


@pytest.mark.parametrize("family", MASK_KINDS)
def test_bad_masks_are_rejected_naming_the_mask(tmp_path, family):
    @settings(PROPS, max_examples=20)
    @given(case=bad_masks(family))
    def prop(case):
        _check_bad_mask(tmp_path, case)

    prop()


def _check_bad_mask(tmp_path, case):
    kind, m = case
    phi, _ = variant(0)
    image = _name(tmp_path, "img")
    write_tiff(image, phi, 10.0)
    mask = _name(tmp_path, f"mask_{kind}")
    tifffile.imwrite(mask, m)
    CASES[f"mask:{kind}"] += 1
    msg = _assert_input_error(lambda: infer_rates(image, mask=mask, input="fraction", settings=QUICK), mask)
    _assert_input_error(lambda: check_mask(m, (64, 64), name=str(mask)), mask)
    assert "mask" in msg  # says that the mask is at fault, not the image
    # the summary row is the image's: it names the image too
    _assert_failed_result(image, f"{image}: {msg}", mask=mask, input="fraction")


@PROPS
@given(scale=st.floats(2.0, 1e4, allow_subnormal=False), offset=st.floats(-1e3, 1e3, allow_subnormal=False))
def test_fraction_input_out_of_range_or_flat_is_rejected(tmp_path, scale, offset):
    """--input fraction on values far outside [0, 1] (an intensity image), or on a flat nucleus."""
    phi, mask = variant(0)
    a = (phi * scale + offset).astype(np.float32)
    inside = a[mask > 0]
    if -0.5 <= inside.min() and inside.max() <= 1.5 and inside.max() - inside.min() >= 0.05:
        return  # happens to be a valid fraction image
    path = _name(tmp_path, "frac")
    write_tiff(path, a, 10.0)
    mpath = _name(tmp_path, "fracmask")
    write_tiff(mpath, mask, 10.0)
    CASES["fraction range"] += 1
    _assert_input_error(lambda: infer_rates(path, mask=mpath, input="fraction", settings=QUICK), path)


# ----------------------------------------------------------------------------------------- tables
_COLUMN = st.text(alphabet="abcdefghijklmnopqrstuvwz_ []()", min_size=1, max_size=10).filter(
    lambda s: s.strip().strip('"') and "x" not in s.lower() and "y" not in s.lower()
)


TABLE_KINDS = ["no-xy", "units", "nonnumeric", "few", "binary", "nonfinite", "empty"]


@st.composite
def bad_tables(draw, kind: str):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    sep = draw(st.sampled_from([",", "\t", ";"]))
    n = draw(st.integers(100, 300))
    xy = rng.uniform(0, 5000, (n, 2))
    if kind == "no-xy":
        cols = draw(st.lists(_COLUMN, min_size=2, max_size=5, unique=True))
        rows = [sep.join(f"{v:.2f}" for v in rng.uniform(0, 100, len(cols))) for _ in range(n)]
        return kind, sep.join(cols) + "\n" + "\n".join(rows) + "\n"
    if kind == "units":
        # Lengths (nm, µm, ...) are converted; camera pixels without a camera pixel size and
        # units that are no length are refused.
        unit = draw(st.sampled_from(["px", "pixel", "photon", "s", "frame"]))
        head = sep.join([f"x [{unit}]", f"y [{unit}]"])
        return kind, head + "\n" + "\n".join(f"{a:.3f}{sep}{b:.3f}" for a, b in xy / 1000) + "\n"
    if kind == "nonnumeric":
        bad = draw(st.sampled_from(["abc", "", "1,2.3.4", "--", "nan?"]))
        lines = [f"{a:.1f}{sep}{b:.1f}" for a, b in xy]
        lines[draw(st.integers(0, n - 1))] = f"{bad}{sep}12.0"
        return kind, sep.join(["x [nm]", "y [nm]"]) + "\n" + "\n".join(lines) + "\n"
    if kind == "few":
        k = draw(st.integers(0, 99))
        return kind, sep.join(["x [nm]", "y [nm]"]) + "\n" + "\n".join(
            f"{a}{sep}{b}" for a, b in xy[:k]
        ) + "\n"
    if kind == "binary":
        return kind, draw(st.binary(min_size=1, max_size=300)).replace(b"\n", b"\xff") + b"\xfe\xff"
    if kind == "nonfinite":
        xy[draw(st.integers(0, n - 1)), draw(st.integers(0, 1))] = draw(st.sampled_from([np.nan, np.inf]))
        return kind, sep.join(["x [nm]", "y [nm]"]) + "\n" + "\n".join(f"{a}{sep}{b}" for a, b in xy) + "\n"
    return kind, draw(st.sampled_from(["", "\n\n", "# only a comment\n", "x [nm],y [nm]\n"]))


@pytest.mark.parametrize("family", TABLE_KINDS)
def test_bad_localisation_tables_are_rejected(tmp_path, family):
    @settings(PROPS, max_examples=20)
    @given(case=bad_tables(family))
    def prop(case):
        _check_bad_table(tmp_path, case)

    prop()


def _check_bad_table(tmp_path, case):
    kind, content = case
    path = _name(tmp_path, "table", ".csv")
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    CASES[f"table:{kind}"] += 1
    _assert_input_error(lambda: read_localisations(path), path)


@PROPS
@given(
    px=st.one_of(
        st.floats(max_value=0.0, allow_subnormal=False),
        st.just(float("nan")),
        st.just(float("inf")),
        st.floats(1e-4, 0.05, allow_subnormal=False),
    )
)
def test_render_rejects_bad_pixel_sizes_naming_the_table(tmp_path, px):
    path = tmp_path / "table.csv"
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 50000, 200), rng.uniform(0, 50000, 200)  # 0.05 nm pixels would be 1e6^2
    CASES["table:render pixel size"] += 1
    _assert_input_error(lambda: render_localisations(x, y, px, name=str(path)), path)


def test_cases_were_counted():
    """Runs last in this module (pytest keeps file order): when the whole module ran, every kind
    above produced cases (a kind whose examples were all skipped would test nothing)."""
    kinds = set(CASES)
    expected = (
        {f"image:{k}" for k in IMAGE_KINDS + ["huge"]}
        | {f"mask:{k}" for k in MASK_KINDS}
        | {f"table:{k}" for k in TABLE_KINDS}
    )
    if len(CASES) >= 10:  # not when run alone with -k
        assert expected <= kinds, sorted(expected - kinds)


@pytest.mark.parametrize("layout", ["plain", "imagej", "ome", "zlib", "tiled"])
def test_every_truncation_of_a_small_tiff_is_rejected(tmp_path, layout):
    """Exhaustive rather than sampled: every length from 0 to the full size minus one byte (a tag
    value or the OME-XML cut off at the end used to pass, the pixels being complete)."""
    a = np.random.default_rng(0).integers(0, 4000, (32, 32)).astype(np.uint16)  # the smallest accepted
    kw = {
        "imagej": {"imagej": True, "resolution": (100.0, 100.0), "metadata": {"unit": "um"}},
        "ome": {"ome": True},
        "zlib": {"compression": "zlib"},
        "tiled": {"tile": (16, 16)},
        "plain": {},
    }[layout]
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, a, **kw)
    raw = full.read_bytes()
    np.testing.assert_array_equal(read_image(full).data, a)  # the whole file is fine
    path = tmp_path / f"cut_{layout}.tif"
    for n in range(len(raw)):
        path.write_bytes(raw[:n])
        CASES["image:truncated (every length)"] += 1
        _assert_input_error(lambda: read_image(path), path)
