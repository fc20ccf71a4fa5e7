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

* ``"numba"`` (numba is a core dependency): one compiled call runs all sweeps
  and projections. Rows are taken in pairs ``(a, b)`` (rows ``2k``, ``2k+1``): with the
  pair product ``g = b . conj(a)``, the second row's product after the first row's
  update is ``b . (x + alpha_a conj(a)) = b . x + alpha_a g`` (exact algebra, no
  change to the row-action order), so both ``alpha`` follow from products taken
  before the pair's update. One loop over the columns then applies both updates and
  computes the next pair's two products with the updated ``x``: ``S`` is read once per
  sweep, ``x`` is read and written once per two rows, and the serial dependency
  between rows (reduction, ``alpha``) occurs once per pair. Row energies and pair
  products come from one extra pass over ``S`` when ``lambda_eff`` needs
  ``||S||_F^2`` (``normalize_reg`` with ``lambd > 0``); otherwise they are accumulated
  during the first sweep, each just before it is needed, and the extra pass is
  saved. ``x`` is kept as separate real and imaginary float32 planes, ``S`` is read
  through a float32 view of its interleaved storage (no copy, never ``S.conj()``),
  accumulation is in float32 with ``fastmath`` (vectorised partial sums), as in
  RegularizedLeastSquares' SIMD kernels. Single-threaded on purpose: every row depends
  on the previous one, and a prototype that split each row over 2 threads (one numba
  parallel region per row) was 2x slower on 2000 x 50000. (Copying ``S`` into split
  real/imaginary planes to avoid the de-interleaving shuffles was tried too: on an
  800 x 1936 problem the copy cost as much as the 3 sweeps saved.)
* ``"numpy"``: the same row loop with BLAS dot products and buffered numpy updates
  (iterating ``conj(x)`` for one frame), without temporaries of the size of ``S``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..errors import InvalidInputError

__all__ = ["available_engines", "kaczmarz"]

# Column block length (elements) for several right-hand sides: keeps the four row
# slices and the x slices of all frames in the L1/L2 cache.
_MULTI_FRAME_BLOCK = 2048

try:  # numba is a core dependency; the numpy engine covers environments without it
    import numba
except ImportError:  # pragma: no cover - exercised where numba is missing
    numba = None

