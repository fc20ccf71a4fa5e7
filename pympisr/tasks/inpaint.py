"""Inpainting of corrupted calibration positions (seed paper 3.2 and 4.4).

``A = diag(mask)``; training masks are contiguous blocks in robot order
(:class:`pympisr.degradations.InpaintingMask`, DESIGN section 6), a new mask per
component; the loss weights missing positions more than known ones; the baseline is
biharmonic inpainting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..operators import LinearOperator, Masking
from .base import Task

__all__ = ["Inpaint"]


class Inpaint(Task):
    """Fill corrupted calibration positions (and denoise the rest).

    Parameters
    ----------
    dims:
        2 or 3.
    mask_ratio:
        Missing fraction of one elementary training mask, or ``(low, high)``.
    num_masks:
        Elementary masks combined per training sample, or ``(low, high)``.
    known_weight, missing_weight:
        Loss weights of known and missing positions.
    """

    name = "inpaint"
    grid_rule = "same"
    needs_mask = True
    baseline_name = "biharmonic"

    def __init__(self, dims: int = 2, scale_factor: int = 1, *,
                 mask_ratio: float | tuple[float, float] = (0.02, 0.1),
                 num_masks: int | tuple[int, int] = (1, 3), known_weight: float = 1.0,
                 missing_weight: float = 6.0) -> None:
        from ..degradations import InpaintingMask

        super().__init__(dims, scale_factor)
        self.masks = InpaintingMask(mask_ratio, dims, num_masks)
        self.known_weight, self.missing_weight = float(known_weight), float(missing_weight)

    def operator(self, fine_shape: Sequence[int], mask: Any = None) -> LinearOperator:
        if mask is None:
            raise ValueError("the inpainting operator needs a mask (True = valid)")
        return Masking(mask, self.dims)

    def draw_mask(self, spatial: Sequence[int], rng: np.random.Generator) -> np.ndarray:
        return self.masks.sample(spatial, rng)

    def loss(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        from ..training.losses import weighted_masked_l1
        return weighted_masked_l1(pred, batch["target"], batch["valid"], batch["mask"],
                                  known_weight=self.known_weight,
                                  missing_weight=self.missing_weight,
                                  sample_weight=batch.get("sample_weight"))

    def baseline(self, y: np.ndarray, sigma: np.ndarray,
                 mask: np.ndarray | None = None) -> np.ndarray:
        from ..baselines.inpainting import inpaint_biharmonic
        if mask is None:
            raise ValueError("inpainting needs a mask (True = valid)")
        return inpaint_biharmonic(y, mask, dims=self.dims)
