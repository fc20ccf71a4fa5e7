"""The on-disk layouts of ``/measurement/data`` and reading selected frequencies.

MDF v2 (DESIGN section 3) stores the data in one of these h5py shapes
(N frames, J periods, C receive channels, V samples, K frequencies):

===========================  =====================  ====================================
layout                       h5py shape             flags
===========================  =====================  ====================================
time domain                  ``(N, J, C, V)``       isFourierTransformed = 0
time domain, fast frames     ``(J, C, V, N)``       isFastFrameAxis = 1
frequency domain             ``(N, J, C, K)``       isFourierTransformed = 1
fast frame axis (SM)         ``(J, C, K, N)``       isFastFrameAxis = isFourierTransformed = 1
sparsity transformed         ``(J, C, K, B + E)``   isSparsityTransformed = 1 (+ fast axis)
===========================  =====================  ====================================

Complex data is the ``{r, i}`` compound (read by h5py as complex) or, as in the
pre-2.0 drafts, a real array with a trailing axis of length 2. Integer data is
converted to float. :func:`read_frames` reads only the requested frequency rows from
disk (contiguous runs as hyperslabs), except for time-domain data, which must be read
whole to be Fourier transformed.
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

from .quirks import FieldReader
from .safety import MAX_SAMPLING_POINTS, require_plausible

__all__ = ["Layout", "parse_layout", "read_frames", "read_subsampling_indices"]

DATA = "/measurement/data"


@dataclass
class Layout:
    """How ``/measurement/data`` is stored, with the sizes taken from the file.

    Attributes
    ----------
    num_frames:
        N, stored frames (for sparsity-transformed data B + E).
    num_periods, num_channels, num_samples:
        J, C, V.
    num_stored_frequencies:
        K along the data's frequency axis (V for time-domain data).
    time_domain, fast_frame_axis, pair_axis, sparse:
        Layout flags; ``pair_axis`` = complex stored as a trailing real axis of 2.
    background_mask:
        bool ``(N,)``, True for background frames.
    permutation:
        int64 ``(N,)`` 0-based acquisition index of each stored frame (identity if the
        file has no frame permutation), or for sparse data ``(O + E,)``.
    has_permutation:
        Whether the file declares a frame permutation.
    frequency_selection:
        int64 ``(K,)`` 0-based rfft bins of the stored frequencies, or None (all bins).
    bandwidth:
        Receiver bandwidth in Hz (sampling rate / 2).
    sparsity_transformation:
        Name of the sparsity transform (``"DCT-II"`` ...), or None.
    """

    num_frames: int
    num_periods: int
    num_channels: int
    num_samples: int
    num_stored_frequencies: int
    time_domain: bool
    fast_frame_axis: bool
    pair_axis: bool
    sparse: bool
    background_mask: np.ndarray
    permutation: np.ndarray
    has_permutation: bool
    frequency_selection: np.ndarray | None
    bandwidth: float
    sparsity_transformation: str | None = None

    @property
    def num_bins(self) -> int:
        """L = V // 2 + 1, the number of rfft bins of one period."""
        return self.num_samples // 2 + 1

    def stored_bins(self) -> np.ndarray:
        """0-based rfft bin of each stored frequency position (all L for time domain)."""
        if self.time_domain or self.frequency_selection is None:
            return np.arange(self.num_bins, dtype=np.int64)
        return self.frequency_selection

    def bin_frequencies(self, bins: np.ndarray) -> np.ndarray:
        """Frequencies in Hz of rfft ``bins``: ``bin * 2 * bandwidth / V``."""
        return np.asarray(bins, dtype=np.float64) * (2.0 * self.bandwidth / self.num_samples)


def _data_shape(reader: FieldReader, ds: h5py.Dataset) -> tuple[tuple[int, ...], bool]:
    """(logical 4-D shape, pair_axis) of the data; checks the dtype."""
    dtype = ds.dtype
    shape = ds.shape
    if shape is None:
        raise reader.error(DATA, "dataset has no data (empty dataspace)")
    if dtype.kind == "c":
        if len(shape) != 4:
            raise reader.error(DATA, f"expected 4 dimensions, found shape {shape}")
        return tuple(shape), False
    if dtype.kind in "iuf":
        if len(shape) == 5 and shape[-1] == 2:
            return tuple(shape[:4]), True
        if len(shape) != 4:
            raise reader.error(DATA, f"expected 4 dimensions, found shape {shape}")
        return tuple(shape), False
    raise reader.error(DATA, f"unsupported data type {dtype} (expected a number or the "
                             "{r, i} complex compound)")


