"""The inverse solver: rate maps from one steady-state image, as a generator of progress events.

Unknowns: a field g (free per-pixel values, or a coordinate MLP) whose mollified version
``phi_hat = g * eta`` fits the data, and two smooth rate maps on a coarse bicubic basis.
Given phi_hat the steady-state residual is *linear* in the rate coefficients, so each step
solves for them exactly (a small regularised least-squares problem: variable projection) and
the optimiser moves only g. Because the coefficients are optimal, the gradient of the loss
with respect to g is the same with them held fixed (envelope theorem): they are detached.

Loss (per pixel means):

    L = mean_data((phi_hat - phi)^2) / s_d^2 + mean_interior(r^2) / s_r^2

with ``s_d = max(noise level of the data, noise_floor)`` and ``s_r = residual_tolerance x rms
of the reaction term Gamma_me (1 - phi_hat)`` of the first (direct) read-out: the PDE must hold
to a few percent of the reaction, and phi_hat must stay within the noise of the data.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from ..config import ARCHS, COORDINATE_ARCHS, InferenceSettings
from ..mollifier import MollifierLayer
from ..optim import make_optimizer
from ..physics import DERIVATIVES_NEEDED, ChromatinModel, chemical_potential, mu_laplacian
from ._basis import SmoothBasis

__all__ = ["ProgressEvent", "RateFit", "RateProblem", "fit_rates", "estimate_noise", "resolve_device"]


@dataclass
class ProgressEvent:
    """What the solver reports every ``report_every`` steps (and at the end)."""

    step: int
    total_steps: int
    losses: dict
    elapsed_s: float
    # Current maps on the analysed crop (float32 numpy, NaN outside the analysed region).
    maps: dict | None = None
    done: bool = False
    # Where the crop lies in the full image: maps go to ``full[box]`` (slices of rows, columns).
    box: tuple | None = None


@dataclass
class RateFit:
    """Result of a fit on the full image grid (NaN outside the analysed region)."""

    gamma_me: np.ndarray
    gamma_ac: np.ndarray
    lam: np.ndarray
    phi_hat: np.ndarray
    analysed: np.ndarray
    losses: dict
    history: list = field(default_factory=list)
    runtime_s: float = 0.0
    device: str = "cpu"
    steps_done: int = 0
    cancelled: bool = False
    settings: dict = field(default_factory=dict)
    # Training stopped at a NaN/Inf or exploding loss; the maps are those of the last good step.
    diverged: bool = False
    diverged_step: int | None = None
    message: str = ""
    #: (step, alignment score of the data and residual gradients) every ``alignment_every`` steps.
    alignment: list = field(default_factory=list)
    #: Mean wall time of one training step, the alignment logging excluded (0 without training).
    time_per_step_s: float = 0.0


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


def estimate_noise(phi: np.ndarray, region: np.ndarray) -> float:
    """Noise level of phi inside a region: MAD of the discrete Laplacian (robust to domains)."""
    lap = 4 * phi[1:-1, 1:-1] - phi[:-2, 1:-1] - phi[2:, 1:-1] - phi[1:-1, :-2] - phi[1:-1, 2:]
    inner = region[1:-1, 1:-1]
    if not inner.any():
        return 0.0
    v = lap[inner]
    # For white noise of std s the 5-point Laplacian has std s * sqrt(20).
    return float(1.4826 * np.median(np.abs(v - np.median(v))) / math.sqrt(20.0))


#: Noise level at which ``settings.smoothness`` applies as given (it scales as (noise / this)^2).
SMOOTHNESS_REFERENCE_NOISE = 0.01


def _fft_friendly(lo: int, hi: int, size: int) -> tuple[int, int]:
    """Grow ``[lo, hi)`` (clipped to ``[0, size)``) so that the spectral layer's even extension
    (2n - 2 points) has only small prime factors: a crop of 234 px gave a 466-point FFT
    (2 x 233) that made a fit ~1.5x slower than the 480-point one of a 241 px crop."""
    from scipy.fft import next_fast_len

    lo, hi = max(lo, 0), min(hi, size)
    n = hi - lo
    target = n
    while next_fast_len(2 * target - 2) != 2 * target - 2 and target < n + 32:
        target += 1
    grow = min(target, size) - n
    lo = max(lo - grow // 2, 0)
    hi = min(lo + n + grow, size)
    lo = max(hi - n - grow, 0)
    return lo, hi


class RateProblem:
    """Data, regions, mollifier and rate basis on the analysed crop: the pieces of a rate fit.

    ``derivatives(g)`` gives the residual's derivatives of a field g on the crop, ``solve(d)``
    the rate coefficients that are optimal for them, ``residual_energy(d, coef)`` the physics
    term of the loss and ``maps(coef, u)`` the rate maps; :func:`fit_rates` trains g with them.
    """

    def __init__(
        self,
        phi: np.ndarray,
        mask: np.ndarray,
        pixel_size_nm: float,
        settings: InferenceSettings,
        model: ChromatinModel,
        device: torch.device,
        noise_level: float = SMOOTHNESS_REFERENCE_NOISE,
    ):
        from scipy.ndimage import binary_erosion

        self.model = model
        self.h = model.spacing(pixel_size_nm)
        radius_px = settings.kernel_radius_nm / pixel_size_nm
        if radius_px <= 0.5:
            raise ValueError(
                f"kernel_radius_nm={settings.kernel_radius_nm} is only {radius_px:.2f} pixels at "
                f"{pixel_size_nm} nm/pixel; use more than half a pixel"
            )
        # Spectral derivatives: the chromatin residual cancels 4th-order terms ~25x larger than
        # the reaction, and 8th-order differences at 10 nm leave errors of that size
        # (measured: rates off by 60-200 % vs 0.2 % with exact multipliers, noise-free).
        # The residual's lap(mu): "nested" = a second mollifier Laplacian of mu(phi_hat) (the
        # pseudo-spectral form), "chain" = chain rule from derivatives of phi_hat. On a steady state
        # simulated at 5 nm and sampled at 10 nm the true maps leave a residual of 20 % of the
        # reaction with "nested" against 53 % with "chain" (docs/decisions.md).
        self.nested = settings.residual_form == "nested"
        needed = ("u", "laplacian") if self.nested else DERIVATIVES_NEEDED
        self.layer = MollifierLayer(
            radius_px, needed, spacing=self.h, boundary="reflect", kernel="spectral"
        ).to(device)
        self.mu_layer = (
            MollifierLayer(
                radius_px, ("laplacian",), spacing=self.h, boundary="reflect", kernel="spectral"
            ).to(device)
            if self.nested
            else None
        )
        self.radius_px = radius_px
        margin = self.layer.margin
        edge_px = max(int(round(settings.edge_margin_nm / pixel_size_nm)), 1)
        interior = binary_erosion(mask, iterations=edge_px, border_value=0)
        if interior.sum() < 100:
            raise ValueError(
                f"the nucleus mask leaves only {int(interior.sum())} pixels more than "
                f"{settings.edge_margin_nm} nm from its edge; the mask is too small or empty"
            )
        ys, xs = np.nonzero(mask)
        pad = margin + 2
        y0, y1 = _fft_friendly(ys.min() - pad, ys.max() + pad + 1, phi.shape[0])
        x0, x1 = _fft_friendly(xs.min() - pad, xs.max() + pad + 1, phi.shape[1])
        self.box = (slice(y0, y1), slice(x0, x1))
        self.full_shape = phi.shape
        # float32 by default: on a 256^2 nucleus at 3 % noise it gave the same maps as float64 to
        # three digits, 1.45x faster on the CPU (MPS has no float64).
        self.dtype = (
            torch.float64 if (settings.precision == "float64" and device.type != "mps") else torch.float32
        )
        self.phi = torch.as_tensor(phi[self.box], dtype=self.dtype, device=device)
        self.mask = torch.as_tensor(mask[self.box], device=device)
        self.interior = torch.as_tensor(interior[self.box], device=device)
        spacing_px = settings.rate_scale_nm / pixel_size_nm
        self.basis = SmoothBasis(
            tuple(self.phi.shape), spacing_px, self.interior, dtype=torch.float64, device=device
        )
        k = self.basis.size
        d2 = self.basis.smoothness_operator().to(device)
        self.roughness = torch.block_diag(d2.T @ d2, d2.T @ d2)  # (2K, 2K)
        # Tikhonov weight of the rate maps follows the data's variance: at 3 % noise the default
        # weight left r ~0.87-0.89 on a gradient nucleus, (3 %/1 %)^2 = 9x gave 0.95 (measured,
        # benchmarks/chromatin_recovery.py); noise-free fits are unchanged.
        self.smoothness = settings.smoothness * (noise_level / SMOOTHNESS_REFERENCE_NOISE) ** 2
        self.psf_hat = None
        psf_px = (settings.psf_sigma_nm or 0.0) / pixel_size_nm
        if psf_px > 0:
            hh, ww = self.phi.shape
            ky = 2 * math.pi * torch.fft.fftfreq(hh, dtype=torch.float64)
            kx = 2 * math.pi * torch.fft.rfftfreq(ww, dtype=torch.float64)
            k2 = ky[:, None] ** 2 + kx[None, :] ** 2
            self.psf_hat = torch.exp(-0.5 * psf_px**2 * k2).to(device, self.dtype)
        self.device = device
        self.n_coef = k

    def imaged(self, u: torch.Tensor) -> torch.Tensor:
        """phi_hat as the microscope would record it (blurred by the PSF, if any)."""
        if self.psf_hat is None:
            return u
        return torch.fft.irfft2(torch.fft.rfft2(u) * self.psf_hat, s=u.shape)

    def derivatives(self, g: torch.Tensor) -> dict:
        out = {k: v[0, 0] for k, v in self.layer(g[None, None]).items()}
        if self.nested:
            mu = chemical_potential(out, self.model)
            out["mu_laplacian"] = self.mu_layer(mu[None, None])["laplacian"][0, 0]
        else:
            out["mu_laplacian"] = mu_laplacian(out, self.model)
        return out

    def _fields(self, d: dict):
        """u and the residual's constant ``b = -M lap(mu)`` on the crop, float64, zero outside
        the interior (the residual is scored there only)."""
        inside = self.interior.double()
        u = d["u"].double()
        b = -self.model.mobility * d["mu_laplacian"].double()
        return u, b * inside, inside

    def normal_equations(self, d: dict):
        """``A^T A`` and ``A^T b`` of the residual ``A c - b`` (A: columns ``B_k (1 - u)`` and
        ``-B_k u`` on the interior), built from the basis's tensor-product factors: the dense
        (pixels x 2K) design cost most of a step's time."""
        u, b, inside = self._fields(d)
        g = self.basis.gram
        a, c = (1.0 - u) * inside, u * inside
        top = torch.cat([g(a * a), -g(a * c)], dim=1)
        bottom = torch.cat([-g(a * c), g(c * c)], dim=1)
        ata = torch.cat([top, bottom], dim=0)
        atb = torch.cat([self.basis.project(a * b), -self.basis.project(c * b)])
        return ata, atb

    @torch.no_grad()
    def set_regularisation(self, d: dict) -> None:
        """Fix the rate regulariser's scale from one field (it must not change during a fit,
        or the detached coefficients would no longer give the exact gradient)."""
        ata, _ = self.normal_equations(d)
        scale = torch.diagonal(ata).mean()
        eye = torch.eye(ata.shape[1], device=ata.device, dtype=ata.dtype)
        self.reg = self.smoothness * scale * self.roughness + 1e-9 * scale * eye

    @torch.no_grad()
    def solve(self, d: dict) -> torch.Tensor:
        """Rate coefficients minimising ``|A c - b|^2 + c^T R c`` for this field."""
        if getattr(self, "reg", None) is None:
            self.set_regularisation(d)
        ata, atb = self.normal_equations(d)
        return torch.linalg.solve(ata + self.reg, atb)

    def residual(self, d: dict, coef: torch.Tensor) -> torch.Tensor:
        """Steady-state residual ``Gamma_me (1 - u) - Gamma_ac u - b`` on the interior pixels."""
        u, b, inside = self._fields(d)
        k = self.n_coef
        me, ac = self.basis.expand_separable(coef[:k]), self.basis.expand_separable(coef[k:])
        return (me * (1.0 - u) - ac * u - b)[self.interior]

    def residual_energy(self, d: dict, coef: torch.Tensor) -> torch.Tensor:
        """Mean squared residual plus the regulariser per pixel: the exact objective the
        coefficients minimise, so gradients through a detached ``coef`` are exact."""
        r = self.residual(d, coef)
        return (r.pow(2).sum() + coef @ (self.reg @ coef)) / r.numel()

    def maps(self, coef: torch.Tensor, u: torch.Tensor) -> dict:
        k = self.n_coef
        me = self.basis.expand(coef[:k]).float()
        ac = self.basis.expand(coef[k:]).float()
        nan = torch.tensor(float("nan"), device=me.device)
        inside = self.interior
        return {
            "gamma_me": torch.where(inside, me, nan).cpu().numpy(),
            "gamma_ac": torch.where(inside, ac, nan).cpu().numpy(),
            "lambda": torch.where(inside, me / ac, nan).cpu().numpy(),
            "phi_hat": u.detach().float().cpu().numpy(),
        }

    def to_full(self, crop: np.ndarray, fill=np.nan) -> np.ndarray:
        out = np.full(self.full_shape, fill, dtype=np.float32)
        out[self.box] = crop
        return out


