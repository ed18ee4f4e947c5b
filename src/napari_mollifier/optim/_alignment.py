"""Gradient alignment score of PINN loss terms (Wang et al., arXiv 2502.00604)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

__all__ = ["alignment_score", "loss_term_gradients"]


def loss_term_gradients(
    losses: Sequence[torch.Tensor], params: Iterable[torch.Tensor], *, retain_graph: bool = True
) -> list[torch.Tensor]:
    """Gradient of each loss term with respect to ``params``, flattened into one vector per term.

    Parameters
    ----------
    losses : sequence of scalar torch.Tensor
        The loss terms (e.g. data and residual), sharing one graph.
    params : iterable of torch.Tensor
        Parameters to differentiate with respect to (those that require grad).
    retain_graph : bool
        Keep the graph after the last term (default), so the caller can still back-propagate
        the total loss in the same step.

    Returns
    -------
    list of torch.Tensor
        One 1-D tensor per term, of length ``sum(p.numel())``; parameters a term does not
        depend on contribute zeros. Detached from the graph.

    Notes
    -----
    One backward pass per term: this costs as much as the training step's own backward per
    term, so compute it only on the steps that are logged (docs/method.md).
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("params must contain at least one tensor that requires grad")
    out = []
    for i, loss in enumerate(losses):
        if loss.ndim != 0:
            raise ValueError(f"losses[{i}] must be a scalar, got shape {tuple(loss.shape)}")
        keep = retain_graph or i < len(losses) - 1
        grads = torch.autograd.grad(loss, params, retain_graph=keep, allow_unused=True)
        out.append(
            torch.cat(
                [(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)]
            ).detach()
        )
    return out


def alignment_score(grads: Sequence[torch.Tensor]) -> float:
    """Alignment of loss-term gradients: ``A = 2 || (1/n) sum_i v_i / ||v_i|| ||^2 - 1``.

    Parameters
    ----------
    grads : sequence of torch.Tensor
        ``n >= 2`` gradient vectors (any shapes with equal numbers of elements; flattened).

    Returns
    -------
    float
        In ``[-1, 1]``: 1 when all gradients point the same way, the cosine similarity for
        ``n = 2`` (-1: the two terms pull in opposite directions). For ``n > 2`` the minimum
        is ``2/n^2 ||sum||^2 - 1`` of the configuration, e.g. -1 for unit vectors summing to 0.

    Examples
    --------
    >>> import torch
    >>> alignment_score([torch.tensor([1.0, 0.0]), torch.tensor([0.0, 3.0])])
    0.0
    """
    if len(grads) < 2:
        raise ValueError(f"grads needs at least 2 gradient vectors, got {len(grads)}")
    vs = [g.detach().reshape(-1).double() for g in grads]
    if len({v.numel() for v in vs}) != 1:
        raise ValueError(f"grads must have equal sizes, got {[v.numel() for v in vs]}")
    units = []
    for i, v in enumerate(vs):
        norm = torch.linalg.vector_norm(v)
        if norm == 0:
            raise ValueError(f"grads[{i}] is zero: its direction (and the alignment) is undefined")
        units.append(v / norm)
    mean = torch.stack(units).mean(0)
    return float(2.0 * torch.dot(mean, mean) - 1.0)
