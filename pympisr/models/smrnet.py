"""SMRnet: system-matrix recovery network (3d-SMRnet, Baltruschat, Szwargulski, Griese,
Grosser, Werner and Knopp, "3d-SMRnet: Achieving a new quality of MPI system matrix
recovery by deep learning", MICCAI 2020; 2d-SMRnet, its 2D form used as a baseline by
TranSMS, Guengoer et al. 2022), in 2D and 3D.

An RRDB network (ESRGAN, Wang et al., ECCV Workshops 2018, section 3.1):

1. a 3x3(x3) convolution to ``features`` channels (``F``);
2. ``blocks`` residual-in-residual dense blocks
   (:class:`~pympisr.models.dense_blocks.ResidualInResidualDenseBlock`: three dense
   blocks of 4 LeakyReLU convolutions with growth ``growth``, residual scaling 0.2),
   a 3x3 convolution and the long residual ``+ F``;
3. per x2 step: nearest-neighbour upsampling, a 3x3 convolution and LeakyReLU(0.2);
4. a 3x3 convolution with LeakyReLU and a final 3x3 convolution to ``in_channels``.

SMRnet super-resolves the strided calibration (task ``"accelerate"``) at x2, x4 and x8
(any power of two). As in ESRGAN, the convolutions inside the dense blocks start from
Kaiming-normal weights scaled by 0.1, which keeps the deep residual stack near the
identity at initialisation. Optional data-consistency layer (``data_consistency``,
:mod:`pympisr.models.data_consistency`).

Input ``(B, in_channels [+ 1 noise level], *grid)`` -> ``(B, in_channels, *(s grid))``;
any grid size (``size_multiple = 1``).

Registered sizes (``features``, ``blocks``, ``growth``):

* ``"smrnet"``: 64, 9, 32, the paper's network;
* ``"smrnet-small"``: 32, 3, 16, for CPU training;
* ``"smrnet-tiny"``: 8, 1, 4, for tests.
"""

from __future__ import annotations

import torch
from torch import nn

from .data_consistency import build_data_consistency
from .dense_blocks import ResidualDenseBlock, ResidualInResidualDenseBlock, activation
from .layers import check_dims, conv
from .registry import register
from .upsampling import NearestConvUpsampler

__all__ = ["SMRnet"]

# ESRGAN's initial scale of the dense blocks' Kaiming-normal weights
DENSE_INIT_SCALE = 0.1


@register("smrnet", features=64, blocks=9, growth=32)
@register("smrnet-small", features=32, blocks=3, growth=16)
@register("smrnet-tiny", features=8, blocks=1, growth=4)
class SMRnet(nn.Module):
    """RRDB super-resolution network (module docstring).

    Parameters
    ----------
    dims:
        2 (2d-SMRnet) or 3 (3d-SMRnet).
    in_channels:
        2 (real and imaginary part).
    scale_factor:
        Output grid / input grid per axis, a power of two >= 2.
    features, blocks, growth:
        Channels of the trunk, number of RRDBs, growth of the dense layers.
    noise_channel:
        Take one extra, constant input channel with the relative noise level.
    data_consistency, dc_tolerance:
        Optional projection onto the data: None, ``"stride"`` or ``"block"``
        (:mod:`pympisr.models.data_consistency`), and its radius factor.
    """

    size_multiple = 1

    def __init__(self, dims: int = 2, in_channels: int = 2, scale_factor: int = 2,
                 features: int = 64, blocks: int = 9, growth: int = 32,
                 noise_channel: bool = False, data_consistency: str | None = None,
                 dc_tolerance: float = 1.0) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        factor = int(scale_factor)
        if factor != scale_factor or factor < 2 or factor & (factor - 1):
            raise ValueError(f"SMRnet scale_factor must be a power of two >= 2, got "
                             f"{scale_factor}")
        self.in_channels = in_channels
        self.scale_factor = factor
        self.noise_channel = bool(noise_channel)
        self.head = conv(dims, in_channels + int(self.noise_channel), features)
        self.trunk = nn.Sequential(
            *[ResidualInResidualDenseBlock(dims, features, growth) for _ in range(blocks)],
            conv(dims, features, features))
        self.upsample = NearestConvUpsampler(dims, features, self.scale_factor)
        self.tail = nn.Sequential(conv(dims, features, features), activation("leaky_relu"),
                                  conv(dims, features, in_channels))
        self.consistency = build_data_consistency(
            data_consistency, self.scale_factor, dims, tolerance=dc_tolerance,
            noise_channel=self.noise_channel)
        self._init_dense_blocks()

    @torch.no_grad()
    def _init_dense_blocks(self) -> None:
        """ESRGAN's initialisation: Kaiming-normal x 0.1, zero bias, in every dense block."""
        for block in self.trunk.modules():
            if isinstance(block, ResidualDenseBlock):
                for layer in block.modules():
                    if isinstance(layer, (nn.Conv2d, nn.Conv3d)):
                        nn.init.kaiming_normal_(layer.weight)
                        layer.weight.mul_(DENSE_INIT_SCALE)
                        nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, in_channels [+ 1], *grid)`` -> ``(B, in_channels, *(s grid))``."""
        features = self.head(x)
        out = self.tail(self.upsample(features + self.trunk(features)))
        if self.consistency is not None:
            out = self.consistency(out, x)
        return out
