"""Fast path for the anisotropy model: a tabulated, interpolated mean moment.

The exact series (:mod:`pympisr.physics.moments`) costs about 5 µs per field value; a
3D system matrix needs ~4e8 values. The moment depends only on the dimensionless
``(xi_par, xi_perp, alpha)``, so one universal table serves every particle size.

What is tabulated
    ``g_par = m_par / xi_par`` and ``g_perp = m_perp / xi_perp`` (even, smooth functions
    of both field components, finite at zero field), so the relative accuracy of ``m``
    holds down to zero field, where the MPI signal is generated.

Grid
    Field axes in the mapped coordinate ``u = xi / (1 + |xi| / XI_SCALE)`` (node spacing
    grows with the field, where the functions flatten), ``u`` uniform with step
    ``U_STEP`` from 0 to ``u(XI_MAX)``; ``alpha`` uniform with step ``ALPHA_STEP`` from
    0 to ``ALPHA_MAX``. Ghost nodes beyond zero use the even symmetry.

Interpolation
    4-point Lagrange (cubic) in every axis: tricubic for a spatially varying alpha
    (fluid particles), bicubic on a pre-interpolated alpha slice when alpha is constant
    (immobilised particles). Field values outside the table (``|xi| > XI_MAX``) fall
    back to the exact series, so results are always defined.

Measured error (``python -m pympisr.physics.tables``; 200 000 random points, xi_par
in [-64, 64], xi_perp in [0, 64], alpha in [0, 21], plus 50 000 points with |xi| < 5):
    max ``|m_table - m_exact| <= 2e-5`` (normalised moment), max relative error
    ``<= 4e-5``; :data:`DOCUMENTED_MAX_ERROR` = 5e-5 is asserted in the tests.

The table (43 alpha slices x 179 x 179 field nodes x 2 values, float32, 11 MB) is built
from the exact series in about 10 s on first use and cached in memory and on disk
(``$PYMPISR_CACHE`` or ``~/.cache/pympisr``, written atomically).
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_output
from ._numba import njit, prange
from .moments import series_ratios

__all__ = [
    "ALPHA_MAX",
    "DOCUMENTED_MAX_ERROR",
    "XI_MAX",
    "AnisotropyTable",
    "anisotropy_table",
    "interp_constant_alpha",
    "interp_varying_alpha",
]

XI_SCALE = 24.0
XI_MAX = 64.0
U_STEP = 0.1
ALPHA_STEP = 0.5
ALPHA_MAX = 21.0
DOCUMENTED_MAX_ERROR = 5e-5
_VERSION = 1


def _u_of_xi(xi: np.ndarray | float) -> np.ndarray | float:
    return xi / (1.0 + np.abs(xi) / XI_SCALE)


def _xi_of_u(u: np.ndarray) -> np.ndarray:
    return u / (1.0 - np.abs(u) / XI_SCALE)


@njit(cache=True, parallel=True)
def _fill(xi_nodes: np.ndarray, alpha_nodes: np.ndarray, out: np.ndarray) -> None:
    n = xi_nodes.size
    for ia in prange(alpha_nodes.size):
        for i in range(n):
            for j in range(n):
                gp, gq = series_ratios(xi_nodes[i], xi_nodes[j], alpha_nodes[ia])
                out[ia, i, j, 0] = gp
                out[ia, i, j, 1] = gq


@dataclass(frozen=True)
class AnisotropyTable:
    """Tabulated ``(g_par, g_perp)``; ``values[ia, i_par, i_perp, 0|1]``, float32.

    Field node ``i`` (0-based, including one ghost node at index 0) sits at
    ``u = (i - 1) * U_STEP``; alpha node ``ia`` at ``ia * ALPHA_STEP``.
    """

    values: np.ndarray

    @property
    def num_u(self) -> int:
        return int(self.values.shape[1])

    def slice(self, alpha: float) -> np.ndarray:
        """``(g_par, g_perp)`` table ``(n_u, n_u, 2)`` float32 at one alpha (cubic in alpha)."""
        if not 0.0 <= alpha <= ALPHA_MAX:
            raise ValueError(f"alpha = {alpha} outside the table range [0, {ALPHA_MAX}]")
        base, weights = alpha_stencil(alpha, self.values.shape[0])
        out = np.zeros(self.values.shape[1:], np.float64)
        for o in range(4):
            out += weights[o] * self.values[base + o]
        return out.astype(np.float32)

    def moment(self, xi_par: np.ndarray, xi_perp: np.ndarray,
               alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Interpolated ``(m_par, m_perp)`` for broadcastable float arrays (``xi_perp >= 0``)."""
        xp, xq, al = (np.ascontiguousarray(a, np.float64).reshape(-1) for a in
                      np.broadcast_arrays(xi_par, xi_perp, alpha))
        if np.any(al < 0) or np.any(al > ALPHA_MAX):
            raise ValueError(f"alpha outside the table range [0, {ALPHA_MAX}]")
        shape = np.broadcast_shapes(np.shape(xi_par), np.shape(xi_perp), np.shape(alpha))
        m_par = np.empty(xp.size)
        m_perp = np.empty(xp.size)
        _moment_many(self.values, xp, xq, al, m_par, m_perp)
        return m_par.reshape(shape), m_perp.reshape(shape)


