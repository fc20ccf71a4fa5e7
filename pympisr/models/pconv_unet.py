"""PConvUNet: a U-Net of partial convolutions for inpainting, in 2D and 3D.

Liu, Reda, Shih, Wang, Tao, Catanzaro, "Image inpainting for irregular holes using
partial convolutions", ECCV 2018 (eqs. 1-2); the seed paper (3.2, 4.4) uses it in 3D
to repair corrupted calibration positions of a system matrix.

Partial convolution (Liu eq. 1). With input features ``X``, binary mask ``M`` (1 =
valid), convolution weights ``W`` and bias ``b``, at every output position::

    x' = W^T (X * M) * sum(1) / sum(M) + b    if sum(M) > 0
    x' = 0                                      otherwise

where ``sum(1)`` is the number of entries of the sliding window (kernel volume times
input channels) and ``sum(M)`` the number of valid entries in it. Mask update (eq. 2):
``m' = 1`` if ``sum(M) > 0`` else ``0``. Zero padding counts as missing, so the window
is renormalised at the grid border as well (partial-convolution padding).

Masks are single-channel per *group* of feature channels: the input has one mask for
all its channels, and a decoder layer, whose input concatenates the upsampled features
of the level below with the skip features of the encoder (Liu: "the skip links
concatenate feature maps and masks"), has one mask per part. ``sum(M)`` is then
``sum_g C_g * boxsum(M_g)`` with ``C_g`` the channels of group ``g``, one convolution
of the stacked group masks with a constant kernel.

Layout (Liu, section 3.2; ``L`` levels, features ``f_1..f_L``, kernels ``k_1..k_L``):

* encoder ``i = 1..L``: partial conv ``k_i``, stride 2 (a grid of ``n`` points becomes
  ``ceil(n / 2)``), batch norm except at level 1, ReLU;
* decoder ``i = L..1``: nearest upsampling by 2 of features and mask, cropped to the
  grid of level ``i - 1``, concatenated with that level's encoder features and mask
  (level 0 = the network input), partial conv 3x3(x3), stride 1, batch norm and
  LeakyReLU(0.2), except the last layer (to 2 output channels: real and imaginary
  part), which has neither.

The output is the prediction at every grid point, missing ones included. With
``fill_iterations > 0`` the network learns a residual instead: the output is the
biharmonic fill of the input (:class:`~pympisr.models.biharmonic_fill.BiharmonicFill`,
the classical baseline inside the graph) plus the U-Net's output, so that at zero
noise the network only has to learn the correction to a 44 dB interpolant and, at the
measured points, the denoising residual (as DnCNN's residual learning). With
``noise_scaled_residual`` as well, the U-Net's output is multiplied by the relative noise
level of the noise channel (the residual is learned in units of the noise, as DnCNN's
noise estimate), so that at zero noise the network is exactly the biharmonic fill.

``stem_layers`` full-resolution partial convolutions (3^d kernels, ``features[0]``
channels, ReLU) before the first stride-2 level give the network a full-resolution path
(Liu's layout has one full-resolution layer, the last, which limits how well it denoises
the measured points); the stem's output is then the level-0 skip.

Because the stride-2 convolutions round up and the decoder crops, any grid size works
(``size_multiple = 1``); a level whose grid is already 1 point stays at 1 point. The
graph has no shape-dependent Python branches, so one ONNX export serves every grid.

Registered sizes:

* ``"pconv-unet"``: the paper size, 7 levels, features (64, 128, 256, 512, 512, 512,
  512), kernels (7, 5, 5, 3, 3, 3, 3) (Liu's encoder without its 8th level; the seed
  paper's "7-level" network);
* ``"pconv-unet-small"``: 4 levels, features (16, 32, 64, 64), kernels (5, 3, 3, 3),
  trains on a CPU;
* ``"pconv-unet-tiny"``: 3 levels, features (4, 8, 8), kernels 3, for tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .biharmonic_fill import BiharmonicFill
from .layers import batch_norm as norm_layer
from .layers import check_dims
from .registry import register

__all__ = ["PConvUNet", "PartialConv"]


class PartialConv(nn.Module):
    """Partial convolution with mask update (Liu et al. 2018, eqs. 1-2; module docstring).

    Parameters
    ----------
    dims:
        2 or 3 spatial axes.
    group_channels:
        Channels of each input part that shares one mask, e.g. ``(64, 32)`` for the
        concatenation of 64 upsampled and 32 skip channels; the input has
        ``sum(group_channels)`` channels and the mask ``len(group_channels)``.
    out_channels:
        Output feature channels.
    kernel_size, stride:
        Cubic/square kernel and stride; the padding is ``kernel_size // 2``.
    """

    def __init__(self, dims: int, group_channels: Sequence[int], out_channels: int,
                 kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        self.group_channels = tuple(int(c) for c in group_channels)
        if not self.group_channels or min(self.group_channels) < 1:
            raise ValueError(f"group_channels must be positive, got {group_channels!r}")
        in_channels = sum(self.group_channels)
        conv_cls = nn.Conv2d if dims == 2 else nn.Conv3d
        self.conv = conv_cls(in_channels, out_channels, kernel_size, stride=stride,
                             padding=kernel_size // 2, bias=True)
        window = (kernel_size,) * dims
        # sum(M) = sum_g C_g * boxsum(M_g): one convolution with this constant kernel
        counts = torch.tensor(self.group_channels, dtype=torch.float32)
        kernel = counts.reshape(1, -1, *([1] * dims)).expand(1, -1, *window).clone()
        self.register_buffer("mask_kernel", kernel, persistent=False)
        self.window_size = float(in_channels * kernel_size ** dims)  # sum(1)
        self.stride = stride
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` float ``(B, sum(group_channels), *grid)``, ``mask`` binary float
        ``(B, len(group_channels), *grid)`` (1 = valid) -> features ``(B, out, *grid')``
        and the updated single-channel mask ``(B, 1, *grid')``."""
        parts = []
        start = 0
        for g, channels in enumerate(self.group_channels):
            parts.append(x[:, start:start + channels] * mask[:, g:g + 1])
            start += channels
        masked = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        conv_fn = F.conv2d if self.dims == 2 else F.conv3d
        with torch.no_grad():
            valid_count = conv_fn(mask, self.mask_kernel, stride=self.stride,
                                  padding=self.padding)
        updated = (valid_count > 0).to(x.dtype)
        ratio = self.window_size / valid_count.clamp_min(1.0) * updated
        bias = self.conv.bias.reshape(1, -1, *([1] * self.dims))
        raw = conv_fn(masked, self.conv.weight, None, stride=self.stride, padding=self.padding)
        return (raw * ratio + bias) * updated, updated


