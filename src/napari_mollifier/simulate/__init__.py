"""Forward simulation of chromatin steady states, for synthetic data and sample images."""

from ._nucleus import (RATE_PRESETS, NucleusSimulation, lamina_shell, nucleus_mask, rate_preset,
                       simulate_nucleus, spectral_residual)

__all__ = ["RATE_PRESETS", "NucleusSimulation", "lamina_shell", "nucleus_mask", "rate_preset",
           "simulate_nucleus", "spectral_residual"]
