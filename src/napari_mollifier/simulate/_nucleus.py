"""Forward simulator: steady states of the "chr" model in a nucleus, and realistic renders.

Semi-implicit Fourier-spectral scheme (docs/model.md, "Simulator"): M kappa k^4, M S k^2 (S = 2A,
stabilisation) and the mean reaction rate are treated implicitly, the rest explicitly, which
is stable at dt ~ 1 tau. Outside the nucleus Gamma_me = 0 and Gamma_ac is large, so phi relaxes
to 0 there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..physics import ChromatinModel, f_prime

__all__ = [
    "NucleusSimulation",
    "nucleus_mask",
    "rate_preset",
    "lamina_shell",
    "simulate_nucleus",
    "spectral_residual",
    "RATE_PRESETS",
]

RATE_PRESETS = ("uniform", "gradient", "patches")
#: Default rates (1/tau): ~150 nm domains at ~30 % area fraction with the default model.
GAMMA_ME, GAMMA_AC = 0.002, 0.004
#: Acetylation rate outside the nucleus, driving phi to 0 there.
GAMMA_AC_OUTSIDE = 0.05


@dataclass
class NucleusSimulation:
    """A simulated nucleus: steady-state fraction, its rate maps, and how converged it is."""

    phi: np.ndarray
    gamma_me: np.ndarray
    gamma_ac: np.ndarray
    mask: np.ndarray
    pixel_size_nm: float
    model: ChromatinModel
    lamina: np.ndarray | None
    time: float
    residual_ratio: float
    history: list = field(default_factory=list)

    @property
    def lam(self) -> np.ndarray:
        """lambda = Gamma_me / Gamma_ac (NaN outside the nucleus)."""
        out = self.gamma_me / self.gamma_ac
        return np.where(self.mask, out, np.nan)


def nucleus_mask(
    shape: tuple[int, int],
    kind: str = "ellipse",
    *,
    semi_axes: tuple[float, float] | None = None,
    angle_deg: float = 20.0,
) -> np.ndarray:
    """Boolean mask of a circular or elliptical nucleus centred in the image.

    semi_axes are (a, b) in pixels; defaults fill ~85 % (circle) or 90 % x 70 % (ellipse) of
    the smaller side.
    """
    h, w = shape
    m = min(h, w)
    if kind == "circle":
        a = b = 0.425 * m if semi_axes is None else semi_axes[0]
    elif kind == "ellipse":
        a, b = (0.45 * m, 0.35 * m) if semi_axes is None else semi_axes
    else:
        raise ValueError(f"kind must be 'circle' or 'ellipse', got {kind!r}")
    y, x = np.mgrid[0:h, 0:w].astype(float)
    y -= (h - 1) / 2
    x -= (w - 1) / 2
    t = math.radians(angle_deg)
    xr, yr = x * math.cos(t) + y * math.sin(t), -x * math.sin(t) + y * math.cos(t)
    return (xr / a) ** 2 + (yr / b) ** 2 <= 1.0


def rate_preset(
    name: str,
    shape: tuple[int, int],
    *,
    gamma_me: float = GAMMA_ME,
    gamma_ac: float = GAMMA_AC,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth rate maps (Gamma_me, Gamma_ac) in 1/tau.

    uniform: constant. gradient: Gamma_me rises 0.8x -> 1.2x and Gamma_ac falls 1.1x -> 0.9x
    across x. patches: a few broad Gaussian patches (width ~ 1/6 of the image) raise Gamma_me up
    to +35 % and lower Gamma_ac up to -20 %. All keep Gamma_me / (Gamma_me + Gamma_ac) inside
    the spinodal band, so domains form everywhere.
    """
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(float)
    if name == "uniform":
        s_me = s_ac = np.ones(shape)
    elif name == "gradient":
        t = x / max(w - 1, 1)
        s_me, s_ac = 0.8 + 0.4 * t, 1.1 - 0.2 * t
    elif name == "patches":
        rng = np.random.default_rng(seed)
        bumps = np.zeros(shape)
        width = min(h, w) / 6
        for _ in range(4):
            cy, cx = rng.uniform(0.25, 0.75, 2) * (h, w)
            sign = rng.choice([-1.0, 1.0])
            bumps += sign * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * width**2))
        bumps /= max(np.abs(bumps).max(), 1e-12)
        s_me, s_ac = 1.0 + 0.35 * bumps, 1.0 - 0.2 * bumps
    else:
        raise ValueError(f"rates must be one of {RATE_PRESETS}, got {name!r}")
    return gamma_me * s_me, gamma_ac * s_ac


def lamina_shell(mask: np.ndarray, width_px: float = 3.0) -> np.ndarray:
    """Lamina affinity w(x): 1 at the nuclear edge, decaying inwards over ``width_px``; 0 outside."""
    from scipy.ndimage import distance_transform_edt

    d = distance_transform_edt(mask)
    return np.where(mask, np.exp(-0.5 * ((d - 1.0) / width_px) ** 2), 0.0)


def _wavenumbers(shape, h, device):
    ky = 2 * math.pi * torch.fft.fftfreq(shape[0], d=h, dtype=torch.float64, device=device)
    kx = 2 * math.pi * torch.fft.rfftfreq(shape[1], d=h, dtype=torch.float64, device=device)
    return ky[:, None] ** 2 + kx[None, :] ** 2


