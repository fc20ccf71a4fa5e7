"""Regularised Kaczmarz solver with MPIReco.jl semantics (DESIGN section 4).

Solves the Tikhonov problem ``min_x ||W (S x - u)||^2 + lambda_eff ||x||^2`` by the
row-action method of Dax (1993) as implemented in RegularizedLeastSquares.jl 0.16 and
in the MDF repository's ``python/kaczmarzReg.py`` (Knopp et al. 2010, Phys. Med. Biol.
55, 1577, eq. 10). Per sweep, for every row ``i`` of ``S`` in the given order::

    tau      = a_i . x                      (no conjugate)
    alpha    = d_i (u_i - tau - e_i v_i)
    x       += alpha conj(a_i)
    v_i     += alpha e_i

with, for row weights ``w_i`` (``W = diag(w)``),
``d_i = w_i^2 / (w_i^2 |a_i|^2 + lambda_eff)`` and ``e_i = sqrt(lambda_eff) / w_i``.
Without weights ``d_i = 1 / (|a_i|^2 + lambda_eff)`` and ``e_i = sqrt(lambda_eff)``.
Rows with ``w_i^2 |a_i|^2 = 0`` are skipped. After every sweep the imaginary part of
``x`` is set to 0 (``enforce_real``) and negative real parts are clipped to 0
(``enforce_positive``). With ``normalize_reg`` the regularisation parameter is
``lambda_eff = lambd * ||S||_F^2 / N`` (MPIReco's system-matrix based normalisation,
``N`` = number of columns/voxels).

Two engines give the same result up to float32 rounding:

* ``"numba"`` (optional extra ``pympisr[speed]``): a compiled kernel that makes one
  pass over ``S`` per sweep. The update ``x += alpha_i conj(a_i)`` and the next row's
  product ``a_{i+1} . x`` are fused into one loop over the columns, so ``x`` and row
  ``i`` (cache resident) are touched once per row and only row ``i+1`` streams from
  memory; ``x`` is kept as separate real and imaginary float32 planes and ``S`` is read
  through a float32 view of its interleaved storage (no copy, never ``S.conj()``);
  accumulation is in float32 with ``fastmath`` (vectorised partial sums), as in
  RegularizedLeastSquares' SIMD kernels. Single-threaded on purpose: every row depends
  on the previous one, and a prototype that split each row over 2 threads (one numba
  parallel region per row) was 2x slower than this kernel on 2000 x 50000.
* ``"numpy"``: the same row loop with BLAS dot products and buffered numpy updates
  (iterating ``conj(x)`` for one frame), without temporaries of the size of ``S``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

__all__ = ["available_engines", "kaczmarz"]

# Column block length (elements) for several right-hand sides: keeps the two row
# slices and the x slices of all frames in the L1/L2 cache.
_MULTI_FRAME_BLOCK = 2048


try:  # optional extra pympisr[speed]
    import numba
except ImportError:  # pragma: no cover - exercised where numba is missing
    numba = None

if numba is not None:
    _jit = functools.partial(numba.njit, fastmath=True, boundscheck=False, cache=True,
                             nogil=True)

    @_jit
    def _dot(row: np.ndarray, xr: np.ndarray, xi: np.ndarray) -> tuple[float, float]:
        """Real and imaginary part of ``a . x``; ``row`` is interleaved float32."""
        sr = np.float32(0.0)
        si = np.float32(0.0)
        for j in range(xr.size):
            ar = row[2 * j]
            ai = row[2 * j + 1]
            sr += ar * xr[j] - ai * xi[j]
            si += ar * xi[j] + ai * xr[j]
        return sr, si

    @_jit
    def _update(row: np.ndarray, xr: np.ndarray, xi: np.ndarray, alr: float,
               ali: float) -> None:
        """``x += alpha conj(a)``."""
        for j in range(xr.size):
            ar = row[2 * j]
            ai = row[2 * j + 1]
            xr[j] += alr * ar + ali * ai
            xi[j] += ali * ar - alr * ai

    @_jit
    def _update_dot(row: np.ndarray, nxt: np.ndarray, xr: np.ndarray, xi: np.ndarray,
                   alr: float, ali: float) -> tuple[float, float]:
        """``x += alpha conj(a)`` fused with ``b . x`` of the next row ``b``."""
        sr = np.float32(0.0)
        si = np.float32(0.0)
        for j in range(xr.size):
            ar = row[2 * j]
            ai = row[2 * j + 1]
            vr = xr[j] + alr * ar + ali * ai
            vi = xi[j] + ali * ar - alr * ai
            xr[j] = vr
            xi[j] = vi
            br = nxt[2 * j]
            bi = nxt[2 * j + 1]
            sr += br * vr - bi * vi
            si += br * vi + bi * vr
        return sr, si

    @_jit
    def _sweeps(sf: np.ndarray, u: np.ndarray, v: np.ndarray, rows: np.ndarray,
                denom: np.ndarray, eps: np.ndarray, xr: np.ndarray, xi: np.ndarray,
                iterations: int, enforce_real: bool, enforce_positive: bool,
                block: int) -> None:
        """``iterations`` sweeps over ``rows``; ``sf`` is ``S`` viewed as float32."""
        num_frames, n = xr.shape
        num_rows = rows.size
        tau = np.zeros(num_frames, dtype=np.complex128)
        alr = np.zeros(num_frames, dtype=np.float32)
        ali = np.zeros(num_frames, dtype=np.float32)
        for _ in range(iterations):
            first = sf[rows[0]]
            for f in range(num_frames):
                tr, ti = _dot(first, xr[f], xi[f])
                tau[f] = complex(tr, ti)
            for i in range(num_rows):
                r = rows[i]
                for f in range(num_frames):
                    alpha = denom[i] * (u[r, f] - tau[f] - eps[i] * v[r, f])
                    v[r, f] += alpha * eps[i]
                    alr[f] = alpha.real
                    ali[f] = alpha.imag
                    tau[f] = 0.0
                row = sf[r]
                if i + 1 < num_rows:
                    nxt = sf[rows[i + 1]]
                    for lo in range(0, n, block):
                        hi = min(n, lo + block)
                        rs = row[2 * lo:2 * hi]
                        ns = nxt[2 * lo:2 * hi]
                        for f in range(num_frames):
                            tr, ti = _update_dot(rs, ns, xr[f, lo:hi], xi[f, lo:hi],
                                                 alr[f], ali[f])
                            tau[f] += complex(tr, ti)
                else:
                    for f in range(num_frames):
                        _update(row, xr[f], xi[f], alr[f], ali[f])
            for f in range(num_frames):
                if enforce_real:
                    xi[f, :] = 0.0
                if enforce_positive:
                    for j in range(n):
                        if xr[f, j] < 0.0:
                            xr[f, j] = 0.0


    @_jit
    def _row_energies_numba(sf: np.ndarray) -> np.ndarray:
        """Sum of squares of each row of the float32 view, accumulated in float64."""
        out = np.empty(sf.shape[0], dtype=np.float64)
        for i in range(sf.shape[0]):
            row = sf[i]
            acc = 0.0
            for j in range(row.size):
                acc += np.float64(row[j]) * row[j]
            out[i] = acc
        return out


def _numba_kernel() -> Any:
    """The compiled sweep kernel, or None when numba is not installed."""
    return None if numba is None else _sweeps


def available_engines() -> list[str]:
    """Engines usable in this environment, fastest first."""
    return (["numba"] if _numba_kernel() is not None else []) + ["numpy"]


def _row_energies(S: np.ndarray) -> np.ndarray:
    """``|a_i|^2`` per row, float64 (one read of ``S``, no temporaries)."""
    if numba is not None:
        return _row_energies_numba(S.view(np.float32))
    return np.array([np.vdot(row, row).real for row in S], dtype=np.float64)


def _numpy_sweeps(S: np.ndarray, u: np.ndarray, v: np.ndarray, rows: np.ndarray,
                  denom: np.ndarray, eps: np.ndarray, x: np.ndarray, iterations: int,
                  enforce_real: bool, enforce_positive: bool) -> None:
    """Row loop on BLAS/numpy calls; ``x`` is ``(F, N)`` complex64, updated in place.

    One frame: ``y = conj(x)`` is iterated so that ``a . x = conj(vdot(a, y))`` (BLAS
    ``cdotc``) and ``x += alpha conj(a)`` becomes ``y += conj(alpha) a`` through a
    one-row buffer (no conjugate pass). Several frames: ``x @ a`` (gemv) and a buffered
    rank-1 update. The updates use single-threaded numpy ufuncs: a threaded BLAS axpy
    per row stalls on thread synchronisation when the CPU is oversubscribed.
    """
    single = x.shape[0] == 1
    y = np.conj(x[0]) if single else None
    row_buf = np.empty(S.shape[1], dtype=np.complex64)
    step = np.empty_like(x)
    for _ in range(iterations):
        for i, r in enumerate(rows):
            a = S[r]
            if y is not None:
                tau = np.conj(np.vdot(a, y))
                alpha = denom[i] * (u[r, 0] - tau - eps[i] * v[r, 0])
                v[r, 0] += alpha * eps[i]
                np.multiply(a, np.complex64(np.conj(alpha)), out=row_buf)
                y += row_buf
                continue
            tau_f = x @ a                                            # (F,)
            alpha_f = (denom[i] * (u[r] - tau_f - eps[i] * v[r])).astype(np.complex64)
            v[r] += alpha_f * eps[i]
            np.conjugate(a, out=row_buf)
            np.multiply(alpha_f[:, None], row_buf[None, :], out=step)
            x += step
        target = y if y is not None else x
        if enforce_real:
            target.imag = 0.0
        if enforce_positive:
            np.maximum(target.real, 0.0, out=target.real)
    if y is not None:
        np.conjugate(y, out=x[0])


def _weights(weights: Any, m: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.size != m:
        raise ValueError(f"weights must have one entry per row ({m}), got {w.size}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and non-negative")
    return w


def kaczmarz(S: np.ndarray, u: np.ndarray, *, iterations: int = 3, lambd: float = 0.0,
             enforce_real: bool = True, enforce_positive: bool = True,
             normalize_reg: bool = True, weights: np.ndarray | None = None,
             engine: str = "auto") -> np.ndarray:
    """Solve ``S x = u`` with MPIReco's regularised Kaczmarz (module docstring).

    Parameters
    ----------
    S:
        ``(M, N)`` system matrix rows (complex; converted to C-contiguous complex64 if
        it is not already, which copies). Rows are used in the given order.
    u:
        ``(M,)`` measurement, or ``(M, F)`` for F frames solved independently.
    iterations:
        Number of sweeps over all rows (MPIReco uses 3 to 10).
    lambd:
        Tikhonov parameter (>= 0); relative to ``||S||_F^2 / N`` if ``normalize_reg``.
    enforce_real, enforce_positive:
        Projections after every sweep: imaginary part to 0, negative real parts to 0.
    normalize_reg:
        Scale ``lambd`` by ``||S||_F^2 / N`` (MPIReco's default normalisation).
    weights:
        ``(M,)`` non-negative row weights ``w_i`` (data term ``||W (S x - u)||^2``), or
        None for all ones; e.g. ``1/|a_i|`` or inverse noise standard deviations.
    engine:
        ``"auto"`` (numba when installed, else numpy), ``"numba"`` or ``"numpy"``.

    Returns
    -------
    complex64 ``(N,)`` for 1-D ``u``, else ``(N, F)``.
    """
    S = np.asarray(S)
    if S.ndim != 2:
        raise ValueError(f"S must be a 2-D (M, N) matrix, got shape {S.shape}")
    if S.dtype != np.complex64 or not S.flags.c_contiguous:
        S = np.ascontiguousarray(S, dtype=np.complex64)
    m, n = S.shape
    u = np.asarray(u)
    single = u.ndim == 1
    u2 = u.reshape(-1, 1) if single else u
    if u2.ndim != 2 or u2.shape[0] != m:
        raise ValueError(f"u must be (M,) or (M, F) with M = {m} rows, got shape {u.shape}")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    if not np.isfinite(lambd) or lambd < 0:
        raise ValueError(f"lambd must be finite and >= 0, got {lambd}")
    if engine == "auto":
        engine = available_engines()[0]
    if engine not in ("numba", "numpy"):
        raise ValueError(f"engine must be 'auto', 'numba' or 'numpy', got {engine!r}")
    kernel = _numba_kernel() if engine == "numba" else None
    if engine == "numba" and kernel is None:
        raise ImportError("engine='numba' needs numba: pip install 'pympisr[speed]'")

    num_frames = u2.shape[1]
    w = np.ones(m) if weights is None else _weights(weights, m)
    energy = _row_energies(S) if n else np.zeros(m)
    s2 = energy * w**2
    rows = np.flatnonzero(s2 > 0).astype(np.int64)
    if rows.size == 0 or iterations == 0:
        x = np.zeros((n, num_frames), dtype=np.complex64)
        return x[:, 0] if single else x
    lam = float(lambd) * (float(energy.sum()) / n if normalize_reg else 1.0)
    denom = w[rows] ** 2 / (s2[rows] + lam)
    eps = np.sqrt(lam) / w[rows]
    u_rows = np.ascontiguousarray(u2, dtype=np.complex128)
    v = np.zeros_like(u_rows)

    if kernel is not None:
        xr = np.zeros((num_frames, n), dtype=np.float32)
        xi = np.zeros((num_frames, n), dtype=np.float32)
        block = n if num_frames == 1 else _MULTI_FRAME_BLOCK
        kernel(S.view(np.float32), u_rows, v, rows, denom, eps, xr, xi, int(iterations),
               bool(enforce_real), bool(enforce_positive), int(block))
        x = np.empty((n, num_frames), dtype=np.complex64)
        x.real = xr.T
        x.imag = xi.T
    else:
        xt = np.zeros((num_frames, n), dtype=np.complex64)
        _numpy_sweeps(S, u_rows, v, rows, denom, eps, xt, int(iterations),
                      bool(enforce_real), bool(enforce_positive))
        x = np.ascontiguousarray(xt.T)
    return x[:, 0] if single else x
