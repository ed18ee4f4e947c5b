"""PirateNet: zero gates, least-squares initialisation, weight factorisation, fitting."""

import math

import numpy as np
import pytest
import torch

from napari_mollifier.autodiff import grid_coordinates
from napari_mollifier.nets import CoordinateMLP, FactorizedLinear, PirateNet, init_last_layer_lstsq


def _target(c):
    return torch.sin(2 * math.pi * c[:, 0]) * torch.cos(math.pi * c[:, 1]) + 0.5 * c[:, 1] ** 2


def test_gates_start_at_zero_and_net_is_linear_in_embedding():
    net = PirateNet(2, 1, width=16, n_blocks=3, seed=1)
    assert all(float(b.alpha) == 0.0 for b in net.blocks)
    x = torch.rand(20, 2, generator=torch.Generator().manual_seed(0))
    # Closed gates: the last layer sees the embedding itself.
    torch.testing.assert_close(net.features(x), net.embedding(x))


def test_lstsq_init_equals_numpy_lstsq_of_embedding():
    torch.set_flush_denormal(True)
    net = PirateNet(2, 1, width=24, n_blocks=2, fourier_scale=1.5, seed=2).double()
    c = grid_coordinates((15, 15), 1 / 14, dtype=torch.float64)
    y = _target(c)
    rms = init_last_layer_lstsq(net, c, y)
    a = net.embedding(c).numpy()
    a = np.hstack([a, np.ones((a.shape[0], 1))])
    coef = np.linalg.lstsq(a, y.numpy(), rcond=None)[0]
    expected = a @ coef
    got = net(c).detach().numpy()[:, 0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    assert rms == pytest.approx(np.sqrt(np.mean((expected - y.numpy()) ** 2)), rel=1e-8)


def test_factorized_linear_weight_and_set_weight():
    layer = FactorizedLinear(5, 3, mu=1.0, sigma=0.1, generator=torch.Generator().manual_seed(0))
    x = torch.randn(4, 5)
    torch.testing.assert_close(layer(x), x @ (torch.exp(layer.s)[:, None] * layer.v).T + layer.bias)
    w = torch.randn(3, 5)
    layer.set_weight(w, torch.ones(3))
    torch.testing.assert_close(layer.weight, w)
    # log-scales ~ N(1, 0.1)
    big = FactorizedLinear(2, 20000, generator=torch.Generator().manual_seed(1))
    assert abs(float(big.s.mean()) - 1.0) < 0.01 and abs(float(big.s.std()) - 0.1) < 0.01


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_and_dtype_follow_input(dtype):
    net = PirateNet(3, 2, width=8, n_blocks=1, seed=0).to(dtype)
    y = net(torch.zeros(7, 3, dtype=dtype))
    assert y.shape == (7, 2) and y.dtype == dtype
    assert torch.equal(
        PirateNet(3, 2, width=8, n_blocks=1, seed=0)(torch.ones(2, 3)),
        PirateNet(3, 2, width=8, n_blocks=1, seed=0)(torch.ones(2, 3)),
    )


@pytest.mark.parametrize("kw, match", [(dict(width=7), "width"), (dict(n_blocks=0), "n_blocks")])
def test_rejects_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        PirateNet(**kw)


def test_fits_2d_function_better_than_plain_mlp():
    """24^2 grid, 300 Adam steps (lr 1e-3). Measured: PirateNet (8.7k parameters, lstsq init)
    relative RMS 7e-4; a plain Fourier-feature MLP with more parameters (width 36, depth 7, 9.2k) 2.8e-2."""
    torch.set_flush_denormal(True)
    c = grid_coordinates((24, 24), 1 / 23)
    y = _target(c)[:, None]
    torch.manual_seed(0)
    pirate = PirateNet(2, 1, width=32, n_blocks=2, seed=0)
    init_last_layer_lstsq(pirate, c, y)
    mlp = CoordinateMLP(2, 1, width=36, depth=7, fourier_features=16, seed=0)
    assert sum(p.numel() for p in mlp.parameters()) >= sum(p.numel() for p in pirate.parameters())
    errors = {}
    for name, net in (("pirate", pirate), ("mlp", mlp)):
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for _ in range(300):
            opt.zero_grad()
            loss = ((net(c) - y) ** 2).mean()
            loss.backward()
            opt.step()
        with torch.no_grad():
            errors[name] = float(((net(c) - y) ** 2).mean().sqrt() / y.std())
    assert errors["pirate"] < 3e-3, errors
    assert errors["pirate"] < 0.3 * errors["mlp"], errors


def test_lstsq_init_through_a_linear_feature_map():
    """With ``feature_map`` (here a 5-point moving average, as a mollifier would apply) the
    last layer fits the *mapped* output to the targets: the mapped output then matches them to
    the least-squares optimum, and better than a fit of the raw output."""
    torch.manual_seed(0)
    x = torch.linspace(-1.2, 1.2, 70)[:, None]
    target = torch.sin(3 * x[2:-2, 0]) + 0.5 * x[2:-2, 0] ** 2  # on the 66 interior points

    def average(f):  # (70, K) -> (66, K)
        return sum(f[i : i + 66] for i in range(5)) / 5

    errs = {}
    for mapped in (True, False):
        net = PirateNet(1, 1, width=32, n_blocks=1, fourier_scale=1.0, seed=3)
        if mapped:
            rms = init_last_layer_lstsq(net, x, target, feature_map=average)
        else:
            init_last_layer_lstsq(net, x[2:-2], target)
        with torch.no_grad():
            out = average(net(x).reshape(-1, 1))[:, 0]
        errs[mapped] = float((out - target).pow(2).mean().sqrt())
        if mapped:
            assert errs[True] == pytest.approx(rms, rel=1e-3, abs=1e-6)
    assert errs[True] < 1e-3 and errs[True] < 0.2 * errs[False], errs
    with pytest.raises(ValueError, match="targets"):
        init_last_layer_lstsq(net, x, target)  # 70 rows vs 66 targets
