"""Does the fit pin the PSF width? Calibrated intensity renders of simulated nuclei, fitted with the
PSF width given (the true one and 25 % off) and fitted within bounds (``psf_sigma_min_nm`` /
``psf_sigma_max_nm``), through ``infer_rates`` as the CLI runs it.

    PYTHONPATH=src .venv/bin/python benchmarks/psf_width.py --nuclei gradient:21 --out FILE
    PYTHONPATH=src .venv/bin/python benchmarks/psf_width.py --nuclei patches:5 --out FILE

Each nucleus (256² at 10 nm, cached in benchmarks/.cache) is rendered by ``render_intensity``
(euchromatin level 0.3, Gaussian blur of sigma 15 nm, Poisson counts; render seed 211) at each
``--counts`` per heterochromatin pixel and read with its own levels (``euchromatin_level`` 0.3 x
counts, ``heterochromatin_level`` counts). Scores on the interior 20 px inside the nucleus edge:
Pearson r and mean estimate / mean truth of both maps; the verdict is the tool's own. Default
settings otherwise (uncertainty "laplace"). About 20 s per fit on one core; the search is 5 fits
plus one with the uncertainty. Saved output: benchmarks/results/psf_width.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import binary_erosion

from napari_mollifier.config import InferenceSettings
from napari_mollifier.inverse import infer_rates
from napari_mollifier.simulate import render_intensity

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
TRUE_SIGMA_NM = 15.0


def simulated(rates: str, seed: int, n: int = 256) -> dict:
    from mollifier_bench.nuclei import cached_preset

    return cached_preset(CACHE, rates, seed, n)


def scores(fit, sim: dict) -> list[float]:
    inner = binary_erosion(sim["mask"], iterations=20) & fit.analysed
    out = []
    for key, est in (("gamma_me", fit.gamma_me), ("gamma_ac", fit.gamma_ac)):
        e, t = est[inner], sim[key][inner]
        out += [float(np.corrcoef(e, t)[0, 1]), float(e.mean() / t.mean())]
    return out


def noise_free_rows(spec: str, true_px: float = 1.0, widths_px=(0.0, 0.5, 0.75, 1.0, 1.25)) -> list[str]:
    """Part 1, no fit: the true phi blurred by a Gaussian of ``true_px`` (cosine transform), undone
    by ``widths_px`` (exactly, noise-free), then one rate solve on it: the residual left relative
    to the reaction, and the mean rates against the truth."""
    from napari_mollifier.inverse import RateProblem
    from napari_mollifier.mollifier._dct import dctn, idctn
    from napari_mollifier.physics import ChromatinModel

    rates, seed = spec.split(":")
    sim = simulated(rates, int(seed))
    settings = InferenceSettings(device="cpu", precision="float64", uncertainty="none")
    prob = RateProblem(sim["phi"], sim["mask"], 10.0, settings, ChromatinModel(), torch.device("cpu"), 0.01)
    ny, nx = prob.phi.shape
    ky = torch.pi * torch.arange(ny, dtype=torch.float64) / ny
    kx = torch.pi * torch.arange(nx, dtype=torch.float64) / nx
    k2 = ky[:, None] ** 2 + kx[None, :] ** 2
    phi = torch.as_tensor(sim["phi"][prob.box], dtype=torch.float64)
    blurred = dctn(phi) * torch.exp(-0.5 * true_px**2 * k2)
    prob.set_regularisation(prob.derivatives(phi))
    inner = binary_erosion(sim["mask"], iterations=20)
    rows = []
    for w in widths_px:
        d = prob.derivatives(idctn(blurred * torch.exp(0.5 * w**2 * k2)))
        coef = prob.solve(d)
        maps = prob.maps(coef, d["u"])
        react = torch.as_tensor(maps["gamma_me"], dtype=torch.float64) * (1 - d["u"])
        rel = float(prob.residual(d, coef).pow(2).mean().sqrt() / react[prob.interior].pow(2).mean().sqrt())
        q = [
            float(np.nanmean(prob.to_full(maps[k])[inner]) / sim[k][inner].mean())
            for k in ("gamma_me", "gamma_ac")
        ]
        rows.append(f"| {spec} | {10 * true_px:g} | {10 * w:g} | {rel:.3f} | {q[0]:.2f} | {q[1]:.2f} |")
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nuclei", nargs="+", default=["gradient:21", "patches:5"], metavar="RATES:SEED")
    ap.add_argument("--counts", nargs="+", type=float, default=[1000.0, 200.0])
    ap.add_argument("--given", nargs="+", type=float, default=[0.75, 1.0, 1.25], metavar="FACTOR")
    ap.add_argument("--bounds", nargs=2, type=float, default=[7.5, 30.0], metavar=("LO", "HI"))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "psf_width.md")
    ap.add_argument(
        "--noise-free-only", action="store_true", help="part 1 only: blur undone exactly, no fits (seconds)"
    )
    args = ap.parse_args(argv)
    torch.set_flush_denormal(True)
    part1 = (
        "| nucleus | blur sigma (nm) | undone (nm) | residual / reaction | ratio Γ_me | ratio Γ_ac |\n"
        "|---|---:|---:|---:|---:|---:|"
    )
    part1 += "".join("\n" + row for spec in args.nuclei for row in noise_free_rows(spec))
    print(part1, flush=True)
    if args.noise_free_only:
        return
    rows, searches = [], []
    header = (
        "| nucleus | counts | PSF sigma | sigma used (nm) | pinned | loss | r Γ_me | r Γ_ac | "
        "ratio Γ_me | ratio Γ_ac | status | verdict | fit s |\n"
        "|---|---:|---|---:|---|---:|---:|---:|---:|---:|---|---|---:|"
    )
    print(header, flush=True)
    for spec in args.nuclei:
        rates, seed = spec.split(":")
        sim = simulated(rates, int(seed))
        for counts in args.counts:
            img = render_intensity(
                sim["phi"], sim["mask"], 10.0, photons=counts, precision_nm=TRUE_SIGMA_NM, seed=211
            )
            levels = dict(euchromatin_level=0.3 * counts, heterochromatin_level=counts)
            cases = [
                (f"given {f * TRUE_SIGMA_NM:g} nm", dict(psf_sigma_nm=f * TRUE_SIGMA_NM)) for f in args.given
            ]
            lo, hi = args.bounds
            cases.append((f"fitted {lo:g}-{hi:g} nm", dict(psf_sigma_min_nm=lo, psf_sigma_max_nm=hi)))
            for label, kw in cases:
                t0 = time.perf_counter()
                res = infer_rates(
                    img,
                    pixel_size_nm=10.0,
                    mask=sim["mask"],
                    input="intensity",
                    settings=InferenceSettings(device="cpu", **levels, **kw),
                )
                fit = res.fit
                r_me, q_me, r_ac, q_ac = scores(fit, sim)
                used = fit.settings["psf_sigma_nm"]
                pinned = fit.losses.get("psf_sigma_pinned")
                pinned = "" if pinned is None else ("yes" if pinned else "no")
                row = (
                    f"| {spec} | {counts:g} | {label} | {used:.2f} | {pinned} | {fit.losses['total']:.3f} | "
                    f"{r_me:.3f} | {r_ac:.3f} | {q_me:.2f} | {q_ac:.2f} | {fit.status} | "
                    f"{res.verdict.verdict} | {time.perf_counter() - t0:.0f} |"
                )
                rows.append(row)
                print(row, flush=True)
                if "psf_search" in fit.losses:
                    steps = [f"{x['psf_sigma_nm']:.2f} nm {x['total']:.3f}" for x in fit.losses["psf_search"]]
                    searches.append(f"- {spec}, {counts:g} counts: " + ", ".join(steps))
                    print(searches[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = "Part 1, noise-free (no fit):\n\n" + part1 + "\n\nPart 2, fits:\n\n"
    text += header + "\n" + "\n".join(rows) + "\n"
    if searches:
        text += "\nThe searches (PSF sigma and total loss of each fit):\n\n" + "\n".join(searches) + "\n"
    args.out.write_text(text)


if __name__ == "__main__":
    main()
