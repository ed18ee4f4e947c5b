"""Cosine transforms in torch: spectral derivatives on the half-sample symmetric extension.

A field on ``n`` samples mirrored about its edges *between* samples (``x[-1] = x[0]``, numpy's
``"symmetric"`` padding) is even and ``2n``-periodic; its trigonometric interpolant is a cosine
series whose coefficients are the DCT-II of the samples. Even-order derivatives of the interpolant
are cosine series again (multipliers ``(-1)^(a/2) k^a`` with ``k = pi j / (n h)``), so a
Laplacian or a biharmonic costs one DCT-II and one DCT-III of the field's own size, where the
whole-sample even extension of the ``"reflect"`` spectral mollifier costs real FFTs of
``(2n - 2)`` points per axis: four times the samples in 2-D.

Each 1-D transform is Makhoul's: reorder the samples (evens, then odds reversed), one real FFT of
``n`` points, one twiddle; the inverse runs the same steps backwards. Built from torch operations,
so autograd, devices and dtypes follow the input.
"""

from __future__ import annotations

import math

import torch

__all__ = ["cosine_wavenumbers", "dct", "dctn", "idct", "idctn"]


class _Plan1d:
    """Index vectors and twiddles of the length-``n`` transforms, per dtype and device."""

    def __init__(self, n: int, dtype: torch.dtype, device):
        half = n // 2 + 1
        # Makhoul's reordering: v = x[perm] (even samples, then the odd ones reversed).
        perm = list(range(0, n, 2)) + list(range(n - 1 - (n % 2 == 1), 0, -2))
        inverse = [0] * n
        for i, p in enumerate(perm):
            inverse[p] = i
        self.perm = torch.tensor(perm, device=device)
        # The inverse reads the time-reversed output of its FFT (see idct): v'[-j mod n].
        self.unperm = torch.tensor([(-i) % n for i in inverse], device=device)
        # Forward: X_k = Re(w_k V_k) for k <= n // 2 and X_(n-k) = -Im(w_k V_k), w_k = e^(-i pi k / 2n).
        kh = torch.arange(half, dtype=torch.float64)
        ct = torch.complex128 if dtype == torch.float64 else torch.complex64
        self.forward = torch.polar(torch.ones_like(kh), -math.pi * kh / (2 * n)).to(dtype=ct, device=device)
        # Inverse: V_k = e^(i pi k / 2n) (X_k - i X_(n-k)), X_n = 0, for k <= n // 2. Formed as
        # the conjugate of (X_k + i X_(n-k)) e^(-i pi k / 2n), whose inverse FFT is the time reversal.
        self.tail = torch.tensor([0] + list(range(n - 1, n - half, -1)), device=device)
        self.inverse = self.forward
        self.half = half


_PLANS: dict = {}


def _plan(n: int, dtype: torch.dtype, device) -> _Plan1d:
    key = (n, dtype, str(device))
    hit = _PLANS.get(key)
    if hit is None:
        if len(_PLANS) > 64:
            _PLANS.clear()
        hit = _PLANS[key] = _Plan1d(n, dtype, device)
    return hit


def _along(t: torch.Tensor, dim: int, ndim: int) -> torch.Tensor:
    shape = [1] * ndim
    shape[dim] = -1
    return t.reshape(shape)


def dct(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Unnormalised DCT-II along ``dim``: ``X_k = sum_j x_j cos(pi k (2 j + 1) / (2 n))``.

    :func:`idct` inverts it exactly."""
    dim = dim % x.ndim
    n = x.shape[dim]
    plan = _plan(n, x.dtype, x.device)
    spec = torch.fft.rfft(x.index_select(dim, plan.perm), dim=dim)  # V_k, k = 0 .. n // 2
    z = torch.view_as_real(spec * _along(plan.forward, dim, x.ndim))  # (..., 2): Re, Im
    # A gather of complex values was 3x slower than these real slices and one cat (CPU).
    m = n - plan.half  # X_(half) .. X_(n-1) come from k = m .. 1
    high = z.select(-1, 1).narrow(dim, 1, m).flip(dim)
    return torch.cat([z.select(-1, 0), -high], dim=dim)


def idct(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Inverse of :func:`dct` along ``dim`` (a scaled DCT-III)."""
    dim = dim % x.ndim
    n = x.shape[dim]
    plan = _plan(n, x.dtype, x.device)
    # (X_k + i X_(n-k)) e^(-i pi k / 2n); irfft ignores the imaginary part of V_0, so X_n = X_0 is harmless.
    spec = torch.complex(x.narrow(dim, 0, plan.half), x.index_select(dim, plan.tail))
    v = torch.fft.irfft(spec * _along(plan.inverse, dim, x.ndim), n=n, dim=dim)
    return v.index_select(dim, plan.unperm)


def dctn(x: torch.Tensor, dims=(-2, -1)) -> torch.Tensor:
    """:func:`dct` along each of ``dims``."""
    for d in dims:
        x = dct(x, d)
    return x


def idctn(x: torch.Tensor, dims=(-2, -1)) -> torch.Tensor:
    """:func:`idct` along each of ``dims`` (inverse of :func:`dctn`)."""
    for d in reversed(dims):
        x = idct(x, d)
    return x


def cosine_wavenumbers(n: int, spacing: float = 1.0, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """Angular wavenumbers ``pi j / (n h)``, j = 0 .. n - 1, of the DCT-II coefficients."""
    return math.pi * torch.arange(n, dtype=dtype, device=device) / (n * spacing)