def _preconditioner(problem: RateProblem, s_d: float, s_r: float, mean_rate: float) -> torch.Tensor:
    """Fourier symbol p(k) that makes the loss's curvature about uniform over wavenumbers.

    Linearised, the loss in g has the symbol ``eta_h(k)^2 [1/s_d^2 + rho(k)^2/s_r^2]`` with
    ``rho = M (kappa k^4 + 2 A k^2) + Gamma`` (the 4th-order operator, stiff as k^8). Training
    ``z`` with ``g = F^-1[p F z]`` and ``p = symbol^-1/2`` removes that stiffness; without it
    Adam barely moved the high wavenumbers that noise lives in (measured).
    """
    from ..mollifier import bump_kernel
    from ..mollifier._functional import sampled_bump_symbol

    h, w = problem.phi.shape
    m = problem.model
    ky = 2 * math.pi * torch.fft.fftfreq(h, d=problem.h, dtype=torch.float64)
    kx = 2 * math.pi * torch.fft.rfftfreq(w, d=problem.h, dtype=torch.float64)
    k2 = ky[:, None] ** 2 + kx[None, :] ** 2
    eta_hat = sampled_bump_symbol(torch.tensor(bump_kernel(problem.radius_px, 2)), (h, w))
    rho = m.mobility * (m.kappa * k2**2 + 2 * m.bulk * k2) + mean_rate
    psf2 = 1.0 if problem.psf_hat is None else problem.psf_hat.double().cpu().square()
    symbol = eta_hat.square().clamp_min(0.05) * (psf2 / s_d**2 + rho**2 / s_r**2)
    return (symbol / symbol[0, 0]).rsqrt().to(problem.device, problem.dtype)