def spectral_residual(phi, gamma_me, gamma_ac, model: ChromatinModel, h: float, lamina=None):
    """Steady-state residual with the simulator's own (spectral, periodic) operators."""
    phi = torch.as_tensor(phi, dtype=torch.float64)
    k2 = _wavenumbers(phi.shape, h, phi.device)
    lap = lambda f: torch.fft.irfft2(-k2 * torch.fft.rfft2(f), s=phi.shape)  # noqa: E731
    mu = model.bulk * f_prime(phi) - model.kappa * lap(phi)
    if model.beta and lamina is not None:
        mu = mu - model.beta * torch.as_tensor(lamina, dtype=torch.float64)
    g_me = torch.as_tensor(gamma_me, dtype=torch.float64)
    g_ac = torch.as_tensor(gamma_ac, dtype=torch.float64)
    return (model.mobility * lap(mu) + g_me * (1 - phi) - g_ac * phi).numpy()


def simulate_nucleus(
    size: int | tuple[int, int] = 256,
    *,
    rates: str | tuple = "gradient",
    mask: str | np.ndarray = "ellipse",
    pixel_size_nm: float = 10.0,
    model: ChromatinModel = ChromatinModel(),
    lamina_width_px: float = 3.0,
    t_end: float = 1.0e5,
    dt: float = 10.0,
    seed: int = 0,
    device: str = "cpu",
    progress: Callable[[float, float], None] | None = None,
) -> NucleusSimulation:
    """Integrate the "chr" model to a steady state inside a nucleus.

    Parameters
    ----------
    size : int or (H, W)
        Image shape in pixels.
    rates : str or (gamma_me, gamma_ac)
        A preset of :data:`RATE_PRESETS` or two arrays in 1/tau.
    mask : "circle", "ellipse" or bool array
    pixel_size_nm : float
        Pixel size; the model's lengths are in ell0 = 10 nm, so this sets the grid spacing.
    model : ChromatinModel
        ``model.beta > 0`` switches on the lamina shell of ``lamina_width_px``.
    t_end, dt : float
        Integration time and step in tau. A fixed point of the semi-implicit scheme is an
        exact steady state of the spectral equations whatever dt, so a large stable step only
        speeds convergence: dt = 10, t_end = 1e5 gave a residual ratio of 1.5 % on a 256^2
        gradient nucleus in ~12 s on 2 CPU cores (dt = 1, t_end = 1.5e4: 3.3 %, ~25 s).
    seed : int
        Seed of the initial noise (and the "patches" preset).
    progress : callable(t, relative_change), optional
        Called every 500 steps.

    Returns
    -------
    NucleusSimulation
        With ``residual_ratio`` = rms of the steady-state residual over the rms of the reaction
        term ``Gamma_me (1 - phi)`` inside the nucleus (eroded by 5 px): the convergence check.
    """
    shape = (size, size) if isinstance(size, int) else tuple(size)
    m = (
        nucleus_mask(shape, mask, angle_deg=20.0 + 40.0 * (seed % 3))
        if isinstance(mask, str)
        else np.asarray(mask, bool)
    )
    if m.shape != shape:
        raise ValueError(f"mask shape {m.shape} differs from the image shape {shape}")
    if isinstance(rates, str):
        g_me, g_ac = rate_preset(rates, shape, seed=seed)
    else:
        g_me, g_ac = (np.broadcast_to(np.asarray(r, float), shape).copy() for r in rates)
    g_me_full = np.where(m, g_me, 0.0)
    g_ac_full = np.where(m, g_ac, GAMMA_AC_OUTSIDE)
    h = model.spacing(pixel_size_nm)
    lamina = lamina_shell(m, lamina_width_px) if model.beta else None

    dev = torch.device(device)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64, device=dev)  # noqa: E731
    gm, ga = t(g_me_full), t(g_ac_full)
    gtot = gm + ga
    gbar = float(gtot[t(m).bool()].mean())
    rng = np.random.default_rng(seed)
    phi0 = np.where(m, g_me / (g_me + g_ac), 0.0)
    phi = t(phi0 + np.where(m, 0.05 * rng.standard_normal(shape), 0.0))
    k2 = _wavenumbers(shape, h, dev)
    M, A, kappa = model.mobility, model.bulk, model.kappa
    S = 2.0 * A
    denom = 1.0 + dt * (M * kappa * k2**2 + M * S * k2 + gbar)
    w_beta = t(model.beta * lamina) if lamina is not None else None
    history = []
    n_steps = int(round(t_end / dt))
    for step in range(1, n_steps + 1):
        nonlin = A * f_prime(phi) - S * phi
        if w_beta is not None:
            nonlin = nonlin - w_beta
        react = gm - (gtot - gbar) * phi
        rhs = torch.fft.rfft2(phi) + dt * (-M * k2 * torch.fft.rfft2(nonlin) + torch.fft.rfft2(react))
        new = torch.fft.irfft2(rhs / denom, s=shape)
        if step % 500 == 0 or step == n_steps:
            change = float((new - phi).abs().max()) / dt
            history.append((step * dt, change))
            if progress is not None:
                progress(step * dt, change)
        phi = new
    phi_np = phi.cpu().numpy()
    res = spectral_residual(phi_np, g_me_full, g_ac_full, model, h, lamina)
    from scipy.ndimage import binary_erosion

    inner = binary_erosion(m, iterations=5)
    react_term = g_me_full * (1 - phi_np)
    ratio = float(np.sqrt(np.mean(res[inner] ** 2)) / np.sqrt(np.mean(react_term[inner] ** 2)))
    return NucleusSimulation(
        phi=phi_np,
        gamma_me=np.where(m, g_me, np.nan),
        gamma_ac=np.where(m, g_ac, np.nan),
        mask=m,
        pixel_size_nm=float(pixel_size_nm),
        model=model,
        lamina=lamina,
        time=n_steps * dt,
        residual_ratio=ratio,
        history=history,
    )
