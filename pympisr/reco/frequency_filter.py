"""Frequency selection with the rule of MPIFiles.jl's ``filterFrequencies``.

A row ``(channel c, frequency k)`` of the system matrix is kept when

* ``c`` is one of the receive channels ``rec_channels`` (default: all);
* ``f_k >= min_freq`` (applied when ``min_freq > 0``; MPIFiles finds the first rfft
  bin at or above ``minFreq``);
* ``f_k <= max_freq`` (applied when ``max_freq`` is given);
* ``snr[c, k] >= snr_thresh`` (applied when ``snr_thresh > 0``; the SNR of drive-field
  period 1; a NaN SNR never passes).

Rows come in MPIReco's order: all kept frequencies of the first selected channel in
ascending frequency order, then those of the next channel, and so on (Julia's
column-major ``vec`` of the ``(frequency, channel)`` mask).

Differences from MPIFiles: channels are 0-based here (as everywhere in pympisr); an
out-of-range or repeated channel, a NaN threshold or band limit, and non-finite
frequencies (e.g. from an absurd receiver bandwidth in the file) are errors
(:class:`~pympisr.errors.InvalidInputError`) instead of being dropped or ignored silently.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ..errors import InvalidInputError
from ..system_matrix import SystemMatrix

__all__ = ["select_frequencies"]


def _channels(rec_channels: Iterable[int] | int | None, num_channels: int) -> np.ndarray:
    if rec_channels is None:
        return np.arange(num_channels, dtype=np.int64)
    chans = np.atleast_1d(np.asarray(rec_channels)).reshape(-1)
    if chans.size == 0 or chans.dtype.kind not in "iu":
        raise InvalidInputError(f"rec_channels must be 0-based channel integers, got "
                                f"{rec_channels!r}")
    bad = chans[(chans < 0) | (chans >= num_channels)]
    if bad.size:
        raise InvalidInputError(f"rec_channels {bad.tolist()} outside 0..{num_channels - 1} "
                                "(channels are 0-based)")
    unique, counts = np.unique(chans, return_counts=True)
    if np.any(counts > 1):
        raise InvalidInputError(f"rec_channels {unique[counts > 1].tolist()} given more "
                                "than once")
    return unique.astype(np.int64)


def _check_number(value: float | None, name: str) -> None:
    if value is None:
        return
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number, got {value!r}") from None
    if math.isnan(number):
        raise InvalidInputError(f"{name} must be a number, got NaN")


def select_frequencies(sm_or_snr: SystemMatrix | np.ndarray | None,
                       frequencies: np.ndarray | None = None, *,
                       snr_thresh: float = -1, min_freq: float = 0.0,
                       max_freq: float | None = None,
                       rec_channels: Iterable[int] | int | None = None,
                       num_channels: int | None = None) -> np.ndarray:
    """Rows ``(channel, frequency position)`` to reconstruct with, in MPIReco's order.

    Parameters
    ----------
    sm_or_snr:
        A :class:`~pympisr.SystemMatrix` (its ``snr`` and ``frequencies`` are used), or
        an SNR array ``(C, K)`` of period 1, or None when no SNR is known (then
        ``num_channels`` is required and ``snr_thresh`` must be <= 0).
    frequencies:
        ``(K,)`` frequencies in Hz; required unless a SystemMatrix is given.
    snr_thresh:
        Keep rows with SNR >= this value; <= 0 disables the SNR filter.
    min_freq, max_freq:
        Frequency band in Hz (inclusive); ``max_freq=None`` means no upper limit.
    rec_channels:
        0-based receive channels to use; None = all.
    num_channels:
        Number of receive channels when ``sm_or_snr`` is None.

    Returns
    -------
    int64 ``(M, 2)`` array of ``(channel, k)``, ``k`` indexing the frequency axis of
    the system matrix (``SystemMatrix.matrix(rows)`` gives the matching ``(M, N)``
    rows).
    """
    _check_number(snr_thresh, "snr_thresh")
    _check_number(min_freq, "min_freq")
    _check_number(max_freq, "max_freq")
    if isinstance(sm_or_snr, SystemMatrix):
        snr = sm_or_snr.snr
        freqs = sm_or_snr.frequencies
        num_channels = sm_or_snr.num_channels
    else:
        if frequencies is None:
            raise InvalidInputError("frequencies (Hz) are required unless a SystemMatrix is "
                                    "given")
        freqs = np.asarray(frequencies, dtype=np.float64).reshape(-1)
        snr = None if sm_or_snr is None else np.asarray(sm_or_snr, dtype=np.float64)
        if snr is not None:
            if snr.ndim != 2 or snr.shape[1] != freqs.size:
                raise InvalidInputError(f"snr must be (C, K) with K = {freqs.size}, got "
                                        f"{snr.shape}")
            num_channels = snr.shape[0]
        elif num_channels is None:
            raise InvalidInputError("num_channels is required when no SNR is given")
    if not np.all(np.isfinite(freqs)):
        bad = np.flatnonzero(~np.isfinite(freqs))
        raise InvalidInputError(
            f"{bad.size} of {freqs.size} frequencies are not finite (first at position "
            f"{int(bad[0])}: {freqs[bad[0]]}); check the receiver bandwidth "
            "(/acquisition/receiver/bandwidth) of the system matrix")
    mask = np.ones((int(num_channels), freqs.size), dtype=bool)
    if min_freq > 0:
        mask &= freqs[None, :] >= min_freq
    if max_freq is not None:
        mask &= freqs[None, :] <= max_freq
    if snr_thresh > 0:
        if snr is None:
            raise InvalidInputError(f"snr_thresh={snr_thresh} needs SNR values, but the "
                                    "system matrix has none (/calibration/snr missing)")
        with np.errstate(invalid="ignore"):
            mask &= np.asarray(snr) >= snr_thresh
    chans = _channels(rec_channels, int(num_channels))
    rows = [np.stack([np.full(k.size, c, dtype=np.int64), k], axis=1)
            for c in chans for k in [np.flatnonzero(mask[c]).astype(np.int64)]]
    return np.concatenate(rows, axis=0) if rows else np.zeros((0, 2), dtype=np.int64)
