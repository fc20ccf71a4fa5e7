"""Reading MDF v2 files into :class:`~pympisr.SystemMatrix` and :class:`~pympisr.Measurement`.

Every layout of DESIGN section 3 is supported (see :mod:`pympisr.mdf.layout`) and only
the requested frequency rows are read from disk (except for time-domain data).

Processing, in this order (MPIFiles.jl's ``getSystemMatrix`` / ``getMeasurements``):

1. the requested frequencies of one period are read; time-domain data is rfft'ed;
2. ``/acquisition/receiver/dataConversionFactor`` ``(C, 2)`` = ``(a_c, b_c)`` is applied
   (``a_c x + b_c``; in the frequency domain ``a_c X`` plus ``b_c V`` at DC) to
   time-domain data and to frequency-domain data without a fast frame axis, which is
   where MPIFiles applies it; it is not applied to fast-frame-axis system matrices;
3. background frames (``isBackgroundFrame``) are split off; DCT-compressed foreground
   frames are expanded (:mod:`pympisr.mdf.sparsity`);
4. background correction if requested and the file is not already corrected:
   system matrices with MPIFiles' block-mean + index interpolation rule, measurements
   by subtracting the mean background (:mod:`pympisr.mdf.background`);
5. transfer-function correction (data and background frames divided by the TF):
   ``tf_correction=None`` applies it when the file has a transfer function and the data
   is not yet corrected (MPIFiles' default ``tfCorrection = rxHasTransferFunction``);
   ``True`` requires a TF (MDFError otherwise); ``False`` never applies it. Bins where
   the TF is exactly 0 are left undivided (with an :class:`MDFWarning`). The induction
   factor is not applied.

Errors: any problem with the file raises :class:`~pympisr.MDFError` (file, field,
problem): not HDF5, truncated, no ``/measurement``, inconsistent sizes or flags, wrong
types, and NaN/Inf in the data that is loaded (refused: one NaN would poison every
reconstruction with this matrix). Inputs that are not regular files (FIFOs, devices)
are refused before anything is read, and declared sizes the file does not really
store are refused before anything is allocated (:mod:`pympisr.mdf.safety`). Each
processing step (Fourier transform, conversion factor, DCT expansion, background and
transfer-function correction, the final complex64 cast) is followed by a finiteness
check that names the step and its field, instead of numpy's RuntimeWarnings (they are
silenced inside the loaders). NaN/Inf in ``/calibration/snr`` only warns
(:class:`MDFWarning`), because SNR estimates are often undefined at DC. Bad arguments
(unknown frequency bins, period out of range) raise ``ValueError``; a missing file
raises ``FileNotFoundError``.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from ..errors import MDFError, MDFWarning
from ..system_matrix import Measurement, SystemMatrix
from .background import subtract_mean_background, subtract_system_matrix_background
from .layout import Layout, parse_layout, read_frames, read_subsampling_indices
from .metadata import FRAME_PERMUTATION, collect_metadata
from .quirks import FieldReader
from .safety import (EXPANSION_RATIO_LIMIT, count_product, format_bytes, require_regular_file,
                     stored_bytes)
from .sparsity import expand_coefficients

__all__ = ["MDFWarning", "guard", "load_measurement", "load_system_matrix", "open_mdf"]

TF = "/acquisition/receiver/transferFunction"
SNR = "/calibration/snr"
CONVERSION = "/acquisition/receiver/dataConversionFactor"
#: dense DCT grid (complex128 bytes) always allowed when expanding sparse data
_EXPANSION_FLOOR_BYTES = 32 << 20


@contextlib.contextmanager
def open_mdf(path: str | os.PathLike[str]) -> Iterator[FieldReader]:
    """Open ``path`` read-only; MDFError if it is not a regular, readable HDF5 file
    (:func:`~pympisr.mdf.safety.require_regular_file`), FileNotFoundError if missing."""
    path = os.fspath(path)
    require_regular_file(path)
    try:
        h5 = h5py.File(path, "r", locking=False)
    except Exception as exc:  # h5py raises OSError, sometimes others, for non-HDF5 files
        raise MDFError(path, "/", f"not a readable HDF5 file ({exc})") from None
    try:
        yield FieldReader(h5, path)
    finally:
        with contextlib.suppress(Exception):
            h5.close()


@contextlib.contextmanager
def guard(path: str, field: str = "/") -> Iterator[None]:
    """Turn any low-level failure while parsing ``path`` into an MDFError for ``field``."""
    try:
        yield
    except MDFError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError,
            AttributeError, ZeroDivisionError, OverflowError) as exc:
        raise MDFError(path, field, f"cannot read ({type(exc).__name__}: {exc})") from None


def _dispatch_julia(name: str, path: Any, period: int, **kwargs: Any) -> Any:
    """Call ``pympisr.julia.<name>(path, **kwargs)`` (MPIFiles.jl through juliacall)."""
    if period != 0:
        raise ValueError("backend='julia' loads the first period only (period=0)")
    from .. import julia  # imported lazily: needs juliacall

    return getattr(julia, name)(path, **kwargs)


# ---------------------------------------------------------------------- selection
def _positions(layout: Layout, frequencies: Any, path: str) -> tuple[np.ndarray, np.ndarray]:
    """(rfft bins, positions along the stored frequency axis) to load."""
    available = layout.stored_bins()
    if frequencies is None:
        return available, np.arange(available.size, dtype=np.int64)
    bins = np.asarray(frequencies).reshape(-1)
    if bins.size == 0 or bins.dtype.kind not in "iu":
        raise ValueError(f"{path}: frequencies must be a non-empty sequence of integer "
                         "rfft bin indices")
    bins = bins.astype(np.int64)
    if np.unique(bins).size != bins.size:
        raise ValueError(f"{path}: frequencies contains repeated bins")
    if layout.time_domain or layout.frequency_selection is None:
        bad = bins[(bins < 0) | (bins >= layout.num_bins)]
        if bad.size:
            raise ValueError(f"{path}: frequency bins {bad.tolist()} outside "
                             f"0..{layout.num_bins - 1}")
        return bins, bins.copy()
    lookup = {int(b): i for i, b in enumerate(available)}
    missing = [int(b) for b in bins if int(b) not in lookup]
    if missing:
        raise ValueError(f"{path}: frequency bins {missing[:10]} are not stored in the file "
                         "(frequency selection)")
    return bins, np.array([lookup[int(b)] for b in bins], dtype=np.int64)


def _check_period(layout: Layout, period: int, path: str) -> None:
    if not 0 <= period < layout.num_periods:
        raise ValueError(f"{path}: period {period} outside 0..{layout.num_periods - 1}")


# ---------------------------------------------------------------------- pieces
def _along_frequencies(reader: FieldReader, field: str, arr: np.ndarray, layout: Layout,
                       bins: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Index the last axis of ``arr`` (length L = all bins, or stored K) at the selection."""
    if arr.shape[-1] == layout.num_stored_frequencies and not layout.time_domain:
        return arr[..., positions]
    if arr.shape[-1] == layout.num_bins:
        return arr[..., bins]
    raise reader.error(field, f"last axis has {arr.shape[-1]} frequencies, expected "
                              f"{layout.num_bins} (V // 2 + 1) or "
                              f"{layout.num_stored_frequencies} (stored)")


