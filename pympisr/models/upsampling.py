"""Upsampling layers of the super-resolution networks, in 2D and 3D, ONNX-exportable.

* :func:`pixel_shuffle` / :class:`SubPixelUpsampler`: sub-pixel convolution (ESPCN, Shi
  et al., CVPR 2016), used by RDN and TranSMS: a convolution makes ``s^d`` times the
  channels and the shuffle moves them onto an ``s`` times finer grid. ``torch`` has a
  pixel shuffle for 2D only; :func:`pixel_shuffle` is the same rearrangement for any
  ``d`` (reshape and permute, so it exports with dynamic grid sizes).
* :class:`NearestConvUpsampler`: ESRGAN's / SMRnet's x2 steps, nearest-neighbour
  interpolation then a 3x3(x3) convolution and LeakyReLU(0.2).
* :func:`interpolate_to_fine`: bicubic (2D) or trilinear (3D) interpolation of a
  low-resolution input onto the ``s`` times finer grid, the first step of SRCNN and
  VDSR, for both low-resolution geometries of :mod:`pympisr.tasks.superresolution`
  (see :data:`LR_GRIDS`).

Low-resolution geometries (``lr_grid``), output grid ``s n`` per axis for ``n`` input
points in both:

* ``"block"`` (task ``"upsample"``): input sample ``i`` is the mean of the fine block
  ``[i s, (i + 1) s)``, so it sits at fine coordinate ``(i + 1/2) s - 1/2``: PyTorch's
  ``align_corners=False`` mapping;
* ``"stride"`` (task ``"accelerate"``): input sample ``i`` is the fine point ``i s``; the
  input is extended by one replicated sample and interpolated with
  ``align_corners=True`` onto ``s n + 1`` points (fine coordinate ``j`` maps to input
  coordinate ``j / s``), and the last point is dropped. The fine points after ``s (n -
  1)`` lie outside the measured range; the task's grid rule crops them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .dense_blocks import activation
from .layers import check_dims, conv

__all__ = ["LR_GRIDS", "InterpolateThenRefine", "NearestConvUpsampler", "SubPixelUpsampler", "interpolate_to_fine",
           "pixel_shuffle", "scale_steps"]

LR_GRIDS = ("block", "stride")


def scale_steps(scale_factor: int, allowed: tuple[int, ...] = (2, 3)) -> list[int]:
    """Split ``scale_factor`` into a product of the step factors ``allowed`` (largest
    first), e.g. ``8 -> [2, 2, 2]``, ``6 -> [3, 2]``; 1 gives ``[]``.

    Raises
    ------
    ValueError
        ``scale_factor`` is not a positive integer made of those factors.
    """
    if int(scale_factor) != scale_factor or scale_factor < 1:
        raise ValueError(f"scale_factor must be a positive integer, got {scale_factor!r}")
    rest, steps = int(scale_factor), []
    for step in sorted(allowed, reverse=True):
        while rest % step == 0:
            steps.append(step)
            rest //= step
    if rest != 1:
        raise ValueError(f"scale_factor {scale_factor} is not a product of "
                         f"{' and '.join(map(str, allowed))}")
    return steps


def pixel_shuffle(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``(B, C s^d, *grid)`` -> ``(B, C, *(s grid))`` for ``d = x.dim() - 2`` spatial axes.

    Channel ``c s^d + k`` with ``k = sum_a i_a s^(d-1-a)`` goes to fine offset
    ``(i_0, ..., i_{d-1})`` of coarse point ``c``: in 2D exactly ``torch.pixel_shuffle``.
    """
    dims = x.dim() - 2
    grid = x.shape[2:]
    split = x.reshape(x.shape[0], -1, *([factor] * dims), *grid)
    # (B, C, s_0..s_{d-1}, g_0..g_{d-1}) -> (B, C, g_0, s_0, g_1, s_1, ...)
    order = [0, 1] + [axis for a in range(dims) for axis in (2 + dims + a, 2 + a)]
    fine = [n * factor for n in grid]
    return split.permute(*order).reshape(x.shape[0], -1, *fine)


