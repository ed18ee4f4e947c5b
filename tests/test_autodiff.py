"""The autodiff baseline against analytic derivatives and against itself."""

import math

import pytest
import torch

from napari_mollifier import coordinate_derivatives, grid_coordinates
from napari_mollifier.autodiff import partial_derivative
from napari_mollifier.nets import CoordinateMLP

A, B = 1.3, 0.7


def analytic_field(c):
    # u = sin(A x) cos(B y) * exp(0.3 x); columns are (y, x)
    y, x = c[:, 0], c[:, 1]
    return torch.sin(A * x) * torch.cos(B * y) * torch.exp(0.3 * x)


def exact(name, y, x):
    # d^n/dx^n [sin(Ax) e^{0.3x}] = Im[(0.3 + iA)^n e^{(0.3+iA)x}]
    def fx(n):
        z = complex(0.3, A) ** n
        return (z * complex(math.cos(A * x), math.sin(A * x))).imag * math.exp(0.3 * x)

    def fy(n):
        return [
            math.cos(B * y),
            -B * math.sin(B * y),
            -(B**2) * math.cos(B * y),
            B**3 * math.sin(B * y),
            B**4 * math.cos(B * y),
        ][n]

    parts = {
        "u": [(1, 0, 0)],
        "dx": [(1, 1, 0)],
        "dy": [(1, 0, 1)],
        "dxx": [(1, 2, 0)],
        "dyy": [(1, 0, 2)],
        "dxy": [(1, 1, 1)],
        "dxxxx": [(1, 4, 0)],
        "dxxyy": [(1, 2, 2)],
        "laplacian": [(1, 2, 0), (1, 0, 2)],
        "biharmonic": [(1, 4, 0), (2, 2, 2), (1, 0, 4)],
    }[name]
    return sum(c * fx(i) * fy(j) for c, i, j in parts)


NAMES = ["u", "dx", "dy", "dxx", "dyy", "dxy", "dxxxx", "dxxyy", "laplacian", "biharmonic"]


def test_matches_analytic_derivatives_float64():
    coords = torch.tensor([[0.2, -0.4], [1.1, 0.9], [-0.7, 2.0]], dtype=torch.float64)
    out = coordinate_derivatives(analytic_field, coords, NAMES, create_graph=False)
    for name in NAMES:
        want = torch.tensor([exact(name, float(y), float(x)) for y, x in coords], dtype=torch.float64)
        torch.testing.assert_close(out[name], want, rtol=1e-10, atol=1e-10, msg=name)


def test_biharmonic_routes_agree_on_a_network():
    # Laplacian-of-Laplacian (6 backward passes) == u_xxxx + 2 u_xxyy + u_yyyy (8 passes).
    torch.manual_seed(0)
    net = CoordinateMLP(2, 1, width=16, depth=3, fourier_features=8, fourier_scale=0.5, seed=1).double()
    coords = grid_coordinates((5, 7), 0.1, dtype=torch.float64)
    out = coordinate_derivatives(net, coords, ["biharmonic", "dxxxx", "dxxyy", "dyyyy"], create_graph=False)
    torch.testing.assert_close(
        out["biharmonic"], out["dxxxx"] + 2 * out["dxxyy"] + out["dyyyy"], rtol=1e-9, atol=1e-9
    )


def test_partial_derivative_of_closed_form():
    x = torch.linspace(-1, 1, 11, dtype=torch.float64, requires_grad=True)
    d3 = partial_derivative(lambda t: torch.sin(2 * t), [x], (3,))
    torch.testing.assert_close(d3, -8 * torch.cos(2 * x.detach()))
    assert not d3.requires_grad


def test_gradient_reaches_the_parameters():
    # A loss built from the biharmonic must train the network: compare with finite differences.
    torch.manual_seed(0)
    net = CoordinateMLP(2, 1, width=6, depth=2).double()
    coords = grid_coordinates((3, 3), 0.3, dtype=torch.float64)
    w = net.net[0].weight

    def loss_of(weight):
        params = {k: v for k, v in net.named_parameters()}
        params["net.0.weight"] = weight
        f = lambda c: torch.func.functional_call(net, params, (c,))  # noqa: E731
        return coordinate_derivatives(f, coords, ["biharmonic"])["biharmonic"].pow(2).mean()

    assert torch.autograd.gradcheck(loss_of, (w.detach().clone().requires_grad_(True),), eps=1e-6, atol=1e-5)


def test_grid_coordinates_order():
    c = grid_coordinates((2, 3), (0.5, 2.0))
    assert c.shape == (6, 2)
    torch.testing.assert_close(c[:, 0].reshape(2, 3), torch.tensor([[0.0] * 3, [0.5] * 3]))
    torch.testing.assert_close(c[:, 1].reshape(2, 3), torch.tensor([[0.0, 2.0, 4.0]] * 2))


def test_one_dimensional_fourth_derivative():
    c = torch.linspace(0, 1, 9, dtype=torch.float64)[:, None]
    out = coordinate_derivatives(lambda t: torch.exp(2 * t[:, 0]), c, ["dxxxx", "laplacian", "biharmonic"])
    torch.testing.assert_close(out["dxxxx"], 16 * torch.exp(2 * c[:, 0]))
    torch.testing.assert_close(out["biharmonic"], out["dxxxx"])
    torch.testing.assert_close(out["laplacian"], 4 * torch.exp(2 * c[:, 0]))


def test_rejects_bad_coordinates():
    with pytest.raises(ValueError, match="coords must have shape"):
        coordinate_derivatives(analytic_field, torch.zeros(4, 3), ["u"])
    with pytest.raises(ValueError, match="unknown derivative"):
        coordinate_derivatives(analytic_field, torch.zeros(4, 2), ["dz"])