def _complex_field(reader: FieldReader, field: str) -> np.ndarray:
    value = np.asarray(reader.raw(field))
    if value.dtype.kind == "c":
        return value
    if value.dtype.kind in "iuf" and value.ndim >= 1 and value.shape[-1] == 2:
        return value[..., 0] + 1j * value[..., 1]
    raise reader.error(field, f"expected complex numbers, found {value.dtype} {value.shape}")


def _transfer_function(reader: FieldReader, layout: Layout, bins: np.ndarray,
                       positions: np.ndarray) -> np.ndarray | None:
    if not reader.has(TF):
        return None
    tf = _complex_field(reader, TF)
    if tf.ndim != 2 or tf.shape[0] != layout.num_channels:
        raise reader.error(TF, f"shape {tf.shape}, expected (C, L) with C = "
                               f"{layout.num_channels}")
    tf = _along_frequencies(reader, TF, tf, layout, bins, positions)
    if not np.all(np.isfinite(tf)):
        raise reader.error(TF, "contains NaN or Inf at the selected frequencies")
    return tf.astype(np.complex64)


def _conversion_factor(reader: FieldReader, layout: Layout, data: np.ndarray,
                       bins: np.ndarray) -> np.ndarray:
    field = CONVERSION
    if not reader.has(field) or (layout.fast_frame_axis and not layout.time_domain):
        return data
    factor = reader.numbers(field)
    if factor.shape != (layout.num_channels, 2):
        raise reader.error(field, f"shape {factor.shape}, expected (C, 2) = "
                                  f"({layout.num_channels}, 2)")
    data = data * factor[:, 0][None, :, None].astype(data.real.dtype)
    dc = bins == 0
    if dc.any():
        data[:, :, dc] += (factor[:, 1] * layout.num_samples)[None, :, None]
    _require_finite(reader, field, "applying the data conversion factor",
                    "overflow: factor too large?", data)
    return data


