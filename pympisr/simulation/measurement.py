"""Simulated phantom measurements ``u = S c + b + n`` on a system matrix's frequencies.

For a concentration map ``c`` (voxels), every foreground frame is

    u[c, k] = sum_v S[c, k, v] c_v + b[c, k] + n

and every background (empty-scanner) frame is ``b[c, k] + n``, where ``b`` is the mean
of the system matrix's background frames (zero if it has none) and ``n`` is complex
white noise whose real and imaginary parts each have standard deviation
``noise * max_{c,k} |S c|`` (``noise`` is relative to the strongest noiseless signal).
A system matrix that is not yet background corrected has its mean background removed
before the product. If the system matrix was divided by a transfer function, the
measurement is multiplied by it again and marked as not corrected, as a scanner would
record it, so reconstruction must treat both alike (DESIGN section 4).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..phantoms import Shape, make_phantom, rasterize
from ..system_matrix import Measurement, SystemMatrix

__all__ = ["simulate_measurement"]

# metadata of the system matrix that describes the scanner and acquisition, copied
# into the measurement (so a written file has the same drive field and receiver)
_SHARED_GROUPS = ("/study/", "/experiment/", "/scanner/", "/tracer/", "/acquisition/")
_NOT_SHARED = {"/acquisition/numFrames", "/acquisition/numAverages",
               "/acquisition/numPeriodsPerFrame", "/acquisition/startTime"}


def _concentration(sm: SystemMatrix, phantom: Any) -> np.ndarray:
    """Phantom as float64 ``(Nz, Ny, Nx)`` on the system matrix grid."""
    if isinstance(phantom, str):
        return make_phantom(phantom, sm).astype(np.float64)
    if isinstance(phantom, Shape):
        return rasterize(phantom, sm).astype(np.float64)
    arr = np.asarray(phantom, dtype=np.float64)
    shape = sm.spatial_shape
    if arr.shape == shape[1:] and shape[0] == 1:
        arr = arr[None]
    if arr.shape != shape:
        raise ValueError(f"phantom shape {arr.shape} does not match the system matrix grid "
                         f"(Nz, Ny, Nx) = {shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("phantom contains NaN or Inf")
    return arr


def _shared_metadata(sm: SystemMatrix) -> dict[str, Any]:
    return {k: v for k, v in sm.metadata.items()
            if k.startswith(_SHARED_GROUPS) and k not in _NOT_SHARED
            and k != "/acquisition/receiver/transferFunction"}


def simulate_measurement(sm: SystemMatrix, phantom: Any, *, noise: float = 0.0,
                         background_frames: int = 0, frames: int = 1,
                         seed: int | np.random.Generator | None = None,
                         path: str | os.PathLike[str] | None = None,
                         overwrite: bool = False) -> Measurement:
    """Simulate a measurement of ``phantom`` with the system matrix ``sm``.

    Parameters
    ----------
    sm:
        The system matrix (any frequency subset; the measurement has the same
        frequencies, frequency indices and channels).
    phantom:
        Concentration ``(Nz, Ny, Nx)`` (``(Ny, Nx)`` for 2D grids), a phantom name of
        :data:`pympisr.phantoms.PHANTOMS`, or a :class:`pympisr.phantoms.Shape`.
    noise:
        Noise standard deviation (real and imaginary part each) relative to the largest
        noiseless signal magnitude; 0 for an exact ``u = S c``.
    background_frames:
        Number of empty-scanner frames recorded after the foreground frames.
    frames:
        Number of foreground frames (independent noise per frame).
    seed:
        Seed or generator for the noise.
    path:
        If given, also write the measurement there as an MDF file
        (:func:`pympisr.save_measurement`; the phantom goes to ``/_pympisr/phantom``).
    overwrite:
        Replace an existing ``path``.

    Returns
    -------
    Measurement with data complex64 ``(frames, C, K)`` and ``background``
    ``(background_frames, C, K)`` (None if 0).
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if background_frames < 0:
        raise ValueError(f"background_frames must be >= 0, got {background_frames}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be finite and >= 0, got {noise}")
    conc = _concentration(sm, phantom)
    channels, freqs = sm.num_channels, sm.num_frequencies
    offset = np.zeros((channels, freqs), dtype=np.complex128)
    if sm.background is not None:
        offset = sm.background.mean(axis=0, dtype=np.complex128)
    rows = sm.data.reshape(channels * freqs, -1)
    signal = (rows @ conc.reshape(-1).astype(np.complex64)).astype(np.complex128)
    signal = signal.reshape(channels, freqs)
    if sm.background is not None and not sm.is_background_corrected:
        signal -= offset * conc.sum()
    rng = np.random.default_rng(seed)
    sigma = noise * float(np.abs(signal).max(initial=0.0))

    def noisy(base: np.ndarray, count: int) -> np.ndarray:
        out = np.broadcast_to(base, (count, channels, freqs)).astype(np.complex128)
        if sigma > 0:
            out += sigma * (rng.standard_normal(out.shape) + 1j * rng.standard_normal(out.shape))
        return out

    data = noisy(signal + offset, frames)
    background = noisy(offset, background_frames) if background_frames else None
    tf = sm.transfer_function
    if tf is not None and sm.is_transfer_function_corrected:
        data = data * tf
        background = None if background is None else background * tf
    metadata = _shared_metadata(sm)
    metadata["/_pympisr/phantom"] = conc.astype(np.float32)
    metadata["/_pympisr/simulation/noise"] = np.float64(noise)
    meas = Measurement(
        data=data.astype(np.complex64), frequencies=sm.frequencies,
        background=None if background is None else background.astype(np.complex64),
        frequency_indices=sm.frequency_indices, transfer_function=tf,
        is_background_corrected=False, is_transfer_function_corrected=False,
        num_averages=1, metadata=metadata)
    if path is not None:
        from ..mdf.writer import save_measurement

        save_measurement(meas, path, overwrite=overwrite)
    return meas
