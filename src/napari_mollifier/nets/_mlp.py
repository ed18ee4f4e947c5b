"""Coordinate MLP with optional random Fourier-feature embedding (the plain PINN network)."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["FourierFeatures", "CoordinateMLP"]

_ACTIVATIONS = {"tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU, "sin": None}


class _Sin(nn.Module):
    def forward(self, x):
        return torch.sin(x)


class FourierFeatures(nn.Module):
    """Random Fourier features ``[cos(2 pi B x), sin(2 pi B x)]`` with ``B ~ N(0, scale^2)``.

    ``scale`` is in cycles per unit of the input coordinates. Keep it well below the grid's
    Nyquist frequency (``1 / (2 spacing)``) when the output is differentiated by mollifier
    convolutions, or the derivatives alias (docs/method.md).
    """

    def __init__(
        self, in_features: int, n_features: int = 64, scale: float = 1.0, *, seed: int | None = None
    ):
        super().__init__()
        if n_features < 1:
            raise ValueError(f"n_features must be >= 1, got {n_features}")
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        self.register_buffer("B", torch.randn(in_features, n_features, generator=gen) * scale)
        self.scale = float(scale)

    @property
    def out_features(self) -> int:
        return 2 * self.B.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        proj = 2.0 * math.pi * x @ self.B.to(x.dtype)
        return torch.cat([torch.cos(proj), torch.sin(proj)], dim=-1)

    def extra_repr(self) -> str:
        return f"in={self.B.shape[0]}, features={self.B.shape[1]}, scale={self.scale}"


class CoordinateMLP(nn.Module):
    """Fully connected network from coordinates (P, in_features) to values (P, out_features).

    Parameters
    ----------
    in_features, out_features : int
    width, depth : int
        Hidden width and number of hidden layers.
    activation : {"tanh", "gelu", "silu", "sin"}
    fourier_features : int
        Number of random Fourier features (0: feed raw coordinates).
    fourier_scale : float
        Standard deviation of the Fourier frequencies, in cycles per coordinate unit.
    seed : int, optional
        Seed for the Fourier frequencies (weights follow torch's global RNG).
    """

    def __init__(
        self,
        in_features: int = 2,
        out_features: int = 1,
        *,
        width: int = 128,
        depth: int = 4,
        activation: str = "tanh",
        fourier_features: int = 0,
        fourier_scale: float = 1.0,
        seed: int | None = None,
    ):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be >= 1, got depth={depth}, width={width}")
        self.embedding = (
            FourierFeatures(in_features, fourier_features, fourier_scale, seed=seed)
            if fourier_features
            else nn.Identity()
        )
        n_in = self.embedding.out_features if fourier_features else in_features
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Linear(n_in, width), _Sin() if activation == "sin" else _ACTIVATIONS[activation]()]
            n_in = width
        layers.append(nn.Linear(n_in, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.embedding(x))
