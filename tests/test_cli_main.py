"""The CLI group lists every command and loads each one lazily."""

import subprocess
import sys

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
