"""The real files in ../shared/data/real (MPIMeasurements.jl, see their README)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from mdf_factory import metadata_equal

import pympisr
from pympisr.mdf import describe, validate

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
DAQ = REAL / "daq_systemMatrix_v2.0.mdf"
NODATA = REAL / "simulated_scanner_v2.1.0_nodata.mdf"
SHA256 = {
    DAQ: "fccf17478b526a11d1c0bba41720b43d0651c9be05997b5ee485e671fee71f53",
    NODATA: "f5c8009e9b6b52b5a1750c237037e44e836e9abbfa6fce03f6e9e168644bdda5",
}


@pytest.fixture(autouse=True)
def _inputs_unchanged():
    yield
    for path, digest in SHA256.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_daq_v20_calibration_loads_in_frequency_domain():
    sm = pympisr.load_system_matrix(DAQ)
    assert sm.data.shape == (1, 77, 1, 1, 9)                  # 1 channel, 77 freqs, 9 pos
    assert sm.grid == (9, 1, 1)
    assert sm.snr is None and sm.background is None and sm.transfer_function is None
    np.testing.assert_array_equal(sm.frequency_indices, np.arange(77))
    # bandwidth 1953125 Hz, V = 152 samples: bin spacing = sampling rate / V
    np.testing.assert_allclose(np.diff(sm.frequencies), 2 * 1953125.0 / 152)
    np.testing.assert_allclose(sm.fov, [0.09, 0.001, 0.001])
    with h5py.File(DAQ, "r") as h5:
        raw = h5["/measurement/data"][()].astype(np.float64)[:, 0, 0, :]   # (9, 152)
        scale, offset = h5["/acquisition/receiver/dataConversionFactor"][0]
    expected = np.fft.rfft(scale * raw + offset, axis=-1)                 # (9, 77)
    np.testing.assert_allclose(sm.data[0, :, 0, 0, :], expected.T, rtol=1e-4,
                               atol=1e-4 * np.abs(expected).max())
    assert sm.metadata["/tracer/injectionTime"].tolist() == ["2018-04-19T09:49:08.841"]
    assert sm.metadata["/scanner/operator"] == "Tobi"
    assert "/measurement/isTransposed" not in sm.metadata


def test_daq_v20_round_trip_and_validation(tmp_path):
    problems = validate(DAQ)
    assert any("isTransposed" in p for p in problems)
    assert any("numPeriods" in p for p in problems)
    sm = pympisr.load_system_matrix(DAQ)
    out = pympisr.save_system_matrix(sm, tmp_path / "daq_v21.mdf")
    assert validate(out) == []
    again = pympisr.load_system_matrix(out)
    np.testing.assert_array_equal(again.data, sm.data)
    np.testing.assert_allclose(again.frequencies, sm.frequencies, rtol=1e-12)
    assert metadata_equal(sm.metadata, again.metadata) == []


def test_daq_v20_partial_frequencies():
    full = pympisr.load_system_matrix(DAQ)
    part = pympisr.load_system_matrix(DAQ, frequencies=[3, 1])
    np.testing.assert_array_equal(part.data, full.data[:, [3, 1]])


def test_metadata_only_file_gives_clear_error():
    with pytest.raises(pympisr.MDFError) as info:
        pympisr.load_system_matrix(NODATA)
    assert info.value.field == "/measurement"
    assert str(NODATA) in str(info.value) and "no measurement data" in str(info.value)
    with pytest.raises(pympisr.MDFError, match="/measurement"):
        pympisr.load_measurement(NODATA)


def test_metadata_only_file_describes():
    info = describe(NODATA)
    assert info["kind"] == "metadata only"
    assert info["version"] == "2.1.0"
    assert info["channels"] == 1 and info["samples"] == 625
    assert validate(NODATA) == []


def test_bare_hdf5_is_not_an_mdf():
    path = REAL / "daq_sm_3x10_timedomain.h5"
    with pytest.raises(pympisr.MDFError, match="/measurement"):
        pympisr.load_system_matrix(path)
    assert any("/version" in p for p in validate(path))
