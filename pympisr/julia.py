"""Julia backend: MDF reading with MPIFiles.jl and reconstruction with MPIReco.jl.

The bridge runs through juliacall (optional dependency, ``pip install 'pympisr[julia]'``);
juliacall installs the Julia packages declared in ``pympisr/juliapkg.json`` (MPIFiles,
MPIReco, ONNXRunTime, NPZ) on first use. Nothing here imports juliacall until one of the
functions is called, so ``import pympisr`` and ``import pympisr.julia`` never need Julia.

Public API
----------
``available()``
    True when juliacall imports and a Julia with MPIFiles and MPIReco loads; never raises.
``require()``
    Raise :class:`JuliaUnavailableError` (saying what to install) unless available.
``load_system_matrix(path, *, frequencies=None, bg_correction=True, tf_correction=None)``
    :class:`~pympisr.SystemMatrix` read by ``MPIFiles.getSystemMatrix``.
``load_measurement(path, *, frequencies=None, bg_correction=False, tf_correction=None)``
    :class:`~pympisr.Measurement` read by ``MPIFiles.getMeasurementsFD``.
``reconstruct(sm, meas, **options)``
    :func:`pympisr.reconstruct`'s pipeline with MPIReco's Kaczmarz (RegularizedLeastSquares.jl),
    ``(frames, Nz, Ny, Nx)``.

Array order: Julia arrays reach numpy with Julia's shape and indexing (juliacall does not
reverse axes). MPIFiles returns a system matrix as (voxels, rows) with voxels x fastest;
the bridge hands it over as (K, C, voxels), numpy's ``transpose(1, 0, 2)`` gives
(C, K, voxels), and a C-order reshape of the voxel axis to (Nz, Ny, Nx) is exact because
voxel v = x + Nx (y + Ny z) (0-based). Measurements arrive as (K, C, frames) and become
(frames, C, K) by ``transpose(2, 1, 0)``.

Processing follows the native reader (:mod:`pympisr.mdf.reader`): background correction
by MPIFiles' rules, transfer-function division without the induction factor (bins where
the transfer function is 0 stay undivided), one drive-field period (the first).
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .errors import MDFError, PympisrError
from .system_matrix import Measurement, SystemMatrix

__all__ = [
    "JuliaUnavailableError",
    "available",
    "load_measurement",
    "load_system_matrix",
    "reconstruct",
    "require",
]

INSTALL_HINT = (
    "install the Julia backend with `pip install 'pympisr[julia]'` (juliacall); on first "
    "use juliacall installs Julia and the Julia packages MPIFiles, MPIReco, ONNXRunTime "
    "and NPZ declared in pympisr/juliapkg.json (or add them yourself: "
    "`julia -e 'using Pkg; Pkg.add([\"MPIFiles\", \"MPIReco\"])'`)"
)

_BRIDGE_SOURCE = r"""
module PympisrBridge
using MPIFiles
using MPIReco

stored_bins(f) = measIsFrequencySelection(f) ? collect(Int, measFrequencySelection(f)) :
                 collect(1:rxNumFrequencies(f))

# 1-based rfft bins requested (0-based `bins`, or all stored) and their stored positions
function wanted_bins(stored::Vector{Int}, bins, path)
    bins === nothing && return copy(stored), collect(eachindex(stored))
    wanted = [Int(b) + 1 for b in bins]
    positions = Int[]
    for b in wanted
        i = findfirst(==(b), stored)
        i === nothing && throw(ArgumentError(string("frequency bin ", b - 1, " is not stored in ", path)))
        push!(positions, i)
    end
    return wanted, positions
end

function tf_request(f, tf, path)
    has = rxHasTransferFunction(f)
    done = measIsTFCorrected(f)
    tf === nothing && return has && !done
    if tf && !has && !done
        throw(ArgumentError(string(path, ": /acquisition/receiver/transferFunction missing; cannot apply tf_correction=True")))
    end
    return tf && !done
