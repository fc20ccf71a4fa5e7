"""The documentation (docs/, Sphinx + MyST + autodoc) builds with warnings as errors."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytest.importorskip("sphinx", reason="Sphinx (dev extra) is not installed")
pytest.importorskip("myst_parser", reason="myst-parser (dev extra) is not installed")


def test_docs_build_without_warnings(tmp_path):
    out = tmp_path / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(REPO / "docs"), str(out)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for page in ("index", "tutorials/quick_tour", "howto/denoise", "reference/data",
                 "explanations/onnx", "installation"):
        assert (out / f"{page}.html").is_file(), page
    # the reference is generated from the docstrings, not written by hand
    data_page = (out / "reference" / "data.html").read_text(encoding="utf-8")
    assert "openmpi_data" in data_page and "load_transms_mat" in data_page
    if (REPO / "docs" / "scaling.md").is_file():
        assert (out / "scaling.html").is_file()
