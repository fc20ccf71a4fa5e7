"""SRCNN (Dong, Loy, He and Tang, "Learning a Deep Convolutional Network for Image
Super-Resolution", ECCV 2014; IEEE TPAMI 38(2), 2016), in 2D and 3D.

Layout (the paper's 9-1-5 network, section 3.1): the low-resolution input is
interpolated onto the fine grid (bicubic in 2D, trilinear in 3D,
:func:`pympisr.models.upsampling.interpolate_to_fine`, in the geometry ``lr_grid`` of the
task), then

1. patch extraction: ``9^d`` convolution to ``n1 = features`` channels, ReLU;
2. non-linear mapping: ``1^d`` convolution to ``n2 = mapping_features`` channels, ReLU;
3. reconstruction: ``5^d`` convolution to ``in_channels``.

The paper's convolutions are unpadded (the output shrinks by 12 pixels); here they use
"same" zero padding so that the output is the whole fine grid. Real and imaginary parts
are two channels (TranSMS' SRCNN baseline). Optional data-consistency layer
(:mod:`pympisr.models.data_consistency`).

Input ``(B, in_channels [+ 1 noise level], *grid)`` -> ``(B, in_channels, *(s grid))``;
any grid size (``size_multiple = 1``).

Registered sizes (``n1``, ``n2``): ``"srcnn"`` 64, 32 (the paper's); ``"srcnn-small"``
32, 16; ``"srcnn-tiny"`` 8, 4 (tests).
"""

from __future__ import annotations

from torch import nn

from .layers import conv
from .registry import register
from .upsampling import InterpolateThenRefine

__all__ = ["SRCNN"]

# kernel sizes of patch extraction, non-linear mapping and reconstruction (9-1-5)
KERNEL_SIZES = (9, 1, 5)


@register("srcnn", features=64, mapping_features=32)
@register("srcnn-small", features=32, mapping_features=16)
@register("srcnn-tiny", features=8, mapping_features=4)
class SRCNN(InterpolateThenRefine):
    """Interpolation followed by the three SRCNN convolutions (module docstring).

    Parameters
    ----------
    dims:
        2 or 3.
    in_channels:
        2 (real and imaginary part).
    scale_factor:
        Output grid / input grid per axis (a positive integer).
    features, mapping_features:
        ``n1`` and ``n2`` of the paper.
    lr_grid:
        Where the input samples lie on the fine grid: ``"block"`` (block means, task
        ``"upsample"``) or ``"stride"`` (every ``s``-th point, task ``"accelerate"``);
        see :mod:`pympisr.models.upsampling`.
    noise_channel:
        Take one extra, constant input channel with the relative noise level.
    data_consistency, dc_tolerance:
        Optional projection onto the data: None, ``"stride"`` or ``"block"``, and its
        radius factor.
    """

    def __init__(self, dims: int = 2, in_channels: int = 2, scale_factor: int = 2,
                 features: int = 64, mapping_features: int = 32, lr_grid: str = "block",
                 noise_channel: bool = False, data_consistency: str | None = None,
                 dc_tolerance: float = 1.0) -> None:
        super().__init__()
        first, middle, last = KERNEL_SIZES
        channels = in_channels + int(noise_channel)
        body = nn.Sequential(
            conv(dims, channels, features, first), nn.ReLU(inplace=True),
            conv(dims, features, mapping_features, middle), nn.ReLU(inplace=True),
            conv(dims, mapping_features, in_channels, last))
        self.setup(body, dims=dims, in_channels=in_channels, scale_factor=scale_factor,
                   lr_grid=lr_grid, noise_channel=noise_channel,
                   data_consistency=data_consistency, dc_tolerance=dc_tolerance)
