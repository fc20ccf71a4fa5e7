"""Mean magnetic moment: exact series vs direct quadrature, limits, fast path."""

from __future__ import annotations

import numpy as np
import pytest

from pympisr.physics import fields
from pympisr.physics.moments import (BOLTZMANN, anisotropy_parameter, field_parameter,
                                     langevin, mean_moment)
from pympisr.physics.tables import DOCUMENTED_MAX_ERROR, anisotropy_table, measure_error


def boltzmann_quadrature(B, diameter, K, axis, T=293.0, Ms=474e3, n_theta=300, n_phi=200):
    """<m> = int u exp(E(u)) dOmega / int exp(E(u)) dOmega over the unit sphere.

    E(u) / k_B T = M_S V_c B.u / k_B T + K V_c (u.n)^2 / k_B T. Product rule in a frame
    whose pole is the easy axis: Gauss-Legendre in cos(theta), trapezoid in phi
    (periodic, spectrally accurate).
    """
    vc = np.pi * diameter**3 / 6
    n = np.asarray(axis, float) / np.linalg.norm(axis)
    helper = np.array([1.0, 0, 0]) if abs(n[0]) < 0.9 else np.array([0, 1.0, 0])
    e1 = np.cross(n, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(n, e1)
    t, w = np.polynomial.legendre.leggauss(n_theta)
    phi = 2 * np.pi * np.arange(n_phi) / n_phi
    s = np.sqrt(1 - t**2)
    u = (t[:, None, None] * n + (s[:, None] * np.cos(phi))[..., None] * e1
         + (s[:, None] * np.sin(phi))[..., None] * e2)
    energy = (Ms * vc * (u @ np.asarray(B, float)) + K * vc * (u @ n) ** 2) / (BOLTZMANN * T)
    weight = np.exp(energy - energy.max()) * w[:, None]
    return np.einsum("ij,ijk->k", weight, u) / weight.sum()


def random_unit(rng, size=None):
    v = rng.normal(size=(3,) if size is None else (size, 3))
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_anisotropy_matches_sphere_quadrature():
    rng = np.random.default_rng(12)
    worst = 0.0
    for case in range(40):
        diameter = rng.uniform(15e-9, 25e-9)
        K = 0.0 if case % 10 == 0 else rng.uniform(0, 10000)
        magnitude = rng.uniform(0, 0.04) if case % 4 else rng.uniform(0, 2e-4)
        if case < 4:  # corners of the range: strongest field, largest particles and K
            diameter, K, magnitude = 25e-9, (10000.0, 0.0, 10000.0, 5000.0)[case], 0.04
        B = magnitude * random_unit(rng)
        axis = random_unit(rng)
        m = mean_moment(B, model="anisotropy", diameter=diameter, anisotropy=K, easy_axis=axis)
        ref = boltzmann_quadrature(B, diameter, K, axis)
        worst = max(worst, np.linalg.norm(m - ref) / np.linalg.norm(ref))
    assert worst <= 1e-5


def test_anisotropy_vectorised_and_broadcast():
    rng = np.random.default_rng(3)
    B = rng.uniform(-0.03, 0.03, (4, 5, 3))
    axes = random_unit(rng, 5)
    K = rng.uniform(0, 8000, (4, 5))
    m = mean_moment(B, model="anisotropy", diameter=20e-9, anisotropy=K, easy_axis=axes)
    assert m.shape == (4, 5, 3)
    ref = boltzmann_quadrature(B[2, 3], 20e-9, K[2, 3], axes[3])
    np.testing.assert_allclose(m[2, 3], ref, rtol=0, atol=1e-6)


def test_zero_field_gives_zero_moment():
    for model in ("langevin", "anisotropy"):
        m = mean_moment(np.zeros((2, 3)), model=model, diameter=20e-9, anisotropy=5000.0,
                        easy_axis=[0, 0, 1])
        assert np.all(m == 0)


def test_anisotropy_reduces_to_langevin_at_zero_k():
    rng = np.random.default_rng(5)
    B = rng.uniform(-0.04, 0.04, (200, 3))
    B[:5] *= 1e-4  # near zero field
    axes = random_unit(rng, 200)
    a = mean_moment(B, model="anisotropy", diameter=22e-9, anisotropy=0.0, easy_axis=axes)
    lang = mean_moment(B, model="langevin", diameter=22e-9)
    np.testing.assert_allclose(a, lang, rtol=1e-12, atol=1e-15)


def test_langevin_closed_form_and_limits():
    xi = np.array([1e-6, 1e-3, 0.5, 3.0, 40.0])
    exact = np.array([1 / np.tanh(x) - 1 / x if x > 1e-2 else x / 3 - x**3 / 45 for x in xi])
    np.testing.assert_allclose(langevin(xi), exact, rtol=1e-9)
    np.testing.assert_allclose(langevin(-xi), -exact, rtol=1e-9)
    beta = field_parameter(25e-9)
    B = np.array([0.0, 0.3, 0.4])  # |B| = 0.5 T: saturated
    m = mean_moment(B, diameter=25e-9)
    np.testing.assert_allclose(np.linalg.norm(m), 1 - 1 / (0.5 * beta), rtol=1e-9)
    np.testing.assert_allclose(m / np.linalg.norm(m), B / 0.5, rtol=1e-12)


def test_parameters_follow_definitions():
    vc = np.pi * (19e-9) ** 3 / 6
    np.testing.assert_allclose(field_parameter(19e-9), 474e3 * vc / (BOLTZMANN * 293))
    np.testing.assert_allclose(anisotropy_parameter(3500.0, 19e-9), 3500 * vc / (BOLTZMANN * 293))


def test_anisotropy_aligns_moment_with_easy_axis():
    # field perpendicular to the easy axis: strong anisotropy lowers the moment
    B = np.array([0.005, 0.0, 0.0])
    weak = mean_moment(B, model="anisotropy", diameter=20e-9, anisotropy=0.0, easy_axis=[0, 0, 1])
    strong = mean_moment(B, model="anisotropy", diameter=20e-9, anisotropy=8000.0,
                         easy_axis=[0, 0, 1])
    assert strong[0] < 0.9 * weak[0]
    np.testing.assert_allclose(strong[1:], 0.0, atol=1e-15)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="easy_axis"):
        mean_moment([0.01, 0, 0], model="anisotropy", diameter=20e-9, anisotropy=100.0)
    with pytest.raises(ValueError, match="model"):
        mean_moment([0.01, 0, 0], model="debye", diameter=20e-9)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        mean_moment([0.01, 0], diameter=20e-9)