@njit(cache=True, inline="always")
def _lagrange4(t: float) -> tuple:
    """Cubic Lagrange weights of nodes -1, 0, 1, 2 at offset ``t`` from node 0."""
    return (-t * (t - 1.0) * (t - 2.0) / 6.0, (t + 1.0) * (t - 1.0) * (t - 2.0) / 2.0,
            -(t + 1.0) * t * (t - 2.0) / 2.0, (t + 1.0) * t * (t - 1.0) / 6.0)


@njit(cache=True, inline="always")
def _u_index(xi: float, num_u: int) -> tuple:
    """(first node, offset) of the 4-point stencil for |xi|; first node -1 = out of range."""
    u = xi / (1.0 + xi / XI_SCALE) / U_STEP
    i = int(u)
    if i + 3 >= num_u:
        return -1, 0.0
    return i, u - i  # stencil nodes i .. i+3 (table index includes the ghost at 0)


@njit(cache=True, inline="always")
def interp_constant_alpha(tab2: np.ndarray, xi_par: float, xi_perp: float,
                          alpha: float) -> tuple:
    """``(m_par, m_perp)`` from a bicubic slice ``tab2`` (n_u, n_u, 2) at constant alpha.

    ``xi_perp >= 0``; ``alpha`` is only used by the exact fallback outside the table.
    """
    ap = abs(xi_par)
    i, ti = _u_index(ap, tab2.shape[0])
    j, tj = _u_index(xi_perp, tab2.shape[0])
    if i < 0 or j < 0:
        gp, gq = series_ratios(xi_par, xi_perp, alpha)
        return xi_par * gp, xi_perp * gq
    wi = _lagrange4(ti)
    wj = _lagrange4(tj)
    gp = 0.0
    gq = 0.0
    for a in range(4):
        sp = 0.0
        sq = 0.0
        for b in range(4):
            sp += wj[b] * tab2[i + a, j + b, 0]
            sq += wj[b] * tab2[i + a, j + b, 1]
        gp += wi[a] * sp
        gq += wi[a] * sq
    return xi_par * gp, xi_perp * gq


@njit(cache=True, inline="always")
def interp_varying_alpha(tab3: np.ndarray, xi_par: float, xi_perp: float,
                         alpha_base: int, wa: tuple, alpha: float) -> tuple:
    """``(m_par, m_perp)`` tricubic; ``alpha_base``/``wa`` from :func:`alpha_stencil`."""
    ap = abs(xi_par)
    i, ti = _u_index(ap, tab3.shape[1])
    j, tj = _u_index(xi_perp, tab3.shape[1])
    if i < 0 or j < 0:
        gp, gq = series_ratios(xi_par, xi_perp, alpha)
        return xi_par * gp, xi_perp * gq
    wi = _lagrange4(ti)
    wj = _lagrange4(tj)
    gp = 0.0
    gq = 0.0
    for c in range(4):
        tp = 0.0
        tq = 0.0
        for a in range(4):
            sp = 0.0
            sq = 0.0
            for b in range(4):
                sp += wj[b] * tab3[alpha_base + c, i + a, j + b, 0]
                sq += wj[b] * tab3[alpha_base + c, i + a, j + b, 1]
            tp += wi[a] * sp
            tq += wi[a] * sq
        gp += wa[c] * tp
        gq += wa[c] * tq
    return xi_par * gp, xi_perp * gq


