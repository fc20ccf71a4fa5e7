"""Data-consistency layer of the super-resolution networks (TranSMS, Guengoer et al. 2022,
eqs. 20-22 and appendix; DESIGN sections 6 and 11).

The layer moves a network's output ``x`` (fine grid, ``s n`` points per axis) onto the
set ``{x : ||A x - y|| <= eps}`` of outputs consistent with the network's input ``y``
(``n`` points per axis, already normalised as the network sees it), by the smallest
correction (the Euclidean projection, since ``A A^T`` is a multiple of the identity)::

    r = y - A x
    x_hat = x                                              if ||r|| <= eps
    x_hat = x + (1 - eps / ||r||) A^T (A A^T)^-1 r         otherwise

with ``A`` (``mode``):

* ``"stride"``: keep fine indices ``0, s, 2 s, ...`` per axis (task ``"accelerate"``,
  :class:`pympisr.operators.StridedSampling`), ``A A^T = I``; the correction sets the
  measured points to ``y`` (``eps = 0``) or moves them toward it;
* ``"block"``: mean over ``s^d`` blocks (task ``"upsample"``, TranSMS' box-car
  downsampling, :class:`pympisr.operators.BlockMean`, reused here), ``A A^T = s^-d I``;
  the correction adds the same value to every fine point of a block.

Radius: ``eps = sqrt(m) sigma tolerance`` (TranSMS eq. 20; the discrepancy principle of
DESIGN section 11) with ``m`` the number of measured *real* values (real and imaginary
channel of every input point, so ``E ||n||^2 = m sigma^2`` for noise of per-part std
``sigma``; this equals ``sqrt(2 m_complex) sigma``, the radius of
:func:`pympisr.restoration.safety.consistency_step`). ``sigma`` is the relative noise std
of the network's noise-level channel (:mod:`pympisr.models.conditioning`) when the network
has one; without it ``eps = 0`` (exact consistency). Since ``||r|| = sqrt(m) rms(r)``,
the shrink factor is computed as ``clamp(1 - tolerance sigma / rms(r), min=0)``, which
needs no count of the (dynamic) grid size.

Everything is tensor arithmetic (slicing, reshapes, ``clamp``) without data-dependent
Python branches, so the layer traces into ONNX with dynamic grid sizes, and it is
differentiable (TranSMS applies it during training and inference). The residual norm is
floored at ``1e-12`` so that the gradient stays finite when ``r = 0``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..operators import BlockMean
from .layers import check_dims

__all__ = ["DC_MODES", "DataConsistency", "build_data_consistency"]

DC_MODES = ("stride", "block")
# floor of the residual's mean square (rms floor 1e-12): keeps 1/rms and the gradient finite
MIN_MEAN_SQUARE = 1e-24


def _insert_zeros(r: torch.Tensor, factor: int, dims: int) -> torch.Tensor:
    """Adjoint of strided sampling: ``(B, C, *grid)`` -> ``(B, C, *(factor grid))`` with
    ``r`` at fine indices ``0, s, 2 s, ...`` and zeros elsewhere (reshapes only, so the
    fine size follows the input's size in an exported graph)."""
    keep = (torch.arange(factor, device=r.device) == 0).to(r.dtype)
    for k in range(dims):
        axis = 2 + k
        spread = keep.reshape(factor, *([1] * (dims - 1 - k)))
        r = (r.unsqueeze(axis + 1) * spread).flatten(axis, axis + 1)
    return r


class DataConsistency(nn.Module):
    """Projection of a network output onto the outputs consistent with its input
    (module docstring).

    Parameters
    ----------
    mode:
        ``"stride"`` or ``"block"`` (:data:`DC_MODES`).
    scale_factor:
        ``s``: output grid = ``s`` x input grid per axis.
    dims:
        2 or 3 spatial axes.
    tolerance:
        Factor on the radius ``sqrt(m) sigma`` (>= 0).
    noise_channel:
        The network input carries a last, constant noise-level channel; its value is
        ``sigma``. Without it the projection is exact (``eps = 0``).
    """

    def __init__(self, mode: str, scale_factor: int, dims: int, *, tolerance: float = 1.0,
                 noise_channel: bool = False) -> None:
        super().__init__()
        if mode not in DC_MODES:
            raise ValueError(f"data_consistency must be one of {DC_MODES} or None, got "
                             f"{mode!r}")
        if int(scale_factor) != scale_factor or scale_factor < 1:
            raise ValueError(f"scale_factor must be a positive integer, got {scale_factor!r}")
        if not tolerance >= 0:
            raise ValueError(f"dc_tolerance must be >= 0, got {tolerance!r}")
        self.mode = mode
        self.scale_factor = int(scale_factor)
        self.dims = check_dims(dims)
        self.tolerance = float(tolerance)
        self.noise_channel = bool(noise_channel)
        self.block = BlockMean(self.scale_factor, self.dims) if mode == "block" else None

    def extra_repr(self) -> str:
        return (f"mode={self.mode!r}, scale_factor={self.scale_factor}, "
                f"tolerance={self.tolerance}, noise_channel={self.noise_channel}")

    def measure(self, x: torch.Tensor) -> torch.Tensor:
        """``A x``: ``(B, C, *(s grid))`` -> ``(B, C, *grid)``."""
        if self.block is not None:
            return self.block.forward(x)
        return x[(Ellipsis, *[slice(None, None, self.scale_factor)] * self.dims)]

    def correction(self, r: torch.Tensor) -> torch.Tensor:
        """``A^T (A A^T)^-1 r``: ``(B, C, *grid)`` -> ``(B, C, *(s grid))``."""
        if self.block is not None:
            return self.block.adjoint(self.block.gram_inverse(r))
        return _insert_zeros(r, self.scale_factor, self.dims)

    def project(self, x: torch.Tensor, y: torch.Tensor,
                sigma: torch.Tensor | None = None) -> torch.Tensor:
        """Project ``x`` ``(B, C, *(s grid))`` onto ``{||A x - y|| <= eps}``.

        ``y`` ``(B, C, *grid)``; ``sigma`` per-part noise std broadcasting to ``(B, 1,
        ..., 1)`` or None (``eps = 0``). The norm runs over all channels and grid points
        of an image.
        """
        r = y - self.measure(x)
        if sigma is None:
            return x + self.correction(r)
        axes = tuple(range(1, r.dim()))
        rms = r.square().mean(dim=axes, keepdim=True).clamp_min(MIN_MEAN_SQUARE).sqrt()
        shrink = torch.clamp(1 - self.tolerance * sigma / rms, min=0.0)
        return x + self.correction(r) * shrink

    def forward(self, x: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Project the output ``x`` ``(B, C, *(s grid))`` using the network's input
        ``inputs`` ``(B, C [+ 1], *grid)`` (the data ``y`` and, with ``noise_channel``,
        the constant noise-level channel last)."""
        if not self.noise_channel:
            return self.project(x, inputs)
        spatial = tuple(range(2, inputs.dim()))
        sigma = inputs[:, -1:].mean(dim=spatial, keepdim=True)
        return self.project(x, inputs[:, :-1], sigma)


def build_data_consistency(mode: str | None, scale_factor: int, dims: int, *,
                           tolerance: float = 1.0,
                           noise_channel: bool = False) -> DataConsistency | None:
    """The :class:`DataConsistency` layer for a network's ``data_consistency`` option,
    or None when the option is None (the layer is off)."""
    if mode is None:
        return None
    return DataConsistency(mode, scale_factor, dims, tolerance=tolerance,
                           noise_channel=noise_channel)
