"""napari-mollifier: epigenetic rate maps from images of chromatin, by mollifier-layer PINNs.

The public API lives here; this package imports neither napari nor Qt.
"""

from importlib.metadata import PackageNotFoundError, version

from .autodiff import coordinate_derivatives, grid_coordinates
from .inverse import infer_nuclei, infer_rates
from .mollifier import MollifierLayer, bump_kernel, bump_transform, mollifier_margin, mollify
from .simulate import simulate_nucleus

try:
    __version__ = version("napari-mollifier")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = [
    "MollifierLayer",
    "__version__",
    "bump_kernel",
    "bump_transform",
    "coordinate_derivatives",
    "grid_coordinates",
    "infer_nuclei",
    "infer_rates",
    "mollifier_margin",
    "mollify",
    "simulate_nucleus",
]