end

# transfer function (K', C) of the wanted bins, or nothing
function transfer_function(f, stored, wanted, positions)
    rxHasTransferFunction(f) || return nothing
    tf = rxTransferFunction(f)
    rows = size(tf, 1) == length(stored) ? positions : wanted
    return ComplexF32.(tf[rows, :])
end

# divide (K', C, frames) data by the transfer function, leaving bins where it is 0
function divide_tf!(data, tf)
    safe = map(t -> t == 0 ? one(ComplexF32) : t, tf)
    data ./= reshape(safe, size(safe, 1), size(safe, 2), 1)
    return data
end

# divide data and background (K', C, frames; background may be nothing) by the transfer
# function when `tf` asks for it; returns the transfer function and whether it was applied
function correct_tf!(data, background, f, tf, path, stored, wanted, positions)
    tfun = transfer_function(f, stored, wanted, positions)
    apply_tf = tf_request(f, tf, path)
    if apply_tf
        divide_tf!(data, tfun)
        background === nothing || divide_tf!(background, tfun)
    end
    return tfun, apply_tf
end

function load_system_matrix(path::AbstractString, bins, bg::Bool, tf)
    f = MPIFile(path)
    calib = calibSize(f)
    calib === nothing && throw(ArgumentError(string(path, ": /calibration/size missing (not a system matrix file)")))
    stored = stored_bins(f)
    wanted, positions = wanted_bins(stored, bins, path)
    nchan = rxNumChannels(f)
    rows = vec([CartesianIndex(k, c) for k in wanted, c in 1:nchan])
    has_bg = acqNumBGFrames(f) > 0
    bg_done = measIsBGCorrected(f)
    apply_bg = bg && has_bg && !bg_done
    S = getSystemMatrix(f, rows; bgCorrection = apply_bg)
    data = permutedims(reshape(S[:, 1:length(rows)], size(S, 1), length(wanted), nchan), (2, 3, 1))
    background = has_bg ? permutedims(MPIFiles.systemMatrixWithBG(f, positions)[measBGFrameIdx(f), :, :, 1], (2, 3, 1)) : nothing
    tfun, apply_tf = correct_tf!(data, background, f, tf, path, stored, wanted, positions)
    snr_all = calibSNR(f)
    snr = snr_all === nothing ? nothing : Float32.(snr_all[positions, :, 1])
    fov = calibFov(f)
    center = calibFovCenter(f)
    return (data = ComplexF32.(data), frequencies = Float64.(rxFrequencies(f)[wanted]),
            bins = wanted .- 1, grid = collect(Int, calib),
            fov = fov === nothing ? zeros(3) : Float64.(collect(fov)),
            center = center === nothing ? zeros(3) : Float64.(collect(center)),
            snr = snr, background = background === nothing ? nothing : ComplexF32.(background),
            transfer_function = tfun, bg_corrected = apply_bg || bg_done,
            tf_corrected = apply_tf || measIsTFCorrected(f))
end

function load_measurement(path::AbstractString, bins, bg::Bool, tf)
    f = MPIFile(path)
    nfreq = rxNumFrequencies(f)
    stored = collect(1:nfreq)
    wanted, positions = wanted_bins(stored, bins, path)
    has_bg = acqNumBGFrames(f) > 0
    bg_done = measIsBGCorrected(f)
    apply_bg = bg && has_bg && !bg_done
    u = getMeasurementsFD(f; bgCorrection = apply_bg, tfCorrection = false)
    data = ComplexF32.(u[wanted, :, 1, :])
    background = has_bg ?
        ComplexF32.(getMeasurementsFD(f, false; frames = measBGFrameIdx(f), tfCorrection = false)[wanted, :, 1, :]) :
        nothing
    tfun, apply_tf = correct_tf!(data, background, f, tf, path, stored, wanted, positions)
    return (data = data, frequencies = Float64.(rxFrequencies(f)[wanted]), bins = wanted .- 1,
            background = background, transfer_function = tfun,
            bg_corrected = apply_bg || bg_done, tf_corrected = apply_tf || measIsTFCorrected(f),
            num_averages = Int(acqNumAverages(f)))