def _make_field(
    problem: RateProblem, settings: InferenceSettings, precond: torch.Tensor, start: torch.Tensor
):
    """The trainable field g on the crop: (parameter groups, callable returning g).

    ``start`` is the lightly smoothed data the field begins from (noise would start the
    residual 1e4 x too high). The grid field is trained through the Fourier preconditioner;
    the networks learn a correction to ``start``, ``g = start + net(...)``, whose output
    layer starts at zero, so every architecture starts from the same field."""
    h, w = problem.phi.shape
    arch = settings.arch
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if arch == "grid":
        z = torch.nn.Parameter(torch.fft.irfft2(torch.fft.rfft2(start) / precond, s=(h, w)))
        return {"free_field": [z]}, (lambda: torch.fft.irfft2(torch.fft.rfft2(z) * precond, s=(h, w)))
    if arch == "convnet":
        return _convnet_field(problem, settings, start)
    net, coords = _coordinate_net(problem, settings)

    def field():
        return start + net(coords).reshape(h, w)

    return {"network": list(net.parameters())}, field


def _coordinate_net(problem: RateProblem, settings: InferenceSettings):
    """The MLP or PirateNet of the correction, output starting at zero, and the crop's pixel
    coordinates in [-1, 1] (rows (y, x)) it is evaluated at."""
    h, w = problem.phi.shape
    dev, dt = problem.device, problem.dtype
    from ..nets import CoordinateMLP, PirateNet

    # The networks' Fourier features must reach the interfaces' scale: with features only down to
    # ~24 px per cycle, or with the output passed through the grid field's Fourier
    # preconditioner (which damps high wavenumbers as k^-4), the MLP could not sharpen the
    # interfaces and the rates came out 4-7x too high (measured, docs/decisions.md).
    ys = torch.linspace(-1, 1, h, device=dev, dtype=dt)
    xs = torch.linspace(-1, 1, w, device=dev, dtype=dt)
    coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
    # Frequencies ~ N(0, scale^2) in cycles per coordinate unit (half the crop): two standard
    # deviations reach MIN_PERIOD_PX pixels per cycle.
    scale = max(h, w) / 2 / MIN_PERIOD_PX / 2
    width, blocks = settings.network_size()
    if settings.arch == "mlp":
        net = CoordinateMLP(
            2,
            1,
            width=width,
            depth=blocks,
            activation="tanh",
            fourier_features=width,
            fourier_scale=scale,
            seed=settings.seed,
        ).to(dev, dt)
        _zero_output(net.net[-1])
    else:
        # PirateNet: gates start closed, so the net starts as a linear model of the embedding;
        # its last layer starts at zero rather than at the paper's least-squares fit of the data:
        # a least-squares fit of the noisy data by the Fourier features would put the noise back
        # into the start field (the residual 1e4 x too high), and the smoothed data is already
        # the better start (docs/decisions.md).
        net = PirateNet(2, 1, width=width, n_blocks=blocks, fourier_scale=scale, seed=settings.seed).to(
            dev, dt
        )
        net.last.set_weight(torch.zeros_like(net.last.weight), torch.zeros_like(net.last.bias))
    return net, coords


