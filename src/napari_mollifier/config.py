"""Typed settings shared by the API, the CLI and the GUI, saved beside every result."""

from __future__ import annotations

import re
import typing
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ARCHS",
    "COMPARISON_FIELDS",
    "COORDINATE_ARCHS",
    "DEFAULT_KERNEL_RADIUS_NM",
    "DEFAULT_NETWORK_SIZE",
    "InferenceSettings",
    "LEGACY_FIELDS",
    "option_name",
    "resolved_kernel_radius_nm",
    "settings_from_record",
]

Arch = Literal["grid", "mlp", "piratenet", "convnet"]

#: The architectures of the trainable field (``InferenceSettings.arch``).
ARCHS: tuple[str, ...] = typing.get_args(Arch)

#: The trainable fields that are coordinate networks: the only ones autodiff can differentiate.
COORDINATE_ARCHS = ("mlp", "piratenet")

#: (width, blocks) of each network when ``network_width`` / ``network_blocks`` are None: mlp =
#: hidden width (= number of Fourier features) and layers; piratenet = width (= embedding size:
#: width / 2 frequencies) and gated blocks; convnet = hidden channels and dilated 3x3 layers
#: (dilations 1, 2, 4, 8: a 31 px receptive field).
DEFAULT_NETWORK_SIZE = {"mlp": (128, 3), "piratenet": (128, 1), "convnet": (32, 4)}

#: Settings that are comparison / benchmark switches rather than user choices: they stay in the
#: API and are accepted by the CLI, but the napari form and ``mollifier infer --help`` hide them.
COMPARISON_FIELDS = (
    "derivatives",
    "alignment_every",
    "residual_form",
    "network_width",
    "network_blocks",
    "likelihood",
    "noise_scaled_tolerance",
)

#: Keys that settings records saved by earlier versions may hold and that no longer exist (the
#: physics model was always "chr"); :func:`settings_from_record` drops them.
LEGACY_FIELDS = ("model",)


