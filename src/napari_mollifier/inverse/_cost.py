"""What a fit will cost before it starts: time and peak memory from the crop and the rate basis.

:func:`estimate_fit_cost` sizes a fit by arithmetic only: the crop :class:`RateProblem` would
analyse (:func:`~._problem.crop_box`), the rate basis' control grid (as :class:`SmoothBasis`
lays it out) and the half-bandwidth of the banded rate system (as ``_system_pattern`` orders it).
The coefficients of the models are measured (:data:`COST_MODEL`); ``mollifier infer`` and
``batch`` print the estimate and refuse a file whose fit would not fit in memory, with the ways
out (:func:`memory_refusal`, :class:`FitTooLargeError`); docs/decisions.md, "Fit cost estimate".
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ..config import InferenceSettings, option_name, resolved_kernel_radius_nm
from ..io import InputError

__all__ = [
    "COST_MODEL",
    "MEMORY_SAFETY",
    "FitCost",
    "FitTooLargeError",
    "available_memory",
    "check_fit_cost",
    "estimate_fit_cost",
    "memory_refusal",
]

# The measured coefficients, in one place (benchmarks/results/fit_cost_model.md: measured against
# modelled). Re-measure them with
#     OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/fit_cost_model.py
# (about 15 min on one core, the networks at 1024^2 most of it), which prints this block to paste
# here and writes that table. Memory is the fit's peak RSS growth in a fresh process (bytes):
#     constant + per_pixel * P + per_band * 16 K (bw + 1)
# (P crop pixels, K control points per rate map, bw the half-bandwidth of the 2K rate system:
# 16 K (bw + 1) bytes is one float64 copy of its band). Time (s) = set-up + steps x step with
#     step  = step_constant + step_fft * P log2 P + step_band * K Kmin^2   (Kmin: the grid's shorter side)
#     set-up = setup_constant + setup_fft * P log2 P + setup_band * K Kmin^2
# Memory and the network terms were measured on one CPU thread of a 2-core machine under a load of
# 2.7-4 (other jobs). The grid field's step and set-up terms were re-fitted after the fit moved to
# cosine transforms, from benchmarks/results/whole_nucleus.md (256^2-1024^2 at 10 nm, one thread,
# one other single-threaded job on the second core): step 10.6 / 27.4 / 131 ms, modelled
# 10.4 / 33 / 130 ms. The network terms still carry the older FFT costs and over-estimate a little.
# A network field adds its constant and per-pixel memory and per-step time (network_*); float64
# multiplies the per-pixel memory and the FFT part of a step.
COST_MODEL = {
    "constant": 1.121e08,
    "per_pixel": 604.6,
    "per_band": 1.951,
    "cpu": {
        "setup_constant": 1.306,
        "setup_fft": 3.0e-08,
        "setup_band": 2.167e-08,
        "step_constant": 4.0e-03,
        "step_fft": 9.0e-09,
        "step_band": 3.829e-09,
        "float64_step_factor": 2.258,
    },
    "network_constant": {
        "mlp": 1.194e08,
        "piratenet": 5.007e08,
        "convnet": 1.704e07,
    },
    "network_per_pixel": {
        "mlp": 3252,
        "piratenet": 5076,
        "convnet": 2382,
    },
    "network_step_fft": {
        "mlp": 9.165e-07,
        "piratenet": 3.102e-06,
        "convnet": 1.016e-06,
    },
    "float64_factor": 2.001,
}

#: A fit is refused when its estimated peak memory exceeds this share of the memory available.
MEMORY_SAFETY = 0.8


class FitTooLargeError(InputError):
    """The fit would need more memory than the device has available (raised before anything of the
    fit is allocated). A ValueError (:class:`~napari_mollifier.io.InputError`), not a MemoryError:
    nothing ran out, the input is too large for this machine; the message is one line with the ways
    out, ``cost`` the :class:`FitCost` it rests on."""

    def __init__(self, message: str, cost: FitCost):
        super().__init__(message)
        self.cost = cost


@dataclass(frozen=True)
class FitCost:
    """The estimated cost of one fit (:func:`estimate_fit_cost`)."""

    #: (rows, columns) of the crop the fit analyses, and its pixel count P.
    crop_shape: tuple[int, int]
    pixels: int
    #: Control points (rows, columns) of each rate map's grid; K = their product per map.
    rate_grid: tuple[int, int]
    #: Half-bandwidth of the banded 2K x 2K rate system (its Cholesky costs ~2K bw^2).
    half_bandwidth: int
    #: Estimated peak memory of the fit (bytes): the process's growth on the CPU (and MPS, whose
    #: memory is the machine's), the GPU's allocations on CUDA. None where there is no model.
    memory_bytes: int | None
    #: Estimated wall time (s); None where the device has no calibrated time model.
    seconds: float | None
    #: Memory the device has available now (bytes); None when it cannot be read.
    available_bytes: int | None
    #: "cpu", "cuda" or "mps".
    device: str
    steps: int

    @property
    def rate_points(self) -> int:
        """K: control points per rate map (two maps: 2K unknowns)."""
        return self.rate_grid[0] * self.rate_grid[1]

    @property
    def fits_in_memory(self) -> bool:
        """False only when both numbers are known and the estimate exceeds :data:`MEMORY_SAFETY`
        of the available memory."""
        if self.memory_bytes is None or self.available_bytes is None:
            return True
        return self.memory_bytes <= MEMORY_SAFETY * self.available_bytes

    def describe(self) -> str:
        """One line: ``~3 min, ~1.2 GB of 20 GB available (crop 801 x 925 px, 2 x 1254 rate
        points, cpu)``."""
        t = "time unknown" if self.seconds is None else f"~{format_duration(self.seconds)}"
        m = "memory unknown" if self.memory_bytes is None else f"~{format_bytes(self.memory_bytes)}"
        if self.available_bytes is not None:
            m += f" of {format_bytes(self.available_bytes)} available"
        h, w = self.crop_shape
        return f"{t}, {m} (crop {h} x {w} px, 2 x {self.rate_points} rate points, {self.device})"


def format_bytes(n: float) -> str:
    """``350 MB``, ``1.2 GB``, ``20 GB`` (decimal units; one decimal below 10)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            v = n / size
            return f"{v:.1f} {unit}" if v < 10 else f"{v:.0f} {unit}"
    return f"{n:.0f} B"