def _upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Nearest upsampling by 2, cropped to the grid of ``like`` (the stride-2 encoder
    maps a grid of ``n`` points to ``ceil(n / 2)``, so ``2 ceil(n / 2) >= n``)."""
    up = F.interpolate(x, scale_factor=2.0, mode="nearest")
    index = (slice(None), slice(None), *(slice(0, n) for n in like.shape[2:]))
    return up[index]


class _EncoderLevel(nn.Module):
    def __init__(self, dims: int, in_channels: int, out_channels: int, kernel_size: int,
                 batch_norm: bool) -> None:
        super().__init__()
        self.pconv = PartialConv(dims, (in_channels,), out_channels, kernel_size, stride=2)
        self.norm = norm_layer(dims, out_channels) if batch_norm else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, m = self.pconv(x, mask)
        return torch.relu(self.norm(y)), m


class _DecoderLevel(nn.Module):
    def __init__(self, dims: int, up_channels: int, skip_channels: int, out_channels: int,
                 *, batch_norm: bool, last: bool) -> None:
        super().__init__()
        self.pconv = PartialConv(dims, (up_channels, skip_channels), out_channels, 3)
        use_norm = batch_norm and not last
        self.norm = norm_layer(dims, out_channels) if use_norm else nn.Identity()
        self.last = last

    def forward(self, x: torch.Tensor, mask: torch.Tensor, skip: torch.Tensor,
                skip_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        up, up_mask = _upsample_to(x, skip), _upsample_to(mask, skip)
        y, m = self.pconv(torch.cat([up, skip], dim=1), torch.cat([up_mask, skip_mask], dim=1))
        y = self.norm(y)
        return (y if self.last else F.leaky_relu(y, 0.2)), m


@register("pconv-unet", features=(64, 128, 256, 512, 512, 512, 512),
          kernel_sizes=(7, 5, 5, 3, 3, 3, 3))
@register("pconv-unet-small", features=(16, 32, 64, 64), kernel_sizes=(5, 3, 3, 3))
@register("pconv-unet-tiny", features=(4, 8, 8), kernel_sizes=(3, 3, 3))
class PConvUNet(nn.Module):
    """Partial-convolution U-Net (module docstring) on real/imag channel tensors.

    Parameters
    ----------
    dims:
        2 for inputs ``(B, C, H, W)``, 3 for ``(B, C, D, H, W)``.
    in_channels:
        2 (real and imaginary part of a frequency component).
    noise_channel:
        Take one extra input channel with the relative noise level
        (:func:`pympisr.models.conditioning.run_network`); it shares the input mask.
    features:
        Feature channels of the encoder levels, one entry per level.
    kernel_sizes:
        Kernel size of each encoder level (odd), same length as ``features``.
    batch_norm:
        Batch normalisation as in Liu et al. (all layers but the first encoder and
        the last decoder layer); without it the network is a plain partial-conv U-Net.
    fill_iterations:
        0: the output is the U-Net's; > 0: biharmonic fill of the input with this many
        conjugate-gradient steps plus the U-Net's output (module docstring).
    noise_scaled_residual:
        With ``fill_iterations > 0`` and ``noise_channel``: the U-Net's output is
        multiplied by the relative noise level (module docstring).
    stem_layers:
        Full-resolution partial convolutions before the encoder (module docstring).
    """

    size_multiple = 1
    scale_factor = 1
    takes_mask = True

    def __init__(self, dims: int = 3, in_channels: int = 2,
                 features: Sequence[int] = (64, 128, 256, 512, 512, 512, 512),
                 kernel_sizes: Sequence[int] = (7, 5, 5, 3, 3, 3, 3),
                 noise_channel: bool = False, batch_norm: bool = True,
                 fill_iterations: int = 0, noise_scaled_residual: bool = False,
                 stem_layers: int = 0) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        features, kernel_sizes = tuple(features), tuple(kernel_sizes)
        if not features or len(features) != len(kernel_sizes):
            raise ValueError(f"features {features} and kernel_sizes {kernel_sizes} must be "
                             "non-empty and of equal length (one entry per level)")
        if any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"kernel sizes must be odd, got {kernel_sizes}")
        if fill_iterations < 0 or stem_layers < 0:
            raise ValueError(f"fill_iterations ({fill_iterations}) and stem_layers "
                             f"({stem_layers}) must be >= 0")
        self.in_channels = in_channels
        self.noise_channel = bool(noise_channel)
        first = in_channels + int(self.noise_channel)
        self.stem = nn.ModuleList(
            PartialConv(dims, (first if i == 0 else features[0],), features[0], 3)
            for i in range(stem_layers))
        widths = (features[0] if stem_layers else first, *features)
        self.encoder = nn.ModuleList(
            _EncoderLevel(dims, widths[i], widths[i + 1], kernel_sizes[i],
                          batch_norm and i > 0) for i in range(len(features)))
        # decoder level i goes back to the grid of level i - 1 (level 0 = the input)
        self.decoder = nn.ModuleList(
            _DecoderLevel(dims, features[i - 1], widths[i - 1],
                          in_channels if i == 1 else features[i - 2],
                          batch_norm=batch_norm, last=i == 1)
            for i in range(len(features), 0, -1))
        self.fill = BiharmonicFill(dims, fill_iterations) if fill_iterations > 0 else None
        if noise_scaled_residual and (self.fill is None or not self.noise_channel):
            raise ValueError("noise_scaled_residual needs fill_iterations > 0 and "
                             "noise_channel")
        self.noise_scaled_residual = bool(noise_scaled_residual)
        if self.fill is not None:  # start as the biharmonic fill: a zero residual
            last = self.decoder[-1].pconv.conv
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` float ``(B, in_channels [+ 1], *grid)``, ``mask`` float ``(B, 1, *grid)``
        with 1 = measured (values > 0.5 count as measured) -> ``(B, in_channels, *grid)``.

        Input values at missing positions do not influence the output.
        """
        h, m = x, (mask > 0.5).to(x.dtype)
        for layer in self.stem:
            h, m = layer(h, m)
            h = torch.relu(h)
        skips = [(h, m)]
        for level in self.encoder:
            h, m = level(h, m)
            skips.append((h, m))
        skips.pop()  # the deepest level is the decoder's input, not a skip
        for level in self.decoder:
            skip, skip_mask = skips.pop()
            h, m = level(h, m, skip, skip_mask)
        if self.fill is None:
            return h
        if self.noise_scaled_residual:
            h = h * x[:, self.in_channels:]
        return self.fill(x[:, :self.in_channels], mask) + h
