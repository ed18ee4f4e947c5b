"""A small fully convolutional network: an image in, a field on the same grid out."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ConvNet", "grid_input"]

_ACTIVATIONS = {"tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}
_PADDING = ("reflect", "circular", "zeros", "replicate")


class ConvNet(nn.Module):
    """Fully convolutional net mapping (N, C_in, H, W) to (N, C_out, H, W).

    Parameters
    ----------
    in_channels, out_channels : int
    width : int
        Channels of every hidden layer.
    depth : int
        Number of hidden 3x3 convolutions (each followed by the activation).
    dilations : sequence of int, optional
        Dilation of each hidden layer; default ``1, 2, 4, ...`` (cycled every 4 layers), which
        grows the receptive field exponentially with depth at the cost of a 3x3 kernel.
    activation : {"tanh", "gelu", "silu"}
        Smooth activations only: a mollifier layer differentiates the output.
    padding_mode : {"reflect", "circular", "zeros", "replicate"}
        How every convolution continues the image beyond its edges ("circular" for periodic
        fields). The padding keeps the spatial shape, so any H, W large enough for the padding
        works (reflect needs H, W > the largest dilation).

    Notes
    -----
    The output is the un-smoothed field ``g`` of a mollifier layer: a last 1x1 convolution
    maps the hidden channels to ``out_channels`` without an activation, so any value range
    can be reached. The input may be the data image, a fixed noise image or coordinate
    channels (:func:`grid_input`).

    Examples
    --------
    >>> import torch
    >>> net = ConvNet(2, 1, width=8, depth=3)
    >>> net(torch.zeros(1, 2, 17, 23)).shape
    torch.Size([1, 1, 17, 23])
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        *,
        width: int = 32,
        depth: int = 4,
        dilations: Sequence[int] | None = None,
        activation: str = "tanh",
        padding_mode: str = "reflect",
    ):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if padding_mode not in _PADDING:
            raise ValueError(f"padding_mode must be one of {_PADDING}, got {padding_mode!r}")
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be >= 1, got depth={depth}, width={width}")
        if dilations is None:
            dilations = [2 ** (i % 4) for i in range(depth)]
        dilations = [int(d) for d in dilations]
        if len(dilations) != depth or min(dilations) < 1:
            raise ValueError(f"dilations needs {depth} positive integers, got {dilations!r}")
        layers: list[nn.Module] = []
        c = in_channels
        for d in dilations:
            # padding = dilation keeps H, W for a 3x3 kernel.
            layers += [
                nn.Conv2d(c, width, 3, padding=d, dilation=d, padding_mode=padding_mode),
                _ACTIVATIONS[activation](),
            ]
            c = width
        layers.append(nn.Conv2d(c, out_channels, 1))
        self.net = nn.Sequential(*layers)
        self.dilations = tuple(dilations)
        self.padding_mode = padding_mode

    @property
    def receptive_field(self) -> int:
        """Width in pixels of the input window that one output pixel sees."""
        return 1 + 2 * sum(self.dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"x must have shape (N, C, H, W), got {tuple(x.shape)}")
        return self.net(x)

    def extra_repr(self) -> str:
        return f"dilations={self.dilations}, padding_mode={self.padding_mode!r}"


def grid_input(
    shape: Sequence[int],
    kind: str = "coords",
    *,
    channels: int = 2,
    seed: int = 0,
    dtype=torch.float32,
    device=None,
) -> torch.Tensor:
    """A fixed (1, C, H, W) input image for a :class:`ConvNet` that has no data input.

    ``kind="coords"``: two channels ``(y, x)`` running from -1 to 1 along each axis;
    ``kind="noise"``: ``channels`` of seeded standard normal noise (deep-image-prior style).
    """
    h, w = (int(s) for s in shape)
    if kind == "coords":
        ys = torch.linspace(-1.0, 1.0, h, dtype=dtype, device=device)
        xs = torch.linspace(-1.0, 1.0, w, dtype=dtype, device=device)
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        return torch.stack([yy, xx])[None]
    if kind == "noise":
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(1, channels, h, w, generator=gen, dtype=dtype).to(device)
    raise ValueError(f"kind must be 'coords' or 'noise', got {kind!r}")
