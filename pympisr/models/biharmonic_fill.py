"""Biharmonic filling of missing grid points as a network layer (2D and 3D).

Biharmonic inpainting (Damelin and Hoang, "On surface completion and image inpainting
by biharmonic functions: numerical aspects", Int. J. Math. Math. Sci. 2018; the
classical baseline of the seed paper, :func:`pympisr.baselines.inpainting.inpaint_biharmonic`)
chooses the missing values ``u_M`` that make the discrete Laplacian of the whole grid
as small as possible::

    minimise_{u_M} || L u ||^2,   u = P_K x + P_M u_M

with ``L`` the graph Laplacian of the grid's nearest-neighbour graph (``(L u)_i =
sum_{j ~ i} (u_j - u_i)``, Neumann boundary: points outside the grid are no
neighbours), ``P_K`` / ``P_M`` the projections onto measured and missing points. The
normal equations ``P_M L^2 P_M u_M = -P_M L^2 P_K x`` are symmetric positive
semi-definite and are solved here by a fixed number of conjugate-gradient steps
(Hestenes and Stiefel, J. Res. Nat. Bur. Standards 49(6), 1952), independently for every
sample and channel, from the start value of a few "push-pull" neighbour averages that
carry measured values into the holes. A fixed count keeps the layer a plain ONNX graph
(convolutions, sums, divisions; no data-dependent loop).

For the paper's masks (contiguous blocks of 2-10 % of the grid in robot order, i.e.
slabs a few points thick) 20-40 steps reach the converged solution: in the missing
region of 24^3 components of the simulated 3D test split, 45.06 dB after 20 steps and
45.24 dB after 40, against 45.22 dB for scikit-image's biharmonic inpainting.

The layer runs in float32 whatever the surrounding autocast (CG needs the precision).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import check_dims

__all__ = ["BiharmonicFill"]

# start values: neighbour averages that spread measured values into the holes
PUSH_PULL_STEPS = 8
# guards the CG step sizes where a sample has no missing point (all terms are zero)
TINY = 1e-30


class BiharmonicFill(nn.Module):
    """Fill the points where ``mask`` is 0 with the biharmonic interpolant (module
    docstring); measured points keep their values.

    Parameters
    ----------
    dims:
        2 for ``(B, C, H, W)``, 3 for ``(B, C, D, H, W)``.
    iterations:
        Conjugate-gradient steps (>= 1).
    """

    def __init__(self, dims: int, iterations: int = 32) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        self.iterations = int(iterations)
        # one 3-tap kernel [1, 0, 1] per axis: the neighbour sum as separate 1D
        # convolutions runs about 2.5x faster in onnxruntime than one 3^d kernel
        for axis in range(dims):
            shape = [1] * dims
            shape[axis] = 3
            kernel = torch.tensor([1.0, 0.0, 1.0]).reshape(1, 1, *shape)
            self.register_buffer(f"neighbours_{axis}", kernel, persistent=False)

    def neighbour_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum of the 2 ``dims`` nearest neighbours inside the grid, per channel."""
        conv = F.conv2d if self.dims == 2 else F.conv3d
        flat = t.reshape(-1, 1, *t.shape[2:])
        total = None
        for axis in range(self.dims):
            padding = [0] * self.dims
            padding[axis] = 1
            part = conv(flat, getattr(self, f"neighbours_{axis}"), padding=tuple(padding))
            total = part if total is None else total + part
        return total.reshape(t.shape)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, C, *grid)``, ``mask`` ``(B, 1, *grid)`` with 1 = measured (> 0.5)
        -> ``(B, C, *grid)`` float32 with the missing points filled. Values of ``x`` at
        missing points do not matter."""
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            known = (mask > 0.5).float()
            missing = 1.0 - known
            degree = self.neighbour_sum(torch.ones_like(known))

            def laplacian(u: torch.Tensor) -> torch.Tensor:
                return self.neighbour_sum(u) - degree * u

            def normal_operator(v: torch.Tensor) -> torch.Tensor:  # P_M L^2 P_M
                return missing * laplacian(laplacian(v))

            measured = x * known
            fill, weight = measured, known
            for _ in range(PUSH_PULL_STEPS):
                count = self.neighbour_sum(weight)
                reached = (count > 0).float()
                average = self.neighbour_sum(fill * weight) / count.clamp_min(1.0)
                fill = measured + missing * reached * average
                weight = torch.maximum(known, reached)
            v = missing * fill
            axes = tuple(range(2, x.dim()))
            residual = -normal_operator(measured + v)
            direction = residual
            rs = (residual * residual).sum(dim=axes, keepdim=True)
            for _ in range(self.iterations):
                a_dir = normal_operator(direction)
                alpha = rs / (direction * a_dir).sum(dim=axes, keepdim=True).clamp_min(TINY)
                v = v + alpha * direction
                residual = residual - alpha * a_dir
                rs_new = (residual * residual).sum(dim=axes, keepdim=True)
                direction = residual + rs_new / rs.clamp_min(TINY) * direction
                rs = rs_new
            return measured + v
