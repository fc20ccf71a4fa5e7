"""RDN, the residual dense network (Zhang, Tian, Kong, Zhong and Fu, "Residual Dense
Network for Image Super-Resolution", CVPR 2018), in 2D and 3D.

Layout (the paper's Fig. 2 and eqs. 1-9):

1. the feature trunk (:class:`~pympisr.models.dense_blocks.ResidualDenseTrunk`): shallow
   features ``F_-1 = conv(x)``, ``F_0 = conv(F_-1)``; ``D`` residual dense blocks of
   ``C`` densely connected ReLU convolutions with growth ``G`` and a 1x1 local fusion;
   global feature fusion (1x1 over all block outputs, then 3x3) plus ``F_-1``;
2. for super-resolution (``scale_factor > 1``), the sub-pixel upsampler (ESPCN; one
   x2 or x3 step per factor, so x4 = x2 x2, x8 = x2 x2 x2);
3. a 3x3(x3) convolution to ``in_channels`` (real, imaginary part).

For denoising (``scale_factor = 1``) there is no upsampler and the network adds its
output to the input (global residual, as RDN for image restoration, Zhang et al., IEEE
TPAMI 43(7), 2021): it predicts the correction of the noisy component. The 3D network
is the same with 3x3x3 convolutions and a 3D pixel shuffle. An optional
:class:`~pympisr.models.data_consistency.DataConsistency` layer projects the output onto
the data (option ``data_consistency``).

Input ``(B, in_channels [+ 1 noise level], *grid)`` -> ``(B, in_channels, *(s grid))``;
any grid size (``size_multiple = 1``).

Registered sizes (``G0``, ``D``, ``C``, ``G``):

* ``"rdn"``: 64, 16, 8, 64, the paper's (D, C, G) = (16, 8, 64);
* ``"rdn-a"``: 64, 20, 6, 32, the paper's other setting (D, C, G) = (20, 6, 32);
* ``"rdn-small"``: 32, 4, 4, 16, for CPU training;
* ``"rdn-tiny"``: 8, 2, 2, 4, for tests.
"""

from __future__ import annotations

import torch
from torch import nn

from .data_consistency import build_data_consistency
from .dense_blocks import ResidualDenseTrunk
from .layers import check_dims, conv
from .registry import register
from .upsampling import SubPixelUpsampler

__all__ = ["RDN"]


@register("rdn", features=64, blocks=16, layers=8, growth=64)
@register("rdn-a", features=64, blocks=20, layers=6, growth=32)
@register("rdn-small", features=32, blocks=4, layers=4, growth=16)
@register("rdn-tiny", features=8, blocks=2, layers=2, growth=4)
class RDN(nn.Module):
    """Residual dense network for denoising (``scale_factor = 1``) and super-resolution.

    Parameters
    ----------
    dims:
        2 for ``(B, C, H, W)``, 3 for ``(B, C, D, H, W)``.
    in_channels:
        2 (real and imaginary part).
    scale_factor:
        Output grid / input grid per axis: 1 (denoising) or a product of 2s and 3s.
    features, blocks, layers, growth:
        ``G0``, ``D``, ``C``, ``G`` of the paper.
    noise_channel:
        Take one extra, constant input channel with the relative noise level
        (:func:`pympisr.models.conditioning.run_network`).
    data_consistency:
        None (off), ``"stride"`` (task ``"accelerate"``) or ``"block"`` (task
        ``"upsample"``): project the output onto the data
        (:mod:`pympisr.models.data_consistency`).
    dc_tolerance:
        Radius factor of that projection.
    """

    size_multiple = 1

    def __init__(self, dims: int = 2, in_channels: int = 2, scale_factor: int = 1,
                 features: int = 64, blocks: int = 16, layers: int = 8, growth: int = 64,
                 noise_channel: bool = False, data_consistency: str | None = None,
                 dc_tolerance: float = 1.0) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        self.in_channels = in_channels
        self.scale_factor = int(scale_factor)
        self.noise_channel = bool(noise_channel)
        self.trunk = ResidualDenseTrunk(dims, in_channels + int(self.noise_channel),
                                        features, blocks, layers, growth)
        self.upsample = (SubPixelUpsampler(dims, features, self.scale_factor)
                         if self.scale_factor > 1 else nn.Identity())
        self.reconstruct = conv(dims, features, in_channels)
        self.consistency = build_data_consistency(
            data_consistency, self.scale_factor, dims, tolerance=dc_tolerance,
            noise_channel=self.noise_channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, in_channels [+ 1], *grid)`` -> ``(B, in_channels, *(s grid))``."""
        out = self.reconstruct(self.upsample(self.trunk(x)))
        if self.scale_factor == 1:
            out = out + x[:, :self.in_channels]
        if self.consistency is not None:
            out = self.consistency(out, x)
        return out
