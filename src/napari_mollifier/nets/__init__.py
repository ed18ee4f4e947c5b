"""Networks that produce the fields a mollifier layer differentiates."""

from ._convnet import ConvNet, grid_input
from ._mlp import CoordinateMLP, FourierFeatures
from ._piratenet import FactorizedLinear, PirateBlock, PirateNet, init_last_layer_lstsq

__all__ = [
    "ConvNet",
    "CoordinateMLP",
    "FactorizedLinear",
    "FourierFeatures",
    "PirateBlock",
    "PirateNet",
    "grid_input",
    "init_last_layer_lstsq",
]
