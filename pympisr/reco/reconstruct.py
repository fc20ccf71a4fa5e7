"""System matrix + measurement -> concentration images, as MPIReco.jl 0.9 does it.

One pipeline (single patch, DESIGN section 4) for every backend
(:mod:`pympisr.reco.backends`: ``"python"`` = native reader + numba/numpy Kaczmarz,
``"julia"`` = MPIFiles.jl + MPIReco.jl through juliacall); the backend only reads files
and solves:

1. frequency selection on the system matrix (:func:`select_frequencies`); for a file
   only the selected frequency rows are read (the SNR is taken from the file header
   first, as MPIReco's ``filterFrequencies`` does);
2. background correction of both (``bg_correction``): files are loaded by the backend
   (MPIFiles' block-mean + interpolation rule for the system matrix, mean of the
   background frames for the measurement); in-memory objects that are not yet
   corrected have the mean of their background frames subtracted;
3. transfer-function correction of both: each is divided by its own transfer function
   when it has one and is not yet corrected; if only one side ends up corrected, the
   other is divided by that side's transfer function (same receive chain) with a
   warning, so ``S`` and ``u`` are always in the same units;
4. frames are selected (``frames``, 0-based) and averaged in blocks of
   ``num_averages`` consecutive frames;
5. optional row weights (``weighting``);
6. the backend's Kaczmarz with MPIReco's defaults (real, non-negative, normalised
   Tikhonov parameter);
7. result: real part, reshaped to ``(frames, Nz, Ny, Nx)``.

After every step the values handed on are checked: NaN/Inf (overflow, a transfer
function near 0, NaN in a file) raise :class:`~pympisr.errors.ReconstructionError`
naming the step, instead of an all-NaN image. Unusable inputs or options (frames out
of range, files or objects that do not match, an empty frequency selection) raise
:class:`~pympisr.errors.InvalidInputError`, a ``ValueError``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidInputError, ReconstructionError
from ..system_matrix import Measurement, SystemMatrix
from .backends import ReconstructionBackend, SolverParameters, get_backend
from .frequency_filter import select_frequencies

__all__ = ["Reconstruction", "reconstruct", "reconstruct_with_metadata"]

PathLike = str | os.PathLike[str]

#: Largest squared row norm the float32 solvers can accumulate.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class Reconstruction:
    """A reconstructed image with what is needed to store and judge it.

    Attributes
    ----------
    image:
        float32 ``(F, Nz, Ny, Nx)`` concentrations (arbitrary units of the SM's delta
        sample).
    grid, fov, center:
        ``(Nx, Ny, Nz)``, metres, metres: the system matrix's calibration grid.
    rows:
        int64 ``(M, 2)`` ``(channel, frequency position)`` rows used.
    frequency_indices:
        int64 ``(M,)`` rfft bin of each used row (None when the SM has none).
    parameters:
        The reconstruction parameters (for provenance).
    """

    image: np.ndarray
    grid: tuple[int, int, int]
    fov: np.ndarray
    center: np.ndarray
    rows: np.ndarray
    frequency_indices: np.ndarray | None
    parameters: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------- loading
def _bins_to_load(path: str, snr_thresh: float, min_freq: float, max_freq: float | None,
                  rec_channels: Any) -> np.ndarray | None:
    """rfft bins of the system-matrix file needed for the selection (None = all)."""
    if snr_thresh <= 0 and min_freq <= 0 and max_freq is None and rec_channels is None:
        return None
    from ..mdf.layout import parse_layout
    from ..mdf.reader import open_mdf

    with open_mdf(path) as reader:
        layout = parse_layout(reader)
        bins = layout.stored_bins()
        snr = None
        if snr_thresh > 0 and reader.has("/calibration/snr"):
            raw = np.asarray(reader.raw("/calibration/snr"), dtype=np.float64)
            if raw.ndim != 3 or raw.shape[1] != layout.num_channels:
                raise reader.error("/calibration/snr", f"shape {raw.shape}, expected "
                                                       "(J, C, K)")
            snr = raw[0]
            if snr.shape[-1] == layout.num_bins and bins.size != layout.num_bins:
                snr = snr[:, bins]
            elif snr.shape[-1] != bins.size:
                raise reader.error("/calibration/snr", f"{snr.shape[-1]} frequencies, data "
                                                       f"has {bins.size}")
    try:
        rows = select_frequencies(snr, layout.bin_frequencies(bins), snr_thresh=snr_thresh,
                                  min_freq=min_freq, max_freq=max_freq,
                                  rec_channels=rec_channels,
                                  num_channels=layout.num_channels)
    except ValueError as exc:
        raise InvalidInputError(f"{path}: {exc}") from None
    if rows.shape[0] == 0:
        raise InvalidInputError(f"{path}: the frequency selection keeps no rows (snr_thresh="
                                f"{snr_thresh}, min_freq={min_freq}, max_freq={max_freq}, "
                                f"rec_channels={rec_channels})")
    return bins[np.unique(rows[:, 1])]


def _system_matrix(sm: SystemMatrix | PathLike, backend: ReconstructionBackend,
                   bg_correction: bool, selection: dict[str, Any]) -> SystemMatrix:
    if isinstance(sm, SystemMatrix):
        return sm
    path = os.fspath(sm)
    bins = _bins_to_load(path, **selection)
    return backend.load_system_matrix(path, frequencies=bins, bg_correction=bg_correction)


def _measurement(meas: Measurement | PathLike, backend: ReconstructionBackend,
                 bins: np.ndarray | None, bg_correction: bool) -> Measurement:
    if isinstance(meas, Measurement):
        return meas
    path = os.fspath(meas)
    if bins is not None:
        _require_stored_bins(path, bins)
    return backend.load_measurement(path, frequencies=bins, bg_correction=bg_correction)


def _require_stored_bins(path: str, bins: np.ndarray) -> None:
    """Raise :class:`~pympisr.errors.InvalidInputError` when the measurement file
    ``path`` does not store every rfft bin in ``bins`` (those the system matrix uses)."""
    from ..mdf.layout import parse_layout
    from ..mdf.reader import open_mdf

    with open_mdf(path) as reader:
        stored = parse_layout(reader).stored_bins()
    missing = np.setdiff1d(bins, stored)
    if missing.size:
        raise InvalidInputError(f"{path}: the measurement lacks {missing.size} frequency "
                                f"bins used by the system matrix (e.g. "
                                f"{missing[:5].tolist()}); were both recorded with the same "
                                "sampling and frequency selection?")


# ---------------------------------------------------------------------- alignment
def _measurement_positions(sm: SystemMatrix, meas: Measurement, ks: np.ndarray
                           ) -> np.ndarray:
    """Position in ``meas``' frequency axis of each system-matrix position ``ks``."""
    if sm.frequency_indices is not None and meas.frequency_indices is not None:
        lookup = {int(b): i for i, b in enumerate(meas.frequency_indices)}
        wanted = sm.frequency_indices[ks]
        missing = sorted({int(b) for b in wanted if int(b) not in lookup})
        if missing:
            raise InvalidInputError(f"the measurement lacks {len(missing)} frequency bins "
                                    f"used by the system matrix (e.g. {missing[:5]})")
        pos = np.array([lookup[int(b)] for b in wanted], dtype=np.int64)
    elif sm.num_frequencies == meas.num_frequencies:
        pos = ks.copy()
    else:
        raise InvalidInputError(f"system matrix ({sm.num_frequencies}) and measurement "
                                f"({meas.num_frequencies}) have different frequencies and no "
                                "frequency indices to match them")
    if not np.allclose(sm.frequencies[ks], meas.frequencies[pos], rtol=1e-6, atol=1e-3):
        raise InvalidInputError("system matrix and measurement frequencies differ (different "
                                "sampling rate or period length?)")
    return pos


