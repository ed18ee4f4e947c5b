"""Figures: the PNG overview of one inference (matplotlib, headless)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["overview_figure"]


def overview_figure(maps, path: str | os.PathLike, image: np.ndarray | None = None) -> Path:
    """Image (the normalised phi), phi_hat, Gamma_me, Gamma_ac and lambda with colour bars and units."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .io import atomic_write_bytes

    px = maps.pixel_size_nm
    h, w = maps.phi.shape
    extent = (0, w * px / 1000, h * px / 1000, 0)  # µm
    panels = [
        ("input φ (normalised)", maps.phi if image is None else image, "gray", ""),
        ("fitted φ̂", np.where(maps.mask, maps.phi_hat, np.nan), "magma", ""),
        ("Γ_me", maps.gamma_me, "viridis", "1/τ"),
        ("Γ_ac", maps.gamma_ac, "viridis", "1/τ"),
        ("λ = Γ_me / Γ_ac", maps.lam, "coolwarm", ""),
    ]
    fig, axes = plt.subplots(1, 5, figsize=(19, 4.2), constrained_layout=True)
    for ax, (title, arr, cmap, unit) in zip(axes, panels):
        im = ax.imshow(arr, cmap=cmap, extent=extent)
        ax.set_title(title)
        ax.set_xlabel("x (µm)")
        cb = fig.colorbar(im, ax=ax, shrink=0.85)
        if unit:
            cb.set_label(unit)
    axes[0].set_ylabel("y (µm)")
    title, trusted = overview_title(maps)
    fig.suptitle(title, fontsize=10, color="black" if trusted else "darkred")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def overview_title(maps) -> tuple[str, bool]:
    """The overview's title and whether it reads as a trusted result (status ok, rates determined).

    A figure travels without its S.json: it must not pass for a result on its own, so a fit that
    is not ok says so, and an ok one says its verdict."""
    import textwrap

    title = f"{Path(maps.source).name}: rates in 1/τ, τ = ℓ0²/(M A), ℓ0 = 10 nm (ratios to the mobility M)"
    status = getattr(maps, "status", "ok")
    verdict = getattr(maps, "verdict", None)
    if status != "ok":
        title = f"{title}\n{status.upper()}, for inspection only: {textwrap.shorten(maps.status_reason, 150)}"
    elif verdict is not None:
        title = f"{title}\nrates {verdict.verdict}: {textwrap.shorten(verdict.reason, 150)}"
    return title, status == "ok" and (verdict is None or verdict.verdict == "determined")
