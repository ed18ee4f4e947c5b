"""PirateNet: gated residual blocks that start as a linear model of a Fourier embedding.

Wang, Li, Chen, Perdikaris, "PirateNets: Physics-informed deep learning with residual adaptive
networks" (JMLR 2024). Three ingredients, each here as a small module:

- a random Fourier-feature embedding ``phi(x)`` (:class:`FourierFeatures`);
- random weight factorisation of every dense layer, ``W = diag(exp(s)) V`` with
  ``s ~ N(mu, sigma)`` (:class:`FactorizedLinear`);
- residual blocks ``x <- alpha h(x) + (1 - alpha) x`` whose gates ``alpha`` start at 0, so the
  network at initialisation is ``W_out phi(x) + b``: a linear model of the embedding, whose
  last layer can be fitted to data by least squares (:func:`init_last_layer_lstsq`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ._mlp import FourierFeatures

__all__ = ["FactorizedLinear", "PirateBlock", "PirateNet", "init_last_layer_lstsq"]


class FactorizedLinear(nn.Module):
    """Dense layer with random weight factorisation ``y = x (diag(exp(s)) V)^T + b``.

    Parameters
    ----------
    in_features, out_features : int
    mu, sigma : float
        Mean and standard deviation of the log-scales ``s`` (one per output neuron); the
        PirateNet paper uses ``mu = 1, sigma = 0.1``.
    generator : torch.Generator, optional
        Source of the random initialisation (torch's global RNG when omitted).

    Notes
    -----
    ``V`` starts as a Glorot-normal matrix divided row-wise by ``exp(s)``, so the product
    ``W`` has the usual Glorot statistics at initialisation; only the parametrisation (and
    therefore the optimiser's geometry) changes.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        mu: float = 1.0,
        sigma: float = 0.1,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"in_features and out_features must be >= 1, got {in_features}, {out_features}")
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        std = math.sqrt(2.0 / (in_features + out_features))
        w = torch.randn(out_features, in_features, generator=generator) * std
        s = mu + sigma * torch.randn(out_features, generator=generator)
        self.s = nn.Parameter(s)
        self.v = nn.Parameter(w / torch.exp(s)[:, None])
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.mu, self.sigma = float(mu), float(sigma)

    @property
    def weight(self) -> torch.Tensor:
        """The effective weight matrix ``diag(exp(s)) V`` (out_features, in_features)."""
        return torch.exp(self.s)[:, None] * self.v

    def set_weight(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        """Set ``V`` so that the effective weight equals ``weight`` (``s`` is kept)."""
        with torch.no_grad():
            self.v.copy_(weight.to(self.v) / torch.exp(self.s)[:, None])
            if bias is not None:
                self.bias.copy_(bias.to(self.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in={self.v.shape[1]}, out={self.v.shape[0]}, mu={self.mu}, sigma={self.sigma}"


class PirateBlock(nn.Module):
    """One gated residual block: three dense layers mixed with the encoder gates ``U``, ``V``.

    ``f = act(L1 x); z1 = f U + (1 - f) V; g = act(L2 z1); z2 = g U + (1 - g) V;
    h = act(L3 z2); out = alpha h + (1 - alpha) x`` with a scalar ``alpha`` starting at 0.
    """

    def __init__(self, width: int, *, mu: float = 1.0, sigma: float = 0.1, generator=None):
        super().__init__()
        self.layers = nn.ModuleList(
            FactorizedLinear(width, width, mu=mu, sigma=sigma, generator=generator) for _ in range(3)
        )
        # The gate starts closed: the block is the identity until training opens it.
        self.alpha = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        f = torch.tanh(self.layers[0](x))
        z = f * u + (1.0 - f) * v
        g = torch.tanh(self.layers[1](z))
        z = g * u + (1.0 - g) * v
        h = torch.tanh(self.layers[2](z))
        return self.alpha * h + (1.0 - self.alpha) * x


class PirateNet(nn.Module):
    """PirateNet from coordinates (P, in_features) to values (P, out_features).

    Parameters
    ----------
    in_features, out_features : int
    width : int
        Hidden width; even, because it is also the embedding size ``2 * (width // 2)`` (cos and
        sin of ``width // 2`` random frequencies): the residual stream starts as the embedding.
    n_blocks : int
        Number of gated residual blocks (each has three dense layers).
    fourier_scale : float
        Standard deviation of the Fourier frequencies, in cycles per coordinate unit. Keep it
        well below the grid's Nyquist frequency when a mollifier layer differentiates the output.
    rwf_mu, rwf_sigma : float
        Random weight factorisation ``s ~ N(mu, sigma)`` of every dense layer.
    seed : int, optional
        Seeds the embedding and all weights (reproducible nets without touching the global RNG).

    Notes
    -----
    With all gates at zero the residual stream is the embedding itself, so
    ``net(x) = W_out phi(x) + b``. :func:`init_last_layer_lstsq` sets ``W_out, b`` to the
    least-squares fit of the data, which is the paper's physics-informed initialisation.

    Examples
    --------
    >>> import torch
    >>> net = PirateNet(2, 1, width=16, n_blocks=2, seed=0)
    >>> net(torch.rand(5, 2)).shape
    torch.Size([5, 1])
    """

    def __init__(
        self,
        in_features: int = 2,
        out_features: int = 1,
        *,
        width: int = 64,
        n_blocks: int = 3,
        fourier_scale: float = 1.0,
        rwf_mu: float = 1.0,
        rwf_sigma: float = 0.1,
        seed: int | None = None,
    ):
        super().__init__()
        if width < 2 or width % 2:
            raise ValueError(f"width must be an even number >= 2 (it is the embedding size), got {width}")
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        emb_seed = None if gen is None else int(torch.randint(0, 2**31 - 1, (), generator=gen))
        self.embedding = FourierFeatures(in_features, width // 2, fourier_scale, seed=emb_seed)
        kw = dict(mu=rwf_mu, sigma=rwf_sigma, generator=gen)
        self.encode_u = FactorizedLinear(width, width, **kw)
        self.encode_v = FactorizedLinear(width, width, **kw)
        self.blocks = nn.ModuleList(PirateBlock(width, **kw) for _ in range(n_blocks))
        self.last = FactorizedLinear(width, out_features, **kw)
        self.width, self.n_blocks = width, n_blocks

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The residual stream after the last block (P, width): the last layer's input."""
        phi = self.embedding(x)
        u = torch.tanh(self.encode_u(phi))
        v = torch.tanh(self.encode_v(phi))
        h = phi
        for block in self.blocks:
            h = block(h, u, v)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.features(x))

    def extra_repr(self) -> str:
        return f"width={self.width}, n_blocks={self.n_blocks}"


def init_last_layer_lstsq(
    net: PirateNet, coords: torch.Tensor, targets: torch.Tensor, *, ridge: float = 0.0, feature_map=None
) -> float:
    """Set the last layer of ``net`` to the least-squares fit of ``targets`` on its features.

    Parameters
    ----------
    net : PirateNet
    coords : torch.Tensor
        (P, in_features) input points.
    targets : torch.Tensor
        (P,) or (P, out_features) values at those points.
    ridge : float
        Tikhonov weight (relative to the mean squared feature) for ill-conditioned features;
        0 gives the minimum-norm least-squares solution.
    feature_map : callable, optional
        A linear map applied to the (P, width) features before the fit, returning (P', width)
        rows that match ``targets``: e.g. a mollifier, when the data term compares the
        mollified output with the data (the output is linear in the last layer, so the fit
        stays exact).

    Returns
    -------
    float
        The root-mean-square residual of the fit.

    Notes
    -----
    Solved in float64 on the CPU with a bias column ``[features, 1]``. At initialisation
    (gates at zero) the features are the Fourier embedding, so the network afterwards is the
    least-squares fit of the data by the embedding.
    """
    if coords.ndim != 2:
        raise ValueError(f"coords must have shape (P, in_features), got {tuple(coords.shape)}")
    n_out = net.last.v.shape[0]
    with torch.no_grad():
        feats = net.features(coords)
        if feature_map is not None:
            feats = feature_map(feats)
        a = feats.detach().cpu().double().numpy()
    if targets.numel() != a.shape[0] * n_out:
        raise ValueError(
            f"targets must have shape ({a.shape[0]},) or ({a.shape[0]}, {n_out}), got {tuple(targets.shape)}"
        )
    t = targets.reshape(a.shape[0], n_out)
    a = np.hstack([a, np.ones((a.shape[0], 1))])
    b = t.detach().cpu().double().numpy()
    if ridge > 0:
        lam = ridge * np.mean(a * a)
        coef = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ b)
    else:
        coef = np.linalg.lstsq(a, b, rcond=None)[0]
    rms = float(np.sqrt(np.mean((a @ coef - b) ** 2)))
    coef = torch.from_numpy(coef)
    net.last.set_weight(coef[:-1].T, coef[-1])
    return rms
