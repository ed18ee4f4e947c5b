"""Smooth rate maps as a coarse bicubic basis (docs/model.md, "Identifiability")."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["SmoothBasis"]

#: Offsets -3..3 of the control points that one control point's basis function overlaps (per axis).
BAND = 7
#: Offsets 0..3: the half of a symmetric band that is computed.
HALF = 4


class SmoothBasis:
    """Bicubic interpolation of a coarse grid of control values over a region.

    A rate map is ``Gamma(x) = sum_k c_k B_k(x)``, with control points every ``spacing_px``
    pixels over the (H, W) crop; the maps vary on that scale and no faster, which is what makes
    two rate maps identifiable from one steady state.

    Bicubic interpolation is a tensor product, ``B_(i,j)(y, x) = by[y, i] bx[x, j]``, and each
    1-D factor has at most 4 nonzeros per row, so nothing of size K x pixels is ever stored:
    maps are ``by @ C @ bx.T`` through the dense 1-D factors (H x Ky and W x Kx, small next to
    the image), and Gram matrices ``sum_pixels w B_k B_l`` are banded (control points more than
    3 apart along an axis share no pixel) and built run by run from the factors' pair weights
    (:meth:`gram_band`, :class:`_Segments`). ``region`` (bool (H, W)) is kept for the caller;
    the sums run over whatever the weights select.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        spacing_px: float,
        region: torch.Tensor | None = None,
        *,
        dtype=torch.float32,
        device=None,
    ):
        if not spacing_px >= 2:
            raise ValueError(f"rate basis spacing must be >= 2 pixels, got {spacing_px!r}")
        h, w = shape
        self.shape = (h, w)
        self.grid = (max(2, math.ceil((h - 1) / spacing_px) + 1), max(2, math.ceil((w - 1) / spacing_px) + 1))
        self.region = region
        self.dtype = dtype
        fy, fx = _factor(self.grid[0], h, device), _factor(self.grid[1], w, device)
        self.factor_y = fy.to(dtype)  # (H, Ky)
        self.factor_x = fx.to(dtype)  # (W, Kx)
        self._pairs_y = _Segments(fy, pairs=True).to(fy.device)
        self._pairs_x = _Segments(fx, pairs=True).to(fx.device)
        self._single_y = _Segments(fy, pairs=False).to(fy.device)
        self._single_x = _Segments(fx, pairs=False).to(fx.device)

    @property
    def size(self) -> int:
        return self.grid[0] * self.grid[1]

    def expand(self, coefficients: torch.Tensor) -> torch.Tensor:
        """(K,) or (n, K) coefficients -> (H, W) or (n, H, W) maps, through the 1-D factors."""
        by, bx = self.factor_y.to(coefficients.dtype), self.factor_x.to(coefficients.dtype)
        return by @ coefficients.reshape(*coefficients.shape[:-1], *self.grid) @ bx.T

    #: The same expansion (the name the solver used for the separable form).
    expand_separable = expand

    def project(self, field: torch.Tensor) -> torch.Tensor:
        """(H, W) or (n, H, W) -> (K,) or (n, K): ``sum_pixels field(y, x) B_k(y, x)``."""
        f = field if field.ndim == 3 else field[None]
        # Rows first: row slices are contiguous, and the second pass runs on Ky rows, not H.
        out = self._single_x.along_last(self._single_y.along_rows(f))  # (n, Ky, Kx)
        out = out.reshape(out.shape[0], -1)
        return out if field.ndim == 3 else out[0]

    def gram_band(self, weights: torch.Tensor) -> torch.Tensor:
        """(n, H, W) weights -> (n, Ky, 7, Kx, 7) float64: ``band[., i, a, j, b]`` is
        ``sum_pixels w B_(i,j) B_(i+a-3, j+b-3)`` (zero where that control point is off the grid).

        The y pairs summed over runs of rows, then the x pairs along the (Ky x 4)-row result, each
        O(pixels) (:class:`_Segments`); a dense Gram costs O(H W Kx^2) time and K^2 memory. Rows
        first: a run of rows is contiguous, a run of columns is not (summing columns first over all
        H rows took 3x longer at 1024^2).
        """
        n = weights.shape[0]
        ky, kx = self.grid
        gy = self._pairs_y.along_rows(weights.to(torch.float64))  # (n, Ky 4, W): y offsets 0..3
        g = self._pairs_x.along_last(gy)  # (n, Ky 4, Kx 4): x offsets 0..3
        half = _full_band(g.reshape(n, ky, HALF, kx, HALF), -2)  # (n, Ky, 4, Kx, 7): y offsets 0..3
        out = weights.new_zeros(n, ky, BAND, kx, BAND, dtype=torch.float64)
        c = BAND // 2
        out[:, :, c:] = half
        # Entry (i, -dy; j, dx) is entry (i - dy, dy; j + dx, -dx) of the computed half.
        for dy in range(1, min(HALF, ky)):
            for dx in range(-min(c, kx - 1), min(c, kx - 1) + 1):
                j0, j1 = max(0, -dx), min(kx, kx - dx)
                out[:, dy:, c - dy, j0:j1, c + dx] = half[:, :-dy, dy, j0 + dx : j1 + dx, c - dx]
        return out

    def band_pattern(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row, column (flat control indices, as numpy) and validity of every entry of a band."""
        ky, kx = self.grid
        off = np.arange(BAND) - BAND // 2
        i = np.arange(ky)[:, None, None, None]
        j = np.arange(kx)[None, None, :, None]
        k = i + off[None, :, None, None]
        l_ = j + off[None, None, None, :]
        valid = (k >= 0) & (k < ky) & (l_ >= 0) & (l_ < kx)
        rows = np.broadcast_to(i * kx + j, valid.shape)
        cols = k * kx + l_
        return rows, np.broadcast_to(cols, valid.shape), valid

    def band_to_sparse(self, band: torch.Tensor):
        """(Ky, 7, Kx, 7) band -> the (K, K) matrix as scipy.sparse CSR."""
        import scipy.sparse as sp

        rows, cols, valid = self.band_pattern()
        vals = band.detach().cpu().numpy()
        k = self.size
        return sp.csr_matrix((vals[valid], (rows[valid], cols[valid])), shape=(k, k))

    def gram(self, weight: torch.Tensor):
        """(H, W) weights -> (K, K) scipy.sparse CSR: ``sum_pixels w B_k B_l`` (<= 49 nonzeros a row)."""
        return self.band_to_sparse(self.gram_band(weight[None])[0])

    def roughness_band(self) -> np.ndarray:
        """``D^T D`` of :meth:`smoothness_operator` as a (Ky, 7, Kx, 7) float64 band."""
        ky, kx = self.grid
        out = np.zeros((ky, BAND, kx, BAND))
        c = BAND // 2
        for axis, n in ((0, ky), (1, kx)):
            t = _second_difference(n)
            t = (t.T @ t).toarray()
            band = np.zeros((n, BAND))
            for o in range(-2, 3):
                idx = np.arange(max(0, -o), min(n, n - o))
                band[idx, c + o] = t[idx, idx + o]
            if axis == 0:
                out[:, :, :, c] += band[:, :, None]
            else:
                out[:, c, :, :] += band[None, :, :]
        return out

    def smoothness_operator(self):
        """Second differences of the control grid along both axes, (R, K) scipy.sparse: a
        roughness penalty."""
        import scipy.sparse as sp

        gy, gx = self.grid
        dy = sp.kron(_second_difference(gy), sp.identity(gx))
        dx = sp.kron(sp.identity(gy), _second_difference(gx))
        return sp.vstack([dy, dx]).tocsr()


def _second_difference(n: int):
    import scipy.sparse as sp

    if n < 3:
        return sp.csr_matrix((0, n))
    return sp.diags([1.0, -2.0, 1.0], [0, 1, 2], shape=(n - 2, n), format="csr")


def _full_band(half: torch.Tensor, axis: int) -> torch.Tensor:
    """Offsets 0..3 of a symmetric band (control index along ``axis``, offsets last) -> -3..3:
    entry (j, -d) is entry (j - d, d)."""
    k = half.shape[axis]
    out = half.new_zeros(*half.shape[:-1], BAND)
    c = BAND // 2
    out[..., c:] = half
    hv = half.movedim(axis, -2)
    ov = out.movedim(axis, -2)
    for d in range(1, min(HALF, k)):
        ov[..., d:, c - d] = hv[..., : k - d, d]
    return out


def _factor(n_ctrl: int, n_out: int, device) -> torch.Tensor:
    """(n_out, n_ctrl) 1-D bicubic (align_corners) interpolation weights, float64."""
    # Interpolating a field constant along one axis is 1-D interpolation along the other
    # (the cubic weights sum to 1), so the 2-D routine gives the exact 1-D factor.
    eye = torch.eye(n_ctrl, dtype=torch.float64, device=device)[:, None, :, None].expand(n_ctrl, 1, n_ctrl, 2)
    out = F.interpolate(eye, size=(n_out, 2), mode="bicubic", align_corners=True)[:, 0, :, 0]
    return out.T.contiguous()


class _Segments:
    """Sums of pixel values against products of a banded 1-D factor, by one small dense product
    per run of pixels.

    Along one axis the pixels fall into runs (contiguous, ~``spacing`` long) whose factor rows
    share one window of at most 4 consecutive control points. So ``sum_p x[p] b[p, i] b[p, i + o]``
    (o = 0..3) is, per run, a product of a slice of x with the run's (10, length) pair weights,
    index-added into (K * 4) outputs: O(pixels) work, no copy of x, BLAS for the arithmetic (a torch sparse
    product or a gather was 2-5x slower on the CPU). ``pairs=False`` gives ``sum_p x[p] b[p, i]``.
    """

    def __init__(self, factor: torch.Tensor, pairs: bool):
        n, m = factor.shape
        f = factor.detach().cpu().to(torch.float64)
        nz = f != 0
        first = torch.where(nz.any(1), nz.to(torch.int64).argmax(1), torch.zeros(n, dtype=torch.long))
        width = min(4, m)
        start = first.clamp(max=m - width)
        idx = start[:, None] + torch.arange(width)
        weights = torch.gather(f, 1, idx)  # (n, width)
        if not torch.equal(torch.zeros_like(f).scatter_(1, idx, weights), f):
            raise AssertionError("bicubic factor has nonzeros outside a 4-wide window")
        if pairs:  # b >= a only: the other half follows by symmetry (_full_band)
            a, b = torch.triu_indices(width, width)
            vals = weights[:, a] * weights[:, b]  # (n, width (width + 1) / 2)
            offsets = a * HALF + (b - a)
            self.rows, scale = m * HALF, HALF
        else:
            vals, offsets = weights, torch.arange(width)
            self.rows, scale = m, 1
        bounds = torch.nonzero(torch.diff(start, prepend=start[:1] - 1))[:, 0].tolist() + [n]
        self.runs = [
            (p0, p1, vals[p0:p1].T.contiguous(), int(start[p0]) * scale + offsets)
            for p0, p1 in zip(bounds[:-1], bounds[1:])
        ]

    def to(self, device) -> _Segments:
        self.runs = [(p0, p1, q.to(device), t.to(device)) for p0, p1, q, t in self.runs]
        return self

    def along_last(self, x: torch.Tensor) -> torch.Tensor:
        """(..., n) -> (..., rows): pixels along the last axis."""
        out = x.new_zeros(*x.shape[:-1], self.rows)
        for p0, p1, q, t in self.runs:
            out.index_add_(-1, t, x[..., p0:p1] @ q.T.to(x.dtype))
        return out

    def along_rows(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n, M) -> (B, rows, M): pixels along the middle axis."""
        out = x.new_zeros(x.shape[0], self.rows, x.shape[2])
        for p0, p1, q, t in self.runs:
            out.index_add_(1, t, q.to(x.dtype) @ x[:, p0:p1])
        return out
