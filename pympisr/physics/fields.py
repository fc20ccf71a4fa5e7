"""Lissajous field-free-point (FFP) scanner fields (DESIGN section 5).

Field at position ``r`` (m) and sample ``n`` (time ``t = n / SAMPLING_RATE``), in tesla::

    B(r, t) = (A_x cos(2 pi f_x t) + G_x x,
               A_y cos(2 pi f_y t) + G_y y,
               A_z cos(2 pi f_z t) + G_z z)

with drive frequencies ``f = SAMPLING_RATE / DIVIDERS`` = 2.5 MHz / (102, 96, 99)
(about 24.51, 26.04 and 25.25 kHz, as in the Bruker preclinical scanner). A 2D
trajectory has ``A_z = 0``; one period then has ``lcm(102, 96) = 1632`` samples (817
rfft bins), a 3D period ``lcm(102, 96, 99) = 53856`` samples (26929 bins).
Mixing order ``(m_x, m_y[, m_z])`` sits at rfft bin ``k = 16 m_x + 17 m_y`` (2D) or
``528 m_x + 561 m_y + 544 m_z`` (3D), since ``f_x = 16 f_s / 1632`` and so on.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "DIVIDERS",
    "SAMPLING_RATE",
    "drive_field",
    "field",
    "mixing_index",
    "num_frequencies",
    "period_samples",
    "rfft_frequencies",
]

SAMPLING_RATE = 2.5e6  # Hz
DIVIDERS = (102, 96, 99)  # x, y, z


def _check_dims(dims: int) -> None:
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims!r}")


def period_samples(dims: int) -> int:
    """Samples V in one trajectory period: 1632 (2D) or 53856 (3D)."""
    _check_dims(dims)
    return math.lcm(*DIVIDERS[:dims])


def num_frequencies(dims: int) -> int:
    """Number of rfft bins ``V // 2 + 1``: 817 (2D) or 26929 (3D)."""
    return period_samples(dims) // 2 + 1


def rfft_frequencies(dims: int) -> np.ndarray:
    """Frequencies of all rfft bins of one period in Hz, ``(V // 2 + 1,)``."""
    v = period_samples(dims)
    return np.arange(v // 2 + 1) * SAMPLING_RATE / v


def mixing_index(orders: tuple[int, ...], dims: int) -> int:
    """rfft bin of mixing order ``(m_x, m_y[, m_z])`` (may be negative or beyond V/2)."""
    _check_dims(dims)
    v = period_samples(dims)
    if len(orders) != dims:
        raise ValueError(f"need {dims} mixing orders, got {orders}")
    return int(sum(m * (v // d) for m, d in zip(orders, DIVIDERS[:dims])))


def drive_field(amplitude: np.ndarray, dims: int) -> np.ndarray:
    """Homogeneous drive field over one period, float64 ``(V, 3)`` in tesla.

    ``amplitude`` (3,) in tesla; for ``dims == 2`` the z amplitude is ignored (set to 0).
    """
    amp = np.asarray(amplitude, dtype=np.float64).reshape(3).copy()
    if dims == 2:
        amp[2] = 0.0
    v = period_samples(dims)
    n = np.arange(v)
    # exact phase: n mod divider avoids rounding growth of 2 pi f t over long periods
    return np.stack([amp[a] * np.cos(2 * np.pi * (n % DIVIDERS[a]) / DIVIDERS[a])
                     for a in range(3)], axis=-1)


def field(positions: np.ndarray, amplitude: np.ndarray, gradient: np.ndarray,
          dims: int) -> np.ndarray:
    """Total field ``(..., V, 3)`` in tesla at ``positions`` ``(..., 3)`` in metres.

    ``gradient`` (3,) in T/m is the diagonal of the selection-field gradient.
    """
    pos = np.asarray(positions, dtype=np.float64)
    offset = pos * np.asarray(gradient, dtype=np.float64).reshape(3)
    return drive_field(amplitude, dims) + offset[..., None, :]