if numba is not None:
    _jit = functools.partial(numba.njit, fastmath=True, boundscheck=False, cache=True,
                             nogil=True)

    @_jit
    def _pair_update_dot(a0: np.ndarray, a1: np.ndarray, c0: np.ndarray, c1: np.ndarray,
                         xr: np.ndarray, xi: np.ndarray, al0r: float, al0i: float,
                         al1r: float, al1i: float) -> tuple[float, float, float, float]:
        """``x += alpha0 conj(a0) + alpha1 conj(a1)`` fused with ``c0 . x`` and ``c1 . x``.

        Rows are interleaved float32 (``2 N``), ``x`` is split into float32 planes
        ``xr``, ``xi`` (``N``). Returns real and imaginary parts of ``c0 . x`` and
        ``c1 . x`` for the updated ``x``.
        """
        s0r = np.float32(0.0)
        s0i = np.float32(0.0)
        s1r = np.float32(0.0)
        s1i = np.float32(0.0)
        for j in range(xr.size):
            p = a0[2 * j]
            q = a0[2 * j + 1]
            g = a1[2 * j]
            h = a1[2 * j + 1]
            vr = xr[j] + al0r * p + al0i * q + al1r * g + al1i * h
            vi = xi[j] + al0i * p - al0r * q + al1i * g - al1r * h
            xr[j] = vr
            xi[j] = vi
            p = c0[2 * j]
            q = c0[2 * j + 1]
            s0r += p * vr - q * vi
            s0i += p * vi + q * vr
            g = c1[2 * j]
            h = c1[2 * j + 1]
            s1r += g * vr - h * vi
            s1i += g * vi + h * vr
        return s0r, s0i, s1r, s1i

    @_jit
    def _pair_update_dot_stats(a0: np.ndarray, a1: np.ndarray, c0: np.ndarray,
                               c1: np.ndarray, xr: np.ndarray, xi: np.ndarray, al0r: float,
                               al0i: float, al1r: float, al1i: float) -> tuple:
        """:func:`_pair_update_dot` that also returns ``|c0|^2``, ``|c1|^2`` and the real
        and imaginary parts of ``c1 . conj(c0)`` (row statistics taken on the way).

        A separate loop (used in the first sweep only) so that the other sweeps do not
        carry the four extra accumulators.
        """
        s0r = np.float32(0.0)
        s0i = np.float32(0.0)
        s1r = np.float32(0.0)
        s1i = np.float32(0.0)
        e0 = np.float32(0.0)
        e1 = np.float32(0.0)
        gr = np.float32(0.0)
        gi = np.float32(0.0)
        for j in range(xr.size):
            p = a0[2 * j]
            q = a0[2 * j + 1]
            g = a1[2 * j]
            h = a1[2 * j + 1]
            vr = xr[j] + al0r * p + al0i * q + al1r * g + al1i * h
            vi = xi[j] + al0i * p - al0r * q + al1i * g - al1r * h
            xr[j] = vr
            xi[j] = vi
            p = c0[2 * j]
            q = c0[2 * j + 1]
            s0r += p * vr - q * vi
            s0i += p * vi + q * vr
            g = c1[2 * j]
            h = c1[2 * j + 1]
            s1r += g * vr - h * vi
            s1i += g * vi + h * vr
            e0 += p * p + q * q
            e1 += g * g + h * h
            gr += g * p + h * q
            gi += h * p - g * q
        return s0r, s0i, s1r, s1i, e0, e1, gr, gi

    @_jit
    def _pair_pass(sf: np.ndarray, r0: int, r1: int, n0: int, n1: int, xr: np.ndarray,
                   xi: np.ndarray, alpha0: np.ndarray, alpha1: np.ndarray,
                   tau0: np.ndarray, tau1: np.ndarray, block: int, energy: np.ndarray,
                   gram: np.ndarray, with_stats: bool) -> None:
        """Add ``alpha0 conj(a_r0) + alpha1 conj(a_r1)`` to every frame's ``x`` and set
        ``tau0 = a_n0 . x``, ``tau1 = a_n1 . x`` (per frame), in column blocks.

        With ``with_stats`` the energies of rows ``n0``, ``n1`` and, when they form pair
        ``b`` (``n0 = 2 b``, ``n1 = n0 + 1``), ``gram[b]`` are stored on the way.
        """
        num_frames, n = xr.shape
        tau0[:] = 0.0
        tau1[:] = 0.0
        e0 = 0.0
        e1 = 0.0
        g = 0j
        for lo in range(0, n, block):
            hi = min(n, lo + block)
            a0 = sf[r0, 2 * lo:2 * hi]
            a1 = sf[r1, 2 * lo:2 * hi]
            c0 = sf[n0, 2 * lo:2 * hi]
            c1 = sf[n1, 2 * lo:2 * hi]
            for f in range(num_frames):
                al0r = np.float32(alpha0[f].real)
                al0i = np.float32(alpha0[f].imag)
                al1r = np.float32(alpha1[f].real)
                al1i = np.float32(alpha1[f].imag)
                if with_stats and f == 0:
                    p, q, t, h, d0, d1, dr, di = _pair_update_dot_stats(
                        a0, a1, c0, c1, xr[f, lo:hi], xi[f, lo:hi], al0r, al0i, al1r, al1i)
                    e0 += d0
                    e1 += d1
                    g += complex(dr, di)
                else:
                    p, q, t, h = _pair_update_dot(
                        a0, a1, c0, c1, xr[f, lo:hi], xi[f, lo:hi], al0r, al0i, al1r, al1i)
                tau0[f] += complex(p, q)
                tau1[f] += complex(t, h)
        if with_stats:
            energy[n0] = e0
            energy[n1] = e1
            if n1 == n0 + 1 and n0 % 2 == 0:
                gram[n0 // 2] = g

    @_jit
    def _coefficients(e: float, w: float, lam: float) -> tuple[float, float]:
        """``(d_i, e_i)`` of the module docstring; ``(0, 0)`` for a row to skip."""
        s2 = e * w * w
        if s2 > 0.0:
            return w * w / (s2 + lam), np.sqrt(lam) / w
        return 0.0, 0.0

    @_jit
    def _sweeps(sf: np.ndarray, energy: np.ndarray, gram: np.ndarray, stats_known: bool,
                u: np.ndarray, v: np.ndarray, w: np.ndarray, lam: float, xr: np.ndarray,
                xi: np.ndarray, iterations: int, enforce_real: bool,
                enforce_positive: bool, block: int) -> None:
        """``iterations`` sweeps over all ``M >= 1`` rows of ``S``, two rows per pass.

        ``sf``: ``S.view(np.float32)`` ``(M, 2 N)``; ``energy`` ``(M,)``, ``gram``
        ``(ceil(M/2),)``: as from :func:`_energies_and_gram` when ``stats_known``, else
        filled during the first sweep, each row's just before it is needed (saves a
        pass over ``S``); ``u``, ``v``: ``(M, F)`` complex128; ``w``: ``(M,)`` row
        weights; ``lam``: effective lambda; ``xr``, ``xi``: ``(F, N)`` float32, updated
        in place. Rows ``2 b`` and ``2 b + 1`` form pair ``b``: with
        ``gram[b] = a_{2b+1} . conj(a_{2b})`` the second row's product with ``x`` after
        the first row's update is ``a_{2b+1} . x + alpha_{2b} gram[b]``, so one pass over
        the columns applies both updates and computes the next pair's products. An odd
        last row is paired with itself with ``alpha_1 = 0``; a row to skip gets
        ``alpha = 0``.
        """
        num_frames, n = xr.shape
        m = w.size
        tau0 = np.zeros(num_frames, dtype=np.complex128)
        tau1 = np.zeros(num_frames, dtype=np.complex128)
        alpha0 = np.zeros(num_frames, dtype=np.complex128)
        alpha1 = np.zeros(num_frames, dtype=np.complex128)
        for sweep in range(iterations):
            with_stats = sweep == 0 and not stats_known
            alpha0[:] = 0.0
            alpha1[:] = 0.0
            _pair_pass(sf, 0, 0, 0, min(1, m - 1), xr, xi, alpha0, alpha1, tau0, tau1,
                       block, energy, gram, with_stats)
            for b in range((m + 1) // 2):
                r0 = 2 * b
                r1 = min(r0 + 1, m - 1)
                d0, h0 = _coefficients(energy[r0], w[r0], lam)
                d1, h1 = _coefficients(energy[r1], w[r1], lam)
                for f in range(num_frames):
                    a0 = d0 * (u[r0, f] - tau0[f] - h0 * v[r0, f])
                    v[r0, f] += a0 * h0
                    alpha0[f] = a0
                    if r1 > r0:
                        t1 = tau1[f] + a0 * gram[b]
                        a1 = d1 * (u[r1, f] - t1 - h1 * v[r1, f])
                        v[r1, f] += a1 * h1
                        alpha1[f] = a1
                    else:
                        alpha1[f] = 0.0
                _pair_pass(sf, r0, r1, min(r0 + 2, m - 1), min(r0 + 3, m - 1), xr, xi,
                           alpha0, alpha1, tau0, tau1, block, energy, gram, with_stats)
            for f in range(num_frames):
                if enforce_real:
                    xi[f, :] = 0.0
                if enforce_positive:
                    for j in range(n):
                        if xr[f, j] < 0.0:
                            xr[f, j] = 0.0

    @_jit
    def _energies_and_gram(sf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row energies ``|a_i|^2`` ``(M,)`` and pair products
        ``gram[b] = a_{2b+1} . conj(a_{2b})`` ``(ceil(M/2),)`` (0 for an odd last row)
        of ``S`` given as ``sf = S.view(np.float32)``; one read of ``S``. Accumulation in
        float32 (vectorised partial sums, like the sweep kernel's products)."""
        m = sf.shape[0]
        n = sf.shape[1] // 2
        energy = np.zeros(m, dtype=np.float64)
        gram = np.zeros((m + 1) // 2, dtype=np.complex128)
        for b in range((m + 1) // 2):
            r0 = 2 * b
            r1 = min(r0 + 1, m - 1)
            a0 = sf[r0]
            a1 = sf[r1]
            e0 = np.float32(0.0)
            e1 = np.float32(0.0)
            gr = np.float32(0.0)
            gi = np.float32(0.0)
            for j in range(n):
                p = a0[2 * j]
                q = a0[2 * j + 1]
                g = a1[2 * j]
                h = a1[2 * j + 1]
                e0 += p * p + q * q
                e1 += g * g + h * h
                gr += g * p + h * q
                gi += h * p - g * q
            energy[r0] = e0
            energy[r1] = e1
            if r1 > r0:
                gram[b] = complex(gr, gi)
        return energy, gram


def _numba_kernel() -> Any:
    """The compiled sweep kernel, or None when numba is not installed."""
    return None if numba is None else _sweeps


def available_engines() -> list[str]:
    """Engines usable in this environment, fastest first."""
    return (["numba"] if _numba_kernel() is not None else []) + ["numpy"]


def _row_energies(S: np.ndarray) -> np.ndarray:
    """``|a_i|^2`` per row as float64 ``(M,)`` (one read of ``S``, no temporaries)."""
    if numba is not None:
        return _energies_and_gram(S.view(np.float32))[0]
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
        raise InvalidInputError(f"weights must have one entry per row ({m}), got {w.size}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InvalidInputError("weights must be finite and non-negative")
    return w


def _zeros(n: int, num_frames: int, single: bool) -> np.ndarray:
    """The all-zero solution in the output shape of :func:`kaczmarz`."""
    x = np.zeros((n, num_frames), dtype=np.complex64)
    return x[:, 0] if single else x


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
        raise InvalidInputError(f"S must be a 2-D (M, N) matrix, got shape {S.shape}")
    if S.dtype != np.complex64 or not S.flags.c_contiguous:
        S = np.ascontiguousarray(S, dtype=np.complex64)
    m, n = S.shape
    u = np.asarray(u)
    single = u.ndim == 1
    u2 = u.reshape(-1, 1) if single else u
    if u2.ndim != 2 or u2.shape[0] != m:
        raise InvalidInputError(f"u must be (M,) or (M, F) with M = {m} rows, got shape "
                                f"{u.shape}")
    if iterations < 0:
        raise InvalidInputError(f"iterations must be >= 0, got {iterations}")
    if not np.isfinite(lambd) or lambd < 0:
        raise InvalidInputError(f"lambd must be finite and >= 0, got {lambd}")
    if engine == "auto":
        engine = available_engines()[0]
    if engine not in ("numba", "numpy"):
        raise InvalidInputError(f"engine must be 'auto', 'numba' or 'numpy', got {engine!r}")
    kernel = _numba_kernel() if engine == "numba" else None
    if engine == "numba" and kernel is None:
        raise ImportError("engine='numba' needs numba: pip install numba")

    num_frames = u2.shape[1]
    w = np.ones(m) if weights is None else _weights(weights, m)
    if iterations == 0 or m == 0 or n == 0:
        return _zeros(n, num_frames, single)
    u_rows = np.ascontiguousarray(u2, dtype=np.complex128)
    v = np.zeros_like(u_rows)
    # lambda_eff needs ||S||_F^2 before the first row only when it is normalised
    stats_known = kernel is None or (normalize_reg and lambd > 0)
    if kernel is None:
        energy = _row_energies(S)
        gram = None
    elif stats_known:
        energy, gram = _energies_and_gram(S.view(np.float32))
    else:
        energy = np.zeros(m)
        gram = np.zeros((m + 1) // 2, dtype=np.complex128)
    if stats_known and not np.any(energy * w**2 > 0):
        return _zeros(n, num_frames, single)
    lam = float(lambd) * (float(energy.sum()) / n if normalize_reg else 1.0)

    if kernel is not None:
        xr = np.zeros((num_frames, n), dtype=np.float32)
        xi = np.zeros((num_frames, n), dtype=np.float32)
        block = n if num_frames == 1 else _MULTI_FRAME_BLOCK
        kernel(S.view(np.float32), energy, gram, bool(stats_known), u_rows, v, w, lam,
               xr, xi, int(iterations), bool(enforce_real), bool(enforce_positive),
               int(block))
        x = np.empty((n, num_frames), dtype=np.complex64)
        x.real = xr.T
        x.imag = xi.T
    else:
        s2 = energy * w**2
        rows = np.flatnonzero(s2 > 0)
        denom = w[rows] ** 2 / (s2[rows] + lam)
        eps = np.sqrt(lam) / w[rows]
        xt = np.zeros((num_frames, n), dtype=np.complex64)
        _numpy_sweeps(S, u_rows, v, rows, denom, eps, xt, int(iterations),
                      bool(enforce_real), bool(enforce_positive))
        x = np.ascontiguousarray(xt.T)
    return x[:, 0] if single else x