def _field_derivatives(
    problem: RateProblem, settings: InferenceSettings, precond: torch.Tensor, start: torch.Tensor
):
    """(parameter groups, callable returning the residual's derivatives of the current field).

    Mollifier (the method): derivatives of the field g as convolutions (``problem.derivatives``).
    Autodiff (the baseline, coordinate networks only): the field is ``start_eta + net(x)`` with
    ``start_eta`` the mollified start, whose derivatives are fixed and taken once by the same
    layer (so both methods start from the same field), and the network's correction
    differentiated by recursive autograd in its coordinates. ``lap(mu)`` then follows by the chain
    rule, exact for a smooth field (the mollifier's default "nested" form is a grid
    discretisation; ``residual_form="chain"`` puts the mollifier on the same formula).
    """
    if settings.derivatives != "autodiff":
        groups, field_fn = _make_field(problem, settings, precond, start)
        return groups, (lambda: problem.derivatives(field_fn()))
    if settings.arch not in COORDINATE_ARCHS:  # settings built with model_construct skip the validator
        raise ValueError(
            f"derivatives='autodiff' needs a coordinate network (mlp or piratenet), not {settings.arch!r}"
        )
    from ..autodiff import coordinate_derivatives, grid_coordinates

    net, _ = _coordinate_net(problem, settings)
    h, w = problem.phi.shape
    start_layer = MollifierLayer(
        problem.radius_px, DERIVATIVES_NEEDED, spacing=problem.h, boundary="reflect", kernel="spectral"
    ).to(problem.device)
    with torch.no_grad():
        base = {k: v[0, 0] for k, v in start_layer(start[None, None]).items()}
    # Physical coordinates (model length units) -> the network's [-1, 1], so that autograd gives
    # derivatives in the model's units, as the mollifier's spacing does.
    phys = grid_coordinates((h, w), problem.h, dtype=problem.dtype, device=problem.device)
    to_unit = torch.tensor(
        [2.0 / ((h - 1) * problem.h), 2.0 / ((w - 1) * problem.h)], dtype=problem.dtype, device=problem.device
    )

    def derivatives():
        dn = coordinate_derivatives(lambda c: net(c * to_unit - 1.0), phys, DERIVATIVES_NEEDED)
        d = {k: base[k] + dn[k].reshape(h, w) for k in DERIVATIVES_NEEDED}
        d["mu_laplacian"] = mu_laplacian(d, problem.model)
        return d

    return {"network": list(net.parameters())}, derivatives


