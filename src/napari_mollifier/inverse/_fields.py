"""The trainable fields of a fit: the field g whose mollified version fits the data.

One builder per architecture (``settings.arch``): the free per-pixel grid, trained through the
loss's Fourier preconditioner; the coordinate networks (MLP with Fourier features, PirateNet) and
the ConvNet, each learning a correction to the smoothed data with its output layer started at
zero, so every architecture starts from the same field. :func:`_field_derivatives` turns a field
into the residual's derivatives: by the mollifier (the method) or, for the coordinate networks,
by recursive autograd (the baseline).
"""

from __future__ import annotations

import torch

from ..config import ARCHS, COORDINATE_ARCHS, InferenceSettings
from ..mollifier import MollifierLayer
from ..mollifier._dct import idctn
from ..physics import DERIVATIVES_NEEDED, mu_laplacian
from ._problem import RateProblem

#: The shortest period the networks' Fourier features reach (about two standard deviations), in
#: pixels. The networks' sizes are settings (``network_width``, ``network_blocks``; defaults in
#: :data:`napari_mollifier.config.DEFAULT_NETWORK_SIZE`).
MIN_PERIOD_PX = 8.0


def _make_field(
    problem: RateProblem, settings: InferenceSettings, precond: torch.Tensor, start: torch.Tensor
):
    """The trainable field g on the crop: (parameter groups, callable returning g).

    ``start`` is the lightly smoothed data the field begins from (noise would start the
    residual 1e4 x too high). The grid field is trained through the Fourier preconditioner;
    the networks learn a correction to ``start``, ``g = start + net(...)``, whose output
    layer starts at zero, so every architecture starts from the same field."""
    h, w = problem.phi.shape
    arch = settings.arch
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if arch == "grid":
        groups, coefficients = _grid_field(problem, precond, start)
        return groups, (lambda: idctn(coefficients()))
    if arch == "convnet":
        return _convnet_field(problem, settings, start)
    net, coords = _coordinate_net(problem, settings)

    def field():
        return start + net(coords).reshape(h, w)

    return {"network": list(net.parameters())}, field


def _grid_field(problem: RateProblem, precond: torch.Tensor, start: torch.Tensor):
    """The free per-pixel field: (parameter groups, callable returning g's cosine coefficients).

    Trained through the Fourier preconditioner, in the crop's cosine basis: g = IDCT(p DCT(z)),
    so the derivatives start from the coefficients p DCT(z) without transforming g back and forth.
    """
    z = torch.nn.Parameter(idctn(problem.spectrum(start) / precond))
    return {"free_field": [z]}, (lambda: precond * problem.spectrum(z))


def _coordinate_net(problem: RateProblem, settings: InferenceSettings):
    """The MLP or PirateNet of the correction, output starting at zero, and the crop's pixel
    coordinates in [-1, 1] (rows (y, x)) it is evaluated at."""
    h, w = problem.phi.shape
    dev, dt = problem.device, problem.dtype
    from ..nets import CoordinateMLP, PirateNet

    # The networks' Fourier features must reach the interfaces' scale: with features only down to
    # ~24 px per cycle, or with the output passed through the grid field's Fourier
    # preconditioner (which damps high wavenumbers as k^-4), the MLP could not sharpen the
    # interfaces and the rates came out 4-7x too high (measured, docs/decisions.md).
    ys = torch.linspace(-1, 1, h, device=dev, dtype=dt)
    xs = torch.linspace(-1, 1, w, device=dev, dtype=dt)
    coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
    # Frequencies ~ N(0, scale^2) in cycles per coordinate unit (half the crop): two standard
    # deviations reach MIN_PERIOD_PX pixels per cycle.
    scale = max(h, w) / 2 / MIN_PERIOD_PX / 2
    width, blocks = settings.network_size()
    if settings.arch == "mlp":
        net = CoordinateMLP(
            2,
            1,
            width=width,
            depth=blocks,
            activation="tanh",
            fourier_features=width,
            fourier_scale=scale,
            seed=settings.seed,
        ).to(dev, dt)
        _zero_output(net.net[-1])
    else:
        # PirateNet: gates start closed, so the net starts as a linear model of the embedding;
        # its last layer starts at zero rather than at the paper's least-squares fit of the data:
        # a least-squares fit of the noisy data by the Fourier features would put the noise back
        # into the start field (the residual 1e4 x too high), and the smoothed data is already
        # the better start (docs/decisions.md).
        net = PirateNet(2, 1, width=width, n_blocks=blocks, fourier_scale=scale, seed=settings.seed).to(
            dev, dt
        )
        net.last.set_weight(torch.zeros_like(net.last.weight), torch.zeros_like(net.last.bias))
    return net, coords