class SubPixelUpsampler(nn.Module):
    """Sub-pixel convolution upsampling by ``scale_factor`` (a product of 2s and 3s):
    per step ``p``, a 3x3(x3) convolution to ``p^d features`` channels, the pixel shuffle
    and an optional activation; ``(B, features, *grid)`` -> ``(B, features, *(s grid))``.
    """

    def __init__(self, dims: int, features: int, scale_factor: int, *,
                 act: str | None = None) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        self.steps = scale_steps(scale_factor)
        self.convs = nn.ModuleList(conv(dims, features, features * p ** dims)
                                   for p in self.steps)
        self.act = activation(act) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, features, *grid)`` -> ``(B, features, *(scale_factor grid))``."""
        for step, layer in zip(self.steps, self.convs):
            x = self.act(pixel_shuffle(layer(x), step))
        return x


class NearestConvUpsampler(nn.Module):
    """``log2(scale_factor)`` steps of nearest x2 interpolation, 3x3(x3) convolution and
    LeakyReLU(0.2) (ESRGAN, SMRnet); ``(B, features, *grid)`` -> ``(B, features, *(s
    grid))``. ``scale_factor`` must be a power of two (>= 1)."""

    def __init__(self, dims: int, features: int, scale_factor: int) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        steps = scale_steps(scale_factor, allowed=(2,))
        self.convs = nn.ModuleList(conv(dims, features, features) for _ in steps)
        self.act = activation("leaky_relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, features, *grid)`` -> ``(B, features, *(scale_factor grid))``."""
        for layer in self.convs:
            x = self.act(layer(F.interpolate(x, scale_factor=2.0, mode="nearest")))
        return x


def interpolate_to_fine(x: torch.Tensor, factor: int, lr_grid: str = "block") -> torch.Tensor:
    """Interpolate ``x`` ``(B, C, *grid)`` onto the ``factor`` times finer grid
    ``(B, C, *(factor grid))``: bicubic in 2D, trilinear in 3D (PyTorch has no tricubic),
    in the geometry ``lr_grid`` (module docstring). Both weightings sum to one, so a
    constant channel (a noise level) stays constant.
    """
    dims = x.dim() - 2
    mode = "bicubic" if check_dims(dims) == 2 else "trilinear"
    if lr_grid == "block":
        return F.interpolate(x, scale_factor=float(factor), mode=mode, align_corners=False)
    if lr_grid != "stride":
        raise ValueError(f"lr_grid must be one of {LR_GRIDS}, got {lr_grid!r}")
    extended = F.pad(x, [0, 1] * dims, mode="replicate")
    size = [n * factor + 1 for n in x.shape[2:]]
    fine = F.interpolate(extended, size=size, mode=mode, align_corners=True)
    return fine[(Ellipsis, *[slice(None, -1)] * dims)]


class InterpolateThenRefine(nn.Module):
    """Base of the networks that interpolate the low-resolution input onto the fine grid
    (:func:`interpolate_to_fine`) and refine it there with convolutions (SRCNN, VDSR),
    optionally adding the interpolation back (``residual``, VDSR's global residual) and
    projecting onto the data (:mod:`pympisr.models.data_consistency`).

    Subclasses call :meth:`setup` with their convolution stack ``body``
    (``in_channels [+ 1]`` -> ``in_channels`` channels on the fine grid).
    """

    size_multiple = 1
    residual = False

    def setup(self, body: nn.Module, *, dims: int, in_channels: int, scale_factor: int,
              lr_grid: str, noise_channel: bool, data_consistency: str | None,
              dc_tolerance: float) -> None:
        from .data_consistency import build_data_consistency

        if int(scale_factor) != scale_factor or scale_factor < 1:
            raise ValueError(f"scale_factor must be a positive integer, got {scale_factor!r}")
        if lr_grid not in LR_GRIDS:
            raise ValueError(f"lr_grid must be one of {LR_GRIDS}, got {lr_grid!r}")
        self.dims = check_dims(dims)
        self.in_channels = in_channels
        self.scale_factor = int(scale_factor)
        self.lr_grid = lr_grid
        self.noise_channel = bool(noise_channel)
        self.body = body
        self.consistency = build_data_consistency(
            data_consistency, self.scale_factor, dims, tolerance=dc_tolerance,
            noise_channel=self.noise_channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, in_channels [+ 1], *grid)`` -> ``(B, in_channels, *(s grid))``."""
        fine = interpolate_to_fine(x, self.scale_factor, self.lr_grid)
        out = self.body(fine)
        if self.residual:
            out = fine[:, :self.in_channels] + out
        if self.consistency is not None:
            out = self.consistency(out, x)
        return out
