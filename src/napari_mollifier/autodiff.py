"""The autodiff baseline: derivatives of a coordinate network by recursive ``torch.autograd``.

This is how physics-informed networks usually take derivatives: every derivative order is
one more backward pass through the network with ``create_graph=True``, and all of those
graphs stay alive until the loss is back-propagated. It is implemented here as a fair
baseline for the mollifier layer: vectorised over all points (one backward pass yields the
derivative at every point, because a coordinate network acts on each point independently),
every partial derivative computed once and reused, and the Laplacian / biharmonic taken by
the shortest chain (the biharmonic as the Laplacian of the Laplacian: 6 backward passes
instead of 8 for its three 4th-order partials).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch

from ._derivative_terms import DerivativeTree, derivative_terms, partial_derivative

__all__ = ["partial_derivative", "coordinate_derivatives", "grid_coordinates"]


def grid_coordinates(
    shape: Sequence[int], spacing: float | Sequence[float] = 1.0, *, dtype=torch.float32, device=None
) -> torch.Tensor:
    """Coordinates of the grid points of an array, as (P, ndim) with columns in axis order.

    For a 2-D image of shape (H, W) the columns are (y, x) = (row * dy, column * dx) and the
    rows run in C order, so ``values.reshape(H, W)`` restores the image.
    """
    nd = len(shape)
    sp = (float(spacing),) * nd if isinstance(spacing, (int, float)) else tuple(map(float, spacing))
    axes = [torch.arange(n, dtype=dtype, device=device) * h for n, h in zip(shape, sp)]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=1)


def coordinate_derivatives(
    model: Callable[[torch.Tensor], torch.Tensor],
    coords: torch.Tensor,
    derivatives: Iterable[str] = ("u",),
    *,
    create_graph: bool = True,
) -> dict[str, torch.Tensor]:
    """Derivatives of a coordinate network's output with respect to its input coordinates.

    Parameters
    ----------
    model : callable
        Maps (P, ndim) coordinates to (P,) or (P, 1) values, each point independently
        (no batch statistics).
    coords : torch.Tensor
        (P, ndim) coordinates, columns (y, x) in 2-D, as from :func:`grid_coordinates`.
    derivatives : iterable of str
        The names of :func:`napari_mollifier.mollify` (``"u"`` is the raw network output).
    create_graph : bool
        Keep the derivative graphs so a loss built from them can train the network (default).

    Returns
    -------
    dict of str to torch.Tensor
        (P,) tensors.
    """
    if coords.ndim != 2 or coords.shape[1] not in (1, 2):
        raise ValueError(f"coords must have shape (P, 1) or (P, 2), got {tuple(coords.shape)}")
    nd = coords.shape[1]
    cols = [coords[:, a].detach().clone().requires_grad_(True) for a in range(nd)]
    u = model(torch.stack(cols, dim=1))
    u = u.reshape(u.shape[0])
    # Every intermediate order needs its graph for the next backward pass.
    tree = DerivativeTree(u, cols, True)
    out: dict[str, torch.Tensor] = {}
    lap_tree = None
    for name in derivatives:
        if nd == 2 and name in ("laplacian", "biharmonic"):
            lap = tree.get((2, 0)) + tree.get((0, 2))
            if name == "laplacian":
                out[name] = lap
                continue
            if lap_tree is None:
                lap_tree = DerivativeTree(lap, cols, True)
            out[name] = lap_tree.get((2, 0)) + lap_tree.get((0, 2))
            continue
        total = None
        for coef, idx in derivative_terms(name, nd):
            term = tree.get(idx) if coef == 1.0 else coef * tree.get(idx)
            total = term if total is None else total + term
        out[name] = total
    return out if create_graph else {k: v.detach() for k, v in out.items()}
