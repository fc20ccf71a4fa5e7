"""How a network receives its inputs: the component, a noise-level map and a mask.

A network that declares ``noise_channel = True`` gets, after the two real/imag
channels, one constant channel holding the component's noise standard deviation
relative to its normalisation (FFDNet, Zhang et al., IEEE TIP 2018), so one model
covers relative noise from 0 to above 1. A network with ``takes_mask = True``
(partial convolutions) gets the inpainting mask as a second argument. Training, the
exported end-to-end graph and the tests all call :func:`run_network`, so the
convention lives in one place.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["run_network"]


def run_network(net: nn.Module, x: torch.Tensor, sigma: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """Run ``net`` on normalised components.

    Parameters
    ----------
    x:
        float ``(B, 2, *spatial)``, real and imaginary part, unit-max normalised.
    sigma:
        float ``(B, 1)``: noise std of each part relative to the same normalisation;
        required when ``net.noise_channel`` is true, ignored otherwise.
    mask:
        float ``(B, 1, *spatial)``, 1 = measured sample; required when
        ``net.takes_mask`` is true.
    """
    inputs = x
    if getattr(net, "noise_channel", False):
        if sigma is None:
            raise ValueError(f"{type(net).__name__} needs the noise level input 'sigma'")
        level = sigma.reshape(sigma.shape[0], 1, *([1] * (x.dim() - 2)))
        inputs = torch.cat([x, level.expand(-1, 1, *x.shape[2:]).to(x.dtype)], dim=1)
    if getattr(net, "takes_mask", False):
        if mask is None:
            raise ValueError(f"{type(net).__name__} needs the mask input")
        return net(inputs, mask)
    return net(inputs)
