"""Biharmonic inpainting of missing calibration positions (seed paper 3.2 baseline).

Missing samples are filled by solving the biharmonic equation ``Delta^2 u = 0`` inside the
missing region with the known samples as boundary values (Damelin & Hoang 2018),
:func:`skimage.restoration.inpaint_biharmonic`, on the real and the imaginary part
separately (passed as channels of one call, together with every other component that
has the same mask: the system is built once per mask).  Works in 2D and 3D.
"""

from __future__ import annotations

import numpy as np

__all__ = ["inpaint_biharmonic"]

_CHUNK = 256  # components per solve


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
    squeeze = tuple(i for i, n in enumerate(spatial) if n == 1)
    flat = out.reshape(-1, *spatial)
    masks = mask.reshape(-1, *spatial)
    # components that share a mask share the biharmonic system: one solve for all of
    # them, their real and imaginary parts passed as channels
    distinct, which = np.unique(masks.reshape(masks.shape[0], -1), axis=0,
                                return_inverse=True)
    for index, valid in enumerate(distinct):
        missing = ~valid.reshape(spatial)
        if not missing.any():
            continue
        members = np.flatnonzero(which.reshape(-1) == index)
        if missing.all():
            first = np.unravel_index(members[0], x.shape[:-dims])
            raise ValueError(f"component {first}: every sample is masked, nothing to "
                             "inpaint from")
        for chunk in np.array_split(members, -(-members.size // _CHUNK)):
            parts = np.concatenate([flat[chunk].real, flat[chunk].imag])  # (2n, *spatial)
            image = np.squeeze(np.moveaxis(parts, 0, -1), axis=squeeze)
            filled = skimage_inpaint(image, np.squeeze(missing, axis=squeeze), channel_axis=-1)
            filled = np.moveaxis(filled.reshape(*spatial, -1), -1, 0)
            flat[chunk] = filled[: chunk.size] + 1j * filled[chunk.size:]
    return flat.reshape(x.shape)
