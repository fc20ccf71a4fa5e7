"""Two trained networks of one task, chosen per component by its noise level.

A network trained with the noise-level-weighted loss (``[loss] noise_floor``,
:func:`pympisr.training.losses.noise_level_weights`) is the most accurate at low noise
and loses 1-3 dB under strong noise; the same network trained with the plain L1 is the
reverse (README, "Noise-level-weighted loss"). :class:`NoiseSwitch` runs both on every
component and keeps, per component, the output of ``low`` where the relative noise
level is at most ``threshold`` and the output of ``high`` above it:

    restored_b = low(x_b, sigma_b)   if sigma_b <= threshold
                 high(x_b, sigma_b)  otherwise,

with ``sigma_b`` the component's noise std relative to its unit-max normalisation (the
noise channel of :mod:`pympisr.models.conditioning`). Both parts must be
noise-conditioned networks of the same task (``dims``, ``scale_factor``, no mask), so
the switch is itself such a network: the end-to-end export
(:class:`pympisr.export.EndToEnd`), restore and evaluation treat it like any other, and
the exported graph keeps the inputs ``sm`` and ``sigma`` (the choice is a ``Where`` on
``sigma`` inside the graph). Both parts run on every component, so it costs their sum.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["NoiseSwitch"]


class NoiseSwitch(nn.Module):
    """``low`` at relative noise ``<= threshold``, ``high`` above it (module docstring).

    Parameters
    ----------
    low, high:
        Networks with ``noise_channel = True``, equal ``dims`` and ``scale_factor``,
        no mask input.
    threshold:
        Relative noise level (noise std of each part over the component's maximum
        magnitude) at and below which ``low`` is used; > 0 and finite.
    """

    noise_channel = True
    takes_mask = False

    def __init__(self, low: nn.Module, high: nn.Module, threshold: float) -> None:
        super().__init__()
        for label, net in (("low", low), ("high", high)):
            if not getattr(net, "noise_channel", False):
                raise ValueError(f"NoiseSwitch: the {label}-noise network "
                                 f"{type(net).__name__} takes no noise level input")
            if getattr(net, "takes_mask", False):
                raise ValueError(f"NoiseSwitch: the {label}-noise network "
                                 f"{type(net).__name__} takes a mask; inpainting networks "
                                 "are not supported")
        for attribute, default in (("dims", None), ("scale_factor", 1)):
            a, b = getattr(low, attribute, default), getattr(high, attribute, default)
            if int(a) != int(b):
                raise ValueError(f"NoiseSwitch: the networks differ in {attribute} "
                                 f"({a} and {b})")
        threshold = float(threshold)
        if not (math.isfinite(threshold) and threshold > 0):
            raise ValueError(f"NoiseSwitch: threshold must be a positive relative noise "
                             f"level, got {threshold}")
        self.low, self.high, self.threshold = low, high, threshold
        self.dims = int(low.dims)
        self.scale_factor = int(getattr(low, "scale_factor", 1))
        self.size_multiple = math.lcm(int(getattr(low, "size_multiple", 1)),
                                      int(getattr(high, "size_multiple", 1)))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """``inputs`` ``(B, 3, *grid)``: real, imaginary part and the constant relative
        noise-level channel -> ``(B, 2, *(scale_factor * grid))``."""
        level = inputs[(slice(None), slice(2, 3)) + (slice(0, 1),) * self.dims]
        return torch.where(level <= self.threshold, self.low(inputs), self.high(inputs))
