"""Fitting the simulator to a system matrix (pympisr.fitting)."""

from __future__ import annotations

import json
import warnings

import h5py
import numpy as np
import pytest

from pympisr.errors import FitWarning, InvalidInputError
from pympisr.fitting import ParameterSpace, fit, nominal_geometry
from pympisr.simulation.mismatch import state_geometry
from pympisr.simulation.parameters import SimulationParameters
from pympisr.simulation.system_matrix import simulate_system_matrix

TRUTH = SimulationParameters(
    dims=2, grid=(16, 14, 1), fov=(0.021, 0.019, 0.0013), center=(0.0004, -0.0003, 0.0),
    model="anisotropy", diameter=21e-9, anisotropy=2500.0, easy_axis=(0.0, 0.0, 1.0),
    fluid=True, gamma=1.2, drive_amplitude=(0.011, 0.010, 0.0), gradient=(1.1, 1.0, -2.1))


def noisy_stated(snr: float, seed: int = 0):
    """Simulated SM with white noise (std = peak / snr) and a stated geometry with
    errors of up to 4 % (gradient, drive) and 2 % of the FOV (centre)."""
    rng = np.random.default_rng(seed)
    clean = simulate_system_matrix(TRUTH, max_frequency=400e3)
    sigma = float(np.abs(clean.data).max()) / snr
    noise = rng.standard_normal(clean.data.shape) + 1j * rng.standard_normal(clean.data.shape)
    sm, errors = state_geometry(clean.replace(data=clean.data + sigma * noise), rng,
                                gradient_error=0.04, drive_error=0.04, center_error=0.02)
    return sm, errors, sigma


def gauge_truth(stated_drive: np.ndarray):
    """The true gradient and drive in the fit's gauge (geometric mean of the drive
    amplitudes held at the stated value; model docstring)."""
    c = np.exp(np.mean(np.log(TRUTH.drive_amplitude[:2] / stated_drive[:2])))
    return TRUTH.gradient[:2] / c, TRUTH.drive_amplitude[:2] / c


@pytest.fixture(scope="module")
def fitted():
    sm, errors, sigma = noisy_stated(snr=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)  # SNR 30 is well determined
        result = fit(sm, noise=sigma, components=16, states=(True,), max_nfev=25,
                     progress=False)
    return sm, errors, result


def test_noise_dominated_fit_warns():
    """At SNR 1.5 too few components rise significantly above the noise: the fit
    refuses. Made to use them anyway, it says its geometry and uncertainties cannot be
    trusted."""
    sm, _, sigma = noisy_stated(snr=1.5)
    with pytest.raises(InvalidInputError, match="rise above the noise"):
        fit(sm, noise=sigma, components=8, states=(True,), max_nfev=1, progress=False)
    with pytest.warns(FitWarning, match="mostly noise"):
        fit(sm, noise=sigma, components=8, states=(True,), max_nfev=1, progress=False,
            min_significance=0.0)


def test_fit_recovers_perturbed_geometry(fitted):
    sm, errors, result = fitted
    nominal = nominal_geometry(sm)
    assert np.max(np.abs(errors["gradient"][:2])) > 0.01  # the start really is off
    gradient, drive = gauge_truth(nominal.drive_amplitude)
    assert np.allclose(result.values["gradient"][:2], gradient, rtol=0.01)
    assert np.allclose(result.values["drive_amplitude"][:2], drive, rtol=0.01)
    center_error = (result.values["center"][:2] - TRUTH.center[:2]) / TRUTH.fov[:2]
    assert np.all(np.abs(center_error) < 0.02)
    assert np.all(np.abs(sm.center[:2] - TRUTH.center[:2]) / TRUTH.fov[:2]
                  > np.abs(center_error))
    # gauge-free quantities: the drive-field FOV 2 A / |G|
    true_fov = 2 * TRUTH.drive_amplitude[:2] / np.abs(TRUTH.gradient[:2])
    assert np.allclose(result.gauge_invariants["drive_fov"], true_fov, rtol=0.01)
    assert result.fluid
    assert np.all(np.isfinite(result.uncertainties["gradient"]))
    assert np.median(result.relative_residual) < 0.5
    assert "gradient[x]" in result.summary()