@njit(cache=True)
def alpha_stencil(alpha: float, num_alpha: int) -> tuple:
    """(first alpha node, cubic weights) for ``alpha`` in a table of ``num_alpha`` slices."""
    pos = alpha / ALPHA_STEP
    base = min(max(int(math.floor(pos)) - 1, 0), num_alpha - 4)
    return base, _lagrange4(pos - base - 1.0)


@njit(cache=True, parallel=True)
def _moment_many(tab3: np.ndarray, xp: np.ndarray, xq: np.ndarray, al: np.ndarray,
                 m_par: np.ndarray, m_perp: np.ndarray) -> None:
    for n in prange(xp.size):
        base, wa = alpha_stencil(al[n], tab3.shape[0])
        m_par[n], m_perp[n] = interp_varying_alpha(tab3, xp[n], xq[n], base, wa, al[n])


def _cache_dir() -> Path:
    return Path(os.environ.get("PYMPISR_CACHE", Path.home() / ".cache" / "pympisr"))


def _build() -> np.ndarray:
    num_u = int(round(_u_of_xi(XI_MAX) / U_STEP)) + 1  # nodes u = 0 .. u(XI_MAX)
    u = (np.arange(-1, num_u + 2)) * U_STEP  # one ghost below 0, two above
    xi_nodes = np.abs(_xi_of_u(u))  # ghost at -U_STEP mirrors node +U_STEP (even g)
    alpha_nodes = np.arange(int(round(ALPHA_MAX / ALPHA_STEP)) + 1) * ALPHA_STEP
    out = np.empty((alpha_nodes.size, xi_nodes.size, xi_nodes.size, 2))
    _fill(xi_nodes, alpha_nodes, out)
    return out.astype(np.float32)


@functools.lru_cache(maxsize=1)
def anisotropy_table() -> AnisotropyTable:
    """The universal table: loaded from the disk cache, or built (seconds) and cached."""
    name = (f"anisotropy_table_v{_VERSION}_s{XI_SCALE:g}_x{XI_MAX:g}_u{U_STEP:g}"
            f"_a{ALPHA_STEP:g}_{ALPHA_MAX:g}.npy")
    path = _cache_dir() / name
    if path.exists():
        try:
            values = np.load(path)
            if values.ndim == 4 and values.shape[-1] == 2 and np.all(np.isfinite(values)):
                return AnisotropyTable(values)
        except (OSError, ValueError):
            pass  # unreadable cache: rebuild below
    values = _build()
    try:
        with atomic_output(path, overwrite=True) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, values)
    except OSError:
        pass  # read-only home: keep the in-memory table
    return AnisotropyTable(values)


def measure_error(num_points: int = 200_000, seed: int = 0) -> dict[str, float]:
    """Max absolute and relative error of the table against the exact series."""
    from .moments import anisotropy_series

    rng = np.random.default_rng(seed)
    n_small = num_points // 4
    xp = np.concatenate([rng.uniform(-XI_MAX, XI_MAX, num_points), rng.uniform(-5, 5, n_small)])
    xq = np.concatenate([rng.uniform(0, XI_MAX, num_points), rng.uniform(0, 5, n_small)])
    al = rng.uniform(0, ALPHA_MAX, xp.size)
    ep, eq = anisotropy_series(xp, xq, al)
    tp, tq = anisotropy_table().moment(xp, xq, al)
    err = np.hypot(tp - ep, tq - eq)
    return {"max_abs": float(err.max()),
            "max_rel": float(np.max(err / np.maximum(np.hypot(ep, eq), 1e-300)))}


if __name__ == "__main__":
    print(measure_error())
