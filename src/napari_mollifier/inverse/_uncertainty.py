"""Uncertainty of the rate maps: standard deviations of Gamma_me, Gamma_ac and lambda per pixel.

Three estimates (docs/method.md, "Uncertainty of the rate maps"; coverage on simulated truth in
docs/decisions.md, "Uncertainty maps"):

- ``laplace`` (default, from the final state of the fit, :func:`laplace_uncertainty`): the fit's
  objective linearised, the field eliminated; the coefficients' precision is ``A^T Sigma^-1 A +
  R / s^2`` with ``Sigma = s^2 I + s_d^2 F_u F_u^T``, the residual's own error (its mean square
  times its correlation area) plus the data noise carried through the 4th-order operator.
- ``sandwich`` (:func:`sandwich_uncertainty`): ``N^-1 A^T Sigma A N^-1`` with ``N = A^T A + R``
  and Sigma from the fitted residual alone (``r_p^2`` per pixel times the correlation area). Too
  narrow: the field turns the data noise into rate errors without leaving a residual; kept for
  comparison.
- ``bootstrap`` (:func:`bootstrap_uncertainty`): fresh noise of the estimated level added to the
  fitted field as the microscope would record it, the fit repeated, the spread of the refits.

Each of them estimates the spread of the maps, not their bias, and the bias is what is left:
a fit that holds the PDE only to a tolerance, with a smooth rate basis and a roughness penalty,
gave mean rates 3-7 % off at 3 % noise in phi with sds of 1-2 % (coverage down to 0-40 %). So
every sd map adds a systematic part in quadrature, ``SYSTEMATIC_PER_NOISE x s_d x |map|``
(:func:`with_systematic`), calibrated on simulated nuclei against their truth.

Per-pixel variances ``B(x)^T Cov B(x)`` never form a pixels x K matrix: the basis is a tensor
product with 4 nonzeros per pixel and axis, so only the band of Cov (control points at most 3
apart along each axis) enters, contracted with the products of the 1-D factors' neighbouring
entries (:func:`map_variance`); the band is gathered from the covariance's columns a chunk at a
time. Lambda = Gamma_me / Gamma_ac takes the delta method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ._basis import BAND

__all__ = [
    "SANDWICH_INFLATION",
    "SD_FIELDS",
    "SYSTEMATIC_PER_NOISE",
    "RateUncertainty",
    "correlation_area",
    "map_variance",
    "sandwich_uncertainty",
    "statistical_sd",
    "with_systematic",
]

#: Factor on the sandwich's standard deviations. Left at 1: the factor its coverage would need
#: varies from 0.5 to 5 between nuclei (it misses the noise term; docs/decisions.md).
SANDWICH_INFLATION = 1.0
#: Factor on the Laplace standard deviations, calibrated on simulated nuclei (seeds 0-1, checked on
#: seed 2; benchmarks/uncertainty_coverage.py, docs/decisions.md, "Uncertainty maps"): below 1 the
#: 3 % noise gradient nuclei lose coverage, above 1 the bands widen without covering the bias of
#: the patches' lambda.
LAPLACE_INFLATION = 1.0
#: The systematic part of every sd map, as a fraction of the map's value per unit of noise in phi
#: (s_d): 2 x 3 % = 6 % of the rate at 3 % noise. The fit's bias grows with the noise (the
#: tolerance and the roughness penalty grow with it): on 40 simulated fits at 1-5 % noise in phi
#: and calibrated 200-1000 counts its mean rates were up to 7 % off, and the statistical sd alone
#: covered the truth on as few as 0-40 % of the pixels. The factor is the smallest on a 0.5 grid
#: that gave every "determined" fit of the calibration nuclei (seeds 0-1) >= 80 % coverage in all
#: three maps; the check nuclei then held >= 0.98 for the rates and >= 0.89 for lambda
#: (benchmarks/systematic_sd.py, benchmarks/results/systematic_sd.md).
SYSTEMATIC_PER_NOISE = 2.0


#: (map key, :class:`RateUncertainty` attribute) of the three sd maps.
SD_FIELDS = (("gamma_me", "gamma_me"), ("gamma_ac", "gamma_ac"), ("lambda", "lam"))


@dataclass
class RateUncertainty:
    """Standard deviation maps on the analysed crop (float32, NaN outside the interior) and how
    they were obtained."""

    gamma_me: np.ndarray
    gamma_ac: np.ndarray
    lam: np.ndarray
    method: str
    figures: dict = field(default_factory=dict)


def correlation_area(residual: np.ndarray, region: np.ndarray) -> float:
    """Pixels per independent value of a field sampled on a region: the integral of its
    normalised autocorrelation over the central lobe.

    The autocorrelation is ``sum_p r(p) r(p + t) / n(t)`` (n(t): pairs of region pixels at lag t,
    by FFT), normalised to 1 at t = 0; it is summed over all lags closer than the first radius at
    which its radial mean drops to zero or below (summed over every lag it would vanish, since a
    least-squares residual has zero mean). White noise gives 1.
    """
    r = np.where(region, residual, 0.0).astype(np.float64)
    m = region.astype(np.float64)
    n = int(m.sum())
    if n == 0 or not np.any(r):
        return 1.0
    shape = [2 * s for s in r.shape]
    fr, fm = np.fft.rfft2(r, shape), np.fft.rfft2(m, shape)
    acf = np.fft.irfft2(np.abs(fr) ** 2, shape)
    pairs = np.fft.irfft2(np.abs(fm) ** 2, shape)
    acf = np.fft.fftshift(acf)
    pairs = np.fft.fftshift(pairs)
    ok = pairs > 0.25 * n  # lags with enough pairs to average over
    rho = np.where(ok, acf / np.maximum(pairs, 1.0), 0.0)
    cy, cx = shape[0] // 2, shape[1] // 2
    rho = rho / rho[cy, cx]
    yy, xx = np.indices(shape)
    radius = np.hypot(yy - cy, xx - cx)
    bins = np.rint(radius).astype(int)
    sums = np.bincount(bins[ok], rho[ok])
    counts = np.bincount(bins[ok])
    mean = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    below = np.nonzero(mean <= 0)[0]
    cut = int(below[0]) if below.size else len(mean)
    lobe = ok & (radius < cut)
    return float(max(rho[lobe].sum(), 1.0))


def _banded_solver(problem, vals: np.ndarray):
    """``Y -> N^-1 Y`` for the (2K, 2K) normal matrix with nonzeros ``vals`` (banded Cholesky)."""
    from scipy.linalg import cho_solve_banded, cholesky_banded

    n = 2 * problem.basis.size
    ab = np.zeros((problem._bw + 1, n))
    ab.reshape(-1)[problem._band_dst] = vals[problem._band_src]
    chol = cholesky_banded(ab, lower=False, check_finite=False)
    perm = problem._banded

    def solve(y: np.ndarray) -> np.ndarray:
        x = np.empty_like(y)
        x[perm] = cho_solve_banded((chol, False), y[perm], check_finite=False)
        return x

    return solve


#: Columns of the covariance computed at once: its band is gathered chunk by chunk, so the memory
#: is 2K x this, not 2K x 2K (1.5 GB for the 2K = 13 778 coefficients of a 4096^2 crop).
COLUMN_CHUNK = 512


def _covariance_bands(basis, column) -> dict:
    """The (Ky, 7, Kx, 7) bands of the Gamma_me, Gamma_ac and cross blocks, keys (0, 0), (1, 1),
    (0, 1), of a (2K, 2K) covariance given by its columns: ``column(j0, j1)`` is ``cov[:, j0:j1]``.
    ``band[i, a, j, b]`` is ``cov[(i, j), (i + a - 3, j + b - 3)]`` of the block."""
    rows, cols, valid = basis.band_pattern()
    r, c = rows[valid], cols[valid]
    k = basis.size
    vals = {block: np.zeros(r.size) for block in ((0, 0), (1, 1), (0, 1))}
    for j0 in range(0, 2 * k, COLUMN_CHUNK):
        j1 = min(j0 + COLUMN_CHUNK, 2 * k)
        x = column(j0, j1)
        for (bi, bj), v in vals.items():
            col = bj * k + c
            sel = (col >= j0) & (col < j1)
            v[sel] = x[bi * k + r[sel], col[sel] - j0]
    out = {}
    for block, v in vals.items():
        band = np.zeros(valid.shape)
        band[valid] = v
        out[block] = band
    return out


def _unit_columns(n: int, j0: int, j1: int) -> np.ndarray:
    """Columns j0..j1 of the n x n identity."""
    e = np.zeros((n, j1 - j0))
    e[np.arange(j0, j1), np.arange(j1 - j0)] = 1.0
    return e


def _neighbour_products(factor: np.ndarray) -> np.ndarray:
    """(n, K) 1-D factor -> (n, K, 7): ``f[p, i] f[p, i + a - 3]`` (0 off the grid)."""
    n, k = factor.shape
    out = np.zeros((n, k, BAND))
    c = BAND // 2
    for a in range(-c, c + 1):
        i0, i1 = max(0, -a), min(k, k - a)
        if i1 > i0:  # a grid of fewer than 4 points has no neighbour that far
            out[:, i0:i1, c + a] = factor[:, i0:i1] * factor[:, i0 + a : i1 + a]
    return out


def map_variance(basis, band: np.ndarray) -> np.ndarray:
    """``B(x)^T C B(x)`` at every pixel of the basis's (H, W) grid, from the (Ky, 7, Kx, 7) band of
    C (``band[i, a, j, b] = C[(i, j), (i + a - 3, j + b - 3)]``): the band is all that enters, since
    B(x) has its nonzeros on 4 x 4 neighbouring control points. O(pixels x K_min x 7) work, nothing
    of size pixels x K."""
    py = _neighbour_products(basis.factor_y.double().cpu().numpy())  # (H, Ky, 7)
    px = _neighbour_products(basis.factor_x.double().cpu().numpy())  # (W, Kx, 7)
    half = np.einsum("iajb,xjb->iax", band, px)  # (Ky, 7, W)
    return np.einsum("yia,iax->yx", py, half)


def _covariance_maps(problem, bands: dict, maps: dict) -> dict:
    """sd maps of Gamma_me, Gamma_ac and lambda (delta method) from the bands of the coefficients'
    covariance (:func:`_covariance_bands`)."""
    basis = problem.basis
    v_me = map_variance(basis, bands[(0, 0)])
    v_ac = map_variance(basis, bands[(1, 1)])
    c_ma = map_variance(basis, bands[(0, 1)])
    inside = problem.interior.cpu().numpy()
    me = np.asarray(maps["gamma_me"], np.float64)
    ac = np.asarray(maps["gamma_ac"], np.float64)
    lam = me / ac
    v_lam = lam**2 * (v_me / me**2 + v_ac / ac**2 - 2 * c_ma / (me * ac))
    out = {}
    for key, v in (("gamma_me", v_me), ("gamma_ac", v_ac), ("lambda", v_lam)):
        sd = np.sqrt(np.clip(v, 0.0, None))
        out[key] = np.where(inside, sd, np.nan).astype(np.float32)
    return out


@torch.no_grad()
def sandwich_uncertainty(problem, d: dict, coef: torch.Tensor, maps: dict) -> RateUncertainty:
    """Sandwich covariance of the rate coefficients at the end of a fit, and its sd maps.

    Parameters
    ----------
    problem : RateProblem
    d : dict
        The final field's derivatives (``u``, ``mu_laplacian``), as the fit's last solve saw them.
    coef : (2K,) tensor
        The final coefficients (Gamma_me's, then Gamma_ac's).
    maps : dict
        :meth:`RateProblem.maps` of the result (the delta method for lambda uses them).

    Returns
    -------
    RateUncertainty
        On the crop; ``figures`` holds the residual's correlation area (pixels), the inflation
        and the coefficients' count.
    """
    k = problem.n_coef
    u, b, inside = problem._fields(d)
    me, ac = problem.basis.expand(coef[:k]), problem.basis.expand(coef[k:])
    r = (me * (1.0 - u) - ac * u - b) * inside
    region = problem.interior.cpu().numpy()
    area = correlation_area(r.cpu().numpy(), region)
    a, c = (1.0 - u) * inside, u * inside
    r2 = r * r
    meat_bands = problem.basis.gram_band(torch.stack([a * a * r2, a * c * r2, c * c * r2]))
    g = meat_bands.cpu().numpy()
    v = problem._valid
    meat = problem._csc(np.concatenate([g[0][v], -g[1][v], -g[1][v], g[2][v]]))
    normal_bands, _ = problem.normal_equations(d)
    solve = _banded_solver(problem, problem._values(normal_bands))
    scale = area * SANDWICH_INFLATION**2
    n = 2 * k

    def column(j0, j1):  # columns of N^-1 M N^-1 (N, M symmetric)
        return scale * solve(meat @ solve(_unit_columns(n, j0, j1)))

    sd = _covariance_maps(problem, _covariance_bands(problem.basis, column), maps)
    return RateUncertainty(
        sd["gamma_me"],
        sd["gamma_ac"],
        sd["lambda"],
        "sandwich",
        {"correlation_area_px": area, "inflation": SANDWICH_INFLATION, "coefficients": 2 * k},
    )


def _error_filter(problem, s_d: float, s_model: float, mean_rate: float) -> torch.Tensor:
    """Cosine-space multipliers of ``Sigma^-1``, ``Sigma = s_model^2 I + s_d^2 F F^T``: the
    residual's error covariance, model error plus the data noise carried through the linearised
    steady-state operator ``F`` (symbol ``rho(k) = M (kappa k^4 + 2 A k^2) + Gamma``, constant
    coefficients as in the fit's preconditioner; the PSF divides it, since the data see the
    blurred field)."""
    m = problem.model
    k2 = problem.k2
    rho = m.mobility * (m.kappa * k2**2 + 2 * m.bulk * k2) + mean_rate
    psf2 = 1.0 if problem.psf_hat is None else problem.psf_hat.double().cpu().square().clamp_min(1e-12)
    return 1.0 / (s_model**2 + s_d**2 * rho**2 / psf2)


@torch.no_grad()
def laplace_uncertainty(problem, d: dict, coef: torch.Tensor, maps: dict, s_d: float) -> RateUncertainty:
    """Laplace covariance of the rate coefficients at the end of a fit, and its sd maps.

    The objective ``|blur(u) - phi|^2 / s_d^2 + (|F(u, c)|^2 + c^T R c) / s^2`` (sums over
    pixels; F the steady-state residual, linear in c with matrix A; R the fit's regulariser)
    linearised at the fit has, once the field is eliminated (Woodbury), the marginal precision
    ``A^T Sigma^-1 A + R / s^2`` for the coefficients, with ``Sigma = s^2 I + s_d^2 F_u F_u^T``:
    the model's own error plus the data noise carried through the linearised 4th-order operator.

    The model error s^2 is the fitted residual's mean square times its correlation area
    (:func:`correlation_area`). The residual alone (the sandwich) misses the noise term, which
    the field turns into rate errors without leaving a residual; the fit's tolerance s_r in place
    of s gave sds that did not grow with the noise (measured). ``F_u`` is taken with constant
    coefficients, so ``Sigma^-1`` is a filter in cosine space (:func:`_error_filter`); its kernel
    is short next to the basis spacing, so ``A^T Sigma^-1 A`` is the Gram band with weights
    ``(Sigma^-1/2 a)^2`` (a the columns' factors ``1 - u`` and ``-u``): four cosine transforms, a
    Gram band and banded solves, nothing of size pixels x K.
    """
    from ..mollifier._dct import dctn, idctn

    k = problem.n_coef
    u, b, inside = problem._fields(d)
    a, c = (1.0 - u) * inside, -u * inside
    me, ac = problem.basis.expand(coef[:k]), problem.basis.expand(coef[k:])
    # The model error: the fitted residual's mean square over the interior times its correlation
    # area (a correlated error of variance v and area a acts at low wavenumbers as white noise of
    # variance v a).
    r = (me * (1.0 - u) - ac * u - b) * inside
    area = correlation_area(r.cpu().numpy(), problem.interior.cpu().numpy())
    s_model = math.sqrt(max(float(r.pow(2).sum()) / float(inside.sum()) * area, 1e-300))
    mean_rate = float((me + ac)[problem.interior].mean().abs())
    # Through the filter's square root, so that each pixel's 2 x 2 weight block is a product of
    # one vector with itself and the Gram stays positive semi-definite (with a Sigma^-1 a directly,
    # the short-kernel approximation made it indefinite on a noisy nucleus).
    root = _error_filter(problem, s_d, s_model, mean_rate).sqrt().to(u.device)
    wa, wc = (idctn(root * dctn(x)) for x in (a, c))
    weights = torch.stack([wa * wa, wa * wc, wc * wc])
    g = problem.basis.gram_band(weights).cpu().numpy()
    v = problem._valid
    # The regulariser keeps its weight relative to the residual (the fit's solve for c given the
    # field is the least-squares problem with N = A^T A + R).
    reg = problem.reg_band[v] / s_model**2
    vals = np.concatenate([g[0][v] + reg, g[1][v], g[1][v], g[2][v] + reg])
    solve = _banded_solver(problem, vals)
    n = 2 * k

    def column(j0, j1):
        return LAPLACE_INFLATION**2 * solve(_unit_columns(n, j0, j1))

    sd = _covariance_maps(problem, _covariance_bands(problem.basis, column), maps)
    return RateUncertainty(
        sd["gamma_me"],
        sd["gamma_ac"],
        sd["lambda"],
        "laplace",
        {
            "s_d": s_d,
            "s_model": s_model,
            "correlation_area_px": area,
            "inflation": LAPLACE_INFLATION,
            "coefficients": 2 * k,
        },
    )


def bootstrap_uncertainty(refit, imaged: np.ndarray, noise: float, fits: int, seed: int = 0):
    """Parametric bootstrap: sd over ``fits`` refits of ``imaged + noise x N(0, 1)``.

    Parameters
    ----------
    refit : callable(data) -> (gamma_me, gamma_ac, lambda) maps, or None when cancelled
        One fit of the same settings to a new image.
    imaged : array
        The fitted field as the microscope would record it.
    noise : float
        The data's noise level (standard deviation per pixel).
    fits : int
        Number of refits (at least 2).
    """
    rng = np.random.default_rng(seed)
    stacks: dict = {"gamma_me": [], "gamma_ac": [], "lambda": []}
    for _ in range(fits):
        data = imaged + noise * rng.standard_normal(imaged.shape)
        maps = refit(data)
        if maps is None:
            break
        for key, m in zip(stacks, maps):
            stacks[key].append(np.asarray(m, np.float64))
    n = len(stacks["gamma_me"])
    if n < 2:
        return None
    sd = {k: np.std(np.stack(v), axis=0, ddof=1).astype(np.float32) for k, v in stacks.items()}
    return RateUncertainty(
        sd["gamma_me"], sd["gamma_ac"], sd["lambda"], "bootstrap", {"fits": n, "noise": float(noise)}
    )


def with_systematic(unc: RateUncertainty, maps: dict, s_d: float) -> RateUncertainty:
    """The sd maps with their systematic part added in quadrature: ``sqrt(sd^2 + (k s_d |map|)^2)``,
    ``k`` = :data:`SYSTEMATIC_PER_NOISE`, ``s_d`` the data term's noise level in phi.

    Parameters
    ----------
    unc : RateUncertainty
        The statistical sd maps (on the crop).
    maps : dict
        "gamma_me", "gamma_ac", "lambda" maps on the same grid (NaN outside the interior).
    s_d : float
        The noise level of phi the fit's data term used.

    Returns
    -------
    RateUncertainty
        The total sd maps; ``figures`` gains ``systematic_relative_sd`` (``k s_d``) and keeps the
        rest.
    """
    rel = SYSTEMATIC_PER_NOISE * float(s_d)
    total = {}
    for key, attr in SD_FIELDS:
        sd = np.asarray(getattr(unc, attr), np.float64)
        value = np.abs(np.asarray(maps[key], np.float64))
        total[attr] = np.sqrt(sd**2 + (rel * value) ** 2).astype(np.float32)
    return RateUncertainty(
        total["gamma_me"],
        total["gamma_ac"],
        total["lam"],
        unc.method,
        {**unc.figures, "systematic_relative_sd": rel},
    )


def statistical_sd(total: np.ndarray, value: np.ndarray, systematic_relative_sd: float) -> np.ndarray:
    """The statistical part of a total sd map (:func:`with_systematic` undone)."""
    sys2 = (systematic_relative_sd * np.abs(np.asarray(value, np.float64))) ** 2
    return np.sqrt(np.clip(np.asarray(total, np.float64) ** 2 - sys2, 0.0, None))


def median_relative_sd(sd: np.ndarray, value: np.ndarray) -> float:
    """Median of sd / |value| over the finite pixels (NaN if none)."""
    ok = np.isfinite(sd) & np.isfinite(value) & (value != 0)
    return float(np.median(sd[ok] / np.abs(value[ok]))) if ok.any() else math.nan


def rate_uncertainty(
    problem, d, coef, maps, settings, phi, mask, pixel_size_nm, model, noise, s_d, cancel=None
) -> RateUncertainty | None:
    """The sd maps ``settings.uncertainty`` asks for, on the crop (None for "none", or when a
    bootstrap was cancelled before two refits).

    The bootstrap refits the whole image with the crop replaced by the fitted field as imaged
    (:meth:`RateProblem.imaged`) plus fresh Gaussian noise of the data's estimated level, with
    the same settings (and no uncertainty of their own). Every estimate gets its systematic part
    (:func:`with_systematic`)."""
    unc = _statistical_uncertainty(
        problem, d, coef, maps, settings, phi, mask, pixel_size_nm, model, noise, s_d, cancel
    )
    return None if unc is None else with_systematic(unc, maps, s_d)


def _statistical_uncertainty(
    problem, d, coef, maps, settings, phi, mask, pixel_size_nm, model, noise, s_d, cancel
) -> RateUncertainty | None:
    from numpy.linalg import LinAlgError

    try:
        if settings.uncertainty == "sandwich":
            return sandwich_uncertainty(problem, d, coef, maps)
        if settings.uncertainty == "laplace":
            return laplace_uncertainty(problem, d, coef, maps, s_d)
    except LinAlgError:  # a covariance that is not positive definite: no sd maps rather than no fit
        return None
    if settings.uncertainty != "bootstrap":
        return None
    from ._solver import RateFit, fit_rates

    box = problem.box
    imaged = problem.imaged(d).double().cpu().numpy()
    inner = settings.model_copy(update={"uncertainty": "none"})

    def refit(data):
        if cancel is not None and cancel.is_set():
            return None
        full = np.array(phi, dtype=np.float64, copy=True)
        full[box] = data
        fit = None
        for item in fit_rates(full, mask, pixel_size_nm, inner, model=model, cancel=cancel):
            if isinstance(item, RateFit):
                fit = item
        if fit is None or fit.cancelled:
            return None
        return fit.gamma_me[box], fit.gamma_ac[box], fit.lam[box]

    return bootstrap_uncertainty(refit, imaged, noise, settings.bootstrap_fits, seed=settings.seed + 1)


def uncertainty_record(unc: RateUncertainty | None, sd: dict, maps: dict) -> dict:
    """What S.json records of the sd maps: the method, its figures and the median sd / |map| of
    each map (``sd`` and ``maps``: "gamma_me", "gamma_ac", "lambda" on one grid; ``{"method":
    "none"}`` without sd maps)."""
    if unc is None:
        return {"method": "none"}
    rel = {key: median_relative_sd(sd[key], maps[key]) for key in ("gamma_me", "gamma_ac", "lambda")}
    return {"method": unc.method, **unc.figures, "median_relative_sd": rel}
