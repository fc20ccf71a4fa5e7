"""Importers: TranSMS .mat (v5 and v7.3), 3dSMRnet HDF5, plain arrays -> SystemMatrix -> MDF."""

import h5py
import numpy as np
import pytest
import scipy.io

import pympisr
from pympisr.errors import InvalidInputError
from pympisr.importers import load_smrnet_h5, load_transms_mat, system_matrix_from_array

FOV = (0.02, 0.03, 0.01)


def _components(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def _roundtrip(sm, tmp_path):
    path = pympisr.save_system_matrix(sm, tmp_path / "imported.mdf")
    back = pympisr.load_system_matrix(path, bg_correction=False)
    np.testing.assert_array_equal(back.data, sm.data)
    np.testing.assert_allclose(back.frequencies, sm.frequencies)
    return back


def test_transms_mat_v5(tmp_path):
    count, slices, n1, n2 = 4, 2, 6, 5       # y = n1, x = n2
    images = _components((count, slices, n1, n2))
    snr = np.arange(1.0, count + 1)[:, None]
    path = tmp_path / "sm.mat"
    scipy.io.savemat(path, {"myMtx": images.reshape(count * slices, n1 * n2),
                            "snrList": snr, "estNsKestirimi": snr / 10})
    freqs = np.array([3, 5, 8, 9]) * 1000.0
    sm = load_transms_mat(path, fov=FOV, shape=(n1, n2), frequencies=freqs)
    assert sm.grid == (n2, n1, slices) and sm.data.shape == (1, count, slices, n1, n2)
    np.testing.assert_array_equal(sm.data[0, 2, 1], images[2, 1])
    np.testing.assert_allclose(sm.snr[0], snr[:, 0])
    np.testing.assert_array_equal(sm.frequency_indices, [3, 5, 8, 9])
    back = _roundtrip(sm, tmp_path)
    np.testing.assert_allclose(back.metadata["/_pympisr/import/noise_estimate"], snr[:, 0] / 10)


def test_transms_mat_v73_and_placeholder_frequencies(tmp_path):
    count, side = 3, 4
    matrix = _components((count, side * side), seed=1)
    path = tmp_path / "v73.mat"
    # MATLAB v7.3: HDF5 after a 512-byte header, arrays transposed, {real, imag} compounds
    with h5py.File(path, "w", userblock_size=512) as f:
        compound = np.dtype([("real", "<f8"), ("imag", "<f8")])
        stored = np.empty(matrix.T.shape, compound)
        stored["real"], stored["imag"] = matrix.T.real, matrix.T.imag
        f["myMtx"] = stored
        f["snrList"] = np.arange(count, dtype=np.float64)[None, :]
    with open(path, "r+b") as raw:
        raw.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116) + bytes(8)
                  + b"\x00\x02IM")
    with pytest.raises(NotImplementedError):
        scipy.io.loadmat(path)          # scipy refuses v7.3; the importer uses h5py
    sm = load_transms_mat(path, fov=FOV)
    np.testing.assert_allclose(sm.data.reshape(count, -1), matrix, rtol=1e-6)
    assert sm.metadata["/_pympisr/import/frequencies_known"] == 0
    np.testing.assert_array_equal(sm.frequency_indices, [1, 2, 3])
    _roundtrip(sm, tmp_path)


def test_transms_bad_files(tmp_path):
    path = tmp_path / "bad.mat"
    scipy.io.savemat(path, {"other": np.zeros(3)})
    with pytest.raises(InvalidInputError, match=r"bad\.mat: myMtx: missing.*other"):
        load_transms_mat(path, fov=FOV)
    scipy.io.savemat(path, {"myMtx": _components((5, 16)), "snrList": np.ones((2, 1))})
    with pytest.raises(InvalidInputError, match="myMtx: 5 rows are not a multiple"):
        load_transms_mat(path, fov=FOV)
    scipy.io.savemat(path, {"myMtx": _components((2, 15)), "snrList": np.ones((2, 1))})
    with pytest.raises(InvalidInputError, match="not square images"):
        load_transms_mat(path, fov=FOV)
    (tmp_path / "text.mat").write_text("not a mat file")
    with pytest.raises(InvalidInputError, match=r"text\.mat: /: not a readable"):
        load_transms_mat(tmp_path / "text.mat", fov=FOV)


def _write_smrnet(path, volumes, hz, third=None):
    data = np.stack([volumes.real, volumes.imag,
                     np.abs(volumes) if third is None else third], axis=1)
    with h5py.File(path, "w") as f:
        f["data"] = data.astype(np.float32)
        f["hz"] = hz


def test_smrnet_h5_roundtrip(tmp_path):
    volumes = _components((3, 4, 5, 6), seed=2)          # (F, z, y, x)
    hz = np.array([2, 4, 7]) * 2.5e6 / 53856
    _write_smrnet(tmp_path / "sm.h5", volumes, hz)
    sm = load_smrnet_h5(tmp_path / "sm.h5", fov=FOV)
    assert sm.grid == (6, 5, 4)
    np.testing.assert_allclose(sm.data[0], volumes, rtol=1e-6)
    np.testing.assert_array_equal(sm.frequency_indices, [2, 4, 7])
    _roundtrip(sm, tmp_path)


def test_smrnet_bad_files(tmp_path):
    volumes = _components((2, 3, 3, 3))
    _write_smrnet(tmp_path / "wrong.h5", volumes, [1.0, 2.0], third=np.zeros((2, 3, 3, 3)))
    with pytest.raises(InvalidInputError, match=r"wrong\.h5: data: channel 2 is not"):
        load_smrnet_h5(tmp_path / "wrong.h5", fov=FOV)
    sm = load_smrnet_h5(tmp_path / "wrong.h5", fov=FOV, check_magnitude=False)
    np.testing.assert_allclose(sm.data[0], volumes, rtol=1e-6)
    _write_smrnet(tmp_path / "hz.h5", volumes, [1.0, 2.0, 3.0])
    with pytest.raises(InvalidInputError, match="hz: 3 frequencies for 2 components"):
        load_smrnet_h5(tmp_path / "hz.h5", fov=FOV)
    with h5py.File(tmp_path / "nodata.h5", "w") as f:
        f["hz"] = [1.0]
    with pytest.raises(InvalidInputError, match=r"nodata\.h5: data: missing"):
        load_smrnet_h5(tmp_path / "nodata.h5", fov=FOV)


def test_array_import(tmp_path):
    data = _components((2, 3, 12))
    sm = system_matrix_from_array(data, [100.0, 200.0, 400.0], (4, 3, 1), FOV)
    assert sm.data.shape == (2, 3, 1, 3, 4)
    np.testing.assert_array_equal(sm.frequency_indices, [1, 2, 4])
    np.testing.assert_array_equal(sm.data.reshape(2, 3, 12), data)
    _roundtrip(sm, tmp_path)
    with pytest.raises(InvalidInputError, match="12 voxels per row, but grid"):
        system_matrix_from_array(data, [1.0, 2.0, 3.0], (5, 3, 1), FOV)
    with pytest.raises(InvalidInputError, match="not integer multiples"):
        system_matrix_from_array(data, [1.0, np.pi, 7.3], (4, 3, 1), FOV)
    with pytest.raises(InvalidInputError, match="NaN or Inf"):
        system_matrix_from_array(np.full((3, 12), np.nan), [1.0, 2.0, 3.0], (4, 3, 1), FOV)
