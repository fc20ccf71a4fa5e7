"""VDSR (Kim, Lee and Lee, "Accurate Image Super-Resolution Using Very Deep
Convolutional Networks", CVPR 2016), in 2D and 3D.

Layout (the paper's Fig. 2): the low-resolution input is interpolated onto the fine
grid (bicubic in 2D, trilinear in 3D, :func:`pympisr.models.upsampling.interpolate_to_fine`,
in the geometry ``lr_grid`` of the task); ``depth`` 3x3(x3) convolutions with zero
padding (``features`` channels, ReLU after all but the last, the last back to
``in_channels``) predict the residual, which is added to the interpolated input (global
residual learning). Real and imaginary parts are two channels (TranSMS' VDSR baseline).
Optional data-consistency layer (:mod:`pympisr.models.data_consistency`).

Input ``(B, in_channels [+ 1 noise level], *grid)`` -> ``(B, in_channels, *(s grid))``;
any grid size (``size_multiple = 1``).

Registered sizes (``depth``, ``features``): ``"vdsr"`` 20, 64 (the paper's);
``"vdsr-small"`` 10, 32; ``"vdsr-tiny"`` 3, 8 (tests).
"""

from __future__ import annotations

from torch import nn

from .layers import conv
from .registry import register
from .upsampling import InterpolateThenRefine

__all__ = ["VDSR"]


@register("vdsr", depth=20, features=64)
@register("vdsr-small", depth=10, features=32)
@register("vdsr-tiny", depth=3, features=8)
class VDSR(InterpolateThenRefine):
    """Interpolation plus a deep residual convolution stack (module docstring).

    Parameters
    ----------
    dims:
        2 or 3.
    in_channels:
        2 (real and imaginary part).
    scale_factor:
        Output grid / input grid per axis (a positive integer).
    depth:
        Number of convolution layers (>= 2).
    features:
        Channels of the hidden layers.
    lr_grid:
        ``"block"`` (task ``"upsample"``) or ``"stride"`` (task ``"accelerate"``): where
        the input samples lie on the fine grid (:mod:`pympisr.models.upsampling`).
    noise_channel:
        Take one extra, constant input channel with the relative noise level.
    data_consistency, dc_tolerance:
        Optional projection onto the data: None, ``"stride"`` or ``"block"``, and its
        radius factor.
    """

    residual = True

    def __init__(self, dims: int = 2, in_channels: int = 2, scale_factor: int = 2,
                 depth: int = 20, features: int = 64, lr_grid: str = "block",
                 noise_channel: bool = False, data_consistency: str | None = None,
                 dc_tolerance: float = 1.0) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"VDSR depth must be >= 2, got {depth}")
        layers: list[nn.Module] = [conv(dims, in_channels + int(noise_channel), features),
                                   nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [conv(dims, features, features), nn.ReLU(inplace=True)]
        layers.append(conv(dims, features, in_channels))
        self.setup(nn.Sequential(*layers), dims=dims, in_channels=in_channels,
                   scale_factor=scale_factor, lr_grid=lr_grid, noise_channel=noise_channel,
                   data_consistency=data_consistency, dc_tolerance=dc_tolerance)