def _check_finite(reader: FieldReader, layout: Layout, frames: np.ndarray) -> None:
    bad = int(np.count_nonzero(~np.isfinite(frames)))
    if bad:
        where = ("after the Fourier transform of the time-domain data (NaN/Inf stored, or "
                 "overflow near the float32 limit)" if layout.time_domain
                 else "in the selected data")
        raise reader.error("/measurement/data", f"{bad} NaN/Inf values {where} (refused)")


def _require_finite(reader: FieldReader, field: str, step: str, hint: str,
                    *arrays: np.ndarray) -> None:
    """MDFError naming ``field`` if ``step`` left NaN/Inf in any of ``arrays``.

    The loaders run under ``np.errstate(all="ignore")``: instead of numpy's
    RuntimeWarnings, every processing step is followed by this check.
    """
    bad = sum(int(np.count_nonzero(~np.isfinite(arr))) for arr in arrays)
    if bad:
        raise reader.error(field, f"{step} produced {bad} non-finite values ({hint})")


def _divide_by_tf(data: np.ndarray, tf: np.ndarray, path: str) -> np.ndarray:
    """``data (..., C, K) /= tf (C, K)`` in place, leaving bins with tf == 0 unchanged."""
    safe = np.where(tf == 0, 1, tf).astype(data.dtype)
    if np.any(tf == 0):
        warnings.warn(f"{path}: {TF}: zero at {int(np.sum(tf == 0))} (channel, frequency) "
                      "pairs; those are left uncorrected", MDFWarning, stacklevel=6)
    data /= safe
    return data


@dataclass
class _Frames:
    """Foreground/background frames of one period at the selected frequencies."""

    foreground: np.ndarray          # (M, C, K) complex
    background: np.ndarray          # (E, C, K) complex
    foreground_time: np.ndarray     # (M,) 0-based acquisition index
    background_time: np.ndarray     # (E,)


def _read_split(reader: FieldReader, layout: Layout, bins: np.ndarray,
                positions: np.ndarray, period: int) -> _Frames:
    data = read_frames(reader, layout, positions, period)
    _check_finite(reader, layout, data)
    data = _conversion_factor(reader, layout, data, bins)
    mask = layout.background_mask
    fg_idx = np.flatnonzero(~mask)
    bg_idx = np.flatnonzero(mask)
    if np.array_equal(fg_idx, np.arange(fg_idx.size)):    # usual: foreground first
        foreground, background = data[:fg_idx.size], data[fg_idx.size:]
    else:
        foreground, background = data[fg_idx], data[bg_idx]
    if layout.sparse:
        return _Frames(foreground, background, fg_idx, bg_idx)  # times fixed later
    perm = layout.permutation
    return _Frames(foreground, background, perm[fg_idx], perm[bg_idx])


