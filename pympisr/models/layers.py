"""Dimension-aware layer factories (MONAI style): one ``dims`` switch, 2 or 3.

A network written with these factories runs on 2D components ``(B, C, H, W)`` and on
3D components ``(B, C, D, H, W)`` from the same code.
"""

from __future__ import annotations

from torch import nn

__all__ = ["batch_norm", "check_dims", "conv"]


def check_dims(dims: int) -> int:
    """Return ``dims`` if it is 2 or 3, else raise ValueError."""
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims!r}")
    return dims


def conv(dims: int, in_channels: int, out_channels: int, kernel_size: int = 3, *,
         bias: bool = True, padding: int | None = None) -> nn.Module:
    """``nn.Conv2d`` or ``nn.Conv3d``; stride 1, "same" zero padding by default."""
    cls = nn.Conv2d if check_dims(dims) == 2 else nn.Conv3d
    pad = kernel_size // 2 if padding is None else padding
    return cls(in_channels, out_channels, kernel_size, padding=pad, bias=bias)


def batch_norm(dims: int, channels: int) -> nn.Module:
    """``nn.BatchNorm2d`` or ``nn.BatchNorm3d``."""
    return (nn.BatchNorm2d if check_dims(dims) == 2 else nn.BatchNorm3d)(channels)
