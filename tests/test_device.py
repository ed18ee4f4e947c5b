"""Accelerator checks: results on CUDA / MPS equal the CPU's. Skipped where there is none
(CI has none; run on a GPU machine with `python -m pytest tests/test_device.py`)."""

import pytest
import torch

from napari_mollifier import MollifierLayer, coordinate_derivatives, grid_coordinates, mollify
from napari_mollifier.nets import CoordinateMLP

DEVICES = [
    d
    for d, ok in (
        ("cuda", torch.cuda.is_available()),
        ("mps", getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()),
    )
    if ok
]
pytestmark = pytest.mark.skipif(not DEVICES, reason="no CUDA or MPS device")
NAMES = ("u", "dx", "dy", "dxx", "dyy", "dxy", "laplacian", "biharmonic")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("path", ["direct", "fft"])
@pytest.mark.parametrize("boundary", ["periodic", "reflect", "zeros"])
def test_mollify_matches_cpu(device, path, boundary):
    g = torch.randn(2, 3, 64, 80, generator=torch.Generator().manual_seed(0))
    ref = mollify(g, 6.0, NAMES, spacing=0.5, boundary=boundary, path=path)
    out = mollify(g.to(device), 6.0, NAMES, spacing=0.5, boundary=boundary, path=path)
    for name in NAMES:
        assert out[name].device.type == device and out[name].dtype == torch.float32
        scale = ref[name].abs().max()
        torch.testing.assert_close(out[name].cpu() / scale, ref[name] / scale, rtol=0, atol=2e-5, msg=name)


@pytest.mark.parametrize("device", DEVICES)
def test_layer_moves_and_trains_on_device(device):
    layer = MollifierLayer(6.0, ("u", "biharmonic")).to(device)
    g = torch.randn(1, 1, 48, 48, device=device, requires_grad=True)
    out = layer(g)
    (out["u"].square().mean() + out["biharmonic"].square().mean()).backward()
    assert g.grad is not None and g.grad.device.type == device and torch.isfinite(g.grad).all()


@pytest.mark.parametrize("device", DEVICES)
def test_autodiff_matches_cpu(device):
    torch.manual_seed(0)
    net = CoordinateMLP(2, 1, width=32, depth=3)
    coords = grid_coordinates((12, 12), 0.1)
    ref = coordinate_derivatives(net, coords, ["laplacian", "biharmonic"], create_graph=False)
    out = coordinate_derivatives(
        net.to(device), coords.to(device), ["laplacian", "biharmonic"], create_graph=False
    )
    for name in ref:
        torch.testing.assert_close(out[name].cpu(), ref[name], rtol=1e-3, atol=1e-3)
