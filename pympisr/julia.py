"""Julia backend: MDF reading with MPIFiles.jl and the Kaczmarz solve of MPIReco.jl.

This module is an adapter: :class:`JuliaBackend` implements
:class:`pympisr.reco.backends.ReconstructionBackend` (``load_system_matrix``,
``load_measurement``, ``solve``) by calling MPIFiles/MPIReco through juliacall, and the
reconstruction pipeline itself lives in :func:`pympisr.reco.reconstruct` only
(``pympisr.reconstruct(sm, meas, backend="julia")``). This module imports nothing of
:mod:`pympisr.reco` or :mod:`pympisr.mdf`.

The bridge runs through juliacall (optional dependency, ``pip install 'pympisr[julia]'``);
juliacall installs the Julia packages declared in ``pympisr/juliapkg.json`` (MPIFiles,
MPIReco, ONNXRunTime, NPZ) on first use. Nothing here imports juliacall until Julia is
needed, so ``import pympisr`` and ``import pympisr.julia`` never need Julia.

Public API
----------
``available()``
    True when juliacall imports and a Julia with MPIFiles and MPIReco loads; never raises.
``require()``
    Raise :class:`JuliaUnavailableError` (saying what to install) unless available.
``JuliaBackend(bridge=None)``
    The reconstruction backend; ``bridge`` replaces the Julia module (tests).
``load_system_matrix(path, *, frequencies=None, bg_correction=True, tf_correction=None)``
    :class:`~pympisr.SystemMatrix` read by ``MPIFiles.getSystemMatrix``.
``load_measurement(path, *, frequencies=None, bg_correction=False, tf_correction=None)``
    :class:`~pympisr.Measurement` read by ``MPIFiles.getMeasurementsFD``.

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
from typing import Any, Protocol

import numpy as np

from .errors import JuliaUnavailableError, MDFError
from .system_matrix import Measurement, SystemMatrix

__all__ = [
    "JuliaBackend",
    "JuliaUnavailableError",
    "available",
    "load_measurement",
    "load_system_matrix",
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


class SolverSettings(Protocol):
    """What :meth:`JuliaBackend.solve` reads of its ``params`` argument (satisfied by
    :class:`pympisr.reco.backends.SolverParameters`)."""

    iterations: int
    lambd: float
    weights: np.ndarray | None


def _bins_argument(frequencies: Any) -> np.ndarray | None:
    if frequencies is None:
        return None
    bins = np.asarray(frequencies)
    if bins.ndim != 1 or not np.issubdtype(bins.dtype, np.integer) or (bins < 0).any():
        raise ValueError("frequencies must be None or 0-based rfft bin indices (1-D integers)")
    return bins.astype(np.int64)


def _array(value: Any, dtype: Any) -> np.ndarray:
    return np.array(value, dtype=dtype, copy=True)


def _optional(value: Any, dtype: Any) -> np.ndarray | None:
    return None if value is None else _array(value, dtype)


class JuliaBackend:
    """Reconstruction backend of MPIFiles.jl / MPIReco.jl through juliacall.

    Implements :class:`pympisr.reco.backends.ReconstructionBackend`; used by
    ``pympisr.reconstruct(..., backend="julia")``.

    Parameters
    ----------
    bridge:
        The Julia module ``PympisrBridge`` (``_BRIDGE_SOURCE``) to call, or None to load
        it through juliacall, raising :class:`JuliaUnavailableError` when juliacall,
        Julia, MPIFiles or MPIReco is missing. Tests pass a Python object with the same
        functions (``load_system_matrix(path, bins, bg, tf)``,
        ``load_measurement(path, bins, bg, tf)``, ``reconstruct(S, u, iterations,
        lambda)``) returning arrays in Julia's index order.
    """

    name = "julia"

    def __init__(self, bridge: Any | None = None) -> None:
        self.bridge = require() if bridge is None else bridge

    def __repr__(self) -> str:
        return f"JuliaBackend(bridge={self.bridge!r})"

    def _call(self, path: str | os.PathLike[str], name: str, *args: Any) -> Any:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(path)
        try:
            return getattr(self.bridge, name)(path, *args)
        except Exception as exc:
            if type(exc).__name__ != "JuliaError":
                raise
            raise MDFError(path, "/", f"MPIFiles.jl could not read the file: {exc}") from exc

    def load_system_matrix(self, path: str | os.PathLike[str], *, frequencies: Any = None,
                           bg_correction: bool = True,
                           tf_correction: bool | None = None) -> SystemMatrix:
        """Load a calibration file with MPIFiles.jl; same result as the native reader.

        ``frequencies``: None (all stored) or 0-based rfft bins; ``bg_correction``:
        MPIFiles' block-mean + interpolation rule unless already corrected;
        ``tf_correction``: None = if the file has a transfer function, True = require
        one, False = never. Returns a :class:`~pympisr.SystemMatrix` (data complex64
        ``(C, K, Nz, Ny, Nx)``, snr and transfer function ``(C, K)``, background
        ``(E, C, K)``) of drive-field period 1. Raises :class:`~pympisr.MDFError` when
        MPIFiles cannot read the file, FileNotFoundError when it does not exist.
        """
        res = self._call(path, "load_system_matrix", _bins_argument(frequencies),
                         bool(bg_correction), tf_correction)
        grid = tuple(int(n) for n in _array(res.grid, np.int64))
        nx, ny, nz = grid
        data = _array(res.data, np.complex64)  # (K, C, voxels)
        freqs, channels = data.shape[:2]
        data = np.ascontiguousarray(data.transpose(1, 0, 2)).reshape(channels, freqs, nz, ny,
                                                                      nx)
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

    def load_measurement(self, path: str | os.PathLike[str], *, frequencies: Any = None,
                         bg_correction: bool = False,
                         tf_correction: bool | None = None) -> Measurement:
        """Load a measurement file with MPIFiles.jl (``getMeasurementsFD``).

        Options as for :meth:`load_system_matrix`; ``bg_correction=True`` subtracts the
        mean background frame. Returns a :class:`~pympisr.Measurement` with data
        complex64 ``(F, C, K)`` of drive-field period 1 and background ``(E, C, K)`` or
        None.
        """
        res = self._call(path, "load_measurement", _bins_argument(frequencies),
                         bool(bg_correction), tf_correction)
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

    def solve(self, S: np.ndarray, u: np.ndarray, params: SolverSettings) -> np.ndarray:
        """MPIReco's Kaczmarz (RegularizedLeastSquares.jl) for ``S x = u``.

        ``S``: complex ``(M, N)`` rows in order; ``u``: complex ``(M, F)``;
        ``params.iterations`` sweeps; ``params.lambd`` relative to ``||S||_F^2 / N`` of
        the unweighted ``S``. Row weights ``w`` (``params.weights``, ``(M,)``) are
        applied by scaling: the solver gets rows ``w_i a_i`` and data ``w_i u_i`` (rows
        with ``w_i = 0`` left out) and ``lambd * ||S||_F^2 / ||W S||_F^2``, whose
        SystemMatrixBasedNormalization gives the same ``lambda_eff`` and the same
        iterates as the weighted row-action method of :func:`pympisr.reco.kaczmarz`.
        Returns float32 ``(N, F)`` real, non-negative images.
        """
        S = np.asarray(S)
        u = np.asarray(u)
        if S.ndim != 2 or u.ndim != 2 or u.shape[0] != S.shape[0]:
            raise ValueError(f"S must be (M, N) and u (M, F), got {S.shape} and {u.shape}")
        n, num_frames = S.shape[1], u.shape[1]
        lambd = float(params.lambd)
        if params.weights is not None:
            w = np.asarray(params.weights, dtype=np.float64).reshape(-1)
            if w.size != S.shape[0]:
                raise ValueError(f"weights must have one entry per row ({S.shape[0]}), got "
                                 f"{w.size}")
            energy = np.sum(np.abs(S.astype(np.complex128)) ** 2, axis=1)
            keep = w > 0
            weighted = float(np.sum(energy[keep] * w[keep] ** 2))
            if weighted > 0:
                lambd *= float(energy.sum()) / weighted
            S = S[keep] * w[keep, None]
            u = u[keep] * w[keep, None]
        if int(params.iterations) == 0 or S.shape[0] == 0 or not np.any(S):
            return np.zeros((n, num_frames), dtype=np.float32)
        images = self.bridge.reconstruct(np.ascontiguousarray(S, dtype=np.complex64),
                                         np.ascontiguousarray(u, dtype=np.complex64),
                                         int(params.iterations), lambd)
        images = _array(images, np.float32)
        if images.shape != (n, num_frames):
            raise RuntimeError(f"MPIReco's solve returned shape {images.shape}, expected "
                               f"{(n, num_frames)}")
        return images


def load_system_matrix(path: str | os.PathLike[str], *, frequencies: Any = None,
                       bg_correction: bool = True,
                       tf_correction: bool | None = None) -> SystemMatrix:
    """:meth:`JuliaBackend.load_system_matrix` (``pympisr.load_system_matrix(...,
    backend="julia")`` calls this); raises :class:`JuliaUnavailableError` without
    Julia."""
    return JuliaBackend().load_system_matrix(path, frequencies=frequencies,
                                             bg_correction=bg_correction,
                                             tf_correction=tf_correction)


def load_measurement(path: str | os.PathLike[str], *, frequencies: Any = None,
                     bg_correction: bool = False,
                     tf_correction: bool | None = None) -> Measurement:
    """:meth:`JuliaBackend.load_measurement` (``pympisr.load_measurement(...,
    backend="julia")`` calls this); raises :class:`JuliaUnavailableError` without
    Julia."""
    return JuliaBackend().load_measurement(path, frequencies=frequencies,
                                           bg_correction=bg_correction,
                                           tf_correction=tf_correction)


def __getattr__(name: str) -> Any:
    if name == "reconstruct":
        raise AttributeError("pympisr.julia.reconstruct was removed: the reconstruction "
                             "pipeline is pympisr.reconstruct(sm, meas, backend='julia')")
    raise AttributeError(f"module 'pympisr.julia' has no attribute {name!r}")
