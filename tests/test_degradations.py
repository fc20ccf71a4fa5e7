"""Degradation operators: shapes, noise statistics, downsampling, inpainting masks."""

from __future__ import annotations

import numpy as np
import pytest

from pympisr.degradations import (AdditiveGaussianNoise, AdditiveSourceNoise, Downsample,
                                  InpaintingMask)


def test_gaussian_noise_std_shape_dtype() -> None:
    x = np.zeros((4, 64, 64), np.complex64)
    y = AdditiveGaussianNoise(0.2)(x, np.random.default_rng(0))
    assert y.shape == x.shape and y.dtype == np.complex64
    assert np.std(y.real) == pytest.approx(0.2, rel=0.02)
    assert np.std(y.imag) == pytest.approx(0.2, rel=0.02)
    assert abs(np.corrcoef(y.real.ravel(), y.imag.ravel())[0, 1]) < 0.02
    assert not np.any(x)  # input untouched


def test_gaussian_noise_per_sample_sigma_and_reproducible() -> None:
    x = np.ones((3, 50, 50), np.complex64)
    sigma = np.array([0.0, 0.1, 0.3]).reshape(3, 1, 1)
    op = AdditiveGaussianNoise(sigma)
    y1 = op(x, np.random.default_rng(5))
    y2 = op(x, np.random.default_rng(5))
    np.testing.assert_array_equal(y1, y2)
    assert np.array_equal(y1[0], x[0])
    np.testing.assert_allclose(np.std((y1 - x).real, axis=(1, 2)), [0, 0.1, 0.3], rtol=0.05)


def test_gaussian_noise_rejects_negative_sigma() -> None:
    with pytest.raises(ValueError, match="sigma"):
        AdditiveGaussianNoise(-0.1)


class _ScaledGaussianSource:
    """A noise source with the NoiseSource interface: Gaussian noise of std 3 per part."""

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        return 3.0 * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))


def test_source_noise_raw_and_rescaled() -> None:
    x = np.zeros((2, 40, 40), np.complex64)
    raw = AdditiveSourceNoise(_ScaledGaussianSource())(x, np.random.default_rng(0))
    assert np.std(raw.real) == pytest.approx(3.0, rel=0.05)
    scaled = AdditiveSourceNoise(_ScaledGaussianSource(), sigma=0.1)(x, np.random.default_rng(0))
    rms = np.sqrt(np.mean(np.abs(scaled) ** 2, axis=(1, 2)) / 2)
    np.testing.assert_allclose(rms, 0.1, rtol=1e-5)
    assert scaled.dtype == np.complex64


def test_source_noise_checks_source() -> None:
    with pytest.raises(TypeError, match="sample"):
        AdditiveSourceNoise(object())

    class Wrong:
        def sample(self, shape, rng):
            return np.zeros((1,), complex)

    with pytest.raises(ValueError, match="shape"):
        AdditiveSourceNoise(Wrong())(np.zeros((4, 4), complex), np.random.default_rng(0))


@pytest.mark.parametrize("dims, shape", [(2, (3, 25, 20)), (3, (2, 13, 9, 16))])
@pytest.mark.parametrize("mode", ["stride", "mean"])
def test_downsample_shapes(dims: int, shape: tuple[int, ...], mode: str) -> None:
    op = Downsample(2, dims, mode)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.complex64)
    y = op(x)
    assert y.shape == op.output_shape(shape)
    assert y.shape[:-dims] == shape[:-dims]
    assert y.shape[-dims:] == tuple(-(-n // 2) for n in shape[-dims:])
    assert y.dtype == np.complex64


def test_downsample_stride_values() -> None:
    x = np.arange(7 * 5, dtype=float).reshape(7, 5)
    y = Downsample(3, 2)(x)
    np.testing.assert_array_equal(y, x[[0, 3, 6]][:, [0, 3]])
    np.testing.assert_array_equal(Downsample(3, 2).coarse_coordinates((7, 5))[0], [0, 3, 6])


def test_downsample_mean_blocks_and_partial_block() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 6, 7))
    y = Downsample(2, 3, "mean")(x)
    assert y.shape == (2, 3, 3, 4)
    assert y[1, 0, 1, 2] == pytest.approx(x[1, 0:2, 2:4, 4:6].mean())
    # last block along axes of odd length is partial: mean over the points it holds
    assert y[0, 2, 2, 3] == pytest.approx(x[0, 4:5, 4:6, 6:7].mean())
    coords = Downsample(2, 3, "mean").coarse_coordinates((5, 6, 7))
    np.testing.assert_array_equal(coords[0], [0.5, 2.5, 4.0])
    np.testing.assert_array_equal(coords[1], [0.5, 2.5, 4.5])


