"""System matrix + measurement -> concentration images, as MPIReco.jl 0.9 does it.

Pipeline (single patch, DESIGN section 4):

1. frequency selection on the system matrix (:func:`select_frequencies`); for a file
   only the selected frequency rows are read from disk;
2. background correction of both (``bg_correction``): files are loaded with
   :func:`pympisr.load_system_matrix` (MPIFiles' block-mean + interpolation rule) and
   :func:`pympisr.load_measurement` (mean of the background frames); in-memory objects
   that are not yet corrected have the mean of their background frames subtracted;
3. transfer-function correction of both: each is divided by its own transfer function
   when it has one and is not yet corrected; if only one side ends up corrected, the
   other is divided by that side's transfer function (same receive chain) with a
   warning, so ``S`` and ``u`` are always in the same units;
4. frames are selected (``frames``, 0-based) and averaged in blocks of
   ``num_averages`` consecutive frames;
5. :func:`kaczmarz` with MPIReco's defaults (real, non-negative, normalised
   Tikhonov parameter), optionally with row weights;
6. result: real part, reshaped to ``(frames, Nz, Ny, Nx)``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..system_matrix import Measurement, SystemMatrix
from .frequency_filter import select_frequencies
from .kaczmarz import kaczmarz

__all__ = ["Reconstruction", "reconstruct", "reconstruct_with_metadata"]

PathLike = str | os.PathLike[str]


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
        raise ValueError(f"{path}: {exc}") from None
    if rows.shape[0] == 0:
        raise ValueError(f"{path}: the frequency selection keeps no rows (snr_thresh="
                         f"{snr_thresh}, min_freq={min_freq}, max_freq={max_freq}, "
                         f"rec_channels={rec_channels})")
    return bins[np.unique(rows[:, 1])]


def _system_matrix(sm: SystemMatrix | PathLike, bg_correction: bool,
                   selection: dict[str, Any]) -> SystemMatrix:
    if isinstance(sm, SystemMatrix):
        return sm
    from ..mdf.reader import load_system_matrix

    path = os.fspath(sm)
    bins = _bins_to_load(path, **selection)
    return load_system_matrix(path, frequencies=bins, bg_correction=bg_correction)


def _measurement(meas: Measurement | PathLike, bins: np.ndarray | None,
                 bg_correction: bool) -> Measurement:
    if isinstance(meas, Measurement):
        return meas
    from ..mdf.reader import load_measurement

    return load_measurement(os.fspath(meas), frequencies=bins, bg_correction=bg_correction)


# ---------------------------------------------------------------------- alignment
def _measurement_positions(sm: SystemMatrix, meas: Measurement, ks: np.ndarray
                           ) -> np.ndarray:
    """Position in ``meas``' frequency axis of each system-matrix position ``ks``."""
    if sm.frequency_indices is not None and meas.frequency_indices is not None:
        lookup = {int(b): i for i, b in enumerate(meas.frequency_indices)}
        wanted = sm.frequency_indices[ks]
        missing = sorted({int(b) for b in wanted if int(b) not in lookup})
        if missing:
            raise ValueError(f"the measurement lacks {len(missing)} frequency bins used by "
                             f"the system matrix (e.g. {missing[:5]})")
        pos = np.array([lookup[int(b)] for b in wanted], dtype=np.int64)
    elif sm.num_frequencies == meas.num_frequencies:
        pos = ks.copy()
    else:
        raise ValueError(f"system matrix ({sm.num_frequencies}) and measurement "
                         f"({meas.num_frequencies}) have different frequencies and no "
                         "frequency indices to match them")
    if not np.allclose(sm.frequencies[ks], meas.frequencies[pos], rtol=1e-6, atol=1e-3):
        raise ValueError("system matrix and measurement frequencies differ (different "
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
            raise ValueError(f"frames {bad.tolist()} outside 0..{meas.num_frames - 1}")
    if num_averages < 1:
        raise ValueError(f"num_averages must be >= 1, got {num_averages}")
    if index.size == 0 or index.size % num_averages:
        raise ValueError(f"{index.size} selected frames cannot be averaged in blocks of "
                         f"num_averages={num_averages}")
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
                raise ValueError("weighting='background' needs at least 2 background "
                                 "frames in the measurement")
            std = background.std(axis=0)
            floor = np.median(std[std > 0]) * 1e-6 if np.any(std > 0) else 1.0
            return 1.0 / np.maximum(std, floor)
        raise ValueError(f"weighting must be None, 'row_norm', 'background' or an array, "
                         f"got {weighting!r}")
    w = np.asarray(weighting, dtype=np.float64).reshape(-1)
    if w.size != rows_matrix.shape[0]:
        raise ValueError(f"weighting array has {w.size} entries for "
                         f"{rows_matrix.shape[0]} selected rows")
    return w


# ---------------------------------------------------------------------- public
def reconstruct_with_metadata(
        sm: SystemMatrix | PathLike, meas: Measurement | PathLike, *,
        snr_thresh: float = -1, min_freq: float = 0.0, max_freq: float | None = None,
        rec_channels: Iterable[int] | int | None = None, iterations: int = 3,
        lambd: float = 0.0, bg_correction: bool = True,
        frames: int | Sequence[int] | slice | None = None, num_averages: int = 1,
        weighting: Any = None, engine: str = "auto") -> Reconstruction:
    """:func:`reconstruct`, returning a :class:`Reconstruction` (image + provenance)."""
    selection = dict(snr_thresh=snr_thresh, min_freq=min_freq, max_freq=max_freq,
                     rec_channels=rec_channels)
    sm = _system_matrix(sm, bg_correction, selection)
    rows = select_frequencies(sm, **selection)
    if rows.shape[0] == 0:
        raise ValueError(f"the frequency selection keeps no rows ({selection})")
    channels, ks = rows[:, 0], rows[:, 1]
    bins = None
    if sm.frequency_indices is not None:
        bins = np.unique(sm.frequency_indices[ks])
    meas = _measurement(meas, bins, bg_correction)
    if meas.num_channels != sm.num_channels:
        raise ValueError(f"system matrix has {sm.num_channels} receive channels, the "
                         f"measurement {meas.num_channels}")
    meas_ks = _measurement_positions(sm, meas, ks)

    S = sm.matrix(rows)
    if bg_correction and not sm.is_background_corrected and sm.background is not None:
        S -= sm.background.mean(axis=0)[channels, ks][:, None].astype(np.complex64)
    u = _frame_data(meas, frames, num_averages)[:, channels, meas_ks].T      # (M, F)
    background = None if meas.background is None else \
        meas.background[:, channels, meas_ks].astype(np.complex128)
    if bg_correction and not meas.is_background_corrected and background is not None:
        u = u - background.mean(axis=0)[:, None]

    sm_tf = sm.transfer_function[channels, ks] if sm.transfer_function is not None else None
    meas_tf = (meas.transfer_function[channels, meas_ks]
               if meas.transfer_function is not None else None)
    sm_done, meas_done = sm.is_transfer_function_corrected, meas.is_transfer_function_corrected
    if sm_tf is not None and not sm_done:
        S = _divide(S, sm_tf[:, None], "system matrix").astype(np.complex64)
        sm_done = True
    if meas_tf is not None and not meas_done:
        u = _divide(u, meas_tf[:, None], "measurement")
        background = None if background is None else _divide(background, meas_tf, "background")
        meas_done = True
    if sm_done and not meas_done:
        if sm_tf is None:
            raise ValueError("the system matrix is transfer-function corrected but its "
                             "transfer function is unknown, and the measurement is not "
                             "corrected: units differ")
        warnings.warn("measurement has no transfer function; dividing it by the system "
                      "matrix's", stacklevel=2)
        u = _divide(u, sm_tf[:, None], "measurement")
        background = None if background is None else _divide(background, sm_tf, "background")
    elif meas_done and not sm_done:
        if meas_tf is None:
            raise ValueError("the measurement is transfer-function corrected but its "
                             "transfer function is unknown, and the system matrix is not "
                             "corrected: units differ")
        warnings.warn("system matrix has no transfer function; dividing it by the "
                      "measurement's", stacklevel=2)
        S = _divide(S, meas_tf[:, None], "system matrix").astype(np.complex64)

    weights = _row_weights(weighting, S, background)
    x = kaczmarz(S, u.astype(np.complex64), iterations=iterations, lambd=lambd,
                 weights=weights, engine=engine)
    nx, ny, nz = sm.grid
    image = np.ascontiguousarray(x.real.T, dtype=np.float32).reshape(-1, nz, ny, nx)
    params = dict(selection, iterations=iterations, lambd=lambd,
                  bg_correction=bg_correction, num_averages=num_averages,
                  weighting=weighting if weighting is None or isinstance(weighting, str)
                  else "array", frames=None if frames is None else str(frames))
    return Reconstruction(
        image=image, grid=sm.grid, fov=sm.fov, center=sm.center, rows=rows,
        frequency_indices=None if sm.frequency_indices is None else sm.frequency_indices[ks],
        parameters=params)


def reconstruct(sm: SystemMatrix | PathLike, meas: Measurement | PathLike, *,
                snr_thresh: float = -1, min_freq: float = 0.0, max_freq: float | None = None,
                rec_channels: Iterable[int] | int | None = None, iterations: int = 3,
                lambd: float = 0.0, bg_correction: bool = True,
                frames: int | Sequence[int] | slice | None = None, num_averages: int = 1,
                weighting: Any = None, backend: str = "python",
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
        ``"python"``, or ``"julia"`` for MPIReco.jl through ``pympisr.julia.reconstruct``
        (same keyword arguments).
    engine:
        Kaczmarz engine (``"auto"``, ``"numba"``, ``"numpy"``).

    Returns
    -------
    float32 ``(F, Nz, Ny, Nx)`` concentrations, ``F`` = number of averaged frames.
    """
    if backend == "julia":
        try:
            from .. import julia
        except ImportError as exc:
            raise RuntimeError("backend='julia' needs the juliacall bridge pympisr.julia "
                               "(pip install 'pympisr[julia]' and a Julia with MPIReco.jl)"
                               ) from exc
        return julia.reconstruct(sm, meas, snr_thresh=snr_thresh, min_freq=min_freq,
                                 max_freq=max_freq, rec_channels=rec_channels,
                                 iterations=iterations, lambd=lambd,
                                 bg_correction=bg_correction, frames=frames,
                                 num_averages=num_averages, weighting=weighting)
    if backend != "python":
        raise ValueError(f"backend must be 'python' or 'julia', got {backend!r}")
    return reconstruct_with_metadata(
        sm, meas, snr_thresh=snr_thresh, min_freq=min_freq, max_freq=max_freq,
        rec_channels=rec_channels, iterations=iterations, lambd=lambd,
        bg_correction=bg_correction, frames=frames, num_averages=num_averages,
        weighting=weighting, engine=engine).image
