"""Optimisation helpers: alignment score, per-term gradients, gradient-norm weights, optimisers."""

import math

import pytest
import torch

from napari_mollifier.optim import GradNormWeights, alignment_score, loss_term_gradients, make_optimizer

E1, E2, E3 = torch.eye(3)


@pytest.mark.parametrize(
    "grads, expected",
    [
        ([E1, 5 * E1], 1.0),  # parallel (scale does not matter)
        ([E1, -0.1 * E1], -1.0),  # opposite
        ([E1, 2 * E2], 0.0),  # orthogonal
        ([E1 + E2, E1], math.cos(math.pi / 4)),  # n = 2 is the cosine similarity
        ([E1, 3 * E1, 0.5 * E1], 1.0),  # n = 3, all parallel
        ([E1, E2, E3], -1.0 / 3.0),  # n = 3 orthonormal: 2 * (1/3) - 1
        ([E1, E1, E2], 1.0 / 9.0),  # mean (2/3, 1/3): 2 * 5/9 - 1
        (
            [
                torch.tensor([1.0, 0.0]),
                torch.tensor([-0.5, math.sqrt(3) / 2]),
                torch.tensor([-0.5, -math.sqrt(3) / 2]),
            ],
            -1.0,
        ),  # three at 120 degrees cancel
    ],
)
def test_alignment_score_hand_computed(grads, expected):
    assert alignment_score(grads) == pytest.approx(expected, abs=1e-12)


def test_alignment_score_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        alignment_score([E1])
    with pytest.raises(ValueError, match="zero"):
        alignment_score([E1, torch.zeros(3)])
    with pytest.raises(ValueError, match="equal sizes"):
        alignment_score([E1, torch.ones(2)])


def test_loss_term_gradients_analytic():
    a = torch.tensor([1.0, -2.0], requires_grad=True)
    b = torch.tensor([[0.5, 1.0], [2.0, 3.0]], requires_grad=True)
    w = torch.tensor([3.0, 4.0])
    l1 = (a**2).sum()  # d/da = 2a, d/db = 0
    l2 = (w @ a) + (b**2).sum() / 2  # d/da = w, d/db = b
    g1, g2 = loss_term_gradients([l1, l2], [a, b])
    torch.testing.assert_close(g1, torch.tensor([2.0, -4.0, 0, 0, 0, 0]))
    torch.testing.assert_close(g2, torch.tensor([3.0, 4.0, 0.5, 1.0, 2.0, 3.0]))
    # The graph is kept: the total can still be back-propagated.
    (l1 + l2).backward()
    torch.testing.assert_close(a.grad, torch.tensor([5.0, 0.0]))


def test_gradnorm_weights_known_norms():
    w = GradNormWeights(2, update_every=3, momentum=0.9)
    assert w.weights.tolist() == [1.0, 1.0]
    p = torch.zeros(4, requires_grad=True)
    u1 = torch.tensor([1.0, 0.0, 0.0, 0.0])  # |grad| = 1
    u2 = torch.tensor([0.0, 0.0, 3.0, 0.0])  # |grad| = 3

    def losses():
        return [u1 @ p, u2 @ p]

    # w_hat = (1 + 3) / (1, 3) = (4, 4/3); one update from 1 with momentum 0.9.
    first = w.step(0, losses(), [p])
    torch.testing.assert_close(first, torch.tensor([0.9 + 0.4, 0.9 + 0.4 / 3], dtype=torch.float64))
    assert torch.equal(w.step(1, losses(), [p]), first) and torch.equal(w.step(2, losses(), [p]), first)
    second = w.step(3, losses(), [p])
    torch.testing.assert_close(second, 0.9 * first + 0.1 * torch.tensor([4.0, 4.0 / 3], dtype=torch.float64))
    assert w.n_updates == 2
    # After many updates the weights converge to w_hat, where the weighted gradient norms agree.
    for _ in range(300):
        w.update_from_norms([1.0, 3.0])
    assert w.weights[0] * 1.0 == pytest.approx(float(w.weights[1]) * 3.0, rel=1e-9)
    total = w.weighted_sum([torch.tensor(1.0), torch.tensor(2.0)])
    assert float(total) == pytest.approx(4.0 + 2 * 4.0 / 3, rel=1e-6)  # float32 losses
    with pytest.raises(ValueError, match="positive"):
        w.update_from_norms([0.0, 1.0])


def test_make_optimizer_settings_and_descent():
    torch.manual_seed(0)
    for name in ("adam", "soap"):
        lin = torch.nn.Linear(4, 3)
        opt = make_optimizer(name, lin.parameters(), lr=1e-2)
        group = opt.param_groups[0]
        assert group["lr"] == 1e-2 and tuple(group["betas"]) == (0.9, 0.999)
        if name == "soap":
            assert type(opt).__name__ == "SOAP"
            assert group["precondition_frequency"] == 2 and group["weight_decay"] == 0.0
        else:
            assert isinstance(opt, torch.optim.Adam)
        x, y = torch.randn(32, 4), torch.randn(32, 3)
        first = None
        for _ in range(50):
            opt.zero_grad()
            loss = ((lin(x) - y) ** 2).mean()
            first = float(loss) if first is None else first
            loss.backward()
            opt.step()
        assert float(loss) < 0.8 * first, (name, first, float(loss))
    with pytest.raises(ValueError, match="name"):
        make_optimizer("sgd", lin.parameters())
