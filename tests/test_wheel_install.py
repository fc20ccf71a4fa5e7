"""A normal (non-editable) install finds the shipped models as package data.

The wheel is built from a copy of the checkout (so the build leaves nothing in the
repository), installed with ``--no-deps`` into a temporary ``--target`` folder, and used
from a subprocess whose working directory is outside the repository: pympisr must come
from that folder, ``models_dir()`` must be the installed ``pympisr/onnx_models`` with
its manifest and sha256 checks, and ``pympisr.restore`` must run the default model.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_SKIP = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                               ".pytest_cache", ".hypothesis", "runs", "data", "pympisr_demo")

SCRIPT = r"""
import json, sys
from pathlib import Path
import numpy as np
import pympisr
from pympisr.model_zoo import models_dir, read_manifest, verify_model, default_model

work = Path(sys.argv[1])
resolved = default_model("denoise", 2)
report = {"pympisr": str(Path(pympisr.__file__).resolve()), "models_dir": str(models_dir()),
          "models": [m["name"] for m in read_manifest()["models"]],
          "verified": verify_model(resolved)}
out = pympisr.restore(work / "noisy.mdf", out=work / "restored.mdf", noise=float(sys.argv[2]),
                      progress=False)
noisy = pympisr.load_system_matrix(work / "noisy.mdf", bg_correction=False)
restored = pympisr.load_system_matrix(out, bg_correction=False)
report["restored_shape"] = list(restored.data.shape)
report["changed"] = bool(not np.array_equal(restored.data, noisy.data))
report["finite"] = bool(np.isfinite(restored.data).all())
print("REPORT " + json.dumps(report))
"""


def _noisy_file(path: Path) -> float:
    """A small noisy 2D calibration (smooth complex blobs + white noise); its noise std."""
    import numpy as np

    from pympisr import SystemMatrix, save_system_matrix

    rng = np.random.default_rng(0)
    y, x = np.mgrid[-1:1:16j, -1:1:16j]
    comps = [np.exp(-((x - a) ** 2 + (y - b) ** 2) / 0.1) * np.exp(1j * a * 3)
             for a, b in rng.uniform(-0.6, 0.6, (24, 2))]
    clean = np.asarray(comps, np.complex64).reshape(3, 8, 1, 16, 16)
    sigma = 0.02
    noise = sigma * (rng.standard_normal(clean.shape) + 1j * rng.standard_normal(clean.shape))
    bins = np.arange(10, 18)
    sm = SystemMatrix(data=clean + noise.astype(np.complex64), frequencies=bins * 2.5e6 / 1632,
                      grid=(16, 16, 1), fov=[0.02, 0.02, 0.001], frequency_indices=bins)
    save_system_matrix(sm, path)
    return sigma


def _run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{cmd}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow  # 30 s to 200 s: builds a wheel, starts python with onnxruntime
def test_wheel_install_ships_models(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=_SKIP)
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--quiet", "--wheel-dir", str(wheels), str(source)])
    (wheel,) = wheels.glob("pympisr-*.whl")
    target = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target",
          str(target), str(wheel)])
    shipped = sorted(p.name for p in (target / "pympisr" / "onnx_models").iterdir())
    expected = sorted(p.name for p in (REPO / "onnx_models").iterdir() if p.is_file())
    assert shipped == expected
    work = tmp_path / "work"
    sigma = _noisy_file(work / "noisy.mdf")
    env = {k: v for k, v in os.environ.items() if k not in ("PYMPISR_MODELS", "PYTHONPATH")}
    env["PYTHONPATH"] = str(target)
    result = _run([sys.executable, "-c", SCRIPT, str(work), repr(sigma)], cwd=work, env=env)
    line = next(l for l in result.stdout.splitlines() if l.startswith("REPORT "))
    report = json.loads(line[len("REPORT "):])
    assert Path(report["pympisr"]).is_relative_to(target.resolve())
    assert Path(report["models_dir"]) == (target / "pympisr" / "onnx_models").resolve()
    manifest = json.loads((REPO / "onnx_models" / "manifest.json").read_text())
    assert report["models"] == [m["name"] for m in manifest["models"]]
    assert report["verified"] == "manifest"
    assert report["restored_shape"] == [3, 8, 1, 16, 16]
    assert report["changed"] and report["finite"]


def test_models_dir_order(tmp_path, monkeypatch):
    from pympisr import model_zoo

    monkeypatch.setenv("PYMPISR_MODELS", str(tmp_path))
    assert model_zoo.models_dir() == tmp_path
    monkeypatch.delenv("PYMPISR_MODELS")
    assert model_zoo.models_dir() == REPO / "onnx_models"   # the checkout wins
