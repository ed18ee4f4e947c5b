"""Fitting the 1st- and 2nd-order benchmark problems with mollifier or autodiff derivatives."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from napari_mollifier.autodiff import coordinate_derivatives, grid_coordinates
from napari_mollifier.mollifier import mollifier_margin, mollify

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
        (the same region for mollifier and autodiff, whatever their loss regions, so their
        figures compare).
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
    from napari_mollifier.nets import ConvNet, CoordinateMLP, PirateNet

    if arch == "convnet":
        torch.manual_seed(seed)
        return ConvNet(2, 1, width=width // 2, depth=4)

    if arch == "mlp":
        return CoordinateMLP(
            nd, 1, width=width, depth=3, fourier_features=width // 2, fourier_scale=fourier_scale, seed=seed
        )
    if arch == "piratenet":
        return PirateNet(nd, 1, width=width, n_blocks=2, fourier_scale=fourier_scale, seed=seed)
    raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")


def _fit(
    problem: ProblemData,
    names: tuple[str, ...],
    linear_parts,
    residual_scale: float,
    *,
    method: str,
    arch: str,
    optimizer: str,
    steps: int,
    seed: int,
    lr: float,
    radius: float,
    degree: int,
    width: int,
    fourier_scale: float,
    residual_weight: float,
    weighting: str,
    gradnorm_every: int,
    log_alignment_every: int,
    dtype,
    lstsq_ridge: float = 0.0,
    data_on: str = "u",
    boundary: str = "network",
) -> FitResult:
    from napari_mollifier.optim import GradNormWeights, alignment_score, loss_term_gradients, make_optimizer

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if arch == "convnet" and (method != "mollifier" or len(problem.shape) != 2):
        raise ValueError(
            "arch 'convnet' maps a 2-D grid to a grid: it needs method='mollifier' and a 2-D "
            "problem (autodiff differentiates a coordinate network; use mlp or piratenet)"
        )
    if weighting not in ("none", "gradnorm"):
        raise ValueError(f"weighting must be 'none' or 'gradnorm', got {weighting!r}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if data_on not in ("u", "g"):
        raise ValueError(f"data_on must be 'u' or 'g', got {data_on!r}")
    if boundary not in ("network", "reflect"):
        raise ValueError(f"boundary must be 'network' or 'reflect', got {boundary!r}")
    torch.manual_seed(seed)
    shape, nd = problem.shape, len(problem.shape)
    spacing = tuple(float(h) for h in problem.spacing)
    extent = torch.tensor([(n - 1) * h for n, h in zip(shape, spacing)], dtype=dtype)
    coords = grid_coordinates(shape, spacing, dtype=dtype)  # physical units
    # The fit works on (data - offset) / scale: zero mean, unit variance, so that no network
    # spends its first thousand steps moving its output bias (the heat data sit at ~2 std).
    # u enters the 1st-order residual undifferentiated; the offset goes into lambda's constant.
    offset = float(np.mean(problem.data))
    scale = float(np.std(problem.data)) or 1.0
    target = torch.as_tensor((problem.data.reshape(-1) - offset) / scale, dtype=dtype)
    source = (
        None if problem.source is None else torch.as_tensor(problem.source.reshape(-1) / scale, dtype=dtype)
    )
    net = _make_net(arch, nd, width, fourier_scale, seed).to(dtype)
    grid_in = None
    if arch == "convnet":
        from napari_mollifier.nets import grid_input

        grid_in = grid_input(shape, "coords", dtype=dtype)
    basis64 = chebyshev_basis(shape, degree)
    basis = basis64.to(dtype)
    # Edge band whose mollifier outputs would see padding: left out of the scoring of both
    # methods, and of the mollifier's losses when g is mirrored there.
    margin = mollifier_margin(radius, names, ndim=nd)
    inner = np.zeros(shape, dtype=bool)
    inner[tuple(slice(margin, n - margin) for n in shape)] = True
    if not inner.any():
        raise ValueError(f"grid {shape} is too small for the mollifier margin of {margin} points")
    inner_t = torch.as_tensor(inner.reshape(-1))
    # A coordinate network is defined beyond the grid: evaluated on the grid extended by the
    # margin, its mollified output needs no padding and every data point enters the losses.
    # The convolutional net maps the grid to the grid, so it keeps the reflected edge and the
    # losses leave the edge band out.
    extend = method == "mollifier" and arch != "convnet" and boundary == "network"
    loss_region = inner_t if (method == "mollifier" and not extend) else torch.ones_like(inner_t)
    if extend:
        ext_shape = tuple(n + 2 * margin for n in shape)
        ext_coords = grid_coordinates(ext_shape, spacing, dtype=dtype) - margin * torch.tensor(
            spacing, dtype=dtype
        )
        crop = (slice(None), slice(None)) + tuple(slice(margin, margin + n) for n in shape)
    if arch == "piratenet":
        from napari_mollifier.nets import init_last_layer_lstsq

        if extend and data_on == "u":
            # The data term compares the mollified output: fit the last layer to the data through
            # the mollifier (the output is linear in it), on the extended grid. Fitting g on the
            # grid alone left g beyond the edges unfitted and the edge points' u off at the start
            # (noise-free 1st order, 300 steps: rel. error 2.7e-2 that way, 1.2e-2 this way).
            def through_mollifier(feats):
                f = feats.T.reshape(feats.shape[1], 1, *ext_shape)
                return (
                    mollify(f, radius, ("u",), spacing=spacing, boundary="zeros")["u"][crop]
                    .reshape(feats.shape[1], -1)
                    .T
                )

            init_last_layer_lstsq(
                net, ext_coords / extent, target, ridge=lstsq_ridge, feature_map=through_mollifier
            )
        else:
            init_last_layer_lstsq(net, coords / extent, target, ridge=lstsq_ridge)

    def derivatives():
        if method == "mollifier":
            if extend:  # beyond the edges the kernel sees the network itself: no padding reaches the grid
                g, edge, keep = net(ext_coords / extent).reshape(1, 1, *ext_shape), "zeros", crop
            else:
                g = (net(grid_in) if grid_in is not None else net(coords / extent)).reshape(1, 1, *shape)
                edge, keep = "reflect", (...,)
            d = {
                k: v[keep].reshape(-1)
                for k, v in mollify(g, radius, names, spacing=spacing, boundary=edge).items()
            }
            d["g"] = g[keep].reshape(-1)
            return d
        d = coordinate_derivatives(lambda c: net(c / extent), coords, names)
        return d

    def losses():
        d = derivatives()
        a, b = linear_parts(d, source)  # residual = a * lambda + b, linear in lambda
        a_r, b_r = a[loss_region], b[loss_region]
        # Variable projection: lambda = basis @ c solved exactly (least squares) for the current
        # fields; detached, so the gradient is that of the minimised residual (envelope theorem).
        # float64 and an SVD-based driver: float32 gelsy gave run-to-run different solutions.
        design = a_r.detach().double()[:, None] * basis64[loss_region]
        coef = torch.linalg.lstsq(design, -b_r.detach().double()[:, None], driver="gelsd").solution[:, 0]
        lam = basis @ coef.to(dtype)
        res = a_r * lam[loss_region] + b_r
        if method == "mollifier" and data_on == "g":
            l_data = ((d["g"] - target) ** 2).mean()  # g sees no padding: every point
        else:
            l_data = ((d["u"] - target)[loss_region] ** 2).mean()
        l_res = (res**2).mean() / residual_scale**2
        return l_data, l_res, lam, d["u"]

    params = [p for p in net.parameters() if p.requires_grad]
    opt = make_optimizer(optimizer, params, lr=lr)
    weights = GradNormWeights(2, update_every=gradnorm_every) if weighting == "gradnorm" else None
    hist = {
        "step": [],
        "loss_data": [],
        "loss_residual": [],
        "alignment_step": [],
        "alignment": [],
        "weights": [],
    }
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
    # 1st order: u_t - u - lambda on u = scale * u_n + offset gives lambda = scale * lambda_n - offset.
    lam_hat = (
        lam.detach().numpy().reshape(shape) * scale - offset
        if problem.order == 1
        else lam.detach().numpy().reshape(shape)
    )
    u_hat = u.detach().numpy().reshape(shape) * scale + offset
    recovery = {}
    if "lambda" in problem.truth:
        t, e = problem.truth["lambda"][inner], lam_hat[inner]
        recovery = {
            "rel_error": float(np.linalg.norm(e - t) / np.linalg.norm(t)),
            "r": float(np.corrcoef(e, t)[0, 1]) if np.std(t) > 0 and np.std(e) > 0 else float("nan"),
        }
    settings = dict(
        method=method,
        arch=arch,
        optimizer=optimizer,
        steps=steps,
        seed=seed,
        lr=lr,
        radius=radius,
        degree=degree,
        width=width,
        fourier_scale=fourier_scale,
        residual_weight=residual_weight,
        weighting=weighting,
        margin=margin,
        data_on=data_on,
        boundary="network" if extend else ("reflect" if method == "mollifier" else "none"),
    )
    return FitResult(lam_hat, u_hat, inner, hist, train_time / steps, recovery, settings)


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
    return _fit(
        problem,
        ("u", "dx"),
        linear_parts,
        res_scale,
        method=method,
        arch=arch,
        optimizer=optimizer,
        steps=steps,
        seed=seed,
        lr=lr,
        radius=radius,
        degree=degree,
        width=width,
        fourier_scale=fourier_scale,
        residual_weight=residual_weight,
        weighting=weighting,
        gradnorm_every=gradnorm_every,
        log_alignment_every=log_alignment_every,
        dtype=dtype,
        lstsq_ridge=lstsq_ridge,
        data_on=data_on,
        boundary=boundary,
    )


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
    if problem.order != 2 or problem.source is None:
        raise ValueError("problem must be a 2nd-order problem with its source m")

    def linear_parts(d, source):
        return d["laplacian"], source  # lambda lap(u) + m

    # Residual scale: the size of the known source (in units of the normalised data).
    res_scale = float(np.sqrt(np.mean(problem.source**2)) / (np.std(problem.data) or 1.0))
    return _fit(
        problem,
        ("u", "laplacian"),
        linear_parts,
        res_scale,
        method=method,
        arch=arch,
        optimizer=optimizer,
        steps=steps,
        seed=seed,
        lr=lr,
        radius=radius,
        degree=degree,
        width=width,
        fourier_scale=fourier_scale,
        residual_weight=residual_weight,
        weighting=weighting,
        gradnorm_every=gradnorm_every,
        log_alignment_every=log_alignment_every,
        dtype=dtype,
        lstsq_ridge=lstsq_ridge,
        data_on=data_on,
        boundary=boundary,
    )


fit_first_order.__doc__ = fit_first_order.__doc__.rstrip() + _DOC_COMMON
fit_second_order.__doc__ = fit_second_order.__doc__.rstrip() + _DOC_COMMON
