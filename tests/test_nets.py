import math

import pytest
import torch

from napari_mollifier.nets import CoordinateMLP, FourierFeatures


def test_fourier_features_are_cos_sin_of_projection():
    ff = FourierFeatures(2, 3, scale=2.0, seed=4)
    x = torch.tensor([[0.1, 0.2], [0.0, 0.0]])
    out = ff(x)
    proj = 2 * math.pi * x @ ff.B
    torch.testing.assert_close(out, torch.cat([torch.cos(proj), torch.sin(proj)], 1))
    assert out.shape == (2, 6)
    # seeded frequencies are reproducible, and have the requested scale
    assert torch.equal(FourierFeatures(2, 3, scale=2.0, seed=4).B, ff.B)
    big = FourierFeatures(2, 20000, scale=2.0, seed=0).B
    assert abs(float(big.std()) - 2.0) < 0.05


def test_mlp_shapes_dtype_and_depth():
    net = CoordinateMLP(2, 3, width=8, depth=5, fourier_features=4).double()
    y = net(torch.zeros(7, 2, dtype=torch.float64))
    assert y.shape == (7, 3) and y.dtype == torch.float64
    assert sum(isinstance(m, torch.nn.Linear) for m in net.modules()) == 6


@pytest.mark.parametrize("kw, match", [(dict(activation="relu6"), "activation"), (dict(depth=0), "depth")])
def test_mlp_rejects_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        CoordinateMLP(**kw)