class InferenceSettings(BaseModel):
    """Settings of one rate-map inference (``infer_rates``).

    Lengths are physical (nm) so that a setting means the same at any pixel size.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["pinn", "direct"] = Field(
        "pinn",
        description="pinn: train a field whose mollified derivatives satisfy the model (robust to "
        "noise); direct: read the rates off the mollified data in one solve (fast, noise-sensitive)",
    )
    arch: Arch = Field(
        "grid",
        description="the trainable field: grid = free per-pixel field trained through a Fourier "
        "preconditioner (default, fastest); the networks learn a correction to the smoothed data, starting "
        "at zero: mlp = coordinate MLP on random Fourier features (128 wide, 3 layers); piratenet = "
        "PirateNet (gated residual blocks, random weight factorisation) on Fourier features; convnet = "
        "dilated convolutional net whose input is the smoothed data and the pixel coordinates. Networks "
        "are slower; use the soap optimizer with them",
    )
    optimizer: Literal["adam", "soap"] = Field(
        "adam", description="adam, or soap (second-order preconditioning; for the network architectures)"
    )
    derivatives: Literal["mollifier", "autodiff"] = Field(
        "mollifier",
        description="how the residual's derivatives of the field are taken: mollifier = "
        "spectral convolutions of the field with the differentiated bump (the method); autodiff = the "
        "baseline of recursive torch.autograd through a coordinate network (arch mlp or piratenet only; "
        "10-100x slower per step at 4th order, for comparisons)",
    )
    steps: int = Field(1200, ge=0, description="training steps (pinn)")
    learning_rate: float | None = Field(
        None,
        gt=0,
        description="learning rate of the optimizer; default: 0.05 for grid, 3e-3 for piratenet "
        "(after a 200-step warm-up), 1e-3 for mlp and convnet",
    )
    init_smoothing_px: float | None = Field(
        None,
        ge=0,
        description="Gaussian smoothing (pixels) of the "
        "data for the starting field and the residual scale; default "
        "grows with the estimated per-pixel noise sigma: clip(1 + 50 sigma, 1, 3)",
    )
    # About one pixel (10.1 nm at 10 nm pixels), where the sampled bump is a delta and the layer takes
    # exact spectral derivatives: what the noise-free direct read-out needs; the best radius for the
    # PINN under noise has not been established. None resolves per image: resolved_kernel_radius_nm.
    kernel_radius_nm: float | None = Field(
        None,
        gt=0,
        description="mollifier radius in nm: smoothing of phi_hat's derivatives; must exceed half a "
        "pixel. Default: about one pixel, max(10.1 nm, 1.01 x pixel size) (no smoothing, exact "
        "spectral derivatives)",
    )
    rate_scale_nm: float = Field(
        500.0,
        gt=0,
        description="spacing of the rate maps' control points: rates "
        "vary on this scale and no faster (must span several domains and at least 2 pixels)",
    )
    edge_margin_nm: float = Field(
        100.0,
        ge=0,
        description="the residual is evaluated this far inside the nucleus edge (at least one pixel)",
    )
    # 0.5: at 10 nm pixels the residual of the true steady state under exact derivatives is already
    # 35-50 % of the reaction (the pixel grid under-resolves interfaces), and tighter values made the
    # fit diverge (measured).
    residual_tolerance: float = Field(
        0.5,
        gt=0,
        description="residual scale relative to the reaction term (sets the PDE weight), for data "
        "with up to 3 % noise in phi; noisier data get it in proportion to their noise (the PDE is "
        "not held tighter than the noise lets the field follow: held at 0.5, 5-10 % noise put the "
        "mean rates 1.2-7x high)",
    )
    noise_scaled_tolerance: bool = Field(
        True,
        description="grow residual_tolerance with the noise above 3 % (a comparison switch: off, "
        "the tolerance stays as given at any noise)",
    )
    residual_form: Literal["nested", "chain"] = Field(
        "nested",
        description="how lap(mu) is taken: nested = "
        "mollifier Laplacian of mu(phi_hat) (more accurate on "
        "pixel grids that barely resolve interfaces); chain = "
        "chain rule from derivatives of phi_hat",
    )
    noise_floor: float = Field(0.01, gt=0, description="smallest noise level assumed for the data term")
    smoothness: float = Field(
        3e-2,
        ge=0,
        description="roughness penalty on the rate control grid "
        "at 1 % noise (or less); it grows as (noise / 1 %)^2 with the estimated noise",
    )
    psf_sigma_nm: float | None = Field(
        None,
        ge=0,
        description="Gaussian blur of the imaging (e.g. the "
        "localisation precision of STORM): phi_hat is blurred by it before it "
        "is compared with the data. Default: 15 nm for intensity input, 0 for "
        "fraction input",
    )
    psf_sigma_min_nm: float | None = Field(
        None,
        gt=0,
        description="with psf_sigma_max_nm: fit the PSF width within these bounds instead of taking "
        "psf_sigma_nm: the fit runs at several widths and keeps the one of lowest loss, reported with "
        "the losses at each width (about 6 fits' time). Bright images pin the width (simulated nuclei "
        "at 1000 counts per pixel blurred by 15 nm: 12.9 and 15.0 nm); where the loss falls toward a "
        "bound, or the bounds' losses are barely higher, the width is not pinned and the rates are "
        "undetermined",
    )
    psf_sigma_max_nm: float | None = Field(
        None, gt=0, description="upper bound of the fitted PSF width (with psf_sigma_min_nm)"
    )
    likelihood: Literal["gaussian", "poisson"] = Field(
        "gaussian",
        description="the data term: gaussian = one noise level for every pixel; poisson = photon "
        "counts (localisation renders, photon-counting detectors), each pixel weighted by 1 / its "
        "variance, which grows with the signal as read off the image's own noise (no calibration); "
        "where the noise does not look like counts the fit stays gaussian and its record says why. A "
        "comparison: on simulated renders it did worse than gaussian (benchmarks/results/likelihood.md)",
    )
    calibration: Literal["fixed", "plateaus", "joint"] = Field(
        "fixed",
        description="how the data relate to phi_hat: fixed = the data are phi (blurred by the PSF); "
        "plateaus = the data are gain x phi + offset, with gain and offset putting the image's two "
        "modes on a steady state's plateau levels (then re-read from the fitted field and refitted: two "
        "fits); joint = gain and offset fitted by least squares at every step with the residual "
        "relative to lap(mu) (a comparison: the field flattens, docs/decisions.md)",
    )
    # Intensity calibration: the image alone does not fix the phi scale to the ~1 % the rates need
    # (benchmarks/results/intensity_calibration.md), so a measured one can be given.
    euchromatin_level: float | None = Field(
        None,
        description="intensity input: the image value of pure "
        "euchromatin (phi = 0), from a calibration; give it with "
        "heterochromatin_level. Default (both unset): the Otsu class medians "
        "of the nucleus, which leaves the rates undetermined",
    )
    heterochromatin_level: float | None = Field(
        None,
        description="intensity input: the image value of pure "
        "heterochromatin (phi = 1), from a calibration; phi = (I - "
        "euchromatin_level) / (heterochromatin_level - euchromatin_level)",
    )
    precision: Literal["float32", "float64"] = Field(
        "float32", description="float32 (faster; same maps to three digits) or float64"
    )
    uncertainty: Literal["laplace", "sandwich", "bootstrap", "none"] = Field(
        "laplace",
        description="standard-deviation maps of the rates: laplace = the rate coefficients' "
        "covariance from the linearised fit, the data noise carried through the 4th-order operator plus "
        "the fitted residual corrected for its spatial correlation (cheap, default); sandwich = from the "
        "residual alone (too narrow: for comparison); bootstrap = spread of bootstrap_fits refits of the "
        "fitted field with fresh noise of the estimated level (bootstrap_fits times the fit's cost); "
        "none = no sd maps. Each adds a systematic part, 2 x the noise in phi x the rate, for the bias "
        "a fit keeps (calibrated on simulated nuclei)",
    )
    bootstrap_fits: int = Field(8, ge=2, description="refits of the bootstrap uncertainty")
    seed: int = Field(0, description="random seed of the fit")
    device: str = Field(
        "auto",
        description="auto: CUDA if available, else Apple MPS, else CPU; cuda:N picks the N-th GPU",
    )
    report_every: int = Field(50, ge=1, description="steps between progress events")
    alignment_every: int = Field(
        0,
        ge=0,
        description="log the gradient alignment score of the data and "
        "residual terms every this many steps (0: never; each costs two extra "
        "backward passes, not counted in the time per step)",
    )
    network_width: int | None = Field(
        None,
        ge=1,
        description="network architectures only: mlp = hidden width (and number of Fourier "
        "features), piratenet = width (embedding size, width / 2 frequencies), convnet = hidden channels. "
        "Default: 128 for mlp and piratenet, 32 for convnet",
    )
    network_blocks: int | None = Field(
        None,
        ge=1,
        description="network architectures only: mlp = hidden layers, piratenet = gated residual "
        "blocks, convnet = dilated 3x3 layers. Default: 3 for mlp, 1 for piratenet, 4 for convnet",
    )

    @field_validator("device")
    @classmethod
    def _known_device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {v!r}")
        return v

    @model_validator(mode="after")
    def _levels_come_in_pairs(self):
        eu, het = self.euchromatin_level, self.heterochromatin_level
        if (eu is None) != (het is None):
            raise ValueError(
                "give both euchromatin_level and heterochromatin_level (a calibration) or neither"
            )
        if eu is not None and not het > eu:
            raise ValueError(f"heterochromatin_level ({het}) must be above euchromatin_level ({eu})")
        return self

    @model_validator(mode="after")
    def _psf_bounds_come_in_pairs(self):
        lo, hi = self.psf_sigma_min_nm, self.psf_sigma_max_nm
        if (lo is None) != (hi is None):
            raise ValueError(
                "give both psf_sigma_min_nm and psf_sigma_max_nm (the PSF width's bounds) or neither"
            )
        if lo is not None and not hi > lo:
            raise ValueError(f"psf_sigma_max_nm ({hi}) must be above psf_sigma_min_nm ({lo})")
        return self

    @property
    def psf_bounds_nm(self) -> tuple[float, float] | None:
        """(min, max) of the fitted PSF width, or None when the width is taken as given."""
        if self.psf_sigma_min_nm is None:
            return None
        return float(self.psf_sigma_min_nm), float(self.psf_sigma_max_nm)

    @model_validator(mode="after")
    def _autodiff_needs_a_coordinate_network(self):
        if self.derivatives == "autodiff" and self.arch not in COORDINATE_ARCHS:
            raise ValueError(
                f"derivatives='autodiff' differentiates a coordinate network: use arch mlp or "
                f"piratenet, not {self.arch!r}"
            )
        return self

    def network_size(self) -> tuple[int, int]:
        """(width, blocks) of the network ``arch`` (its :data:`DEFAULT_NETWORK_SIZE` where unset)."""
        width, blocks = DEFAULT_NETWORK_SIZE[self.arch]
        return (
            width if self.network_width is None else self.network_width,
            blocks if self.network_blocks is None else self.network_blocks,
        )

    @property
    def training_steps(self) -> int:
        """Steps the fit trains: ``steps`` for the PINN, none for the direct read-out."""
        return self.steps if self.method == "pinn" else 0

    @property
    def intensity_levels(self) -> tuple[float, float] | None:
        """(euchromatin, heterochromatin) intensity of a calibration, or None."""
        if self.euchromatin_level is None:
            return None
        return float(self.euchromatin_level), float(self.heterochromatin_level)


#: The default kernel radius: about one pixel, and never below the 10.1 nm of 10 nm pixels.
DEFAULT_KERNEL_RADIUS_NM = 10.1
DEFAULT_KERNEL_RADIUS_PX = 1.01


def resolved_kernel_radius_nm(settings: InferenceSettings, pixel_size_nm: float) -> float:
    """The mollifier radius (nm) a fit at this pixel size uses: ``settings.kernel_radius_nm``, or
    when unset about one pixel, ``max(10.1, 1.01 x pixel_size_nm)`` (10.1 nm at 10 nm pixels).

    A radius between half a pixel and about one pixel samples the bump at its centre only, so
    the layer takes exact spectral derivatives (no smoothing) at any pixel size."""
    if settings.kernel_radius_nm is not None:
        return float(settings.kernel_radius_nm)
    return max(DEFAULT_KERNEL_RADIUS_NM, DEFAULT_KERNEL_RADIUS_PX * float(pixel_size_nm))


def option_name(field: str) -> str:
    """The command-line option of a settings field: ``kernel_radius_nm`` -> ``--kernel-radius-nm``."""
    return "--" + field.replace("_", "-")


def settings_from_record(record: dict) -> InferenceSettings:
    """Settings from a saved record (the ``"settings"`` of an ``S.json``), written by this or an
    earlier version: keys of :data:`LEGACY_FIELDS` are dropped, everything else is validated."""
    return InferenceSettings(**{k: v for k, v in record.items() if k not in LEGACY_FIELDS})
