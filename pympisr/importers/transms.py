"""TranSMS ``.mat`` system matrices (Güngör et al., "TranSMS: Transformers for
super-resolution calibration in magnetic particle imaging", IEEE TMI 2022;
icon-lab/TranSMS, ``utils/loadData.py``).

A file holds, per MATLAB variable:

* ``myMtx``: complex ``(F * Z, n1 * n2)``: one row per frequency component and z slice
  (frequency-major: row ``f * Z + z``), each row an ``n1 x n2`` image (row-major in
  numpy: ``n1`` = y, ``n2`` = x);
* ``snrList``: ``(F, 1)`` SNR per component;
* ``estNsKestirimi``: ``(F, 1)`` estimated noise std per component (optional here).

The files carry no frequencies: pass them (Hz) or get placeholder bins ``1 .. F`` at
1 Hz spacing, marked ``/_pympisr/import/frequencies_known = 0``. All components go to
one receive channel. MATLAB v7.3 files (HDF5) are read with h5py (MATLAB stores the
arrays transposed and complex numbers as ``{real, imag}`` compounds).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np
import scipy.io

from ..errors import InvalidInputError
from ..system_matrix import SystemMatrix
from .array import system_matrix_from_array

__all__ = ["load_transms_mat"]

MATRIX_KEY, SNR_KEY, NOISE_KEY = "myMtx", "snrList", "estNsKestirimi"


def _read_v73(path: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        for key in (MATRIX_KEY, SNR_KEY, NOISE_KEY):
            if key in f:
                value = np.asarray(f[key][()])
                if value.dtype.names and {"real", "imag"} <= set(value.dtype.names):
                    value = value["real"] + 1j * value["imag"]
                out[key] = value.T
    return out


def _read(path: str) -> dict[str, Any]:
    if h5py.is_hdf5(path):  # MATLAB v7.3 (HDF5 behind a 512-byte MATLAB header)
        return _read_v73(path)
    try:
        return scipy.io.loadmat(path)
    except (NotImplementedError, scipy.io.matlab.MatReadError, ValueError, TypeError,
            OSError) as exc:
        raise InvalidInputError(f"{path}: /: not a readable MATLAB .mat file ({exc})") from exc


def load_transms_mat(path: str | os.PathLike[str], *, fov: Sequence[float],
                     shape: tuple[int, int] | None = None,
                     frequencies: Any = None, frequency_indices: Any = None) -> SystemMatrix:
    """Read a TranSMS ``.mat`` file (module docstring) as a 1-channel system matrix.

    ``shape``: ``(n1, n2)`` of each image (default: square, from the row length);
    ``fov``: ``(3,)`` m of the ``(n2, n1, Z)`` grid; ``frequencies`` (F,) Hz and/or
    ``frequency_indices`` (0-based rfft bins), else placeholders (module docstring).
    """
    name = os.fspath(path)
    content = _read(name)
    if MATRIX_KEY not in content:
        raise InvalidInputError(f"{name}: {MATRIX_KEY}: missing (TranSMS files hold the "
                                f"system matrix in '{MATRIX_KEY}'; found "
                                f"{sorted(k for k in content if not k.startswith('__'))})")
    matrix = np.asarray(content[MATRIX_KEY])
    if matrix.ndim != 2 or not np.iscomplexobj(matrix):
        raise InvalidInputError(f"{name}: {MATRIX_KEY}: a complex 2D matrix expected, got "
                                f"{matrix.dtype} {matrix.shape}")
    rows, pixels = matrix.shape
    if shape is None:
        side = int(round(pixels ** 0.5))
        if side * side != pixels:
            raise InvalidInputError(f"{name}: {MATRIX_KEY}: rows of {pixels} pixels are not "
                                    "square images; pass shape=(n1, n2)")
        shape = (side, side)
    n1, n2 = (int(s) for s in shape)
    if n1 * n2 != pixels:
        raise InvalidInputError(f"{name}: {MATRIX_KEY}: rows have {pixels} pixels, "
                                f"shape {shape} needs {n1 * n2}")
    if SNR_KEY not in content:
        raise InvalidInputError(f"{name}: {SNR_KEY}: missing (one SNR per frequency "
                                "component; it also gives the number of components)")
    snr = np.asarray(content[SNR_KEY], np.float64).reshape(-1)
    count = snr.size
    if count == 0 or rows % count:
        raise InvalidInputError(f"{name}: {MATRIX_KEY}: {rows} rows are not a multiple of "
                                f"the {count} components in {SNR_KEY}")
    slices = rows // count
    data = matrix.reshape(1, count, slices, n1, n2)
    meta: dict[str, Any] = {"/_pympisr/import/source": f"TranSMS .mat {os.path.basename(name)}"}
    if NOISE_KEY in content:
        meta["/_pympisr/import/noise_estimate"] = np.asarray(
            content[NOISE_KEY], np.float64).reshape(-1)
    if frequencies is None:
        bins = (np.arange(1, count + 1) if frequency_indices is None
                else np.asarray(frequency_indices, np.int64))
        frequencies = bins.astype(np.float64)
        frequency_indices = bins
        meta["/_pympisr/import/frequencies_known"] = np.int8(0)
    return system_matrix_from_array(data, frequencies, (n2, n1, slices), fov,
                                    frequency_indices=frequency_indices, snr=snr[None],
                                    metadata=meta, what=f"{name}: {MATRIX_KEY}")
