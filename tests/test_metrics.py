"""Metrics against hand-computed values and direct library calls."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from pympisr.metrics import mean_ci, nrmse, psnr, ssim


def test_psnr_of_known_mse() -> None:
    ref = np.zeros((8, 8), np.complex64)
    ref[0, 0] = 2.0  # max magnitude 2 -> everything is divided by 2
    x = ref + 0.2 * (1 + 1j)  # normalised error 0.1 + 0.1j everywhere
    # MSE over real and imaginary parts of the normalised images: 0.1^2 = 0.01
    assert psnr(x, ref) == pytest.approx(20.0)
    y = ref.copy()
    y[3, 4] += 2.0 * 0.5j  # one normalised error of 0.5 in one part over 2 * 64 values
    assert psnr(y, ref) == pytest.approx(10 * np.log10(128 / 0.25))
    assert psnr(ref, ref) == float("inf")


def test_psnr_scale_follows_reference() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((10, 12)) + 1j * rng.standard_normal((10, 12))
    x = ref + 0.05 * rng.standard_normal((10, 12))
    assert psnr(7 * x, 7 * ref) == pytest.approx(psnr(x, ref))
    assert psnr(2 * ref, ref) < psnr(x, ref)  # wrong amplitude is penalised


def test_ssim_identical_is_one_and_matches_skimage_2d() -> None:
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((24, 20)) + 1j * rng.standard_normal((24, 20))
    assert ssim(ref, ref) == pytest.approx(1.0)
    x = ref + 0.3 * (rng.standard_normal(ref.shape) + 1j * rng.standard_normal(ref.shape))
    peak = np.abs(ref).max()
    opts = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=2.0)
    expected = 0.5 * (structural_similarity(x.real / peak, ref.real / peak, **opts)
                      + structural_similarity(x.imag / peak, ref.imag / peak, **opts))
    assert ssim(x, ref) == pytest.approx(expected, rel=1e-9)
    assert ssim(x, ref) < 0.95
    # a 2D component stored as (1, Ny, Nx) is scored as 2D
    assert ssim(x[None], ref[None]) == pytest.approx(expected, rel=1e-9)


def test_ssim_3d_matches_skimage() -> None:
    rng = np.random.default_rng(2)
    ref = rng.standard_normal((13, 14, 15)) + 1j * rng.standard_normal((13, 14, 15))
    x = ref + 0.2 * rng.standard_normal(ref.shape)
    peak = np.abs(ref).max()
    opts = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=2.0)
    expected = 0.5 * (structural_similarity(x.real / peak, ref.real / peak, **opts)
                      + structural_similarity(x.imag / peak, ref.imag / peak, **opts))
    assert ssim(x, ref) == pytest.approx(expected, rel=1e-9)


def test_ssim_small_grid_and_errors() -> None:
    rng = np.random.default_rng(3)
    ref = rng.standard_normal((9, 7)) + 0j
    assert ssim(ref, ref) == pytest.approx(1.0)
    assert ssim(ref + 0.5, ref) < 1.0
    with pytest.raises(ValueError, match="shape mismatch"):
        ssim(ref, ref[:5])
    with pytest.raises(ValueError, match="all zero"):
        psnr(ref, np.zeros_like(ref))


def test_nrmse_hand_computed() -> None:
    ref = np.array([[3.0, 4.0]], np.complex64)  # ||ref|| = 5
    x = np.array([[3.0, 4.0 + 1.0j]], np.complex64)  # ||x - ref|| = 1
    assert nrmse(x, ref) == pytest.approx(0.2)
    assert nrmse(ref, ref) == 0.0


def test_mean_ci_known_values() -> None:
    mean, low, high = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    # s = sqrt(2.5), t_{0.975, 4} = 2.7764451051977987
    half = 2.7764451051977987 * np.sqrt(2.5) / np.sqrt(5)
    assert mean == pytest.approx(3.0)
    assert (low, high) == pytest.approx((3.0 - half, 3.0 + half))
    m90, l90, h90 = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0], level=0.9)
    assert h90 - l90 < high - low
    single = mean_ci([7.0])
    assert single[0] == 7.0 and np.isnan(single[1]) and np.isnan(single[2])
    with pytest.raises(ValueError):
        mean_ci([])


def test_mean_ci_coverage() -> None:
    """About 95% of intervals from N(0, 1) samples of 10 contain 0."""
    rng = np.random.default_rng(4)
    hits = sum(low <= 0.0 <= high for _, low, high in
               (mean_ci(rng.standard_normal(10)) for _ in range(2000)))
    assert 0.93 < hits / 2000 < 0.97
