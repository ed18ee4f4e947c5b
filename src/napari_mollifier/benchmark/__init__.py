"""Benchmarks: mollifier vs autodiff (time per training step, peak memory, accuracy).

Each configuration runs in a fresh process (honest memory, failures isolated); a
configuration that does not fit is recorded with status "out_of_memory".
"""

from ._report import derivatives_markdown, machine_description
from ._runner import FULL_GRIDS, QUICK_GRIDS, derivative_configs, resolve_device, run_configs

__all__ = ["FULL_GRIDS", "QUICK_GRIDS", "derivative_configs", "derivatives_markdown", "machine_description",
           "resolve_device", "run_configs"]
