"""Fitting the 1st- and 2nd-order benchmark problems with mollifier or autodiff derivatives."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..autodiff import coordinate_derivatives, grid_coordinates
from ..mollifier import mollifier_margin, mollify
from ._simulate import ProblemData

__all__ = ["ARCHS", "METHODS", "FitResult", "chebyshev_basis", "fit_first_order", "fit_second_order"]

METHODS = ("mollifier", "autodiff")
ARCHS = ("mlp", "piratenet", "convnet")


@dataclass
class FitResult:
    """Outcome of :func:`fit_first_order` / :func:`fit_second_order`.

    Attributes
    ----------
    lambda_hat, u_hat : np.ndarray
        Recovered rate field and fitted ``u`` on the data grid.
    region : np.ndarray of bool
        Points where both methods are scored: the grid minus the mollifier's edge margin
        (the same region for mollifier and autodiff, so their figures compare).
    history : dict of str to list
        ``step``, ``loss_data``, ``loss_residual`` (every step); ``alignment_step``,
        ``alignment`` (the gradient alignment score of the data and residual terms, on the
        logged steps); ``weights`` (loss weights when ``weighting="gradnorm"``).
    time_per_step_s : float
        Mean wall time of one training step (forward, derivatives, residual, loss, backward,
        optimiser); the alignment logging is timed separately and excluded.
    recovery : dict
        ``rel_error`` (``||lambda_hat - lambda||_2 / ||lambda||_2``) and ``r`` (Pearson) over
        ``region``, when the data carry the truth.
    settings : dict
    """

    lambda_hat: np.ndarray
    u_hat: np.ndarray
    region: np.ndarray
    history: dict
    time_per_step_s: float
    recovery: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


def chebyshev_basis(shape, degree: int, *, dtype=torch.float64) -> torch.Tensor:
    """Tensor-product Chebyshev polynomials ``T_k(2 s - 1)`` on a grid spanning ``[0, 1]^d``.

    Returns (P, degree^d) with rows in C order of ``shape``. Chosen for the smooth rate field
    because polynomials, unlike a cosine series, impose nothing on the edge derivatives.
    """
    if degree < 1:
        raise ValueError(f"degree must be >= 1, got {degree}")
    mats = [np.polynomial.chebyshev.chebvander(np.linspace(-1.0, 1.0, n), degree - 1) for n in shape]
    out = mats[0]
    for m in mats[1:]:
        out = np.einsum("ik,jl->ijkl", out, m).reshape(out.shape[0] * m.shape[0], -1)
    return torch.as_tensor(out, dtype=dtype)


def _make_net(arch: str, nd: int, width: int, fourier_scale: float, seed: int):
    from ..nets import ConvNet, CoordinateMLP, PirateNet

    if arch == "convnet":
        torch.manual_seed(seed)
        return ConvNet(2, 1, width=width // 2, depth=4)

    if arch == "mlp":
        return CoordinateMLP(nd, 1, width=width, depth=3, fourier_features=width // 2,
                             fourier_scale=fourier_scale, seed=seed)
    if arch == "piratenet":
        return PirateNet(nd, 1, width=width, n_blocks=2, fourier_scale=fourier_scale, seed=seed)
    raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")


def _fit(problem: ProblemData, names: tuple[str, ...], linear_parts, residual_scale: float, *, method: str, arch: str, optimizer: str,
         steps: int, seed: int, lr: float, radius: float, degree: int, width: int, fourier_scale: float,
         residual_weight: float, weighting: str, gradnorm_every: int, log_alignment_every: int,
         dtype, lstsq_ridge: float = 0.0) -> FitResult:
    from ..optim import GradNormWeights, alignment_score, loss_term_gradients, make_optimizer

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if arch == "convnet" and (method != "mollifier" or len(problem.shape) != 2):
        raise ValueError("arch 'convnet' maps a 2-D grid to a grid: it needs method='mollifier' and a 2-D "
                         "problem (autodiff differentiates a coordinate network; use mlp or piratenet)")
    if weighting not in ("none", "gradnorm"):
        raise ValueError(f"weighting must be 'none' or 'gradnorm', got {weighting!r}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    torch.manual_seed(seed)
    shape, nd = problem.shape, len(problem.shape)
    spacing = tuple(float(h) for h in problem.spacing)
    extent = torch.tensor([(n - 1) * h for n, h in zip(shape, spacing)], dtype=dtype)
    coords = grid_coordinates(shape, spacing, dtype=dtype)          # physical units
    scale = float(np.std(problem.data)) or 1.0                      # the fit works on data / scale
    target = torch.as_tensor(problem.data.reshape(-1) / scale, dtype=dtype)
    source = None if problem.source is None else torch.as_tensor(problem.source.reshape(-1) / scale, dtype=dtype)
    net = _make_net(arch, nd, width, fourier_scale, seed).to(dtype)
    if arch == "piratenet":
        from ..nets import init_last_layer_lstsq

        init_last_layer_lstsq(net, coords / extent, target, ridge=lstsq_ridge)
    basis64 = chebyshev_basis(shape, degree)
    basis = basis64.to(dtype)
    # Edge band whose mollifier outputs see the padding: left out of the mollifier losses, and
    # of the scoring of both methods.
    margin = mollifier_margin(radius, names, ndim=nd)
    inner = np.zeros(shape, dtype=bool)
    inner[tuple(slice(margin, n - margin) for n in shape)] = True
    if not inner.any():
        raise ValueError(f"grid {shape} is too small for the mollifier margin of {margin} points")
    inner_t = torch.as_tensor(inner.reshape(-1))
    loss_region = inner_t if method == "mollifier" else torch.ones_like(inner_t)

    grid_in = None
    if arch == "convnet":
        from ..nets import grid_input

        grid_in = grid_input(shape, "coords", dtype=dtype)

    def derivatives():
        if method == "mollifier":
            g = (net(grid_in) if grid_in is not None else net(coords / extent)).reshape(1, 1, *shape)
            d = mollify(g, radius, names, spacing=spacing, boundary="reflect")
            return {k: v.reshape(-1) for k, v in d.items()}
        d = coordinate_derivatives(lambda c: net(c / extent), coords, names)
        return d

    def losses():
        d = derivatives()
        a, b = linear_parts(d, source)                # residual = a * lambda + b, linear in lambda
        a_r, b_r = a[loss_region], b[loss_region]
        # Variable projection: lambda = basis @ c solved exactly (least squares) for the current
        # fields; detached, so the gradient is that of the minimised residual (envelope theorem).
        # float64 and an SVD-based driver: float32 gelsy gave run-to-run different solutions.
        design = (a_r.detach().double()[:, None] * basis64[loss_region])
        coef = torch.linalg.lstsq(design, -b_r.detach().double()[:, None], driver="gelsd").solution[:, 0]
        lam = basis @ coef.to(dtype)
        res = a_r * lam[loss_region] + b_r
        l_data = ((d["u"] - target)[loss_region] ** 2).mean()
        l_res = (res**2).mean() / residual_scale**2
        return l_data, l_res, lam, d["u"]

    params = [p for p in net.parameters() if p.requires_grad]
    opt = make_optimizer(optimizer, params, lr=lr)
    weights = GradNormWeights(2, update_every=gradnorm_every) if weighting == "gradnorm" else None
    hist = {"step": [], "loss_data": [], "loss_residual": [], "alignment_step": [], "alignment": [], "weights": []}
    train_time = 0.0
    for step in range(steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        l_data, l_res, lam, u = losses()
        logged = log_alignment_every and step % log_alignment_every == 0
        if logged:
            t_log = time.perf_counter()
            grads = loss_term_gradients([l_data, l_res], params)
            if all(float(g.norm()) > 0 for g in grads):
                hist["alignment_step"].append(step)
                hist["alignment"].append(alignment_score(grads))
            t0 += time.perf_counter() - t_log
        if weights is not None:
            w = weights.step(step, [l_data, residual_weight * l_res], params)
            total = float(w[0]) * l_data + float(w[1]) * residual_weight * l_res
            hist["weights"].append(w.tolist())
        else:
            total = l_data + residual_weight * l_res
        total.backward()
        opt.step()
        train_time += time.perf_counter() - t0
        hist["step"].append(step)
        hist["loss_data"].append(float(l_data.detach()))
        hist["loss_residual"].append(float(l_res.detach()))
    with torch.no_grad() if method == "mollifier" else torch.enable_grad():
        _, _, lam, u = losses()
    lam_hat = lam.detach().numpy().reshape(shape) * (scale if problem.order == 1 else 1.0)
    u_hat = u.detach().numpy().reshape(shape) * scale
    recovery = {}
    if "lambda" in problem.truth:
        t, e = problem.truth["lambda"][inner], lam_hat[inner]
        recovery = {"rel_error": float(np.linalg.norm(e - t) / np.linalg.norm(t)),
                    "r": float(np.corrcoef(e, t)[0, 1]) if np.std(t) > 0 and np.std(e) > 0 else float("nan")}
    settings = dict(method=method, arch=arch, optimizer=optimizer, steps=steps, seed=seed, lr=lr, radius=radius,
                    degree=degree, width=width, fourier_scale=fourier_scale, residual_weight=residual_weight,
                    weighting=weighting, margin=margin)
    return FitResult(lam_hat, u_hat, inner, hist, train_time / steps, recovery, settings)


_DOC_COMMON = """
    method : {"mollifier", "autodiff"}
        Derivatives of the fitted ``u``: mollifier convolutions of the network's output on the
        grid (composed kernel, ``boundary="reflect"``, losses on the grid minus the edge
        margin), or recursive autodiff of the coordinate network (losses on every point).
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


