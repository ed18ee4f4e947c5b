"""Central finite-difference stencils with exact rational weights.

They are composed with the sampled bump: ``D(g * eta) = g * (D eta)`` where ``D`` is a
high-order difference. Its error on the mollified field is ``O((k h)^p)`` for resolved
wavenumbers, and the bump already suppresses the unresolved ones; this avoids sampling the
4th derivative of the bump point-wise (see ``docs/method.md``, pitfalls).
"""

from __future__ import annotations

import functools
from fractions import Fraction
from math import factorial

import numpy as np

__all__ = ["central_stencil", "stencil_half_width"]


def stencil_half_width(order: int, accuracy: int = 8) -> int:
    """Half-width of the central stencil of a derivative ``order`` with even ``accuracy``."""
    if order < 0:
        raise ValueError(f"derivative order must be >= 0, got {order}")
    if accuracy < 2 or accuracy % 2:
        raise ValueError(f"accuracy must be an even integer >= 2, got {accuracy}")
    if order == 0:
        return 0
    return (order + 1) // 2 + accuracy // 2 - 1


@functools.lru_cache(maxsize=64)
def central_stencil(order: int, accuracy: int = 8) -> np.ndarray:
    """Weights ``c_j`` with ``f^(order)(x) ~ sum_j c_j f(x + j h) / h^order``, ``j = -m..m``.

    Solved exactly in rational arithmetic from the moment conditions
    ``sum_j c_j j^p = order! delta_{p, order}`` for ``p = 0..2m``.

    Parameters
    ----------
    order : int
        Derivative order (0 gives the identity ``[1]``).
    accuracy : int
        Even order of accuracy; the stencil has ``2m + 1`` points with
        ``m = stencil_half_width(order, accuracy)``.

    Returns
    -------
    numpy.ndarray
        Float64 weights in offset order ``-m..m`` (read-only). They are *correlation*
        weights, the convention of ``torch.nn.functional.conv1d``: no flip needed.
    """
    m = stencil_half_width(order, accuracy)
    if m == 0:
        out = np.ones(1)
        out.setflags(write=False)
        return out
    offsets = list(range(-m, m + 1))
    size = len(offsets)
    a = [[Fraction(j) ** p for j in offsets] for p in range(size)]
    b = [Fraction(factorial(order)) if p == order else Fraction(0) for p in range(size)]
    # Gauss-Jordan elimination on the (nonsingular) Vandermonde system.
    for col in range(size):
        pivot = next(r for r in range(col, size) if a[r][col] != 0)
        a[col], a[pivot] = a[pivot], a[col]
        b[col], b[pivot] = b[pivot], b[col]
        inv = 1 / a[col][col]
        a[col] = [v * inv for v in a[col]]
        b[col] *= inv
        for r in range(size):
            if r != col and a[r][col] != 0:
                f = a[r][col]
                a[r] = [vr - f * vc for vr, vc in zip(a[r], a[col])]
                b[r] -= f * b[col]
    out = np.array([float(v) for v in b])
    out.setflags(write=False)
    return out
