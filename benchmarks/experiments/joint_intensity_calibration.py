"""Experiment (not a product feature): learn the intensity -> phi calibration inside the fit.

    .venv/bin/python benchmarks/experiments/joint_intensity_calibration.py PHOTONS LR_CAL [STEPS]

The 256^2 'gradient' nucleus (seed 11) is rendered as an intensity image (``render_intensity``:
euchromatin level 0.3, 15 nm blur, Poisson counts with PHOTONS per heterochromatin pixel) and
normalised by the tool (``intensity_to_fraction``, Otsu class medians -> 0 and 1). The default fit
then runs with the data model ``a * blur(phi_hat) + b`` instead of ``blur(phi_hat)``, where the
scalars a and b (start 1 and 0) are trained with Adam at LR_CAL beside the field. The physics pins
the scale of phi_hat (benchmarks/results/intensity_calibration.md, part 1b: the steady-state
residual of phi_true is 100x smaller at the true calibration than 2 % away from it), so a and b
should converge to the normalisation's actual relation to phi.

It patches two private functions of the solver (``RateProblem.imaged``, ``_optimizer``), so it is a
measurement script only. Findings (session 11, docs/NOTES.md): at 1e6 photons, LR_CAL 1e-2, 3000
steps, a -> 1.48 and b -> -0.125 (the normalisation's relation to blur(phi): 1.474, -0.122); rates'
mean ratio 1.10 / 1.08 (Otsu alone: -7.2 / -6.6), r 0.79 / 0.78. At 1000 photons it runs away
(a -> 5.3: a flat phi_hat, which is a trivial steady state, costs nothing in the residual).
"""

import sys
import time

import numpy as np
import torch
from scipy import ndimage as ndi

import napari_mollifier.inverse._solver as solver
from napari_mollifier.config import InferenceSettings
from napari_mollifier.io import intensity_to_fraction
from napari_mollifier.simulate import render_intensity, simulate_nucleus


def main():
    torch.set_flush_denormal(True)
    photons, lr_cal = float(sys.argv[1]), float(sys.argv[2])
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 1200
    sim = simulate_nucleus(256, rates="gradient", seed=11)
    mask, inner = sim.mask, ndi.binary_erosion(sim.mask, iterations=20)
    img = render_intensity(sim.phi, mask, sim.pixel_size_nm, photons=photons, seed=211)
    phi, _ = intensity_to_fraction(img, mask)
    blurred = ndi.gaussian_filter(np.where(mask, sim.phi, 0.0), 15.0 / sim.pixel_size_nm)
    a_t, b_t = np.linalg.lstsq(
        np.vstack([blurred[inner], np.ones(int(inner.sum()))]).T, phi[inner], rcond=None
    )[0]
    print(f"normalised image ~ {a_t:.3f} blur(phi) {b_t:+.3f}", flush=True)

    cal = {"a": torch.ones((), requires_grad=True), "b": torch.zeros((), requires_grad=True)}
    imaged, make_optimizer = solver.RateProblem.imaged, solver._optimizer

    def calibrated_imaged(self, u):
        return cal["a"].to(u.dtype) * imaged(self, u) + cal["b"].to(u.dtype)

    def optimizer_with_calibration(settings, groups):
        opt = make_optimizer(settings, groups)
        opt.add_param_group({"params": [cal["a"], cal["b"]], "lr": lr_cal})
        return opt

    solver.RateProblem.imaged, solver._optimizer = calibrated_imaged, optimizer_with_calibration
    t0 = time.perf_counter()
    for item in solver.fit_rates(
        phi, mask, sim.pixel_size_nm, InferenceSettings(device="cpu", psf_sigma_nm=15.0, steps=steps)
    ):
        if isinstance(item, solver.ProgressEvent) and item.step % 200 == 0:
            print(
                item.step,
                f"a {float(cal['a']):.4f} b {float(cal['b']):+.4f}",
                {k: f"{v:.3g}" for k, v in item.losses.items()},
                flush=True,
            )
        fit = item
    print(f"fit {time.perf_counter() - t0:.0f} s; learned a {float(cal['a']):.4f} b {float(cal['b']):+.4f}")
    for name, est, true in (
        ("Gamma_me", fit.gamma_me, sim.gamma_me),
        ("Gamma_ac", fit.gamma_ac, sim.gamma_ac),
    ):
        print(
            f"{name}: r {np.corrcoef(est[inner], true[inner])[0, 1]:.3f}, "
            f"mean ratio {np.mean(est[inner]) / np.mean(true[inner]):.2f}"
        )


if __name__ == "__main__":
    main()
