"""Simulated nuclei for the benchmark scripts, cached as .npz (a 256² steady state takes seconds
to minutes, a 2048² one hours)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["cached_nucleus"]


def cached_nucleus(path: str | Path, n: int, rates: str, seed: int) -> dict:
    """The simulated nucleus of side ``n`` stored at ``path`` (``phi``, ``gamma_me``, ``gamma_ac``,
    ``mask``, ``residual_ratio``), simulated and saved (atomically) on first use."""
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
