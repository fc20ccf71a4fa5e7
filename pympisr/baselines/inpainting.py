"""Biharmonic inpainting of missing calibration positions (seed paper 3.2 baseline).

Missing samples are filled by solving the biharmonic equation ``Delta^2 u = 0`` inside the
missing region with the known samples as boundary values (Damelin & Hoang 2018),
:func:`skimage.restoration.inpaint_biharmonic`, on the real and the imaginary part
separately (passed as two channels of one call).  Works in 2D and 3D.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["inpaint_biharmonic"]


def inpaint_biharmonic(x: np.ndarray, mask: np.ndarray, *, dims: int | None = None) -> np.ndarray:
    """Fill the samples of ``x`` where ``mask`` is False.

    Parameters
    ----------
    x
        Complex components ``(*batch, H, W)`` or ``(*batch, D, H, W)``; values at missing
        samples are ignored.
    mask
        Bool, True = valid (measured) sample, broadcastable to ``x`` (one mask for all
        components, or one per component).
    dims
        Number of spatial axes; default ``mask.ndim`` when that is 2 or 3, else 2.
        Length-1 spatial axes (a 2D component stored as ``(1, Ny, Nx)``) are fine.

    Returns
    -------
    Complex array of the shape of ``x`` (complex64 if ``x`` is complex64) where valid
    samples are kept and missing ones are inpainted.
    """
    from skimage.restoration import inpaint_biharmonic as skimage_inpaint

    x = np.asarray(x)
    mask = np.asarray(mask, dtype=bool)
    if dims is None:
        dims = mask.ndim if mask.ndim in (2, 3) else 2
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims!r}")
    if x.ndim < dims:
        raise ValueError(f"components of shape {x.shape} have fewer than dims={dims} axes")
    try:
        mask = np.broadcast_to(mask, x.shape)
    except ValueError:
        raise ValueError(f"mask of shape {mask.shape} does not broadcast to {x.shape}") from None
    out = np.array(x, dtype=np.complex64 if x.dtype == np.complex64 else np.complex128)
    spatial = x.shape[-dims:]
    keep = tuple(i for i, n in enumerate(spatial) if n > 1)
    for index in itertools.product(*map(range, x.shape[:-dims])):
        missing = ~mask[index]
        if not missing.any():
            continue
        if missing.all():
            raise ValueError(f"component {index}: every sample is masked, nothing to inpaint from")
        squeeze = tuple(i for i in range(dims) if i not in keep)
        image = np.squeeze(np.stack([out[index].real, out[index].imag], axis=-1), axis=squeeze)
        filled = skimage_inpaint(image, np.squeeze(missing, axis=squeeze), channel_axis=-1)
        out[index] = (filled[..., 0] + 1j * filled[..., 1]).reshape(spatial)
    return out