def _frame_data(meas: Measurement, frames: int | Sequence[int] | slice | None,
                num_averages: int) -> np.ndarray:
    """Selected and block-averaged foreground frames, ``(F', C, K)``."""
    index = np.arange(meas.num_frames)
    if frames is not None:
        index = index[frames] if isinstance(frames, slice) else np.atleast_1d(
            np.asarray(frames, dtype=np.int64))
        bad = index[(index < 0) | (index >= meas.num_frames)]
        if bad.size:
            raise InvalidInputError(f"frames {bad.tolist()} outside 0..{meas.num_frames - 1}")
    if num_averages < 1:
        raise InvalidInputError(f"num_averages must be >= 1, got {num_averages}")
    if index.size == 0 or index.size % num_averages:
        raise InvalidInputError(f"{index.size} selected frames cannot be averaged in blocks "
                                f"of num_averages={num_averages}")
    data = meas.data[index].astype(np.complex128)
    return data.reshape(-1, num_averages, *data.shape[1:]).mean(axis=1)


def _divide(values: np.ndarray, tf: np.ndarray, what: str) -> np.ndarray:
    """``values / tf`` with ``tf`` broadcast; zero TF entries leave values unchanged."""
    zero = tf == 0
    if np.any(zero):
        warnings.warn(f"{what}: transfer function is 0 at {int(zero.sum())} rows; those rows "
                      "are left undivided", stacklevel=4)
    return values / np.where(zero, 1, tf)


