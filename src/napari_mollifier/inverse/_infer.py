"""``infer_rates``: from an image (file or array) to rate maps, with preprocessing and outputs."""

from __future__ import annotations

import os
import platform
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import InferenceSettings, resolved_kernel_radius_nm
from ..io import (
    InputError,
    ReadOptions,
    check_fraction,
    intensity_to_fraction,
    load_input,
    write_json,
    write_tiff,
)
from ._cost import FORCE_OPTION, FitCost, check_fit_cost
from ._psf_width import psf_width_summary
from ._solver import ProgressEvent, RateFit, fit_rates
from ._verdict import Verdict, judge_rates

__all__ = [
    "judge_fit",
    "DEFAULT_PSF_SIGMA_NM",
    "INTENSITY_CAUTION",
    "RateMaps",
    "infer_rates",
    "to_fraction",
    "write_rate_maps",
]

#: Blur assumed for intensity input when ``settings.psf_sigma_nm`` is None (nm).
DEFAULT_PSF_SIGMA_NM = 15.0

#: Saved with every intensity-input result (docs/decisions.md,
#: benchmarks/results/intensity_calibration.md).
INTENSITY_CAUTION = (
    "intensity input: phi comes from an approximate intensity-to-fraction map; the rates "
    "change ~25 % per 2 % error in that map's contrast and on simulated nuclei even changed sign, "
    "so these maps do not determine the rates (give calibrated euchromatin_level / "
    "heterochromatin_level for absolute ones)"
)


@dataclass
class RateMaps:
    """Inferred maps on the image grid (NaN outside the analysed region) and their provenance."""

    gamma_me: np.ndarray
    gamma_ac: np.ndarray
    lam: np.ndarray
    phi_hat: np.ndarray
    mask: np.ndarray
    phi: np.ndarray
    pixel_size_nm: float
    source: str
    fit: RateFit
    preprocessing: dict = field(default_factory=dict)
    # One-line notices about how the fit ran (e.g. a fall-back from the GPU to the CPU).
    notices: list = field(default_factory=list)
    input_kind: str = "intensity"

    @classmethod
    def of_fit(
        cls,
        fit: RateFit,
        phi: np.ndarray,
        pixel_size_nm: float,
        source: str,
        *,
        preprocessing: dict | None = None,
        notices: list | None = None,
        input_kind: str = "intensity",
    ) -> RateMaps:
        """The maps of one fit (its maps, fitted field and analysed region) with their provenance:
        ``phi`` the fitted image (heterochromatin fraction), ``source`` its name."""
        return cls(
            gamma_me=fit.gamma_me,
            gamma_ac=fit.gamma_ac,
            lam=fit.lam,
            phi_hat=fit.phi_hat,
            mask=fit.analysed,
            phi=phi,
            pixel_size_nm=pixel_size_nm,
            source=source,
            fit=fit,
            preprocessing={} if preprocessing is None else preprocessing,
            notices=[] if notices is None else list(notices),
            input_kind=input_kind,
        )

    @property
    def verdict(self) -> Verdict:
        """What the maps are worth: "determined", "relative" or "undetermined", with the reason."""
        return judge_fit(self.fit, self.preprocessing, self.input_kind)

    @property
    def gamma_me_sd(self) -> np.ndarray | None:
        """Standard deviation of Gamma_me per pixel (:attr:`RateFit.gamma_me_sd`), None if not estimated."""
        return self.fit.gamma_me_sd

    @property
    def gamma_ac_sd(self) -> np.ndarray | None:
        """Standard deviation of Gamma_ac per pixel, None if not estimated."""
        return self.fit.gamma_ac_sd

    @property
    def lam_sd(self) -> np.ndarray | None:
        """Standard deviation of lambda per pixel (delta method or bootstrap), None if not estimated."""
        return self.fit.lam_sd

    @property
    def status(self) -> str:
        """The fit's status: "ok", "failed", "diverged" or "cancelled" (:attr:`RateFit.status`)."""
        return self.fit.status

    @property
    def status_reason(self) -> str:
        """Why the status is not "ok", in one sentence ("" when ok)."""
        return self.fit.status_reason

    def summary(self) -> dict:
        m = self.mask
        out = {}
        for name, a in (("gamma_me", self.gamma_me), ("gamma_ac", self.gamma_ac), ("lambda", self.lam)):
            v = a[m]
            out[name] = {
                "mean": float(np.mean(v)),
                "std": float(np.std(v)),
                "min": float(np.min(v)),
                "max": float(np.max(v)),
            }
        out["global_balance"] = float(
            np.mean((self.gamma_me * (1 - self.phi_hat))[m]) / np.mean((self.gamma_ac * self.phi_hat)[m])
        )
        out["analysed_pixels"] = int(m.sum())
        # Median sd / |map| of each map, where sd maps were estimated (docs/method.md, "Uncertainty").
        for name, rel in (self.fit.uncertainty.get("median_relative_sd") or {}).items():
            out[name]["median_relative_sd"] = rel
        return out


