"""Accuracy and behaviour of the mollifier layer against analytic answers.

Reference: for a field g, the layer returns derivatives of u = g * eta_eps, so in Fourier space
D^alpha u has the symbol (i k)^alpha * eta_hat(k) * g_hat(k), with eta_hat the continuous
transform of the unit-mass bump (``bump_transform``, independent quadrature). The bump has
``radius`` grid points along each axis, so with anisotropic spacing (dy != dx) it is an
ellipse in physical units: eta_hat depends on |(k_y dy, k_x dx)| * radius.

Error measure everywhere: max|D - exact| / max|exact| over the grid.

Tolerances (float64, default radius 6, composed kernel): 1e-3 for every order <= 4; the
measured errors are ~5e-5..2e-4, set by the aliasing of the sampled bump (~eta_hat(2 pi radius))
and by the 8th-order difference stencils. float32: 1e-3 up to order 3, 3e-3 for order 4 (round-off
of the large 4th-order weights, ~1e-3 measured on 256^2 by FFT).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_mollifier import MollifierLayer, bump_transform, mollifier_margin, mollify
from napari_mollifier.mollifier import _functional

pytestmark = pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")

# Independent tables of the names: name -> [(coefficient, orders per axis)], axes (y, x) / (x,).
TERMS_2D = {
    "u": [(1.0, (0, 0))],
    "dx": [(1.0, (0, 1))],
    "dy": [(1.0, (1, 0))],
    "dxx": [(1.0, (0, 2))],
    "dyy": [(1.0, (2, 0))],
    "dxy": [(1.0, (1, 1))],
    "dxxx": [(1.0, (0, 3))],
    "dyyy": [(1.0, (3, 0))],
    "dxxxx": [(1.0, (0, 4))],
    "dyyyy": [(1.0, (4, 0))],
    "dxxyy": [(1.0, (2, 2))],
    "laplacian": [(1.0, (0, 2)), (1.0, (2, 0))],
    "biharmonic": [(1.0, (0, 4)), (2.0, (2, 2)), (1.0, (4, 0))],
}
TERMS_1D = {
    "u": [(1.0, (0,))],
    "dx": [(1.0, (1,))],
    "dxx": [(1.0, (2,))],
    "dxxx": [(1.0, (3,))],
    "dxxxx": [(1.0, (4,))],
}
NAMES_2D = tuple(TERMS_2D)
NAMES_1D = tuple(TERMS_1D)
BOUNDARIES = ("periodic", "reflect", "zeros", "replicate")
PATHS = ("direct", "fft")
TOL64 = 1e-3


def terms(ndim):
    return TERMS_2D if ndim == 2 else TERMS_1D


def order(name, ndim):
    return max(sum(idx) for _, idx in terms(ndim)[name])


def symbol(name, ks):
    """Fourier symbol sum_c c * prod_a (i k_a)^o_a of a name; ks = per-axis wavenumbers."""
    total = 0
    for coef, idx in terms(len(ks))[name]:
        term = coef
        for k, o in zip(ks, idx):
            term = term * (1j * np.asarray(k)) ** o
        total = total + term
    return total


_ETA_CACHE: dict[tuple[float, int], float] = {}


def eta_hat(s, ndim):
    """Transform of the unit-mass unit-radius bump at dimensionless |k| * radius (cached)."""
    s = np.abs(np.asarray(s, dtype=np.float64))
    uniq, inverse = np.unique(s, return_inverse=True)
    missing = np.array([v for v in uniq if (float(v), ndim) not in _ETA_CACHE])
    if missing.size:
        for v, e in zip(missing, bump_transform(missing, 1.0, ndim)):
            _ETA_CACHE[(float(v), ndim)] = float(e)
    vals = np.array([_ETA_CACHE[(float(v), ndim)] for v in uniq])
    return vals[inverse].reshape(s.shape)


def dimensionless(ks, spacing, radius):
    """|(k_a h_a)| * radius: the argument of eta_hat for a bump of `radius` grid points."""
    return radius * np.sqrt(sum((np.asarray(k) * h) ** 2 for k, h in zip(ks, spacing)))


def rel_err(out, ref):
    out = out.detach().to(torch.float64).cpu().numpy().reshape(ref.shape)
    return float(np.abs(out - ref).max() / np.abs(ref).max())


def check_all(out, refs, tol_of, label="", names=None):
    errors = {name: rel_err(out[name], refs[name]) for name in (names or refs)}
    bad = {n: f"{e:.2e} > {tol_of(n):.0e}" for n, e in errors.items() if not e <= tol_of(n)}
    assert not bad, f"{label}: relative errors too large: {bad}"
    return errors


def as_input(a, dtype=torch.float64):
    return torch.tensor(a, dtype=dtype)[None, None]


# ----------------------------------------------------------------------------------------------
# Plane waves: g = sum amp * cos(k.x + phase); exact D u = sum amp Re[sym(k) eta_hat e^{i(k.x+phase)}]
# ----------------------------------------------------------------------------------------------


def plane_waves(shape, spacing, waves, radius):
    ndim = len(shape)
    coords = np.meshgrid(*[np.arange(n) * h for n, h in zip(shape, spacing)], indexing="ij")
    g = np.zeros(shape)
    refs = {name: np.zeros(shape) for name in terms(ndim)}
    for amp, ks, phase in waves:
        e = amp * np.exp(1j * (sum(k * x for k, x in zip(ks, coords)) + phase))
        g += e.real
        eh = float(eta_hat(dimensionless(ks, spacing, radius), ndim))
        for name in refs:
            refs[name] += (symbol(name, ks) * eh * e).real
    return g, refs


def sin_product(amp, ky, kx):
    """amp * sin(ky y) * sin(kx x) as two cosine waves."""
    return [(0.5 * amp, (ky, -kx), 0.0), (-0.5 * amp, (ky, kx), 0.0)]


TWO_PI = 2 * math.pi
H128 = TWO_PI / 128
DY_ANISO = 1.5 * H128  # dy != dx; y period = 96 * dy
KY_ANISO = TWO_PI / (96 * DY_ANISO)
PERIODIC_2D = {
    "sin3x_sin2y": ((128, 128), (H128, H128), sin_product(1.0, 2, 3)),
    "several_waves": (
        (128, 128),
        (H128, H128),
        sin_product(1.0, 5, 1) + sin_product(0.3, 1, 6) + [(0.7, (3, 4), 0.4), (0.2, (-2, 5), 1.0)],
    ),
    "anisotropic": (
        (96, 128),
        (DY_ANISO, H128),
        sin_product(1.0, 2 * KY_ANISO, 3) + [(0.5, (-3 * KY_ANISO, 1), 0.3)],
    ),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", sorted(PERIODIC_2D))
def test_periodic_plane_waves_2d(case, path):
    shape, spacing, waves = PERIODIC_2D[case]
    g, refs = plane_waves(shape, spacing, waves, 6.0)
    out = mollify(as_input(g), 6.0, NAMES_2D, spacing=spacing, boundary="periodic", path=path)
    check_all(out, refs, lambda n: TOL64, f"{case} {path}", tuple(NAMES_2D))


@pytest.mark.parametrize("radius", [4.5, 8.0])
def test_periodic_other_radii_2d(radius):
    shape, spacing, waves = PERIODIC_2D["sin3x_sin2y"]
    g, refs = plane_waves(shape, spacing, waves, radius)
    out = mollify(as_input(g), radius, NAMES_2D, spacing=spacing[0])
    check_all(out, refs, lambda n: TOL64, f"radius {radius}")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("length,n", [(TWO_PI, 200), (10.0, 160)])
def test_periodic_plane_waves_1d(length, n, path):
    h = length / n
    k = TWO_PI / length
    waves = [(1.0, (3 * k,), -math.pi / 2), (0.5, (7 * k,), 1.0), (0.25, (2 * k,), 0.2)]
    g, refs = plane_waves((n,), (h,), waves, 6.0)
    out = mollify(as_input(g), 6.0, NAMES_1D, spacing=h, path=path)
    check_all(out, refs, lambda n: TOL64, f"1-D {path}")


def test_1d_laplacian_biharmonic_aliases():
    g = torch.randn(2, 1, 50, dtype=torch.float64)
    out = mollify(g, 5.0, ("dxx", "dxxxx", "laplacian", "biharmonic"), spacing=0.3)
    torch.testing.assert_close(out["laplacian"], out["dxx"], rtol=1e-12, atol=0)
    torch.testing.assert_close(out["biharmonic"], out["dxxxx"], rtol=1e-12, atol=0)


# ----------------------------------------------------------------------------------------------
# Reflect: fields symmetric about the edge samples, cos(pi m i / (N - 1)), are exact everywhere.
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_reflect_symmetric_field_2d(path):
    shape, spacing = (50, 70), (0.9, 1.1)
    ky = [math.pi * m / ((shape[0] - 1) * spacing[0]) for m in range(6)]
    kx = [math.pi * m / ((shape[1] - 1) * spacing[1]) for m in range(6)]
    # cos(a y) cos(b x) = (cos(a y + b x) + cos(a y - b x)) / 2
    waves = [
        (0.5, (ky[3], kx[2]), 0.0),
        (0.5, (ky[3], -kx[2]), 0.0),
        (0.5, (0.0, kx[5]), 0.0),
        (0.3, (ky[4], 0.0), 0.0),
        (0.2, (ky[1], kx[1]), 0.0),
        (0.2, (ky[1], -kx[1]), 0.0),
    ]
    g, refs = plane_waves(shape, spacing, waves, 6.0)
    out = mollify(as_input(g), 6.0, NAMES_2D, spacing=spacing, boundary="reflect", path=path)
    check_all(out, refs, lambda n: TOL64, f"reflect {path}", tuple(NAMES_2D))


@pytest.mark.parametrize("path", PATHS)
def test_reflect_symmetric_field_1d(path):
    n, h = 90, 0.4
    k = [math.pi * m / ((n - 1) * h) for m in range(9)]
    g, refs = plane_waves((n,), (h,), [(1.0, (k[4],), 0.0), (0.5, (k[8],), 0.0), (0.2, (k[1],), 0.0)], 6.0)
    out = mollify(as_input(g), 6.0, NAMES_1D, spacing=h, boundary="reflect", path=path)
    check_all(out, refs, lambda n: TOL64, f"reflect 1-D {path}")


# ----------------------------------------------------------------------------------------------
# Modulated Gaussian centred on a large grid: reference from its analytic transform by FFT.
# ----------------------------------------------------------------------------------------------


def gaussian_case(shape, spacing, width, k0, radius, offset):
    """g = offset + exp(-|x - c|^2 / (2 w^2)) cos(k0 . (x - c)), c off-grid near the centre.

    Reference: Re ifft[ G(k) sym(k) eta_hat(k) ] / prod(h), with G the continuous transform
    G(k) = e^{-i k.c} (G0(k - k0) + G0(k + k0)) / 2, G0(k) = (2 pi w^2)^{d/2} e^{-w^2 |k|^2 / 2};
    the grid is large enough that the periodic wrap of the reference is ~1e-16.
    """
    ndim = len(shape)
    centre = [(n / 2 + 0.3) * h for n, h in zip(shape, spacing)]
    coords = np.meshgrid(*[np.arange(n) * h - c for n, h, c in zip(shape, spacing, centre)], indexing="ij")
    g = offset + np.exp(-sum(x * x for x in coords) / (2 * width**2)) * np.cos(
        sum(k * x for k, x in zip(k0, coords))
    )
    ks = np.meshgrid(*[TWO_PI * np.fft.fftfreq(n, d=h) for n, h in zip(shape, spacing)], indexing="ij")
    norm = (TWO_PI * width**2) ** (ndim / 2)

    def g0(sign):
        return norm * np.exp(-0.5 * width**2 * sum((k - sign * q) ** 2 for k, q in zip(ks, k0)))

    spectrum = 0.5 * (g0(1) + g0(-1)) * np.exp(-1j * sum(k * c for k, c in zip(ks, centre)))
    keep = np.abs(spectrum) > 1e-18 * np.abs(spectrum).max()
    eh = np.zeros(shape)
    eh[keep] = eta_hat(dimensionless([k[keep] for k in ks], spacing, radius), ndim)
    cell = float(np.prod(spacing))
    refs = {}
    for name in terms(ndim):
        refs[name] = np.fft.ifftn(spectrum * eh * symbol(name, ks)).real / cell
    refs["u"] = refs["u"] + offset
    return g, refs


GAUSS_2D = dict(shape=(72, 88), spacing=(0.625, 0.5), width=2.5, k0=(0.4, 0.7))
# 1-D: the sampled 1-D bump aliases more than the 2-D one (2 |eta_hat_1D(2 pi 6)| = 7.5e-4 of the
# field amplitude at radius 6), so 1e-3 holds for content with k * eps <~ 1.7 only; this field
# (k0 * eps = 0.6, width 2 eps) gives <= 7e-4.
GAUSS_1D = dict(shape=(200,), spacing=(0.5,), width=6.0, k0=(0.2,))


@pytest.fixture(scope="module")
def gaussian_refs():
    return {}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("ndim", [1, 2])
def test_gaussian_every_boundary(gaussian_refs, ndim, boundary, path):
    # A constant offset (exactly preserved) where the boundary rule continues constants.
    offset = 0.0 if boundary == "zeros" else 0.75
    key = (ndim, offset)
    if key not in gaussian_refs:
        gaussian_refs[key] = gaussian_case(**(GAUSS_2D if ndim == 2 else GAUSS_1D), radius=6.0, offset=offset)
    g, refs = gaussian_refs[key]
    spacing = (GAUSS_2D if ndim == 2 else GAUSS_1D)["spacing"]
    out = mollify(as_input(g), 6.0, tuple(refs), spacing=spacing, boundary=boundary, path=path)
    check_all(out, refs, lambda n: TOL64, f"gaussian {ndim}-D {boundary} {path}", tuple(refs))


@pytest.mark.parametrize("spacing", [(1.5 * H128, H128), (H128, 1.5 * H128)])
def test_anisotropic_combinations(spacing):
    shape = (128, 128)
    ky, kx = TWO_PI / (shape[0] * spacing[0]), TWO_PI / (shape[1] * spacing[1])
    g, refs = plane_waves(shape, spacing, sin_product(1.0, 2 * ky, 3 * kx) + [(0.5, (ky, -4 * kx), 0.3)], 6.0)
    out = mollify(as_input(g), 6.0, ("dxx", "dyy", "dxxyy", "laplacian", "biharmonic"), spacing=spacing)
    # Both parts of the laplacian are right on their own ...
    check_all(out, refs, lambda n: TOL64, "anisotropic partials", ("dxx", "dyy", "dxxyy"))
    # ... and the sum must equal the combination.
    torch.testing.assert_close(out["laplacian"], out["dxx"] + out["dyy"], rtol=1e-10, atol=1e-10)
    check_all(out, refs, lambda n: TOL64, "anisotropic combinations", ("laplacian", "biharmonic"))


# ----------------------------------------------------------------------------------------------
# Paths: direct and FFT agree; "auto" switches at FFT_MIN_KERNEL_WIDTH.
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["composed", "analytic"])
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("ndim", [1, 2])
def test_direct_and_fft_agree(ndim, boundary, kernel):
    gen = torch.Generator().manual_seed(ndim * 100 + len(boundary))
    shape = (2, 2, 37, 45) if ndim == 2 else (2, 2, 83)
    g = torch.randn(shape, generator=gen, dtype=torch.float64)
    names = NAMES_2D if ndim == 2 else NAMES_1D
    for radius in (3.5, 6.0):
        direct = mollify(g, radius, names, spacing=0.7, boundary=boundary, path="direct", kernel=kernel)
        fft = mollify(g, radius, names, spacing=0.7, boundary=boundary, path="fft", kernel=kernel)
        for name in names:
            scale = direct[name].abs().max()
            diff = (direct[name] - fft[name]).abs().max() / scale
            assert diff < 1e-10, f"{name} radius {radius}: direct vs fft differ by {diff:.2e}"


def _spy_paths(monkeypatch):
    calls = []
    original = _functional._correlate_valid

    def spy(x, weight, fft):
        calls.append((weight.shape[-1], fft))
        return original(x, weight, fft)

    monkeypatch.setattr(_functional, "_correlate_valid", spy)
    return calls


@pytest.mark.parametrize("names", [("u",), ("u", "laplacian", "biharmonic")])
def test_auto_path_switches_at_threshold(monkeypatch, names):
    calls = _spy_paths(monkeypatch)
    g = torch.randn(1, 1, 80, 80, dtype=torch.float64)
    threshold = _functional.FFT_MIN_KERNEL_WIDTH
    for radius in np.arange(0.75, 16.0, 0.25):
        calls.clear()
        mollify(g, float(radius), names, path="auto")
        ((width, fft),) = calls
        assert width == 2 * mollifier_margin(float(radius), names) + 1
        assert fft == (width >= threshold), (
            f"radius {radius}: width {width}, threshold {threshold}, fft={fft}"
        )
    # Explicit paths are obeyed whatever the width.
    for path, expected in (("direct", False), ("fft", True)):
        calls.clear()
        mollify(g, 2.0, names, path=path)
        mollify(g, 12.0, names, path=path)
        assert [f for _, f in calls] == [expected, expected]


def test_auto_path_follows_patched_threshold(monkeypatch):
    calls = _spy_paths(monkeypatch)
    g = torch.randn(1, 1, 40, 40, dtype=torch.float64)
    width = 2 * mollifier_margin(6.0, ("u", "biharmonic")) + 1
    for threshold, expected in ((width, True), (width + 1, False), (width - 1, True)):
        monkeypatch.setattr(_functional, "FFT_MIN_KERNEL_WIDTH", threshold)
        calls.clear()
        MollifierLayer(6.0, ("u", "biharmonic"))(g)
        assert calls == [(width, expected)]


# ----------------------------------------------------------------------------------------------
# Convergence with fixed physical eps, and the analytic-kernel pitfall.
# ----------------------------------------------------------------------------------------------

CONV_NAMES = ("u", "dx", "dyy", "dxy", "dxxx", "laplacian", "dxxyy", "biharmonic")
CONV_WAVES = sin_product(1.0, 2, 3) + [(0.5, (4, 1), 0.0)]
CONV_EPS = 3 * TWO_PI / 32


def conv_case(n, radius):
    h = TWO_PI / n
    assert abs(radius * h - CONV_EPS) < 1e-12
    g, refs = plane_waves((n, n), (h, h), CONV_WAVES, radius)
    return g, refs, h


def test_convergence_fixed_eps():
    worst = []
    for n, radius in ((32, 3.0), (64, 6.0), (128, 12.0), (256, 24.0)):
        g, refs, h = conv_case(n, radius)
        out = mollify(as_input(g), radius, CONV_NAMES, spacing=h, path="fft")
        worst.append(max(rel_err(out[name], refs[name]) for name in CONV_NAMES))
    # Measured: 1.2e-2, 1.8e-4, 1.2e-5, 8e-9.
    assert all(b < a for a, b in zip(worst, worst[1:])), worst
    assert worst[-1] < 1e-2 * worst[0], worst
    assert worst[-1] < 1e-4, worst


def test_analytic_kernel_pitfall_biharmonic():
    g, refs, h = conv_case(64, 6.0)
    names = ("u", "laplacian", "biharmonic")
    analytic = mollify(as_input(g), 6.0, names, spacing=h, kernel="analytic")
    composed = mollify(as_input(g), 6.0, names, spacing=h, kernel="composed")
    assert rel_err(analytic["u"], refs["u"]) < TOL64  # smoothing itself is fine
    assert rel_err(analytic["biharmonic"], refs["biharmonic"]) > 1.0  # measured 5.5
    assert rel_err(composed["biharmonic"], refs["biharmonic"]) < TOL64


def test_analytic_kernel_converges_slowly_up_to_order_2():
    """The literal recipe is right (signs, orientation, scale) but needs large radii.

    Measured on the convergence field: dx 1.7e-2 / 1.1e-3 / 2.6e-5, laplacian 1.9e-2 / 2.2e-3 /
    1.6e-4 at radius 6 / 12 / 24; dxxx 8.7 / 2.2 / 0.21 and biharmonic 5.5 / 2.4 / 0.6.
    """
    low, high = ("dx", "dyy", "dxy", "laplacian"), ("dxxx", "biharmonic")
    errors = []
    for n, radius in ((64, 6.0), (128, 12.0), (256, 24.0)):
        g, refs, h = conv_case(n, radius)
        out = mollify(as_input(g), radius, low + high, spacing=h, path="fft", kernel="analytic")
        errors.append({name: rel_err(out[name], refs[name]) for name in low + high})
    for name in low:
        seq = [e[name] for e in errors]
        assert seq[0] < 0.1 and seq[-1] < 1e-3 and seq[2] < seq[1] < seq[0], (name, seq)
    for name in high:
        assert errors[-1][name] > 0.1, (name, errors[-1][name])


# ----------------------------------------------------------------------------------------------
# float32, device and dtype, the module form, gradients, batching, linearity, constants.
# ----------------------------------------------------------------------------------------------

TOL32 = {0: 1e-3, 1: 1e-3, 2: 1e-3, 3: 1e-3, 4: 3e-3}


@pytest.mark.parametrize("path", PATHS)
def test_float32_accuracy_2d(path):
    n = 256
    h = TWO_PI / n
    g, refs = plane_waves((n, n), (h, h), sin_product(1.0, 2, 3) + [(0.5, (4, 1), 0.0)], 6.0)
    out = mollify(as_input(g, torch.float32), 6.0, NAMES_2D, spacing=h, path=path)
    assert all(v.dtype == torch.float32 for v in out.values())
    check_all(out, refs, lambda name: TOL32[order(name, 2)], f"float32 {path}")


@pytest.mark.parametrize("path", PATHS)
def test_float32_accuracy_1d(path):
    n = 256
    h = TWO_PI / n
    g, refs = plane_waves((n,), (h,), [(1.0, (3.0,), 0.0), (0.5, (7.0,), 1.0)], 6.0)
    out = mollify(as_input(g, torch.float32), 6.0, NAMES_1D, spacing=h, path=path)
    assert all(v.dtype == torch.float32 for v in out.values())
    check_all(out, refs, lambda name: TOL32[order(name, 1)], f"float32 1-D {path}")


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("path", ["direct", "fft", "auto"])
def test_output_follows_input_dtype_and_device(device, dtype, path):
    g = torch.randn(2, 1, 30, 34, dtype=dtype, device=device)
    out = mollify(g, 6.0, ("u", "dx", "biharmonic"), path=path)
    layer = MollifierLayer(6.0, ("u", "dx", "biharmonic"), path=path).to(device)
    for result in (out, layer(g)):
        assert sorted(result) == ["biharmonic", "dx", "u"]
        for v in result.values():
            assert v.dtype == dtype and v.device == g.device and v.shape == g.shape


def test_layer_matches_functional_and_moves():
    names = ("u", "dx", "dy", "laplacian", "biharmonic")
    layer = MollifierLayer(6.0, names, spacing=(0.5, 0.25), boundary="reflect")
    assert list(layer.parameters()) == []
    assert layer.bank.dtype == torch.float64 and "bank" in layer.state_dict()
    assert layer.margin == mollifier_margin(6.0, names)
    g64 = torch.randn(1, 2, 40, 44, dtype=torch.float64)
    ref = mollify(g64, 6.0, names, spacing=(0.5, 0.25), boundary="reflect")
    for name, v in layer(g64).items():
        torch.testing.assert_close(v, ref[name], rtol=1e-12, atol=1e-12)
    # .double() keeps the float64 bank; .to(float32) gives the float32 functional result.
    for name, v in layer.double()(g64).items():
        torch.testing.assert_close(v, ref[name], rtol=1e-12, atol=1e-12)
    g32 = g64.float()
    ref32 = mollify(g32, 6.0, names, spacing=(0.5, 0.25), boundary="reflect")
    layer32 = layer.to(torch.float32)
    assert layer32.bank.dtype == torch.float32
    for name, v in layer32(g32).items():
        assert v.dtype == torch.float32
        torch.testing.assert_close(v, ref32[name])
    layer.to("cpu")


def test_layer_1d():
    layer = MollifierLayer(6.0, NAMES_1D, spacing=0.2, ndim=1)
    g = torch.randn(3, 1, 64, dtype=torch.float64)
    ref = mollify(g, 6.0, NAMES_1D, spacing=0.2)
    for name, v in layer(g).items():
        torch.testing.assert_close(v, ref[name], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_gradcheck(boundary, path):
    g = torch.randn(1, 1, 9, 10, dtype=torch.float64, requires_grad=True)

    def f(x):
        out = mollify(x, 2.5, ("dx", "dxxyy"), spacing=(0.9, 1.1), boundary=boundary, path=path)
        return out["dx"], out["dxxyy"]

    assert torch.autograd.gradcheck(f, (g,), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_gradcheck_1d_and_layer():
    g = torch.randn(2, 1, 20, dtype=torch.float64, requires_grad=True)
    layer = MollifierLayer(3.0, ("u", "dxxx"), boundary="reflect", ndim=1)
    assert torch.autograd.gradcheck(lambda x: tuple(layer(x).values()), (g,))


def test_batched_equals_one_by_one():
    g = torch.randn(2, 3, 40, 44, dtype=torch.float64)
    names = ("u", "dxy", "laplacian", "biharmonic")
    for path in PATHS:
        batched = mollify(g, 6.0, names, boundary="reflect", path=path)
        for n in range(2):
            for c in range(3):
                single = mollify(g[n : n + 1, c : c + 1], 6.0, names, boundary="reflect", path=path)
                for name in names:
                    torch.testing.assert_close(
                        batched[name][n, c], single[name][0, 0], rtol=1e-12, atol=1e-12
                    )


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_linearity(boundary):
    gen = torch.Generator().manual_seed(7)
    g1, g2 = torch.randn(2, 1, 1, 36, 40, generator=gen, dtype=torch.float64)
    names = ("u", "dx", "dyyy", "biharmonic")
    a, b = 2.5, -0.75
    lhs = mollify(a * g1 + b * g2, 6.0, names, boundary=boundary)
    r1, r2 = mollify(g1, 6.0, names, boundary=boundary), mollify(g2, 6.0, names, boundary=boundary)
    for name in names:
        torch.testing.assert_close(lhs[name], a * r1[name] + b * r2[name], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("ndim", [1, 2])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_constants(ndim, boundary):
    names = NAMES_2D if ndim == 2 else NAMES_1D
    shape = (1, 2, 30, 33) if ndim == 2 else (1, 2, 40)
    g = torch.full(shape, 2.5, dtype=torch.float64)
    m = mollifier_margin(6.0, names, ndim=ndim)
    out = mollify(g, 6.0, names, boundary=boundary)
    inner = (Ellipsis,) + (slice(m, -m),) * ndim
    # Zero padding is not a continuation of a constant: exact beyond the margin only.
    region = inner if boundary == "zeros" else (Ellipsis,)
    torch.testing.assert_close(out["u"][region], g[region], rtol=0, atol=1e-13)
    for name in names[1:]:
        assert out[name][region].abs().max() < 1e-10, name
    if boundary == "zeros":
        assert (out["u"][(Ellipsis,) + (0,) * ndim] < 2.5 * 0.9).all()  # documented edge effect


@pytest.mark.parametrize("ndim", [1, 2])
def test_margin_is_where_boundary_stops_mattering(ndim):
    names = ("u", "dx", "biharmonic") if ndim == 2 else ("u", "dx", "dxxxx")
    for radius in (3.0, 6.0):
        shape = (1, 1, 41, 47) if ndim == 2 else (1, 1, 61)
        g = torch.randn(shape, dtype=torch.float64)
        outs = [mollify(g, radius, names, boundary=b) for b in BOUNDARIES]
        m = mollifier_margin(radius, names, ndim=ndim)
        inner = (Ellipsis,) + (slice(m, -m),) * ndim
        ring = (Ellipsis,) + (slice(m - 1, -(m - 1)),) * ndim
        for name in names:
            ref = outs[0][name]
            for other in outs[1:]:
                torch.testing.assert_close(other[name][inner], ref[inner], rtol=0, atol=1e-9)
            # The margin is tight for the widest (4th-order) kernel.
        widest = names[-1]
        assert any((o[widest][ring] - outs[0][widest][ring]).abs().max() > 1e-6 for o in outs[1:])


# ----------------------------------------------------------------------------------------------
# Errors name the offending argument.
# ----------------------------------------------------------------------------------------------

G2 = torch.zeros(1, 1, 32, 32)


@pytest.mark.parametrize("bad", [torch.zeros(32, 32), torch.zeros(1, 32, 32, 1, 1), torch.zeros(32)])
def test_error_wrong_ndim(bad):
    with pytest.raises(ValueError, match=r"g must have shape"):
        mollify(bad)


def test_error_not_a_tensor_or_integer_dtype():
    with pytest.raises(TypeError, match=r"g must be a torch.Tensor"):
        mollify(np.zeros((1, 1, 16, 16)))
    for dtype in (torch.int64, torch.int32, torch.bool):
        with pytest.raises((TypeError, ValueError), match=r"g must be a floating-point.*dtype"):
            mollify(torch.zeros(1, 1, 16, 16, dtype=dtype))
    with pytest.raises((TypeError, ValueError), match=r"floating-point"):
        MollifierLayer(3.0, ("u",))(torch.zeros(1, 1, 16, 16, dtype=torch.int64))


def test_error_unknown_derivative():
    with pytest.raises(ValueError, match=r"unknown derivative 'dz'"):
        mollify(G2, 3.0, ("u", "dz"))
    with pytest.raises(ValueError, match=r"unknown derivative 'dy' for a 1-D field"):
        mollify(torch.zeros(1, 1, 32), 3.0, ("dy",))
    with pytest.raises(ValueError, match=r"unknown derivative 'dxy'"):
        MollifierLayer(3.0, ("dxy",), ndim=1)
    with pytest.raises(ValueError, match=r"derivatives"):
        mollify(G2, 3.0, ())


@pytest.mark.parametrize("arg,value", [("boundary", "mirror"), ("path", "gpu"), ("kernel", "gauss")])
def test_error_unknown_option(arg, value):
    with pytest.raises(ValueError, match=rf"{arg} must be one of .*{value!r}"):
        mollify(G2, 3.0, ("u",), **{arg: value})
    with pytest.raises(ValueError, match=rf"{arg} must be one of"):
        MollifierLayer(3.0, ("u",), **{arg: value})


@pytest.mark.parametrize("radius", [0.5, 0.2, 0.0, -3.0, float("nan")])
def test_error_radius(radius):
    with pytest.raises(ValueError, match=r"radius must exceed 0.5"):
        mollify(G2, radius, ("u",))
    with pytest.raises(ValueError, match=r"radius must exceed 0.5"):
        MollifierLayer(radius, ("u",))
    with pytest.raises(ValueError, match=r"radius must exceed 0.5"):
        mollifier_margin(radius, ("u",))


@pytest.mark.parametrize("boundary", ["periodic", "reflect"])
def test_error_field_smaller_than_padding(boundary):
    names = ("u", "biharmonic")
    p = mollifier_margin(6.0, names)
    for shape in ((1, 1, p, 40), (1, 1, 40, p - 3), (1, 1, p)):
        with pytest.raises(
            ValueError, match=rf"field axis \d has {min(shape[2:])} points.*{boundary!r} boundary"
        ):
            mollify(torch.zeros(shape), 6.0, names if len(shape) == 4 else ("u", "dxxxx"), boundary=boundary)
    # One more point than the padding is enough, and 'zeros' accepts any size.
    for path in PATHS:
        mollify(torch.zeros(1, 1, p + 1, p + 1), 6.0, names, boundary=boundary, path=path)
        small = torch.randn(1, 1, 5, 7, dtype=torch.float64)
        a = mollify(small, 6.0, names, boundary="zeros", path="direct")
        b = mollify(small, 6.0, names, boundary="zeros", path="fft")
        torch.testing.assert_close(a["biharmonic"], b["biharmonic"], rtol=1e-10, atol=1e-10)


def test_error_spacing_and_accuracy_and_layer_ndim():
    with pytest.raises(ValueError, match=r"spacing must be positive"):
        mollify(G2, 3.0, ("dx",), spacing=0.0)
    with pytest.raises(ValueError, match=r"spacing needs 2 value"):
        mollify(G2, 3.0, ("dx",), spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match=r"accuracy must be an even integer"):
        mollify(G2, 3.0, ("dx",), accuracy=5)
    with pytest.raises(ValueError, match=r"ndim must be 1 or 2"):
        MollifierLayer(3.0, ("u",), ndim=3)
    with pytest.raises(ValueError, match=r"this layer is 2-D"):
        MollifierLayer(3.0, ("u",))(torch.zeros(1, 1, 32))


# ----------------------------------------------------------------------------------------------
# kernel="spectral": same sampled bump, derivatives as exact Fourier multipliers.
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(PERIODIC_2D))
def test_spectral_periodic_plane_waves_2d(case):
    shape, spacing, waves = PERIODIC_2D[case]
    g, refs = plane_waves(shape, spacing, waves, 6.0)
    out = mollify(as_input(g), 6.0, NAMES_2D, spacing=spacing, boundary="periodic", kernel="spectral")
    check_all(out, refs, lambda n: TOL64, f"spectral {case}", tuple(NAMES_2D))


def test_spectral_reflect_and_1d():
    shape, spacing = (50, 70), (0.9, 1.1)
    ky = [math.pi * m / ((shape[0] - 1) * spacing[0]) for m in range(6)]
    kx = [math.pi * m / ((shape[1] - 1) * spacing[1]) for m in range(6)]
    waves = [(0.5, (ky[3], kx[2]), 0.0), (0.5, (ky[3], -kx[2]), 0.0), (0.3, (ky[4], 0.0), 0.0)]
    g, refs = plane_waves(shape, spacing, waves, 6.0)
    out = mollify(as_input(g), 6.0, NAMES_2D, spacing=spacing, boundary="reflect", kernel="spectral")
    check_all(out, refs, lambda n: TOL64, "spectral reflect", tuple(NAMES_2D))
    n, h = 90, 0.4
    k = [math.pi * m / ((n - 1) * h) for m in range(9)]
    g1, refs1 = plane_waves((n,), (h,), [(1.0, (k[4],), 0.0), (0.5, (k[8],), 0.0)], 6.0)
    out1 = mollify(as_input(g1), 6.0, NAMES_1D, spacing=h, boundary="reflect", kernel="spectral")
    check_all(out1, refs1, lambda n: TOL64, "spectral reflect 1-D")


def test_spectral_beats_differences_at_high_wavenumber():
    # A wave at k h = 1.6 (the interface harmonics of 10 nm chromatin images): the composed
    # kernel's 8th-order differences are off by percents in the 4th derivative, spectral is
    # exact for the discrete smoothing (reference: the sampled bump's own transform).
    from napari_mollifier import bump_kernel

    n, radius = 128, 2.5
    kx = 2 * math.pi * 33 / n
    eta = bump_kernel(radius, 2)
    m = eta.shape[0] // 2
    eta_h = sum(eta[:, m + j].sum() * math.cos(kx * j) for j in range(-m, m + 1))
    g = np.cos(kx * np.arange(n))[None, :].repeat(n, 0)
    exact = kx**4 * eta_h * g
    spec = mollify(as_input(g), radius, ("biharmonic",), kernel="spectral")["biharmonic"]
    comp = mollify(as_input(g), radius, ("biharmonic",))["biharmonic"]
    assert rel_err(spec, exact) < 1e-9
    assert rel_err(comp, exact) > 1e-2


def test_spectral_gradients_dtype_and_boundaries():
    g = torch.randn(1, 1, 12, 14, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: mollify(t, 2.0, ("biharmonic", "dx"), kernel="spectral", boundary="reflect")["biharmonic"],
        (g,),
    )
    out = mollify(g.detach().float(), 2.0, ("u", "dy"), kernel="spectral")
    assert out["dy"].dtype == torch.float32 and out["u"].shape == (1, 1, 12, 14)
    layer = MollifierLayer(2.0, ("u", "laplacian"), kernel="spectral", boundary="reflect")
    torch.testing.assert_close(
        layer(g.detach())["laplacian"],
        mollify(g.detach(), 2.0, ("laplacian",), kernel="spectral", boundary="reflect")["laplacian"],
    )
    with pytest.raises(ValueError, match="spectral.*periodic.*reflect"):
        mollify(g.detach(), 2.0, ("u",), kernel="spectral", boundary="zeros")
