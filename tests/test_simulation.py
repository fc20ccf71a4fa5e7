"""Simulated system matrices: independent reference, physics sanity, metadata, MDF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pympisr
from pympisr.simulation.parameters import (SAMPLER_RANGES, reference_parameters,
                                           sample_parameters)
from pympisr.simulation.system_matrix import simulate_system_matrix

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"

BASE = dict(dims=2, grid=(40, 40, 1), fov=(0.024, 0.024, 0.001), center=(0.0, 0.0, 0.0),
            model="langevin", diameter=25e-9, drive_amplitude=(0.012, 0.012, 0.0),
            gradient=(1.0, 1.0, -2.0))


@pytest.fixture(scope="module")
def langevin_sm():
    return simulate_system_matrix(seed=0, **BASE)


def numpy_reference(diameter, amplitude, gradient, grid, fov, center):
    """Few-line full-period simulation: Lissajous field, Langevin, rfft, time derivative."""
    V = 1632
    t = np.arange(V) / 2.5e6
    f = 2.5e6 / np.array([102, 96])
    drive = np.stack([amplitude[0] * np.cos(2 * np.pi * f[0] * t),
                      amplitude[1] * np.cos(2 * np.pi * f[1] * t), 0 * t], -1)
    xs, ys = (center[a] - fov[a] / 2 + (np.arange(grid[a]) + 0.5) * fov[a] / grid[a]
              for a in (0, 1))
    Y, X = np.meshgrid(ys, xs, indexing="ij")  # x fastest after ravel
    r = np.stack([X.ravel(), Y.ravel(), np.full(X.size, center[2])], -1)
    B = drive[None] + (r * gradient)[:, None]
    beta = 474e3 * np.pi * diameter**3 / 6 / (1.380649e-23 * 293.0)
    xi = beta * np.linalg.norm(B, axis=-1)
    m = ((1 / np.tanh(xi) - 1 / xi) / np.linalg.norm(B, axis=-1))[..., None] * B
    S = np.fft.rfft(m, axis=1) * (2j * np.pi * np.arange(V // 2 + 1) / V)[None, :, None]
    return S.transpose(2, 1, 0)  # (3, K, N)


def test_matches_independent_numpy_simulation():
    params = sample_parameters(21, dims=2).replace(model="langevin", grid=(14, 11, 1))
    sm = simulate_system_matrix(params)
    ref = numpy_reference(params.diameter, params.drive_amplitude, params.gradient,
                          params.grid, params.fov, params.center)
    got = sm.data.reshape(3, sm.data.shape[1], -1)
    energy = (np.abs(ref) ** 2).sum(-1).ravel()
    top = np.argsort(energy)[::-1][:50]
    a = ref.reshape(-1, ref.shape[-1])[top]
    b = got.reshape(-1, got.shape[-1])[top]
    corr = np.abs(np.sum(a.conj() * b, 1)) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert corr.min() >= 0.999
    # same scale too (global scale factor 1)
    np.testing.assert_allclose(np.linalg.norm(b), np.linalg.norm(a), rtol=1e-4)


def test_shape_frequencies_and_grid(langevin_sm):
    sm = langevin_sm
    assert sm.data.shape == (3, 817, 1, 40, 40) and sm.data.dtype == np.complex64
    np.testing.assert_allclose(sm.frequencies, np.arange(817) * 2.5e6 / 1632)
    np.testing.assert_array_equal(sm.frequency_indices, np.arange(817))
    assert sm.dims == 2 and sm.transfer_function is None
    assert np.all(sm.data[:, 0] == 0)  # time derivative removes DC
    # 2D Langevin particles at z = 0 have no z moment
    assert np.abs(sm.data[2]).max() <= 1e-6 * np.abs(sm.data[0]).max()


def spatial_roughness(sm, n=50):
    flat = sm.data.reshape(-1, sm.grid[1], sm.grid[0])
    energy = (np.abs(flat) ** 2).sum((1, 2))
    top = np.argsort(energy)[::-1][:n]
    return np.mean([((np.abs(np.diff(flat[i], axis=0)) ** 2).sum()
                     + (np.abs(np.diff(flat[i], axis=1)) ** 2).sum()) / energy[i] for i in top])


def test_higher_gradient_gives_finer_structure():
    rough = [spatial_roughness(simulate_system_matrix(
        seed=0, **{**BASE, "gradient": (g, g, -2 * g)})) for g in (0.5, 1.0, 2.0)]
    assert rough[0] < rough[1] < rough[2]
    assert rough[2] > 2 * rough[0]


def test_mixing_order_oscillates_more_with_mx(langevin_sm):
    sm = langevin_sm
    for my in (0, 1):
        ratios, crossings = [], []
        for mx in range(1, 7):
            img = sm.data[0, 16 * mx + 17 * my, 0]
            dx = np.abs(np.diff(img, axis=1)) ** 2
            ratios.append(dx.sum() / (np.abs(img) ** 2).sum())
            row = img.imag[sm.grid[1] // 2]
            signs = np.sign(row[np.abs(row) > 0.02 * np.abs(row).max()])
            crossings.append(int(np.count_nonzero(np.diff(signs))))
        assert np.all(np.diff(ratios) > 0), ratios
        assert crossings[:5] == sorted(crossings[:5]) and crossings[4] >= crossings[0] + 3


@pytest.mark.parametrize("fluid", [False, True])
def test_anisotropy_differs_and_converges_to_langevin(langevin_sm, fluid):
    ref = langevin_sm.data
    diffs = []
    for K in (3000.0, 300.0, 30.0, 3.0):
        sm = simulate_system_matrix(seed=0, **{**BASE, "model": "anisotropy"}, anisotropy=K,
                                    fluid=fluid, gamma=1.0, easy_axis=(1.0, 0.3, 0.2))
        diffs.append(np.linalg.norm(sm.data - ref) / np.linalg.norm(ref))
    assert diffs[0] > 0.1
    assert all(a > b for a, b in zip(diffs, diffs[1:]))
    assert diffs[-1] < 2e-3


def test_reproducible_from_seed_and_overrides():
    a = simulate_system_matrix(seed=5, grid=(12, 13, 1))
    b = simulate_system_matrix(seed=5, grid=(12, 13, 1))
    c = simulate_system_matrix(seed=6, grid=(12, 13, 1))
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.allclose(a.data, c.data)
    assert a.metadata["/_pympisr/simulation/seed"] == 5
    np.testing.assert_array_equal(a.metadata["/_pympisr/simulation/grid"], [12, 13, 1])
    with pytest.raises(TypeError, match="unknown simulation parameter"):
        simulate_system_matrix(seed=1, gradeint=(1, 1, -2))


def test_metadata_records_parameters_and_simulation_flags():
    params = sample_parameters(8, dims=2)
    sm = simulate_system_matrix(params, frequencies=np.arange(40))
    meta = sm.metadata
    assert meta["/calibration/method"] == "simulation"
    assert int(meta["/experiment/isSimulation"]) == 1
    for name in ("diameter", "anisotropy", "gamma", "fluid", "drive_amplitude", "gradient",
                 "fov", "center", "grid", "model", "easy_axis", "temperature", "saturation"):
        assert f"/_pympisr/simulation/{name}" in meta, name
    np.testing.assert_allclose(meta["/_pympisr/simulation/gradient"], params.gradient)
    assert meta["/_pympisr/simulation/diameter"] == params.diameter
    np.testing.assert_allclose(meta["/calibration/positions"],
                               sm.voxel_centers().reshape(-1, 3))


def test_sampler_follows_ranges():
    for seed in range(60):
        p = sample_parameters(seed, dims=3)
        lo, hi = SAMPLER_RANGES["diameter"]
        assert lo <= p.diameter <= hi
        assert SAMPLER_RANGES["anisotropy"][0] <= p.anisotropy <= SAMPLER_RANGES["anisotropy"][1]
        assert np.all((p.gradient[:2] >= 0.1) & (p.gradient[:2] <= 1.5))
        np.testing.assert_allclose(p.gradient[2], -(p.gradient[0] + p.gradient[1]))
        assert np.all((p.drive_amplitude >= 5e-3) & (p.drive_amplitude <= 14e-3))
        assert all(12 <= g <= 30 for g in p.grid)
        df_fov = 2 * p.drive_amplitude / np.abs(p.gradient)
        assert np.all(p.fov >= 0.8 * df_fov - 1e-12) and np.all(p.fov <= 1.2 * df_fov + 1e-12)
        assert np.all(np.abs(p.center) <= np.abs(df_fov - p.fov) / 2 + 1e-12)
        np.testing.assert_allclose(np.linalg.norm(p.easy_axis), 1.0)
    p2 = sample_parameters(4, dims=2)
    assert p2.grid[2] == 1 and p2.drive_amplitude[2] == 0
    assert sample_parameters(4, dims=2).to_dict() == p2.to_dict()


def test_frequency_selection_matches_full_band(langevin_sm):
    bins = np.array([16, 17, 33, 100])
    sub = simulate_system_matrix(seed=0, frequencies=bins, **BASE)
    np.testing.assert_array_equal(sub.frequency_indices, bins)
    np.testing.assert_allclose(sub.data, langevin_sm.data[:, bins], rtol=1e-6, atol=1e-6)
    low = simulate_system_matrix(seed=0, max_frequency=100e3, **BASE)
    assert low.frequencies.max() <= 100e3 and low.num_frequencies == 66


def test_real_transfer_function_is_applied(langevin_sm):
    path = REAL / "transfer_function_3ch.h5"
    sm = simulate_system_matrix(seed=0, transfer_function=path, **BASE)
    tf = sm.transfer_function
    assert tf.shape == (3, 817) and not sm.is_transfer_function_corrected
    import h5py

    with h5py.File(path) as f:
        freqs = f["frequencies"][()]
        raw = f["transferFunction"][()]
    k = 300  # 459.6 kHz, inside the measured range
    np.testing.assert_allclose(np.abs(tf[:, k]), [np.interp(sm.frequencies[k], freqs,
                               np.abs(raw[c, :, 0] + 1j * raw[c, :, 1])) for c in range(3)],
                               rtol=1e-5)
    np.testing.assert_allclose(sm.data, langevin_sm.data * tf[:, :, None, None, None],
                               rtol=1e-5, atol=1e-6)
    arr = simulate_system_matrix(seed=0, transfer_function=tf, **BASE)
    np.testing.assert_allclose(arr.data, sm.data, rtol=1e-6)


def test_3d_small_grid_and_bin_subset():
    params = sample_parameters(2, dims=3).replace(grid=(3, 4, 2))
    full = simulate_system_matrix(params)
    assert full.data.shape == (3, 26929, 2, 4, 3)
    energy = (np.abs(full.data) ** 2).sum((2, 3, 4))
    # the z drive fundamental (bin 544) carries z-channel signal
    assert energy[2, 544] > 100 * np.median(energy[2])
    bins = np.array([528, 544, 561, 1633])
    sub = simulate_system_matrix(params, frequencies=bins)
    np.testing.assert_allclose(sub.data, full.data[:, bins], rtol=1e-6, atol=1e-6)


def test_saves_as_valid_mdf(tmp_path):
    from pympisr.mdf import validate
    sm = simulate_system_matrix(seed=3, grid=(12, 12, 1))
    path = tmp_path / "sim.mdf"
    pympisr.save_system_matrix(sm, path)
    assert validate(path) == []
    from click.testing import CliRunner

    from pympisr.cli import main

    for cmd in ("validate", "info"):
        result = CliRunner().invoke(main, [cmd, str(path)])
        assert result.exit_code == 0, result.output
    back = pympisr.load_system_matrix(path)
    np.testing.assert_allclose(back.data, sm.data, rtol=1e-6, atol=1e-6)
    for name in ("diameter", "anisotropy", "gradient", "drive_amplitude", "seed"):
        key = f"/_pympisr/simulation/{name}"
        np.testing.assert_allclose(np.asarray(back.metadata[key], float),
                                   np.asarray(sm.metadata[key], float))


def test_strongest_components_ranking(langevin_sm):
    from pympisr.plotting import strongest_components

    comps = strongest_components(langevin_sm, 4)
    energies = [float(np.sum(np.abs(c["image"]) ** 2)) for c in comps]
    assert energies == sorted(energies, reverse=True)
    all_energy = (np.abs(langevin_sm.data) ** 2).sum((2, 3, 4))
    c0, k0 = np.unravel_index(np.argmax(all_energy), all_energy.shape)
    assert (comps[0]["channel"], comps[0]["frequency_index"]) == (c0, k0)
    np.testing.assert_allclose(comps[0]["frequency"], k0 * 2.5e6 / 1632)


def test_plot_command_on_mdf_and_dataset_item(tmp_path):
    from click.testing import CliRunner
    from matplotlib.image import imread

    from pympisr.cli import main
    from pympisr.datasets import write_item
    from pympisr.simulation.generate import SelectionRule, simulate_item

    params = sample_parameters(2, dims=2).replace(grid=(12, 14, 1))
    item_file = tmp_path / "00000.h5"
    write_item(item_file, simulate_item(params, SelectionRule(max_components=20)))
    mdf = tmp_path / "sim.mdf"
    pympisr.save_system_matrix(simulate_system_matrix(params, frequencies=np.arange(80)), mdf)
    for source in (item_file, mdf):
        png = tmp_path / f"{source.stem}.png"
        result = CliRunner().invoke(main, ["plot", str(source), "--components", "6",
                                           "--out", str(png)])
        assert result.exit_code == 0, result.output
        image = imread(png)
        assert image.shape[0] > 200 and image.shape[1] > 400
        assert image[..., :3].std() > 0.05  # not blank
        again = CliRunner().invoke(main, ["plot", str(source), "--out", str(png)])
        assert again.exit_code != 0 and "exists" in again.output


@pytest.mark.parametrize("fluid", [True, False])
def test_reference_bruker_parameters(fluid):
    params = reference_parameters(2, fluid=fluid, grid=(20, 20, 1))
    assert params.diameter == 19e-9 and params.gamma == 2.0
    assert params.anisotropy == (3500.0 if fluid else 1400.0)
    np.testing.assert_allclose(params.easy_axis, [-np.sqrt(0.5), np.sqrt(0.5), 0.0])
    sm = simulate_system_matrix(params, frequencies=np.arange(1, 120))
    energy = (np.abs(sm.data) ** 2).sum((2, 3, 4))
    # the drive fundamentals dominate their own receive channels
    assert np.argmax(energy[0]) + 1 == 16 and np.argmax(energy[1]) + 1 == 17


@pytest.mark.parametrize("fluid", [True, False])
def test_voxel_subset_matches_full_grid(fluid):
    """A voxel's spectrum does not depend on which other voxels are simulated (the
    fluid anisotropy strength is normalised over the whole grid, not the subset)."""
    from pympisr.simulation.system_matrix import simulate_spectra

    params = reference_parameters(3, fluid=fluid, grid=(5, 5, 5))
    bins = np.arange(1, 60)
    full = simulate_spectra(params, bins=bins)
    voxels = np.arange(50, 75)  # one z slice
    subset = simulate_spectra(params, bins=bins, voxels=voxels)
    np.testing.assert_allclose(subset, full[:, :, voxels], rtol=1e-4,
                               atol=1e-6 * np.abs(full).max())
