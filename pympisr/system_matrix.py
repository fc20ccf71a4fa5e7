"""In-memory data models: :class:`SystemMatrix` and :class:`Measurement`.

Conventions (DESIGN section 2):

* A system matrix is a complex64 array ``(C, K, Nz, Ny, Nx)``: receive channel,
  frequency, then space with x fastest (MDF voxel order). 2D grids have ``Nz = 1``.
* ``grid`` is ``(Nx, Ny, Nz)`` as in MDF's ``/calibration/size``; ``fov`` and ``center``
  are ``(3,)`` arrays in metres, in x, y, z order.
* ``frequencies`` are in Hz; ``frequency_indices`` are the 0-based indices of the
  frequencies in the full rfft of one period (``K_full = V // 2 + 1`` bins).
* ``metadata`` maps absolute HDF5 paths (``"/acquisition/drivefield/baseFrequency"``) to
  the values read from the source file, so that a load/save round trip loses nothing.
  The fields that this class models explicitly take precedence when writing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Measurement", "SystemMatrix"]


def _as_float_vector(value: Any, name: str, size: int = 3) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size != size:
        raise ValueError(f"{name} must have {size} entries, got shape {np.shape(value)}")
    return arr


@dataclass(eq=False)
class SystemMatrix:
    """An MPI system matrix with the metadata needed to use, restore and save it.

    Attributes
    ----------
    data:
        complex64 ``(C, K, Nz, Ny, Nx)``, one image per receive channel and frequency.
    frequencies:
        float64 ``(K,)``, Hz.
    grid:
        ``(Nx, Ny, Nz)`` calibration grid size.
    fov, center:
        float64 ``(3,)``, field of view and its centre in metres (x, y, z).
    snr:
        float32 ``(C, K)`` per-(channel, frequency) SNR of period 1, or None.
    background:
        complex64 ``(E, C, K)`` background (empty-scanner) frames, or None.
    frequency_indices:
        int64 ``(K,)`` 0-based rfft bin indices of ``frequencies``.
    transfer_function:
        complex64 ``(C, K)`` receive-chain transfer function, or None.
    is_background_corrected, is_transfer_function_corrected:
        Whether ``data`` already had the background subtracted / was divided by the
        transfer function.
    metadata:
        Every other field of the source file, keyed by absolute HDF5 path.
    """

    data: np.ndarray
    frequencies: np.ndarray
    grid: tuple[int, int, int]
    fov: np.ndarray
    center: np.ndarray = field(default_factory=lambda: np.zeros(3))
    snr: np.ndarray | None = None
    background: np.ndarray | None = None
    frequency_indices: np.ndarray | None = None
    transfer_function: np.ndarray | None = None
    is_background_corrected: bool = False
    is_transfer_function_corrected: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data)
        if self.data.ndim != 5:
            raise ValueError(f"data must be (C, K, Nz, Ny, Nx), got shape {self.data.shape}")
        if not np.iscomplexobj(self.data) or self.data.dtype != np.complex64:
            self.data = self.data.astype(np.complex64)
        c, k, nz, ny, nx = self.data.shape
        self.grid = tuple(int(g) for g in self.grid)  # type: ignore[assignment]
        if len(self.grid) != 3 or self.grid != (nx, ny, nz):
            raise ValueError(f"grid {self.grid} does not match data shape {self.data.shape} "
                             "(grid is (Nx, Ny, Nz))")
        self.frequencies = np.asarray(self.frequencies, dtype=np.float64).reshape(-1)
        if self.frequencies.size != k:
            raise ValueError(f"{self.frequencies.size} frequencies for {k} data rows")
        self.fov = _as_float_vector(self.fov, "fov")
        self.center = _as_float_vector(self.center, "center")
        if self.frequency_indices is not None:
            self.frequency_indices = np.asarray(self.frequency_indices, dtype=np.int64).reshape(-1)
            if self.frequency_indices.size != k:
                raise ValueError("frequency_indices must have one entry per frequency")
        if self.snr is not None:
            self.snr = np.asarray(self.snr, dtype=np.float32)
            if self.snr.shape != (c, k):
                raise ValueError(f"snr must be (C, K) = {(c, k)}, got {self.snr.shape}")
        if self.background is not None:
            self.background = np.asarray(self.background, dtype=np.complex64)
            if self.background.ndim != 3 or self.background.shape[1:] != (c, k):
                raise ValueError(f"background must be (E, C, K) with (C, K) = {(c, k)}, "
                                 f"got {self.background.shape}")
        if self.transfer_function is not None:
            self.transfer_function = np.asarray(self.transfer_function, dtype=np.complex64)
            if self.transfer_function.shape != (c, k):
                raise ValueError(f"transfer_function must be (C, K) = {(c, k)}, "
                                 f"got {self.transfer_function.shape}")

    # ------------------------------------------------------------------ shape helpers
    @property
    def num_channels(self) -> int:
        return int(self.data.shape[0])

    @property
    def num_frequencies(self) -> int:
        return int(self.data.shape[1])

    @property
    def num_voxels(self) -> int:
        return int(np.prod(self.grid))

    @property
    def dims(self) -> int:
        """2 for a planar grid (``Nz == 1``), else 3."""
        return 2 if self.grid[2] == 1 else 3

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        """``(Nz, Ny, Nx)``, the trailing shape of :attr:`data`."""
        return tuple(self.data.shape[2:])  # type: ignore[return-value]

    def voxel_centers(self) -> np.ndarray:
        """Voxel centre coordinates in metres, ``(Nz, Ny, Nx, 3)`` with last axis (x, y, z).

        Centres are at ``center - fov/2 + (i + 0.5) fov / N`` per axis (MDF convention).
        """
        axes = [self.center[a] - self.fov[a] / 2 + (np.arange(n) + 0.5) * self.fov[a] / n
                for a, n in enumerate(self.grid)]
        z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
        return np.stack([x, y, z], axis=-1)

    def matrix(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The system matrix as rows ``(M, N_voxels)`` for reconstruction.

        ``rows`` is an ``(M, 2)`` integer array of ``(channel, frequency)`` pairs in the
        wanted order; by default all frequencies of channel 0, then channel 1, ...
        """
        flat = self.data.reshape(self.num_channels, self.num_frequencies, -1)
        if rows is None:
            return flat.reshape(-1, flat.shape[-1])
        rows = np.asarray(rows, dtype=np.int64)
        return flat[rows[:, 0], rows[:, 1]]

    def replace(self, **changes: Any) -> SystemMatrix:
        """A copy with some fields replaced (metadata dict is copied shallowly)."""
        changes.setdefault("metadata", dict(self.metadata))
        return dataclasses.replace(self, **changes)


