"""DnCNN (Zhang et al. 2017, "Beyond a Gaussian denoiser", IEEE TIP 26(7)) in 2D and 3D.

Layout: conv + ReLU, then ``depth - 2`` blocks of conv + batch norm + ReLU (or conv with
bias + ReLU when ``batch_norm=False``, the layout of an exported graph, where batch norm
is folded into the convolutions), then a conv
back to the input channels; the network predicts the noise and returns
``input - noise`` (residual learning). All convolutions are 3x3(x3) with zero "same"
padding, so any grid size works (``size_multiple = 1``) and the output grid equals the
input grid (``scale_factor = 1``).

Registered sizes:

* ``"dncnn"``: the paper's 17 layers x 64 features (as in the seed paper's DnCNN);
* ``"dncnn-small"``: 8 layers x 32 features, trains on a CPU and restores a 2D
  44 x 44 system matrix (3 x 817 components) in seconds;
* ``"dncnn-tiny"``: 4 layers x 8 features, for tests.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import batch_norm as norm_layer
from .layers import check_dims, conv
from .registry import register

__all__ = ["DnCNN"]


@register("dncnn", depth=17, features=64)
@register("dncnn-small", depth=8, features=32)
@register("dncnn-tiny", depth=4, features=8)
class DnCNN(nn.Module):
    """Residual denoising CNN on real/imag channel tensors.

    Parameters
    ----------
    dims:
        2 for inputs ``(B, C, H, W)``, 3 for ``(B, C, D, H, W)``.
    in_channels:
        2 (real and imaginary part of a frequency component).
    batch_norm:
        Batch normalisation in the hidden blocks (DnCNN's default); without it the
        hidden convolutions have biases.
    noise_channel:
        Take one extra input channel with the relative noise level (FFDNet-style,
        :func:`pympisr.models.conditioning.run_network`); the output keeps
        ``in_channels`` channels.
    depth:
        Number of convolution layers (>= 2).
    features:
        Channels of the hidden layers.
    """

    size_multiple = 1
    scale_factor = 1

    def __init__(self, dims: int = 2, in_channels: int = 2, depth: int = 17,
                 features: int = 64, noise_channel: bool = False,
                 batch_norm: bool = True) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"DnCNN depth must be >= 2, got {depth}")
        self.dims = check_dims(dims)
        self.in_channels = in_channels
        self.noise_channel = bool(noise_channel)
        first = in_channels + int(self.noise_channel)
        layers: list[nn.Module] = [conv(dims, first, features), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            if batch_norm:
                layers += [conv(dims, features, features, bias=False),
                           norm_layer(dims, features)]
            else:
                layers.append(conv(dims, features, features))
            layers.append(nn.ReLU(inplace=True))
        layers.append(conv(dims, features, in_channels))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` float ``(B, in_channels [+ 1], [D,] H, W)`` -> denoised ``(B,
        in_channels, [D,] H, W)`` (the noise-level channel is not returned)."""
        return x[:, :self.in_channels] - self.body(x)
