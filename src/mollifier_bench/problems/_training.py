"""Training on the 1st- and 2nd-order benchmark problems: a network (its derivatives by mollifier
or autodiff) fitted to the data while lambda is solved by least squares at every step. The steps
run in the package's shared loop (:func:`napari_mollifier.optim.train`, as the chromatin solver's);
the problem-specific entry points are in ``_fit``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from napari_mollifier.autodiff import coordinate_derivatives, grid_coordinates
from napari_mollifier.mollifier import mollifier_margin, mollify

from ._simulate import ProblemData

__all__ = ["ARCHS", "METHODS", "FitResult", "chebyshev_basis"]

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
    from napari_mollifier.optim import GradNormWeights, TrainingSchedule, run_training

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
    weights = GradNormWeights(2, update_every=gradnorm_every) if weighting == "gradnorm" else None
    hist = {
        "step": [],
        "loss_data": [],
        "loss_residual": [],
        "alignment_step": [],
        "alignment": [],
        "weights": [],
    }

    def loss_terms():
        l_data, l_res, _, _ = losses()
        return {"data": l_data, "residual": l_res}

    def combine(step, terms, params):
        l_data, l_res = terms["data"], terms["residual"]
        if weights is None:
            return l_data + residual_weight * l_res
        w = weights.step(step - 1, [l_data, residual_weight * l_res], params)
        hist["weights"].append(w.tolist())
        return float(w[0]) * l_data + float(w[1]) * residual_weight * l_res

    # Constant learning rate, no divergence guard: the benchmark records what each method does.
    schedule = TrainingSchedule(
        steps=steps,
        learning_rate=lr,
        final_lr_fraction=1.0,
        optimizer=optimizer,
        alignment_every=log_alignment_every,
        divergence_factor=None,
    )
    outcome = run_training(loss_terms, params, schedule, combine=combine)
    # The history counts steps from 0 (the loop's step s is entry s - 1).
    for row in outcome.history:
        hist["step"].append(row["step"] - 1)
        hist["loss_data"].append(row["data"])
        hist["loss_residual"].append(row["residual"])
    for step, score in outcome.alignment:
        hist["alignment_step"].append(step - 1)
        hist["alignment"].append(score)
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
    return FitResult(lam_hat, u_hat, inner, hist, outcome.time_per_step_s, recovery, settings)