def _zero_output(layer: torch.nn.Module) -> None:
    """Start a network's output layer at zero, so ``start + net(...)`` begins at ``start``."""
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()


def _convnet_field(problem: RateProblem, settings: InferenceSettings, start: torch.Tensor):
    """ConvNet correction ``g = start + net(x)``; its input ``x`` is fixed: the smoothed data
    (normalised to zero mean, unit variance on the crop) and the pixel coordinates in [-1, 1],
    so the correction can depend on the local pattern and on the position (rates vary in space)."""
    from ..nets import ConvNet, grid_input

    h, w = problem.phi.shape
    width, blocks = settings.network_size()
    net = ConvNet(3, 1, width=width, depth=blocks, activation="tanh", padding_mode="reflect").to(
        problem.device, problem.dtype
    )
    _zero_output(net.net[-1])
    with torch.no_grad():
        norm = (start - start.mean()) / start.std().clamp_min(1e-6)
        x = torch.cat(
            [norm[None, None], grid_input((h, w), dtype=problem.dtype, device=problem.device)], dim=1
        )

    def field():
        return start + net(x)[0, 0]

    return {"network": list(net.parameters())}, field


#: The shortest period the networks' Fourier features reach (about two standard deviations), in
#: pixels. The networks' sizes are settings (``network_width``, ``network_blocks``; defaults in
#: :data:`napari_mollifier.config.DEFAULT_NETWORK_SIZE`).
MIN_PERIOD_PX = 8.0


