"""Dispatch from a benchmark configuration's problem name to its step builder."""

from __future__ import annotations

import torch

PROBLEMS = ("derivatives",)


def build_step(config: dict, device: torch.device):
    problem = config.get("problem", "derivatives")
    if problem == "derivatives":
        from ._derivatives import build_step as build
    else:
        raise ValueError(f"unknown benchmark problem {problem!r}; choose from {PROBLEMS}")
    return build(config, device)
