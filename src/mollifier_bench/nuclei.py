"""Simulated nuclei for the benchmark scripts, cached as .npz (a 256² steady state takes seconds
to minutes, a 2048² one hours)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["cached_nucleus", "cached_preset"]


def cached_nucleus(path: str | Path, n: int, rates: str | tuple, seed: int) -> dict:
    """The simulated nucleus of side ``n`` stored at ``path`` (``phi``, ``gamma_me``, ``gamma_ac``,
    ``mask``, ``residual_ratio``), simulated and saved (atomically) on first use. ``rates``: a rate
    preset's name or (Gamma_me, Gamma_ac), as :func:`~napari_mollifier.simulate.simulate_nucleus`
    takes them."""
    path = Path(path)
    if not path.exists():
        from napari_mollifier.simulate import simulate_nucleus

        s = simulate_nucleus(n, rates=rates, seed=seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(
            tmp,
            phi=s.phi,
            gamma_me=s.gamma_me,
            gamma_ac=s.gamma_ac,
            mask=s.mask,
            residual_ratio=s.residual_ratio,
        )
        tmp.replace(path)
    return dict(np.load(path))


def cached_preset(cache_dir: str | Path, rates: str, seed: int, n: int = 256) -> dict:
    """The simulated nucleus of the rate preset ``rates`` (seed, side ``n``) in ``cache_dir``, under
    the one file name the benchmarks share (``nucleus_{rates}_{n}_seed{seed}.npz``), so that each
    scores the same nuclei and simulates each only once."""
    return cached_nucleus(Path(cache_dir) / f"nucleus_{rates}_{n}_seed{seed}.npz", n, rates, seed)
