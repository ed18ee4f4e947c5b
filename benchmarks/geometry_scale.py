"""Does the domain geometry of an uncalibrated image fix the magnitude of the rates?

    PYTHONPATH=src .venv/bin/python benchmarks/geometry_scale.py [--magnitudes 0.5 0.71 1 1.41 2]
        [--fractions 0.25 0.333 0.45] [--seeds 1 2]

Uniform-rate steady states (256^2 at 10 nm, default model) at several rate magnitudes (Gamma_me +
Gamma_ac as a multiple of the default 0.006 /tau) and fractions Gamma_me / (Gamma_me + Gamma_ac),
cached in --cache; all magnitudes at the default fraction 1/3, the outer fractions at 0.5x, 1x, 2x.
Each is measured on its phi and on two uncalibrated renders (Poisson counts of 1000 and 200 per
heterochromatin pixel, 15 nm blur, gain 2.7, offset 100): features that no gain or offset changes,
on the interior 20 px inside the nucleus edge, after a 1.5 px Gaussian smoothing:

- area fraction: pixels above the mid-point of the two Otsu classes' medians;
- spacing d: the peak of the radially averaged power spectrum (centroid over +-3 bins);
- L: area per interface length (crossings of that threshold between neighbouring pixels, x pi/4).

log(Gamma) is then regressed on them (several designs), and each nucleus predicted by a fit to the
others (leave one out): the rms and largest error in log(Gamma) say how well geometry alone pins the
magnitude (0.22 in log = 25 %).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "geometry_scale.md"
DESIGNS = {
    "d": ("d",),
    "d, af": ("d", "af"),
    "d, af, af²": ("d", "af", "af2"),
    "d, L, af, af²": ("d", "L", "af", "af2"),
}


def nucleus(cache: Path, magnitude: float, fraction: float, seed: int) -> dict:
    """The uniform-rate steady state (simulated and cached on first use)."""
    from mollifier_bench.nuclei import cached_nucleus
    from napari_mollifier.simulate._nucleus import GAMMA_AC, GAMMA_ME

    total = (GAMMA_ME + GAMMA_AC) * magnitude
    path = cache / f"uniform_m{magnitude:g}_f{fraction:g}_s{seed}.npz"
    return cached_nucleus(path, 256, (fraction * total, (1 - fraction) * total), seed)


def features(image: np.ndarray, mask: np.ndarray) -> dict:
    """Area fraction, spectral spacing d (px) and area per interface length L (px) of an image."""
    from scipy.ndimage import binary_erosion, gaussian_filter
    from skimage.filters import threshold_otsu

    inner = binary_erosion(mask, iterations=20)
    g = gaussian_filter(image.astype(np.float64), 1.5)
    v = g[inner]
    split = threshold_otsu(v)
    level = 0.5 * (np.median(v[v <= split]) + np.median(v[v > split]))
    domain = g > level
    pairs_x, pairs_y = inner[:, 1:] & inner[:, :-1], inner[1:] & inner[:-1]
    crossings = (
        np.sum((domain[:, 1:] != domain[:, :-1]) & pairs_x) / pairs_x.sum()
        + np.sum((domain[1:] != domain[:-1]) & pairs_y) / pairs_y.sum()
    )
    n = 512
    spectrum = np.abs(np.fft.rfft2(np.where(inner, g - v.mean(), 0.0), s=(n, n))) ** 2
    k = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.rfftfreq(n)[None, :])
    bins = np.rint(k * n).astype(int).ravel()
    radial = np.bincount(bins, spectrum.ravel()) / np.maximum(np.bincount(bins), 1)
    freq = np.arange(radial.size) / n
    band = (freq > 1 / 100) & (freq < 0.25)
    i = int(np.argmax(radial * band))
    w = slice(max(i - 3, 0), i + 4)
    peak = np.sum(freq[w] * radial[w]) / np.sum(radial[w])
    return {"af": float(domain[inner].mean()), "d": float(1 / peak), "L": float(1 / (np.pi / 4 * crossings))}


def leave_one_out(rows: list, source: str, design: tuple) -> np.ndarray:
    """Errors in log(Gamma) of each nucleus predicted by the regression on the others."""
    y = np.log([r["gamma"] for r in rows])
    cols = {
        "d": np.log([r[source]["d"] for r in rows]),
        "L": np.log([r[source]["L"] for r in rows]),
        "af": np.array([r[source]["af"] for r in rows]),
    }
    cols["af2"] = cols["af"] ** 2
    x = np.column_stack([np.ones(len(rows))] + [cols[c] for c in design])
    err = np.empty(len(rows))
    for i in range(len(rows)):
        keep = np.arange(len(rows)) != i
        coef, *_ = np.linalg.lstsq(x[keep], y[keep], rcond=None)
        err[i] = x[i] @ coef - y[i]
    return err


def main(argv=None) -> None:
    import sys

    import torch

    from napari_mollifier.simulate import render_intensity

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--magnitudes", nargs="+", type=float, default=[0.5, 0.71, 1.0, 1.41, 2.0])
    ap.add_argument("--fractions", nargs="+", type=float, default=[0.25, 0.333, 0.45])
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--cache", type=Path, default=HERE / ".cache" / "geometry_scale")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    torch.set_flush_denormal(True)
    from scipy.ndimage import binary_erosion

    cases = [(m, 0.333) for m in a.magnitudes] + [
        (m, f) for f in a.fractions if f != 0.333 for m in a.magnitudes if m in (0.5, 1.0, 2.0)
    ]
    rows = []
    for magnitude, fraction in cases:
        for seed in a.seeds:
            sim = nucleus(a.cache, magnitude, fraction, seed)
            inner = binary_erosion(sim["mask"], iterations=20)
            row = {
                "magnitude": magnitude,
                "fraction": fraction,
                "seed": seed,
                "gamma": float((sim["gamma_me"] + sim["gamma_ac"])[inner].mean()),
                "phi": features(sim["phi"], sim["mask"]),
            }
            for counts in (1000.0, 200.0):
                counts_img = render_intensity(
                    sim["phi"], sim["mask"], 10.0, photons=counts, precision_nm=15.0, seed=7 + seed
                )
                row[f"{counts:g}"] = features(2.7 * counts_img + 100.0, sim["mask"])
            rows.append(row)
            print(magnitude, fraction, seed, row["phi"], flush=True)
    args = " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        "# Does the domain geometry of an uncalibrated image fix the rates' magnitude?",
        "",
        f"`PYTHONPATH=src .venv/bin/python benchmarks/geometry_scale.py{' ' + args if args else ''}` "
        f"({time.strftime('%Y-%m-%d')})",
        "",
        "Uniform-rate steady states, 256² at 10 nm (magnitude = Γ_me + Γ_ac over the default 0.006 /τ; "
        "fraction = Γ_me / (Γ_me + Γ_ac)); features on φ and on uncalibrated renders (1000 and 200 counts "
        "per heterochromatin pixel, 15 nm blur, gain 2.7, offset 100), after a 1.5 px smoothing, on the "
        "interior 20 px inside the edge: af = area fraction above the mid-level, d = spectral spacing "
        "(px), L = area per interface length (px). See the script's docstring.",
        "",
        "| magnitude | fraction | seed | af (φ / 1000 / 200) | d px (φ / 1000 / 200) "
        "| L px (φ / 1000 / 200) |",
        "|---:|---:|---:|---|---|---|",
    ]
    for r in rows:
        cells = []
        for key, fmt in (("af", ".3f"), ("d", ".1f"), ("L", ".1f")):
            cells.append(" / ".join(format(r[s][key], fmt) for s in ("phi", "1000", "200")))
        lines.append(f"| {r['magnitude']:g} | {r['fraction']:g} | {r['seed']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Leave-one-out prediction of log(Γ) over the {len(rows)} nuclei (0.22 in log = 25 %):",
        "",
        "| regression of log Γ on (log d, log L) | source | rms error in log Γ | largest "
        "| nuclei within 25 % |",
        "|---|---|---:|---:|---:|",
    ]
    for name, design in DESIGNS.items():
        for source in ("phi", "1000", "200"):
            err = leave_one_out(rows, source, design)
            lines.append(
                f"| {name} | {'φ' if source == 'phi' else source + ' counts'} | "
                f"{np.sqrt(np.mean(err**2)):.2f} | {np.abs(err).max():.2f} | "
                f"{int(np.sum(np.abs(err) <= np.log(1.25)))} / {len(err)} |"
            )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines) + "\n")
    print(a.out)


if __name__ == "__main__":
    main()
