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

import torch
from torch import nn

from .data_consistency import build_data_consistency
from .layers import check_dims, conv
from .registry import register
from .upsampling import LR_GRIDS, interpolate_to_fine

__all__ = ["VDSR"]


@register("vdsr", depth=20, features=64)
@register("vdsr-small", depth=10, features=32)
@register("vdsr-tiny", depth=3, features=8)
class VDSR(nn.Module):
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

    size_multiple = 1

    def __init__(self, dims: int = 2, in_channels: int = 2, scale_factor: int = 2,
                 depth: int = 20, features: int = 64, lr_grid: str = "block",
                 noise_channel: bool = False, data_consistency: str | None = None,
                 dc_tolerance: float = 1.0) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        if depth < 2:
            raise ValueError(f"VDSR depth must be >= 2, got {depth}")
        if int(scale_factor) != scale_factor or scale_factor < 1:
            raise ValueError(f"scale_factor must be a positive integer, got {scale_factor!r}")
        if lr_grid not in LR_GRIDS:
            raise ValueError(f"lr_grid must be one of {LR_GRIDS}, got {lr_grid!r}")
        self.in_channels = in_channels
        self.scale_factor = int(scale_factor)
        self.lr_grid = lr_grid
        self.noise_channel = bool(noise_channel)
        layers: list[nn.Module] = [conv(dims, in_channels + int(self.noise_channel), features),
                                   nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [conv(dims, features, features), nn.ReLU(inplace=True)]
        layers.append(conv(dims, features, in_channels))
        self.body = nn.Sequential(*layers)
        self.consistency = build_data_consistency(
            data_consistency, self.scale_factor, dims, tolerance=dc_tolerance,
            noise_channel=self.noise_channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, in_channels [+ 1], *grid)`` -> ``(B, in_channels, *(s grid))``."""
        fine = interpolate_to_fine(x, self.scale_factor, self.lr_grid)
        out = fine[:, :self.in_channels] + self.body(fine)
        if self.consistency is not None:
            out = self.consistency(out, x)
        return out
