"""Simulated data of the paper's 1st- and 2nd-order benchmark problems
(docs/method.md, "Benchmark problems")."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ProblemData",
    "default_conductivity",
    "default_forcing",
    "simulate_first_order",
    "simulate_second_order",
]


@dataclass
class ProblemData:
    """A simulated inverse problem: noisy data of ``u`` on a grid, and the truth behind it.

    Attributes
    ----------
    order : int
        1 (``u_t = u + lambda(t)``) or 2 (``0 = lambda(x, y) lap(u) + m(x, y)``).
    grid : tuple of np.ndarray
        One 1-D coordinate array per axis: ``(t,)`` or ``(y, x)`` (rows first).
    spacing : tuple of float
        Grid spacing per axis.
    data : np.ndarray
        Observed ``u`` (with noise), shape ``tuple(len(a) for a in grid)``.
    truth : dict of str to np.ndarray
        ``"u"`` (noise-free) and ``"lambda"`` on the grid.
    source : np.ndarray or None
        The known source ``m`` of the 2nd-order problem (None for order 1).
    noise : float
        Standard deviation of the added Gaussian noise relative to the standard deviation of
        the noise-free ``u``.
    seed : int
    """

    order: int
    grid: tuple
    spacing: tuple
    data: np.ndarray
    truth: dict = field(default_factory=dict)
    source: np.ndarray | None = None
    noise: float = 0.0
    seed: int = 0

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a) for a in self.grid)


def _noisy(u: np.ndarray, noise: float, seed: int) -> np.ndarray:
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    return u + noise * float(np.std(u)) * rng.standard_normal(u.shape)


def default_forcing(t_end: float) -> Callable[[np.ndarray], np.ndarray]:
    """``lambda(t) = 0.5 + sin(2 pi t / t_end) + 0.3 cos(5 pi t / t_end)``: smooth, sign-changing."""
    return lambda t: 0.5 + np.sin(2 * math.pi * t / t_end) + 0.3 * np.cos(5 * math.pi * t / t_end)


def simulate_first_order(
    n: int = 128,
    *,
    t_end: float = 2.0,
    u0: float = 1.0,
    forcing: Callable[[np.ndarray], np.ndarray] | None = None,
    noise: float = 0.0,
    seed: int = 0,
) -> ProblemData:
    """Path of ``u_t = u + lambda(t)`` on ``n`` equally spaced times in ``[0, t_end]``, plus noise.

    Parameters
    ----------
    n : int
        Number of samples (including both ends).
    t_end : float
        Length of the time interval.
    u0 : float
        ``u(0)``.
    forcing : callable, optional
        ``lambda(t)`` for an array of times; :func:`default_forcing` when omitted.
    noise : float
        Gaussian observation noise, as a fraction of ``std(u)``.
    seed : int
        Seed of the noise.

    Notes
    -----
    The path is integrated by ``scipy.integrate.solve_ivp`` (DOP853, rtol 1e-12), so its error
    is far below any noise level studied. The noise is observation noise on a deterministic
    path (the paper's "noisy path"); ``u`` grows like ``e^t``, so keep ``t_end`` a few units.
    """
    from scipy.integrate import solve_ivp

    if n < 8:
        raise ValueError(f"n must be >= 8, got {n}")
    if not t_end > 0:
        raise ValueError(f"t_end must be positive, got {t_end}")
    lam = forcing or default_forcing(t_end)
    t = np.linspace(0.0, t_end, n)
    sol = solve_ivp(
        lambda s, y: y + lam(np.asarray(s)),
        (0.0, t_end),
        [u0],
        t_eval=t,
        method="DOP853",
        rtol=1e-12,
        atol=1e-12,
    )
    u = sol.y[0]
    truth = {"u": u, "lambda": np.asarray(lam(t), dtype=float) * np.ones_like(t)}
    return ProblemData(1, (t,), (t[1] - t[0],), _noisy(u, noise, seed), truth, None, float(noise), int(seed))


def default_conductivity(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``lambda(x, y) = 1 + 0.5 exp(-((x - 0.6)^2 + (y - 0.4)^2) / (2 * 0.15^2))``: positive, smooth."""
    return 1.0 + 0.5 * np.exp(-((x - 0.6) ** 2 + (y - 0.4) ** 2) / (2 * 0.15**2))


def simulate_second_order(
    n: int = 48,
    *,
    amplitude: float = 0.01,
    conductivity: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    noise: float = 0.0,
    seed: int = 0,
) -> ProblemData:
    """Steady state of ``0 = lambda(x, y) lap(u) + m(x, y)`` on an ``n x n`` grid of ``[0, 1]^2``.

    Parameters
    ----------
    n : int
        Grid points per axis (edges included, spacing ``1 / (n - 1)``).
    amplitude : float
        ``a`` of the manufactured field ``u = (x^2 + y^2) / 4 + a sin(2 pi x) sin(2 pi y)``;
        ``lap u = 1 - 8 pi^2 a sin(2 pi x) sin(2 pi y)`` stays positive for ``a < 1 / (8 pi^2)``.
    conductivity : callable, optional
        ``lambda(y, x)``; :func:`default_conductivity` when omitted.
    noise : float
        Gaussian noise on ``u`` as a fraction of ``std(u)``.
    seed : int

    Notes
    -----
    The well-posed form we chose: the equation is taken exactly as written (lambda multiplies
    ``lap u``, no divergence form), with a manufactured solution. ``u`` and ``lambda`` are
    given in closed form and the known source is ``m = -lambda lap u``, also in closed form, so
    the data carry no forward-solver error. ``lambda`` is identifiable wherever ``lap u != 0``,
    which the choice of ``amplitude`` guarantees everywhere: ``lambda = -m / lap u``.
    """
    if n < 8:
        raise ValueError(f"n must be >= 8, got {n}")
    if not 0 <= amplitude < 1 / (8 * math.pi**2):
        raise ValueError(f"amplitude must be in [0, 1 / (8 pi^2)) so that lap(u) > 0, got {amplitude}")
    ax = np.linspace(0.0, 1.0, n)
    y, x = np.meshgrid(ax, ax, indexing="ij")
    ss = np.sin(2 * math.pi * x) * np.sin(2 * math.pi * y)
    u = 0.25 * (x**2 + y**2) + amplitude * ss
    lap = 1.0 - 8 * math.pi**2 * amplitude * ss
    lam = (conductivity or default_conductivity)(y, x)
    if np.any(lam <= 0):
        raise ValueError("conductivity must be positive on the grid")
    truth = {"u": u, "lambda": lam, "laplacian": lap}
    h = ax[1] - ax[0]
    return ProblemData(
        2, (ax, ax), (h, h), _noisy(u, noise, seed), truth, -lam * lap, float(noise), int(seed)
    )