def format_duration(s: float) -> str:
    """``40 s``, ``3 min``, ``1.5 h``: the precision of an estimate."""
    if s < 90:
        return f"{max(s, 1):.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def _device_kind(device) -> str:
    if device is None:
        device = "auto"
    if not isinstance(device, str):
        return device.type
    if device == "auto":
        from ._device import resolve_device

        return resolve_device("auto").type
    return device.split(":")[0]


def available_memory(device: str = "cpu") -> int | None:
    """Memory (bytes) a fit on this device kind can use now, or None when it cannot be read.

    CPU and MPS (whose memory is the machine's): ``MemAvailable`` of /proc/meminfo (Linux), else
    the free physical pages (``os.sysconf``, other Unixes); CUDA: the free memory of the current
    GPU (``torch.cuda.mem_get_info``)."""
    if device.startswith("cuda"):
        try:
            import torch

            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        except Exception:  # noqa: BLE001 - no CUDA, or the driver would not say
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _crop_shape(shape, mask, pixel_size_nm: float, settings: InferenceSettings) -> tuple[int, int]:
    """The crop :class:`RateProblem` would analyse (the whole image without a mask)."""
    from ..mollifier import mollifier_margin
    from ._problem import crop_box

    if mask is None:
        return int(shape[0]), int(shape[1])
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return int(mask.shape[0]), int(mask.shape[1])
    radius_px = resolved_kernel_radius_nm(settings, pixel_size_nm) / pixel_size_nm
    margin = mollifier_margin(radius_px, ("u",), kernel="spectral") if radius_px > 0.5 else 0
    box = crop_box(mask, margin)
    return int(box[0].stop - box[0].start), int(box[1].stop - box[1].start)


def _rate_grid(crop: tuple[int, int], spacing_px: float) -> tuple[int, int]:
    """Control points per axis, as :class:`SmoothBasis` lays them out."""
    s = max(spacing_px, 2.0)  # closer ones are refused by the fit itself
    return tuple(max(2, math.ceil((n - 1) / s) + 1) for n in crop)


def _half_bandwidth(grid: tuple[int, int]) -> int:
    """Half-bandwidth of the 2K system with the unknowns ordered as ``RateProblem._system_pattern``
    orders them (point by point, the shorter grid axis fastest, the two rates of a point together):
    points up to 3 apart along each axis couple."""
    short, long_ = min(grid), max(grid)
    return 2 * (min(3, long_ - 1) * short + min(3, short - 1)) + 1


