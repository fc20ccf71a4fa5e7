"""TranSMS: transformers for system-matrix super-resolution (Guengoer, Askin, Soydan,
Saritas, Top and Cukur, "TranSMS: Transformers for Super-Resolution Calibration in
Magnetic Particle Imaging", IEEE TMI 2022; ``papers/transms.txt``), 2D only.

Layout (the paper's Fig. 2 and eqs. 5-22), input ``b`` ``(B, 2 [+ 1], W, H)``:

1. ``U_init = Z_init(b)``: 3x3 convolution to ``C1`` channels (``init_features``);
2. transformer module (:class:`ConvTransformerStage`, ``n_TB`` stages with strides
   ``s_j``, the paper's ``[1, 1, 2]``): per stage a convolutional token embedding
   ``LN(Reshape1D(Conv3x3_stride_s_j(U)))`` (eq. 5), a convolutional projection of
   queries, keys and values by depth-wise separable convolutions
   ``Conv1x1(BN(DepthwiseConv3x3(.)))`` (eqs. 6-7), multi-head self-attention with
   ``n_A`` heads of ``C_T`` channels each, a linear layer from ``n_A C_T`` to ``C_T``
   and a residual to the embedded tokens (eqs. 8-9), and ``MLP(LN(.))`` with one GELU
   hidden layer of ``2 C_T`` and a residual (eq. 10); the grid halved by the strides
   is restored by sub-pixel x2 upsampling (``U_T``, ``C_T`` channels);
3. convolutional module (eqs. 11-16): RDN's feature trunk
   (:class:`~pympisr.models.dense_blocks.ResidualDenseTrunk`) on ``U_init``: two
   convolutions to ``C_C``, ``n_RDB`` residual dense blocks of ``n_CL`` ReLU layers with
   growth ``n_GR``, 1x1 fusion of all block outputs, a 3x3 convolution and the residual
   to the first convolution (``U_C``);
4. fusion module (eqs. 17-19): a 3x3 convolution of ``[U_C; U_T]`` to ``C_cat``
   channels, ``log2 S`` sub-pixel x2 upsamplers (4-fold channel convolution, pixel
   shuffle, LeakyReLU) and a 3x3 convolution to 2 channels;
5. data-consistency module (eqs. 20-22): projection onto
   ``{a : ||D a - b|| <= sqrt(m) sigma}`` with ``D`` the ``S x S`` block mean
   (:class:`~pympisr.models.data_consistency.DataConsistency`, ``"block"``; ``"stride"``
   for strided inputs; None switches it off), applied in training and inference.

Attention uses the usual ``1/sqrt(C_T)`` scaling of the logits (CvT, Wu et al., ICCV
2021), which eq. 9 does not write out. Attention is global over the ``W H / s_j^2``
tokens of a stage, so memory grows with the square of the grid size.

The grid must be a multiple of the product of the strides (``size_multiple``, 2 for the
paper's strides; the exported graph pads to it). ``scale_factor`` is a power of two.

Registered sizes (the paper's section IV-B; common ``n_RDB = 4``, ``C_C = 24``,
``n_GR = 6``, ``C_T = 64``, ``n_A = 4``, ``C_cat = 48``):

* ``"transms-x2"``: ``C1 = 24``, ``n_CL = 5``, x2;
* ``"transms-x4"``: ``C1 = 24``, ``n_CL = 8``, x4;
* ``"transms-x8"``: ``C1 = 64``, ``n_CL = 9``, x8;
* ``"transms-small"``: x2, ``C1 = C_C = 16``, 2 RDBs of 3 layers, growth 6, ``C_T = 32``,
  2 heads, ``C_cat = 24``, for CPU training;
* ``"transms-tiny"``: x2, widths 4-8, 1 RDB of 2 layers, 1 head, for tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import InvalidInputError
from .data_consistency import build_data_consistency
from .dense_blocks import ResidualDenseTrunk
from .layers import conv
from .registry import register
from .upsampling import SubPixelUpsampler

__all__ = ["ConvAttention", "ConvTransformerStage", "TranSMS"]

# the paper's transformer strides s_j (n_TB = 3 stages)
PAPER_STRIDES = (1, 1, 2)
# hidden width of the transformer MLP relative to C_T (eq. 10)
MLP_RATIO = 2


class ConvAttention(nn.Module):
    """Multi-head self-attention with convolutional projections (eqs. 6-9).

    ``(B, C, h, w)`` token map -> ``(B, h w, C)`` attended tokens (before the residual).
    Each of Q, K, V is ``Conv1x1(BN(DepthwiseConv3x3(u)))`` with ``heads * C`` output
    channels; head ``a`` attends with ``softmax(Q_a K_a^T / sqrt(C)) V_a`` over all
    ``h w`` tokens; a linear layer maps the concatenated heads back to ``C``.
    """

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        if heads < 1:
            raise ValueError(f"TranSMS needs heads >= 1, got {heads}")
        self.channels, self.heads = channels, heads
        self.query, self.key, self.value = (self._projection(channels, heads)
                                            for _ in range(3))
        self.merge = nn.Linear(heads * channels, channels)

    @staticmethod
    def _projection(channels: int, heads: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
            nn.BatchNorm2d(channels),
            nn.Conv2d(channels, heads * channels, 1))

    def _split_heads(self, u: torch.Tensor) -> torch.Tensor:
        # (B, heads C, h, w) -> (B, heads, h w, C)
        return u.reshape(u.shape[0], self.heads, self.channels, -1).transpose(2, 3)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        """``grid`` ``(B, C, h, w)`` -> ``(B, h w, C)``."""
        q = self._split_heads(self.query(grid))
        k = self._split_heads(self.key(grid))
        v = self._split_heads(self.value(grid))
        weights = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(self.channels), dim=-1)
        heads = (weights @ v).transpose(1, 2)  # (B, h w, heads, C)
        return self.merge(heads.reshape(heads.shape[0], heads.shape[1], -1))


class ConvTransformerStage(nn.Module):
    """Token embedding and convolutional transformer block (eqs. 5-10).

    ``(B, in_channels, h, w)`` -> ``(B, channels, ceil(h / stride), ceil(w / stride))``.
    """

    def __init__(self, in_channels: int, channels: int, heads: int, stride: int) -> None:
        super().__init__()
        self.embed = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1)
        self.embed_norm = nn.LayerNorm(channels)
        self.attention = ConvAttention(channels, heads)
        self.mlp_norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, MLP_RATIO * channels), nn.GELU(),
                                 nn.Linear(MLP_RATIO * channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, in_channels, h, w)`` -> ``(B, channels, h', w')``."""
        embedded = self.embed(x)
        batch, channels, height, width = embedded.shape
        tokens = self.embed_norm(embedded.flatten(2).transpose(1, 2))  # (B, h' w', C)
        grid = tokens.transpose(1, 2).reshape(batch, channels, height, width)
        attended = self.attention(grid) + tokens
        out = self.mlp(self.mlp_norm(attended)) + attended
        return out.transpose(1, 2).reshape(batch, channels, height, width)


