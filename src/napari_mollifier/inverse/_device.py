"""The torch device a fit runs on, from the user's choice ("auto", "cpu", "cuda[:N]", "mps").

Kept apart from the solver: the plugin's widget and the benchmarks resolve the device without
starting a fit.
"""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(device: str = "auto") -> torch.device:
    """ "auto" -> CUDA if available, else MPS if available, else CPU; an explicit device must exist."""
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    if device not in ("cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu, cuda[:N] or mps, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was asked for but torch sees no CUDA GPU; use --device auto or cpu"
        )
    if device == "mps" and not mps:
        raise ValueError("device 'mps' was asked for but is not available; use --device auto or cpu")
    return torch.device(device)