def estimate_fit_cost(
    shape,
    mask=None,
    *,
    pixel_size_nm: float,
    settings: InferenceSettings | None = None,
    device=None,
    available_bytes: int | None = None,
) -> FitCost:
    """Estimated time and peak memory of a fit of an image, without setting anything up.

    Parameters
    ----------
    shape : (H, W)
        The image's shape; without ``mask`` the crop itself (a fit of the whole image).
    mask : (H, W) bool array, optional
        The nucleus: the fit analyses its bounding box plus the mollifier's margin, as
        :class:`RateProblem` crops it.
    pixel_size_nm : float
    settings : InferenceSettings
        Its ``steps``, ``method``, ``rate_scale_nm``, ``arch``, ``precision`` and
        ``kernel_radius_nm`` matter.
    device : str or torch.device, optional
        Default: ``settings.device`` ("auto" resolves as the fit would).
    available_bytes : int, optional
        The memory to compare with; default: :func:`available_memory` of the device now.

    Returns
    -------
    FitCost
        ``memory_bytes`` is the process's peak growth (CPU), ``seconds`` None for a device
        without a calibrated time model (CUDA, MPS); both None for autodiff derivatives (a
        comparison switch, not measured).
    """
    settings = settings or InferenceSettings()
    kind = _device_kind(settings.device if device is None else device)
    crop = _crop_shape(shape, mask, pixel_size_nm, settings)
    grid = _rate_grid(crop, settings.rate_scale_nm / pixel_size_nm)
    bw = _half_bandwidth(grid)
    p = crop[0] * crop[1]
    k = grid[0] * grid[1]
    steps = settings.training_steps
    memory, seconds = _model(p, k, min(grid), bw, steps, settings, kind)
    if available_bytes is None:
        where = str(settings.device if device is None else device)
        available_bytes = available_memory(
            (where if where.startswith("cuda") else "cuda") if kind == "cuda" else "cpu"
        )
    return FitCost(crop, p, grid, bw, memory, seconds, available_bytes, kind, steps)


def _model(p: int, k: int, kmin: int, bw: int, steps: int, settings: InferenceSettings, kind: str):
    """(memory bytes, seconds) of :data:`COST_MODEL`."""
    c, t = COST_MODEL, COST_MODEL["cpu"]
    plogp = p * math.log2(max(p, 2))
    kband = k * kmin**2
    constant, per_pixel, step_fft = c["constant"], c["per_pixel"], t["step_fft"]
    if steps and settings.arch != "grid":
        constant += c["network_constant"][settings.arch]
        per_pixel += c["network_per_pixel"][settings.arch]
        step_fft += c["network_step_fft"][settings.arch]
    if settings.precision == "float64" and kind != "mps":
        per_pixel *= c["float64_factor"]
        step_fft *= t["float64_step_factor"]
    band = 16 * k * (bw + 1)
    if kind == "cuda":
        # The field's tensors live on the GPU, the banded rate solve on the host (scipy): the
        # GPU holds the per-pixel part. Not measured on a GPU yet.
        memory = per_pixel * p
    else:
        memory = constant + per_pixel * p + c["per_band"] * band
    if settings.derivatives != "mollifier":
        return None, None  # the autodiff comparison: neither measured
    seconds = None
    if kind == "cpu":
        setup = t["setup_constant"] + t["setup_fft"] * plogp + t["setup_band"] * kband
        seconds = setup + steps * (t.get("step_constant", 0.0) + step_fft * plogp + t["step_band"] * kband)
        if settings.uncertainty == "bootstrap":  # the fit once more per refit (docs/method.md)
            seconds *= 1 + settings.bootstrap_fits
        if settings.psf_bounds_nm is not None:  # a PSF width search: whole fits, then the chosen again
            from ._psf_width import PSF_SEARCH_FITS

            seconds *= PSF_SEARCH_FITS + (settings.uncertainty != "none")
    return int(memory), seconds


def check_fit_cost(
    shape,
    mask,
    *,
    pixel_size_nm: float,
    settings: InferenceSettings,
    source: str,
    check_memory: bool = True,
    force_hint: str | None = None,
) -> FitCost:
    """The fit's :class:`FitCost`; raises :class:`FitTooLargeError` (one line naming ``source`` and
    the ways out, :func:`memory_refusal`) when ``check_memory`` and it would not fit in memory."""
    cost = estimate_fit_cost(shape, mask, pixel_size_nm=pixel_size_nm, settings=settings)
    if check_memory and not cost.fits_in_memory:
        why = memory_refusal(
            cost, mask, pixel_size_nm=pixel_size_nm, settings=settings, source=source, force_hint=force_hint
        )
        raise FitTooLargeError(why, cost)
    return cost


