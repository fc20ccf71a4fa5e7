"""MDF writing: spec layout, provenance, no overwrite, atomic (no partial files)."""

from __future__ import annotations

import hashlib
import os

import h5py
import numpy as np
import pytest
from mdf_factory import make_system_matrix_file

import pympisr
import pympisr.mdf.writer as writer


def _sm(background: bool = True) -> pympisr.SystemMatrix:
    rng = np.random.default_rng(0)
    shape = (2, 5, 2, 3, 4)
    data = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    bg = (rng.standard_normal((3, 2, 5)) + 0j) if background else None
    return pympisr.SystemMatrix(data=data, frequencies=np.arange(5) * 1e4, grid=(4, 3, 2),
                                fov=[0.04, 0.03, 0.02], center=[0, 0, 0.01],
                                snr=np.full((2, 5), 3.0), background=bg,
                                frequency_indices=np.arange(5),
                                metadata={"/_pympisr/run/seed": np.int64(7)})


def _digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_written_layout_follows_the_spec(tmp_path):
    sm = _sm()
    out = pympisr.save_system_matrix(sm, tmp_path / "sm.mdf")
    with h5py.File(out, "r") as h5:
        assert h5["/version"][()].decode() == "2.1.0"
        data = h5["/measurement/data"]
        assert data.shape == (1, 2, 5, 24 + 3)                    # J x C x K x N
        h5type = data.id.get_type()                               # {r, i} compound
        assert isinstance(h5type, h5py.h5t.TypeCompoundID)
        assert [h5type.get_member_name(i) for i in range(2)] == [b"r", b"i"]
        for flag in ("isFastFrameAxis", "isFourierTransformed", "isFramePermutation"):
            assert h5[f"/measurement/{flag}"].dtype == np.int8
            assert h5[f"/measurement/{flag}"][()] == 1
        assert h5["/measurement/isFrequencySelection"][()] == 0
        mask = h5["/measurement/isBackgroundFrame"][()]
        assert mask.dtype == np.int8 and mask.tolist() == [0] * 24 + [1] * 3
        raw = data[0, 1, 3]                                       # channel 1, frequency 3
        np.testing.assert_allclose(raw[:24], sm.data[1, 3].reshape(-1), rtol=1e-6)
        np.testing.assert_allclose(raw[24:], sm.background[:, 1, 3], rtol=1e-6)
        assert h5["/calibration/size"][()].tolist() == [4, 3, 2]
        assert h5["/calibration/snr"].shape == (1, 2, 5)
        assert h5["/acquisition/receiver/numSamplingPoints"][()] == 8
        assert h5["/acquisition/numFrames"][()] == 27
        assert h5["/_pympisr/version"][()].decode() == pympisr.__version__
        assert "/_pympisr/writtenAt" in h5 and h5["/_pympisr/run/seed"][()] == 7
    assert pympisr.mdf.validate(out) == []


def test_refuses_to_overwrite(tmp_path):
    target = tmp_path / "sm.mdf"
    pympisr.save_system_matrix(_sm(), target)
    before = _digest(target)
    with pytest.raises(FileExistsError):
        pympisr.save_system_matrix(_sm(background=False), target)
    assert _digest(target) == before
    pympisr.save_system_matrix(_sm(background=False), target, overwrite=True)
    assert pympisr.load_system_matrix(target).background is None


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = writer._write_fields

    def failing(h5, fields, path):
        original(h5, dict(list(fields.items())[:5]), path)
        calls["n"] += 1
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(writer, "_write_fields", failing)
    with pytest.raises(KeyboardInterrupt):
        pympisr.save_system_matrix(_sm(), tmp_path / "sm.mdf")
    assert calls["n"] == 1
    assert os.listdir(tmp_path) == []


def test_interrupted_overwrite_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "sm.mdf"
    pympisr.save_system_matrix(_sm(), target)
    before = _digest(target)

    def failing(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(writer, "_chunks", failing)
    with pytest.raises(OSError, match="disk full"):
        pympisr.save_system_matrix(_sm(), target, overwrite=True)
    assert os.listdir(tmp_path) == ["sm.mdf"]
    assert _digest(target) == before


def test_measurement_write_refuses_overwrite(tmp_path):
    truth = make_system_matrix_file(tmp_path / "sm.mdf")
    meas = pympisr.Measurement(data=np.ones((2, 3, 17), dtype=np.complex64),
                               frequencies=truth.frequencies, frequency_indices=np.arange(17))
    out = pympisr.save_measurement(meas, tmp_path / "m.mdf")
    with pytest.raises(FileExistsError):
        pympisr.save_measurement(meas, out)
    with h5py.File(out, "r") as h5:
        assert h5["/measurement/data"].shape == (2, 1, 3, 17)     # N x J x C x K
        assert h5["/measurement/isFastFrameAxis"][()] == 0
    assert pympisr.mdf.validate(out) == []


def test_bad_metadata_value_is_an_mdf_error(tmp_path):
    sm = _sm()
    sm.metadata["/_pympisr/bad"] = {"not": "storable"}
    with pytest.raises(pympisr.MDFError, match="/_pympisr/bad"):
        pympisr.save_system_matrix(sm, tmp_path / "sm.mdf")
    assert os.listdir(tmp_path) == []


def test_changed_grid_drops_stale_per_voxel_metadata(tmp_path):
    truth = make_system_matrix_file(tmp_path / "sm.mdf", grid=(4, 3, 1))
    sm = pympisr.load_system_matrix(truth.path)
    assert sm.metadata["/calibration/positions"].shape == (12, 3)
    finer = sm.replace(data=np.repeat(sm.data, 2, axis=-1), grid=(8, 3, 1))
    out = pympisr.save_system_matrix(finer, tmp_path / "finer.mdf")
    back = pympisr.load_system_matrix(out)
    assert "/calibration/positions" not in back.metadata
    assert back.grid == (8, 3, 1)
    assert pympisr.mdf.validate(out) == []


def test_partial_tracer_group_is_completed(tmp_path):
    sm = _sm()
    sm.metadata["/tracer/name"] = np.array(["a", "b"], dtype=object)
    out = pympisr.save_system_matrix(sm, tmp_path / "sm.mdf")
    assert pympisr.mdf.validate(out) == []
    back = pympisr.load_system_matrix(out)
    assert back.metadata["/tracer/name"].tolist() == ["a", "b"]
    assert back.metadata["/tracer/volume"].shape == (2,)
