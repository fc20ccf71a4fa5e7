"""Stand-in OpenMPI files: MDF-valid, OpenMPI's layout and scanner settings, cached."""

import h5py
import numpy as np
import pytest

import pympisr
from pympisr import openmpi, openmpi_standin
from pympisr.errors import InvalidInputError, StandInDataWarning
from pympisr.mdf import validate

GRID = 5


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    with pytest.warns(StandInDataWarning, match="SIMULATED stand-in"):
        files = openmpi.openmpi_data("resolution", cache=cache, grid=GRID, progress=False)
    return cache, files


def test_standin_is_flagged_and_valid(standin):
    _, files = standin
    assert files.standin and files.phantom == "resolution"
    assert "stand-in" in files.source
    for path in (files.calibration, files.measurement, files.reference):
        assert validate(path) == [], path
        with h5py.File(path) as f:
            assert f["/_pympisr/standin"][()] == 1
            assert f["/experiment/isSimulation"][()] == 1


def test_calibration_has_openmpi_layout(standin):
    _, files = standin
    background = openmpi.SCANNER["background_scans"]
    with h5py.File(files.calibration) as f:
        data = f["/measurement/data"]
        k = f["/measurement/frequencySelection"].shape[0]
        assert data.shape == (1, 3, k, GRID**3 + background)
        assert f["/measurement/isFastFrameAxis"][()] == 1
        assert f["/measurement/isFourierTransformed"][()] == 1
        assert f["/measurement/isBackgroundCorrected"][()] == 0
        flags = f["/measurement/isBackgroundFrame"][()]
        assert flags.sum() == background and flags[-background:].all()
        assert list(f["/calibration/size"][()]) == [GRID] * 3
        np.testing.assert_allclose(f["/calibration/fieldOfView"][()], [0.038, 0.038, 0.019])
        np.testing.assert_allclose(np.diag(f["/acquisition/gradient"][0, 0]), [-1, -1, 2])
        assert f["/acquisition/drivefield/divider"][()].ravel().tolist() == [102, 96, 99]
        np.testing.assert_allclose(f["/acquisition/drivefield/strength"][()].ravel(), 0.012)
        assert f["/acquisition/drivefield/baseFrequency"][()] == 2.5e6
        assert f["/acquisition/receiver/numSamplingPoints"][()] == 53856
        assert f["/acquisition/receiver/transferFunction"].shape == (3, k)
        assert f["/calibration/snr"].shape == (1, 3, k)


def test_noise_floor_is_realistic(standin):
    _, files = standin
    noisy = pympisr.load_system_matrix(files.calibration)
    clean = pympisr.load_system_matrix(files.reference)
    assert noisy.data.shape == clean.data.shape
    np.testing.assert_array_equal(noisy.frequencies, clean.frequencies)
    # a mix of strong and noise-dominated components, as in a real calibration
    assert 0.1 < np.mean(noisy.snr > 2) < 0.95
    assert noisy.snr.max() > 20
    # background correction removed the static background: the residual is noise-sized
    residual = noisy.data - clean.data
    assert np.abs(residual.mean()) < 0.2 * np.abs(residual).std()


def test_measurement_matches_calibration(standin):
    _, files = standin
    meas = pympisr.load_measurement(files.measurement)
    sm = pympisr.load_system_matrix(files.calibration)
    np.testing.assert_allclose(meas.frequencies, sm.frequencies)
    assert meas.num_channels == 3 and meas.background is not None


def test_standin_is_reused(standin, monkeypatch):
    cache, files = standin
    mtimes = [p.stat().st_mtime_ns for p in (files.calibration, files.reference)]

    def fail(*args, **kwargs):
        raise AssertionError("stand-in simulated again although cached")

    monkeypatch.setattr(openmpi_standin, "_clean_system_matrix", fail)
    with pytest.warns(StandInDataWarning):
        again = openmpi.openmpi_data("resolution", cache=cache, grid=GRID, progress=False)
    assert again == files
    assert [p.stat().st_mtime_ns for p in (files.calibration, files.reference)] == mtimes
    # another phantom reuses the calibration and adds only its measurement
    with pytest.warns(StandInDataWarning):
        other = openmpi.openmpi_data("concentration", cache=cache, grid=GRID, progress=False)
    assert other.calibration == files.calibration and other.measurement.is_file()
    assert validate(other.measurement) == []


def test_grid_from_environment(monkeypatch):
    monkeypatch.setenv("PYMPISR_STANDIN_GRID", "7")
    assert openmpi.standin_grid() == 7
    monkeypatch.setenv("PYMPISR_STANDIN_GRID", "two")
    with pytest.raises(InvalidInputError, match="PYMPISR_STANDIN_GRID"):
        openmpi.standin_grid()
    monkeypatch.delenv("PYMPISR_STANDIN_GRID")
    assert openmpi.standin_grid() == 19


def test_phantom_without_standin(tmp_path):
    with pytest.raises(InvalidInputError, match="no simulated stand-in"):
        openmpi_standin.write_standin(tmp_path, phantom="cone", grid=GRID)


def test_transfer_function_model():
    f = np.array([1e3, 30e3, 300e3, 5e6])
    tf = openmpi_standin.receive_chain_transfer_function(f)
    assert tf.shape == (3, 4) and tf.dtype == np.complex64
    mag = np.abs(tf[0])
    assert mag[0] < 0.05 and mag[2] > 0.8 and mag[3] < 0.05   # band-pass
    np.testing.assert_allclose(np.abs(tf[1]) / mag, 0.9, rtol=1e-5)
