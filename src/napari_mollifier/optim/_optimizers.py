"""Adam or SOAP with the PINN settings of docs/method.md."""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["OPTIMIZERS", "make_optimizer"]

OPTIMIZERS = ("adam", "soap")


def make_optimizer(name: str, params: Iterable, lr: float = 1e-3, **overrides) -> torch.optim.Optimizer:
    """Build the named optimiser with the PINN settings of the gradient-alignment paper.

    Parameters
    ----------
    name : {"adam", "soap"}
    params : iterable of tensors or parameter-group dicts
    lr : float
        Learning rate (the paper's PINN runs: 1e-3).
    **overrides
        Other keyword arguments passed to the optimiser (they replace the defaults below).

    Returns
    -------
    torch.optim.Optimizer
        ``torch.optim.Adam(betas=(0.9, 0.999))``, or ``pytorch_optimizer.SOAP`` with
        ``betas=(0.9, 0.999)``, ``precondition_frequency=2``, ``weight_decay=0`` (its own
        defaults are tuned for language models: betas 0.95, weight decay 0.01, frequency 10).

    Notes
    -----
    SOAP preconditions each weight matrix in the eigenbasis of its gradient statistics; 1-D
    parameters get plain Adam. A free per-pixel field is a 2-D tensor that is not a weight
    matrix: give it its own Adam optimiser rather than passing it here.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"name must be one of {OPTIMIZERS}, got {name!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if name == "adam":
        return torch.optim.Adam(params, **{"lr": lr, "betas": (0.9, 0.999), **overrides})
    from pytorch_optimizer import SOAP  # imported here: keeps `import napari_mollifier` light

    settings = {
        "lr": lr,
        "betas": (0.9, 0.999),
        "weight_decay": 0.0,
        "precondition_frequency": 2,
        **overrides,
    }
    return SOAP(params, **settings)
