"""Networks that produce the fields a mollifier layer differentiates."""

from ._mlp import CoordinateMLP, FourierFeatures

__all__ = ["CoordinateMLP", "FourierFeatures"]
