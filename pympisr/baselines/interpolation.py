"""Bicubic / tricubic spline upsampling (seed paper 3.2 baselines; TranSMS "bicubic").

The coarse samples sit at known positions of the fine grid (fine-grid index units,
:meth:`pympisr.degradations.Downsample.coarse_coordinates`): every ``s``-th point for
strided sampling, block centres for block means.  The fine grid is recovered by
tensor-product cubic spline interpolation (not-a-knot end conditions) through those
positions, evaluated at every fine index; beyond the last coarse sample (e.g. the 26th
point of a 26-point axis sampled at 0, 2, ..., 24) the end polynomial extrapolates.

This is the interpolant of ``scipy.interpolate.RegularGridInterpolator(method="cubic")``
on the coarse coordinates (same tensor-product not-a-knot spline), computed axis by
axis with :func:`scipy.interpolate.make_interp_spline`, whose direct banded solve
reproduces the coarse samples to machine precision (RegularGridInterpolator's iterative
solver only to about 1e-5).  Odd grids are exact: 13 samples at 0, 2, ..., 24 give 25
points.  Axes with fewer than 4 coarse samples use the highest spline degree they
support (1 or 2 points: constant or linear).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.interpolate import make_interp_spline

from ..degradations import Downsample

__all__ = ["default_target_shape", "interpolate_upsample"]


def default_target_shape(coarse: Sequence[int], factor: int, mode: str) -> tuple[int, ...]:
    """Fine grid implied by a coarse grid: ``(n - 1) * s + 1`` (stride) or ``n * s`` (mean).

    A strided axis of ``n`` samples came from ``(n - 1) * s + 1`` to ``n * s`` fine
    points; the default is the smallest (the last coarse sample on the last fine point).
    Pass ``target_shape`` explicitly otherwise.
    """
    if mode == "stride":
        return tuple((int(n) - 1) * factor + 1 for n in coarse)
    return tuple(int(n) * factor for n in coarse)


def interpolate_upsample(x_coarse: np.ndarray, factor: int, *,
                         target_shape: Sequence[int] | None = None, dims: int = 2,
                         mode: str = "stride") -> np.ndarray:
    """Upsample components by cubic spline interpolation.

    Parameters
    ----------
    x_coarse
        Complex (or real) components ``(*batch, h, w)`` or ``(*batch, d, h, w)`` on the
        coarse grid.
    factor
        Downsampling factor ``s`` per spatial axis.
    target_shape
        Spatial shape of the fine grid (``dims`` integers); default
        :func:`default_target_shape`.  Must map to the coarse shape under
        ``Downsample(factor, dims, mode)``.
    dims
        Number of spatial axes (2: bicubic, 3: tricubic).
    mode
        How the coarse samples were taken: ``"stride"`` or ``"mean"`` (see
        :class:`pympisr.degradations.Downsample`).

    Returns
    -------
    Array ``(*batch, *target_shape)``, dtype of ``x_coarse`` promoted to at least 64-bit
    floats of the same kind (complex64 stays complex64).
    """
    op = Downsample(factor, dims, mode)
    x = np.asarray(x_coarse)
    if x.ndim < dims:
        raise ValueError(f"components of shape {x.shape} have fewer than dims={dims} axes")
    coarse = x.shape[-dims:]
    target = (default_target_shape(coarse, op.factor, mode) if target_shape is None
              else tuple(int(n) for n in target_shape))
    if len(target) != dims:
        raise ValueError(f"target_shape {target} must have {dims} entries")
    if op.output_shape(target) != tuple(coarse):
        raise ValueError(f"target grid {target} downsampled by {factor} ({mode}) gives "
                         f"{op.output_shape(target)}, not the coarse grid {tuple(coarse)}")
    out = x
    for axis, (points, n_fine) in zip(range(-dims, 0), zip(op.coarse_coordinates(target), target)):
        degree = min(3, points.size - 1)
        if degree == 0:
            out = np.repeat(out, n_fine, axis=axis)
            continue
        spline = make_interp_spline(points, out, k=degree, axis=out.ndim + axis)
        out = spline(np.arange(n_fine, dtype=np.float64))
    if x.dtype == np.complex64:
        return out.astype(np.complex64)
    if x.dtype == np.float32:
        return out.astype(np.float32)
    return out