def memory_refusal(
    cost: FitCost,
    mask,
    *,
    pixel_size_nm: float,
    settings: InferenceSettings,
    source: str,
    force_hint: str | None = None,
) -> str:
    """One line: why ``source`` is not fitted (the estimate against the memory available) and the
    ways out that the model says would fit: bin the image to a coarser pixel size, a larger rate
    scale, a smaller crop, the CPU instead of the GPU; and ``force_hint``, how to fit anyway."""
    limit = MEMORY_SAFETY * cost.available_bytes
    head = (
        f"{source}: not fitted: the fit would need ~{format_bytes(cost.memory_bytes)} of memory, more "
        f"than {MEMORY_SAFETY:.0%} of the {format_bytes(cost.available_bytes)} available on the "
        f"{cost.device} (crop {cost.crop_shape[0]} x {cost.crop_shape[1]} px, 2 x {cost.rate_points} "
        "rate points)"
    )
    ways = []
    shape = np.shape(mask) if mask is not None else cost.crop_shape

    def fits(**kw) -> FitCost:
        return estimate_fit_cost(
            kw.pop("shape", shape),
            kw.pop("mask", mask),
            pixel_size_nm=kw.pop("pixel_size_nm", pixel_size_nm),
            settings=settings.model_copy(update=kw),
            device=cost.device,
            available_bytes=cost.available_bytes,
        )

    for b in (2, 3, 4, 6, 8):
        px = pixel_size_nm * b
        if settings.rate_scale_nm / px < 2:
            break  # coarser pixels would put the rate control points under 2 pixels apart
        binned = None if mask is None else np.asarray(mask, bool)[::b, ::b]
        bshape = binned.shape if binned is not None else tuple(-(-n // b) for n in shape)
        c = fits(shape=bshape, mask=binned, pixel_size_nm=px, kernel_radius_nm=None)
        if c.fits_in_memory:
            ways.append(
                f"bin the image {b}x to {px:g} nm pixels (~{format_bytes(c.memory_bytes)}; "
                f"{option_name('pixel_size')} alone does not resample it)"
            )
            break
    for scale in _larger_rate_scales(settings.rate_scale_nm):
        c = fits(rate_scale_nm=scale)
        if c.fits_in_memory:
            need = format_bytes(c.memory_bytes)
            ways.append(f"{option_name('rate_scale_nm')} {scale:g} (coarser rate maps, ~{need})")
            break
    side = _largest_square_crop(cost, settings, pixel_size_nm, limit)
    if side and side < max(cost.crop_shape):
        ways.append(f"crop the image or its mask to at most ~{side} x {side} px")
    if cost.device == "cuda":
        cpu = available_memory("cpu")
        if cpu:
            ways.append(f"{option_name('device')} cpu ({format_bytes(cpu)} available)")
    out = head + ": " + ("; or ".join(ways) if ways else "crop the image to a part of the nucleus")
    return out + (f"; or {force_hint} to try anyway" if force_hint else "")


#: The CLI option (``mollifier infer`` / ``batch``) that fits a file the estimate refuses.
FORCE_OPTION = "--no-memory-check"


def _larger_rate_scales(current: float) -> list[float]:
    """Round rate scales from 1.5x to 8x the current one."""
    nice = [m * 10**e for e in range(0, 6) for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8)]
    return [v for v in nice if 1.5 * current <= v <= 8 * current]


def _largest_square_crop(cost: FitCost, settings, pixel_size_nm: float, limit: float) -> int | None:
    """The side (pixels) of the largest square crop whose estimate stays under ``limit``."""
    lo, hi = 16, max(cost.crop_shape)
    spacing = settings.rate_scale_nm / pixel_size_nm

    def memory(side: int) -> int:
        grid = _rate_grid((side, side), spacing)
        bw = _half_bandwidth(grid)
        return _model(side * side, grid[0] * grid[1], min(grid), bw, cost.steps, settings, cost.device)[0]

    if memory(lo) > limit:
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if memory(mid) <= limit else (lo, mid)
    return lo
