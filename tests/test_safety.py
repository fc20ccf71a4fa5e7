"""The safety step: SURE combination, discrepancy projection and never-worse restores
on adversarial components (noise only, very strong, fine structure a network erases)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pympisr.baselines.dct import dct_denoise, dct_divergence
from pympisr.operators import Identity, StridedSampling
from pympisr.restoration.safety import (ACTIONS, SafetyOptions, _simplex_minimum,
                                        consistency_step, estimated_relative_noise,
                                        sure_combination)

RNG = np.random.default_rng(7)


def _smooth(batch: int, shape: tuple[int, int] = (24, 20), freq: float = 2.0) -> np.ndarray:
    yy, xx = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    out = []
    for _ in range(batch):
        f = RNG.uniform(0.5, freq, 2)
        out.append(np.exp(-(xx ** 2 + yy ** 2)) * np.exp(1j * np.pi * (f[0] * xx + f[1] * yy)))
    return np.stack(out)


def _noisy(clean: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    s = sigma.reshape(-1, 1, 1)
    return clean + s * (RNG.standard_normal(clean.shape) + 1j * RNG.standard_normal(clean.shape))


def _mse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.mean(np.abs(a - b) ** 2, axis=(1, 2))


def test_simplex_minimum_matches_a_grid_search() -> None:
    for _ in range(20):
        m = RNG.standard_normal((2, 2))
        quad = (m @ m.T)[None]
        lin = RNG.standard_normal((1, 2))
        w = _simplex_minimum(quad, lin)[0]
        assert w.min() >= -1e-12 and w.sum() <= 1 + 1e-12
        value = w @ quad[0] @ w + 2 * lin[0] @ w
        grid = np.array([(a, b) for a, b in itertools.product(np.linspace(0, 1, 101), repeat=2)
                         if a + b <= 1])
        best = np.min(np.einsum("gi,ij,gj->g", grid, quad[0], grid) + 2 * grid @ lin[0])
        assert value <= best + 1e-9


def test_dct_divergence_matches_finite_differences() -> None:
    y = _noisy(_smooth(1), np.array([0.1]))
    sigma = np.array([0.1])
    probe = RNG.standard_normal(y.shape) + 1j * RNG.standard_normal(y.shape)
    eps = 1e-6
    f0 = dct_denoise(y.astype(np.complex128), sigma)
    f1 = dct_denoise((y + eps * probe).astype(np.complex128), sigma)
    mc = np.sum((probe.conj() * (f1 - f0)).real) / eps
    exact = dct_divergence(y, sigma)[0]
    assert abs(mc - exact) < 0.05 * exact + 5


def _options() -> SafetyOptions:
    return SafetyOptions(network_floor=0.0)


@pytest.mark.parametrize("sigma", [0.003, 0.03, 0.3])
def test_an_oracle_network_gets_the_weight(sigma: float) -> None:
    clean = _smooth(6)
    sig = np.full(6, sigma)
    y = _noisy(clean, sig).astype(np.complex64)

    def oracle(z: np.ndarray) -> np.ndarray:
        """The truth, whatever the input (divergence 0); z stacks [y; probed y]."""
        return np.concatenate([clean] * (z.shape[0] // 6)).astype(np.complex64)

    x, a, b = sure_combination(y, sig, 2, oracle, None, _options(), RNG)
    assert np.all(a > 0.8)
    assert np.all(_mse(x, clean) < 0.3 * _mse(y, clean))


def test_a_network_that_erases_structure_is_not_trusted() -> None:
    """Strong, finely structured components (relative noise 1e-3) and a network that
    returns a blurred, weakened copy: the combination stays as good as the input."""
    clean = _smooth(8, freq=8.0)
    sig = np.full(8, 1e-3)
    y = _noisy(clean, sig).astype(np.complex64)

    def eraser(z: np.ndarray) -> np.ndarray:
        return (0.3 * z).astype(np.complex64)

    def baseline(z: np.ndarray):
        return dct_denoise(z, sig[:z.shape[0]]), dct_divergence(z, sig[:z.shape[0]])

    x, a, _ = sure_combination(y, sig, 2, eraser, baseline, _options(), RNG)
    assert np.all(a < 0.05)
    assert np.all(_mse(x, clean) <= 1.05 * _mse(y, clean))


def test_noise_only_components_go_to_zero() -> None:
    sig = np.full(5, 0.2)
    y = _noisy(np.zeros((5, 24, 20)), sig).astype(np.complex64)

    def baseline(z: np.ndarray):
        return dct_denoise(z, sig), dct_divergence(z, sig)

    def identity_net(z: np.ndarray) -> np.ndarray:
        return z

    x, a, b = sure_combination(y, sig, 2, identity_net, baseline, _options(), RNG)
    assert np.all(_mse(x, 0) < 0.2 * _mse(y, 0))
    assert np.all(b > 0.8)


def test_consistency_step_projects_hallucinations_only() -> None:
    clean = _smooth(3)
    sig = np.array([0.05, 0.05, 0.05])
    y = _noisy(clean, sig).astype(np.complex64)
    good = clean.astype(np.complex64)
    bad = (clean + 0.5).astype(np.complex64)  # far from the data
    opts = SafetyOptions(tol=1.5, keep_below=0.0)
    x, projected, ratio = consistency_step(np.stack([good[0], bad[1], bad[2]]), y, sig,
                                           Identity(2), opts)
    assert projected.tolist() == [False, True, True]
    np.testing.assert_array_equal(x[0], good[0])
    assert np.all(ratio[1:] <= 1.5 + 1e-6)
    assert np.all(_mse(x[1:], clean[1:]) < _mse(bad[1:], clean[1:]))


def test_strong_components_keep_their_measured_samples() -> None:
    fine = (25, 21)
    clean = _smooth(2, fine)
    op = StridedSampling(2, fine)
    y = op.forward(clean).astype(np.complex64)
    x = (clean * 0.9).astype(np.complex64)
    sig = np.array([1e-6, 1e-6])
    out, projected, _ = consistency_step(x, y, sig, op, SafetyOptions(keep_below=1e-4))
    np.testing.assert_allclose(op.forward(out), y, rtol=1e-5, atol=1e-7)
    assert projected.all()


def test_actions_are_named() -> None:
    assert ACTIONS[0] == "copied" and len(set(ACTIONS)) == len(ACTIONS)


def test_sure_tuned_dct_picks_a_larger_factor_for_pure_noise() -> None:
    from pympisr.baselines.dct import dct_denoise_sure
    sig = np.full(4, 0.1)
    noise_only = _noisy(np.zeros((4, 24, 20)), sig)
    out, div, factor = dct_denoise_sure(noise_only, sig)
    assert np.all(factor >= 2.5)
    strong = _noisy(_smooth(4) * 10, sig)
    _, _, factor_strong = dct_denoise_sure(strong, sig)
    assert np.all(factor_strong < factor)
    assert np.all(_mse(out, 0) < 0.1 * _mse(noise_only, 0))
    np.testing.assert_allclose(div, dct_divergence(noise_only, sig * factor / 2.0,
                                                   threshold=2.0), rtol=1e-9)


class Recorder:
    """Stands in for an OnnxRestorer: identity network that records its batch sizes."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def __call__(self, z: np.ndarray, sigma: np.ndarray | None = None) -> np.ndarray:
        self.seen.append(z.shape[0])
        return z