def _grid(reader: FieldReader) -> tuple[int, int, int]:
    size = reader.integers("/calibration/size", size=3)
    if np.any(size < 1):
        raise reader.error("/calibration/size", f"entries must be positive, found {size}")
    order = reader.string("/calibration/order", "xyz")
    if order.strip().lower() != "xyz":
        raise reader.error("/calibration/order", f"unsupported voxel order {order!r} "
                                                 "(only xyz)")
    if reader.flag("/calibration/isMeanderingGrid", False) and not reader.flag(
            "/measurement/isFramePermutation", False):
        raise reader.error("/calibration/isMeanderingGrid",
                           "meandering grid without frame permutation is not supported")
    return int(size[0]), int(size[1]), int(size[2])


def _expand_sparse(reader: FieldReader, layout: Layout, frames: _Frames,
                   grid: tuple[int, int, int], positions: np.ndarray, period: int) -> None:
    """Undo the DCT compression in place and fix the acquisition times."""
    num_voxels = count_product(grid)
    _check_expansion(reader, layout, num_voxels, positions.size)
    indices = read_subsampling_indices(reader, layout, positions, period, num_voxels)
    frames.foreground = expand_coefficients(frames.foreground, indices, grid,
                                            layout.sparsity_transformation or "DCT-II")
    _require_finite(reader, "/measurement/sparsityTransformation",
                    "expanding the DCT coefficients", "overflow", frames.foreground)
    num_bg = frames.background.shape[0]
    perm = layout.permutation
    if layout.has_permutation and perm.size == num_voxels + num_bg:
        frames.foreground_time, frames.background_time = perm[:num_voxels], perm[num_voxels:]
    elif layout.has_permutation and perm.size != layout.num_frames:
        raise reader.error("/measurement/framePermutation",
                           f"{perm.size} entries; expected O + E = {num_voxels + num_bg}")
    else:
        frames.foreground_time = np.arange(num_voxels)
        frames.background_time = num_voxels + np.arange(num_bg)


def _check_expansion(reader: FieldReader, layout: Layout, num_voxels: int,
                     num_freqs: int) -> None:
    """Refuse a DCT expansion far larger than the stored data (hostile calibration size).

    The dense grid needs ``C x K x O`` complex128 values; it may exceed
    ``EXPANSION_RATIO_LIMIT`` times the stored bytes of ``/measurement/data`` only up to
    a small floor.
    """
    dense = 16 * layout.num_channels * num_freqs * num_voxels
    stored = stored_bytes(reader.dataset("/measurement/data"))
    if dense > max(_EXPANSION_FLOOR_BYTES, EXPANSION_RATIO_LIMIT * stored):
        raise reader.error("/calibration/size", f"{num_voxels} voxels would expand the "
                                                f"{format_bytes(stored)} of stored DCT "
                                                f"coefficients to {format_bytes(dense)}; "
                                                "refused (implausible grid size)")


def _model_permutation(layout: Layout, frames: _Frames) -> np.ndarray | None:
    """1-based acquisition index in model order (fg, then bg), None if identity."""
    order = np.concatenate([frames.foreground_time, frames.background_time])
    if not layout.has_permutation or np.array_equal(order, np.arange(order.size)):
        return None
    return (order + 1).astype(np.int64)


def _tf_request(reader: FieldReader, tf: np.ndarray | None, tf_correction: bool | None,
                corrected: bool) -> bool:
    if tf_correction is None:
        return tf is not None and not corrected
    if tf_correction and not corrected and tf is None:
        raise reader.error(TF, "missing; cannot apply tf_correction=True")
    return bool(tf_correction) and not corrected