def test_downsample_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Downsample(0, 2)
    with pytest.raises(ValueError):
        Downsample(2, 4)
    with pytest.raises(ValueError):
        Downsample(2, 2, "max")


def test_robot_order_raster_and_meander() -> None:
    raster = InpaintingMask.robot_order((3, 4), meander=False)
    np.testing.assert_array_equal(raster, np.arange(12))
    meander = InpaintingMask.robot_order((3, 4), meander=True)
    np.testing.assert_array_equal(meander, [0, 1, 2, 3, 7, 6, 5, 4, 8, 9, 10, 11])
    # consecutive positions of a 2D meander are grid neighbours
    pos = np.stack(np.unravel_index(InpaintingMask.robot_order((6, 5), True), (6, 5)), 1)
    assert np.all(np.abs(np.diff(pos, axis=0)).sum(axis=1) == 1)
    # in 3D only the last dimension alternates (the paper's rule): lines of every plane
    order3 = InpaintingMask.robot_order((2, 3, 4), True).reshape(6, 4)
    np.testing.assert_array_equal(order3[1], [7, 6, 5, 4])
    np.testing.assert_array_equal(order3[3], [15, 14, 13, 12])


def _robot_paths_with_one_run(valid: np.ndarray) -> set[tuple[tuple[int, ...], bool]]:
    """The (axis permutation, meander) robot paths along which the missing samples of
    ``valid`` form one contiguous run."""
    import itertools

    found = set()
    for perm in itertools.permutations(range(valid.ndim)):
        permuted = np.transpose(valid, perm)
        for meander in (False, True):
            order = InpaintingMask.robot_order(permuted.shape, meander)
            missing = np.flatnonzero(~permuted.reshape(-1)[order])
            if missing.size and np.all(np.diff(missing) == 1):
                found.add((perm, meander))
    return found


@pytest.mark.parametrize("shape", [(25, 21, 27), (12, 30, 17)])
def test_inpainting_mask_ratio_and_contiguity(shape: tuple[int, ...]) -> None:
    op = InpaintingMask(0.1, 3)
    rng = np.random.default_rng(3)
    for _ in range(10):
        valid = op.sample(shape, rng)
        assert valid.shape == shape and valid.dtype == bool
        assert (~valid).sum() == round(0.1 * np.prod(shape))
        assert _robot_paths_with_one_run(valid)


def test_inpainting_mask_raster_without_permutation() -> None:
    op = InpaintingMask(0.05, 3, permute_axes=False, meander_prob=0.0)
    rng = np.random.default_rng(2)
    for _ in range(5):
        missing = np.flatnonzero(~op.sample((6, 7, 8), rng).reshape(-1))
        assert missing.size == 17 and np.all(np.diff(missing) == 1)  # C order, unpermuted
    meander = InpaintingMask(0.3, 2, permute_axes=False, meander_prob=1.0)
    for _ in range(5):
        valid = meander.sample((9, 11), rng)
        assert ((0, 1), True) in _robot_paths_with_one_run(valid)