# ---------------------------------------------------------------------- weights
def _row_weights(weighting: Any, rows_matrix: np.ndarray, background: np.ndarray | None
                 ) -> np.ndarray | None:
    if weighting is None:
        return None
    if isinstance(weighting, str):
        if weighting == "row_norm":
            norms = np.linalg.norm(rows_matrix, axis=1)
            return np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        if weighting == "background":
            if background is None or background.shape[0] < 2:
                raise InvalidInputError("weighting='background' needs at least 2 background "
                                        "frames in the measurement")
            std = background.std(axis=0)
            floor = np.median(std[std > 0]) * 1e-6 if np.any(std > 0) else 1.0
            return 1.0 / np.maximum(std, floor)
        raise InvalidInputError(f"weighting must be None, 'row_norm', 'background' or an "
                                f"array, got {weighting!r}")
    w = np.asarray(weighting, dtype=np.float64).reshape(-1)
    if w.size != rows_matrix.shape[0]:
        raise InvalidInputError(f"weighting array has {w.size} entries for "
                                f"{rows_matrix.shape[0]} selected rows")
    return w


# ---------------------------------------------------------------------- checks
def _row_labels(sm: SystemMatrix, rows: np.ndarray, which: np.ndarray) -> str:
    """``(channel, rfft bin)`` of up to five rows ``which`` (positions in ``rows``)."""
    labels = []
    for i in which[:5]:
        channel, k = (int(v) for v in rows[i])
        if sm.frequency_indices is not None:
            labels.append(f"(channel {channel}, bin {int(sm.frequency_indices[k])})")
        else:
            labels.append(f"(channel {channel}, frequency {k})")
    more = ", ..." if which.size > 5 else ""
    return ", ".join(labels) + more


def _require_finite(values: np.ndarray, step: str, what: str, sm: SystemMatrix,
                    rows: np.ndarray, hint: str) -> None:
    """Raise :class:`ReconstructionError` for ``step`` when ``values`` (rows along axis
    0, ``(M, ...)``) hold NaN/Inf; the message says where and what may cause it."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    bad_rows = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))
    raise ReconstructionError(
        step, f"{int(bad.sum())} of {values.size} values of the {what} are NaN or Inf, in "
              f"{bad_rows.size} of {values.shape[0]} rows {_row_labels(sm, rows, bad_rows)}; "
              f"{hint}")


def _require_solvable(S: np.ndarray, weights: np.ndarray | None, step: str,
                      sm: SystemMatrix, rows: np.ndarray) -> None:
    """The (weighted) squared row norms ``w_i^2 |a_i|^2`` must fit the float32
    accumulation of the solvers; otherwise they overflow to Inf and rows are dropped or
    turn the image into NaN."""
    energy = np.empty(S.shape[0])
    for start in range(0, S.shape[0], 256):       # float64 sums, bounded temporaries
        block = S[start:start + 256]
        energy[start:start + 256] = (np.square(block.real, dtype=np.float64).sum(axis=1)
                                     + np.square(block.imag, dtype=np.float64).sum(axis=1))
    if weights is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            energy = energy * weights**2
    bad = np.flatnonzero(~np.isfinite(energy) | (energy > _FLOAT32_MAX))
    if bad.size:
        raise ReconstructionError(
            step, f"the {'weighted ' if weights is not None else ''}squared norms of "
                  f"{bad.size} of {S.shape[0]} system-matrix rows "
                  f"{_row_labels(sm, rows, bad)} exceed the float32 range of the solver "
                  f"(max {float(np.nanmax(energy)):.3g} > {_FLOAT32_MAX:.3g}); rescale "
                  "the system matrix (and measurement) or the weights")


def _to_complex64(values: np.ndarray) -> np.ndarray:
    """complex64 copy; values beyond the float32 range become Inf (checked later)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ascontiguousarray(values, dtype=np.complex64)