#: Default learning rate per architecture (others: 1e-3).
DEFAULT_LR = {"grid": 5e-2, "piratenet": 3e-3}
#: Linear learning-rate warm-up (steps) before the cosine decay, per architecture (none: 0).
#: PirateNet: its last layer reads the unit-amplitude Fourier embedding through factorised
#: weights (x e), so full-size first steps threw the field far off (the residual 10x up in five
#: steps at lr 3e-3) and the fit spent hundreds of steps recovering (docs/decisions.md).
WARMUP_STEPS = {"piratenet": 200}
#: SOAP's epsilon per architecture (default: the library's 1e-8). In SOAP's first steps the
#: gradient statistics have rank 1-2; float32 rounding of the projected moments in the other
#: directions (~1e-7 of gradients ~1e4 here) divided by eps 1e-8 gave PirateNet's last layer an
#: update 300x the learning rate at its first step, and the fit diverged (measured).
SOAP_EPS = {"piratenet": 1e-3}


def _optimizer(settings: InferenceSettings, groups: dict):
    """The optimiser of the fit (:func:`napari_mollifier.optim.make_optimizer`, PINN settings).

    SOAP preconditions weight matrices; a free per-pixel field is not one, so it gets Adam
    (docs/method.md)."""
    lr = settings.learning_rate or DEFAULT_LR.get(settings.arch, 1e-3)
    params = [p for ps in groups.values() for p in ps]
    if settings.optimizer == "adam" or "free_field" in groups:
        return make_optimizer("adam", params, lr=lr)
    return make_optimizer("soap", params, lr=lr, eps=SOAP_EPS.get(settings.arch, 1e-8))


