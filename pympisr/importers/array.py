"""A plain complex array with frequencies and grid as a :class:`pympisr.SystemMatrix`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..mdf.writer import infer_frequency_indices
from ..system_matrix import SystemMatrix

__all__ = ["system_matrix_from_array"]


def system_matrix_from_array(data: Any, frequencies: Any, grid: Sequence[int],
                             fov: Sequence[float], *, center: Sequence[float] = (0, 0, 0),
                             frequency_indices: Any = None, snr: Any = None,
                             metadata: dict[str, Any] | None = None,
                             what: str = "array") -> SystemMatrix:
    """Build a system matrix from numbers.

    Parameters
    ----------
    data:
        Complex ``(C, K, Nz, Ny, Nx)``, ``(C, K, N)`` or ``(K, N)`` (one channel), with
        ``N = Nx Ny Nz`` voxels in MDF order (x fastest).
    frequencies:
        ``(K,)`` Hz.
    grid:
        ``(Nx, Ny, Nz)``.
    fov, center:
        Field of view and its centre, ``(3,)`` m.
    frequency_indices:
        0-based rfft bins of the rows; default inferred from ``frequencies`` (they must
        then be integer multiples of one spacing).
    snr:
        Optional ``(C, K)`` SNR per component.
    metadata:
        Extra MDF fields (``{"/scanner/name": ...}``; own fields under ``/_...``).
    what:
        Name of the source for error messages (a file and key).
    """
    arr = np.asarray(data)
    if not np.issubdtype(arr.dtype, np.number):
        raise InvalidInputError(f"{what}: numbers expected, got dtype {arr.dtype}")
    grid = tuple(int(g) for g in grid)
    if len(grid) != 3 or min(grid) < 1:
        raise InvalidInputError(f"{what}: grid must be 3 positive sizes (Nx, Ny, Nz), "
                                f"got {grid}")
    nx, ny, nz = grid
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 3:
        if arr.shape[2] != nx * ny * nz:
            raise InvalidInputError(f"{what}: {arr.shape[2]} voxels per row, but grid "
                                    f"{grid} has {nx * ny * nz}")
        arr = arr.reshape(arr.shape[0], arr.shape[1], nz, ny, nx)
    if arr.ndim != 5 or arr.shape[2:] != (nz, ny, nx):
        raise InvalidInputError(f"{what}: shape {np.shape(data)} is not (C, K, Nz, Ny, Nx), "
                                f"(C, K, N) or (K, N) for grid {grid}")
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{what}: contains NaN or Inf")
    freqs = np.asarray(frequencies, np.float64).reshape(-1)
    if freqs.size != arr.shape[1]:
        raise InvalidInputError(f"{what}: {freqs.size} frequencies for {arr.shape[1]} rows")
    if frequency_indices is None:
        frequency_indices = infer_frequency_indices(freqs)
        if frequency_indices is None:
            raise InvalidInputError(f"{what}: frequencies are not integer multiples of one "
                                    "spacing; pass frequency_indices (0-based rfft bins)")
    try:
        return SystemMatrix(data=arr.astype(np.complex64), frequencies=freqs, grid=grid,
                            fov=fov, center=center, frequency_indices=frequency_indices,
                            snr=None if snr is None else np.asarray(snr, np.float32),
                            metadata=dict(metadata or {}))
    except ValueError as exc:
        raise InvalidInputError(f"{what}: {exc}") from exc