def test_inpainting_mask_permutes_axes_and_meanders() -> None:
    """Over many draws, the fast (last) robot axis is each grid axis in turn, and both
    raster and meander paths occur (permutation inverted: masks keep the grid shape)."""
    op = InpaintingMask(0.3, 3)
    rng = np.random.default_rng(0)
    fast_axes, kinds = set(), set()
    for _ in range(60):
        valid = op.sample((5, 6, 7), rng)
        assert valid.shape == (5, 6, 7)
        paths = _robot_paths_with_one_run(valid)
        assert paths
        if len({perm[-1] for perm, _ in paths}) == 1:  # unambiguous fast axis
            fast_axes.add(next(iter(paths))[0][-1])
        if len({meander for _, meander in paths}) == 1:
            kinds.add(next(iter(paths))[1])
    assert fast_axes == {0, 1, 2}
    assert kinds == {False, True}


def test_combined_masks_and_call() -> None:
    op = InpaintingMask(0.1, 2, num_masks=3)
    rng = np.random.default_rng(4)
    valid = op.sample((30, 30), rng)
    missing = (~valid).mean()
    assert 0.1 <= missing <= 0.3 + 1e-9
    x = np.ones((5, 30, 30), np.complex64)
    y = op(x, rng)
    assert y.shape == x.shape and y.dtype == np.complex64
    masks = y != 0
    assert len({m.tobytes() for m in masks}) == 5  # a new mask per component
    y2 = op(x, rng, mask=valid)
    np.testing.assert_array_equal(y2 != 0, np.broadcast_to(valid, x.shape))
    with pytest.raises(ValueError, match="broadcast"):
        op(x, rng, mask=np.ones((3, 3), bool))


def test_mask_ratio_ranges() -> None:
    op = InpaintingMask((0.05, 0.2), 3, num_masks=(1, 3))
    rng = np.random.default_rng(0)
    fractions = [(~op.sample((10, 10, 10), rng)).mean() for _ in range(30)]
    assert min(fractions) >= 0.05 - 1e-9 and max(fractions) <= 0.6
    assert len(set(np.round(fractions, 3))) > 10
    with pytest.raises(ValueError):
        InpaintingMask(1.5, 3)
    with pytest.raises(ValueError):
        InpaintingMask(0.1, 3, num_masks=0)


def test_source_noise_with_simulation_noise_source() -> None:
    """The physics helper's NoiseSource (parametric, 3D, meander) plugs in directly."""
    from pympisr.simulation.noise import NoiseSource

    source = NoiseSource(dims=3, meander=True)
    op = AdditiveSourceNoise(source, sigma=np.array([0.05, 0.2]).reshape(2, 1, 1, 1))
    assert op.dims == 3
    x = np.zeros((2, 6, 7, 8), np.complex64)
    y = op(x, np.random.default_rng(0))
    assert y.shape == x.shape and y.dtype == np.complex64
    rms = np.sqrt(np.mean(np.abs(y) ** 2, axis=(1, 2, 3)) / 2)
    np.testing.assert_allclose(rms, [0.05, 0.2], rtol=1e-5)


def test_meander_probability_is_respected() -> None:
    """About half of the elementary masks follow a meander path (paper: probability
    0.5), the others a raster path; draws only one of them explains are counted."""
    op = InpaintingMask(0.3, 2, permute_axes=False)
    rng = np.random.default_rng(11)
    counts = {False: 0, True: 0}
    for _ in range(300):
        paths = _robot_paths_with_one_run(op.sample_single((12, 10), rng))
        kinds = {meander for perm, meander in paths if perm == (0, 1)}
        if len(kinds) == 1:
            counts[kinds.pop()] += 1
    share = counts[True] / (counts[True] + counts[False])
    assert counts[True] + counts[False] > 150
    assert 0.4 < share < 0.6
    never = InpaintingMask(0.3, 2, permute_axes=False, meander_prob=0.0)
    assert all(((0, 1), False) in _robot_paths_with_one_run(never.sample_single((12, 10), rng))
               for _ in range(20))