def _photon_record(data: np.ndarray, mask: np.ndarray) -> dict | None:
    """The image's photon transfer (gain, offset, photons per pixel), or None where its noise
    cannot be read (too few pixels)."""
    from ..io import estimate_photon_transfer

    try:
        return estimate_photon_transfer(data, mask).as_record()
    except ValueError:
        return None


def _levels_kind(levels: str | None, calibration: str | None) -> str | None:
    """How phi's scale was set: given levels win; without them, the fit's calibration option."""
    if levels == "uncalibrated" and calibration in ("plateaus", "joint"):
        return calibration
    return levels


def judge_fit(fit: RateFit, preprocessing: dict, input_kind: str) -> Verdict:
    """The verdict on a fit of an input prepared by :func:`to_fraction` (its ``prep`` record)."""
    pt = preprocessing.get("photon_transfer") or {}
    photons = pt.get("counts_high") if pt.get("poisson_like") else None
    rel = (getattr(fit, "uncertainty", None) or {}).get("median_relative_sd") or {}
    sds = [rel[k] for k in ("gamma_me", "gamma_ac") if rel.get(k) is not None and np.isfinite(rel[k])]
    return judge_rates(
        status=fit.status,
        status_reason=fit.status_reason,
        input_kind=input_kind,
        levels=_levels_kind(preprocessing.get("levels"), (fit.settings or {}).get("calibration")),
        noise_in_phi=fit.losses.get("noise_estimate"),
        photons=photons,
        median_rel_sd=max(sds) if sds else None,
        psf_pinned=fit.losses.get("psf_sigma_pinned"),
        psf_sigma_nm=fit.losses.get("psf_sigma_nm"),  # only a PSF width search records it
        weighted_data=fit.losses.get("likelihood") == "poisson",
    )


def to_fraction(
    data: np.ndarray,
    mask: np.ndarray,
    *,
    input: str,
    pixel_size_nm: float,
    settings: InferenceSettings,
    name: str = "image",
    prep: dict | None = None,
):
    """The heterochromatin fraction phi the solver fits, and the settings adjusted to the input
    and pixel size: the intensity input's PSF and the kernel radius, where unset, become explicit
    (shared by :func:`infer_rates` and the napari widget). Records the normalisation in ``prep``."""
    prep = {} if prep is None else prep
    source, m = name, mask
    if input == "fraction":
        # Kept as given outside the mask too: a step to 0 at the mask edge would ring through the
        # spectral derivatives (measured: +37 % bias in the mean rate of a 128^2 nucleus).
        if settings.intensity_levels is not None:
            raise InputError(
                f"{source}: euchromatin_level / heterochromatin_level calibrate intensity input; "
                "phi input needs none (unset them, or use input 'intensity')"
            )
        phi = check_fraction(data, m, name=source)
        prep["normalisation"] = "none (input is phi)"
    elif input == "intensity":
        phi, norm = intensity_to_fraction(data, m, name=source, levels=settings.intensity_levels)
        prep["normalisation"] = norm
        prep["levels"] = "uncalibrated" if settings.intensity_levels is None else "given"
        prep["photon_transfer"] = _photon_record(data, m)
        if settings.intensity_levels is None:
            prep["caution"] = INTENSITY_CAUTION
        if settings.psf_sigma_nm is None:
            # A typical STORM localisation precision (the normalisation does not smooth).
            settings = settings.model_copy(update={"psf_sigma_nm": DEFAULT_PSF_SIGMA_NM})
    else:
        raise InputError(f"{source}: input must be 'intensity' or 'fraction', got {input!r}")
    if settings.kernel_radius_nm is None:
        # The radius this pixel size gives, saved with the result: the record reproduces the fit.
        settings = settings.model_copy(
            update={"kernel_radius_nm": resolved_kernel_radius_nm(settings, pixel_size_nm)}
        )
    return phi, settings


