"""``MollifierLayer``: the module form of :func:`mollify` (kernels kept as buffers)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._bump import derivative_order
from ._functional import BOUNDARIES, PATHS, _apply, _check_input, _plan, _scaled_bank, _spacing

__all__ = ["MollifierLayer"]

_DEFAULT_2D = ("u", "dx", "dy", "dxx", "dyy", "dxy", "laplacian", "biharmonic")


class MollifierLayer(nn.Module):
    """Mollified field and its derivatives as fixed convolutions.

    Parameters are those of :func:`napari_mollifier.mollify`; ``ndim`` (1 or 2) fixes the
    field dimension, and the kernels are stored as buffers so that ``.to(device)`` moves
    them. Nothing here is trainable.

    Examples
    --------
    >>> import torch
    >>> layer = MollifierLayer(radius=6.0, derivatives=("u", "laplacian"), spacing=1.0)
    >>> out = layer(torch.randn(2, 1, 48, 48))
    >>> sorted(out), out["laplacian"].shape
    (['laplacian', 'u'], torch.Size([2, 1, 48, 48]))
    """

    def __init__(
        self,
        radius: float = 6.0,
        derivatives: Sequence[str] = _DEFAULT_2D,
        *,
        spacing: float | Sequence[float] = 1.0,
        boundary: str = "periodic",
        path: str = "auto",
        kernel: str = "composed",
        accuracy: int = 8,
        ndim: int = 2,
    ):
        super().__init__()
        derivatives = (derivatives,) if isinstance(derivatives, str) else tuple(derivatives)
        if ndim not in (1, 2):
            raise ValueError(f"ndim must be 1 or 2, got {ndim!r}")
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {sorted(BOUNDARIES)}, got {boundary!r}")
        if path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {path!r}")
        self.radius = float(radius)
        self.derivatives = derivatives
        self.spacing = _spacing(spacing, ndim)
        self.boundary = boundary
        self.path = path
        self.kernel = kernel
        self.accuracy = int(accuracy)
        self.ndim = ndim
        self._plan = _plan(self.radius, derivatives, ndim, kernel, self.accuracy)
        # float64 so that the cast to the input's dtype happens once, from exact values.
        self.register_buffer("bank", torch.tensor(_scaled_bank(self._plan, self.spacing)))

    @property
    def margin(self) -> int:
        """Edge band (grid points) whose outputs depend on the boundary rule."""
        return self._plan.pad

    @property
    def max_order(self) -> int:
        return max(derivative_order(d, self.ndim) for d in self.derivatives)

    def forward(self, g: torch.Tensor) -> dict[str, torch.Tensor]:
        nd = _check_input(g)
        if nd != self.ndim:
            raise ValueError(f"this layer is {self.ndim}-D but g has shape {tuple(g.shape)}")
        return _apply(g, self._plan, self.boundary, self.path, self.bank, self.spacing)

    def extra_repr(self) -> str:
        return (
            f"radius={self.radius}, derivatives={self.derivatives}, spacing={self.spacing}, "
            f"boundary={self.boundary!r}, path={self.path!r}, kernel={self.kernel!r}"
        )
