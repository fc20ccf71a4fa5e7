"""Super-resolution tasks (seed paper 3.2 and 4.2-4.3; TranSMS, Guengoer et al. 2022).

* :class:`Accelerate`: accelerated calibration, every ``s``-th position is measured
  (``A`` = strided sampling); output grid ``s (n - 1) + 1`` per axis, so the measured
  positions are a subset of the output grid. Baseline: bicubic/tricubic spline through
  the measured positions.
* :class:`Upsample`: TranSMS' low-resolution calibration with an ``s`` times larger
  delta sample (``A`` = ``s^d`` block mean); output grid ``n s`` per axis, same FOV.
  Baseline: bicubic/tricubic spline through the block centres.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..operators import BlockMean, LinearOperator, StridedSampling
from .base import Task

__all__ = ["Accelerate", "Upsample"]


class _SuperResolution(Task):
    baseline_name = "bicubic"
    downsample_mode = ""

    def __init__(self, dims: int = 2, scale_factor: int = 2) -> None:
        super().__init__(dims, scale_factor)
        if scale_factor < 2:
            raise ValueError(f"task {self.name!r} needs scale_factor >= 2")
        self.baseline_name = "bicubic" if dims == 2 else "tricubic"

    def baseline(self, y: np.ndarray, sigma: np.ndarray,
                 mask: np.ndarray | None = None) -> np.ndarray:
        from ..baselines.interpolation import interpolate_upsample
        return interpolate_upsample(y, self.scale_factor, dims=self.dims,
                                    mode=self.downsample_mode,
                                    target_shape=self.output_grid(y.shape[-self.dims:]))


class Accelerate(_SuperResolution):
    """Accelerated calibration: restore the full grid from every ``s``-th position."""

    name = "accelerate"
    grid_rule = "stride"
    downsample_mode = "stride"

    def operator(self, fine_shape: Sequence[int], mask: Any = None) -> LinearOperator:
        return StridedSampling(self.scale_factor, tuple(fine_shape)[-self.dims:])


class Upsample(_SuperResolution):
    """Upsampling of a calibration made with an ``s`` times larger sample."""

    name = "upsample"
    grid_rule = "scale"
    downsample_mode = "mean"

    def operator(self, fine_shape: Sequence[int], mask: Any = None) -> LinearOperator:
        return BlockMean(self.scale_factor, self.dims)