def test_fast_path_within_documented_error():
    errors = measure_error(num_points=20000, seed=7)
    assert errors["max_abs"] <= DOCUMENTED_MAX_ERROR
    assert errors["max_rel"] <= 2 * DOCUMENTED_MAX_ERROR


def test_simulation_kernel_matches_exact_moment():
    """The per-voxel kernels (constant and varying alpha) against the exact series."""
    from pympisr.simulation import kernels

    rng = np.random.default_rng(9)
    drive = fields.drive_field([0.012, 0.01, 0.011], 3)[:3000]
    offsets = rng.uniform(-0.015, 0.015, (6, 3))
    axes = random_unit(rng, 6)
    diameter, K = 24e-9, 4000.0
    beta = field_parameter(diameter)
    alpha = float(anisotropy_parameter(K, diameter))
    out = np.empty((6, 3, drive.shape[0]), np.float32)
    kernels.moment_anisotropy_constant(drive, offsets, beta, axes, alpha,
                                       anisotropy_table().slice(alpha), out)
    B = drive[None] + offsets[:, None]
    exact = mean_moment(B, model="anisotropy", diameter=diameter, anisotropy=K,
                        easy_axis=axes[:, None])
    assert np.abs(out.transpose(0, 2, 1) - exact).max() <= DOCUMENTED_MAX_ERROR
    Ks = np.array([0.0, 500.0, 1000.0, 2000.0, 3000.0, 4000.0])
    alphas = anisotropy_parameter(Ks, diameter)
    kernels.moment_anisotropy_varying(drive, offsets, beta, axes, alphas,
                                      anisotropy_table().values, out)
    exact = mean_moment(B, model="anisotropy", diameter=diameter, anisotropy=Ks[:, None],
                        easy_axis=axes[:, None])
    assert np.abs(out.transpose(0, 2, 1) - exact).max() <= DOCUMENTED_MAX_ERROR


def test_lissajous_periods_and_mixing_orders():
    assert fields.period_samples(2) == 1632 and fields.num_frequencies(2) == 817
    assert fields.period_samples(3) == 53856 and fields.num_frequencies(3) == 26929
    assert fields.mixing_index((1, 0), 2) == 16 and fields.mixing_index((0, 1), 2) == 17
    assert fields.mixing_index((1, 1, 1), 3) == 528 + 561 + 544
    f = fields.rfft_frequencies(2)
    np.testing.assert_allclose(f[16], 2.5e6 / 102)  # x drive frequency sits at bin 16
    drive = fields.drive_field([0.01, 0.02, 0.03], 2)
    assert drive.shape == (1632, 3) and np.all(drive[:, 2] == 0)
    np.testing.assert_allclose(drive[1, 0], 0.01 * np.cos(2 * np.pi / 102))