def parse_layout(reader: FieldReader) -> Layout:
    """Read the flags and sizes of ``/measurement`` and check them for consistency."""
    if not reader.is_group("/measurement"):
        raise reader.error("/measurement", "missing: the file holds no measurement data "
                                           "(metadata only?)")
    ds = reader.dataset(DATA)
    shape, pair_axis = _data_shape(reader, ds)
    require_plausible(reader.path, DATA, ds)   # sizes below derive from this shape
    fourier = reader.flag("/measurement/isFourierTransformed")
    fast = reader.flag("/measurement/isFastFrameAxis", False)
    sparse = reader.flag("/measurement/isSparsityTransformed", False)
    time_domain = not fourier
    if pair_axis and time_domain:
        raise reader.error(DATA, "time-domain data cannot have a complex (r, i) axis")
    if time_domain and ds.dtype.kind == "c":
        raise reader.error(DATA, "complex data but isFourierTransformed = 0")
    if sparse and not (fast and fourier):
        raise reader.error("/measurement/isSparsityTransformed",
                           "sparsity-transformed data must have isFastFrameAxis = "
                           "isFourierTransformed = 1")
    if fast:
        num_periods, num_channels, k_axis, num_frames = shape
    else:
        num_frames, num_periods, num_channels, k_axis = shape
    if min(shape) < 1:
        raise reader.error(DATA, f"empty data shape {ds.shape}")

    def _check(field: str, expected: int, what: str) -> None:
        if reader.has(field):
            value = reader.integer(field)
            if value != expected:
                raise reader.error(field, f"{value} does not match the {expected} {what} "
                                          f"of {DATA} {ds.shape}")

    _check("/acquisition/numFrames", num_frames, "frames")
    _check("/acquisition/numPeriodsPerFrame", num_periods, "periods")
    _check("/acquisition/receiver/numChannels", num_channels, "receive channels")

    selected = fourier and reader.flag("/measurement/isFrequencySelection", False)
    if reader.has("/acquisition/receiver/numSamplingPoints"):
        num_samples = reader.integer("/acquisition/receiver/numSamplingPoints")
    elif time_domain:
        num_samples = k_axis
    elif not selected:
        num_samples = 2 * (k_axis - 1)
    else:
        raise reader.error("/acquisition/receiver/numSamplingPoints",
                           "missing; needed to place the selected frequencies")
    if not 1 <= num_samples <= MAX_SAMPLING_POINTS:
        raise reader.error("/acquisition/receiver/numSamplingPoints",
                           f"must lie in 1..{MAX_SAMPLING_POINTS}, found {num_samples}")
    num_bins = num_samples // 2 + 1

    selection = None
    if time_domain:
        if k_axis != num_samples:
            raise reader.error(DATA, f"{k_axis} samples per period, but numSamplingPoints "
                                     f"= {num_samples}")
    elif selected:
        selection = reader.integers("/measurement/frequencySelection", size=k_axis) - 1
        if selection.min() < 0 or selection.max() >= num_bins:
            raise reader.error("/measurement/frequencySelection",
                               f"indices must lie in 1..{num_bins} (V = {num_samples})")
        if np.unique(selection).size != selection.size:
            raise reader.error("/measurement/frequencySelection", "repeated indices")
    elif k_axis != num_bins:
        raise reader.error(DATA, f"{k_axis} frequencies, but V = {num_samples} gives "
                                 f"V // 2 + 1 = {num_bins} and isFrequencySelection = 0")

    bandwidth = reader.number("/acquisition/receiver/bandwidth")
    if bandwidth <= 0:
        raise reader.error("/acquisition/receiver/bandwidth", f"must be positive, found "
                                                              f"{bandwidth}")

    mask = reader.flags("/measurement/isBackgroundFrame", None)
    if mask is None:
        mask = np.zeros(num_frames, dtype=bool)
    elif mask.size != num_frames:
        raise reader.error("/measurement/isBackgroundFrame",
                           f"{mask.size} entries for {num_frames} frames")

    has_perm = reader.flag("/measurement/isFramePermutation", False)
    if has_perm and reader.has("/measurement/framePermutation"):
        perm = reader.integers("/measurement/framePermutation").reshape(-1) - 1
        expected = num_frames
        if sparse and perm.size != num_frames:
            expected = perm.size  # original O + E frames, checked against size later
        if perm.size != expected or not np.array_equal(np.sort(perm), np.arange(expected)):
            raise reader.error("/measurement/framePermutation",
                               f"not a permutation of 1..{num_frames}")
    else:
        if has_perm:
            raise reader.error("/measurement/framePermutation",
                               "missing although isFramePermutation = 1")
        perm = np.arange(num_frames, dtype=np.int64)

    transform = None
    if sparse:
        transform = reader.string("/measurement/sparsityTransformation")
        if transform.upper().replace("_", "-") not in ("DCT-II", "DCT-IV", "DCT"):
            raise reader.error("/measurement/sparsityTransformation",
                               f"unsupported transform {transform!r} (DCT-II, DCT-IV)")

    return Layout(num_frames=num_frames, num_periods=num_periods,
                  num_channels=num_channels, num_samples=num_samples,
                  num_stored_frequencies=k_axis, time_domain=time_domain,
                  fast_frame_axis=fast, pair_axis=pair_axis, sparse=sparse,
                  background_mask=mask, permutation=perm, has_permutation=has_perm,
                  frequency_selection=selection, bandwidth=bandwidth,
                  sparsity_transformation=transform)