def _correct_tf(reader: FieldReader, layout: Layout, bins: np.ndarray,
                positions: np.ndarray, tf_correction: bool | None, foreground: np.ndarray,
                background: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, bool]:
    """Step 5 of the module docstring for foreground ``(M, C, K)`` and background
    ``(E, C, K)`` frames: returns them (divided in place when the correction applies),
    the transfer function ``(C, K)`` or None, and whether the result is TF corrected."""
    tf = _transfer_function(reader, layout, bins, positions)
    tf_done = reader.flag("/measurement/isTransferFunctionCorrected")
    if _tf_request(reader, tf, tf_correction, tf_done):
        foreground = _divide_by_tf(foreground, tf, reader.path)
        background = _divide_by_tf(background, tf, reader.path)
        _require_finite(reader, TF, "transfer-function correction",
                        "division by ~0?", foreground, background)
        tf_done = True
    return foreground, background, tf, tf_done


def _model_metadata(reader: FieldReader, layout: Layout, frames: _Frames,
                    kind: str) -> dict[str, Any]:
    """The file's metadata for ``kind`` plus the frame permutation in model order."""
    metadata = collect_metadata(reader, kind)
    perm = _model_permutation(layout, frames)
    if perm is not None:
        metadata[FRAME_PERMUTATION] = perm
    return metadata


def _snr(reader: FieldReader, layout: Layout, bins: np.ndarray, positions: np.ndarray,
         period: int) -> np.ndarray | None:
    if not reader.has(SNR):
        return None
    snr = np.asarray(reader.raw(SNR))
    if snr.dtype.kind not in "iuf":
        raise reader.error(SNR, f"expected numbers, found {snr.dtype}")
    if snr.ndim != 3 or snr.shape[:2] != (layout.num_periods, layout.num_channels):
        raise reader.error(SNR, f"shape {snr.shape}, expected (J, C, K) with (J, C) = "
                                f"({layout.num_periods}, {layout.num_channels})")
    out = _along_frequencies(reader, SNR, snr[period], layout, bins, positions)
    if not np.all(np.isfinite(out)):
        warnings.warn(f"{reader.path}: {SNR}: NaN/Inf at {int(np.sum(~np.isfinite(out)))} "
                      "selected entries (kept)", MDFWarning, stacklevel=5)
    return out.astype(np.float32)


def _load(name: str, path: str | os.PathLike[str], *, frequencies: Any, bg_correction: bool,
          tf_correction: bool | None, backend: str, period: int,
          prepare: Callable[[FieldReader, Layout], dict[str, Any]],
          build: Callable[..., Any]) -> Any:
    """Steps shared by :func:`load_system_matrix` and :func:`load_measurement` (``name``).

    ``backend="julia"`` goes to ``pympisr.julia.<name>``. Otherwise the file is opened,
    its layout parsed and ``prepare(reader, layout)`` (kind-specific checks; returns extra
    keyword arguments for ``build``) run, all reported against ``/measurement``; then the
    frequency rows are selected, ``period`` is checked and ``build(reader, layout, bins,
    positions, period, bg_correction, tf_correction, **extra)`` reads the data, reported
    against ``/measurement/data``.
    """
    if backend == "julia":
        if os.path.exists(path):       # MPIFiles would block on a FIFO just the same
            require_regular_file(path)
        return _dispatch_julia(name, path, period, frequencies=frequencies,
                               bg_correction=bg_correction, tf_correction=tf_correction)
    if backend != "python":
        raise ValueError(f"backend must be 'python' or 'julia', got {backend!r}")
    path = os.fspath(path)
    with open_mdf(path) as reader:
        with guard(path, "/measurement"):
            layout = parse_layout(reader)
            extra = prepare(reader, layout)
        bins, positions = _positions(layout, frequencies, path)
        _check_period(layout, period, path)
        with guard(path, "/measurement/data"), np.errstate(all="ignore"):
            return build(reader, layout, bins, positions, period, bg_correction,
                         tf_correction, **extra)


