"""Mollifier vs autodiff at 5 % noise over five data seeds, 1st- and 2nd-order problems.

    .venv/bin/python benchmarks/mollifier_vs_autodiff_seeds.py langevin piratenet,mlp 1000 \
        [radius=8] [boundary=reflect]
    .venv/bin/python benchmarks/mollifier_vs_autodiff_seeds.py heat piratenet,mlp 600

For each architecture and data seed 1-5, ``simulate_first_order(128)`` / ``simulate_second_order(32)``
with noise 0.05 is fitted by ``fit_first_order`` / ``fit_second_order`` with both derivative methods
(library defaults, Adam, network seed 0, one thread); extra ``key=value`` arguments go to the fit
(numbers, or the words of ``data_on`` / ``boundary``).
Prints the relative error of λ per seed and its mean and std per method.
Saved output: benchmarks/results/mollifier_vs_autodiff_seeds.md.
"""

import sys

import numpy as np
import torch

from mollifier_bench.problems import (
    fit_first_order,
    fit_second_order,
    simulate_first_order,
    simulate_second_order,
)


def main():
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    problem, archs, steps = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
    kw = {
        k: (v if k in ("data_on", "boundary") else float(v)) for k, v in (e.split("=") for e in sys.argv[4:])
    }
    sim, fit, n = (
        (simulate_first_order, fit_first_order, 128)
        if problem == "langevin"
        else (simulate_second_order, fit_second_order, 32)
    )
    for arch in archs:
        res = {m: [] for m in ("mollifier", "autodiff")}
        for s in range(1, 6):
            data = sim(n, noise=0.05, seed=s)
            for m in res:
                r = fit(data, method=m, arch=arch, optimizer="adam", steps=steps, seed=0, **kw)
                res[m].append(r.recovery["rel_error"])
            print(problem, arch, "seed", s, {m: round(v[-1], 3) for m, v in res.items()}, flush=True)
        print(
            "MEAN",
            problem,
            arch,
            kw,
            {m: (round(float(np.mean(v)), 3), round(float(np.std(v)), 3)) for m, v in res.items()},
            flush=True,
        )


if __name__ == "__main__":
    main()