def infer_rates(
    image,
    *,
    pixel_size_nm: float | None = None,
    mask=None,
    input: str = "intensity",
    settings: InferenceSettings | None = None,
    cancel: threading.Event | None = None,
    progress: Callable[[ProgressEvent], None] | None = None,
    check_memory: bool = True,
    on_estimate: Callable[[FitCost], None] | None = None,
    name: str | None = None,
    read: ReadOptions | None = None,
) -> RateMaps:
    """Methylation and acetylation rate maps from one image of a nucleus.

    Parameters
    ----------
    image : path or (H, W) array
        TIFF / OME-TIFF file (pixel size read from its metadata), a localisation table (.csv,
        .tsv, .txt: x, y in nm; rendered to counts over its own extent, intensity input) or an array.
    pixel_size_nm : float, optional
        Overrides the file's pixel size; required for arrays and files without one; for a table
        the pixel size of its rendering (default 10 nm).
    mask : path or (H, W) array, optional
        Nucleus mask (nonzero inside); segmented automatically (Otsu) when absent.
    input : {"intensity", "fraction"}
        Raw intensity (normalised inside the nucleus to phi) or phi itself.
    settings : InferenceSettings
    cancel : threading.Event, optional
        Cooperative cancellation; the latest maps are returned.
    progress : callable, optional
        Receives each :class:`ProgressEvent` (step, losses, current maps).
    check_memory : bool
        Before the fit, estimate its peak memory (:func:`estimate_fit_cost`) and refuse it when
        the estimate exceeds 80 % of the memory available (False: fit anyway).
    on_estimate : callable, optional
        Receives the fit's :class:`FitCost` (time and memory estimate) just before the fit starts.
    name : str, optional
        How an array is named in messages and in ``source`` (default "image").
    read : ReadOptions, optional
        What the file does not say itself: the plane of a stack (``plane={"C": 1}``), the unit of
        a table's x, y (``xy_unit``) and the camera pixel size (``camera_pixel_nm``).

    Raises
    ------
    InputError
        One-line message naming the input and the fix.
    FitTooLargeError
        (an InputError) The fit would not fit in memory: raised before anything of the fit is
        allocated, with the ways out (a coarser pixel size, a larger rate scale, a smaller crop).
    """
    settings = settings or InferenceSettings()
    inp = load_input(image, pixel_size_nm=pixel_size_nm, mask=mask, name=name, read=read)
    m, px, source, prep = inp.mask, inp.pixel_size_nm, inp.source, inp.preprocessing
    phi, settings = to_fraction(
        inp.data, m, input=input, pixel_size_nm=px, settings=settings, name=source, prep=prep
    )
    cost = check_fit_cost(
        phi.shape,
        m,
        pixel_size_nm=px,
        settings=settings,
        source=source,
        check_memory=check_memory,
        force_hint=f"{FORCE_OPTION} (check_memory=False)",
    )
    if on_estimate is not None:
        on_estimate(cost)
    # Notices of the input (e.g. a mask that leaves out many of a table's localisations) first.
    notices: list[str] = list(prep.get("notices", []))
    fit = _fit_with_cpu_fallback(phi, m, px, settings, cancel, progress, source, notices)
    psf_note = psf_width_summary(fit.losses)
    if psf_note:
        notices.append(psf_note)
    levels = fitted_levels(prep.get("normalisation"), fit.losses)
    if levels is not None:
        prep["fitted_levels"] = dict(levels, calibration=settings.calibration)
    return RateMaps.of_fit(fit, phi, px, source, preprocessing=prep, notices=notices, input_kind=input)


def fitted_levels(normalisation, losses: dict) -> dict | None:
    """The intensities of phi = 0 and phi = 1 that a fitted calibration implies: the fit saw
    ``(I - eu) / (het - eu) = gain x phi + offset`` (``gain``, ``offset`` in ``losses``), so phi = 0 is
    ``eu + (het - eu) offset`` and phi = 1 is ``eu + (het - eu) (offset + gain)``. None when the fit
    calibrated nothing or the input was no normalised intensity."""
    if not isinstance(normalisation, dict) or "gain" not in losses:
        return None
    eu, het = normalisation["euchromatin_level"], normalisation["heterochromatin_level"]
    gain, offset = float(losses["gain"]), float(losses["offset"])
    return {
        "euchromatin_level": eu + (het - eu) * offset,
        "heterochromatin_level": eu + (het - eu) * (offset + gain),
    }


def _run_fit(phi, mask, px, settings, cancel, progress) -> RateFit:
    fit = None
    for item in fit_rates(phi, mask, px, settings, cancel=cancel):
        if isinstance(item, RateFit):
            fit = item
        elif progress is not None:
            progress(item)
    return fit


