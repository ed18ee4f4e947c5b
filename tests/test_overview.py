"""The overview figure (plotting.py): colour scales that do not blow noise up into structure, a note
on flat maps, and labelled colour bars; read back from the matplotlib Figure."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from napari_mollifier.inverse import judge_rates
from napari_mollifier.plotting import MIN_RELATIVE_SPAN, colour_limits, flat_note, overview_plot


def _constant_rate_maps(size=48, sd=None, seed=0):
    """Maps of a nucleus with constant rates and 0.2 % noise on them (a 0.4 % spread)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    mask = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 2.5) ** 2
    noisy = lambda m: np.where(mask, m * (1 + 0.002 * rng.uniform(-1, 1, mask.shape)), np.nan)  # noqa: E731
    gme, gac = noisy(0.003), noisy(0.0015)
    phi = np.where(mask, 0.4 + 0.3 * np.sin(xx / 5.0), 0.0)
    sd_map = None if sd is None else np.where(mask, sd, np.nan)
    return SimpleNamespace(
        phi=phi,
        phi_hat=phi,
        mask=mask,
        gamma_me=gme,
        gamma_ac=gac,
        lam=gme / gac,
        gamma_me_sd=None if sd is None else sd_map * 0.003,
        gamma_ac_sd=None if sd is None else sd_map * 0.0015,
        lam_sd=None if sd is None else sd_map * 2,
        pixel_size_nm=10.0,
        source="/data/n1_phi.tif",
        status="ok",
        verdict=judge_rates(status="ok", noise_in_phi=0.01),
    )


def _panels(fig):
    """(axes title, (vmin, vmax), colour-bar label, texts) of the image panels."""
    out = {}
    for ax in fig.axes:
        if ax.images and ax.get_title():
            im = ax.images[0]
            texts = [t.get_text() for t in ax.texts]
            out[ax.get_title()] = (im.get_clim(), im.colorbar.ax.get_ylabel(), texts)
    return out


def test_constant_rates_get_a_colour_scale_of_at_least_the_minimum_span_and_a_flat_note():
    import matplotlib.pyplot as plt

    maps = _constant_rate_maps()
    fig = overview_plot(maps)
    try:
        panels = _panels(fig)
    finally:
        plt.close(fig)
    for title, arr in (("Γ_me", maps.gamma_me), ("Γ_ac", maps.gamma_ac), ("λ = Γ_me / Γ_ac", maps.lam)):
        (vmin, vmax), label, texts = panels[title]
        mean = np.nanmean(arr)
        assert (vmax - vmin) >= 2 * MIN_RELATIVE_SPAN * mean * (1 - 1e-9), title
        assert vmin <= np.nanmin(arr) and vmax >= np.nanmax(arr)
        assert any(t.startswith("flat") for t in texts), texts
    assert panels["Γ_me"][1] == "Γ_me (1/τ)"
    # The phi colour bars are labelled.
    assert panels["input φ (normalised)"][1] == "φ (heterochromatin fraction)"
    assert panels["fitted φ̂"][1] == "φ̂ fitted"
    assert panels["fitted φ̂"][2] == []  # no note on phi


def test_a_map_with_structure_keeps_its_own_range_and_no_note():
    values = np.linspace(0.002, 0.004, 100)  # ±33 % of the mean
    assert colour_limits(values) == pytest.approx((0.002, 0.004))
    assert flat_note(values) is None
    # Constant rates: centred on the map, ±10 % of the mean.
    assert colour_limits(np.full(10, 0.003)) == pytest.approx((0.0027, 0.0033))
    assert colour_limits(np.full(4, np.nan)) == (0.0, 1.0)


def test_flat_within_uncertainty_uses_the_sd_maps():
    values = 1 + 0.05 * np.linspace(-1, 1, 101)  # ±5 % spread
    assert "within its uncertainty" in flat_note(values, np.full(101, 0.04))
    assert flat_note(values, np.full(101, 0.01)) is None  # sd 1 %: the ±5 % pattern is resolved
    assert "flat: spread" in flat_note(values)  # no sd: under the ±10 % minimum span
