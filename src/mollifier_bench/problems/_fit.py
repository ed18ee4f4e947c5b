"""Fitting the 1st- and 2nd-order benchmark problems with mollifier or autodiff derivatives:
the entry points, each a thin layer over the shared training loop in ``_training``."""

from __future__ import annotations

import numpy as np
import torch

from ._simulate import ProblemData
from ._training import FitResult, _fit

__all__ = ["fit_first_order", "fit_second_order"]


_DOC_COMMON = """
    method : {"mollifier", "autodiff"}
        Derivatives of the fitted ``u``: mollifier convolutions of the network's output on the
        grid (composed kernel; edges per ``boundary``), or recursive autodiff of the coordinate
        network (losses on every point).
    arch : {"mlp", "piratenet", "convnet"}
        Coordinate MLP with Fourier features (3 hidden layers), PirateNet (2 blocks, last
        layer initialised by least squares on the data), or a convolutional net (4 dilated
        3x3 layers of ``width // 2`` channels on the two coordinate channels; 2-D problems and
        the mollifier method only: it has no coordinate input to differentiate).
    optimizer : {"adam", "soap"}
        :func:`napari_mollifier.optim.make_optimizer` (PINN settings).
    steps, seed, lr : int, int, float
    radius : float
        Mollifier kernel radius in grid points.
    degree : int
        Chebyshev polynomials per axis for lambda (the smooth rate field). Defaults: 12 in
        1-D (represents the default forcing to 1.3e-3 relative), 8 in 2-D (the default
        conductivity to 3.7e-3).
    width, fourier_scale : int, float
        Network width and Fourier-feature scale (cycles per domain length; far below Nyquist).
    residual_weight : float
        Weight of the residual term (after normalising ``u`` by the data's standard deviation).
    weighting : {"none", "gradnorm"}
        Gradient-norm loss weights (:class:`napari_mollifier.optim.GradNormWeights`), updated
        every ``gradnorm_every`` steps.
    log_alignment_every : int
        Log the gradient alignment score of the data and residual terms every this many
        steps (0: never; each costs two extra backward passes, excluded from the timing).
    lstsq_ridge : float
        Ridge weight of PirateNet's least-squares initialisation
        (:func:`napari_mollifier.nets.init_last_layer_lstsq`). Without it the embedding
        interpolates the noise and the fit starts (and, in 300 steps, stays) far off: 1st
        order, 5 % noise, rel. error 2.7 with 0, 0.29 with 1e-3 (the 1st-order default; it
        costs accuracy without noise: 3.3e-3 -> 2.5e-2). In 2-D it did not help (default 0).
    data_on : {"u", "g"}
        Mollifier method: the data term compares the mollified field ``u = g * eta`` (default,
        docs/method.md) or the network's raw output ``g`` (on every point) with the data.
        Measured (1st order, 5 % noise, PirateNet, 1000 steps): no better; with the old
        ``"reflect"`` edges 0.35 vs 0.39 over seeds 1-5, with ``"network"`` 0.214 vs 0.196 on
        seed 3. Kept for comparison.
    boundary : {"network", "reflect"}
        Mollifier method, coordinate networks: ``"network"`` (default) evaluates ``g`` on the
        grid extended by the kernel's margin (the network is defined there), so ``u`` and its
        derivatives are exact convolutions at every data point and both losses use every
        point, as autodiff's do; ``"reflect"`` mirrors ``g`` at the edges and leaves the edge
        band out of the losses. The convolutional net maps the grid to the grid and always
        uses ``"reflect"``. Measured (1st order, 5 % noise, seeds 1-5): with ``"reflect"`` the
        fit lost the edge band's data and lambda's error there dominated (PirateNet 0.39 vs
        autodiff 0.23); with ``"network"`` (and centred data) 0.25 vs 0.24, MLP 0.243 vs 0.244
        (benchmarks/results/mollifier_vs_autodiff_seeds.md).
    dtype : torch.dtype

    Returns
    -------
    FitResult

    Notes
    -----
    lambda enters the residual linearly, so each step it is solved exactly by least squares
    on the Chebyshev basis for the current ``u`` (variable projection, as the chromatin
    solver); only the network is trained. The loss is
    ``mean((u - data)^2) + residual_weight * mean(residual^2) / s^2`` on ``data / std(data)``,
    with ``s`` a fixed scale of the residual's terms (1st order: ``u_t - u`` of the data by
    finite differences; 2nd order: the rms of the source), so that the two terms are
    comparable whatever the units.
"""


