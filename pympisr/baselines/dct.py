"""DCT-F: denoising by DCT soft thresholding (Weber et al. 2015; seed paper 3.2).

For every complex frequency component, an orthonormal multidimensional discrete cosine
transform (DCT-II, ``scipy.fft.dctn(norm="ortho")``) is taken along the spatial axes;
each complex coefficient ``c`` is soft-thresholded by shrinking its magnitude by
``lam = threshold * sigma`` while keeping its phase,
``c -> c * max(|c| - lam, 0) / |c|``, and the inverse DCT gives the denoised component.
(``shrink="parts"`` instead soft-thresholds the real and imaginary parts separately.)
The orthonormal DCT maps white noise of standard deviation ``sigma`` per part to white
noise of the same level, so ``sigma`` is the noise level of the component itself.

Noise level ``sigma`` (std of the real and of the imaginary part of the noise), in
order of precedence:

1. given (non-blind, as the paper does for simulated data);
2. estimated from background frames, :func:`estimate_sigma_background` (the paper does
   this for measured data and scales the estimate heuristically by 0.3: pass
   ``background_scale``);
3. estimated from the data, :func:`estimate_sigma_mad`: the median absolute deviation
   of the highest-frequency DCT coefficients, where a smooth system-matrix component
   has almost no energy.

Threshold factor: ``DEFAULT_THRESHOLD`` was chosen by tuning on simulated components
(``python benchmarks/bench_dct_threshold.py``): see its value's comment.
"""

from __future__ import annotations

import numpy as np
from scipy import fft

__all__ = ["DEFAULT_THRESHOLD", "SURE_FACTORS", "dct_denoise", "dct_denoise_sure",
           "dct_divergence", "estimate_sigma_background", "estimate_sigma_mad"]

# Tuned with benchmarks/bench_dct_threshold.py on 300 components of 20 simulated 2D SMs
# (pympisr.simulation, seed 11), true sigma, unit-max ground truth, magnitude shrinkage.
# Mean PSNR (dB) for factors 1.5 / 1.75 / 2.0 / 2.5:
#   sigma 0.06: 31.29 / 31.48 / 31.33 / 30.53    sigma 0.10: 27.61 / 28.00 / 28.00 / 27.34
#   sigma 0.20: 22.56 / 23.28 / 23.55 / 23.16    sigma 0.30: 19.55 / 20.49 / 20.96 / 20.79
# 2.0 is best or within 0.15 dB of the best at every sigma (same on a Chebyshev surrogate,
# where 2.0 is best at 0.06-0.20).  "parts" shrinkage scores ~0.5 dB higher on these
# purely imaginary simulated components but ~0.6 dB lower once the phase is random
# (``--random-phase``), as for measured SMs; the phase-preserving rule is kept.
# 3D check (120 components of 3 SMs, grid <= 20, random phase): 2.0 is best at 0.10 and
# 0.20 (29.11, 24.61 dB), 0.0 dB behind 1.75 at 0.06 and 0.14 dB behind 2.5 at 0.30.
DEFAULT_THRESHOLD = 2.0

_MAD_TO_STD = 0.6744897501960817  # median of |N(0, 1)|


def _spatial_axes(dims: int) -> tuple[int, ...]:
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims!r}")
    return tuple(range(-dims, 0))


def _per_image(values: np.ndarray | float, lead: tuple[int, ...], dims: int,
               name: str) -> np.ndarray:
    """``values`` (scalar or batch-shaped) reshaped to broadcast against (*lead, *spatial)."""
    arr = np.asarray(values, dtype=np.float64)
    try:
        arr = np.broadcast_to(arr, lead)
    except ValueError:
        raise ValueError(f"{name} of shape {arr.shape} does not match the batch shape "
                         f"{lead} of the components") from None
    return arr.reshape(lead + (1,) * dims)