# ---------------------------------------------------------------------- steps
@dataclass
class _Rows:
    """The selected rows of both sides: ``S`` ``(M, N)`` (complex64, like the system
    matrix: no double-size copy), ``u`` ``(M, F)`` and the measurement's background frames
    ``(E, M)`` (complex128, or None)."""

    S: np.ndarray
    u: np.ndarray
    background: np.ndarray | None


def _correct_background(data: _Rows, sm: SystemMatrix, meas: Measurement,
                        channels: np.ndarray, ks: np.ndarray) -> None:
    """Step 2 for in-memory objects that are not yet corrected (in place)."""
    if not sm.is_background_corrected and sm.background is not None:
        data.S = data.S - sm.background.mean(axis=0)[channels, ks][:, None].astype(
            np.complex64)
    if not meas.is_background_corrected and data.background is not None:
        data.u = data.u - data.background.mean(axis=0)[:, None]


def _correct_transfer_function(data: _Rows, sm: SystemMatrix, meas: Measurement,
                               channels: np.ndarray, ks: np.ndarray,
                               meas_ks: np.ndarray) -> None:
    """Step 3: bring ``S`` and ``u`` to the same units (in place)."""
    sm_tf = sm.transfer_function[channels, ks] if sm.transfer_function is not None else None
    meas_tf = (meas.transfer_function[channels, meas_ks]
               if meas.transfer_function is not None else None)
    sm_done, meas_done = sm.is_transfer_function_corrected, meas.is_transfer_function_corrected
    if sm_tf is not None and not sm_done:
        data.S = _divide(data.S, sm_tf[:, None], "system matrix")
        sm_done = True
    if meas_tf is not None and not meas_done:
        data.u = _divide(data.u, meas_tf[:, None], "measurement")
        if data.background is not None:
            data.background = _divide(data.background, meas_tf, "background")
        meas_done = True
    if sm_done and not meas_done:
        tf = _borrowed_transfer_function(sm_tf, "system matrix", "measurement")
        data.u = _divide(data.u, tf[:, None], "measurement")
        if data.background is not None:
            data.background = _divide(data.background, tf, "background")
    elif meas_done and not sm_done:
        tf = _borrowed_transfer_function(meas_tf, "measurement", "system matrix")
        data.S = _divide(data.S, tf[:, None], "system matrix")


def _borrowed_transfer_function(tf: np.ndarray | None, corrected: str, other: str
                                ) -> np.ndarray:
    """The transfer function ``tf`` of the ``corrected`` side, by which the ``other``
    (uncorrected) side is divided too, with a warning; raises
    :class:`~pympisr.errors.InvalidInputError` when it is unknown (units would differ)."""
    if tf is None:
        raise InvalidInputError(f"the {corrected} is transfer-function corrected but its "
                                f"transfer function is unknown, and the {other} is not "
                                "corrected: units differ")
    warnings.warn(f"{other} has no transfer function; dividing it by the {corrected}'s",
                  stacklevel=4)
    return tf


