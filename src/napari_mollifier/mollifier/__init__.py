"""Mollifier layers: derivatives of a field as convolutions with a smooth bump kernel."""

from ._bump import analytic_bump_derivative_kernel, bump, bump_kernel, bump_transform
from ._functional import BOUNDARIES, FFT_MIN_KERNEL_WIDTH, mollifier_margin, mollify
from ._layer import MollifierLayer
from ._stencils import central_stencil

__all__ = [
    "BOUNDARIES",
    "FFT_MIN_KERNEL_WIDTH",
    "MollifierLayer",
    "analytic_bump_derivative_kernel",
    "bump",
    "bump_kernel",
    "bump_transform",
    "central_stencil",
    "mollifier_margin",
    "mollify",
]