def fit_first_order(problem: ProblemData, *, method: str = "mollifier", arch: str = "mlp", optimizer: str = "adam",
                    steps: int = 500, seed: int = 0, lr: float = 1e-3, radius: float = 3.0, degree: int = 12,
                    width: int = 64, fourier_scale: float = 1.0, residual_weight: float = 1.0,
                    weighting: str = "none", gradnorm_every: int = 100, log_alignment_every: int = 0,
                    lstsq_ridge: float = 1e-3, dtype=torch.float32) -> FitResult:
    """Recover ``lambda(t)`` from a noisy path of ``u_t = u + lambda(t)``.

    Parameters
    ----------
    problem : ProblemData
        From :func:`simulate_first_order` (order 1).
    """
    if problem.order != 1:
        raise ValueError(f"problem must be a 1st-order problem, got order {problem.order}")

    def linear_parts(d, _source):
        return -torch.ones_like(d["u"]), d["dx"] - d["u"]   # u_t - u - lambda

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
    return _fit(problem, ("u", "dx"), linear_parts, res_scale, method=method, arch=arch, optimizer=optimizer, steps=steps,
                seed=seed, lr=lr, radius=radius, degree=degree, width=width, fourier_scale=fourier_scale,
                residual_weight=residual_weight, weighting=weighting, gradnorm_every=gradnorm_every,
                log_alignment_every=log_alignment_every, dtype=dtype, lstsq_ridge=lstsq_ridge)


