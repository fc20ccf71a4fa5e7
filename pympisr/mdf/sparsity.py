"""Undo the DCT sparsity transform of compressed MDF system matrices.

A sparsity-transformed SM (``isSparsityTransformed = 1``) keeps, per period j,
channel c and frequency k, only the B largest coefficients of the orthonormal
multi-dimensional DCT of the foreground image (shape ``calibration/size``), with their
1-based linear voxel indices (x fastest) in ``/measurement/subsamplingIndices``.
Reconstruction places the coefficients on a zero grid and applies the adjoint (= the
inverse, the DCT being orthonormal), as MPIFiles.jl does.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

__all__ = ["dct_type", "expand_coefficients"]


def dct_type(name: str) -> int:
    """scipy DCT type for an MDF ``sparsityTransformation`` name (``DCT-II``, ``DCT-IV``)."""
    key = name.strip().upper().replace("_", "-")
    return {"DCT": 2, "DCT-II": 2, "DCT-IV": 4}[key]


def expand_coefficients(coefficients: np.ndarray, indices: np.ndarray,
                        grid: tuple[int, int, int], transform: str) -> np.ndarray:
    """Images from stored DCT coefficients.

    Parameters
    ----------
    coefficients:
        complex ``(B, C, K)`` stored foreground coefficients.
    indices:
        int ``(C, K, B)`` 0-based linear voxel indices of the coefficients.
    grid:
        ``(Nx, Ny, Nz)``.
    transform:
        MDF transform name.

    Returns
    -------
    complex ``(O, C, K)`` foreground frames in voxel order (x fastest), O = prod(grid).
    """
    nx, ny, nz = grid
    num_coeffs, channels, freqs = coefficients.shape
    num_voxels = nx * ny * nz
    dense = np.zeros((channels, freqs, num_voxels), dtype=np.complex128)
    np.put_along_axis(dense, indices, np.moveaxis(coefficients, 0, -1), axis=-1)
    images = scipy.fft.idctn(dense.reshape(channels, freqs, nz, ny, nx),
                             type=dct_type(transform), norm="ortho", axes=(2, 3, 4))
    frames = images.reshape(channels, freqs, num_voxels)
    return np.moveaxis(frames, -1, 0).astype(coefficients.dtype, copy=False)
