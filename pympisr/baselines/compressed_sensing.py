"""Compressed-sensing (CS) recovery of system-matrix components (TranSMS IV-C 2).

Model: a fine component ``x`` (complex, ``(*batch, *grid)``) is sparse in the
orthonormal multidimensional DCT-II basis ``Psi`` (``scipy.fft.dctn(norm="ortho")``);
the calibration measures ``y = A x + n`` with a linear operator ``A`` of
:mod:`pympisr.operators` and complex white noise of per-part standard deviation
``sigma``. Knopp & Weber (2013, "Sparse reconstruction of the magnetic particle imaging
system matrix", IEEE TMI 32(8)) showed that SM rows are compressible in the DCT basis
and recovered them from a random subset of calibration positions; TranSMS (Guengoer et
al. 2022, section IV-C 2) uses the same idea with a Fourier basis and an ADMM solver as
its CS comparison. The DCT's even extension avoids the edge artefacts for which TranSMS
pads the FOV by 4 pixels, so no padding is done here.

Recovery solves the constrained (basis pursuit denoising) problem

    min_x ||Psi x||_1   subject to   ||A x - y||_2 <= eps,

``eps = tol * sqrt(2 m) * sigma`` with ``m`` measured complex samples (``2 m`` real
degrees of freedom, so ``E ||n||^2 = 2 m sigma^2``; DESIGN section 11's
``sqrt(m) sigma`` with ``sigma`` the complex std), by the alternating direction method
of multipliers (ADMM; Boyd et al. 2011, section 5 and 6) on the splitting
``z = Psi x`` (scaled dual ``u``, penalty ``rho``):

    x <- P_C(Psi^T (z - u))          (projection onto C = {x : ||A x - y|| <= eps})
    z <- soft(Psi x + u, 1 / rho)    (complex soft threshold of the magnitude)
    u <- u + Psi x - z

``P_C`` is closed form for every operator of :mod:`pympisr.operators` because
``A A^T`` is a multiple of the identity on the measured samples
(:meth:`pympisr.operators.LinearOperator.project`), and ``Psi`` is orthonormal, so each
iteration costs two DCTs. The returned ``x`` lies in ``C`` (the noise bound holds
exactly). TranSMS ran 1000 iterations; ``rho`` is set per component relative to the
largest DCT coefficient of the minimum-norm start ``A^+ y``.

:func:`random_sampling_mask` draws the random undersampling of calibration positions
(TranSMS' CS calibration: the same number of positions as the strided/low-resolution
scan, placed at random); use :class:`pympisr.operators.Masking` with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import fft

from ..operators import LinearOperator, Masking

__all__ = ["DEFAULT_ITERATIONS", "DEFAULT_THRESHOLD_FRACTION", "cs_recover",
           "measured_counts", "random_sampling_mask"]

DEFAULT_ITERATIONS = 300
# 1 / rho as a fraction of the largest |DCT coefficient| of the start A^+ y. It sets the
# speed, not the solution: on 10 simulated 44x44 components (sim2d_wide test item 1,
# random sampling 1/s^2) 300 iterations at 0.1 reach the nRMSE of 3000 iterations within
# 1e-3 at s = 2 and 4 (noiseless and sigma 0.06), while 0.01 is still 0.46 (s = 4) away;
# at s = 8 none has converged after 3000 iterations (nRMSE > 0.6: too few samples).
DEFAULT_THRESHOLD_FRACTION = 0.1


def random_sampling_mask(shape: Sequence[int], fraction: float,
                         rng: np.random.Generator) -> np.ndarray:
    """Bool mask of ``shape`` with ``max(1, round(fraction * N))`` True entries (measured
    positions) chosen uniformly at random without replacement."""
    shape = tuple(int(n) for n in shape)
    if not 0 < fraction <= 1:
        raise ValueError(f"sampling fraction must lie in (0, 1], got {fraction!r}")
    total = int(np.prod(shape))
    count = max(1, int(round(fraction * total)))
    mask = np.zeros(total, dtype=bool)
    mask[rng.choice(total, size=count, replace=False)] = True
    return mask.reshape(shape)


def measured_counts(operator: LinearOperator, fine_shape: Sequence[int],
                    batch: int) -> np.ndarray:
    """Measured complex samples ``m`` per image of a batch of ``batch`` images.

    A :class:`~pympisr.operators.Masking` with one mask per image counts each mask;
    other operators measure the same number in every image."""
    dims = operator.dims
    if isinstance(operator, Masking):
        mask = np.asarray(operator.mask, dtype=bool)
        mask = np.broadcast_to(mask, (batch, *tuple(fine_shape)[-dims:]))
        return mask.reshape(batch, -1).sum(axis=1).astype(np.float64)
    return np.full(batch, float(operator.measured_count(tuple(fine_shape))))


def _soft(c: np.ndarray, lam: np.ndarray) -> np.ndarray:
    magnitude = np.abs(c)
    return c * (np.maximum(magnitude - lam, 0.0) / np.where(magnitude > 0, magnitude, 1.0))


def cs_recover(y: np.ndarray, operator: LinearOperator, sigma: float | np.ndarray,
               fine_shape: Sequence[int], *, tol: float = 1.0,
               iterations: int = DEFAULT_ITERATIONS,
               threshold_fraction: float = DEFAULT_THRESHOLD_FRACTION) -> np.ndarray:
    """Recover fine components from measurements ``y`` (module docstring).

    Parameters
    ----------
    y
        Measurements ``(B, *grid_in)`` (complex), zero where a mask says "not measured".
    operator
        ``A`` acting on fine components of spatial shape ``fine_shape`` (its ``dims``
        trailing axes); a mask may hold one mask per image ``(B, *fine_shape)``.
    sigma
        Per-part noise standard deviation of ``y``, scalar or ``(B,)``, in ``y``'s units.
    fine_shape
        Spatial shape of the recovered components.
    tol
        Multiplies the noise bound ``sqrt(2 m) sigma``.
    iterations
        ADMM iterations.
    threshold_fraction
        ``1 / rho`` relative to the start's largest DCT coefficient magnitude.

    Returns
    -------
    complex64 ``(B, *fine_shape)`` (complex128 if ``y`` is complex128) with
    ``||A x - y|| <= tol sqrt(2 m) sigma`` for every image.
    """
    y = np.asarray(y)
    dims = operator.dims
    fine = tuple(int(n) for n in fine_shape)
    if len(fine) != dims:
        raise ValueError(f"fine_shape {fine} must have {dims} entries")
    if y.ndim != dims + 1:
        raise ValueError(f"measurements must be (B, *grid) with {dims} spatial axes, got "
                         f"shape {y.shape}")
    if iterations < 1 or not (tol >= 0 and threshold_fraction > 0):
        raise ValueError("iterations must be >= 1, tol >= 0 and threshold_fraction > 0")
    batch = y.shape[0]
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (batch,))
    if not np.all(np.isfinite(sig)) or np.any(sig < 0):
        raise ValueError("sigma must be finite and >= 0")
    axes = tuple(range(1, dims + 1))
    expand = (-1, *([1] * dims))
    data = y.astype(np.complex128)
    eps = (tol * np.sqrt(2.0 * measured_counts(operator, fine, batch)) * sig).reshape(expand)
    start = operator.adjoint(operator.gram_inverse(data))
    if start.shape[1:] != fine:
        raise ValueError(f"operator {operator!r} maps measurements {y.shape[1:]} to "
                         f"{start.shape[1:]}, not to fine_shape {fine}")
    x = operator.project(start, data, eps)
    z = fft.dctn(x, axes=axes, norm="ortho")
    peak = np.abs(z).reshape(batch, -1).max(axis=1)
    lam = (threshold_fraction * np.where(peak > 0, peak, 1.0)).reshape(expand)
    u = np.zeros_like(z)
    for _ in range(iterations):
        x = operator.project(fft.idctn(z - u, axes=axes, norm="ortho"), data, eps)
        coeffs = fft.dctn(x, axes=axes, norm="ortho")
        z = _soft(coeffs + u, lam)
        u += coeffs - z
    return x.astype(np.complex128 if y.dtype == np.complex128 else np.complex64)
