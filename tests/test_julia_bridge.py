"""Tests of the Julia bridge (pympisr.julia), the Julia package metadata and its lint.

Without Julia (the build machines) the bridge must report itself unavailable and fail
with one clear error; tests marked ``julia`` run only where juliacall and a Julia with
MPIFiles/MPIReco exist.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import pympisr
from pympisr import julia

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "julia" / "MPISR"
JULIA_DEPS = ("MPIFiles", "MPIReco", "ONNXRunTime", "NPZ")

needs_julia = pytest.mark.skipif(not julia.available(), reason="Julia not available")


# ------------------------------------------------------------------ without Julia
def test_import_pympisr_does_not_import_juliacall() -> None:
    code = ("import sys, pympisr, pympisr.julia; "
            "assert 'juliacall' not in sys.modules, 'juliacall imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


def test_available_is_a_bool_and_never_raises() -> None:
    assert isinstance(julia.available(), bool)


@pytest.mark.skipif(julia.available(), reason="Julia is available here")
def test_without_julia_everything_raises_one_clear_error(tmp_path: Path) -> None:
    assert julia.available() is False
    with pytest.raises(julia.JuliaUnavailableError) as info:
        julia.require()
    message = str(info.value)
    for needed in ("pip install 'pympisr[julia]'", "juliacall", "MPIFiles", "MPIReco"):
        assert needed in message
    assert isinstance(info.value, RuntimeError)

    path = tmp_path / "sm.mdf"
    path.write_bytes(b"not read")
    with pytest.raises(julia.JuliaUnavailableError):
        julia.load_system_matrix(path)
    with pytest.raises(julia.JuliaUnavailableError):
        julia.load_measurement(path, bg_correction=True)
    sm = pympisr.SystemMatrix(data=np.ones((1, 2, 1, 2, 3), np.complex64),
                              frequencies=[1e3, 2e3], grid=(3, 2, 1), fov=[0.03, 0.02, 0.001])
    meas = pympisr.Measurement(data=np.ones((1, 1, 2), np.complex64), frequencies=[1e3, 2e3])
    with pytest.raises(julia.JuliaUnavailableError):
        julia.JuliaBackend()
    with pytest.raises(julia.JuliaUnavailableError):
        pympisr.reconstruct(sm, meas, backend="julia")


@pytest.mark.skipif(julia.available(), reason="Julia is available here")
def test_backend_julia_of_the_reader_gives_the_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "sm.mdf"
    path.write_bytes(b"not read")
    with pytest.raises(julia.JuliaUnavailableError, match="pympisr\\[julia\\]"):
        pympisr.load_system_matrix(path, backend="julia")


class FakeBridge:
    """Stands in for the Julia module PympisrBridge: returns what its documented Julia
    code returns (arrays in Julia's index order) so the Python half can be tested."""

    def __init__(self, sm: pympisr.SystemMatrix | None = None,
                 meas: pympisr.Measurement | None = None) -> None:
        self.sm, self.meas = sm, meas

    def load_system_matrix(self, path, bins, bg, tf):  # noqa: ANN001, ANN201
        sm = self.sm
        ks = np.arange(sm.num_frequencies) if bins is None else np.asarray(bins)
        c, _, nz, ny, nx = sm.data.shape
        # MPIFiles' S (voxels, rows), voxels x fastest, handed over as (K, C, voxels)
        data = sm.data[:, ks].reshape(c, ks.size, -1).transpose(1, 0, 2)
        return SimpleNamespace(
            data=np.asfortranarray(data), frequencies=sm.frequencies[ks], bins=ks,
            grid=np.array([nx, ny, nz]), fov=sm.fov, center=sm.center,
            snr=None if sm.snr is None else np.asfortranarray(sm.snr[:, ks].T),
            background=np.asfortranarray(sm.background[:, :, ks].transpose(2, 1, 0)),
            transfer_function=None, bg_corrected=False, tf_corrected=False)

    def load_measurement(self, path, bins, bg, tf):  # noqa: ANN001, ANN201
        meas = self.meas
        ks = np.arange(meas.num_frequencies) if bins is None else np.asarray(bins)
        return SimpleNamespace(
            data=np.asfortranarray(meas.data[:, :, ks].transpose(2, 1, 0)),
            frequencies=meas.frequencies[ks], bins=ks, background=None,
            transfer_function=None, bg_corrected=False, tf_corrected=False, num_averages=1)

    def reconstruct(self, S, u, iterations, lambd):  # noqa: ANN001, ANN201
        # MPIReco's Kaczmarz setup: unweighted, lambda normalised by ||S||_F^2 / N
        assert S.dtype == np.complex64 and u.dtype == np.complex64
        x = pympisr.kaczmarz(np.asarray(S), np.asarray(u), iterations=iterations,
                             lambd=lambd, engine="numpy")
        return np.asfortranarray(x.real.astype(np.float32))  # (N, F) like the Julia side


def _problem() -> tuple[pympisr.SystemMatrix, pympisr.Measurement]:
    rng = np.random.default_rng(3)
    c, k, nz, ny, nx = 2, 6, 2, 3, 4
    data = (rng.standard_normal((c, k, nz, ny, nx))
            + 1j * rng.standard_normal((c, k, nz, ny, nx))).astype(np.complex64)
    sm = pympisr.SystemMatrix(
        data=data, frequencies=np.arange(k) * 1e4, grid=(nx, ny, nz), fov=[0.04, 0.03, 0.02],
        snr=rng.uniform(0, 20, (c, k)).astype(np.float32), frequency_indices=np.arange(k),
        background=(0.01 * rng.standard_normal((3, c, k))).astype(np.complex64))
    phantom = rng.uniform(0, 1, (5, nz * ny * nx))
    u = np.einsum("ckn,fn->fck", data.reshape(c, k, -1), phantom)
    meas = pympisr.Measurement(data=u, frequencies=sm.frequencies,
                               frequency_indices=sm.frequency_indices)
    return sm, meas


def test_loader_reorders_julia_arrays(tmp_path: Path) -> None:
    sm, meas = _problem()
    backend = julia.JuliaBackend(bridge=FakeBridge(sm, meas))
    path = tmp_path / "sm.mdf"
    path.write_bytes(b"read by the fake bridge")
    loaded = backend.load_system_matrix(path, frequencies=[4, 1])
    np.testing.assert_array_equal(loaded.data, sm.data[:, [4, 1]])
    np.testing.assert_array_equal(loaded.snr, sm.snr[:, [4, 1]])
    np.testing.assert_array_equal(loaded.background, sm.background[:, :, [4, 1]])
    assert loaded.grid == sm.grid and loaded.frequency_indices.tolist() == [4, 1]
    measured = backend.load_measurement(path)
    np.testing.assert_array_equal(measured.data, meas.data)
    with pytest.raises(FileNotFoundError):
        backend.load_measurement(tmp_path / "missing.mdf")


def test_module_loaders_use_the_bridge_that_require_returns(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sm, meas = _problem()
    monkeypatch.setattr(julia, "require", lambda: FakeBridge(sm, meas))
    path = tmp_path / "sm.mdf"
    path.write_bytes(b"read by the fake bridge")
    np.testing.assert_array_equal(julia.load_system_matrix(path, frequencies=[2]).data,
                                  sm.data[:, [2]])
    np.testing.assert_array_equal(pympisr.load_measurement(path, backend="julia").data,
                                  meas.data)


def test_reconstruct_matches_the_native_pipeline() -> None:
    sm, meas = _problem()
    backend = julia.JuliaBackend(bridge=FakeBridge())
    options = dict(snr_thresh=4.0, min_freq=1e4, rec_channels=[1, 0], iterations=4,
                   lambd=1e-3, frames=[0, 1, 2, 3], num_averages=2)
    via_bridge = pympisr.reconstruct(sm, meas, backend=backend, **options)
    native = pympisr.reconstruct(sm, meas, engine="numpy", **options)
    assert via_bridge.shape == native.shape == (2, 2, 3, 4)
    np.testing.assert_allclose(via_bridge, native, rtol=1e-5, atol=1e-6)
    # row weighting is applied by the pipeline for both backends alike
    weighted = pympisr.reconstruct(sm, meas, backend=backend, weighting="row_norm", **options)
    native_weighted = pympisr.reconstruct(sm, meas, engine="numpy", weighting="row_norm",
                                          **options)
    np.testing.assert_allclose(weighted, native_weighted, rtol=1e-4, atol=1e-5)
    assert not np.allclose(weighted, native, rtol=1e-3, atol=1e-4)


def test_julia_reconstruct_function_was_replaced_by_the_backend_argument() -> None:
    with pytest.raises(AttributeError, match="backend='julia'"):
        julia.reconstruct  # noqa: B018


# ------------------------------------------------------------------ package metadata
def test_project_toml_declares_deps_with_compat_bounds() -> None:
    project = tomllib.loads((PACKAGE / "Project.toml").read_text())
    assert project["name"] == "MPISR"
    for dep in JULIA_DEPS:
        assert dep in project["deps"], dep
        assert project["compat"].get(dep), f"no [compat] bound for {dep}"
    assert project["compat"].get("julia")
    for extra in project["extras"]:
        assert project["compat"].get(extra), f"no [compat] bound for test dependency {extra}"
    assert "Test" in project["targets"]["test"]


def test_juliapkg_json_matches_project_toml() -> None:
    declared = json.loads((ROOT / "pympisr" / "juliapkg.json").read_text())
    project = tomllib.loads((PACKAGE / "Project.toml").read_text())
    assert set(declared["packages"]) == set(JULIA_DEPS)
    for name, spec in declared["packages"].items():
        assert spec["uuid"] == project["deps"][name], name
        assert spec["version"] == project["compat"][name], name


def _fatou() -> str | None:
    """The fatou executable: beside this Python (the venv's bin, which need not be on
    PATH when tests run as `.venv/bin/python -m pytest`), else on PATH."""
    beside = Path(sys.executable).parent / "fatou"
    return str(beside) if beside.is_file() else shutil.which("fatou")


FATOU = _fatou()


@pytest.mark.skipif(FATOU is None, reason="fatou not installed")
def test_fatou_lint_reports_no_errors() -> None:
    result = subprocess.run([FATOU, "lint", "--no-config", "--output", "json", "julia"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    diagnostics = json.loads(result.stdout or "[]")
    errors = [d for d in diagnostics if d.get("severity") == "error"]
    assert not errors, errors
    assert any(PACKAGE.glob("src/*.jl")) and (PACKAGE / "test" / "runtests.jl").is_file()


@pytest.mark.skipif(FATOU is None, reason="fatou not installed")
def test_embedded_bridge_source_lints_clean(tmp_path: Path) -> None:
    source = tmp_path / "PympisrBridge.jl"
    source.write_text(julia._BRIDGE_SOURCE)
    result = subprocess.run([FATOU, "lint", "--no-config", "--output", "json", str(source)],
                            capture_output=True, text=True, timeout=120)
    errors = [d for d in json.loads(result.stdout or "[]") if d.get("severity") == "error"]
    assert not errors, errors


# ------------------------------------------------------------------ with Julia
def _small_system_matrix() -> pympisr.SystemMatrix:
    rng = np.random.default_rng(0)
    channels, freqs, grid = 2, 5, (4, 3, 1)
    data = (rng.standard_normal((channels, freqs, 1, 3, 4))
            + 1j * rng.standard_normal((channels, freqs, 1, 3, 4))).astype(np.complex64)
    return pympisr.SystemMatrix(
        data=data, frequencies=np.arange(freqs) * 1e4, grid=grid, fov=[0.04, 0.03, 0.001],
        snr=rng.uniform(0, 20, (channels, freqs)).astype(np.float32),
        frequency_indices=np.arange(freqs))


@pytest.mark.julia
@needs_julia
def test_julia_reader_matches_python_reader(tmp_path: Path) -> None:
    path = tmp_path / "sm.mdf"
    pympisr.save_system_matrix(_small_system_matrix(), path)
    native = pympisr.load_system_matrix(path, bg_correction=False, tf_correction=False)
    via_julia = julia.load_system_matrix(path, bg_correction=False, tf_correction=False)
    assert via_julia.grid == native.grid
    np.testing.assert_allclose(via_julia.data, native.data, rtol=1e-6)
    np.testing.assert_array_equal(via_julia.frequency_indices, native.frequency_indices)
    np.testing.assert_allclose(via_julia.frequencies, native.frequencies)
    some = julia.load_system_matrix(path, frequencies=[3, 1], bg_correction=False)
    np.testing.assert_allclose(some.data, native.data[:, [3, 1]], rtol=1e-6)


@pytest.mark.julia
@needs_julia
def test_julia_reconstruction_recovers_a_phantom() -> None:
    sm = _small_system_matrix()
    phantom = np.zeros((1, 3, 4), np.float32)
    phantom[0, 1, 2] = 1.0
    u = sm.matrix() @ phantom.reshape(-1)
    meas = pympisr.Measurement(data=u.reshape(1, sm.num_channels, sm.num_frequencies),
                               frequencies=sm.frequencies, frequency_indices=sm.frequency_indices)
    image = pympisr.reconstruct(sm, meas, backend="julia", iterations=50, lambd=1e-6)
    assert image.shape == (1, 1, 3, 4)
    assert np.unravel_index(np.argmax(image[0]), image[0].shape) == (0, 1, 2)
