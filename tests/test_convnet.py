"""The fully convolutional net: shape-keeping padding, inputs, and fitting an image."""

import math

import pytest
import torch

from napari_mollifier.nets import ConvNet, grid_input


@pytest.mark.parametrize("padding_mode", ["reflect", "circular", "zeros", "replicate"])
@pytest.mark.parametrize("shape", [(17, 23), (32, 32)])
def test_output_keeps_shape(padding_mode, shape):
    net = ConvNet(2, 3, width=4, depth=5, padding_mode=padding_mode)
    y = net(torch.zeros(2, 2, *shape))
    assert y.shape == (2, 3, *shape)
    assert net.receptive_field == 1 + 2 * (1 + 2 + 4 + 8 + 1)


def test_dtype_follows_and_bad_settings():
    net = ConvNet(1, 1, width=4, depth=2).double()
    assert net(torch.zeros(1, 1, 9, 9, dtype=torch.float64)).dtype == torch.float64
    with pytest.raises(ValueError, match="padding_mode"):
        ConvNet(padding_mode="wrap")
    with pytest.raises(ValueError, match="dilations"):
        ConvNet(depth=2, dilations=(1,))
    with pytest.raises(ValueError, match="kind"):
        grid_input((4, 4), "ones")


def test_grid_input():
    x = grid_input((5, 7))
    assert x.shape == (1, 2, 5, 7)
    assert float(x[0, 0, 0, 0]) == -1.0 and float(x[0, 1, 0, -1]) == 1.0
    n = grid_input((5, 7), "noise", channels=3, seed=2)
    assert n.shape == (1, 3, 5, 7) and torch.equal(n, grid_input((5, 7), "noise", channels=3, seed=2))


def test_fits_target_image_from_coordinate_input():
    """32^2 smooth target, 300 Adam steps (lr 3e-3). Measured relative RMS 2.5e-2; bound 5e-2."""
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    x = grid_input((32, 32))
    yy, xx = x[0, 0], x[0, 1]
    target = (torch.sin(math.pi * xx) * torch.cos(0.5 * math.pi * yy) + 0.3 * yy**2)[None, None]
    net = ConvNet(2, 1, width=16, depth=4)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(300):
        opt.zero_grad()
        loss = ((net(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        rel = float(((net(x) - target) ** 2).mean().sqrt() / target.std())
    assert rel < 5e-2, rel
