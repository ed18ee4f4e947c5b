"""Forward simulation of chromatin steady states, for synthetic data and sample images."""

from ._files import write_simulation
from ._nucleus import (
    RATE_PRESETS,
    NucleusSimulation,
    lamina_shell,
    nucleus_mask,
    rate_preset,
    simulate_nucleus,
    spectral_residual,
)
from ._render import (
    MODALITIES,
    THUNDERSTORM_HEADER,
    MicroscopeRender,
    Modality,
    SMLMRender,
    render_intensity,
    render_localisation_table,
    render_microscope,
    render_smlm,
)

__all__ = [
    "write_simulation",
    "THUNDERSTORM_HEADER",
    "render_intensity",
    "render_localisation_table",
    "render_microscope",
    "render_smlm",
    "MicroscopeRender",
    "SMLMRender",
    "Modality",
    "MODALITIES",
    "RATE_PRESETS",
    "NucleusSimulation",
    "lamina_shell",
    "nucleus_mask",
    "rate_preset",
    "simulate_nucleus",
    "spectral_residual",
]
