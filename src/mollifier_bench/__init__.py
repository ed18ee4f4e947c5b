"""mollifier_bench: the research harness of napari-mollifier.

Mollifier vs autodiff benchmarks (time per training step, peak memory, accuracy) and the
papers' experiments (fits of three problems x architectures x methods x optimisers x noise),
built on the public napari_mollifier API only. ``mollifier benchmark`` (:mod:`mollifier_bench.cli`)
runs them. Each configuration runs in a fresh process (honest memory, failures isolated); a
configuration that does not fit is recorded with status "out_of_memory". Measuring memory needs
psutil (``pip install 'napari-mollifier[bench]'``).
"""

from .fits import FIT_ARCHS, FIT_DEFAULTS, FIT_PROBLEMS, fit_configs
from .report import alignment_figure, derivatives_markdown, machine_description, paper_markdown
from .runner import (
    FULL_GRIDS,
    QUICK_GRIDS,
    chromatin_step_configs,
    derivative_configs,
    resolve_device,
    run_configs,
)

__all__ = [
    "FIT_ARCHS",
    "FIT_DEFAULTS",
    "FIT_PROBLEMS",
    "FULL_GRIDS",
    "QUICK_GRIDS",
    "alignment_figure",
    "chromatin_step_configs",
    "derivative_configs",
    "derivatives_markdown",
    "fit_configs",
    "machine_description",
    "paper_markdown",
    "resolve_device",
    "run_configs",
]
