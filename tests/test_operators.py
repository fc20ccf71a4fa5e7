"""Degradation operators: adjointness <A x, y> = <x, A^T y> (numpy and torch), shapes,
and the data-consistency projection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pympisr.operators import BlockMean, Identity, Masking, StridedSampling

RNG = np.random.default_rng(0)


def _complex(shape: tuple[int, ...]) -> np.ndarray:
    return RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)


def _operators(fine: tuple[int, ...]) -> list:
    mask = RNG.random(fine) > 0.3
    ops = [Identity(len(fine)), StridedSampling(2, fine), StridedSampling(3, fine),
           Masking(mask, len(fine))]
    if all(n % 2 == 0 for n in fine):
        ops.append(BlockMean(2, len(fine)))
    return ops


@pytest.mark.parametrize("fine", [(12, 10), (13, 11), (8, 6, 4), (9, 7, 5)])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_adjointness(fine: tuple[int, ...], backend: str) -> None:
    for op in _operators(fine):
        x = _complex((3, *fine))
        y = _complex(op.forward(x).shape)
        if backend == "torch":
            x, y = torch.from_numpy(x), torch.from_numpy(y)
            ax, aty = op.forward(x).numpy(), op.adjoint(y).numpy()
            x, y = x.numpy(), y.numpy()
        else:
            ax, aty = op.forward(x), op.adjoint(y)
        lhs = np.vdot(ax, y)
        rhs = np.vdot(x, aty)
        assert abs(lhs - rhs) <= 1e-10 * max(abs(lhs), 1.0), (op, lhs, rhs)
        assert aty.shape == x.shape


def test_strided_sampling_keeps_every_sth_point() -> None:
    x = np.arange(13 * 11).reshape(13, 11).astype(float)
    op = StridedSampling(2, (13, 11))
    np.testing.assert_array_equal(op.forward(x), x[::2, ::2])
    assert op.measured_count((13, 11)) == 7 * 6
    back = op.adjoint(op.forward(x))
    np.testing.assert_array_equal(back[::2, ::2], x[::2, ::2])
    assert back[1::2].sum() == 0


def test_block_mean_and_its_gram() -> None:
    x = _complex((2, 8, 6))
    op = BlockMean(2, 2)
    y = op.forward(x)
    np.testing.assert_allclose(y[0, 0, 0], x[0, :2, :2].mean())
    # A A^T = s^-d I
    np.testing.assert_allclose(op.forward(op.adjoint(y)), y / 4)
    with pytest.raises(ValueError, match="multiple"):
        op.forward(_complex((7, 6)))


@pytest.mark.parametrize("make", [lambda f: Identity(2), lambda f: StridedSampling(2, f),
                                  lambda f: BlockMean(2, 2),
                                  lambda f: Masking(RNG.random(f) > 0.5, 2)])
def test_projection_reaches_the_ball_and_moves_least(make) -> None:
    fine = (10, 12)
    op = make(fine)
    x = _complex((4, *fine))
    y = op.forward(_complex((4, *fine)))
    eps = np.array([0.0, 0.5, 2.0, 1e6]).reshape(4, 1, 1)
    p = op.project(x, y, eps)
    residual = op.residual_norm(p, y)
    assert np.all(residual <= eps * (1 + 1e-9) + 1e-9)
    np.testing.assert_allclose(p[3], x[3])          # already inside: unchanged
    # the correction lies in the range of A^T (nothing changes where A does not look)
    if isinstance(op, StridedSampling):
        np.testing.assert_allclose(p[:, 1::2], x[:, 1::2])
    pt = op.project(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(eps))
    np.testing.assert_allclose(pt.numpy(), p, rtol=1e-10, atol=1e-12)


def test_noise_gain_is_the_std_of_degraded_white_noise() -> None:
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((400, 12, 10))
    mask = np.ones((12, 10), bool)
    mask[0, :3] = False
    for op, expected in ((Identity(2), 1.0), (StridedSampling(2, (12, 10)), 1.0),
                         (BlockMean(2, 2), 0.5), (Masking(mask, 2), 1.0)):
        assert op.noise_gain((12, 10)) == pytest.approx(expected)
        measured = op.forward(noise)
        if isinstance(op, Masking):
            measured = measured[:, mask]
        assert np.std(measured) == pytest.approx(expected, rel=0.03)
    assert BlockMean(3, 3).noise_gain((6, 6, 6)) == pytest.approx(3 ** -1.5)