def _scheduler(opt, steps: int, warmup: int):
    """Cosine decay of the learning rate to 5 % over the fit, after a linear rise from 1 % over
    ``warmup`` steps (at most a sixth of the fit)."""
    warmup = min(warmup, steps // 6)
    if warmup <= 0:
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=steps, eta_min=0.05 * opt.param_groups[0]["lr"]
        )

    def factor(i):
        if i < warmup:
            return 0.01 + 0.99 * i / warmup
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (i - warmup) / (steps - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


#: A loss this many times above the lowest one seen in the fit counts as diverged.
DIVERGENCE_FACTOR = 1e4


def _divergence(loss: float, best: float) -> str:
    """Why a training loss means divergence ("" when it does not): NaN/Inf, or an explosion to
    more than :data:`DIVERGENCE_FACTOR` times the lowest loss so far."""
    if not math.isfinite(loss):
        return f"loss {loss}"
    if math.isfinite(best) and loss > DIVERGENCE_FACTOR * max(best, 1e-12):
        return f"loss {loss:.3g} exploded from {best:.3g}"
    return ""


def fit_rates(
    phi: np.ndarray,
    mask: np.ndarray,
    pixel_size_nm: float,
    settings: InferenceSettings | None = None,
    *,
    model: ChromatinModel = ChromatinModel(),
    cancel: threading.Event | None = None,
) -> Iterator[ProgressEvent | RateFit]:
    """Fit rate maps to a heterochromatin-fraction image; yield progress, then the result.

    Parameters
    ----------
    phi : (H, W) array
        Heterochromatin fraction in [0, 1] (already normalised).
    mask : (H, W) bool array
        The nucleus.
    pixel_size_nm : float
    settings : InferenceSettings
    cancel : threading.Event, optional
        Set it to stop after the current step; the result then holds the latest maps and
        ``cancelled=True``. Closing the generator stops it too.

    Yields
    ------
    ProgressEvent, ..., RateFit
        The last item is the :class:`RateFit`.
    """
    settings = settings or InferenceSettings()
    t0 = time.perf_counter()
    torch.manual_seed(settings.seed)
    device = resolve_device(settings.device)
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    phi = np.asarray(phi, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if phi.ndim != 2 or phi.shape != mask.shape:
        raise ValueError(f"phi must be 2-D and match the mask: phi {phi.shape}, mask {mask.shape}")
    if not np.isfinite(phi[mask]).all():
        raise ValueError("phi has NaN or infinite values inside the nucleus")
    noise = estimate_noise(phi, mask)
    s_d = max(noise, settings.noise_floor)
    problem = RateProblem(phi, mask, pixel_size_nm, settings, model, device, noise_level=s_d)
    smoothing_px = settings.init_smoothing_px
    if smoothing_px is None:
        smoothing_px = float(np.clip(1.0 + 50.0 * noise, 1.0, 3.0))

    # Direct read-out: mollified data, rates by one least-squares solve.
    with torch.no_grad():
        d0 = problem.derivatives(problem.phi)
        coef = problem.solve(d0)
        k = problem.n_coef
        # The residual scale comes from the read-out of lightly smoothed data: on raw noisy
        # data the 4th derivatives make the read-out (and its reaction scale) 10-100x too
        # large, while smoothing biases the rates by a factor ~2 at most, fine for a weight.
        from scipy.ndimage import gaussian_filter

        smooth = torch.as_tensor(
            gaussian_filter(problem.phi.cpu().numpy(), smoothing_px), dtype=problem.dtype, device=device
        )
        ds = problem.derivatives(smooth)
        coef_s = problem.solve(ds)
        react = (problem.basis.matrix @ coef_s[:k]) * (1 - ds["u"][problem.interior].double())
        s_r = settings.residual_tolerance * float(react.pow(2).mean().sqrt())
        mean_rate = float((problem.basis.matrix @ (coef_s[:k] + coef_s[k:])).mean().abs())
    history: list = []
    losses = {"data": float("nan"), "residual": float("nan"), "total": float("nan")}
    u_last = d0["u"]
    steps = settings.steps if settings.method == "pinn" else 0
    cancelled = False
    diverged_step, message, best_loss, coef_good = None, "", math.inf, coef
    alignment, train_time, steps_timed = [], 0.0, 0
    if steps:
        groups, derivs_fn = _field_derivatives(
            problem, settings, _preconditioner(problem, s_d, s_r, mean_rate), smooth
        )
        opt = _optimizer(settings, groups)
        params = [p for ps in groups.values() for p in ps]
        sched = _scheduler(opt, steps, WARMUP_STEPS.get(settings.arch, 0))
        data_w = problem.mask | ~problem.mask  # the whole crop: phi_hat must fit outside too
        for step in range(1, steps + 1):
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            t_step = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            d = derivs_fn()
            coef = problem.solve(d)
            data_term = (problem.imaged(d["u"]) - problem.phi)[data_w].pow(2).mean() / s_d**2
            phys_term = problem.residual_energy(d, coef) / s_r**2
            loss = data_term + phys_term
            if settings.alignment_every and (step - 1) % settings.alignment_every == 0:
                from ..optim import alignment_score, loss_term_gradients

                t_log = time.perf_counter()
                grads = loss_term_gradients([data_term, phys_term], params)
                if all(float(g.norm()) > 0 for g in grads):
                    alignment.append((step, alignment_score(grads)))
                t_step += time.perf_counter() - t_log  # logging is not part of the step
            # Divergence guard: the loss is that of the parameters after step - 1, so a bad value
            # means the last update broke them; stop and keep the maps of the last good step.
            bad = _divergence(float(loss.detach()), best_loss)
            if bad:
                diverged_step = step
                message = (
                    f"training diverged at step {step} ({bad}); kept the maps of step {step - 1}; "
                    "lower the learning rate or check the input"
                )
                break
            best_loss = min(best_loss, float(loss.detach()))
            loss.backward()
            opt.step()
            sched.step()
            train_time += time.perf_counter() - t_step
            steps_timed += 1
            u_last = d["u"].detach()
            coef_good = coef.detach()
            losses = {
                "data": float(data_term.detach()),
                "residual": float(phys_term.detach()),
                "total": float(loss.detach()),
            }
            if step % settings.report_every == 0 or step == steps:
                history.append(dict(step=step, **losses))
                yield ProgressEvent(
                    step,
                    steps,
                    dict(losses),
                    time.perf_counter() - t0,
                    maps=problem.maps(coef, u_last),
                    box=problem.box,
                )
        if diverged_step is None:
            # Autodiff derivatives need the autograd graph: no no_grad for them, detached instead.
            with torch.set_grad_enabled(settings.derivatives == "autodiff"):
                d = {k: v.detach() for k, v in derivs_fn().items()}
            coef_end = problem.solve(d)
            if bool(torch.isfinite(coef_end).all()) and bool(torch.isfinite(d["u"]).all()):
                coef, u_last = coef_end, d["u"]
            else:  # the last update broke the field
                diverged_step = steps + 1
                message = (
                    f"training diverged after the last step (NaN/Inf field); kept the maps of step {steps}"
                )
                coef = coef_good
        else:
            coef = coef_good
    maps = problem.maps(coef, u_last)
    analysed = np.zeros(problem.full_shape, dtype=bool)
    analysed[problem.box] = problem.interior.cpu().numpy()
    fit = RateFit(
        gamma_me=problem.to_full(maps["gamma_me"]),
        gamma_ac=problem.to_full(maps["gamma_ac"]),
        lam=problem.to_full(maps["lambda"]),
        phi_hat=problem.to_full(maps["phi_hat"]),
        analysed=analysed,
        losses=dict(
            losses,
            noise_estimate=noise,
            s_d=s_d,
            s_r=s_r,
            smoothness=problem.smoothness,
            init_smoothing_px=smoothing_px,
        ),
        history=history,
        runtime_s=time.perf_counter() - t0,
        device=str(device),
        steps_done=history[-1]["step"] if history else 0,
        cancelled=cancelled,
        settings=settings.model_dump(),
        diverged=diverged_step is not None,
        diverged_step=diverged_step,
        message=message,
        alignment=alignment,
        time_per_step_s=train_time / steps_timed if steps_timed else 0.0,
    )
    yield ProgressEvent(
        fit.steps_done, steps, dict(losses), fit.runtime_s, maps=maps, done=True, box=problem.box
    )
    yield fit