@dataclass(eq=False)
class Measurement:
    """A (phantom) measurement in the frequency domain.

    Attributes
    ----------
    data:
        complex64 ``(F, C, K)`` foreground frames (one period per frame; see the reader
        for how files with several periods are handled).
    frequencies:
        float64 ``(K,)`` in Hz.
    background:
        complex64 ``(E, C, K)`` background frames, or None.
    frequency_indices:
        int64 ``(K,)`` 0-based rfft bin indices.
    transfer_function:
        complex64 ``(C, K)`` or None.
    is_background_corrected, is_transfer_function_corrected:
        Processing already applied to ``data``.
    num_averages:
        Number of averages per frame in the acquisition.
    metadata:
        Every other field of the source file, keyed by absolute HDF5 path.
    """

    data: np.ndarray
    frequencies: np.ndarray
    background: np.ndarray | None = None
    frequency_indices: np.ndarray | None = None
    transfer_function: np.ndarray | None = None
    is_background_corrected: bool = False
    is_transfer_function_corrected: bool = False
    num_averages: int = 1
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data, dtype=np.complex64)
        if self.data.ndim != 3:
            raise ValueError(f"data must be (F, C, K), got shape {self.data.shape}")
        _, c, k = self.data.shape
        self.frequencies = np.asarray(self.frequencies, dtype=np.float64).reshape(-1)
        if self.frequencies.size != k:
            raise ValueError(f"{self.frequencies.size} frequencies for {k} data columns")
        if self.frequency_indices is not None:
            self.frequency_indices = np.asarray(self.frequency_indices, dtype=np.int64).reshape(-1)
            if self.frequency_indices.size != k:
                raise ValueError("frequency_indices must have one entry per frequency")
        if self.background is not None:
            self.background = np.asarray(self.background, dtype=np.complex64)
            if self.background.ndim != 3 or self.background.shape[1:] != (c, k):
                raise ValueError(f"background must be (E, C, K) with (C, K) = {(c, k)}, "
                                 f"got {self.background.shape}")
        if self.transfer_function is not None:
            self.transfer_function = np.asarray(self.transfer_function, dtype=np.complex64)
            if self.transfer_function.shape != (c, k):
                raise ValueError(f"transfer_function must be (C, K) = {(c, k)}")

    @property
    def num_frames(self) -> int:
        return int(self.data.shape[0])

    @property
    def num_channels(self) -> int:
        return int(self.data.shape[1])

    @property
    def num_frequencies(self) -> int:
        return int(self.data.shape[2])

    def replace(self, **changes: Any) -> Measurement:
        """A copy with some fields replaced (metadata dict is copied shallowly)."""
        changes.setdefault("metadata", dict(self.metadata))
        return dataclasses.replace(self, **changes)