def test_to_mdf_round_trip(fitted, tmp_path):
    from pympisr.mdf.reader import load_system_matrix
    from pympisr.mdf.validate import validate

    _, _, result = fitted
    path = result.to_mdf(tmp_path / "fitted.mdf")
    assert validate(path) == []
    loaded = load_system_matrix(path)
    expected = simulate_system_matrix(result.parameters, frequencies=loaded.frequency_indices)
    np.testing.assert_allclose(loaded.data, expected.data, rtol=1e-5, atol=1e-6 * np.abs(
        expected.data).max())
    with h5py.File(path, "r") as f:
        assert f["/experiment/isSimulation"][()] == 1
        record = json.loads(f["/_pympisr/fit/record"][()])
        assert record["values"]["fluid"] is True
        assert record["options"] == {"model_error": 0.01, "min_significance": 5.0,
                                     "geometry_tolerance": [0.05, 0.05, 0.03]}
        np.testing.assert_allclose(f["/_pympisr/simulation/gradient"][()],
                                   result.values["gradient"])
    with pytest.raises(FileExistsError):
        result.to_mdf(path)
    png = result.plot(tmp_path / "fit.png")
    assert png.stat().st_size > 1000


def test_missing_geometry_is_named():
    sm, _, _ = noisy_stated(snr=100)
    meta = {k: v for k, v in sm.metadata.items() if k != "/acquisition/gradient"}
    with pytest.raises(InvalidInputError, match="/acquisition/gradient"):
        fit(sm.replace(metadata=meta), progress=False)


def test_parameter_space_round_trip():
    sm, _, _ = noisy_stated(snr=100)
    space = ParameterSpace(nominal_geometry(sm), fluid=False)
    x = space.start(diameter=20e-9, anisotropy=1200.0, azimuth=0.3, polar=1.1)
    x[:2] = [0.02, -0.01]
    x[2] = 0.015
    values = space.values(x)
    nominal = space.nominal
    assert np.allclose(values["gradient"][:2], nominal.gradient[:2] * np.exp([0.02, -0.01]))
    # gauge: the drive amplitudes keep their geometric mean
    assert np.isclose(np.prod(values["drive_amplitude"][:2]),
                      np.prod(nominal.drive_amplitude[:2]))
    assert np.isclose(values["diameter"], 20e-9) and np.isclose(values["anisotropy"], 1200.0)
    assert np.isclose(np.linalg.norm(values["easy_axis"]), 1.0)
    params = space.parameters(x)
    assert params.fluid is False and params.grid == sm.grid


def test_components_without_signal_are_not_selected():
    """Only components whose energy rises significantly above the noise are fitted: a
    component without signal has a simulated counterpart near zero that changes shape
    from one parameter value to the next and makes the cost jitter (solver docstring)."""
    from pympisr.fitting.solver import select_components

    sm, _, sigma = noisy_stated(snr=3)
    clean = simulate_system_matrix(TRUTH, max_frequency=400e3)
    n = sm.num_voxels
    clean_energy = np.sum(np.abs(clean.data.reshape(*clean.data.shape[:2], -1)) ** 2, axis=-1)
    noise_std = 2.0 * np.sqrt(n) * sigma**2  # std of a noise-only component's energy

    def signal(chosen: np.ndarray) -> np.ndarray:
        return clean_energy[chosen[:, 0], chosen[:, 1]] / noise_std

    chosen = select_components(sm, np.full(sm.data.shape[:2], sigma), 40)
    assert 3 <= chosen.shape[0] < 40
    assert np.all(signal(chosen) > 1.0)
    unfiltered = select_components(sm, np.full(sm.data.shape[:2], sigma), 40, 0.0)
    assert unfiltered.shape[0] == 40 and np.any(signal(unfiltered) < 0.5)
    with pytest.raises(InvalidInputError, match="rise above the noise"):
        select_components(sm, np.full(sm.data.shape[:2], sigma), 40, 1e6)


