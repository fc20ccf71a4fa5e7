"""Every example notebook (jupytext percent-format script) runs on stand-in data.

Each ``examples/notebooks/*.py`` is executed as a script in a subprocess with a small
stand-in grid (``PYMPISR_STANDIN_GRID``), a fresh cache and a temporary output folder
(``PYMPISR_NOTEBOOK_OUT``). A notebook lists the files it wrote in
``<out>/<notebook>.outputs.json``; each must exist and be non-empty. Notebooks added
later are picked up automatically. Julia notebooks (``*.jl``) are linted with fatou
(they need Julia with MPIFiles/MPIReco to run).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "examples" / "notebooks").glob("*.py"))
JULIA_NOTEBOOKS = sorted((REPO / "examples" / "notebooks").glob("*.jl"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.mark.slow  # runs each notebook end to end (1 to 4 min each on a busy CPU)
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(notebook, cache, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYMPISR_STANDIN_GRID": "7", "PYMPISR_CACHE": str(cache),
           "PYMPISR_NOTEBOOK_OUT": str(out), "MPLBACKEND": "Agg"}
    env.pop("PYMPISR_MODELS", None)
    result = subprocess.run([sys.executable, str(notebook)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    listing = out / f"{notebook.stem}.outputs.json"
    assert listing.is_file(), f"{notebook.name} did not write {listing.name}"
    names = json.loads(listing.read_text())
    assert names, f"{notebook.name} lists no outputs"
    for name in names:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name


def test_there_are_notebooks():
    assert NOTEBOOKS and JULIA_NOTEBOOKS


@pytest.mark.skipif(shutil.which("fatou", path=str(Path(sys.executable).parent)) is None,
                    reason="fatou (the Julia linter of the dev extra) is not installed")
def test_julia_notebooks_lint_clean():
    fatou = shutil.which("fatou", path=str(Path(sys.executable).parent))
    result = subprocess.run([fatou, "lint", "--no-config", *map(str, JULIA_NOTEBOOKS)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "error" not in result.stdout.lower(), result.stdout
