"""Compressed-sensing baseline (pympisr.baselines.compressed_sensing) and the exactness of
the spline upsampling at the measured points of every super-resolution operator."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import fft

from pympisr.baselines import cs_recover, interpolate_upsample, random_sampling_mask
from pympisr.baselines.compressed_sensing import measured_counts
from pympisr.operators import BlockMean, Masking, StridedSampling
from pympisr.tasks import get_task


def dct_sparse(batch: int, shape: tuple[int, ...], nonzeros: int, seed: int,
               band: int = 1) -> np.ndarray:
    """Complex components with ``nonzeros`` random DCT coefficients each, all with index
    below ``n / band`` along every axis (``band`` > 1: low-pass, as SM components are)."""
    rng = np.random.default_rng(seed)
    axes = tuple(range(1, len(shape) + 1))
    coeffs = np.zeros((batch, *shape), np.complex128)
    low = tuple(max(1, n // band) for n in shape)
    size = int(np.prod(low))
    for b in range(batch):
        index = np.unravel_index(rng.choice(size, nonzeros, replace=False), low)
        coeffs[(b, *index)] = rng.standard_normal(nonzeros) + 1j * rng.standard_normal(nonzeros)
    return fft.idctn(coeffs, axes=axes, norm="ortho")


def relative_error(x: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(x - ref) / np.linalg.norm(ref))


def test_random_sampling_mask_count_and_reproducibility() -> None:
    mask = random_sampling_mask((20, 22), 0.25, np.random.default_rng(3))
    assert mask.dtype == bool and mask.shape == (20, 22) and mask.sum() == 110
    np.testing.assert_array_equal(mask, random_sampling_mask((20, 22), 0.25,
                                                             np.random.default_rng(3)))
    assert random_sampling_mask((4, 4), 1e-6, np.random.default_rng(0)).sum() == 1
    with pytest.raises(ValueError, match="fraction"):
        random_sampling_mask((4, 4), 0.0, np.random.default_rng(0))


def test_recovers_dct_sparse_signal_from_random_samples() -> None:
    x = dct_sparse(3, (32, 32), nonzeros=20, seed=0)
    rng = np.random.default_rng(1)
    masks = np.stack([random_sampling_mask((32, 32), 0.3, rng) for _ in range(3)])
    op = Masking(masks, 2)
    out = cs_recover(op.forward(x), op, 0.0, (32, 32))
    assert out.shape == x.shape and out.dtype == np.complex128  # the input's precision
    assert cs_recover(op.forward(x).astype(np.complex64), op, 0.0, (32, 32),
                      iterations=2).dtype == np.complex64
    assert relative_error(out, x) < 1e-4
    # the minimum-norm start (zeros at unmeasured positions) is far off: CS did the work
    assert relative_error(op.forward(x), x) > 0.5


def test_noise_bound_holds_and_denoises() -> None:
    x = dct_sparse(4, (24, 28), nonzeros=15, seed=2)
    x /= np.abs(x).reshape(4, -1).max(axis=1)[:, None, None]
    rng = np.random.default_rng(4)
    sigma = np.array([0.0, 0.02, 0.05, 0.1])
    masks = np.stack([random_sampling_mask((24, 28), 0.5, rng) for _ in range(4)])
    op = Masking(masks, 2)
    noise = sigma[:, None, None] * (rng.standard_normal(x.shape) + 1j * rng.standard_normal(x.shape))
    y = op.forward(x + noise)
    out = cs_recover(y, op, sigma, (24, 28))
    residual = np.linalg.norm((op.forward(out) - y).reshape(4, -1), axis=1)
    bound = np.sqrt(2 * masks.reshape(4, -1).sum(axis=1)) * sigma
    assert np.all(residual <= bound * (1 + 1e-5) + 1e-5)
    for b in range(1, 4):  # inside the noise ball, closer to the truth than the data
        measured = masks[b]
        assert (np.linalg.norm((out[b] - x[b])[measured])
                < 0.7 * np.linalg.norm((y[b] - x[b])[measured]))
    with pytest.raises(ValueError, match="sigma"):
        cs_recover(y, op, -1.0, (24, 28))


@pytest.mark.parametrize("operator, fine", [
    (BlockMean(2, 2), (24, 20)),
    (StridedSampling(2, (25, 21)), (25, 21)),
    (BlockMean(2, 3), (8, 10, 12)),
])
def test_cs_with_task_operators_is_consistent_and_beats_adjoint(operator, fine) -> None:
    x = dct_sparse(2, fine, nonzeros=6, seed=5, band=2)  # structured sampling: low-pass
    y = operator.forward(x)
    out = cs_recover(y, operator, 0.0, fine, iterations=200)
    assert out.shape == (2, *fine)
    np.testing.assert_allclose(operator.forward(out), y, atol=1e-5)  # exact data consistency
    start = operator.adjoint(operator.gram_inverse(y))
    assert relative_error(out, x) < 0.5 * relative_error(start, x)


def test_measured_counts_per_image() -> None:
    masks = np.ones((2, 4, 5), bool)
    masks[1, 0] = False
    np.testing.assert_array_equal(measured_counts(Masking(masks, 2), (4, 5), 2), [20, 15])
    np.testing.assert_array_equal(measured_counts(BlockMean(2, 2), (4, 6), 3), [6, 6, 6])
    np.testing.assert_array_equal(measured_counts(StridedSampling(2, (5, 5)), (5, 5), 1), [9])


def smooth(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    phase = sum(rng.uniform(-2, 2) * g for g in grids)
    return np.exp(-sum(g ** 2 for g in grids) * 2) * np.exp(1j * phase)


@pytest.mark.parametrize("dims, fine, scale, error", [
    (2, (25, 21), 2, 0.1), (2, (29, 17), 4, 0.5), (3, (9, 13, 11), 2, 0.1),
    (3, (13, 17, 21), 4, 0.5)])  # x4: 4-6 samples per axis of an oscillating phase
def test_accelerate_baseline_is_exact_at_measured_points(dims, fine, scale, error) -> None:
    """Bicubic / tricubic through every s-th point reproduces the measured values on odd
    grids too (the accelerate task's output grid s (n - 1) + 1)."""
    task = get_task("accelerate", dims=dims, scale_factor=scale)
    assert task.training_crop(fine) == fine
    x = smooth(fine, seed=scale).astype(np.complex64)[None]
    y = task.operator(fine).forward(x)
    out = task.baseline(y, np.zeros(1))
    assert out.shape == x.shape
    np.testing.assert_allclose(task.operator(fine).forward(out), y, atol=2e-6)
    assert relative_error(out, x) < error


def test_strided_bicubic_on_the_upsample_grid() -> None:
    """TranSMS' strided bicubic: every s-th point of the n s grid, extrapolated at the end;
    exact at the samples and on the upsample task's output grid."""
    fine = (24, 20)
    x = smooth(fine, seed=0)[None]
    strided = x[:, ::4, ::4]
    out = interpolate_upsample(strided, 4, dims=2, mode="stride", target_shape=fine)
    assert out.shape == (1, *fine)
    np.testing.assert_allclose(out[:, ::4, ::4], strided, atol=1e-10)
    assert relative_error(out, x) < 0.3  # 5-6 samples per axis, extrapolated tail
