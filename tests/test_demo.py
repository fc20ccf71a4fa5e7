"""The built-in end-to-end example: restoration must help, files must be safe."""

import numpy as np
import pytest

from pympisr import load_system_matrix
from pympisr.demo import format_table, run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return run_demo(out, grid=24, progress=False)


def test_restoration_improves_system_matrix_and_image(demo):
    rows = {row["system matrix"]: row for row in demo.rows}
    assert rows["restored"]["SM PSNR (dB)"] > rows["noisy"]["SM PSNR (dB)"] + 3
    assert rows["restored"]["SM SSIM"] > rows["noisy"]["SM SSIM"]
    assert rows["restored"]["image correlation"] > rows["noisy"]["image correlation"]
    assert rows["clean"]["image correlation"] > 0.8
    assert "| restored |" in format_table(demo.rows)


def test_files_written_and_restored_file_is_a_valid_mdf(demo):
    import pympisr

    for path in demo.files.values():
        assert path.is_file()
    assert pympisr.mdf.validate(demo.files["restored"]) == []
    noisy = load_system_matrix(demo.files["noisy"])
    restored = load_system_matrix(demo.files["restored"])
    assert restored.data.shape == noisy.data.shape
    assert not np.array_equal(restored.data, noisy.data)


def test_refuses_to_overwrite_an_earlier_run(demo):
    with pytest.raises(FileExistsError, match="overwrite"):
        run_demo(demo.files["clean"].parent, grid=24, progress=False)
