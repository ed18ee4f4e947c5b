"""PirateNet in the chromatin solver at 256^2: does a wider embedding (more Fourier frequencies)
reach the MLP's recovery? (issue 5, "r >= 0.95 at 1 % noise for every architecture").

    .venv/bin/python benchmarks/experiments/piratenet_width_chromatin.py WIDTH [BLOCKS] [STEPS] [GRID] [ARCH]

The gradient nucleus of benchmarks/chromatin_recovery.py (seed 11, noise 0.01 with the same noise
seed), SOAP, default settings otherwise; the solver's PirateNet width (= 2 x the number of Fourier
frequencies; default 128) and block count (default 1) are overridden; GRID (default 256) is the
nucleus image size; ARCH (default piratenet) runs another architecture on the same data
for reference (WIDTH and BLOCKS then do nothing). Prints r and the mean
relative error of both maps as chromatin_recovery.py scores them, and the wall time.
"""

import sys
import time

import numpy as np
import torch

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.dirname(__file__)))
from chromatin_recovery import score

from napari_mollifier.config import InferenceSettings
from napari_mollifier.inverse import fit_rates
from napari_mollifier.simulate import simulate_nucleus


def main():
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    width = int(sys.argv[1])
    blocks = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 1200
    grid = int(sys.argv[4]) if len(sys.argv) > 4 else 256
    arch = sys.argv[5] if len(sys.argv) > 5 else "piratenet"
    sim = simulate_nucleus(grid, rates="gradient", seed=11)
    data = sim.phi + 0.01 * np.random.default_rng(111).standard_normal(sim.phi.shape)
    settings = InferenceSettings(
        arch=arch,
        optimizer="soap",
        steps=steps,
        device="cpu",
        report_every=100,
        network_width=width,
        network_blocks=blocks,
    )
    t0 = time.perf_counter()
    for ev in fit_rates(data, sim.mask, sim.pixel_size_nm, settings):
        if hasattr(ev, "step") and not hasattr(ev, "gamma_me"):
            print(
                f"step {ev.step} loss {ev.losses.get('total', float('nan')):.4g} {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
        fit = ev
    r = score(fit, sim, sim.phi)
    print(
        f"{arch} (PirateNet width {width} blocks {blocks}) steps {steps} grid {grid}: r {r['r_me']:.3f} / {r['r_ac']:.3f}, "
        f"rel. err {r['rel_me']:.1%} / {r['rel_ac']:.1%}, {time.perf_counter() - t0:.0f} s, "
        f"{fit.time_per_step_s * 1e3:.0f} ms per step",
        flush=True,
    )


if __name__ == "__main__":
    main()
