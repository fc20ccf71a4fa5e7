"""The CLI group lists every command and loads each one lazily."""

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from pympisr.cli import COMMANDS, main


def test_help_lists_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


def test_every_registered_command_imports():
    for name in COMMANDS:
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0, f"{name}: {result.output}"


def test_import_pympisr_stays_light():
    code = "import sys, pympisr; print(any(m in sys.modules for m in ('torch', 'onnxruntime', 'juliacall')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


def test_user_errors_are_reported_without_traceback(tmp_path):
    # a metadata-only MDF has no system matrix to restore: the MDFError's message, exit 1
    result = CliRunner().invoke(main, ["restore", str(REAL / "simulated_scanner_v2.1.0_nodata.mdf"),
                                       "--out", str(tmp_path / "out.mdf")])
    assert result.exit_code == 1
    assert "Error:" in result.output and "/measurement" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out.mdf").exists()