def test_only_components_inside_the_network_range_reach_the_network() -> None:
    from pympisr.restoration.restore import ComponentRestorer
    from pympisr.tasks import get_task

    clean = _smooth(3)
    sig = np.array([1e-5, 0.1, 50.0])  # relative noise 1e-5 (strong), 0.1, 50 (noise only)
    y = _noisy(clean, sig).astype(np.complex64)
    y[2] = (sig[2] * np.exp(2j * np.pi * RNG.random(y[2].shape))).astype(np.complex64)
    # the last is noise only: its peak does not rise above the noise's typical maximum
    assert estimated_relative_noise(y, sig)[2] == np.inf
    recorder = Recorder()
    run = ComponentRestorer(recorder, get_task("denoise"), SafetyOptions())
    x, record = run(y, sig, None)
    assert recorder.seen == [2]          # the middle component and its SURE probe
    assert ACTIONS[record.action[0]] == "kept"
    assert record.network_weight[0] == 0 and record.network_weight[2] == 0
    assert np.all(_mse(x, clean) <= 1.05 * _mse(y, clean))
    with pytest.raises(ValueError, match="ceiling"):
        SafetyOptions(network_floor=1.0, network_ceiling=0.5)


def test_holdout_weight_minimises_over_the_unit_interval() -> None:
    from pympisr.restoration.safety import holdout_weight

    shape = (5, 6, 5)
    r, d = (RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape) for _ in range(2))
    r[1] = -0.3 * d[1]  # interior minimum at 0.3
    r[2] = 2.0 * d[2]   # minimum below 0: clipped
    w = holdout_weight(r, d, dims=2)
    assert w[1] == pytest.approx(0.3) and w[2] == 0
    for i in range(shape[0]):
        best = min(np.sum(np.abs(r[i] + a * d[i]) ** 2) for a in np.linspace(0, 1, 201))
        assert np.sum(np.abs(r[i] + w[i] * d[i]) ** 2) <= best + 1e-9
    assert np.all(holdout_weight(r, 0 * d, dims=2) == 0)


