"""Networks that produce the fields a mollifier layer differentiates."""

from ._mlp import CoordinateMLP, FourierFeatures
from ._piratenet import FactorizedLinear, PirateBlock, PirateNet, init_last_layer_lstsq

__all__ = ["CoordinateMLP", "FactorizedLinear", "FourierFeatures", "PirateBlock", "PirateNet", "init_last_layer_lstsq"]
