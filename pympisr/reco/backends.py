"""Backends of the reconstruction pipeline: who reads the files and who solves.

:func:`pympisr.reco.reconstruct` has one pipeline (frequency selection, background and
transfer-function correction, frame averaging, row weighting, checks); a backend only
provides the three operations that differ between implementations:

* ``load_system_matrix(path, *, frequencies, bg_correction)`` -> :class:`SystemMatrix`;
* ``load_measurement(path, *, frequencies, bg_correction)`` -> :class:`Measurement`;
* ``solve(S, u, params)`` -> images ``(N, F)``: the regularised Kaczmarz solve of
  MPIReco.jl (real, non-negative, ``params.lambd`` relative to ``||S||_F^2 / N``,
  data term ``||W (S x - u)||^2`` with ``W = diag(params.weights)``).

Implementations: :class:`PythonBackend` (native MDF reader and the numba/numpy
:func:`~pympisr.reco.kaczmarz`) and ``pympisr.julia.JuliaBackend`` (MPIFiles.jl and
MPIReco.jl through juliacall). Any object with these methods can be passed as
``backend=`` to :func:`pympisr.reco.reconstruct`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import InvalidInputError
from ..system_matrix import Measurement, SystemMatrix
from .kaczmarz import available_engines, kaczmarz

__all__ = ["BACKENDS", "PythonBackend", "ReconstructionBackend", "SolverParameters",
           "get_backend"]

#: Names accepted by :func:`get_backend`.
BACKENDS = ("python", "julia")


@dataclass(frozen=True)
class SolverParameters:
    """What :meth:`ReconstructionBackend.solve` needs besides ``S`` and ``u``.

    Attributes
    ----------
    iterations:
        Kaczmarz sweeps over all rows (>= 0).
    lambd:
        Tikhonov parameter (>= 0) relative to ``||S||_F^2 / N`` of the *unweighted*
        ``S`` (MPIReco's SystemMatrixBasedNormalization).
    weights:
        float64 ``(M,)`` non-negative finite row weights ``w_i`` (data term
        ``||W (S x - u)||^2``), or None for all ones.
    """

    iterations: int = 3
    lambd: float = 0.0
    weights: np.ndarray | None = None


@runtime_checkable
class ReconstructionBackend(Protocol):
    """File reading and solving for :func:`pympisr.reco.reconstruct` (module docstring)."""

    #: Short name (``"python"``, ``"julia"``), recorded in the provenance.
    name: str

    def load_system_matrix(self, path: str | os.PathLike[str], *,
                           frequencies: np.ndarray | None = None,
                           bg_correction: bool = True) -> SystemMatrix:
        """Calibration file -> :class:`SystemMatrix` of drive-field period 1.

        ``frequencies``: None (all stored) or int64 0-based rfft bins to load, in this
        order; ``bg_correction``: MPIFiles' background rule unless already corrected.
        Transfer-function division as the file allows (MPIFiles' default).
        """
        ...

    def load_measurement(self, path: str | os.PathLike[str], *,
                         frequencies: np.ndarray | None = None,
                         bg_correction: bool = False) -> Measurement:
        """Measurement file -> :class:`Measurement` (data ``(F, C, K)``), options as for
        :meth:`load_system_matrix` (``bg_correction``: subtract the mean background)."""
        ...

    def solve(self, S: np.ndarray, u: np.ndarray, params: SolverParameters) -> np.ndarray:
        """Kaczmarz solve of ``S x = u``.

        ``S``: complex64 C-contiguous ``(M, N)`` finite rows, used in order; ``u``:
        complex64 ``(M, F)`` finite right-hand sides. Returns ``(N, F)`` images (real,
        or complex with zero imaginary part; the pipeline keeps the real part).
        """
        ...


class PythonBackend:
    """The native backend: :func:`pympisr.load_system_matrix` /
    :func:`pympisr.load_measurement` and :func:`pympisr.reco.kaczmarz`.

    Parameters
    ----------
    engine:
        Kaczmarz engine: ``"auto"`` (numba when installed), ``"numba"`` or ``"numpy"``.
    """

    name = "python"

    def __init__(self, engine: str = "auto") -> None:
        if engine != "auto" and engine not in ("numba", "numpy"):
            raise InvalidInputError(f"engine must be 'auto', 'numba' or 'numpy', got "
                                    f"{engine!r}")
        if engine == "numba" and "numba" not in available_engines():
            raise ImportError("engine='numba' needs numba: pip install numba")
        self.engine = engine

    def __repr__(self) -> str:
        return f"PythonBackend(engine={self.engine!r})"

    def load_system_matrix(self, path: str | os.PathLike[str], *,
                           frequencies: np.ndarray | None = None, bg_correction: bool = True,
                           tf_correction: bool | None = None) -> SystemMatrix:
        """:func:`pympisr.mdf.load_system_matrix` with ``backend="python"``."""
        from ..mdf.reader import load_system_matrix  # lazy: h5py only when files are read

        return load_system_matrix(path, frequencies=frequencies, bg_correction=bg_correction,
                                  tf_correction=tf_correction, backend="python")

    def load_measurement(self, path: str | os.PathLike[str], *,
                         frequencies: np.ndarray | None = None, bg_correction: bool = False,
                         tf_correction: bool | None = None) -> Measurement:
        """:func:`pympisr.mdf.load_measurement` with ``backend="python"``."""
        from ..mdf.reader import load_measurement

        return load_measurement(path, frequencies=frequencies, bg_correction=bg_correction,
                                tf_correction=tf_correction, backend="python")

    def solve(self, S: np.ndarray, u: np.ndarray, params: SolverParameters) -> np.ndarray:
        """:func:`~pympisr.reco.kaczmarz` (real, non-negative, normalised lambda);
        complex64 ``(N, F)``."""
        return kaczmarz(S, u, iterations=params.iterations, lambd=params.lambd,
                        weights=params.weights, engine=self.engine)


def get_backend(backend: str | ReconstructionBackend = "python", *,
                engine: str = "auto") -> ReconstructionBackend:
    """The backend object for ``backend``.

    ``"python"`` -> :class:`PythonBackend` (``engine``); ``"julia"`` ->
    ``pympisr.julia.JuliaBackend()`` (imports juliacall; raises
    :class:`~pympisr.errors.JuliaUnavailableError` without Julia/MPIReco); an object
    implementing :class:`ReconstructionBackend` is returned as it is. ``engine`` other
    than ``"auto"`` is only valid with ``"python"``.
    """
    if isinstance(backend, str):
        if backend == "python":
            return PythonBackend(engine)
        if backend not in BACKENDS:
            raise InvalidInputError(f"backend must be one of "
                                    f"{', '.join(map(repr, BACKENDS))} or a "
                                    f"ReconstructionBackend object, got {backend!r}")
        if engine != "auto":
            raise InvalidInputError(f"engine={engine!r} selects the Python Kaczmarz; it does "
                                    f"not apply to backend={backend!r}")
        from ..julia import JuliaBackend  # lazy: the adapter imports juliacall on use

        return JuliaBackend()
    if isinstance(backend, ReconstructionBackend):
        if engine != "auto":
            raise InvalidInputError(f"engine={engine!r} applies to backend='python' only; "
                                    "configure a backend object yourself")
        return backend
    raise TypeError(f"backend must be a name ({', '.join(BACKENDS)}) or an object with "
                    "name, load_system_matrix, load_measurement and solve, got "
                    f"{type(backend).__name__}")