# wave vectors (cycles per FOV) of the plane waves the components of the next tests are
# made of
WAVES = np.array([[1.0, 0.5], [0.5, 2.0], [2.0, 1.5]])


def _plane_waves(shape: tuple[int, int]) -> np.ndarray:
    """``(3, Ny, Nx)`` plane waves sampled at the voxel centres of a grid over the FOV."""
    yy, xx = np.meshgrid(*[(np.arange(n) + 0.5) / n for n in shape], indexing="ij")
    return np.stack([np.exp(2j * np.pi * (w[1] * yy + w[0] * xx)) for w in WAVES])


class _PlaneWaveUpsampler:
    """Stands in for an x2 upsampling network that knows the components' family: the
    least-squares plane-wave fit to the 2 x 2 block means, evaluated on the fine grid
    (exact for such components, at any grid size)."""

    def __call__(self, z: np.ndarray, mask: object = None, sigma: object = None
                 ) -> np.ndarray:
        fine = _plane_waves(tuple(2 * n for n in z.shape[1:]))
        coarse = fine.reshape(3, z.shape[1], 2, z.shape[2], 2).mean(axis=(2, 4))
        coef = np.linalg.lstsq(coarse.reshape(3, -1).T, z.reshape(z.shape[0], -1).T,
                               rcond=None)[0]
        return np.einsum("kb,kyx->byx", coef, fine).astype(np.complex64)


@pytest.mark.parametrize("trusted", [True, False])
def test_super_resolution_holdout_weighs_the_network(trusted: bool) -> None:
    """Held-out validation gives an exact network the weight and a garbage one none; the
    result is never worse than the classical DCT-F + bicubic."""
    from pympisr.restoration.restore import ComponentRestorer
    from pympisr.tasks import get_task

    task = get_task("upsample", 2, 2)
    clean = np.einsum("bk,kyx->byx", RNG.standard_normal((6, 3)) + 1j * RNG.standard_normal(
        (6, 3)), _plane_waves((32, 32)))
    sigma = np.full(6, 0.1)
    y = task.operator((32, 32)).forward(clean)
    y = _noisy(y, sigma).astype(np.complex64)
    exact = _PlaneWaveUpsampler()

    def garbage(z: np.ndarray, mask: object = None, sigma: object = None) -> np.ndarray:
        return (exact(z) + 3 * RNG.standard_normal((z.shape[0], 2 * z.shape[1],
                                                    2 * z.shape[2]))).astype(np.complex64)

    run = ComponentRestorer(exact if trusted else garbage, task, SafetyOptions())
    x, record = run(y, sigma, None)
    classical = run.classical(y, sigma, None)
    if trusted:
        assert np.all(record.network_weight > 0.8)
        assert np.all(_mse(x, clean) < 0.5 * _mse(classical, clean))
    else:
        assert np.all(record.network_weight < 0.1)
        assert np.all(_mse(x, clean) <= 1.1 * _mse(classical, clean))