# ---------------------------------------------------------------------- public
def reconstruct_with_metadata(
        sm: SystemMatrix | PathLike, meas: Measurement | PathLike, *,
        snr_thresh: float = -1, min_freq: float = 0.0, max_freq: float | None = None,
        rec_channels: Iterable[int] | int | None = None, iterations: int = 3,
        lambd: float = 0.0, bg_correction: bool = True,
        frames: int | Sequence[int] | slice | None = None, num_averages: int = 1,
        weighting: Any = None, backend: str | ReconstructionBackend = "python",
        engine: str = "auto") -> Reconstruction:
    """:func:`reconstruct`, returning a :class:`Reconstruction` (image + provenance)."""
    impl = get_backend(backend, engine=engine)
    selection = dict(snr_thresh=snr_thresh, min_freq=min_freq, max_freq=max_freq,
                     rec_channels=rec_channels)
    # 1. frequency selection
    sm = _system_matrix(sm, impl, bg_correction, selection)
    rows = select_frequencies(sm, **selection)
    if rows.shape[0] == 0:
        raise InvalidInputError(f"the frequency selection keeps no rows ({selection})")
    channels, ks = rows[:, 0], rows[:, 1]
    bins = None
    if sm.frequency_indices is not None:
        bins = np.unique(sm.frequency_indices[ks])
    meas = _measurement(meas, impl, bins, bg_correction)
    if meas.num_channels != sm.num_channels:
        raise InvalidInputError(f"system matrix has {sm.num_channels} receive channels, the "
                                f"measurement {meas.num_channels}")
    meas_ks = _measurement_positions(sm, meas, ks)
    S = sm.matrix(rows)                                                    # complex64
    _require_finite(S, "frequency selection", "selected system-matrix rows", sm, rows,
                    "the system matrix holds NaN/Inf there, as stored or after the "
                    "loader's background/transfer-function correction (a transfer "
                    "function near 0?); exclude those frequencies (snr_thresh, min_freq, "
                    "max_freq, rec_channels) or fix the input")
    # 4. frames (before the corrections: they apply to every frame alike)
    with np.errstate(over="ignore", invalid="ignore"):
        u = _frame_data(meas, frames, num_averages)[:, channels, meas_ks].T    # (M, F)
    _require_finite(u, "frame selection/averaging", "selected measurement frames", sm,
                    rows, "the measurement holds NaN/Inf there or its values overflow")
    background = None if meas.background is None else \
        meas.background[:, channels, meas_ks].astype(np.complex128)
    data = _Rows(S=S, u=u, background=background)
    # 2. background
    if bg_correction:
        with np.errstate(over="ignore", invalid="ignore"):
            _correct_background(data, sm, meas, channels, ks)
        _require_finite(data.S, "background correction", "system-matrix rows", sm, rows,
                        "the system matrix's background frames hold NaN/Inf or huge values")
        _require_finite(data.u, "background correction", "measurement", sm, rows,
                        "the measurement's background frames hold NaN/Inf or huge values")
    # 3. transfer function; values are handed to the solvers as complex64
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        _correct_transfer_function(data, sm, meas, channels, ks, meas_ks)
    S, u = _to_complex64(data.S), _to_complex64(data.u)
    hint = ("after division by the transfer function the values exceed the float32 range "
            "(a transfer function near 0?) or were NaN/Inf already")
    _require_finite(S, "transfer-function correction", "system-matrix rows", sm, rows, hint)
    _require_finite(u, "transfer-function correction", "measurement", sm, rows, hint)
    # 5. row weighting
    weights = _row_weights(weighting, S, data.background)
    if weights is not None:
        _require_finite(weights, "row weighting", "row weights", sm, rows,
                        "weights must be finite (a zero standard deviation or norm?)")
        if np.any(weights < 0):
            raise InvalidInputError("row weights must be non-negative")
    _require_solvable(S, weights, "row weighting" if weights is not None
                      else "frequency selection", sm, rows)
    # 6. solve
    x = np.asarray(impl.solve(S, u, SolverParameters(iterations=int(iterations),
                                                     lambd=float(lambd), weights=weights)))
    num_voxels = int(np.prod(sm.grid))
    if x.shape != (num_voxels, u.shape[1]):
        raise RuntimeError(f"backend {impl.name!r} returned images of shape {x.shape}, "
                           f"expected {(num_voxels, u.shape[1])}")
    image = np.ascontiguousarray(np.real(x).T, dtype=np.float32)
    bad = ~np.isfinite(image)
    if bad.any():
        frames_bad = np.flatnonzero(bad.any(axis=1))
        raise ReconstructionError(
            "solver", f"the {impl.name} backend's Kaczmarz returned {int(bad.sum())} NaN/Inf "
                      f"of {image.size} voxel values (frames {frames_bad[:5].tolist()}"
                      f"{', ...' if frames_bad.size > 5 else ''}); the iteration overflowed "
                      "(system matrix or measurement values too large?): rescale the inputs")
    nx, ny, nz = sm.grid
    image = image.reshape(-1, nz, ny, nx)
    params = dict(selection, iterations=iterations, lambd=lambd,
                  bg_correction=bg_correction, num_averages=num_averages,
                  weighting=weighting if weighting is None or isinstance(weighting, str)
                  else "array", frames=None if frames is None else str(frames),
                  backend=impl.name)
    return Reconstruction(
        image=image, grid=sm.grid, fov=sm.fov, center=sm.center, rows=rows,
        frequency_indices=None if sm.frequency_indices is None else sm.frequency_indices[ks],
        parameters=params)


