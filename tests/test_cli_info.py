"""``pympisr info`` and ``pympisr validate``."""

from __future__ import annotations

from pathlib import Path

import h5py
from click.testing import CliRunner
from mdf_factory import make_system_matrix_file

from pympisr.cli import main

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


def test_info_summarises_a_calibration(tmp_path):
    truth = make_system_matrix_file(tmp_path / "sm.mdf", grid=(4, 3, 2),
                                    frequency_selection=[1, 4, 6], background_frames=5)
    result = CliRunner().invoke(main, ["info", str(truth.path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "calibration" in out and "2.1.0" in out
    assert "4 x 3 x 2" in out
    assert "frequencies:       3" in out
    assert "background frames: 5" in out
    assert "frames:            29" in out
    assert "frequency selection=yes" in out and "fast frame axis=yes" in out
    assert "KiB" in out


def test_info_on_metadata_only_file():
    result = CliRunner().invoke(main, ["info", str(REAL / "simulated_scanner_v2.1.0_nodata.mdf")])
    assert result.exit_code == 0, result.output
    assert "metadata only" in result.output and "no /measurement" in result.output


def test_info_rejects_non_hdf5(tmp_path):
    bogus = tmp_path / "notes.mdf"
    bogus.write_text("not an HDF5 file")
    result = CliRunner().invoke(main, ["info", str(bogus)])
    assert result.exit_code != 0
    assert "not a readable HDF5 file" in result.output


def test_validate_exit_status(tmp_path):
    good = make_system_matrix_file(tmp_path / "good.mdf")
    result = CliRunner().invoke(main, ["validate", str(good.path)])
    assert result.exit_code == 0, result.output
    assert "valid MDF" in result.output
    bad = make_system_matrix_file(tmp_path / "bad.mdf")
    with h5py.File(bad.path, "a") as h5:
        del h5["/scanner/topology"]
        h5["/calibration/size"][...] = [5, 3, 1]
    result = CliRunner().invoke(main, ["validate", str(bad.path)])
    assert result.exit_code == 1
    assert "/scanner/topology: missing mandatory field" in result.output
    assert "/calibration/size" in result.output
