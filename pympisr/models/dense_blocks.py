"""Residual dense blocks shared by RDN, SMRnet (RRDB) and TranSMS, in 2D and 3D.

* :class:`ResidualDenseBlock` (RDB; Zhang et al., "Residual Dense Network for Image
  Super-Resolution", CVPR 2018, section 3.2): ``layers`` densely connected 3x3(x3)
  convolutions, layer ``k`` sees the block input and the outputs of layers ``1..k-1``
  (``features + (k - 1) growth`` channels) and adds ``growth`` channels; a local feature
  fusion convolution maps the ``features + layers growth`` channels back to ``features``
  and a local residual adds the block input::

      u_k = act(conv_k([u_0; u_1; ...; u_{k-1}])),  out = u_0 + scale * fuse([u_0; ...; u_C])

  RDN and TranSMS (Guengoer et al. 2022, eqs. 13-14): ReLU, 1x1 fusion, ``scale = 1``.
  ESRGAN's block (Wang et al., ECCV Workshops 2018, section 3.1), used by SMRnet: 4
  layers, LeakyReLU(0.2), 3x3 fusion without activation, residual scaling 0.2.
* :class:`ResidualInResidualDenseBlock` (RRDB, ESRGAN): three ESRGAN RDBs in sequence with
  a residual around them, scaled by 0.2.
* :class:`ResidualDenseTrunk`: RDN's feature part (CVPR 2018, eqs. 1-2 and 7-9), also
  TranSMS' convolutional module (eqs. 11-16): two 3x3 convolutions (shallow features
  ``F_-1`` and ``F_0``), ``blocks`` RDBs, global feature fusion (1x1 over the
  concatenated block outputs, then 3x3) and a global residual to ``F_-1``.

Tensors are ``(B, C, H, W)`` (``dims = 2``) or ``(B, C, D, H, W)`` (``dims = 3``); all
convolutions use "same" zero padding, so the grid is kept.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import check_dims, conv

__all__ = ["ResidualDenseBlock", "ResidualDenseTrunk", "ResidualInResidualDenseBlock",
           "activation"]

ACTIVATIONS = ("relu", "leaky_relu")
# ESRGAN's residual scaling and LeakyReLU slope
RRDB_RESIDUAL_SCALE = 0.2
LEAKY_SLOPE = 0.2


def activation(name: str) -> nn.Module:
    """``"relu"`` -> ReLU, ``"leaky_relu"`` -> LeakyReLU with slope 0.2 (ESRGAN)."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(LEAKY_SLOPE, inplace=True)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


class ResidualDenseBlock(nn.Module):
    """Residual dense block (module docstring), ``(B, features, *grid)`` -> same shape.

    Parameters
    ----------
    dims:
        2 or 3.
    features:
        Channels of the block input and output (RDN's ``G0``).
    growth:
        Channels each dense layer adds (RDN's ``G``, TranSMS' ``n_GR``).
    layers:
        Dense convolution layers (RDN's ``C``, TranSMS' ``n_CL``), >= 1.
    act:
        ``"relu"`` (RDN, TranSMS) or ``"leaky_relu"`` (ESRGAN).
    fusion_kernel:
        Kernel of the local feature fusion: 1 (RDN, TranSMS) or 3 (ESRGAN).
    residual_scale:
        Factor on the fused features before the local residual (ESRGAN: 0.2).
    """

    def __init__(self, dims: int, features: int, growth: int, layers: int, *,
                 act: str = "relu", fusion_kernel: int = 1,
                 residual_scale: float = 1.0) -> None:
        super().__init__()
        check_dims(dims)
        if layers < 1 or growth < 1 or features < 1:
            raise ValueError("ResidualDenseBlock needs features, growth and layers >= 1, got "
                             f"{features}, {growth}, {layers}")
        self.dense = nn.ModuleList(
            nn.Sequential(conv(dims, features + k * growth, growth), activation(act))
            for k in range(layers))
        self.fuse = conv(dims, features + layers * growth, features, fusion_kernel)
        self.residual_scale = float(residual_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, features, *grid)`` -> ``(B, features, *grid)``."""
        stack = [x]
        for layer in self.dense:
            stack.append(layer(torch.cat(stack, dim=1)))
        return x + self.residual_scale * self.fuse(torch.cat(stack, dim=1))


class ResidualInResidualDenseBlock(nn.Module):
    """ESRGAN's RRDB: three RDBs (4 layers, LeakyReLU, 3x3 fusion, scale 0.2) with a
    residual around them scaled by 0.2; ``(B, features, *grid)`` -> same shape."""

    def __init__(self, dims: int, features: int, growth: int, *, rdbs: int = 3,
                 layers: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(*[
            ResidualDenseBlock(dims, features, growth, layers, act="leaky_relu",
                               fusion_kernel=3, residual_scale=RRDB_RESIDUAL_SCALE)
            for _ in range(rdbs)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, features, *grid)`` -> ``(B, features, *grid)``."""
        return x + RRDB_RESIDUAL_SCALE * self.body(x)


class ResidualDenseTrunk(nn.Module):
    """RDN's feature trunk / TranSMS' convolutional module (module docstring).

    ``(B, in_channels, *grid)`` -> ``(B, features, *grid)``: ``F_-1 = conv(x)``,
    ``F_0 = conv(F_-1)``, ``F_d = RDB_d(F_{d-1})``, output
    ``conv3(conv1([F_1; ...; F_D])) + F_-1``.

    Parameters
    ----------
    dims:
        2 or 3.
    in_channels:
        Input channels.
    features:
        ``G0`` (RDN) / ``C_C`` (TranSMS).
    blocks:
        Number of RDBs, ``D`` (RDN) / ``n_RDB`` (TranSMS), >= 1.
    layers, growth:
        Per RDB: ``C`` and ``G`` (RDN) / ``n_CL`` and ``n_GR`` (TranSMS).
    """

    def __init__(self, dims: int, in_channels: int, features: int, blocks: int,
                 layers: int, growth: int) -> None:
        super().__init__()
        if blocks < 1:
            raise ValueError(f"ResidualDenseTrunk needs blocks >= 1, got {blocks}")
        self.shallow1 = conv(dims, in_channels, features)
        self.shallow2 = conv(dims, features, features)
        self.blocks = nn.ModuleList(ResidualDenseBlock(dims, features, growth, layers)
                                    for _ in range(blocks))
        self.global_fusion = nn.Sequential(conv(dims, blocks * features, features, 1),
                                           conv(dims, features, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, in_channels, *grid)`` -> ``(B, features, *grid)``."""
        first = self.shallow1(x)
        u = self.shallow2(first)
        outputs = []
        for block in self.blocks:
            u = block(u)
            outputs.append(u)
        return self.global_fusion(torch.cat(outputs, dim=1)) + first
