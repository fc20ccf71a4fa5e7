"""Classical baselines: DCT-F denoising, spline upsampling, biharmonic inpainting."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.interpolate import RegularGridInterpolator

from pympisr.baselines import (dct_denoise, estimate_sigma_background, estimate_sigma_mad,
                               inpaint_biharmonic, interpolate_upsample)
from pympisr.degradations import AdditiveGaussianNoise, Downsample, InpaintingMask


def smooth_field(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A smooth complex test component with unit maximum magnitude."""
    rng = np.random.default_rng(seed)
    axes = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    radius2 = sum(a**2 for a in axes)
    phase = sum(rng.uniform(-2, 2) * a for a in axes)
    field = np.exp(-2.5 * radius2) * np.cos(3 * axes[-1]) * np.exp(1j * phase)
    return (field / np.abs(field).max()).astype(np.complex64)


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.abs(a - b) ** 2)))


@pytest.mark.parametrize("dims, shape", [(2, (40, 36)), (3, (16, 18, 20))])
@pytest.mark.parametrize("shrink", ["magnitude", "parts"])
def test_dct_denoise_reduces_error(dims: int, shape: tuple[int, ...], shrink: str) -> None:
    clean = np.stack([smooth_field(shape, s) for s in range(3)])
    noisy = AdditiveGaussianNoise(0.1)(clean, np.random.default_rng(0))
    out = dct_denoise(noisy, 0.1, dims=dims, shrink=shrink)
    assert out.shape == clean.shape and out.dtype == np.complex64
    assert rmse(out, clean) < 0.5 * rmse(noisy, clean)


def test_dct_zero_sigma_is_identity_and_per_component_sigma() -> None:
    clean = np.stack([smooth_field((20, 20), s) for s in range(2)])
    np.testing.assert_allclose(dct_denoise(clean, 0.0), clean, atol=1e-6)
    noisy = clean.copy()
    noisy[1] = AdditiveGaussianNoise(0.2)(clean[1], np.random.default_rng(1))
    out = dct_denoise(noisy, np.array([0.0, 0.2]))
    np.testing.assert_allclose(out[0], clean[0], atol=1e-6)
    assert rmse(out[1], clean[1]) < 0.6 * rmse(noisy[1], clean[1])
    with pytest.raises(ValueError, match="batch shape"):
        dct_denoise(noisy, np.array([0.1, 0.1, 0.1]))


def test_sigma_estimates() -> None:
    clean = np.stack([smooth_field((48, 48), s) for s in range(4)])
    noisy = AdditiveGaussianNoise(0.08)(clean, np.random.default_rng(2))
    np.testing.assert_allclose(estimate_sigma_mad(noisy), 0.08, rtol=0.15)
    rng = np.random.default_rng(3)
    background = AdditiveGaussianNoise(np.array([0.05, 0.2]))(np.zeros((500, 2)), rng)
    np.testing.assert_allclose(estimate_sigma_background(background), [0.05, 0.2], rtol=0.1)
    np.testing.assert_allclose(estimate_sigma_background(background, scale=0.3),
                               [0.015, 0.06], rtol=0.1)
    # blind and background-driven denoising both help
    bg = AdditiveGaussianNoise(0.08)(np.zeros((200, 4)), rng)
    assert rmse(dct_denoise(noisy), clean) < 0.5 * rmse(noisy, clean)
    assert rmse(dct_denoise(noisy, background=bg), clean) < 0.5 * rmse(noisy, clean)


def test_upsample_odd_grid_exact_at_coarse_points() -> None:
    fine = smooth_field((25, 21))
    coarse = Downsample(2, 2)(fine)
    assert coarse.shape == (13, 11)
    up = interpolate_upsample(coarse, 2, dims=2)
    assert up.shape == (25, 21) and up.dtype == np.complex64
    np.testing.assert_allclose(up[::2, ::2], coarse, atol=1e-6)
    assert rmse(up, fine) < 0.02
    # the same interpolant as RegularGridInterpolator(method="cubic") on the coarse grid
    rgi = RegularGridInterpolator((np.arange(0, 25, 2.0), np.arange(0, 21, 2.0)),
                                  coarse.astype(np.complex128), method="cubic")
    points = np.stack(np.meshgrid(np.arange(25.0), np.arange(21.0), indexing="ij"), -1)
    np.testing.assert_allclose(up, rgi(points), atol=1e-4)