@register("transms-x2", scale_factor=2, init_features=24, rdb_layers=5)
@register("transms-x4", scale_factor=4, init_features=24, rdb_layers=8)
@register("transms-x8", scale_factor=8, init_features=64, rdb_layers=9)
@register("transms-small", scale_factor=2, init_features=16, conv_features=16, rdb_blocks=2,
          rdb_layers=3, growth=6, token_features=32, heads=2, fusion_features=24)
@register("transms-tiny", scale_factor=2, init_features=4, conv_features=4, rdb_blocks=1,
          rdb_layers=2, growth=2, token_features=8, heads=1, fusion_features=4)
class TranSMS(nn.Module):
    """TranSMS super-resolution network (module docstring), 2D only.

    Parameters
    ----------
    dims:
        Must be 2 (3 raises :class:`~pympisr.errors.InvalidInputError`).
    in_channels:
        2 (real and imaginary part).
    scale_factor:
        ``S``, a power of two >= 2.
    init_features:
        ``C1``, channels of ``U_init``.
    conv_features, rdb_blocks, rdb_layers, growth:
        ``C_C``, ``n_RDB``, ``n_CL``, ``n_GR`` of the convolutional module.
    token_features, heads, strides:
        ``C_T``, ``n_A`` and the strides ``s_j`` of the ``n_TB = len(strides)``
        transformer stages (each 1 or 2).
    fusion_features:
        ``C_cat``.
    noise_channel:
        Take one extra, constant input channel with the relative noise level (then
        also the data-consistency radius ``sigma``).
    data_consistency, dc_tolerance:
        ``"block"`` (the paper's), ``"stride"`` or None; the radius factor.
    """

    def __init__(self, dims: int = 2, in_channels: int = 2, scale_factor: int = 2,
                 init_features: int = 24, conv_features: int = 24, rdb_blocks: int = 4,
                 rdb_layers: int = 5, growth: int = 6, token_features: int = 64,
                 heads: int = 4, strides: Sequence[int] = PAPER_STRIDES,
                 fusion_features: int = 48, noise_channel: bool = False,
                 data_consistency: str | None = "block", dc_tolerance: float = 1.0) -> None:
        super().__init__()
        if dims != 2:
            raise InvalidInputError(f"TranSMS is a 2D network (dims=2); got dims={dims!r}. "
                                    "For 3D super-resolution use 'smrnet' or 'rdn'")
        factor = int(scale_factor)
        if factor != scale_factor or factor < 2 or factor & (factor - 1):
            raise InvalidInputError(f"TranSMS scale_factor must be a power of two >= 2, "
                                    f"got {scale_factor!r}")
        strides = tuple(int(s) for s in strides)
        if not strides or any(s not in (1, 2) for s in strides):
            raise InvalidInputError(f"TranSMS strides must be a non-empty list of 1s and "
                                    f"2s, got {list(strides)}")
        self.dims = 2
        self.in_channels = in_channels
        self.scale_factor = factor
        self.noise_channel = bool(noise_channel)
        self.size_multiple = math.prod(strides)
        self.initial = conv(2, in_channels + int(self.noise_channel), init_features)
        widths = [init_features] + [token_features] * len(strides)
        self.transformer = nn.Sequential(
            *[ConvTransformerStage(widths[j], token_features, heads, s)
              for j, s in enumerate(strides)],
            SubPixelUpsampler(2, token_features, self.size_multiple, act="leaky_relu"))
        self.convolutional = ResidualDenseTrunk(2, init_features, conv_features, rdb_blocks,
                                                rdb_layers, growth)
        self.fuse = conv(2, conv_features + token_features, fusion_features)
        self.upsample = SubPixelUpsampler(2, fusion_features, factor, act="leaky_relu")
        self.final = conv(2, fusion_features, in_channels)
        self.consistency = build_data_consistency(
            data_consistency, factor, 2, tolerance=dc_tolerance,
            noise_channel=self.noise_channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, in_channels [+ 1], W, H)`` (``W, H`` multiples of
        ``size_multiple``) -> ``(B, in_channels, S W, S H)``."""
        if not torch.jit.is_tracing() and any(n % self.size_multiple for n in x.shape[2:]):
            raise InvalidInputError(f"TranSMS input grid {tuple(x.shape[2:])} is not a "
                                    f"multiple of size_multiple={self.size_multiple}")
        u_init = self.initial(x)
        fused = self.fuse(torch.cat([self.convolutional(u_init), self.transformer(u_init)],
                                    dim=1))
        out = self.final(self.upsample(fused))
        if self.consistency is not None:
            out = self.consistency(out, x)
        return out
