"""3dSMRnet HDF5 system matrices (Baltruschat et al., "3d-SMRnet: Achieving a new
quality of MPI system matrix recovery by deep learning", MICCAI 2020; Ivo-B/3dSMRnet,
``data/LRHR_dataset.py`` and ``scripts/pre_processing.py``).

A file holds ``data``, float32 ``(F, 3, D0, D1, D2)``: one 3-channel volume per
frequency component, written from Julia (``Data37x37x37x3x3175...``: x, y, z, channel,
component), so the h5py axes are ``(F, channel, z, y, x)``; and ``hz``, ``(F,)``, the
frequency of each component in Hz. The three channels are, by our reading of the
repository (it never states them), real part, imaginary part and magnitude; the
importer checks the third against ``|re + i im|`` and refuses a file where it differs,
rather than guess. Components go to one receive channel.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np

from ..errors import InvalidInputError
from ..system_matrix import SystemMatrix
from .array import system_matrix_from_array

__all__ = ["load_smrnet_h5"]

DATA_KEY, FREQUENCY_KEY = "data", "hz"


def load_smrnet_h5(path: str | os.PathLike[str], *, fov: Sequence[float],
                   frequency_indices: Any = None, check_magnitude: bool = True,
                   rtol: float = 1e-3) -> SystemMatrix:
    """Read a 3dSMRnet HDF5 file (module docstring) as a 1-channel system matrix.

    ``fov``: ``(3,)`` m; ``frequency_indices``: 0-based rfft bins (default inferred from
    ``hz``); ``check_magnitude``: require channel 2 = ``|channel 0 + i channel 1|``
    within ``rtol`` of the largest magnitude.
    """
    name = os.fspath(path)
    try:
        with h5py.File(name, "r") as f:
            missing = [k for k in (DATA_KEY, FREQUENCY_KEY) if k not in f]
            if missing:
                raise InvalidInputError(f"{name}: {missing[0]}: missing (3dSMRnet files "
                                        f"hold '{DATA_KEY}' and '{FREQUENCY_KEY}')")
            data = np.asarray(f[DATA_KEY][()])
            hz = np.asarray(f[FREQUENCY_KEY][()], np.float64).reshape(-1)
    except OSError as exc:
        raise InvalidInputError(f"{name}: /: not a readable HDF5 file ({exc})") from exc
    if data.ndim != 5 or data.shape[1] != 3:
        raise InvalidInputError(f"{name}: {DATA_KEY}: (F, 3, Nz, Ny, Nx) expected, got "
                                f"{data.shape}")
    if hz.size != data.shape[0]:
        raise InvalidInputError(f"{name}: {FREQUENCY_KEY}: {hz.size} frequencies for "
                                f"{data.shape[0]} components")
    complex_data = data[:, 0].astype(np.float64) + 1j * data[:, 1]
    if check_magnitude:
        scale = max(float(np.abs(complex_data).max()), 1e-30)
        error = float(np.abs(np.abs(complex_data) - data[:, 2]).max()) / scale
        if error > rtol:
            raise InvalidInputError(f"{name}: {DATA_KEY}: channel 2 is not the magnitude of "
                                    f"channels 0 + i 1 (max deviation {error:.3g} of the "
                                    "peak); the file's channel layout is not the expected "
                                    "(real, imag, abs); pass check_magnitude=False to "
                                    "read channels 0 and 1 as real and imaginary anyway")
    f_count, _, nz, ny, nx = data.shape
    return system_matrix_from_array(
        complex_data[None], hz, (nx, ny, nz), fov, frequency_indices=frequency_indices,
        metadata={"/_pympisr/import/source": f"3dSMRnet HDF5 {os.path.basename(name)}"},
        what=f"{name}: {DATA_KEY}")
