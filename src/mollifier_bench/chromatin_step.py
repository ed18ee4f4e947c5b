"""Benchmark step "chromatin": one training step of a coordinate MLP on the 4th-order "chr"
steady-state residual, with mollifier or with recursive autodiff derivatives.

``u`` is fitted to a phase-separated test pattern on an n x n grid at 10 nm pixels; the
residual ``M lap(mu(u)) + Gamma_me (1 - u) - Gamma_ac u`` (default model and rates) takes
``u, u_x, u_y, lap u, biharmonic u`` (the chain-rule form, the same expression for both methods;
docs/model.md, "Units and defaults"). The mollifier takes them as spectral derivatives of the mollified
network output (the inference solver's kernel); autodiff differentiates the network in its
coordinates. Only the derivatives differ, so time and memory compare the two.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from napari_mollifier.autodiff import coordinate_derivatives, grid_coordinates
from napari_mollifier.mollifier import MollifierLayer
from napari_mollifier.nets import CoordinateMLP
from napari_mollifier.physics import DERIVATIVES_NEEDED, ChromatinModel, steady_state_residual

METHODS = ("mollifier", "autodiff")


def build_step(config: dict, device: torch.device) -> Callable[[], float]:
    """config keys: grid (int), method, width (128), depth (4), radius (1.01 grid points, the
    solver's default 10.1 nm at 10 nm pixels), seed (0)."""
    n, method = int(config["grid"]), config["method"]
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    torch.manual_seed(int(config.get("seed", 0)))
    model = ChromatinModel()
    h = model.spacing(10.0)
    net = CoordinateMLP(
        2, 1, width=int(config.get("width", 128)), depth=int(config.get("depth", 4)), activation="tanh"
    ).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    coords = grid_coordinates((n, n), h, device=device)
    extent = (n - 1) * h
    y, x = coords[:, 0].reshape(n, n), coords[:, 1].reshape(n, n)
    k = 2 * math.pi * 8 / (n * h)  # ~8 domains across the grid
    data = 0.5 + 0.4 * torch.tanh(3 * torch.sin(k * x) * torch.sin(k * y))
    gamma_me, gamma_ac = 0.002, 0.004
    layer = (
        MollifierLayer(
            float(config.get("radius", 1.01)),
            DERIVATIVES_NEEDED,
            spacing=h,
            boundary="reflect",
            kernel="spectral",
        ).to(device)
        if method == "mollifier"
        else None
    )

    def field(c):
        return net(c / extent)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        if method == "mollifier":
            d = layer(field(coords).reshape(1, 1, n, n))
            d = {key: v.reshape(n, n) for key, v in d.items()}
        else:
            d = coordinate_derivatives(field, coords, DERIVATIVES_NEEDED)
            d = {key: v.reshape(n, n) for key, v in d.items()}
        res = steady_state_residual(d, gamma_me, gamma_ac, model)
        loss = (d["u"] - data).pow(2).mean() + res.pow(2).mean() / (gamma_me**2)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step