def reconstruct(sm: SystemMatrix | PathLike, meas: Measurement | PathLike, *,
                snr_thresh: float = -1, min_freq: float = 0.0, max_freq: float | None = None,
                rec_channels: Iterable[int] | int | None = None, iterations: int = 3,
                lambd: float = 0.0, bg_correction: bool = True,
                frames: int | Sequence[int] | slice | None = None, num_averages: int = 1,
                weighting: Any = None, backend: str | ReconstructionBackend = "python",
                engine: str = "auto") -> np.ndarray:
    """Reconstruct concentration images from a measurement (module docstring).

    Parameters
    ----------
    sm, meas:
        SystemMatrix / Measurement objects, or paths of MDF files.
    snr_thresh, min_freq, max_freq, rec_channels:
        Frequency selection (:func:`select_frequencies`; channels 0-based).
    iterations, lambd:
        Kaczmarz sweeps and Tikhonov parameter (relative to ``||S||_F^2 / N``).
    bg_correction:
        Subtract background from system matrix and measurement.
    frames:
        0-based foreground frames to use (index, sequence or slice); None = all.
    num_averages:
        Average blocks of this many consecutive selected frames.
    weighting:
        None, ``"row_norm"`` (``w_i = 1/|a_i|``), ``"background"`` (``w_i`` = 1 / std of
        the measurement's background frames, whitening) or an ``(M,)`` array.
    backend:
        Who reads files and solves (:mod:`pympisr.reco.backends`): ``"python"``,
        ``"julia"`` (MPIFiles.jl + MPIReco.jl through juliacall; raises
        :class:`~pympisr.errors.JuliaUnavailableError` without them) or a
        :class:`~pympisr.reco.backends.ReconstructionBackend` object. Every step above
        except reading and solving is the same for all backends.
    engine:
        Kaczmarz engine of the Python backend (``"auto"``, ``"numba"``, ``"numpy"``).

    Returns
    -------
    float32 ``(F, Nz, Ny, Nx)`` concentrations, ``F`` = number of averaged frames.

    Raises
    ------
    ReconstructionError
        A step produced NaN/Inf (the message names the step).
    InvalidInputError
        Inconsistent inputs or options (frames out of range, files or objects that do
        not match, an empty frequency selection, ...); a ``ValueError``.
    MDFError
        A file is not a readable MDF.
    """
    return reconstruct_with_metadata(
        sm, meas, snr_thresh=snr_thresh, min_freq=min_freq, max_freq=max_freq,
        rec_channels=rec_channels, iterations=iterations, lambd=lambd,
        bg_correction=bg_correction, frames=frames, num_averages=num_averages,
        weighting=weighting, backend=backend, engine=engine).image