def test_stated_geometry_is_a_prior_for_weakly_determined_fits():
    """At low SNR the stated geometry holds the estimate near it (the prior), and the
    reported uncertainty includes the prior instead of understating the error."""
    sm, _, sigma = noisy_stated(snr=3, seed=1)
    nominal = nominal_geometry(sm)
    tolerance = (0.002, 0.002, 0.002)  # a tight prior: the fit cannot leave the stated values
    result = fit(sm, noise=sigma, components=12, states=(True,), max_nfev=6, progress=False,
                 geometry_tolerance=tolerance)
    assert np.allclose(result.values["gradient"][:2], nominal.gradient[:2], rtol=0.01)
    assert np.all(np.abs(result.values["center"][:2] - nominal.center[:2])
                  < 0.01 * nominal.fov[:2])
    relative = result.uncertainties["gradient"][:2] / np.abs(result.values["gradient"][:2])
    assert np.all(relative > 0.1 * tolerance[0]) and np.all(relative < 1.5 * tolerance[0])
    with pytest.raises(InvalidInputError, match="tolerance"):
        fit(sm, noise=sigma, progress=False, geometry_tolerance=(0.05, 0.0, 0.03))


def test_vector_of_a_simulation_is_its_gauge_equivalent():
    """``ParameterSpace.vector_of(truth)`` simulates the truth's normalised components
    (the gauge of the model docstring) and reproduces the gauge-free quantities."""
    sm, _, _ = noisy_stated(snr=100)
    space = ParameterSpace(nominal_geometry(sm), fluid=True)
    x = space.vector_of(TRUTH)
    assert abs(np.mean(np.log(space.values(x)["drive_amplitude"][:2]
                              / space.nominal.drive_amplitude[:2]))) < 1e-12
    true_fov = 2 * TRUTH.drive_amplitude[:2] / np.abs(TRUTH.gradient[:2])
    assert np.allclose(space.gauge_invariants(x)["drive_fov"], true_fov, rtol=1e-12)
    bins = np.arange(2, 40)
    a = simulate_system_matrix(TRUTH, frequencies=bins).data[:2].reshape(2, bins.size, -1)
    b = simulate_system_matrix(space.parameters(x), frequencies=bins).data[:2]
    b = b.reshape(2, bins.size, -1)
    scale = np.sum(b.conj() * a, axis=-1, keepdims=True) / np.sum(np.abs(b) ** 2, axis=-1,
                                                                 keepdims=True)
    assert np.linalg.norm(a - scale * b) < 1e-4 * np.linalg.norm(a)
    with pytest.raises(InvalidInputError, match="fluid"):
        ParameterSpace(nominal_geometry(sm), fluid=False).vector_of(TRUTH)


def test_cli_fit_passes_options_and_refuses_bad_ones(tmp_path):
    """``pympisr fit``: the options reach the fit (recorded in the fitted file), outputs
    are not overwritten unless asked, and bad options or hopeless files get errors."""
    from click.testing import CliRunner

    from pympisr import save_system_matrix
    from pympisr.cli import main
    from pympisr.simulation.noise import with_white_noise

    rng = np.random.default_rng(5)
    clean = simulate_system_matrix(TRUTH, max_frequency=400e3)
    noisy = with_white_noise(clean, float(np.abs(clean.data).max()) / 30, 50, rng)
    sm, _ = state_geometry(noisy, rng, gradient_error=0.02, drive_error=0.02,
                           center_error=0.01)
    path = save_system_matrix(sm, tmp_path / "calib.mdf")
    out, png = tmp_path / "fit.mdf", tmp_path / "fit.png"
    args = ["fit", str(path), "-n", "10", "--state", "fluid", "--model-error", "0.02",
            "--geometry-tolerance", "0.01,0.02,0.01", "--out", str(out), "--plot", str(png)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "gradient" in res.output and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with h5py.File(out, "r") as f:
        record = json.loads(f["/_pympisr/fit/record"][()])
    assert record["values"]["fluid"] is True
    assert record["options"] == {"model_error": 0.02, "min_significance": 5.0,
                                 "geometry_tolerance": [0.01, 0.02, 0.01]}
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "exists" in again.output
    for option, value in (("--geometry-tolerance", "0.05,0.05"),
                          ("--geometry-tolerance", "0.05,-1,0.03"),
                          ("--min-significance", "nan"), ("--state", "frozen")):
        bad = CliRunner().invoke(main, ["fit", str(path), option, value])
        assert bad.exit_code == 2 and option in bad.output, bad.output
    hopeless = CliRunner().invoke(main, ["fit", str(path), "--min-significance", "1e9"])
    assert hopeless.exit_code == 1 and "--min-significance" in hopeless.output
    assert "calib.mdf" in hopeless.output and "rise above the noise" in hopeless.output
