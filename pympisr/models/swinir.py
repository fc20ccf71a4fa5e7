"""SwinIR for image denoising (Liang et al., "SwinIR: Image Restoration Using Swin
Transformer", ICCV Workshops 2021), 2D only.

Layout (the paper's denoising configuration, its Fig. 2):

1. shallow feature extraction: one 3x3 convolution, ``in_channels [+ 1]`` -> ``embed_dim``;
2. deep feature extraction: ``len(depths)`` residual Swin transformer blocks (RSTB), each
   ``depths[i]`` Swin transformer layers followed by a 3x3 convolution and a residual
   connection around the stage; then layer norm and a 3x3 convolution, with a residual
   connection to the shallow features;
3. reconstruction: a 3x3 convolution back to ``in_channels``, added to the input (global
   residual: the network predicts the correction of the noisy component).

A Swin transformer layer (Liu et al., ICCV 2021) is ``x + MSA(LN(x))`` then
``x + MLP(LN(x))``, where MSA is multi-head self-attention inside non-overlapping
``window_size x window_size`` windows, ``softmax(Q K^T / sqrt(d) + B + M) V`` with a
learned relative position bias ``B`` ((2 w - 1)^2 entries per head) and, in every second
layer, windows shifted by ``window_size // 2`` (a cyclic roll) with the additive mask
``M`` (-100 between pixels from different image regions) so that no window mixes pixels
that the roll brought together from opposite image borders. The MLP is
``Linear(C, r C) - GELU - Linear(r C, C)``.

Any grid size: :meth:`SwinIR.forward` zero-pads the grid at the bottom and right to a
multiple of ``window_size`` and crops the result back, and the shifted-window mask is
built from the padded size with tensor operations, so one exported ONNX graph (dynamic
axes) serves every grid (``size_multiple = 1``). Zero padding, not SwinIR's reflection,
because training patches are zero-padded components (DESIGN section 6) and reflection
fails for grids smaller than the padding. Left out of the paper's model: the input mean
and range normalisation (components arrive unit-max normalised) and stochastic depth
(the simulated training data is unlimited, and it would be identity at inference).

Registered sizes:

* ``"swinir"``: the paper's denoising model: embed 180, 6 stages of depth 6, 6 heads,
  window 8, MLP ratio 2 (about 11.5 M parameters for two channels);
* ``"swinir-small"``: embed 48, 4 stages of depth 4, 4 heads, window 8, MLP ratio 2, for
  CPU training;
* ``"swinir-tiny"``: embed 16, 2 stages of depth 2, 2 heads, window 4, for tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidInputError
from .registry import register

__all__ = ["ResidualSwinBlock", "SwinIR", "SwinLayer", "WindowAttention", "shifted_window_mask",
           "window_partition", "window_reverse"]

# additive attention mask between pixels of different regions (Swin's value: exp(-100)
# is zero in float32 and float16 softmax alike)
MASK_VALUE = -100.0


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """Split ``(B, H, W, C)`` into windows ``(B * nW, window_size**2, C)``, row-major
    over the windows (``nW = H W / window_size**2``; H, W multiples of window_size)."""
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    w = window_size
    x = x.reshape(-1, height // w, w, width // w, w, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, channels)


def window_reverse(windows: torch.Tensor, window_size: int, height: torch.Tensor | int,
                   width: torch.Tensor | int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B * nW, w**2, C)`` -> ``(B, H, W, C)``."""
    w = window_size
    channels = windows.shape[-1]
    x = windows.reshape(-1, height // w, width // w, w, w, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, channels)


def _region_labels(n: torch.Tensor | int, window_size: int, shift: int,
                   device: torch.device) -> torch.Tensor:
    """Region of each of ``n`` positions along an axis after the cyclic shift: 0 for
    ``[0, n - w)``, 1 for ``[n - w, n - shift)``, 2 for ``[n - shift, n)`` (int64 ``(n,)``).
    ``n`` is a 0-d tensor while the ONNX exporter traces, so the arithmetic stays in
    the graph."""
    index = torch.arange(n, device=device)
    return (index >= n - window_size).long() + (index >= n - shift).long()


def shifted_window_mask(height: torch.Tensor | int, width: torch.Tensor | int,
                        window_size: int, shift: int,
                        device: torch.device | None = None) -> torch.Tensor:
    """Additive attention mask of the shifted windows of a ``height x width`` grid.

    Returns float32 ``(nW, w**2, w**2)``: 0 where two pixels of a window come from the
    same region of the unshifted grid, :data:`MASK_VALUE` otherwise (Liu et al. 2021,
    section 3.2, "efficient batch computation for shifted configuration"). ``height`` and
    ``width`` must be multiples of ``window_size``.
    """
    device = device or torch.device("cpu")
    rows = _region_labels(height, window_size, shift, device)
    cols = _region_labels(width, window_size, shift, device)
    region = (rows[:, None] * 3 + cols[None, :])[None, :, :, None]  # (1, H, W, 1)
    labels = window_partition(region, window_size).squeeze(-1)  # (nW, w**2)
    different = labels[:, :, None] != labels[:, None, :]
    return different.to(torch.float32) * MASK_VALUE


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with a relative position bias.

    Input ``(B * nW, w**2, C)``; optional additive ``mask`` ``(nW, w**2, w**2)``.
    """

    def __init__(self, channels: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (channels // num_heads) ** -0.5
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        w = window_size
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * w - 1) ** 2, num_heads))
        nn.init.normal_(self.relative_position_bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w),
                                            indexing="ij")).flatten(1)  # (2, w**2)
        relative = (coords[:, :, None] - coords[:, None, :]) + (w - 1)  # (2, N, N), >= 0
        self.register_buffer("relative_position_index",
                             relative[0] * (2 * w - 1) + relative[1], persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        tokens, channels = x.shape[1], x.shape[2]
        heads = self.num_heads
        qkv = self.qkv(x).reshape(-1, tokens, 3, heads, channels // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B*nW, heads, N, d)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = attn + bias.reshape(tokens, tokens, heads).permute(2, 0, 1)
        if mask is not None:
            windows = mask.shape[0]
            attn = attn.reshape(-1, windows, heads, tokens, tokens) + mask[None, :, None]
            attn = attn.reshape(-1, heads, tokens, tokens)
        out = attn.softmax(dim=-1) @ v  # (B*nW, heads, N, d)
        return self.proj(out.transpose(1, 2).reshape(-1, tokens, channels))


class SwinLayer(nn.Module):
    """One Swin transformer layer on ``(B, H, W, C)`` (H, W multiples of the window);
    ``shifted`` layers roll the grid by ``window_size // 2`` and need the mask of
    :func:`shifted_window_mask`."""

    def __init__(self, channels: int, window_size: int, num_heads: int, mlp_ratio: float,
                 shifted: bool) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift = window_size // 2 if shifted else 0
        self.norm1 = nn.LayerNorm(channels)
        self.attn = WindowAttention(channels, window_size, num_heads)
        self.norm2 = nn.LayerNorm(channels)
        hidden = int(channels * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(),
                                 nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        height, width = x.shape[1], x.shape[2]
        y = self.norm1(x)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = self.attn(window_partition(y, self.window_size),
                            mask if self.shift else None)
        y = window_reverse(windows, self.window_size, height, width)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))


class ResidualSwinBlock(nn.Module):
    """RSTB: ``depth`` Swin layers (alternately regular and shifted windows), a 3x3
    convolution and a residual connection; ``(B, H, W, C)`` in and out."""

    def __init__(self, channels: int, depth: int, window_size: int, num_heads: int,
                 mlp_ratio: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            SwinLayer(channels, window_size, num_heads, mlp_ratio, shifted=i % 2 == 1)
            for i in range(depth))
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        y = x
        for layer in self.layers:
            y = layer(y, mask)
        y = self.conv(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + y


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"SwinIR option {name} must be a positive integer, "
                                f"got {value!r}")
    return value


@register("swinir", embed_dim=180, depths=[6] * 6, num_heads=6, window_size=8,
          mlp_ratio=2.0)
@register("swinir-small", embed_dim=48, depths=[4] * 4, num_heads=4, window_size=8,
          mlp_ratio=2.0)
@register("swinir-tiny", embed_dim=16, depths=[2, 2], num_heads=2, window_size=4,
          mlp_ratio=2.0)
class SwinIR(nn.Module):
    """SwinIR denoiser (module docstring) on real/imag channel tensors ``(B, C, H, W)``.

    Parameters
    ----------
    dims:
        Must be 2 (SwinIR is a 2D network; 3 raises InvalidInputError, a ValueError).
    in_channels:
        2 (real and imaginary part of a frequency component).
    noise_channel:
        Take one extra input channel with the relative noise level (FFDNet-style,
        :func:`pympisr.models.conditioning.run_network`); the output keeps
        ``in_channels`` channels.
    embed_dim:
        Feature channels ``C`` (divisible by ``num_heads``).
    depths:
        Swin layers per residual stage; its length is the number of stages.
    num_heads:
        Attention heads in every layer.
    window_size:
        Edge ``w`` of the attention windows in pixels; shifted layers shift by ``w // 2``.
    mlp_ratio:
        Hidden width of the MLP relative to ``C``.
    """

    size_multiple = 1
    scale_factor = 1

    def __init__(self, dims: int = 2, in_channels: int = 2, noise_channel: bool = False,
                 embed_dim: int = 180, depths: Sequence[int] = (6, 6, 6, 6, 6, 6),
                 num_heads: int = 6, window_size: int = 8, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        if dims != 2:
            raise InvalidInputError(f"SwinIR is a 2D network; dims must be 2, got {dims!r}")
        embed_dim = _positive_int(embed_dim, "embed_dim")
        num_heads = _positive_int(num_heads, "num_heads")
        self.window_size = _positive_int(window_size, "window_size")
        depths = [_positive_int(d, "depths entry") for d in depths]
        if not depths:
            raise InvalidInputError("SwinIR option depths must name at least one stage")
        if embed_dim % num_heads:
            raise InvalidInputError(f"SwinIR embed_dim {embed_dim} is not divisible by "
                                    f"num_heads {num_heads}")
        if not mlp_ratio > 0:
            raise InvalidInputError(f"SwinIR option mlp_ratio must be positive, "
                                    f"got {mlp_ratio!r}")
        self.dims = 2
        self.in_channels = in_channels
        self.noise_channel = bool(noise_channel)
        self.shift = self.window_size // 2
        first = in_channels + int(self.noise_channel)
        self.conv_first = nn.Conv2d(first, embed_dim, 3, padding=1)
        self.patch_norm = nn.LayerNorm(embed_dim)
        self.stages = nn.ModuleList(
            ResidualSwinBlock(embed_dim, depth, self.window_size, num_heads, mlp_ratio)
            for depth in depths)
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, padding=1)
        self.conv_last = nn.Conv2d(embed_dim, in_channels, 3, padding=1)
        self.apply(self._init_transformer_weights)

    @staticmethod
    def _init_transformer_weights(module: nn.Module) -> None:
        # SwinIR's initialisation: normal (std 0.02) linear weights, zero biases, unit
        # layer norms; convolutions keep PyTorch's default. SwinIR truncates the normal
        # at +-2, i.e. 100 std, which never happens in practice; the plain normal is
        # the same distribution and builds the paper size in a fraction of the time.
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` float ``(B, in_channels [+ 1], H, W)``, any H, W -> denoised ``(B,
        in_channels, H, W)`` (the noise-level channel is not returned)."""
        if x.dim() != 4:
            raise InvalidInputError(f"SwinIR expects (B, C, H, W) input, got shape "
                                    f"{tuple(x.shape)}")
        height, width = x.shape[2], x.shape[3]
        w = self.window_size
        x = F.pad(x, (0, (-width) % w, 0, (-height) % w))
        padded_h, padded_w = x.shape[2], x.shape[3]
        mask = (shifted_window_mask(padded_h, padded_w, w, self.shift, x.device).to(x.dtype)
                if self.shift else None)
        shallow = self.conv_first(x)
        y = self.patch_norm(shallow.permute(0, 2, 3, 1))  # (B, H, W, C)
        for stage in self.stages:
            y = stage(y, mask)
        deep = self.conv_after_body(self.norm(y).permute(0, 3, 1, 2)) + shallow
        out = x[:, :self.in_channels] + self.conv_last(deep)
        return out[:, :, :height, :width]
