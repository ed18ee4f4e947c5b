"""Gradient-norm loss weighting (Wang, Sankaran, Perdikaris; as used with PirateNet)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from ._alignment import loss_term_gradients

__all__ = ["GradNormWeights"]


class GradNormWeights:
    """Loss weights that balance the gradient norms of the loss terms.

    Parameters
    ----------
    n_terms : int
        Number of loss terms.
    update_every : int
        Recompute the weights every this many steps (the papers: ~1000; each update costs one
        backward pass per term).
    momentum : float
        ``w <- momentum w + (1 - momentum) w_hat`` at each update.

    Notes
    -----
    With ``g_i`` the gradient of term ``i`` with respect to the network parameters,
    ``w_hat_i = sum_j ||g_j|| / ||g_i||``, so every weighted term ``w_hat_i ||g_i||`` has the
    same gradient norm ``sum_j ||g_j||``. The weights start at 1 and are constants in the loss
    (no gradient flows through them).

    Examples
    --------
    >>> w = GradNormWeights(2, update_every=1, momentum=0.0)
    >>> w.update_from_norms([1.0, 3.0]).tolist()
    [4.0, 1.3333333333333333]
    """

    def __init__(self, n_terms: int, *, update_every: int = 1000, momentum: float = 0.9):
        if n_terms < 1:
            raise ValueError(f"n_terms must be >= 1, got {n_terms}")
        if update_every < 1:
            raise ValueError(f"update_every must be >= 1, got {update_every}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.n_terms, self.update_every, self.momentum = int(n_terms), int(update_every), float(momentum)
        self.weights = torch.ones(self.n_terms, dtype=torch.float64)
        self.n_updates = 0

    def update_from_norms(self, norms: Sequence[float]) -> torch.Tensor:
        """Update the weights from the gradient norms of the terms; return the new weights."""
        norms = torch.as_tensor([float(n) for n in norms], dtype=torch.float64)
        if norms.numel() != self.n_terms:
            raise ValueError(f"norms needs {self.n_terms} values, got {norms.numel()}")
        if not bool((norms > 0).all()):
            raise ValueError(f"gradient norms must be positive, got {norms.tolist()}")
        target = norms.sum() / norms
        self.weights = self.momentum * self.weights + (1.0 - self.momentum) * target
        self.n_updates += 1
        return self.weights.clone()

    def step(self, step: int, losses: Sequence[torch.Tensor], params: Iterable[torch.Tensor]) -> torch.Tensor:
        """Update on steps ``0, K, 2K, ...`` (from the losses' gradients); return the weights.

        The loss graph is kept, so the caller can back-propagate the weighted total afterwards.
        """
        if step % self.update_every == 0:
            grads = loss_term_gradients(losses, params)
            self.update_from_norms([float(torch.linalg.vector_norm(g)) for g in grads])
        return self.weights.clone()

    def weighted_sum(self, losses: Sequence[torch.Tensor]) -> torch.Tensor:
        """``sum_i w_i L_i`` with the current weights (constants)."""
        if len(losses) != self.n_terms:
            raise ValueError(f"losses needs {self.n_terms} terms, got {len(losses)}")
        return sum(float(w) * loss for w, loss in zip(self.weights, losses))

    def __repr__(self) -> str:
        return (
            f"GradNormWeights(n_terms={self.n_terms}, update_every={self.update_every}, "
            f"momentum={self.momentum}, weights={self.weights.tolist()})"
        )