def _field_derivatives(
    problem: RateProblem, settings: InferenceSettings, precond: torch.Tensor, start: torch.Tensor
):
    """(parameter groups, callable returning the residual's derivatives of the current field).

    Mollifier (the method): derivatives of the field g as convolutions (``problem.derivatives``).
    Autodiff (the baseline, coordinate networks only): the field is ``start_eta + net(x)`` with
    ``start_eta`` the mollified start, whose derivatives are fixed and taken once by the same
    layer (so both methods start from the same field), and the network's correction
    differentiated by recursive autograd in its coordinates. ``lap(mu)`` then follows by the chain
    rule, exact for a smooth field (the mollifier's default "nested" form is a grid
    discretisation; ``residual_form="chain"`` puts the mollifier on the same formula).
    """
    if settings.derivatives != "autodiff":
        if settings.arch == "grid" and problem.nested:
            groups, coefficients = _grid_field(problem, precond, start)
            return groups, (lambda: problem.derivatives_from_spectrum(coefficients()))
        groups, field_fn = _make_field(problem, settings, precond, start)
        return groups, (lambda: problem.derivatives(field_fn()))
    if settings.arch not in COORDINATE_ARCHS:  # settings built with model_construct skip the validator
        raise ValueError(
            f"derivatives='autodiff' needs a coordinate network (mlp or piratenet), not {settings.arch!r}"
        )
    from ..autodiff import coordinate_derivatives, grid_coordinates

    net, _ = _coordinate_net(problem, settings)
    h, w = problem.phi.shape
    start_layer = MollifierLayer(
        problem.radius_px, DERIVATIVES_NEEDED, spacing=problem.h, boundary="reflect", kernel="spectral"
    ).to(problem.device)
    with torch.no_grad():
        base = {k: v[0, 0] for k, v in start_layer(start[None, None]).items()}
    # Physical coordinates (model length units) -> the network's [-1, 1], so that autograd gives
    # derivatives in the model's units, as the mollifier's spacing does.
    phys = grid_coordinates((h, w), problem.h, dtype=problem.dtype, device=problem.device)
    to_unit = torch.tensor(
        [2.0 / ((h - 1) * problem.h), 2.0 / ((w - 1) * problem.h)], dtype=problem.dtype, device=problem.device
    )

    def derivatives():
        dn = coordinate_derivatives(lambda c: net(c * to_unit - 1.0), phys, DERIVATIVES_NEEDED)
        d = {k: base[k] + dn[k].reshape(h, w) for k in DERIVATIVES_NEEDED}
        d["mu_laplacian"] = mu_laplacian(d, problem.model)
        return d

    return {"network": list(net.parameters())}, derivatives


def _zero_output(layer: torch.nn.Module) -> None:
    """Start a network's output layer at zero, so ``start + net(...)`` begins at ``start``."""
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()


def _convnet_field(problem: RateProblem, settings: InferenceSettings, start: torch.Tensor):
    """ConvNet correction ``g = start + net(x)``; its input ``x`` is fixed: the smoothed data
    (normalised to zero mean, unit variance on the crop) and the pixel coordinates in [-1, 1],
    so the correction can depend on the local pattern and on the position (rates vary in space)."""
    from ..nets import ConvNet, grid_input

    h, w = problem.phi.shape
    width, blocks = settings.network_size()
    net = ConvNet(3, 1, width=width, depth=blocks, activation="tanh", padding_mode="reflect").to(
        problem.device, problem.dtype
    )
    _zero_output(net.net[-1])
    with torch.no_grad():
        norm = (start - start.mean()) / start.std().clamp_min(1e-6)
        x = torch.cat(
            [norm[None, None], grid_input((h, w), dtype=problem.dtype, device=problem.device)], dim=1
        )

    def field():
        return start + net(x)[0, 0]

    return {"network": list(net.parameters())}, field