# ---------------------------------------------------------------------- public API
def load_system_matrix(path: str | os.PathLike[str], *, frequencies: Any = None,
                       bg_correction: bool = True, tf_correction: bool | None = None,
                       backend: str = "python", period: int = 0) -> SystemMatrix:
    """Load a calibration (system-matrix) MDF file.

    Parameters
    ----------
    path:
        MDF v2 file with ``/measurement`` and ``/calibration``.
    frequencies:
        None (all stored frequencies) or 0-based rfft bin indices to load; only these
        rows are read from disk (time-domain files are read whole). The result keeps
        the given order.
    bg_correction:
        Subtract the background with MPIFiles' rule (:mod:`pympisr.mdf.background`)
        unless the file is already background corrected.
    tf_correction:
        None = divide by the transfer function if the file has one and the data is
        not yet corrected; True = require it; False = never.
    backend:
        ``"python"`` or ``"julia"``: ``pympisr.julia.load_system_matrix(path,
        frequencies=..., bg_correction=..., tf_correction=...)`` reads the file with
        MPIFiles.jl (juliacall is imported only then).
    period:
        0-based drive-field period j to load when the file has several (J > 1);
        the Julia backend supports only 0.

    Returns
    -------
    SystemMatrix with data complex64 ``(C, K, Nz, Ny, Nx)``, ``snr`` ``(C, K)`` of the
    chosen period (or None), ``background`` ``(E, C, K)`` (raw background frames, TF
    corrected with the data; None if E = 0), and every other field in ``metadata``.
    """
    return _load("load_system_matrix", path, frequencies=frequencies,
                 bg_correction=bg_correction, tf_correction=tf_correction, backend=backend,
                 period=period, prepare=_prepare_system_matrix, build=_build_system_matrix)


def _prepare_system_matrix(reader: FieldReader, layout: Layout) -> dict[str, Any]:
    if not reader.is_group("/calibration"):
        raise reader.error("/calibration", "missing: not a calibration "
                                           "(system matrix) file")
    grid = _grid(reader)
    num_voxels, num_fg = count_product(grid), int((~layout.background_mask).sum())
    if not layout.sparse and num_voxels != num_fg:   # checked before any data is read
        raise reader.error("/calibration/size", f"product {num_voxels} of {list(grid)} != "
                                                f"{num_fg} foreground frames")
    return {"grid": grid}


def _single_precision(reader: FieldReader, data: np.ndarray,
                      background: np.ndarray) -> np.ndarray:
    """``background`` as complex64; MDFError if either array left the complex64 range
    (float64 files processed in double precision can exceed 3.4e38)."""
    background = background.astype(np.complex64, copy=False)
    _require_finite(reader, "/measurement/data", "conversion to complex64 after "
                    "processing", "values beyond the float32 range", data, background)
    return background


def _build_system_matrix(reader: FieldReader, layout: Layout, bins: np.ndarray,
                         positions: np.ndarray, period: int, bg_correction: bool,
                         tf_correction: bool | None, *,
                         grid: tuple[int, int, int]) -> SystemMatrix:
    path = reader.path
    frames = _read_split(reader, layout, bins, positions, period)
    num_voxels = count_product(grid)
    if layout.sparse:
        _expand_sparse(reader, layout, frames, grid, positions, period)
    elif frames.foreground.shape[0] != num_voxels:
        raise reader.error("/calibration/size", f"product {num_voxels} of {list(grid)} != "
                                                f"{frames.foreground.shape[0]} foreground "
                                                "frames")
    bg_done = reader.flag("/measurement/isBackgroundCorrected")
    foreground = frames.foreground
    background = frames.background
    if bg_correction and not bg_done and background.shape[0]:
        foreground = subtract_system_matrix_background(
            foreground, background, frames.foreground_time, frames.background_time)
        _require_finite(reader, "/measurement/data", "background correction",
                        "overflow: values near the float32 limit?", foreground)
        bg_done = True
    foreground, background, tf, tf_done = _correct_tf(reader, layout, bins, positions,
                                                      tf_correction, foreground, background)
    fov = reader.numbers("/calibration/fieldOfView", size=3, default=None)
    if fov is None:
        warnings.warn(f"{path}: /calibration/fieldOfView missing; using zeros",
                      MDFWarning, stacklevel=4)
        fov = np.zeros(3)
    center = reader.numbers("/calibration/fieldOfViewCenter", size=3, default=np.zeros(3))
    metadata = _model_metadata(reader, layout, frames, "system_matrix")
    channels, freqs = foreground.shape[1:]
    nx, ny, nz = grid
    data = np.ascontiguousarray(np.moveaxis(foreground, 0, -1), dtype=np.complex64)
    background = _single_precision(reader, data, background)
    return SystemMatrix(
        data=data.reshape(channels, freqs, nz, ny, nx),
        frequencies=layout.bin_frequencies(bins), grid=grid, fov=fov, center=center,
        snr=_snr(reader, layout, bins, positions, period),
        background=background if background.shape[0] else None,
        frequency_indices=bins, transfer_function=tf,
        is_background_corrected=bg_done, is_transfer_function_corrected=tf_done,
        metadata=metadata)


