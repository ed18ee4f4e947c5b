"""Derivative names and the autograd partial-derivative helper, shared by the mollifier kernels
and the autodiff baseline.

A leaf module: it imports nothing from the package, so both :mod:`napari_mollifier.mollifier`
and :mod:`napari_mollifier.autodiff` can import it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["derivative_terms", "derivative_order", "partial_derivative", "DerivativeTree"]


# Orders of each named derivative along (y, x) for 2-D and (x,) for 1-D fields.
_ORDERS_2D = {
    "u": (0, 0),
    "dx": (0, 1),
    "dy": (1, 0),
    "dxx": (0, 2),
    "dyy": (2, 0),
    "dxy": (1, 1),
    "dxxx": (0, 3),
    "dyyy": (3, 0),
    "dxxxx": (0, 4),
    "dyyyy": (4, 0),
    "dxxyy": (2, 2),
}
_ORDERS_1D = {"u": (0,), "dx": (1,), "dxx": (2,), "dxxx": (3,), "dxxxx": (4,)}
# Combinations: name -> list of (coefficient, multi-index).
COMBINATIONS_2D = {
    "laplacian": [(1.0, (0, 2)), (1.0, (2, 0))],
    "biharmonic": [(1.0, (0, 4)), (2.0, (2, 2)), (1.0, (4, 0))],
}


def derivative_terms(name: str, ndim: int) -> list[tuple[float, tuple[int, ...]]]:
    """Express a derivative name as a sum of coefficient x partial-derivative multi-indices."""
    if ndim == 1:
        if name in _ORDERS_1D:
            return [(1.0, _ORDERS_1D[name])]
        if name == "laplacian":
            return [(1.0, (2,))]
        if name == "biharmonic":
            return [(1.0, (4,))]
        valid = sorted(_ORDERS_1D) + ["laplacian", "biharmonic"]
    else:
        if name in _ORDERS_2D:
            return [(1.0, _ORDERS_2D[name])]
        if name in COMBINATIONS_2D:
            return COMBINATIONS_2D[name]
        valid = sorted(_ORDERS_2D) + sorted(COMBINATIONS_2D)
    raise ValueError(f"unknown derivative {name!r} for a {ndim}-D field; choose from {valid}")


def derivative_order(name: str, ndim: int) -> int:
    """Total differential order of a named derivative."""
    return max(sum(idx) for _, idx in derivative_terms(name, ndim))


class DerivativeTree:
    """Memo of partial derivatives of one scalar field w.r.t. a list of coordinate tensors."""

    def __init__(self, field: torch.Tensor, coords: Sequence[torch.Tensor], create_graph: bool):
        self.coords = list(coords)
        self.create_graph = create_graph
        self.memo: dict[tuple[int, ...], torch.Tensor] = {(0,) * len(coords): field}

    def get(self, index: tuple[int, ...]) -> torch.Tensor:
        if index in self.memo:
            return self.memo[index]
        # Differentiate the parent that removes one order from the last nonzero axis; one
        # backward pass gives all first derivatives of the parent, so store them all.
        axis = max(a for a, o in enumerate(index) if o > 0)
        parent = tuple(o - (a == axis) for a, o in enumerate(index))
        f = self.get(parent)
        grads = torch.autograd.grad(f.sum(), self.coords, create_graph=self.create_graph, allow_unused=True)
        for a, gr in enumerate(grads):
            child = tuple(o + (b == a) for b, o in enumerate(parent))
            self.memo.setdefault(child, torch.zeros_like(f) if gr is None else gr)
        return self.memo[index]


def partial_derivative(
    fn: Callable[..., torch.Tensor],
    coords: Sequence[torch.Tensor],
    index: Sequence[int],
    *,
    create_graph: bool = False,
) -> torch.Tensor:
    """Partial derivative ``d^index fn`` at every point, by recursive autodiff.

    Parameters
    ----------
    fn : callable
        ``fn(*coords)`` returns one value per point and acts on each point independently.
    coords : sequence of torch.Tensor
        One 1-D tensor per axis (all of length P) with ``requires_grad=True``.
    index : sequence of int
        Derivative order per axis.
    create_graph : bool
        Keep the graph (needed when the result enters a loss that is back-propagated).
    """
    # Intermediate orders always need their graph; only the result may drop it.
    result = DerivativeTree(fn(*coords), coords, True).get(tuple(int(i) for i in index))
    return result if create_graph else result.detach()
