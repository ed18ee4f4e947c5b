"""Benchmark problem "derivatives": one training step of a coordinate MLP on a residual of
order 1, 2 or 4, with mollifier derivatives, with autodiff derivatives, or with no PDE term.

The residuals (unit square, periodic, exact solution ``u* = sin(2 pi x) sin(2 pi y)``):
order 1: ``u_x + u_y - f1``; order 2: ``lap u - f2``; order 4: ``biharmonic u - f4``.
The loss is ``mean((u - u*)^2) + mean(r^2) / scale`` where ``scale`` normalises the residual
by the size of its forcing, so both methods optimise the same objective.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from napari_mollifier.autodiff import coordinate_derivatives, grid_coordinates
from napari_mollifier.mollifier import MollifierLayer
from napari_mollifier.nets import CoordinateMLP

#: Derivative names each residual order needs.
RESIDUAL_TERMS = {1: ("dx", "dy"), 2: ("laplacian",), 4: ("biharmonic",)}
METHODS = ("mollifier", "autodiff", "data")


def _residual(order: int, d: dict[str, torch.Tensor], forcing: torch.Tensor) -> torch.Tensor:
    if order == 1:
        lhs = d["dx"] + d["dy"]
    elif order == 2:
        lhs = d["laplacian"]
    else:
        lhs = d["biharmonic"]
    return lhs.reshape(forcing.shape) - forcing


def build_step(config: dict, device: torch.device) -> Callable[[], float]:
    """Set up network, data and optimiser for one configuration; return the step function.

    config keys: grid (int), order (0, 1, 2, 4), method ("mollifier", "autodiff", "data"),
    width (128), depth (4), radius (6.0 grid points), seed (0).
    """
    n, order, method = int(config["grid"]), int(config["order"]), config["method"]
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "data":
        order = 0
    elif order not in RESIDUAL_TERMS:
        raise ValueError(f"order must be one of {sorted(RESIDUAL_TERMS)}, got {order}")
    torch.manual_seed(int(config.get("seed", 0)))
    model = CoordinateMLP(
        2, 1, width=int(config.get("width", 128)), depth=int(config.get("depth", 4)), activation="tanh"
    ).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    h = 1.0 / n
    coords = grid_coordinates((n, n), h, device=device)
    y, x = coords[:, 0].reshape(n, n), coords[:, 1].reshape(n, n)
    w = 2.0 * math.pi
    data = torch.sin(w * x) * torch.sin(w * y)
    forcing = {
        0: None,
        1: w * (torch.cos(w * x) * torch.sin(w * y) + torch.sin(w * x) * torch.cos(w * y)),
        2: -2 * w**2 * data,
        4: 4 * w**4 * data,
    }[order]
    scale = 1.0 if forcing is None else float(forcing.pow(2).mean())
    names = ("u",) + RESIDUAL_TERMS.get(order, ())
    layer = (
        MollifierLayer(float(config.get("radius", 6.0)), names, spacing=h, boundary="periodic").to(device)
        if method == "mollifier"
        else None
    )

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        if method == "data":
            loss = (model(coords).reshape(n, n) - data).pow(2).mean()
        else:
            if method == "mollifier":
                d = layer(model(coords).reshape(1, 1, n, n))
            else:
                d = coordinate_derivatives(model, coords, names)
            loss = (d["u"].reshape(n, n) - data).pow(2).mean() + _residual(order, d, forcing).pow(
                2
            ).mean() / scale
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step
