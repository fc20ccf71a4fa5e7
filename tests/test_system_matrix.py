"""The in-memory data models validate shapes and provide consistent geometry."""

import numpy as np
import pytest

from pympisr import Measurement, SystemMatrix


def _sm(grid=(4, 3, 2), channels=2, freqs=5) -> SystemMatrix:
    nx, ny, nz = grid
    rng = np.random.default_rng(0)
    data = rng.normal(size=(channels, freqs, nz, ny, nx)) + 1j * rng.normal(size=(channels, freqs, nz, ny, nx))
    return SystemMatrix(data=data, frequencies=np.arange(freqs) * 1e3, grid=grid,
                        fov=[0.04, 0.03, 0.02], center=[0.0, 0.001, 0.0])


def test_data_is_complex64_and_dims():
    sm = _sm()
    assert sm.data.dtype == np.complex64
    assert sm.dims == 3 and _sm(grid=(4, 3, 1)).dims == 2
    assert sm.num_voxels == 24 and sm.spatial_shape == (2, 3, 4)


def test_grid_must_match_data():
    with pytest.raises(ValueError, match="grid"):
        SystemMatrix(data=np.zeros((1, 2, 1, 3, 4)), frequencies=[1, 2], grid=(3, 4, 1), fov=[1, 1, 1])


@pytest.mark.parametrize("field,value", [("snr", np.ones((3, 3))), ("background", np.ones((2, 2, 4))),
                                         ("transfer_function", np.ones((2, 4)))])
def test_side_arrays_are_shape_checked(field, value):
    with pytest.raises(ValueError, match=field):
        _sm().replace(**{field: value})


def test_voxel_centers_follow_mdf_convention():
    sm = _sm()
    centers = sm.voxel_centers()
    assert centers.shape == (2, 3, 4, 3)
    # x fastest: the first x centre is center - fov/2 + fov/(2N)
    np.testing.assert_allclose(centers[0, 0, 0], [-0.02 + 0.005, 0.001 - 0.015 + 0.005, -0.01 + 0.005])
    # centres are symmetric about the FOV centre
    np.testing.assert_allclose(centers.reshape(-1, 3).mean(axis=0), sm.center, atol=1e-12)


def test_matrix_rows_in_requested_order():
    sm = _sm()
    rows = np.array([[1, 4], [0, 0], [1, 2]])
    mat = sm.matrix(rows)
    assert mat.shape == (3, sm.num_voxels)
    np.testing.assert_array_equal(mat[0], sm.data[1, 4].reshape(-1))
    np.testing.assert_array_equal(mat[2], sm.data[1, 2].reshape(-1))
    assert sm.matrix().shape == (2 * 5, 24)


def test_replace_copies_metadata():
    sm = _sm()
    sm.metadata["/study/name"] = "a"
    other = sm.replace(data=sm.data * 2)
    other.metadata["/study/name"] = "b"
    assert sm.metadata["/study/name"] == "a"


def test_measurement_shapes():
    meas = Measurement(data=np.ones((3, 2, 5)), frequencies=np.arange(5.0))
    assert (meas.num_frames, meas.num_channels, meas.num_frequencies) == (3, 2, 5)
    with pytest.raises(ValueError, match="frequencies"):
        Measurement(data=np.ones((3, 2, 5)), frequencies=np.arange(4.0))
