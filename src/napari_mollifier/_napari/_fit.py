"""The compute side of the 'Infer rate maps' widget, without Qt: preparing the input, the training
generator the thread worker runs, the evented state the widget shows, and the point report."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np
from psygnal import evented

from ..config import InferenceSettings
from ..inverse import ProgressEvent, RateFit, fit_rates, to_fraction
from ..io import InputError, check_mask, load_input
from ._layers import FIT_MAP_KEYS, contrast_limits, data_range

__all__ = [
    "FitInput",
    "FitState",
    "MapUpdate",
    "prepare_fit",
    "fit_cost",
    "fit_updates",
    "describe_point",
    "rect_mask",
    "maps_of_fit",
    "warm_up",
    "WARMED_UP",
]

#: Set once :func:`warm_up` has run in this process.
WARMED_UP = threading.Event()
_warm_lock = threading.Lock()


def warm_up() -> None:
    """Import what the first fit would import lazily (torch's optimiser pulls in torch._dynamo:
    ~800 modules, ~2 s). Imports hold the GIL, so inside a running fit they froze the viewer for
    0.1-0.4 s at a time (measured); the widget runs this in a background thread when it opens."""
    with _warm_lock:
        if WARMED_UP.is_set():
            return
        try:
            import scipy.ndimage  # noqa: F401
            import skimage.filters  # noqa: F401
            import torch

            p = torch.nn.Parameter(torch.zeros(2))
            opt = torch.optim.Adam([p], lr=1e-3)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=2)
            p.square().sum().backward()
            opt.step()
            sched.step()
        finally:
            WARMED_UP.set()


@dataclass(frozen=True)
class FitInput:
    """Everything a fit needs, checked: phi and the mask on the full image grid."""

    phi: np.ndarray
    mask: np.ndarray
    pixel_size_nm: float
    settings: InferenceSettings
    input_kind: str
    source: str
    preprocessing: dict = field(default_factory=dict)


@dataclass
class MapUpdate:
    """What the worker yields to the main thread: full-image maps of one step, ready to show."""

    step: int
    total_steps: int
    losses: dict
    elapsed_s: float
    maps: dict  # FIT_MAP_KEYS -> float32 (H, W), NaN outside the analysed region (phi_hat: outside the crop)
    limits: dict  # FIT_MAP_KEYS -> (lo, hi) display range
    history: list  # every reported step so far: dict(step, data, residual, total)
    ranges: dict = field(default_factory=dict)  # FIT_MAP_KEYS -> (min, max): the contrast slider's span


@evented
@dataclass
class FitState:
    """What the widget shows; changed on the main thread only (worker callbacks run there)."""

    # idle | running | stopping | finished (status ok) | stopped | failed | diverged; a fit that
    # ends "failed" or "diverged" (RateFit.status) shows its maps, and its reason in ``message``.
    status: str = "idle"
    step: int = 0
    total_steps: int = 0
    message: str = ""
    device: str = ""


def rect_mask(shape: tuple[int, int], rect: tuple[float, float, float, float]) -> np.ndarray:
    """Boolean mask of the pixels inside ``rect = (row0, row1, col0, col1)`` (pixel coordinates,
    inclusive bounds of pixel centres), clipped to the image."""
    r0, r1, c0, c1 = rect
    out = np.zeros(shape, dtype=bool)
    i0, i1 = max(int(math.ceil(min(r0, r1) - 0.5)), 0), min(int(math.floor(max(r0, r1) + 0.5)), shape[0] - 1)
    j0, j1 = max(int(math.ceil(min(c0, c1) - 0.5)), 0), min(int(math.floor(max(c0, c1) + 0.5)), shape[1] - 1)
    if i1 >= i0 and j1 >= j0:
        out[i0 : i1 + 1, j0 : j1 + 1] = True
    return out


def prepare_fit(
    data,
    *,
    pixel_size_nm: float,
    input_kind: str,
    settings: InferenceSettings | None = None,
    mask=None,
    crop: tuple | None = None,
    name: str = "image",
) -> FitInput:
    """Check an image layer's data and turn it into the solver's input (phi, mask, settings).

    ``mask``: nonzero = nucleus (e.g. a labels layer's data); None segments it (Otsu).
    ``crop``: ``(row0, row1, col0, col1)`` in pixels; the analysed region is the mask inside it.
    Raises :class:`InputError` (one line) for anything the fit cannot use.
    """
    settings = settings or InferenceSettings()
    arr = np.asarray(data)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        raise InputError(
            f"{name}: RGB(A) layer of shape {arr.shape}; pick a single-channel grayscale image layer"
        )
    if arr.ndim != 2:
        raise InputError(
            f"{name}: expected a 2-D image layer, got shape {arr.shape}; pick one plane "
            "(e.g. Image > Projections or split the stack) as its own layer"
        )
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise InputError(f"{name}: the layer has NaN/Inf pixels (a rate map?); pick the image of the nucleus")
    if not (pixel_size_nm and pixel_size_nm > 0):
        raise InputError(
            f"{name}: the pixel size must be positive, got {pixel_size_nm!r} nm; type it in (nm)"
        )
    # The layer-specific checks above word the fix for the viewer; the shared loader then checks
    # the pixel size's range and gets the mask as the CLI and the API do.
    inp = load_input(arr, pixel_size_nm=float(pixel_size_nm), mask=mask, name=name, mask_label="mask layer")
    arr, m, prep = inp.data, inp.mask, inp.preprocessing
    if crop is not None:
        m = check_mask(
            m & rect_mask(arr.shape, crop), arr.shape, name=f"{name} mask inside the crop rectangle"
        )
        prep["crop_px"] = [float(c) for c in crop]
    phi, settings = to_fraction(
        arr, m, input=input_kind, pixel_size_nm=float(pixel_size_nm), settings=settings, name=name, prep=prep
    )
    return FitInput(
        phi=phi,
        mask=m,
        pixel_size_nm=float(pixel_size_nm),
        settings=settings,
        input_kind=input_kind,
        source=name,
        preprocessing=prep,
    )


def _full(shape, crop: np.ndarray, box) -> np.ndarray:
    out = np.full(shape, np.nan, dtype=np.float32)
    out[box] = crop
    return out


def _update(ev: ProgressEvent, shape, history: list) -> MapUpdate:
    maps = {k: _full(shape, ev.maps[k], ev.box) for k in FIT_MAP_KEYS}
    limits = {k: contrast_limits(v) for k, v in maps.items()}
    return MapUpdate(
        ev.step,
        ev.total_steps,
        dict(ev.losses),
        ev.elapsed_s,
        maps,
        limits,
        list(history),
        {k: data_range(v, limits[k]) for k, v in maps.items()},
    )


def maps_of_fit(fit: RateFit) -> dict:
    """The finished maps under the layer keys."""
    return {"gamma_me": fit.gamma_me, "gamma_ac": fit.gamma_ac, "lambda": fit.lam, "phi_hat": fit.phi_hat}


def sd_maps_of_fit(fit: RateFit) -> dict:
    """The finished sd maps under the layer keys (:data:`~._layers.SD_MAP_KEYS`; none when the fit
    has none)."""
    sd = {"gamma_me_sd": fit.gamma_me_sd, "gamma_ac_sd": fit.gamma_ac_sd, "lambda_sd": fit.lam_sd}
    return {k: v for k, v in sd.items() if v is not None}


def fit_cost(inp: FitInput):
    """The fit's time and memory estimate (:class:`~napari_mollifier.inverse.FitCost`); raises
    :class:`~napari_mollifier.inverse.FitTooLargeError` (one line, with the pixel size, rate scale or
    crop that would fit) when it would not fit in memory."""
    from ..inverse._cost import check_fit_cost

    return check_fit_cost(
        inp.phi.shape, inp.mask, pixel_size_nm=inp.pixel_size_nm, settings=inp.settings, source=inp.source
    )


def fit_updates(
    inp: FitInput,
    *,
    cancel: threading.Event | None = None,
    min_interval_s: float = 0.5,
    notices: list | None = None,
) -> Generator[MapUpdate, None, RateFit]:
    """Run the fit; yield a :class:`MapUpdate` for the first progress event and then at most every
    ``min_interval_s`` (full-image maps and display ranges are computed here, off the GUI thread);
    return the :class:`RateFit`. Setting ``cancel`` stops after the current step (the fit then
    holds the latest maps, all from the same field).

    When the GPU runs out of memory the fit starts again on the CPU (as the CLI, the batch and
    the API do) and the notice saying so is appended to ``notices``; once the fit has ended, the
    GPU memory it cached is given back (:func:`~napari_mollifier.inverse._device.release_gpu_memory`).
    """
    import torch

    from ..inverse._device import gpu_out_of_memory_notice, release_gpu_memory

    # Waits for the widget's warm-up thread if it is still importing: the two importing at once
    # crawled (minutes) and stalled the viewer (measured under pytest).
    warm_up()
    settings = inp.settings
    try:
        try:
            return (yield from _updates(inp, settings, cancel, min_interval_s))
        except torch.cuda.OutOfMemoryError as exc:
            if settings.device == "cpu":
                raise
            notice = gpu_out_of_memory_notice(inp.source, exc)
            del exc  # its traceback holds the failed fit's tensors
        if notices is not None:
            notices.append(notice)
        release_gpu_memory(settings.device)
        settings = settings.model_copy(update={"device": "cpu"})
        return (yield from _updates(inp, settings, cancel, min_interval_s))
    finally:
        release_gpu_memory(settings.device)


def _updates(inp: FitInput, settings, cancel, min_interval_s: float):
    history: list = []
    last = -math.inf
    for item in fit_rates(inp.phi, inp.mask, inp.pixel_size_nm, settings, cancel=cancel):
        if isinstance(item, RateFit):
            return item
        if item.done:
            continue  # the RateFit that follows holds the same maps
        history.append(dict(step=item.step, **item.losses))
        now = time.perf_counter()
        if now - last >= min_interval_s:
            last = now
            yield _update(item, inp.phi.shape, history)
    raise RuntimeError("fit_rates ended without a result")


def describe_point(row: int, col: int, values: dict, pixel_size_nm: float | None = None) -> str:
    """One line for the status bar: the local rates at pixel (row, col) with their units."""
    where = f"pixel (row {row}, col {col})"
    if pixel_size_nm:
        where += f" = (y {row * pixel_size_nm:.0f}, x {col * pixel_size_nm:.0f}) nm"
    me, ac, lam = (values.get(k, math.nan) for k in ("gamma_me", "gamma_ac", "lambda"))
    if not (np.isfinite(me) and np.isfinite(ac)):
        return f"{where}: outside the analysed region"
    phi = values.get("phi_hat", math.nan)
    sd = [values.get(k, math.nan) for k in ("gamma_me_sd", "gamma_ac_sd", "lambda_sd")]
    spread = f"; sd {sd[0]:.2g}, {sd[1]:.2g}, {sd[2]:.2g}" if all(np.isfinite(sd)) else ""
    return (
        f"{where}: Γ_me = {me:.3g} /τ, Γ_ac = {ac:.3g} /τ, λ = {lam:.3g}, φ̂ = {phi:.2f}{spread}"
        "  (τ = ℓ0²/(M A), ℓ0 = 10 nm)"
    )
