"""Smooth rate maps as a coarse bicubic basis (docs/model.md, "Identifiability")."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["SmoothBasis"]


class SmoothBasis:
    """Bicubic interpolation of a coarse grid of control values over a region.

    A rate map is ``Gamma(x) = sum_k c_k B_k(x)``, with control points every ``spacing_px``
    pixels over the (H, W) crop; the maps vary on that scale and no faster, which is what makes
    two rate maps identifiable from one steady state. Rows of :attr:`matrix` are the pixels
    selected by ``region`` (bool (H, W)).
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
        k = self.grid[0] * self.grid[1]
        eye = torch.eye(k, dtype=torch.float64, device=device).reshape(k, 1, *self.grid)
        # Bicubic with align_corners: control points on the crop's corners and evenly between.
        full = F.interpolate(eye, size=(h, w), mode="bicubic", align_corners=True)[:, 0]
        self.full = full.to(dtype)  # (K, H, W)
        self.region = region
        sel = full.reshape(k, -1).T if region is None else full[:, region].T
        self.matrix = sel.to(dtype).contiguous()  # (P, K)
        # Bicubic interpolation is a tensor product: B_(i,j)(y, x) = by[y, i] bx[x, j]. The
        # factors let sums over pixels run as small matrix products (see :meth:`gram`).
        self.factor_y = _factor(self.grid[0], h, device).to(dtype)  # (H, Ky)
        self.factor_x = _factor(self.grid[1], w, device).to(dtype)  # (W, Kx)

    @property
    def size(self) -> int:
        return self.grid[0] * self.grid[1]

    def expand(self, coefficients: torch.Tensor) -> torch.Tensor:
        """(K,) or (n, K) coefficients -> (H, W) or (n, H, W) maps."""
        return torch.tensordot(coefficients, self.full.to(coefficients.dtype), dims=([-1], [0]))

    def expand_separable(self, coefficients: torch.Tensor) -> torch.Tensor:
        """(K,) coefficients -> (H, W) map through the factors (differentiable, cheap)."""
        by, bx = self.factor_y.to(coefficients.dtype), self.factor_x.to(coefficients.dtype)
        return by @ coefficients.reshape(self.grid) @ bx.T

    def project(self, field: torch.Tensor) -> torch.Tensor:
        """(H, W) -> (K,): ``sum_pixels field(y, x) B_k(y, x)``."""
        by, bx = self.factor_y.to(field.dtype), self.factor_x.to(field.dtype)
        return (by.T @ field @ bx).reshape(-1)

    def gram(self, weight: torch.Tensor) -> torch.Tensor:
        """(H, W) weights -> (K, K): ``sum_pixels w B_k B_l``, in O(H W Kx^2) instead of O(P K^2)."""
        by, bx = self.factor_y.to(weight.dtype), self.factor_x.to(weight.dtype)
        (h, ky), (w, kx) = by.shape, bx.shape
        px = (bx[:, :, None] * bx[:, None, :]).reshape(w, kx * kx)
        py = (by[:, :, None] * by[:, None, :]).reshape(h, ky * ky)
        g = (py.T @ (weight @ px)).reshape(ky, ky, kx, kx)  # [i, k, j, l]
        return g.permute(0, 2, 1, 3).reshape(ky * kx, ky * kx)

    def smoothness_operator(self) -> torch.Tensor:
        """Second differences of the control grid along both axes, (R, K): a roughness penalty."""
        gy, gx = self.grid
        idx = torch.arange(gy * gx).reshape(gy, gx)
        rows = []
        for a, b, c in ((idx[:-2, :], idx[1:-1, :], idx[2:, :]), (idx[:, :-2], idx[:, 1:-1], idx[:, 2:])):
            for i, j, k in zip(a.reshape(-1), b.reshape(-1), c.reshape(-1)):
                r = torch.zeros(gy * gx, dtype=torch.float64)
                r[i], r[j], r[k] = 1.0, -2.0, 1.0
                rows.append(r)
        return torch.stack(rows) if rows else torch.zeros(0, gy * gx, dtype=torch.float64)


def _factor(n_ctrl: int, n_out: int, device) -> torch.Tensor:
    """(n_out, n_ctrl) 1-D bicubic (align_corners) interpolation weights."""
    # Interpolating a field constant along one axis is 1-D interpolation along the other
    # (the cubic weights sum to 1), so the 2-D routine gives the exact 1-D factor.
    eye = torch.eye(n_ctrl, dtype=torch.float64, device=device)[:, None, :, None].expand(n_ctrl, 1, n_ctrl, 2)
    out = F.interpolate(eye, size=(n_out, 2), mode="bicubic", align_corners=True)[:, 0, :, 0]
    return out.T.contiguous()
