"""The rate problem of one image: everything a fit needs except the trainable field.

:class:`RateProblem` holds the data and regions on the analysed crop, the mollifier that takes
the residual's derivatives of a field, and the smooth rate basis. Given those derivatives the
steady-state residual is linear in the rate coefficients, so ``solve`` gives the optimal ones by
a small regularised least-squares problem (variable projection), and ``residual_energy`` is the
physics term of the loss. :func:`estimate_noise` sets the data's noise scale (and with it the
rate regulariser's weight); :func:`_preconditioner` is the Fourier symbol of the linearised loss,
which flattens its curvature for the grid field. The training itself is in ``_solver``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ..config import InferenceSettings, option_name, resolved_kernel_radius_nm
from ..mollifier import MollifierLayer, mollifier_margin
from ..physics import DERIVATIVES_NEEDED, ChromatinModel, f_prime, mu_laplacian
from ._basis import SmoothBasis

__all__ = ["RateProblem", "estimate_noise"]


def estimate_noise(phi: np.ndarray, region: np.ndarray) -> float:
    """Noise level of phi inside a region: MAD of the discrete Laplacian (robust to domains)."""
    lap = 4 * phi[1:-1, 1:-1] - phi[:-2, 1:-1] - phi[2:, 1:-1] - phi[1:-1, :-2] - phi[1:-1, 2:]
    inner = region[1:-1, 1:-1]
    if not inner.any():
        return 0.0
    v = lap[inner]
    # For white noise of std s the 5-point Laplacian has std s * sqrt(20).
    return float(1.4826 * np.median(np.abs(v - np.median(v))) / math.sqrt(20.0))


#: Noise level at which ``settings.smoothness`` applies as given (it scales as (noise / this)^2).
SMOOTHNESS_REFERENCE_NOISE = 0.01


def _fft_friendly(lo: int, hi: int, size: int) -> tuple[int, int]:
    """Grow ``[lo, hi)`` (clipped to ``[0, size)``) to a length whose FFT has only small prime
    factors: the cosine transforms of the fit run real FFTs of the crop's own length along each
    axis, and a length with a large prime factor (234 = 2 x 3^2 x 13 is fine, 233 is prime) makes
    them several times slower."""
    from scipy.fft import next_fast_len

    lo, hi = max(lo, 0), min(hi, size)
    n = hi - lo
    target = next_fast_len(n, real=True)
    grow = min(target, size) - n
    lo = max(lo - grow // 2, 0)
    hi = min(lo + n + grow, size)
    lo = max(hi - n - grow, 0)
    return lo, hi


def crop_box(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """The analysed crop of an image: the mask's bounding box grown by the mollifier's margin
    plus 2 pixels, then to FFT-friendly sizes (:func:`_fft_friendly`). :class:`RateProblem` fits
    on it, and the cost estimate (``_cost``) sizes a fit by it without building the problem."""
    ys, xs = np.nonzero(mask)
    pad = margin + 2
    y0, y1 = _fft_friendly(ys.min() - pad, ys.max() + pad + 1, mask.shape[0])
    x0, x1 = _fft_friendly(xs.min() - pad, xs.max() + pad + 1, mask.shape[1])
    return slice(y0, y1), slice(x0, x1)


#: Fewest interior pixels (the nucleus less its edge margin) a fit accepts.
MIN_INTERIOR_PIXELS = 100


def _round_up(x: float) -> str:
    """A value at least ``x``, as a short number for a message (80.8 -> "81", 2.02 -> "2.1")."""
    digits = max(0, 1 - math.floor(math.log10(x))) if x > 0 else 0
    return f"{math.ceil(x * 10**digits - 1e-9) / 10**digits:.{digits}f}"


def _small_interior_message(mask: np.ndarray, left: int, edge_px: int, pixel_size_nm: float) -> str:
    """Why the interior is too small, and the largest edge margin that leaves enough of it."""
    from scipy.ndimage import distance_transform_cdt

    head = (
        f"the nucleus mask leaves only {left} pixels more than {edge_px} pixel(s) "
        f"({edge_px * pixel_size_nm:g} nm) from its edge; at least {MIN_INTERIOR_PIXELS} are needed"
    )
    # k erosions (4-connected, the image border outside) keep the pixels whose taxicab distance
    # to the outside exceeds k.
    depth = distance_transform_cdt(np.pad(np.asarray(mask, bool), 1), metric="taxicab")[1:-1, 1:-1]
    for px in range(edge_px - 1, 0, -1):
        n = int((depth > px).sum())
        if n >= MIN_INTERIOR_PIXELS:
            return f"{head}: use {option_name('edge_margin_nm')} {px * pixel_size_nm:g} (leaves {n}) or less"
    return f"{head}: the mask is too small or empty for this pixel size; check the mask and the pixel size"


@functools.cache
def _blas_threads():
    """The BLAS libraries' thread pools, found once: a fresh ``threadpool_limits`` searches the
    loaded libraries again, ~1 ms, a tenth of a 256^2 step."""
    import scipy.linalg  # noqa: F401 - its BLAS must be loaded before the search
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


class RateProblem:
    """Data, regions, mollifier and rate basis on the analysed crop: the pieces of a rate fit.

    ``derivatives(g)`` gives the residual's derivatives of a field g on the crop, ``solve(d)``
    the rate coefficients that are optimal for them, ``residual_energy(d, coef)`` the physics
    term of the loss and ``maps(coef, u)`` the rate maps; :func:`fit_rates` trains g with them.
    """

    def __init__(
        self,
        phi: np.ndarray,
        mask: np.ndarray,
        pixel_size_nm: float,
        settings: InferenceSettings,
        model: ChromatinModel,
        device: torch.device,
        noise_level: float = SMOOTHNESS_REFERENCE_NOISE,
        data_weights: np.ndarray | None = None,
    ):
        from scipy.ndimage import binary_erosion

        self.model = model
        self.h = model.spacing(pixel_size_nm)
        self.kernel_radius_nm = resolved_kernel_radius_nm(settings, pixel_size_nm)
        radius_px = self.kernel_radius_nm / pixel_size_nm
        if radius_px <= 0.5:
            raise ValueError(
                f"kernel_radius_nm={self.kernel_radius_nm:g} is only {radius_px:.2f} pixels at "
                f"{pixel_size_nm:g} nm/pixel (it must exceed half a pixel); use "
                f"{option_name('kernel_radius_nm')} {_round_up(1.01 * pixel_size_nm)} (about one pixel) "
                "or more, or leave it unset (about one pixel at any pixel size)"
            )
        # Spectral derivatives: the chromatin residual cancels 4th-order terms ~25x larger than
        # the reaction, and 8th-order differences at 10 nm leave errors of that size
        # (measured: rates off by 60-200 % vs 0.2 % with exact multipliers, noise-free).
        # The residual's lap(mu): "nested" = a second mollifier Laplacian of mu(phi_hat) (the
        # pseudo-spectral form), "chain" = chain rule from derivatives of phi_hat. On a steady state
        # simulated at 5 nm and sampled at 10 nm the true maps leave a residual of 20 % of the
        # reaction with "nested" against 53 % with "chain" (docs/decisions.md).
        # "nested" needs even-order derivatives only, so it runs on cosine transforms of the crop
        # (the half-sample symmetric extension: transforms of the crop's own size); "chain" needs
        # the gradient too and keeps the mollifier layer's whole-sample even extension.
        self.nested = settings.residual_form == "nested"
        self.layer = (
            None
            if self.nested
            else MollifierLayer(
                radius_px, DERIVATIVES_NEEDED, spacing=self.h, boundary="reflect", kernel="spectral"
            ).to(device)
        )
        self.radius_px = radius_px
        margin = mollifier_margin(radius_px, ("u",), kernel="spectral")
        # At least one pixel: the residual is never scored on the mask's edge pixels.
        edge_px = max(int(round(settings.edge_margin_nm / pixel_size_nm)), 1)
        interior = binary_erosion(mask, iterations=edge_px, border_value=0)
        if interior.sum() < MIN_INTERIOR_PIXELS:
            raise ValueError(_small_interior_message(mask, int(interior.sum()), edge_px, pixel_size_nm))
        self.box = crop_box(mask, margin)
        self.full_shape = phi.shape
        # float32 by default: on a 256^2 nucleus at 3 % noise it gave the same maps as float64 to
        # three digits, 1.45x faster on the CPU (MPS has no float64).
        self.dtype = (
            torch.float64 if (settings.precision == "float64" and device.type != "mps") else torch.float32
        )
        self.phi = torch.as_tensor(phi[self.box], dtype=self.dtype, device=device)
        # Per-pixel weights of the data term (photon counts: 1 / variance, median 1), or None.
        self.data_weights = (
            None
            if data_weights is None
            else torch.as_tensor(data_weights[self.box], dtype=self.dtype, device=device)
        )
        self.mask = torch.as_tensor(mask[self.box], device=device)
        self.interior = torch.as_tensor(interior[self.box], device=device)
        spacing_px = settings.rate_scale_nm / pixel_size_nm
        if spacing_px < 2:  # the bicubic rate basis needs control points >= 2 pixels apart
            raise ValueError(
                f"rate_scale_nm={settings.rate_scale_nm:g} puts the rate maps' control points only "
                f"{spacing_px:.2f} pixels apart at {pixel_size_nm:g} nm/pixel (at least 2 are needed); "
                f"use {option_name('rate_scale_nm')} {_round_up(2 * pixel_size_nm)} or more"
            )
        self.basis = SmoothBasis(
            tuple(self.phi.shape), spacing_px, self.interior, dtype=torch.float64, device=device
        )
        k = self.basis.size
        self.roughness_band = self.basis.roughness_band()  # D^T D of one map, (Ky, 7, Kx, 7)
        self._system_pattern()
        # Tikhonov weight of the rate maps follows the data's variance: at 3 % noise the default
        # weight left r ~0.87-0.89 on a gradient nucleus, (3 %/1 %)^2 = 9x gave 0.95 (measured,
        # benchmarks/chromatin_recovery.py); noise-free fits are unchanged.
        self.smoothness = settings.smoothness * (noise_level / SMOOTHNESS_REFERENCE_NOISE) ** 2
        self._cosine_symbols(psf_px=(settings.psf_sigma_nm or 0.0) / pixel_size_nm)
        self.device = device
        self.n_coef = k

    def _cosine_symbols(self, psf_px: float) -> None:
        """Multipliers of the crop's cosine coefficients (DCT-II, :mod:`..mollifier._dct`): the
        sampled bump ``eta_hat`` (1 at the default radius of about one pixel, where the bump is a
        single sample), the mollified Laplacian ``-k^2 eta_hat`` and the PSF's Gaussian blur."""
        from ..mollifier import bump_kernel
        from ..mollifier._dct import cosine_wavenumbers
        from ..mollifier._functional import sampled_bump_symbol

        hh, ww = self.phi.shape
        dev, dt = self.mask.device, self.dtype
        ky = cosine_wavenumbers(hh, self.h)
        kx = cosine_wavenumbers(ww, self.h)
        self.k2 = ky[:, None] ** 2 + kx[None, :] ** 2  # float64, the preconditioner's too
        # The bump's DFT on the 2n-periodic symmetric extension, at the cosine frequencies.
        eta = torch.tensor(bump_kernel(self.radius_px, 2))
        self.eta_hat = sampled_bump_symbol(eta, (2 * hh, 2 * ww))[:hh, :ww]
        self._eta = None if bool((self.eta_hat == 1).all()) else self.eta_hat.to(dev, dt)
        self._lap = (-self.k2 * self.eta_hat).to(dev, dt)
        self.psf_hat = None
        if psf_px > 0:
            ky = cosine_wavenumbers(hh, 1.0)
            kx = cosine_wavenumbers(ww, 1.0)
            self.psf_hat = torch.exp(-0.5 * psf_px**2 * (ky[:, None] ** 2 + kx[None, :] ** 2)).to(dev, dt)

    def spectrum(self, g: torch.Tensor) -> torch.Tensor:
        """Cosine coefficients (DCT-II) of a field on the crop."""
        from ..mollifier._dct import dctn

        return dctn(g)

    def data_misfit(self, d: dict) -> torch.Tensor:
        """Mean squared difference of phi_hat, as imaged, and the data over the whole crop: phi_hat
        must fit outside the nucleus too (the data term of the loss, before its noise scale),
        each pixel weighted by ``data_weights`` where given."""
        sq = (self.imaged(d) - self.phi).pow(2)
        return (sq if self.data_weights is None else self.data_weights * sq).mean()

    @torch.no_grad()
    def levels(self, imaged: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gain and offset that fit ``gain x imaged + offset`` to the data over the crop by least
        squares (a 2-parameter linear problem, solved exactly: variable projection, as the rates).
        The gain is kept positive (at least 1e-6 of the data's spread per unit of phi)."""
        x = imaged.double()
        y = self.phi.double()
        xc = x - x.mean()
        gain = (xc * (y - y.mean())).sum() / xc.pow(2).sum().clamp_min(1e-30)
        gain = gain.clamp_min(1e-6 * float(y.std()))
        offset = y.mean() - gain * x.mean()
        return gain.to(self.dtype), offset.to(self.dtype)

    def calibrated_misfit(self, d: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The data term of a joint calibration: mean squared difference of ``gain x imaged +
        offset`` and the data over the crop, with gain and offset optimal for this field (detached:
        at the optimum the gradient with respect to the field is the same with them held fixed,
        the envelope theorem). Returns (misfit, gain, offset)."""
        im = self.imaged(d)
        gain, offset = self.levels(im)
        return (gain * im + offset - self.phi).pow(2).mean(), gain, offset

    def relative_residual(self, d: dict, coef: torch.Tensor) -> torch.Tensor:
        """:meth:`residual_energy` over the mean square of ``M lap(mu)`` on the interior: a
        scale-free physics term. Scaling phi_hat's variation by a factor scales both (to first
        order), so this term cannot be lowered by flattening phi_hat, which the absolute residual
        can when gain and offset are free; the coefficients do not enter the denominator, so they
        stay optimal for the quotient and detached gradients stay exact."""
        _, b, _ = self._fields(d)
        return self.residual_energy(d, coef) / b[self.interior].pow(2).mean().clamp_min(1e-30)

    def imaged(self, d: dict) -> torch.Tensor:
        """phi_hat as the microscope would record it (blurred by the PSF, if any), from the
        derivatives of :meth:`derivatives`."""
        if self.psf_hat is None:
            return d["u"]
        from ..mollifier._dct import dctn, idctn

        spec = d.get("u_spectrum")
        if spec is None:
            spec = dctn(d["u"])
        return idctn(spec * self.psf_hat)

    def derivatives(self, g: torch.Tensor) -> dict:
        """The residual's derivatives of a field g on the crop: ``u = g * eta`` and ``lap(mu)``."""
        if not self.nested:
            out = {k: v[0, 0] for k, v in self.layer(g[None, None]).items()}
            out["mu_laplacian"] = mu_laplacian(out, self.model)
            return out
        return self.derivatives_from_spectrum(self.spectrum(g))

    def derivatives_from_spectrum(self, spec: torch.Tensor) -> dict:
        """:meth:`derivatives` from the field's cosine coefficients (the grid field is trained
        in them): ``u``, ``lap(mu)`` with ``mu = A f'(u) - kappa lap(u)`` (each Laplacian a
        mollified one, the "nested" form), and ``u``'s coefficients (for the PSF). Two cosine
        transforms each way: ``u`` and ``lap(mu)`` back, ``f'(u)`` forth."""
        from ..mollifier._dct import dctn, idctn

        m = self.model
        u_spec = spec if self._eta is None else spec * self._eta
        u = idctn(u_spec)
        mu_spec = m.bulk * dctn(f_prime(u)) - m.kappa * (self._lap * spec)
        return {"u": u, "mu_laplacian": idctn(self._lap * mu_spec), "u_spectrum": u_spec}

    def _fields(self, d: dict):
        """u and the residual's constant ``b = -M lap(mu)`` on the crop, float64, zero outside
        the interior (the residual is scored there only)."""
        inside = self.interior.double()
        u = d["u"].double()
        b = -self.model.mobility * d["mu_laplacian"].double()
        return u, b * inside, inside

    def normal_equations(self, d: dict):
        """Gram bands and ``A^T b`` of the residual ``A c - b`` (A: columns ``B_k (1 - u)`` and
        ``-B_k u`` on the interior). The bands (3, Ky, 7, Kx, 7) are ``sum w B_k B_l`` for the
        weights (1 - u)^2, (1 - u) u and u^2 (:meth:`SmoothBasis.gram_band`); ``A^T A`` is
        ``[[G0, -G1], [-G1, G2]]``. Nothing of size pixels x K is formed."""
        u, b, inside = self._fields(d)
        a, c = (1.0 - u) * inside, u * inside
        bands = self.basis.gram_band(torch.stack([a * a, a * c, c * c]))
        atb = self.basis.project(torch.stack([a * b, -c * b])).reshape(-1)
        return bands, atb

    def _system_pattern(self) -> None:
        """Fixed sparsity of the (2K, 2K) normal matrix (four banded K x K blocks): its CSC
        layout, and the map into LAPACK's upper band storage after ordering the unknowns by
        control point (the two rates of a point together, the shorter grid axis fastest), so that
        each step only fills values."""
        rows, cols, valid = self.basis.band_pattern()
        r, c = rows[valid], cols[valid]
        k = self.basis.size
        rr = np.concatenate([r, r, r + k, r + k])
        cc = np.concatenate([c, c + k, c, c + k])
        order = np.lexsort((rr, cc))
        self._valid = valid
        self._order = order
        self._indices = rr[order].astype(np.int32)
        self._indptr = np.concatenate([[0], np.cumsum(np.bincount(cc, minlength=2 * k))]).astype(np.int32)
        # Banded ordering: point (i, j) -> q = i Kx + j (or j Ky + i if Kx > Ky), unknown 2 q + rate.
        ky, kx = self.basis.grid
        q = np.arange(k).reshape(ky, kx)
        q = (q if kx <= ky else np.arange(k).reshape(kx, ky).T).reshape(-1)
        pos = np.concatenate([2 * q, 2 * q + 1])  # original unknown -> banded position
        big, small = pos[rr], pos[cc]
        upper = small >= big
        self._bw = int((small - big)[upper].max())
        self._band_dst = (self._bw + big[upper] - small[upper]) * (2 * k) + small[upper]
        self._band_src = np.nonzero(upper)[0]
        self._banded = np.argsort(pos)  # banded position -> original unknown

    def _values(self, bands: torch.Tensor) -> np.ndarray:
        """Nonzeros of ``[[G0 + R, -G1], [-G1, G2 + R]]`` in the pattern's (block) order."""
        g = bands.detach().cpu().numpy()
        v = self._valid
        r = self.reg_band[v]
        return np.concatenate([g[0][v] + r, -g[1][v], -g[1][v], g[2][v] + r])

    def _csc(self, vals: np.ndarray):
        import scipy.sparse as sp

        n = 2 * self.basis.size
        return sp.csc_matrix((vals[self._order], self._indices, self._indptr), shape=(n, n))

    def normal_matrix(self, d: dict):
        """``A^T A + R`` (scipy.sparse CSC, <= 98 nonzeros a row) and ``A^T b`` (float64 tensor)."""
        if getattr(self, "reg_band", None) is None:
            self.set_regularisation(d)
        bands, atb = self.normal_equations(d)
        return self._csc(self._values(bands)), atb

    @torch.no_grad()
    def set_regularisation(self, d: dict) -> None:
        """Fix the rate regulariser's scale from one field (it must not change during a fit,
        or the detached coefficients would no longer give the exact gradient)."""
        bands, _ = self.normal_equations(d)
        c = bands.shape[2] // 2
        diag = bands[0, :, c, :, c].sum() + bands[2, :, c, :, c].sum()
        scale = float(diag) / (2 * self.basis.size)
        eye = np.zeros_like(self.roughness_band)
        eye[:, c, :, c] = 1.0
        self.reg_weights = (self.smoothness * scale, 1e-9 * scale)
        self.reg_band = self.reg_weights[0] * self.roughness_band + self.reg_weights[1] * eye

    def penalty(self, coef: torch.Tensor) -> torch.Tensor:
        """``c^T R c``: the roughness (second differences of each control grid) and ridge terms."""
        rough, ridge = self.reg_weights
        out = ridge * coef.pow(2).sum()
        for grid in coef.reshape(2, *self.basis.grid):
            out = out + rough * (grid[2:] - 2 * grid[1:-1] + grid[:-2]).pow(2).sum()
            out = out + rough * (grid[:, 2:] - 2 * grid[:, 1:-1] + grid[:, :-2]).pow(2).sum()
        return out

    @torch.no_grad()
    def solve(self, d: dict) -> torch.Tensor:
        """Rate coefficients minimising ``|A c - b|^2 + c^T R c`` for this field.

        The normal matrix is symmetric positive definite and, with the unknowns ordered by control
        point, banded (half-bandwidth ~6 x the shorter grid side): a banded Cholesky (LAPACK) on
        the CPU plus one step of iterative refinement solves it to rounding, as the dense solve
        did, in O(K Kmin^2) time and O(K Kmin) memory instead of O(K^3) and O(K^2). On a
        2 x 5625 system it took 0.14 s against 0.4 s for a sparse LU (SuperLU, minimum degree)."""
        # One BLAS thread: the banded system is small, and OpenBLAS's worker threads, once woken,
        # spin and starve torch's own threads (a 256^2 fit ran 3x slower on 2 cores).
        with _blas_threads().limit(limits=1, user_api="blas"):
            return self._solve(d)

    def _solve(self, d: dict) -> torch.Tensor:
        from scipy.linalg import cho_solve_banded, cholesky_banded

        if getattr(self, "reg_band", None) is None:
            self.set_regularisation(d)
        bands, atb = self.normal_equations(d)
        vals = self._values(bands)
        n = 2 * self.basis.size
        ab = np.zeros((self._bw + 1, n))
        ab.reshape(-1)[self._band_dst] = vals[self._band_src]
        chol = cholesky_banded(ab, lower=False, check_finite=False)
        rhs = atb.cpu().numpy()
        perm = self._banded
        x = np.empty(n)
        x[perm] = cho_solve_banded((chol, False), rhs[perm], check_finite=False)
        r = rhs - self._csc(vals) @ x
        x[perm] += cho_solve_banded((chol, False), r[perm], check_finite=False)
        return torch.as_tensor(x, dtype=torch.float64, device=atb.device)

    def residual(self, d: dict, coef: torch.Tensor) -> torch.Tensor:
        """Steady-state residual ``Gamma_me (1 - u) - Gamma_ac u - b`` on the interior pixels."""
        u, b, inside = self._fields(d)
        k = self.n_coef
        me, ac = self.basis.expand_separable(coef[:k]), self.basis.expand_separable(coef[k:])
        return (me * (1.0 - u) - ac * u - b)[self.interior]

    def residual_energy(self, d: dict, coef: torch.Tensor) -> torch.Tensor:
        """Mean squared residual plus the regulariser per pixel: the exact objective the
        coefficients minimise, so gradients through a detached ``coef`` are exact."""
        r = self.residual(d, coef)
        return (r.pow(2).sum() + self.penalty(coef)) / r.numel()

    def maps(self, coef: torch.Tensor, u: torch.Tensor) -> dict:
        k = self.n_coef
        me = self.basis.expand(coef[:k]).float()
        ac = self.basis.expand(coef[k:]).float()
        nan = torch.tensor(float("nan"), device=me.device)
        inside = self.interior
        return {
            "gamma_me": torch.where(inside, me, nan).cpu().numpy(),
            "gamma_ac": torch.where(inside, ac, nan).cpu().numpy(),
            "lambda": torch.where(inside, me / ac, nan).cpu().numpy(),
            "phi_hat": u.detach().float().cpu().numpy(),
        }

    def to_full(self, crop: np.ndarray, fill=np.nan) -> np.ndarray:
        out = np.full(self.full_shape, fill, dtype=np.float32)
        out[self.box] = crop
        return out


def _preconditioner(problem: RateProblem, s_d: float, s_r: float, mean_rate: float) -> torch.Tensor:
    """Fourier symbol p(k) that makes the loss's curvature about uniform over wavenumbers.

    Linearised, the loss in g has the symbol ``eta_h(k)^2 [1/s_d^2 + rho(k)^2/s_r^2]`` with
    ``rho = M (kappa k^4 + 2 A k^2) + Gamma`` (the 4th-order operator, stiff as k^8). Training
    ``z`` with ``g = F^-1[p F z]`` and ``p = symbol^-1/2`` removes that stiffness; without it
    Adam barely moved the high wavenumbers that noise lives in (measured). The symbol is on the
    crop's cosine frequencies, the basis the grid field is trained in.
    """
    m = problem.model
    k2 = problem.k2
    rho = m.mobility * (m.kappa * k2**2 + 2 * m.bulk * k2) + mean_rate
    psf2 = 1.0 if problem.psf_hat is None else problem.psf_hat.double().cpu().square()
    symbol = problem.eta_hat.square().clamp_min(0.05) * (psf2 / s_d**2 + rho**2 / s_r**2)
    return (symbol / symbol[0, 0]).rsqrt().to(problem.device, problem.dtype)
