"""The noise level of every component of a system matrix (DESIGN section 11).

In order of precedence (the first that applies is used; the provenance records it):

``"given"``
    the caller passes the per-part standard deviation (scalar or ``(C, K)``);
``"background"``
    the file has at least 2 background (empty-scanner) frames: the standard deviation of
    the real and of the imaginary part over those frames per (channel, frequency)
    (:func:`pympisr.baselines.dct.estimate_sigma_background`, ddof 1). The frames are
    measured like the calibration positions, so this is the noise of one measured
    sample; MPIFiles' background rule subtracts (interpolated) block means of them;
``"snr"``
    ``/calibration/snr`` (MPIFiles: ``SNR = max|S_fg - mean(S_bg)| / mean|diff(S_bg)|``):
    the mean magnitude of the difference of two complex Gaussian samples with per-part
    standard deviation ``sigma`` is ``sigma sqrt(pi)``, hence
    ``sigma = max|S_k| / (SNR_k sqrt(pi))``;
``"blind"``
    the median absolute deviation of the finest DCT coefficients of each component
    (:func:`pympisr.baselines.dct.estimate_sigma_mad`).

Components for which a source gives no usable value (an SNR of 0 or NaN) fall back to
the blind estimate; :attr:`NoiseLevel.source` then names both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..baselines.dct import estimate_sigma_background, estimate_sigma_mad
from ..errors import InvalidInputError
from ..system_matrix import SystemMatrix

__all__ = ["NOISE_SOURCES", "NoiseLevel", "component_noise"]

NOISE_SOURCES = ("auto", "given", "background", "snr", "blind")


@dataclass(frozen=True)
class NoiseLevel:
    """Per-component noise level.

    Attributes
    ----------
    std:
        float64 ``(C, K)``: standard deviation of the real and of the imaginary part of
        the noise of one sample, in the units of ``sm.data``.
    source:
        Which rule produced it (module docstring), e.g. ``"background"`` or
        ``"snr+blind"`` when some components fell back to the blind estimate.
    """

    std: np.ndarray
    source: str


def _blind(sm: SystemMatrix) -> np.ndarray:
    c, k = sm.data.shape[:2]
    dims = 3 if sm.dims == 3 else 2
    comps = sm.data if dims == 3 else sm.data[:, :, 0]
    out = np.empty((c, k))
    for ch in range(c):  # one channel at a time bounds the DCT's memory
        out[ch] = estimate_sigma_mad(comps[ch], dims)
    return out


def component_noise(sm: SystemMatrix, noise: float | np.ndarray | None = None, *,
                    source: str = "auto") -> NoiseLevel:
    """The noise level of each component of ``sm`` (module docstring).

    Parameters
    ----------
    sm:
        System matrix, data ``(C, K, Nz, Ny, Nx)``.
    noise:
        Given per-part std (scalar or ``(C, K)``); overrides ``source``.
    source:
        ``"auto"`` (precedence of the module docstring) or one of ``"background"``,
        ``"snr"``, ``"blind"`` to force a rule (ValueError if the file lacks its data).
    """
    c, k = sm.data.shape[:2]
    if noise is not None:
        std = np.broadcast_to(np.asarray(noise, dtype=np.float64), (c, k)).copy()
        if not np.all(np.isfinite(std)) or np.any(std < 0):
            raise InvalidInputError("the given noise level must be finite and >= 0")
        return NoiseLevel(std, "given")
    if source not in NOISE_SOURCES or source == "given":
        raise InvalidInputError(f"noise source must be one of {NOISE_SOURCES[:1] + NOISE_SOURCES[2:]}"
                         f", got {source!r}")
    has_bg = sm.background is not None and sm.background.shape[0] >= 2
    if source == "background" or (source == "auto" and has_bg):
        if not has_bg:
            raise InvalidInputError("noise source 'background' needs at least 2 background frames, "
                             "which this system matrix does not have")
        std = estimate_sigma_background(sm.background.astype(np.complex128))
        name = "background"
    elif source == "snr" or (source == "auto" and sm.snr is not None):
        if sm.snr is None:
            raise InvalidInputError("noise source 'snr' needs /calibration/snr, which this system "
                             "matrix does not have")
        peak = np.abs(sm.data).reshape(c, k, -1).max(axis=-1).astype(np.float64)
        snr = np.asarray(sm.snr, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            std = peak / (snr * math.sqrt(math.pi))
        name = "snr"
    else:
        return NoiseLevel(_blind(sm), "blind")
    bad = ~np.isfinite(std) | (std <= 0)
    if np.any(bad):
        std = np.where(bad, _blind(sm), std)
        name += "+blind"
    return NoiseLevel(std, name)
