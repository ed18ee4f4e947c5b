"""Dispatch from a benchmark configuration's problem name to its step builder."""

from __future__ import annotations

import torch

#: Problems timed as single training steps ("step" configurations).
STEP_PROBLEMS = ("derivatives", "chromatin")


def build_step(config: dict, device: torch.device):
    problem = config.get("problem", "derivatives")
    if problem == "derivatives":
        from .derivative_step import build_step as build
    elif problem == "chromatin":
        from .chromatin_step import build_step as build
    else:
        raise ValueError(f"unknown benchmark step problem {problem!r}; choose from {STEP_PROBLEMS}")
    return build(config, device)
