"""The torch device a fit runs on, from the user's choice ("auto", "cpu", "cuda[:N]", "mps").

Kept apart from the solver: the plugin's widget and the benchmarks resolve the device without
starting a fit.
"""

from __future__ import annotations

import torch

__all__ = ["resolve_device", "device_choices", "gpu_out_of_memory_notice", "release_gpu_memory"]


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


def device_choices() -> list[str]:
    """The devices a fit can be asked to run on here: ``auto``, ``cpu``, ``cuda:0`` ... ``cuda:N-1``
    (one per GPU torch sees) and ``mps`` when Apple's GPU is available."""
    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def gpu_out_of_memory_notice(source: str, exc: BaseException) -> str:
    """One line saying that a fit ran out of GPU memory and is done on the CPU instead."""
    first = str(exc).splitlines()[0][:120] if str(exc) else ""
    return (
        f"{source}: GPU out of memory ({first}); fitted on the CPU instead (slower; crop the "
        "image or free GPU memory to stay on the GPU)"
    )


def release_gpu_memory(device) -> bool:
    """Give the CUDA caching allocator's unused blocks back to the driver after a fit on ``device``
    (a ``torch.device`` or a device string; "auto" counts as CUDA when CUDA is available), so
    that other programs, and napari's own drawing, get the memory back. True when it did."""
    kind = device.type if isinstance(device, torch.device) else str(device).split(":")[0]
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind != "cuda" or not torch.cuda.is_available():
        return False
    import gc

    gc.collect()  # tensors still referenced only by cycles (autograd graphs) go first
    torch.cuda.empty_cache()
    return True
