"""Benchmark fits of the paper's three problems (docs/method.md, "Benchmark problems").

``langevin`` (1st order, ``u_t = u + lambda(t)``), ``heat`` (2nd order, ``0 = lambda lap u + m``)
and ``chromatin`` (4th order, the "chr" model): simulate data with known parameters, fit with one
architecture, derivative method and optimiser, and score the recovery. One configuration is one
fit; the runner puts each in a fresh process so that its peak memory is its own.
"""

from __future__ import annotations

import numpy as np

#: Residual order of each fitted problem.
FIT_PROBLEMS = {"langevin": 1, "heat": 2, "chromatin": 4}
#: Grid (samples per side) and training steps of the full and the quick benchmark.
FIT_DEFAULTS = {
    "langevin": {"grid": 128, "steps": 1000, "quick_steps": 300},
    "heat": {"grid": 32, "steps": 600, "quick_steps": 200},
    "chromatin": {"grid": 128, "steps": 1200, "quick_steps": 300},
}
#: Architectures each problem can be fitted with, per derivative method. The convolutional net
#: and the chromatin solver's free grid field map to a grid: there is no coordinate to
#: differentiate, so no autodiff variant.
FIT_ARCHS = {
    "langevin": {"mollifier": ("mlp", "piratenet"), "autodiff": ("mlp", "piratenet")},
    "heat": {"mollifier": ("mlp", "piratenet", "convnet"), "autodiff": ("mlp", "piratenet")},
    "chromatin": {"mollifier": ("grid", "mlp", "piratenet", "convnet"), "autodiff": ("mlp", "piratenet")},
}


def steps_to_loss(steps, loss, target: float):
    """Steps taken until ``loss`` first falls to ``target`` or below (None if it never does)."""
    for s, v in zip(steps, loss):
        if v <= target:
            return int(s) + 1
    return None


def chromatin_recovery(gamma_me: np.ndarray, gamma_ac: np.ndarray, sim, analysed: np.ndarray):
    """Pearson r and rel. error of both rate maps against the simulation's truth, on the analysed
    part of the nucleus eroded by 20 px: ([r_me, r_ac], [rel_me, rel_ac])."""
    from scipy.ndimage import binary_erosion

    inner = binary_erosion(sim.mask, iterations=20) & analysed
    rs, rels = [], []
    for est, true in ((gamma_me, sim.gamma_me), (gamma_ac, sim.gamma_ac)):
        e, t = est[inner], true[inner]
        rs.append(float(np.corrcoef(e, t)[0, 1]))
        rels.append(float(np.linalg.norm(e - t) / np.linalg.norm(t)))
    return rs, rels


def prepare(config: dict):
    """Simulated data of a fit configuration (the set-up, outside the measured fit)."""
    problem, grid = config["problem"], int(config["grid"])
    noise, seed = float(config.get("noise", 0.0)), int(config.get("data_seed", 7))
    if problem == "langevin":
        from .problems import simulate_first_order

        return simulate_first_order(grid, noise=noise, seed=seed)
    if problem == "heat":
        from .problems import simulate_second_order

        return simulate_second_order(grid, noise=noise, seed=seed)
    if problem == "chromatin":
        from napari_mollifier.simulate import simulate_nucleus

        sim = simulate_nucleus(grid, rates="gradient", seed=seed)
        rng = np.random.default_rng(seed + 1000)
        # Noise as a fraction of std(phi) in the nucleus, as for the other problems (about 0.3
        # here: 5 % is 0.015 absolute).
        sd = float(np.std(sim.phi[sim.mask]))
        return sim, sim.phi + noise * sd * rng.standard_normal(sim.phi.shape)
    raise ValueError(f"unknown fit problem {problem!r}; choose from {sorted(FIT_PROBLEMS)}")


