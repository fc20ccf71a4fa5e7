"""pympisr.restore: MDF -> restored MDF round trip, provenance, safety, model checks."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import pympisr
from pympisr import SystemMatrix
from pympisr.cli import main
from pympisr.export import export_model
from pympisr.model_zoo import (ModelIntegrityError, manifest_entry, register_model,
                               resolve_model)
from pympisr.models import build_model
from pympisr.restoration import OnnxRestorer, restore, restore_system_matrix


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder with a random 2D and 3D tiny DnCNN registered in a manifest."""
    folder = tmp_path_factory.mktemp("zoo")
    for dims in (2, 3):
        torch.manual_seed(dims)
        net = build_model("dncnn-tiny", dims=dims).eval()
        result = export_model(net, folder / f"tiny{dims}d.onnx",
                              metadata={"task": "denoise", "architecture": "DnCNN"})
        register_model(manifest_entry(f"tiny-{dims}d", result), folder)
    return folder


@pytest.fixture(autouse=True)
def use_zoo(zoo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYMPISR_MODELS", str(zoo))


def small_sm(dims: int = 2, seed: int = 0) -> SystemMatrix:
    rng = np.random.default_rng(seed)
    c, k = 3, 6
    grid = (11, 9, 1) if dims == 2 else (7, 6, 5)
    data = rng.standard_normal((c, k, grid[2], grid[1], grid[0])) * 1e-3
    data = (data + 1j * rng.standard_normal(data.shape) * 1e-3).astype(np.complex64)
    idx = np.arange(20, 20 + k)
    return SystemMatrix(data=data, frequencies=idx * 2.5e6 / 1632, grid=grid,
                        fov=[0.02, 0.018, 0.01], snr=rng.uniform(1, 30, (c, k)),
                        frequency_indices=idx)


@pytest.fixture
def mdf(tmp_path: Path) -> Path:
    return pympisr.save_system_matrix(small_sm(), tmp_path / "sm.mdf")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_restorer_runs_components_in_batches(zoo: Path) -> None:
    restorer = OnnxRestorer("tiny-2d", batch_size=4)
    x = small_sm().data[:, :, 0].reshape(-1, 9, 11)
    y = restorer(x)
    assert y.shape == x.shape and y.dtype == np.complex64
    whole = OnnxRestorer("tiny-2d", batch_size=100)(x)
    np.testing.assert_allclose(y, whole, rtol=1e-5, atol=1e-9)
    assert not np.allclose(y, x)
    with pytest.raises(ValueError, match="2D"):
        restorer(x[0])
    with pytest.raises(ValueError, match="no mask"):
        restorer(x, mask=np.ones(x.shape, bool))


def test_restore_round_trip(mdf: Path) -> None:
    before = digest(mdf)
    out = restore(mdf, model="tiny-2d", safety=None, progress=False)
    assert out == mdf.with_name("sm_restored.mdf") and out.exists()
    assert digest(mdf) == before
    source = pympisr.load_system_matrix(mdf, bg_correction=True, tf_correction=False)
    restored = pympisr.load_system_matrix(out, bg_correction=True, tf_correction=False)
    expected = OnnxRestorer("tiny-2d")(source.data[:, :, 0].reshape(-1, 9, 11))
    np.testing.assert_allclose(restored.data[:, :, 0].reshape(-1, 9, 11), expected,
                               rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    np.testing.assert_array_equal(restored.frequencies, source.frequencies)
    np.testing.assert_allclose(restored.snr, source.snr)
    with h5py.File(out, "r") as f:
        prov = f["/_pympisr/restoration"]
        assert prov["model"][()].decode() == "tiny-2d"
        assert prov["modelSha256"][()].decode() == resolve_model("tiny-2d").entry["sha256"]
        assert prov["source"][()].decode() == str(mdf.resolve())
        assert prov["restoredComponents"][()].all()
        assert prov["noiseSource"][()].decode() == "snr"
        assert prov["noiseStd"].shape == source.data.shape[:2]


def test_restore_refuses_to_overwrite(mdf: Path, tmp_path: Path) -> None:
    out = restore(mdf, model="tiny-2d", progress=False)
    stamp = digest(out)
    with pytest.raises(FileExistsError, match="overwrite"):
        restore(mdf, model="tiny-2d", progress=False)
    assert digest(out) == stamp
    with pytest.raises(ValueError, match="input"):
        restore(mdf, model="tiny-2d", out=mdf, overwrite=True, progress=False)
    restore(mdf, model="tiny-2d", progress=False, overwrite=True)
    assert out.exists()


def test_snr_threshold_selects_components() -> None:
    sm = small_sm()
    thresh = float(np.median(sm.snr))
    restored = restore_system_matrix(sm, model="tiny-2d", snr_thresh=thresh, progress=False)
    keep = sm.snr < thresh
    np.testing.assert_array_equal(restored.data[keep], sm.data[keep])
    assert not np.allclose(restored.data[~keep], sm.data[~keep])
    flags = restored.metadata["/_pympisr/restoration/restoredComponents"]
    np.testing.assert_array_equal(flags, (~keep).astype(np.int8))
    with pytest.raises(ValueError, match="snr"):
        restore_system_matrix(sm.replace(snr=None), model="tiny-2d", snr_thresh=1.0)


def test_default_model_follows_dims() -> None:
    sm3 = small_sm(dims=3)
    restored = restore_system_matrix(sm3, progress=False)
    assert restored.data.shape == sm3.data.shape
    assert restored.metadata["/_pympisr/restoration/model"] == "tiny-3d"
    with pytest.raises(ValueError, match="3D"):
        restore_system_matrix(sm3, model="tiny-2d")
    with pytest.raises(pympisr.errors.PympisrError, match="task"):
        restore_system_matrix(sm3, task="inpaint")


def test_checksum_mismatch_is_refused(zoo: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "badzoo"
    shutil.copytree(zoo, bad)
    with open(bad / "tiny2d.onnx", "ab") as fh:
        fh.write(b"\0")
    monkeypatch.setenv("PYMPISR_MODELS", str(bad))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        OnnxRestorer("tiny-2d")
    with pytest.raises(ModelIntegrityError):
        OnnxRestorer(bad / "tiny2d.onnx")


def test_restore_cli(mdf: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.mdf"
    runner = CliRunner()
    res = runner.invoke(main, ["restore", str(mdf), "--model", "tiny-2d", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.exists()
    again = runner.invoke(main, ["restore", str(mdf), "--model", "tiny-2d", "--out", str(out)])
    assert again.exit_code != 0 and "overwrite" in again.output