def _fit_with_cpu_fallback(phi, mask, px, settings, cancel, progress, source: str, notices: list) -> RateFit:
    """The fit; when the GPU runs out of memory, the same fit again on the CPU, with a notice.

    There is no tiling to fall back to (the solver fits the whole crop at once), so the CPU, with
    the machine's memory, is the fall-back; the settings saved with the result say ``device: cpu``.
    """
    import torch

    try:
        return _run_fit(phi, mask, px, settings, cancel, progress)
    except torch.cuda.OutOfMemoryError as exc:
        if settings.device == "cpu":
            raise
        from ._device import gpu_out_of_memory_notice

        notice = gpu_out_of_memory_notice(source, exc)
        warnings.warn(notice, RuntimeWarning, stacklevel=3)
        notices.append(notice)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return _run_fit(phi, mask, px, settings.model_copy(update={"device": "cpu"}), cancel, progress)


def write_rate_maps(
    maps: RateMaps,
    out_dir: str | os.PathLike,
    stem: str | None = None,
    *,
    extra: dict | None = None,
    origin_nm: tuple[float, float] | None = None,
) -> dict:
    """Write the docs/interfaces.md outputs: S_gamma_me/_gamma_ac/_lambda/_phi (float32 OME-TIFF, pixel
    size in nm), their
    standard deviations S_gamma_me_sd/_gamma_ac_sd/_lambda_sd (float32, when estimated), S_mask
    (uint8) and S.json, each atomically; S.json last, so that it marks a complete set. S.json's
    top-level "status" and "status_reason" say whether the fit went right (maps of a failed or
    diverged fit are written too, for inspection), "verdict" and "verdict_reason" whether the data
    determine the rates. ``extra`` adds entries to S.json
    (the batch's resume key). ``origin_nm`` (where pixel (0, 0)'s corner lies, nm) places maps of a
    crop in the coordinates of the whole image (a rendered table's origin otherwise). Returns
    name -> path."""
    import torch

    from .. import __version__

    out = Path(out_dir)
    stem = stem or Path(maps.source).stem
    fit = maps.fit
    meta = {
        "settings": fit.settings,
        "pixel_size_nm": maps.pixel_size_nm,
        "source": maps.source,
        "units": "rates in 1/tau, tau = ell0^2/(M A), ell0 = 10 nm; only ratios to M are identifiable",
    }
    render = maps.preprocessing.get("render")
    if render:  # a rendered table: where pixel (0, 0) lies in the table's coordinates (nm)
        meta["origin_nm"] = render["origin_nm"]
    if origin_nm is not None:
        meta["origin_nm"] = [float(v) for v in origin_nm]
    paths = {}
    for key, arr in (
        ("gamma_me", maps.gamma_me),
        ("gamma_ac", maps.gamma_ac),
        ("lambda", maps.lam),
        ("phi", np.where(maps.mask, maps.phi_hat, np.nan)),
    ):
        paths[key] = write_tiff(
            out / f"{stem}_{key}.tif",
            arr.astype(np.float32),
            maps.pixel_size_nm,
            metadata=dict(meta, map=key),
        )
    for key, arr in (
        ("gamma_me_sd", maps.gamma_me_sd),
        ("gamma_ac_sd", maps.gamma_ac_sd),
        ("lambda_sd", maps.lam_sd),
    ):
        if arr is not None:
            paths[key] = write_tiff(
                out / f"{stem}_{key}.tif",
                arr.astype(np.float32),
                maps.pixel_size_nm,
                metadata=dict(meta, map=key, uncertainty=fit.uncertainty.get("method")),
            )
    paths["mask"] = write_tiff(
        out / f"{stem}_mask.tif",
        maps.mask.astype(np.uint8),
        maps.pixel_size_nm,
        metadata={"map": "mask", "source": maps.source, "pixel_size_nm": maps.pixel_size_nm},
    )
    record = {
        "status": fit.status,
        "status_reason": fit.status_reason,
        **maps.verdict.as_record(),
        "input": maps.source,
        "pixel_size_nm": maps.pixel_size_nm,
        "settings": fit.settings,
        "preprocessing": maps.preprocessing,
        "device": fit.device,
        "runtime_s": fit.runtime_s,
        "steps_done": fit.steps_done,
        "cancelled": fit.cancelled,
        "diverged": {"step": fit.diverged_step, "message": fit.message} if fit.diverged else None,
        "notices": list(maps.notices),
        "checks": fit.checks,
        "uncertainty": fit.uncertainty,
        "losses": fit.losses,
        "history": fit.history,
        "summary": maps.summary(),
        "versions": {
            "napari-mollifier": __version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "units": meta["units"],
    }
    record.update(extra or {})
    paths["json"] = write_json(out / f"{stem}.json", record)
    return paths
