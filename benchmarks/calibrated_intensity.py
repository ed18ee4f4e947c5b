"""Intensity input with and without calibrated levels, through ``infer_rates``.

    .venv/bin/python benchmarks/calibrated_intensity.py

A 256^2 'gradient' nucleus (seed 21, as in tests/test_acceptance_chromatin.py) is rendered as an
intensity image (euchromatin level 0.3, 15 nm blur, Poisson counts; render seed 5) at 1000 and 50
counts per heterochromatin pixel and fitted with default settings, once with the render's own levels
(``euchromatin_level`` = 0.3 x counts, ``heterochromatin_level`` = counts, i.e. ``--intensity-levels``)
and once without (Otsu class medians). Prints Pearson r and the mean relative error of both maps on the
interior 20 px inside the edge, and the fit time (about 40 s per fit on 2 CPU cores).
Saved output: benchmarks/results/calibrated_intensity.md.
"""

import numpy as np
import torch
from scipy.ndimage import binary_erosion

from napari_mollifier.config import InferenceSettings
from napari_mollifier.inverse import infer_rates
from napari_mollifier.simulate import render_intensity, simulate_nucleus


def main():
    torch.set_flush_denormal(True)
    sim = simulate_nucleus(256, rates="gradient", seed=21)
    for photons in (1000.0, 50.0):
        img = render_intensity(
            sim.phi, sim.mask, sim.pixel_size_nm, photons=photons, euchromatin_level=0.3, seed=5
        )
        for levels in ((0.3 * photons, photons), None):
            kw = dict(euchromatin_level=levels[0], heterochromatin_level=levels[1]) if levels else {}
            res = infer_rates(
                img,
                pixel_size_nm=sim.pixel_size_nm,
                mask=sim.mask,
                input="intensity",
                settings=InferenceSettings(device="cpu", **kw),
            )
            inner = binary_erosion(sim.mask, iterations=20) & res.fit.analysed
            out = []
            for est, true in ((res.fit.gamma_me, sim.gamma_me), (res.fit.gamma_ac, sim.gamma_ac)):
                e, t = est[inner], true[inner]
                out.append(f"r {np.corrcoef(e, t)[0, 1]:.3f} rel {np.mean(np.abs(e - t) / t):.1%}")
            print(
                f"photons {photons:g} levels {levels}: me {out[0]}; ac {out[1]}; {res.fit.runtime_s:.0f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
