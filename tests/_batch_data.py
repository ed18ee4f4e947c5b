"""Small simulated nuclei on disk for the batch and reliability tests (shared by their modules)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from napari_mollifier.config import InferenceSettings
from napari_mollifier.io import write_tiff

#: Few steps on a small grid: each fit takes well under a second on one CPU thread.
FAST = InferenceSettings(steps=30, device="cpu", report_every=10)


@lru_cache(maxsize=2)
def nucleus(size: int = 64, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """phi and mask of one simulated steady-state nucleus (circle), computed once per session."""
    from napari_mollifier.simulate import simulate_nucleus

    sim = simulate_nucleus(size, mask="circle", seed=seed)
    return sim.phi.astype(np.float32), sim.mask.astype(np.uint8)


def variant(k: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The k-th distinct image: a rotation/flip of the nucleus (8 of them), then a small added ripple,
    so that every file has its own bytes and maps."""
    phi, mask = nucleus(size)
    phi, mask = np.rot90(phi, k % 4), np.rot90(mask, k % 4)
    if (k // 4) % 2:
        phi, mask = phi.T, mask.T
    ripple = 0.002 * (k // 8) * np.sin(np.arange(phi.shape[1]) / 3.0)[None, :]
    return np.ascontiguousarray(phi + ripple, dtype=np.float32), np.ascontiguousarray(mask)


def write_nuclei(folder: Path, n: int, size: int = 64, prefix: str = "n") -> list[Path]:
    """``n`` files ``{prefix}{k:02d}_phi.tif`` with their ``{prefix}{k:02d}_mask.tif`` (10 nm pixels)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        phi, mask = variant(k, size)
        paths.append(write_tiff(folder / f"{prefix}{k:02d}_phi.tif", phi, 10.0))
        write_tiff(folder / f"{prefix}{k:02d}_mask.tif", mask, 10.0)
    return paths


def write_corrupt(folder: Path, size: int = 64) -> dict[str, Path]:
    """The three corrupt inputs of the acceptance demo (each with a valid mask beside it, so that
    only the image itself is at fault): a truncated TIFF, an RGB image and an image with NaN."""
    import tifffile

    phi, mask = variant(0, size)
    out = {}
    p = folder / "bad_truncated_phi.tif"
    write_tiff(p, phi, 10.0)
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    out["truncated"] = p
    p = folder / "bad_rgb_phi.tif"
    tifffile.imwrite(p, (np.stack([phi] * 3, axis=-1) * 255).astype(np.uint8), photometric="rgb")
    out["rgb"] = p
    p = folder / "bad_nan_phi.tif"
    a = phi.copy()
    a[size // 2, size // 2] = np.nan
    write_tiff(p, a, 10.0)
    out["nan"] = p
    for name in ("truncated", "rgb", "nan"):
        write_tiff(folder / f"bad_{name}_mask.tif", mask, 10.0)
    return out


def nan_residual_at_step(monkeypatch, step: int) -> None:
    """Make the fit's physics term NaN at training step ``step`` (a broken step). Training calls
    run with autograd on; the direct read-out's call, which scores the starting maps, runs without."""
    import torch

    from napari_mollifier.inverse import RateProblem

    real = RateProblem.residual_energy
    calls = {"n": 0}

    def patched(self, d, coef):
        e = real(self, d, coef)
        if not torch.is_grad_enabled():
            return e
        calls["n"] += 1
        return e * float("nan") if calls["n"] == step else e

    monkeypatch.setattr(RateProblem, "residual_energy", patched)
