"""Losses on valid (non-padded) pixels (seed paper 3.3).

Tensors are ``(B, C, *spatial)``; ``valid`` is ``(B, 1, *spatial)`` with 1 on pixels of
the original sampling grid and 0 on the zero padding of the training patch.

Optional per-sample weights ``sample_weight`` ``(B,)`` make each loss a weighted mean
over the samples of a batch. :func:`noise_level_weights` gives the weights of the
``[loss]`` config table: ``(sigma + floor)^-power`` for the relative noise std ``sigma``
of each sample. With a plain L1 loss every pixel pulls on the weights equally, so the
noise-free and nearly noise-free samples, whose errors are a hundred times smaller, are
fitted only as well as the network's error floor on noisy samples allows; weighting by
the inverse noise level asks for an error proportional to the noise (plus the floor),
the accuracy the papers' noise-free protocol measures.
"""

from __future__ import annotations

import torch

__all__ = ["masked_l1", "noise_level_weights", "sample_weighted", "weighted_masked_l1"]


def noise_level_weights(sigma: torch.Tensor, floor: float, power: float = 1.0
                        ) -> torch.Tensor:
    """Per-sample loss weights ``(sigma + floor)^-power`` ``(B,)`` for the relative noise
    stds ``sigma`` (``(B,)`` or ``(B, 1)``, the training samples' ``"sigma"``); ``floor``
    > 0 bounds the weight of noise-free samples (module docstring)."""
    if not floor > 0:
        raise ValueError(f"noise-level weights need floor > 0, got {floor!r}")
    return (sigma.reshape(-1) + floor) ** (-power)


def sample_weighted(valid: torch.Tensor, sample_weight: torch.Tensor | None) -> torch.Tensor:
    """``valid`` ``(B, 1, *spatial)`` times the per-sample weights ``(B,)`` (or
    ``valid`` itself when there are none): the pixel weights of a weighted mean."""
    if sample_weight is None:
        return valid
    return valid * sample_weight.reshape(-1, *([1] * (valid.dim() - 1))).to(valid.dtype)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
              sample_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error over valid pixels and all channels.

    ``sum(w * valid * |pred - target|) / (C * sum(w * valid))`` with the per-sample
    weights ``w`` ``(B,)`` (1 when None); padding does not count.
    """
    weight = sample_weighted(valid, sample_weight).expand_as(pred)
    return (weight * (pred - target).abs()).sum() / weight.sum().clamp_min(1e-12)


def weighted_masked_l1(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                       known: torch.Tensor, *, known_weight: float = 1.0,
                       missing_weight: float = 6.0,
                       sample_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Inpainting loss: L1 with separate weights for known and missing pixels.

    ``known`` is ``(B, 1, *spatial)`` with 1 where the degraded input was sampled (mask
    value "valid" of the inpainting mask) and 0 where it was missing; each pixel of the
    grid (``valid == 1``) is weighted by ``known_weight`` or ``missing_weight`` and the sum
    is divided by ``C * sum(valid)``; per-sample weights ``sample_weight`` ``(B,)``
    multiply both sums (a weighted mean over the samples).
    """
    valid = sample_weighted(valid, sample_weight)
    weight = valid * (known_weight * known + missing_weight * (1.0 - known))
    weight = weight.expand_as(pred)
    return (weight * (pred - target).abs()).sum() / \
        (valid.expand_as(pred).sum().clamp_min(1e-12))