def estimate_sigma_mad(x: np.ndarray, dims: int = 2) -> np.ndarray:
    """Blind noise estimate per component from the highest-frequency DCT coefficients.

    Takes the coefficients whose index is in the upper half along every spatial axis
    of length > 1 (the finest-scale corner of the DCT), and returns
    ``median(|part|) / 0.6745`` over their real and imaginary parts: the MAD estimator
    of a Gaussian standard deviation, robust to the few signal coefficients there.

    Returns an array of shape ``x.shape[:-dims]`` (the batch axes).
    """
    axes = _spatial_axes(dims)
    x = np.asarray(x)
    coeffs = fft.dctn(x, axes=axes, norm="ortho")
    corner = tuple(slice(n // 2, None) if n > 1 else slice(None) for n in x.shape[-dims:])
    high = coeffs[(Ellipsis, *corner)]
    flat = high.reshape(*x.shape[:-dims], -1)
    parts = np.concatenate([flat.real, flat.imag], axis=-1)
    return np.median(np.abs(parts), axis=-1) / _MAD_TO_STD


def estimate_sigma_background(background: np.ndarray, *, scale: float = 1.0) -> np.ndarray:
    """Noise level from ``E`` background frames of each component.

    ``background`` is complex ``(E, *batch)``: for each component (channel and
    frequency), its value in ``E`` empty-scanner frames measured like the calibration
    positions (e.g. ``SystemMatrix.background`` ``(E, C, K)``).  Returns
    ``scale * sqrt((var(real) + var(imag)) / 2)`` over the frames (ddof 1), shape
    ``batch``.  The seed paper scales this estimate by 0.3 for measured data.
    """
    bg = np.asarray(background)
    if bg.ndim < 1 or bg.shape[0] < 2:
        raise ValueError(f"background needs at least 2 frames along axis 0, got shape {bg.shape}")
    var = (np.var(bg.real, axis=0, ddof=1) + np.var(bg.imag, axis=0, ddof=1)) / 2.0
    return scale * np.sqrt(var)


def dct_denoise(x: np.ndarray, sigma: float | np.ndarray | None = None, *,
                threshold: float = DEFAULT_THRESHOLD, background: np.ndarray | None = None,
                background_scale: float = 1.0, dims: int = 2,
                shrink: str = "magnitude") -> np.ndarray:
    """Denoise complex components with DCT-F.

    Parameters
    ----------
    x
        Complex components ``(*batch, H, W)`` (``dims=2``) or ``(*batch, D, H, W)``
        (``dims=3``), any units.
    sigma
        Noise standard deviation of the real and of the imaginary part, in the units of
        ``x``: a scalar or one value per component (shape ``batch``).  ``None``: from
        ``background`` if given, else :func:`estimate_sigma_mad`.
    threshold
        Soft threshold in units of ``sigma`` (``lam = threshold * sigma``).
    background
        Background frames ``(E, *batch)`` for :func:`estimate_sigma_background` (used
        only when ``sigma`` is None), scaled by ``background_scale``.
    dims
        Number of trailing spatial axes.  A 2D component stored as ``(1, Ny, Nx)`` may
        also be treated with ``dims=3`` (a length-1 DCT is the identity).
    shrink
        ``"magnitude"`` (paper: shrink ``|c|``, keep the phase) or ``"parts"`` (soft
        threshold real and imaginary parts separately).

    Returns
    -------
    Denoised components, same shape; complex64 if ``x`` is complex64, else complex128.
    """
    axes = _spatial_axes(dims)
    x = np.asarray(x)
    if x.ndim < dims:
        raise ValueError(f"components of shape {x.shape} have fewer than dims={dims} axes")
    if shrink not in ("magnitude", "parts"):
        raise ValueError(f"shrink must be 'magnitude' or 'parts', got {shrink!r}")
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold!r}")
    lead = x.shape[:-dims]
    if sigma is None:
        sigma = (estimate_sigma_background(background, scale=background_scale)
                 if background is not None else estimate_sigma_mad(x, dims))
    sig = _per_image(sigma, lead, dims, "sigma")
    if np.any(sig < 0) or not np.all(np.isfinite(sig)):
        raise ValueError("sigma must be finite and >= 0")
    lam = threshold * sig
    coeffs = fft.dctn(x.astype(np.complex128), axes=axes, norm="ortho")
    if shrink == "magnitude":
        magnitude = np.abs(coeffs)
        gain = np.maximum(magnitude - lam, 0.0) / np.where(magnitude > 0, magnitude, 1.0)
        coeffs = coeffs * gain
    else:
        coeffs = (np.sign(coeffs.real) * np.maximum(np.abs(coeffs.real) - lam, 0.0)
                  + 1j * np.sign(coeffs.imag) * np.maximum(np.abs(coeffs.imag) - lam, 0.0))
    out = fft.idctn(coeffs, axes=axes, norm="ortho")
    return out.astype(np.complex64 if x.dtype == np.complex64 else np.complex128)


def dct_divergence(x: np.ndarray, sigma: float | np.ndarray, *,
                   threshold: float = DEFAULT_THRESHOLD, dims: int = 2) -> np.ndarray:
    """Divergence of :func:`dct_denoise` (magnitude shrinkage) at ``x``, per component.

    The divergence over the ``2 N`` real degrees of freedom (real and imaginary part of
    ``N`` samples) is what Stein's unbiased risk estimate needs (Stein 1981; for
    thresholding in an orthonormal basis, Donoho & Johnstone 1995). The orthonormal DCT
    leaves it unchanged, and the phase-preserving shrinkage
    ``c -> c (1 - lam / |c|)`` of one complex coefficient has divergence
    ``2 - lam / |c|`` in the plane when ``|c| > lam`` and 0 otherwise, so
    ``div = sum_{|c| > lam} (2 - lam / |c|)``. Returns float64 of the batch shape.
    """
    axes = _spatial_axes(dims)
    x = np.asarray(x)
    lead = x.shape[:-dims]
    lam = threshold * _per_image(sigma, lead, dims, "sigma")
    magnitude = np.abs(fft.dctn(x.astype(np.complex128), axes=axes, norm="ortho"))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(magnitude > lam, 2.0 - lam / np.where(magnitude > 0, magnitude, 1.0),
                         0.0)
    return terms.sum(axis=axes)


SURE_FACTORS = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.5)