def load_measurement(path: str | os.PathLike[str], *, frequencies: Any = None,
                     bg_correction: bool = False, tf_correction: bool | None = None,
                     backend: str = "python", period: int = 0) -> Measurement:
    """Load a (phantom) measurement MDF file in the frequency domain.

    Parameters are as for :func:`load_system_matrix`; ``bg_correction=True`` subtracts
    the mean of all background frames (MPIFiles' measurement rule). Frames keep their
    stored order; one period (``period``) is loaded per frame.

    Returns
    -------
    Measurement with data complex64 ``(F, C, K)`` (foreground frames), ``background``
    ``(E, C, K)`` or None, ``num_averages`` from ``/acquisition/numAverages``.
    """
    return _load("load_measurement", path, frequencies=frequencies,
                 bg_correction=bg_correction, tf_correction=tf_correction, backend=backend,
                 period=period, prepare=_prepare_measurement, build=_build_measurement)


def _prepare_measurement(reader: FieldReader, layout: Layout) -> dict[str, Any]:
    if layout.sparse:
        raise reader.error("/measurement/isSparsityTransformed",
                           "sparsity-transformed data is a system matrix layout; "
                           "use load_system_matrix")
    if layout.background_mask.all():   # checked before any data is read
        raise reader.error("/measurement/isBackgroundFrame", "every frame is a background "
                                                             "frame")
    return {}


def _build_measurement(reader: FieldReader, layout: Layout, bins: np.ndarray,
                       positions: np.ndarray, period: int, bg_correction: bool,
                       tf_correction: bool | None) -> Measurement:
    path = reader.path
    frames = _read_split(reader, layout, bins, positions, period)
    if frames.foreground.shape[0] == 0:
        raise reader.error("/measurement/isBackgroundFrame", "every frame is a background "
                                                             "frame")
    foreground, background = frames.foreground, frames.background
    bg_done = reader.flag("/measurement/isBackgroundCorrected")
    if bg_correction and not bg_done:
        if background.shape[0]:
            foreground = subtract_mean_background(foreground, background)
            _require_finite(reader, "/measurement/data", "background correction",
                            "overflow: values near the float32 limit?", foreground)
            bg_done = True
        else:
            warnings.warn(f"{path}: no background frames; background correction skipped",
                          MDFWarning, stacklevel=4)
    foreground, background, tf, tf_done = _correct_tf(reader, layout, bins, positions,
                                                      tf_correction, foreground, background)
    num_averages = reader.integer("/acquisition/numAverages", 1)
    metadata = _model_metadata(reader, layout, frames, "measurement")
    foreground = foreground.astype(np.complex64, copy=False)
    background = _single_precision(reader, foreground, background)
    return Measurement(
        data=foreground, frequencies=layout.bin_frequencies(bins),
        background=background if background.shape[0] else None,
        frequency_indices=bins, transfer_function=tf,
        is_background_corrected=bg_done, is_transfer_function_corrected=tf_done,
        num_averages=num_averages, metadata=metadata)
