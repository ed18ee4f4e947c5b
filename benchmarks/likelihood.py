"""The data term's noise model: one noise level for every pixel ("gaussian") against each pixel
weighted by its photon-count variance ("poisson", read off the image's noise), on calibrated
intensity renders of simulated nuclei, through ``infer_rates``.

    PYTHONPATH=src .venv/bin/python benchmarks/likelihood.py --nuclei gradient:21 --out FILE
    PYTHONPATH=src .venv/bin/python benchmarks/likelihood.py --nuclei patches:5 --out FILE

Each nucleus (256² at 10 nm, cached in benchmarks/.cache) is rendered by ``render_intensity``
(euchromatin level 0.3, blur sigma 15 nm, Poisson counts, render seed 211) at each ``--counts`` per
heterochromatin pixel and read with its own levels. Scores on the interior 20 px inside the nucleus
edge: Pearson r and mean ratio of both maps, coverage of the ±1.64 sd intervals, the verdict.
Saved output: benchmarks/results/likelihood.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from joint_calibration import score  # the same r and mean ratios as the calibration tables
from scipy.ndimage import binary_erosion

from napari_mollifier.config import InferenceSettings
from napari_mollifier.inverse import infer_rates
from napari_mollifier.simulate import render_intensity

HERE = Path(__file__).resolve().parent


def simulated(rates: str, seed: int, n: int = 256) -> dict:
    from mollifier_bench.nuclei import cached_preset

    return cached_preset(HERE / ".cache", rates, seed, n)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nuclei", nargs="+", default=["gradient:21", "patches:5"], metavar="RATES:SEED")
    ap.add_argument("--counts", nargs="+", type=float, default=[1000.0, 200.0, 50.0])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "likelihood.md")
    args = ap.parse_args(argv)
    torch.set_flush_denormal(True)
    lines = [
        "| nucleus | counts | likelihood | r Γ_me | r Γ_ac | ratio Γ_me | ratio Γ_ac | cover Γ_me | "
        "cover Γ_ac | status | verdict | fit s |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    print("\n".join(lines), flush=True)
    for spec in args.nuclei:
        rates, seed = spec.split(":")
        sim = simulated(rates, int(seed))
        inner = binary_erosion(sim["mask"], iterations=20)
        for counts in args.counts:
            img = render_intensity(sim["phi"], sim["mask"], 10.0, photons=counts, precision_nm=15.0, seed=211)
            for likelihood in ("gaussian", "poisson"):
                t0 = time.perf_counter()
                settings = InferenceSettings(
                    device="cpu",
                    euchromatin_level=0.3 * counts,
                    heterochromatin_level=counts,
                    likelihood=likelihood,
                )
                res = infer_rates(
                    img, pixel_size_nm=10.0, mask=sim["mask"], input="intensity", settings=settings
                )
                fit = res.fit
                sel = inner & fit.analysed
                sc = score(fit, sim, sel)  # r and mean ratio of both maps
                cover = []
                for key in ("gamma_me", "gamma_ac"):
                    sd = getattr(fit, f"{key}_sd")
                    e, t = getattr(fit, key)[sel], sim[key][sel]
                    cover.append("" if sd is None else f"{np.mean(np.abs(e - t) <= 1.64 * sd[sel]):.2f}")
                used = fit.losses.get("likelihood", "gaussian")
                lines.append(
                    f"| {spec} | {counts:g} | {used} | {sc['r_me']:.3f} | {sc['r_ac']:.3f} | "
                    f"{sc['ratio_me']:.2f} | {sc['ratio_ac']:.2f} | "
                    f"{cover[0]} | {cover[1]} | {fit.status} | {res.verdict.verdict} | "
                    f"{time.perf_counter() - t0:.0f} |"
                )
                print(lines[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
