"""Image-quality metrics for restored system-matrix components (DESIGN section 7).

All metrics compare one complex component ``x`` (restored) with its reference ``ref``
(ground truth) of the same shape, 2D ``(H, W)`` or 3D ``(D, H, W)``; singleton axes
(a 2D component stored as ``(1, Ny, Nx)``) are dropped first.

Normalisation: both ``x`` and ``ref`` are divided by the same number, the maximum
magnitude of ``ref``, so the reference has unit maximum magnitude and ``x`` stays on the
reference's scale (``x`` is *not* normalised by its own maximum: a restoration with the
wrong amplitude is penalised).  ``nrmse`` is scale-invariant and needs no normalisation.

Definitions pinned here (libraries disagree, see DESIGN section 7):

- PSNR = ``10 log10(1 / MSE)`` with peak 1 and ``MSE`` the mean squared error over the
  real and the imaginary parts of the normalised images (``mean(|x - ref|^2) / 2``).
- SSIM = mean of the SSIM of the real parts and the SSIM of the imaginary parts
  (Wang et al. 2004) as computed by :func:`skimage.metrics.structural_similarity` with
  a Gaussian window of sigma 1.5 (truncated at 3.5 sigma: an 11-tap window),
  population covariances (``use_sample_covariance=False``) and ``data_range=2`` (the
  parts of a unit-max image lie in ``[-1, 1]``); 2D or 3D following the component.
  This matches MONAI's SSIM.  Along axes shorter than 11 points the border crop uses
  the largest odd window that fits (the Gaussian weights are unchanged).
- nRMSE (TranSMS, eq. 25) = ``||x - ref||_F / ||ref||_F`` (a fraction; multiply by 100
  for the percentages TranSMS reports).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["mean_ci", "nrmse", "psnr", "ssim"]

SSIM_SIGMA = 1.5
SSIM_DATA_RANGE = 2.0
_SSIM_WINDOW = 11  # 2 * int(3.5 * 1.5 + 0.5) + 1, skimage's Gaussian window


def _pair(x: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squeezed, same-scale complex copies of ``x`` and ``ref`` (ref max magnitude 1)."""
    x = np.asarray(x)
    ref = np.asarray(ref)
    if x.shape != ref.shape:
        raise ValueError(f"shape mismatch: x {x.shape} vs ref {ref.shape}")
    peak = float(np.max(np.abs(ref))) if ref.size else 0.0
    if not np.isfinite(peak) or peak == 0.0:
        raise ValueError("reference is all zero (or not finite): cannot normalise to unit maximum")
    return (np.squeeze(x).astype(np.complex128) / peak,
            np.squeeze(ref).astype(np.complex128) / peak)


def psnr(x: np.ndarray, ref: np.ndarray) -> float:
    """PSNR in dB of ``x`` against ``ref`` after unit-max normalisation by ``ref``.

    ``inf`` when the images are identical.
    """
    xn, rn = _pair(x, ref)
    mse = float(np.mean(np.abs(xn - rn) ** 2)) / 2.0
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(1.0 / mse))


def ssim(x: np.ndarray, ref: np.ndarray) -> float:
    """Mean of the SSIMs of real and imaginary parts (pinned definition, module docstring)."""
    from skimage.metrics import structural_similarity

    xn, rn = _pair(x, ref)
    if xn.ndim not in (2, 3):
        raise ValueError(f"ssim needs a 2D or 3D component, got shape {np.shape(x)}")
    smallest = min(xn.shape)
    if smallest < 3:
        raise ValueError(f"ssim needs at least 3 points per axis, got shape {np.shape(x)}")
    win = min(_SSIM_WINDOW, smallest if smallest % 2 else smallest - 1)
    options = dict(gaussian_weights=True, sigma=SSIM_SIGMA, use_sample_covariance=False,
                   data_range=SSIM_DATA_RANGE, win_size=win)
    parts = [structural_similarity(xn.real, rn.real, **options),
             structural_similarity(xn.imag, rn.imag, **options)]
    return float(np.mean(parts))


def nrmse(x: np.ndarray, ref: np.ndarray) -> float:
    """Normalised root-mean-squared error ``||x - ref||_F / ||ref||_F`` (TranSMS eq. 25)."""
    xn, rn = _pair(x, ref)
    return float(np.linalg.norm(xn - rn) / np.linalg.norm(rn))


def mean_ci(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t confidence interval ``(mean, low, high)``.

    ``half = t_{(1 + level) / 2, n - 1} * s / sqrt(n)`` with ``s`` the sample standard
    deviation (ddof 1).  With a single value the interval is undefined: ``low`` and
    ``high`` are NaN.  Infinite values (e.g. PSNR of an exact restoration) make the mean
    infinite and the interval NaN.
    """
    from scipy import stats

    data = np.asarray(values, dtype=np.float64).ravel()
    if data.size == 0:
        raise ValueError("mean_ci needs at least one value")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    mean = float(np.mean(data))
    if data.size == 1 or not np.all(np.isfinite(data)):
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf((1.0 + level) / 2.0, data.size - 1)
                 * np.std(data, ddof=1) / np.sqrt(data.size))
    return mean, mean - half, mean + half
