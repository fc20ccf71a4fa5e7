"""Compiled per-voxel kernels: mean moment along the drive trajectory (numba).

Each kernel fills ``out[v, c, n]`` (float32, voxels x 3 channels x samples) with the
normalised mean moment ``m_c(r_v, t_n)`` for the field ``drive[n] + offset[v]``
(tesla), parallel over voxels. The moment models are those of
:mod:`pympisr.physics.moments` (Langevin, closed form) and the tabulated anisotropy
fast path of :mod:`pympisr.physics.tables`.
"""

from __future__ import annotations

import math

import numpy as np

from ..physics._numba import njit, prange
from ..physics.tables import alpha_stencil, interp_constant_alpha

__all__ = ["moment_anisotropy_constant", "moment_anisotropy_varying", "moment_langevin"]


@njit(cache=True, parallel=True, fastmath=True)
def moment_langevin(drive: np.ndarray, offset: np.ndarray, beta: float,
                    out: np.ndarray) -> None:
    """Langevin moment; ``drive`` (V, 3), ``offset`` (Nv, 3) in T, ``out`` (Nv, 3, V)."""
    nv = offset.shape[0]
    v_len = drive.shape[0]
    for v in prange(nv):
        for n in range(v_len):
            bx = beta * (drive[n, 0] + offset[v, 0])
            by = beta * (drive[n, 1] + offset[v, 1])
            bz = beta * (drive[n, 2] + offset[v, 2])
            xi = math.sqrt(bx * bx + by * by + bz * bz)
            if xi < 1e-2:
                x2 = xi * xi
                ratio = 1.0 / 3.0 - x2 / 45.0 + 2.0 * x2 * x2 / 945.0  # L(xi) / xi
            else:
                ratio = (1.0 / math.tanh(xi) - 1.0 / xi) / xi
            out[v, 0, n] = bx * ratio
            out[v, 1, n] = by * ratio
            out[v, 2, n] = bz * ratio


@njit(cache=True, inline="always")
def _assemble(m_par: float, m_perp: float, xq: float, n: tuple, p: tuple,
              out: np.ndarray, v: int, k: int) -> None:
    scale = m_perp / xq if xq > 0.0 else 0.0
    for c in range(3):
        out[v, c, k] = m_par * n[c] + scale * p[c]


@njit(cache=True, inline="always")
def _voxel_anisotropy(drive: np.ndarray, offset: np.ndarray, beta: float, n_vec: tuple,
                      alpha: float, slice2: np.ndarray, out: np.ndarray, v: int) -> None:
    """``out[v]`` (3, V): anisotropy moment of voxel ``v`` (easy axis ``n_vec``) along the
    drive, from the bicubic table slice ``slice2`` (n_u, n_u, 2) at ``alpha``."""
    for k in range(drive.shape[0]):
        bx = beta * (drive[k, 0] + offset[v, 0])
        by = beta * (drive[k, 1] + offset[v, 1])
        bz = beta * (drive[k, 2] + offset[v, 2])
        xp = bx * n_vec[0] + by * n_vec[1] + bz * n_vec[2]
        p_vec = (bx - xp * n_vec[0], by - xp * n_vec[1], bz - xp * n_vec[2])
        xq = math.sqrt(p_vec[0] ** 2 + p_vec[1] ** 2 + p_vec[2] ** 2)
        m_par, m_perp = interp_constant_alpha(slice2, xp, xq, alpha)
        _assemble(m_par, m_perp, xq, n_vec, p_vec, out, v, k)


@njit(cache=True, parallel=True)
def moment_anisotropy_constant(drive: np.ndarray, offset: np.ndarray, beta: float,
                               axes: np.ndarray, alpha: float, slice2: np.ndarray,
                               out: np.ndarray) -> None:
    """Anisotropy moment with one alpha for all voxels (immobilised particles).

    ``axes`` (Nv, 3) unit easy axes; ``slice2`` (n_u, n_u, 2) the table at ``alpha``.
    """
    for v in prange(offset.shape[0]):
        n_vec = (axes[v, 0], axes[v, 1], axes[v, 2])
        _voxel_anisotropy(drive, offset, beta, n_vec, alpha, slice2, out, v)


@njit(cache=True, parallel=True)
def moment_anisotropy_varying(drive: np.ndarray, offset: np.ndarray, beta: float,
                              axes: np.ndarray, alphas: np.ndarray, table: np.ndarray,
                              out: np.ndarray) -> None:
    """Anisotropy moment with one alpha per voxel (fluid particles).

    ``axes`` (Nv, 3) unit easy axes, ``alphas`` (Nv,), ``table`` the full
    (n_alpha, n_u, n_u, 2) table. Per voxel the four alpha slices around its alpha are
    combined once (cubic in alpha) into a 2D slice, then evaluated bicubically.
    """
    n_u = table.shape[1]
    for v in prange(offset.shape[0]):
        n_vec = (axes[v, 0], axes[v, 1], axes[v, 2])
        alpha = alphas[v]
        base, wa = alpha_stencil(alpha, table.shape[0])
        slice2 = np.empty((n_u, n_u, 2), np.float32)
        for i in range(n_u):
            for j in range(n_u):
                for c in range(2):
                    slice2[i, j, c] = (wa[0] * table[base, i, j, c]
                                       + wa[1] * table[base + 1, i, j, c]
                                       + wa[2] * table[base + 2, i, j, c]
                                       + wa[3] * table[base + 3, i, j, c])
        _voxel_anisotropy(drive, offset, beta, n_vec, alpha, slice2, out, v)


@njit(cache=True, parallel=True)
def scatter_spectra(spec: np.ndarray, bins: np.ndarray, factor: np.ndarray,
                    result: np.ndarray, start: int) -> None:
    """``result[c, j, start + i] = spec[i, c, bins[j]] * factor[c, j]`` (tiled transpose).

    ``spec`` (n, 3, K) float32 real spectra, ``factor`` (3, K_sel) complex64,
    ``result`` (3, K_sel, N) complex64.
    """
    n = spec.shape[0]
    n_sel = bins.size
    tile = 16  # one cache line of spec per (i, c), reused across the tile's j
    for t in prange((n_sel + tile - 1) // tile):
        j0 = t * tile
        j1 = min(j0 + tile, n_sel)
        for c in range(3):
            for j in range(j0, j1):
                b = bins[j]
                f = factor[c, j]
                for i in range(n):
                    result[c, j, start + i] = spec[i, c, b] * f