def fit_second_order(problem: ProblemData, *, method: str = "mollifier", arch: str = "mlp", optimizer: str = "adam",
                     steps: int = 500, seed: int = 0, lr: float = 1e-3, radius: float = 3.0, degree: int = 8,
                     width: int = 64, fourier_scale: float = 1.0, residual_weight: float = 1.0,
                     weighting: str = "none", gradnorm_every: int = 100, log_alignment_every: int = 0,
                     lstsq_ridge: float = 0.0, dtype=torch.float32) -> FitResult:
    """Recover ``lambda(x, y)`` from noisy ``u`` of ``0 = lambda lap(u) + m`` with known ``m``.

    Parameters
    ----------
    problem : ProblemData
        From :func:`simulate_second_order` (order 2, with its source).
    """
    if problem.order != 2 or problem.source is None:
        raise ValueError("problem must be a 2nd-order problem with its source m")

    def linear_parts(d, source):
        return d["laplacian"], source                         # lambda lap(u) + m

    # Residual scale: the size of the known source (in units of the normalised data).
    res_scale = float(np.sqrt(np.mean(problem.source**2)) / (np.std(problem.data) or 1.0))
    return _fit(problem, ("u", "laplacian"), linear_parts, res_scale, method=method, arch=arch, optimizer=optimizer,
                steps=steps, seed=seed, lr=lr, radius=radius, degree=degree, width=width,
                fourier_scale=fourier_scale, residual_weight=residual_weight, weighting=weighting,
                gradnorm_every=gradnorm_every, log_alignment_every=log_alignment_every, dtype=dtype,
                lstsq_ridge=lstsq_ridge)


fit_first_order.__doc__ = fit_first_order.__doc__.rstrip() + _DOC_COMMON
fit_second_order.__doc__ = fit_second_order.__doc__.rstrip() + _DOC_COMMON