end

# rows S (M, N), measurements u (M, F) -> real images (N, F), with the Kaczmarz setup of
# MPIReco's single-patch reconstruction (RegularizedLeastSquares, rows in order, real and
# non-negative projections, lambda scaled by SystemMatrixBasedNormalization)
function reconstruct(S::AbstractMatrix, u::AbstractMatrix, iterations::Integer, lambda::Real)
    A = Matrix{ComplexF32}(S)
    solver = createLinearSolver(Kaczmarz, A;
                                reg = [L2Regularization(Float32(lambda)), PositiveRegularization()],
                                normalizeReg = SystemMatrixBasedNormalization(),
                                iterations = Int(iterations))
    images = Matrix{Float32}(undef, size(A, 2), size(u, 2))
    for f in axes(u, 2)
        images[:, f] = real.(solve!(solver, Vector{ComplexF32}(u[:, f])))
    end
    return images
end
end
"""

_STATE: dict[str, Any] = {}


class JuliaUnavailableError(PympisrError, RuntimeError):
    """The Julia backend was requested but juliacall or MPIFiles/MPIReco is missing."""


def _bridge() -> Any:
    """The Julia module ``PympisrBridge`` (imports juliacall and loads it once)."""
    if "bridge" not in _STATE:
        juliacall = importlib.import_module("juliacall")
        main = juliacall.Main
        main.seval(_BRIDGE_SOURCE)
        _STATE["bridge"] = main.PympisrBridge
    return _STATE["bridge"]


def available() -> bool:
    """Whether juliacall imports and a Julia with MPIFiles and MPIReco loads. Never raises."""
    if "available" not in _STATE:
        try:
            _bridge()
        except Exception as exc:  # noqa: BLE001 - any failure means "not available"
            _STATE["available"] = False
            _STATE["reason"] = f"{type(exc).__name__}: {exc}"
        else:
            _STATE["available"] = True
    return bool(_STATE["available"])


def require() -> Any:
    """Return the Julia bridge module or raise :class:`JuliaUnavailableError`."""
    if not available():
        raise JuliaUnavailableError(
            f"the Julia backend is not available ({_STATE['reason']}); {INSTALL_HINT}")
    return _bridge()


def _bins_argument(frequencies: Any) -> np.ndarray | None:
    if frequencies is None:
        return None
    bins = np.asarray(frequencies)
    if bins.ndim != 1 or not np.issubdtype(bins.dtype, np.integer) or (bins < 0).any():
        raise ValueError("frequencies must be None or 0-based rfft bin indices (1-D integers)")
    return bins.astype(np.int64)


def _call(path: str | os.PathLike[str], name: str, *args: Any) -> Any:
    bridge = require()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(path)
    try:
        return getattr(bridge, name)(path, *args)
    except Exception as exc:
        if type(exc).__name__ != "JuliaError":
            raise
        raise MDFError(path, "/", f"MPIFiles.jl could not read the file: {exc}") from exc


def _array(value: Any, dtype: Any) -> np.ndarray:
    return np.array(value, dtype=dtype, copy=True)


def _optional(value: Any, dtype: Any) -> np.ndarray | None:
    return None if value is None else _array(value, dtype)


def load_system_matrix(path: str | os.PathLike[str], *, frequencies: Any = None,
                       bg_correction: bool = True,
                       tf_correction: bool | None = None) -> SystemMatrix:
    """Load a calibration file with MPIFiles.jl; same result as the native reader.

    ``frequencies``: None (all stored) or 0-based rfft bins; ``bg_correction``: MPIFiles'
    block-mean + interpolation rule unless already corrected; ``tf_correction``: None =
    if the file has a transfer function, True = require one, False = never. Returns a
    :class:`~pympisr.SystemMatrix` (data complex64 ``(C, K, Nz, Ny, Nx)``, snr and
    transfer function ``(C, K)``, background ``(E, C, K)``) of drive-field period 1.
    Raises :class:`JuliaUnavailableError` without Julia, :class:`~pympisr.MDFError` when
    MPIFiles cannot read the file.
    """
    res = _call(path, "load_system_matrix", _bins_argument(frequencies), bool(bg_correction),
                tf_correction)
    grid = tuple(int(n) for n in _array(res.grid, np.int64))
    nx, ny, nz = grid
    data = _array(res.data, np.complex64)  # (K, C, voxels)
    freqs, channels = data.shape[:2]
    data = np.ascontiguousarray(data.transpose(1, 0, 2)).reshape(channels, freqs, nz, ny, nx)
    snr = _optional(res.snr, np.float32)
    background = _optional(res.background, np.complex64)  # (K, C, E)
    tf = _optional(res.transfer_function, np.complex64)  # (K, C)
    return SystemMatrix(
        data=data, frequencies=_array(res.frequencies, np.float64), grid=grid,
        fov=_array(res.fov, np.float64), center=_array(res.center, np.float64),
        snr=None if snr is None else snr.T,
        background=None if background is None else background.transpose(2, 1, 0),
        frequency_indices=_array(res.bins, np.int64),
        transfer_function=None if tf is None else tf.T,
        is_background_corrected=bool(res.bg_corrected),
        is_transfer_function_corrected=bool(res.tf_corrected),
        metadata={"/_pympisr/backend": "julia", "/_pympisr/source": os.fspath(path)})


def load_measurement(path: str | os.PathLike[str], *, frequencies: Any = None,
                     bg_correction: bool = False,
                     tf_correction: bool | None = None) -> Measurement:
    """Load a measurement file with MPIFiles.jl (``getMeasurementsFD``).

    Options as for :func:`load_system_matrix`; ``bg_correction=True`` subtracts the mean
    background frame. Returns a :class:`~pympisr.Measurement` with data complex64
    ``(F, C, K)`` of drive-field period 1 and background ``(E, C, K)`` or None.
    """
    res = _call(path, "load_measurement", _bins_argument(frequencies), bool(bg_correction),
                tf_correction)
    data = _array(res.data, np.complex64)  # (K, C, F)
    background = _optional(res.background, np.complex64)
    tf = _optional(res.transfer_function, np.complex64)
    return Measurement(
        data=data.transpose(2, 1, 0), frequencies=_array(res.frequencies, np.float64),
        background=None if background is None else background.transpose(2, 1, 0),
        frequency_indices=_array(res.bins, np.int64),
        transfer_function=None if tf is None else tf.T,
        is_background_corrected=bool(res.bg_corrected),
        is_transfer_function_corrected=bool(res.tf_corrected),
        num_averages=int(res.num_averages),
        metadata={"/_pympisr/backend": "julia", "/_pympisr/source": os.fspath(path)})


def _same_units(sm: SystemMatrix, meas: Measurement, S: np.ndarray, u: np.ndarray,
                channels: np.ndarray, ks: np.ndarray, cols: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Transfer-function correct ``S`` (M, N) and ``u`` (M, F) like the native backend:
    each side by its own transfer function, or by the other side's when only one is
    known, so both end up in the same units."""
    from .reco.reconstruct import _divide

    sm_tf = None if sm.transfer_function is None else sm.transfer_function[channels, ks]
    meas_tf = None if meas.transfer_function is None else meas.transfer_function[channels, cols]
    sm_done, meas_done = sm.is_transfer_function_corrected, meas.is_transfer_function_corrected
    if sm_tf is not None and not sm_done:
        S, sm_done = _divide(S, sm_tf[:, None], "system matrix"), True
    if meas_tf is not None and not meas_done:
        u, meas_done = _divide(u, meas_tf[:, None], "measurement"), True
    if sm_done != meas_done:
        tf = sm_tf if sm_done else meas_tf
        if tf is None:
            raise ValueError("only one of system matrix and measurement is transfer-function "
                             "corrected and its transfer function is unknown: units differ")
        warnings.warn("dividing the uncorrected side by the other side's transfer function",
                      stacklevel=3)
        if sm_done:
            u = _divide(u, tf[:, None], "measurement")
        else:
            S = _divide(S, tf[:, None], "system matrix")
    return S, u