def dct_denoise_sure(x: np.ndarray, sigma: float | np.ndarray, *,
                     factors: tuple[float, ...] = SURE_FACTORS, dims: int = 2
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DCT-F with the threshold factor chosen per component by SURE (SureShrink-style,
    Donoho & Johnstone 1995).

    In the orthonormal DCT, magnitude soft thresholding at ``lam`` changes each
    coefficient by ``min(|c|, lam)``, so Stein's unbiased risk estimate of the squared
    error is ``sum min(|c|, lam)^2 - 2 N sigma^2 + 2 sigma^2 div`` with ``div`` of
    :func:`dct_divergence`; it needs no ground truth. The factor minimising it among
    ``factors`` (in units of ``sigma``) is used for each component.

    Returns the denoised components (dtype as :func:`dct_denoise`), the divergence of
    the chosen rule and the chosen factor (both of the batch shape).
    """
    axes = _spatial_axes(dims)
    x = np.asarray(x)
    lead = x.shape[:-dims]
    sig = _per_image(sigma, lead, dims, "sigma")
    coeffs = fft.dctn(x.astype(np.complex128), axes=axes, norm="ortho")
    magnitude = np.abs(coeffs)
    safe = np.where(magnitude > 0, magnitude, 1.0)
    risks, divs = [], []
    for factor in factors:
        lam = factor * sig
        above = magnitude > lam
        div = np.where(above, 2.0 - lam / safe, 0.0).sum(axis=axes)
        change = (np.minimum(magnitude, lam) ** 2).sum(axis=axes)
        risks.append(change + 2 * sig.reshape(lead) ** 2 * div)
        divs.append(div)
    best = np.argmin(np.stack(risks), axis=0)
    chosen = np.asarray(factors)[best]
    lam = _per_image(chosen, lead, dims, "factor") * sig
    gain = np.maximum(magnitude - lam, 0.0) / safe
    out = fft.idctn(coeffs * gain, axes=axes, norm="ortho")
    div = np.take_along_axis(np.stack(divs), best[None], axis=0)[0]
    return (out.astype(np.complex64 if x.dtype == np.complex64 else np.complex128), div,
            chosen)