def test_inpainting_holdout_rejects_a_network_that_hallucinates() -> None:
    from pympisr.restoration.restore import ComponentRestorer
    from pympisr.tasks import get_task

    task = get_task("inpaint", 2)
    clean = _smooth(4, (24, 24))
    mask = task.draw_mask((24, 24), np.random.default_rng(3))
    sigma = np.full(4, 0.02)
    y = (_noisy(clean, sigma) * mask).astype(np.complex64)

    def hallucinate(z: np.ndarray, mask: np.ndarray, sigma: object = None) -> np.ndarray:
        return np.where(mask, z, 2.0).astype(np.complex64)

    run = ComponentRestorer(hallucinate, task, SafetyOptions())
    x, record = run(y, sigma, mask)
    biharmonic = task.baseline(y, sigma, mask)
    assert np.all(record.network_weight < 0.1)
    missing = ~mask
    assert np.mean(np.abs(x - clean)[:, missing] ** 2) <= 1.2 * np.mean(
        np.abs(biharmonic - clean)[:, missing] ** 2)


def test_components_above_the_network_fidelity_get_the_classical_method() -> None:
    """Relative noise below ``network_floor`` (here 2e-4 < 1e-3): the network is not run
    and the output is DCT-F before the spline (never the plain spline through noisy
    samples, which the calibration protocol showed 1.6 dB worse in 3D)."""
    from pympisr.restoration.restore import ComponentRestorer
    from pympisr.tasks import get_task

    task = get_task("accelerate", 2, 2)
    fine = np.einsum("bk,kyx->byx", RNG.standard_normal((4, 3)) + 1j * RNG.standard_normal(
        (4, 3)), _plane_waves((33, 33)))
    measured = task.operator((33, 33)).forward(fine)
    sigma = 2e-4 * np.abs(measured).reshape(4, -1).max(axis=1)
    y = _noisy(measured, sigma).astype(np.complex64)

    def never(z: np.ndarray, mask: object = None, sigma: object = None) -> np.ndarray:
        raise AssertionError("the network must not run above its fidelity")

    run = ComponentRestorer(never, task, SafetyOptions(keep_below=0.0))
    x, record = run(y, sigma, None)
    np.testing.assert_allclose(x, run.classical(y, sigma, None), atol=1e-6)
    assert np.all(record.network_weight == 0)
    plain = task.baseline(y, sigma, None)
    assert np.mean(_mse(x, fine)) < np.mean(_mse(plain, fine))


def test_the_model_recommends_the_network_ceiling_unless_the_caller_sets_it() -> None:
    """``SafetyOptions(network_ceiling=None)`` takes the ceiling of the model's manifest
    entry (``recommended_safety``), else the default 10; an explicit value wins."""
    from pympisr.restoration.restore import ComponentRestorer
    from pympisr.restoration.safety import DEFAULT_NETWORK_CEILING
    from pympisr.tasks import get_task

    class Recommending(Recorder):
        """Recommends a network ceiling of 0.5 (as a manifest entry would)."""

        recommended_safety = {"network_ceiling": 0.5}

    clean = _smooth(2)
    sig = np.array([0.05, 1.0])  # estimated relative noise ~0.05 and ~2 (between 0.5 and 10)
    y = _noisy(clean, sig).astype(np.complex64)
    relative = estimated_relative_noise(y, sig)
    assert relative[0] < 0.5 < relative[1] < DEFAULT_NETWORK_CEILING
    model = Recommending()
    run = ComponentRestorer(model, get_task("denoise"), SafetyOptions())
    assert run.safety.network_ceiling == 0.5
    run(y, sig, None)
    assert model.seen == [2]             # only the first component and its probe
    model.seen.clear()
    explicit = ComponentRestorer(model, get_task("denoise"), SafetyOptions(network_ceiling=10))
    explicit(y, sig, None)
    assert model.seen == [4]             # both components and their probes
    assert SafetyOptions().for_model(None).network_ceiling == DEFAULT_NETWORK_CEILING


def test_for_model_fills_only_the_options_left_open() -> None:
    from pympisr.restoration.safety import DEFAULT_NETWORK_CEILING, DEFAULT_NETWORK_FLOOR

    opened = SafetyOptions().for_model({"network_floor": 0.01})
    assert (opened.network_floor, opened.network_ceiling) == (0.01, DEFAULT_NETWORK_CEILING)
    assert SafetyOptions(network_floor=0.002).for_model(
        {"network_floor": 0.01}).network_floor == 0.002
    assert SafetyOptions().for_model({}).network_floor == DEFAULT_NETWORK_FLOOR
    with pytest.raises(ValueError, match="ceiling"):
        SafetyOptions(network_ceiling=0.005).for_model({"network_floor": 0.01})