def test_upsample_3d_batch_target_shape_and_mean_mode() -> None:
    fine = np.stack([smooth_field((14, 16, 18), s) for s in range(2)])
    coarse = Downsample(2, 3)(fine)
    up = interpolate_upsample(coarse, 2, dims=3, target_shape=(14, 16, 18))
    assert up.shape == fine.shape
    np.testing.assert_allclose(up[:, ::2, ::2, ::2], coarse, atol=1e-6)
    assert rmse(up, fine) < 0.5 * rmse(np.repeat(np.repeat(np.repeat(coarse, 2, 1), 2, 2), 2, 3)
                                       [:, :14, :16, :18], fine)
    mean = Downsample(2, 3, "mean")(fine)
    up_mean = interpolate_upsample(mean, 2, dims=3, mode="mean")
    assert up_mean.shape == fine.shape
    assert rmse(up_mean, fine) < 0.05
    with pytest.raises(ValueError, match="coarse grid"):
        interpolate_upsample(coarse, 2, dims=3, target_shape=(20, 16, 18))


def test_upsample_tiny_axis() -> None:
    coarse = np.array([[1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0]])  # 2 rows: linear in y
    up = interpolate_upsample(coarse, 2, dims=2)
    assert up.shape == (3, 7)
    np.testing.assert_allclose(up[1, ::2], [2.0, 3.0, 4.0, 5.0])


@pytest.mark.parametrize("shape", [(30, 28), (14, 12, 16)])
def test_biharmonic_fills_smooth_field(shape: tuple[int, ...]) -> None:
    clean = np.stack([smooth_field(shape, s) for s in range(2)])
    rng = np.random.default_rng(0)
    op = InpaintingMask(0.1, len(shape))
    masks = np.stack([op.sample(shape, rng) for _ in range(2)])
    corrupted = op(clean, rng, mask=masks)
    out = inpaint_biharmonic(corrupted, masks, dims=len(shape))
    assert out.shape == clean.shape and out.dtype == np.complex64
    np.testing.assert_array_equal(out[masks], clean[masks])  # valid samples kept
    missing = ~masks
    assert rmse(out[missing], clean[missing]) < 0.2 * rmse(corrupted[missing], clean[missing])


def test_biharmonic_2d_stored_as_3d_and_errors() -> None:
    clean = smooth_field((20, 24))[None]  # (1, Ny, Nx)
    mask = np.ones_like(clean, dtype=bool)
    mask[0, 8:11, 5:15] = False
    out = inpaint_biharmonic(clean * mask, mask, dims=3)
    assert rmse(out[~mask], clean[~mask]) < 0.1 * rmse(0 * clean[~mask], clean[~mask])
    with pytest.raises(ValueError, match="every sample"):
        inpaint_biharmonic(clean, np.zeros_like(mask))


def test_dct_on_system_matrix_layout_with_background_frames() -> None:
    """A whole SM (C, K, Nz, Ny, Nx) with background frames (E, C, K), as in
    SystemMatrix, denoises in one call; each component gets its own noise level."""
    rng = np.random.default_rng(5)
    clean = np.stack([np.stack([smooth_field((1, 24, 22), 2 * c + k) for k in range(2)])
                      for c in range(3)])  # (3, 2, 1, 24, 22)
    levels = np.array([[0.02, 0.05], [0.1, 0.15], [0.2, 0.3]])
    noisy = AdditiveGaussianNoise(levels[..., None, None, None])(clean, rng)
    background = AdditiveGaussianNoise(levels)(np.zeros((300, 3, 2)), rng)
    out = dct_denoise(noisy, background=background, dims=3)
    assert out.shape == clean.shape
    for c in range(3):
        for k in range(2):
            assert rmse(out[c, k], clean[c, k]) < 0.6 * rmse(noisy[c, k], clean[c, k])


def test_biharmonic_batches_components_that_share_a_mask():
    """Components solved together (one system per distinct mask) give exactly the
    one-component-at-a-time result."""
    from skimage.restoration import inpaint_biharmonic as reference

    from pympisr.baselines.inpainting import inpaint_biharmonic
    from pympisr.degradations import InpaintingMask

    rng = np.random.default_rng(1)
    masks = np.stack([InpaintingMask(0.1, 2).sample_single((9, 10), rng) for _ in range(5)])
    masks[3] = masks[0]
    x = rng.standard_normal((5, 9, 10)) + 1j * rng.standard_normal((5, 9, 10))
    out = inpaint_biharmonic(x, masks, dims=2)
    for comp, valid, got in zip(x, masks, out):
        filled = reference(np.stack([comp.real, comp.imag], -1), ~valid, channel_axis=-1)
        np.testing.assert_allclose(got, filled[..., 0] + 1j * filled[..., 1], atol=1e-12)
