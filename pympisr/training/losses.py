"""Losses on valid (non-padded) pixels (seed paper 3.3).

Tensors are ``(B, C, *spatial)``; ``valid`` is ``(B, 1, *spatial)`` with 1 on pixels of
the original sampling grid and 0 on the zero padding of the training patch.
"""

from __future__ import annotations

import torch

__all__ = ["masked_l1", "weighted_masked_l1"]


def masked_l1(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over valid pixels and all channels.

    ``sum(valid * |pred - target|) / (C * sum(valid))``; padding does not count.
    """
    weight = valid.expand_as(pred)
    return (weight * (pred - target).abs()).sum() / weight.sum().clamp_min(1.0)


def weighted_masked_l1(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                       known: torch.Tensor, *, known_weight: float = 1.0,
                       missing_weight: float = 6.0) -> torch.Tensor:
    """Inpainting loss: L1 with separate weights for known and missing pixels.

    ``known`` is ``(B, 1, *spatial)`` with 1 where the degraded input was sampled (mask
    value "valid" of the inpainting mask) and 0 where it was missing; each pixel of the
    grid (``valid == 1``) is weighted by ``known_weight`` or ``missing_weight`` and the sum
    is divided by ``C * sum(valid)``.
    """
    weight = valid * (known_weight * known + missing_weight * (1.0 - known))
    weight = weight.expand_as(pred)
    return (weight * (pred - target).abs()).sum() / \
        (valid.expand_as(pred).sum().clamp_min(1.0))