def _options(arguments: dict) -> dict:
    """The keyword options of a ``fit_*_order`` call (its ``locals()`` on entry) for ``_fit``.

    The two entry points share every option (and all defaults but ``degree`` and ``lstsq_ridge``,
    whose reasons are in ``_DOC_COMMON``); they differ in the residual and its scale."""
    return {k: v for k, v in arguments.items() if k != "problem"}


def fit_first_order(
    problem: ProblemData,
    *,
    method: str = "mollifier",
    arch: str = "mlp",
    optimizer: str = "adam",
    steps: int = 500,
    seed: int = 0,
    lr: float = 1e-3,
    radius: float = 3.0,
    degree: int = 12,
    width: int = 64,
    fourier_scale: float = 1.0,
    residual_weight: float = 1.0,
    weighting: str = "none",
    gradnorm_every: int = 100,
    log_alignment_every: int = 0,
    lstsq_ridge: float = 1e-3,
    data_on: str = "u",
    boundary: str = "network",
    dtype=torch.float32,
) -> FitResult:
    """Recover ``lambda(t)`` from a noisy path of ``u_t = u + lambda(t)``.

    Parameters
    ----------
    problem : ProblemData
        From :func:`simulate_first_order` (order 1).
    """
    options = _options(locals())
    if problem.order != 1:
        raise ValueError(f"problem must be a 1st-order problem, got order {problem.order}")

    def linear_parts(d, _source):
        return -torch.ones_like(d["u"]), d["dx"] - d["u"]  # u_t - u - lambda

    # Residual scale: the size of u_t - u read off the data, smoothed first (Gaussian, n/25 samples:
    # the scale the default lambda basis resolves) and away from the edges. Finite differences of
    # the raw data made it 8x too large at 5 % noise (0.27 -> 2.1 in units of std(u)), i.e. a 64x
    # weaker residual that let the network fit the noise; smoothed it stays 0.27-0.31 for noise 0-5 %.
    from scipy.ndimage import gaussian_filter1d

    n = problem.data.shape[0]
    smooth = gaussian_filter1d(problem.data, max(n / 25.0, 1.0), mode="nearest")
    edge = max(n // 12, 1)
    dudt = np.gradient(smooth, problem.spacing[0])
    res_scale = float(np.sqrt(np.mean(((dudt - smooth)[edge:-edge]) ** 2)) / (np.std(problem.data) or 1.0))
    return _fit(problem, ("u", "dx"), linear_parts, res_scale, **options)


def fit_second_order(
    problem: ProblemData,
    *,
    method: str = "mollifier",
    arch: str = "mlp",
    optimizer: str = "adam",
    steps: int = 500,
    seed: int = 0,
    lr: float = 1e-3,
    radius: float = 3.0,
    degree: int = 8,
    width: int = 64,
    fourier_scale: float = 1.0,
    residual_weight: float = 1.0,
    weighting: str = "none",
    gradnorm_every: int = 100,
    log_alignment_every: int = 0,
    lstsq_ridge: float = 0.0,
    data_on: str = "u",
    boundary: str = "network",
    dtype=torch.float32,
) -> FitResult:
    """Recover ``lambda(x, y)`` from noisy ``u`` of ``0 = lambda lap(u) + m`` with known ``m``.

    Parameters
    ----------
    problem : ProblemData
        From :func:`simulate_second_order` (order 2, with its source).
    """
    options = _options(locals())
    if problem.order != 2 or problem.source is None:
        raise ValueError("problem must be a 2nd-order problem with its source m")

    def linear_parts(d, source):
        return d["laplacian"], source  # lambda lap(u) + m

    # Residual scale: the size of the known source (in units of the normalised data).
    res_scale = float(np.sqrt(np.mean(problem.source**2)) / (np.std(problem.data) or 1.0))
    return _fit(problem, ("u", "laplacian"), linear_parts, res_scale, **options)


fit_first_order.__doc__ = fit_first_order.__doc__.rstrip() + _DOC_COMMON
fit_second_order.__doc__ = fit_second_order.__doc__.rstrip() + _DOC_COMMON
