"""Denoising (seed paper 3.2): ``A = I``; baseline DCT-F (Weber et al. 2015)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..operators import Identity, LinearOperator
from .base import Task

__all__ = ["Denoise"]


class Denoise(Task):
    """Remove calibration noise; the grid is unchanged."""

    name = "denoise"
    grid_rule = "same"
    baseline_name = "DCT-F"

    def operator(self, fine_shape: Sequence[int], mask: Any = None) -> LinearOperator:
        return Identity(self.dims)

    def baseline(self, y: np.ndarray, sigma: np.ndarray,
                 mask: np.ndarray | None = None) -> np.ndarray:
        from ..baselines.dct import dct_denoise
        return dct_denoise(y, np.asarray(sigma), dims=self.dims)
