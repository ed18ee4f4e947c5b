"""The trainable-field architectures of the inverse solver: fast checks.

Every network learns a correction to the smoothed data, so at step 0 the field must be the
smoothed data exactly (and still trainable); an unknown name must fail with the list of names.
The recovery figures are in tests/test_arch_recovery.py (slow) and docs/decisions.md.
"""

from __future__ import annotations

import numpy as np
import pydantic
import pytest
import torch

from napari_mollifier.cli import build_parser
from napari_mollifier.config import ARCHS, DEFAULT_NETWORK_SIZE, InferenceSettings
from napari_mollifier.inverse import RateProblem, fit_rates
from napari_mollifier.inverse._fields import _make_field
from napari_mollifier.physics import ChromatinModel

NETWORKS = ("mlp", "piratenet", "convnet")


def _data(n=48):
    yy, xx = np.mgrid[:n, :n]
    phi = 0.5 + 0.35 * np.sin(2 * np.pi * yy / 9.0) * np.cos(2 * np.pi * xx / 11.0)
    mask = (yy - n / 2) ** 2 + (xx - n / 2) ** 2 < (0.42 * n) ** 2
    return phi, mask


def _problem(arch, **sizes):
    phi, mask = _data()
    settings = InferenceSettings(device="cpu", arch=arch, **sizes)
    problem = RateProblem(phi, mask, 10.0, settings, ChromatinModel(), torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    start = problem.phi + 0.01 * torch.randn(problem.phi.shape, generator=gen, dtype=problem.dtype)
    return problem, settings, start


def test_every_arch_is_a_setting_and_a_cli_choice():
    assert set(ARCHS) == {"grid", *NETWORKS}
    for arch in ARCHS:
        assert InferenceSettings(arch=arch).arch == arch
        args = build_parser().parse_args(["infer", "x.tif", "--out", "o", "--arch", arch])
        assert args.arch == arch
    description = InferenceSettings.model_fields["arch"].description
    assert all(arch in description for arch in ARCHS)


@pytest.mark.parametrize("arch", NETWORKS)
def test_network_field_starts_at_the_smoothed_data_and_trains(arch):
    problem, settings, start = _problem(arch)
    groups, field = _make_field(problem, settings, torch.ones_like(problem.phi), start)
    g = field()
    assert g.shape == start.shape
    assert torch.equal(g, start), float((g - start).abs().max())  # the correction is exactly zero
    g.pow(2).sum().backward()
    params = [p for ps in groups.values() for p in ps]
    assert params and any(p.grad is not None and float(p.grad.abs().max()) > 0 for p in params)


def _n_parameters(groups) -> int:
    return sum(p.numel() for ps in groups.values() for p in ps)


@pytest.mark.parametrize("arch", NETWORKS)
def test_network_size_settings(arch):
    """None keeps the architecture's default size; explicit values equal to the defaults build the
    same network, and other values another one."""
    width, blocks = DEFAULT_NETWORK_SIZE[arch]
    assert InferenceSettings(arch=arch).network_size() == (width, blocks)
    problem, settings, start = _problem(arch)
    default = _n_parameters(_make_field(problem, settings, torch.ones(1), start)[0])
    problem, same, start = _problem(arch, network_width=width, network_blocks=blocks)
    assert _n_parameters(_make_field(problem, same, torch.ones(1), start)[0]) == default
    problem, small, start = _problem(arch, network_width=8, network_blocks=1)
    assert _n_parameters(_make_field(problem, small, torch.ones(1), start)[0]) < default
    with pytest.raises(pydantic.ValidationError):
        InferenceSettings(network_width=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_a_short_fit_runs_with_every_arch(arch, one_thread):
    phi, mask = _data()
    *_, fit = fit_rates(
        phi, mask, 10.0, InferenceSettings(device="cpu", arch=arch, optimizer="soap", steps=3, report_every=1)
    )
    assert fit.steps_done == 3 and not fit.diverged
    assert np.isfinite(fit.gamma_me[fit.analysed]).all() and np.isfinite(fit.phi_hat[mask]).all()


def test_unknown_arch_gives_a_clear_error():
    with pytest.raises(pydantic.ValidationError) as info:
        InferenceSettings(arch="unet")
    assert "grid" in str(info.value) and "convnet" in str(info.value)
    problem, _, start = _problem("grid")
    bad = InferenceSettings.model_construct(**{**InferenceSettings().model_dump(), "arch": "unet"})
    with pytest.raises(ValueError, match=r"unknown architecture 'unet'.*grid, mlp, piratenet, convnet"):
        _make_field(problem, bad, torch.ones_like(problem.phi), start)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["infer", "x.tif", "--out", "o", "--arch", "unet"])