def _runs(positions: np.ndarray) -> list[tuple[int, int, int]]:
    """Split sorted unique positions into (start, stop, offset) runs of consecutive values."""
    runs = []
    start = 0
    for i in range(1, positions.size + 1):
        if i == positions.size or positions[i] != positions[i - 1] + 1:
            runs.append((int(positions[start]), int(positions[i - 1]) + 1, start))
            start = i
    return runs


def _as_complex(block: np.ndarray, pair_axis: bool) -> np.ndarray:
    """Complex view of a block: (r, i) pairs combined, reals/integers promoted."""
    wide = block.dtype == np.float64
    if pair_axis:
        block = block[..., 0] + 1j * block[..., 1]
    return block.astype(np.complex128 if wide else np.complex64, copy=False)


def read_frames(reader: FieldReader, layout: Layout, positions: np.ndarray,
                period: int) -> np.ndarray:
    """Frames of one period at the stored frequency ``positions``.

    Parameters
    ----------
    positions:
        0-based positions along the stored frequency axis (for time-domain data: rfft
        bins), any order, no repeats.
    period:
        0-based period index j.

    Returns
    -------
    complex ``(N, C, len(positions))`` in stored frame order (complex64 unless the file
    stores float64).
    """
    ds = reader.dataset(DATA)
    positions = np.asarray(positions, dtype=np.int64)
    order = np.argsort(positions)
    sorted_pos = positions[order]
    if layout.time_domain:
        if layout.fast_frame_axis:
            block = ds[period]                        # (C, V, N)
            block = np.moveaxis(block, -1, 0)         # (N, C, V)
        else:
            block = ds[:, period]                     # (N, C, V)
        block = block.astype(np.float64 if block.dtype == np.float64 else np.float32)
        spectrum = np.fft.rfft(block, axis=-1)
        out = spectrum[..., positions]
        return out.astype(np.complex128 if block.dtype == np.float64 else np.complex64)

    runs = _runs(sorted_pos)
    if ds.dtype.kind == "c" and not layout.pair_axis:
        # complex on disk: read each run of rows straight into the output array
        shape = ((layout.num_channels, positions.size, layout.num_frames)
                 if layout.fast_frame_axis else
                 (layout.num_frames, layout.num_channels, positions.size))
        block = np.empty(shape, dtype=np.complex128 if ds.dtype.itemsize == 16
                         else np.complex64)
        for start, stop, offset in runs:
            width = stop - start
            if layout.fast_frame_axis:
                ds.read_direct(block, np.s_[period, :, start:stop],
                               np.s_[:, offset:offset + width])
            else:
                ds.read_direct(block, np.s_[:, period, :, start:stop],
                               np.s_[:, :, offset:offset + width])
    else:
        axis = 1 if layout.fast_frame_axis else 2
        pieces = [_as_complex(ds[period, :, start:stop] if layout.fast_frame_axis
                              else ds[:, period, :, start:stop], layout.pair_axis)
                  for start, stop, _ in runs]
        block = np.concatenate(pieces, axis=axis) if len(pieces) > 1 else pieces[0]
    if layout.fast_frame_axis:
        block = np.moveaxis(block, -1, 0)              # (N, C, k) view
    if np.any(order != np.arange(order.size)):
        inverse = np.empty_like(order)
        inverse[order] = np.arange(order.size)
        block = block[:, :, inverse]
    return block


def read_subsampling_indices(reader: FieldReader, layout: Layout, positions: np.ndarray,
                             period: int, num_voxels: int) -> np.ndarray:
    """0-based voxel indices ``(C, len(positions), B)`` of the stored DCT coefficients.

    ``/measurement/subsamplingIndices`` has h5py shape ``(J, C, K, B)`` with 1-based
    linear voxel indices (x fastest), B = number of stored foreground coefficients.
    """
    field = "/measurement/subsamplingIndices"
    ds = reader.dataset(field)
    require_plausible(reader.path, field, ds)
    num_coeffs = int((~layout.background_mask).sum())
    expected = (layout.num_periods, layout.num_channels, layout.num_stored_frequencies,
                num_coeffs)
    if ds.shape != expected:
        raise reader.error(field, f"shape {ds.shape}, expected (J, C, K, B) = {expected}")
    if ds.dtype.kind not in "iu":
        raise reader.error(field, f"expected integers, found {ds.dtype}")
    positions = np.asarray(positions, dtype=np.int64)
    order = np.argsort(positions)
    block = np.empty((layout.num_channels, positions.size, num_coeffs), dtype=np.int64)
    block[:, order, :] = ds[period, :, positions[order].tolist(), :]
    block -= 1
    if block.size and (block.min() < 0 or block.max() >= num_voxels):
        raise reader.error(field, f"indices must lie in 1..{num_voxels}")
    return block