def reconstruct(sm: SystemMatrix | str | os.PathLike[str],
                meas: Measurement | str | os.PathLike[str], *, snr_thresh: float = -1,
                min_freq: float = 0.0, max_freq: float | None = None,
                rec_channels: Iterable[int] | int | None = None, iterations: int = 3,
                lambd: float = 0.0, bg_correction: bool = True,
                frames: int | Sequence[int] | slice | None = None, num_averages: int = 1,
                weighting: Any = None) -> np.ndarray:
    """Reconstruct with MPIReco.jl's Kaczmarz; same arguments and result as
    :func:`pympisr.reconstruct` (``backend="julia"`` calls this).

    Files are read by MPIFiles.jl (:func:`load_system_matrix`, :func:`load_measurement`);
    rows are selected by :func:`pympisr.reco.select_frequencies`; background and
    transfer-function handling and frame averaging follow the native pipeline; the
    solve is MPIReco's Kaczmarz setup in RegularizedLeastSquares.jl (rows in the given
    order, real and non-negative projections, ``lambd`` scaled by ``||S||_F^2 / N``:
    SystemMatrixBasedNormalization, DESIGN section 4). Row ``weighting`` is not offered
    by this backend (ValueError).

    Returns float32 ``(frames, Nz, Ny, Nx)`` concentrations.
    """
    if weighting is not None:
        raise ValueError("backend='julia' has no row weighting; use backend='python' "
                         "for weighting")
    bridge = require()
    from .reco import select_frequencies
    from .reco.reconstruct import _frame_data, _measurement_positions

    selection = dict(snr_thresh=snr_thresh, min_freq=min_freq, max_freq=max_freq,
                     rec_channels=rec_channels)
    if not isinstance(sm, SystemMatrix):
        sm = load_system_matrix(sm, bg_correction=bg_correction)
    rows = select_frequencies(sm, **selection)
    if rows.shape[0] == 0:
        raise ValueError(f"the frequency selection keeps no rows ({selection})")
    channels, ks = rows[:, 0], rows[:, 1]
    if not isinstance(meas, Measurement):
        bins = None if sm.frequency_indices is None else np.unique(sm.frequency_indices[ks])
        meas = load_measurement(meas, frequencies=bins, bg_correction=bg_correction)
    if meas.num_channels != sm.num_channels:
        raise ValueError(f"system matrix has {sm.num_channels} receive channels, the "
                         f"measurement {meas.num_channels}")
    cols = _measurement_positions(sm, meas, ks)

    S = sm.matrix(rows).astype(np.complex128)
    if bg_correction and not sm.is_background_corrected and sm.background is not None:
        S -= sm.background.mean(axis=0)[channels, ks][:, None]
    u = _frame_data(meas, frames, num_averages)[:, channels, cols].T  # (M, F)
    if bg_correction and not meas.is_background_corrected and meas.background is not None:
        u = u - meas.background.mean(axis=0)[channels, cols][:, None]
    S, u = _same_units(sm, meas, S, u, channels, ks, cols)

    images = _array(bridge.reconstruct(np.ascontiguousarray(S, dtype=np.complex64),
                                       np.ascontiguousarray(u, dtype=np.complex64),
                                       int(iterations), float(lambd)), np.float32)  # (N, F)
    nx, ny, nz = sm.grid
    return np.ascontiguousarray(images.T).reshape(-1, nz, ny, nx)