def run_fit(config: dict, data, device) -> dict:
    """Fit one configuration on prepared data; return the record's figures.

    Returns ``time_per_step_s``, ``recovery_r``, ``recovery_rel_error``, ``final_loss``,
    ``final_data_loss``, ``wall_time_s`` and ``curves`` (the training loss, its data and residual
    terms and the alignment score against the step, thinned); the report compares steps to a
    common loss across runs from the curves.
    """
    import time

    problem = config["problem"]
    steps = int(config["steps"])
    every = int(config.get("alignment_every", 10))
    t0 = time.perf_counter()
    if problem in ("langevin", "heat"):
        from .problems import fit_first_order, fit_second_order

        fit_fn = fit_first_order if problem == "langevin" else fit_second_order
        kw = {k: config[k] for k in ("radius", "lr", "width") if config.get(k) is not None}
        res = fit_fn(
            data,
            method=config["method"],
            arch=config["arch"],
            optimizer=config["optimizer"],
            steps=steps,
            seed=int(config.get("seed", 0)),
            log_alignment_every=every,
            **kw,
        )
        h = res.history
        out = dict(
            time_per_step_s=res.time_per_step_s,
            recovery_r=res.recovery.get("r"),
            recovery_rel_error=res.recovery.get("rel_error"),
            final_data_loss=h["loss_data"][-1],
            final_residual_loss=h["loss_residual"][-1],
        )
        curves = dict(
            step=h["step"],
            loss_data=h["loss_data"],
            loss_residual=h["loss_residual"],
            alignment_step=h["alignment_step"],
            alignment=h["alignment"],
        )
    else:
        from napari_mollifier.config import InferenceSettings
        from napari_mollifier.inverse import fit_rates

        sim, phi = data
        settings = InferenceSettings(
            arch=config["arch"],
            optimizer=config["optimizer"],
            steps=steps,
            derivatives=config.get("method", "mollifier"),
            device=str(device),
            report_every=5,
            alignment_every=every,
            seed=int(config.get("seed", 0)),
        )
        *_, fit = fit_rates(phi, sim.mask, sim.pixel_size_nm, settings)
        rs, rels = chromatin_recovery(fit.gamma_me, fit.gamma_ac, sim, fit.analysed)
        # The solver's data term is the mean squared misfit over s_d^2 (s_d: the noise scale).
        s_d = fit.losses["s_d"]
        hist = fit.history
        misfit = [r["data"] for r in hist]
        # Both maps must be recovered: the record carries the worse of the two.
        out = dict(
            time_per_step_s=fit.time_per_step_s,
            recovery_r=min(rs),
            recovery_rel_error=max(rels),
            recovery_r_me=rs[0],
            recovery_r_ac=rs[1],
            recovery_rel_error_me=rels[0],
            recovery_rel_error_ac=rels[1],
            final_data_loss=misfit[-1] * s_d**2,
            final_residual_loss=hist[-1]["residual"],
            diverged=fit.diverged,
        )
        curves = dict(
            step=[r["step"] - 1 for r in hist],
            loss_data=[m * s_d**2 for m in misfit],
            loss_residual=[r["residual"] for r in hist],
            alignment_step=[a[0] - 1 for a in fit.alignment],
            alignment=[a[1] for a in fit.alignment],
        )
    curves["loss"] = (
        [a + b for a, b in zip(curves["loss_data"], curves["loss_residual"])]
        if problem != "chromatin"
        else [r["total"] for r in fit.history]
    )
    out["final_loss"] = curves["loss"][-1]
    out["wall_time_s"] = time.perf_counter() - t0
    out["curves"] = _thin(curves)
    return out


def _thin(curves: dict, n: int = 200) -> dict:
    """At most ``n`` points per loss curve (the alignment curve is already sparse)."""
    k = max(1, len(curves["step"]) // n)
    out = {
        key: [float(v) for v in curves[key][::k]] for key in ("step", "loss", "loss_data", "loss_residual")
    }
    out["alignment_step"] = [int(s) for s in curves["alignment_step"]]
    out["alignment"] = [float(a) for a in curves["alignment"]]
    return out


def fit_configs(
    problems,
    *,
    archs=None,
    methods=("mollifier", "autodiff"),
    optimizers=("adam", "soap"),
    noises=(0.0, 0.01, 0.05),
    quick: bool = False,
    steps: int | None = None,
    grid: int | None = None,
) -> list[dict]:
    """Configurations of the fit benchmark: problem x architecture x method x optimiser x noise.

    Combinations a problem cannot run (see :data:`FIT_ARCHS`) are left out. ``quick`` uses the
    quick step counts.
    """
    configs = []
    for problem in problems:
        if problem not in FIT_PROBLEMS:
            raise ValueError(f"unknown fit problem {problem!r}; choose from {sorted(FIT_PROBLEMS)}")
        d = FIT_DEFAULTS[problem]
        n_steps = steps or (d["quick_steps"] if quick else d["steps"])
        for method in methods:
            for arch in FIT_ARCHS[problem][method]:
                if archs and arch not in archs:
                    continue
                for optimizer in optimizers:
                    if arch == "grid" and optimizer == "soap":
                        continue  # the chromatin solver trains a free field with Adam whatever is asked
                    for noise in noises:
                        configs.append(
                            dict(
                                problem=problem,
                                kind="fit",
                                order=FIT_PROBLEMS[problem],
                                arch=arch,
                                method=method,
                                optimizer=optimizer,
                                noise=float(noise),
                                grid=grid or d["grid"],
                                steps=n_steps,
                            )
                        )
    return configs
