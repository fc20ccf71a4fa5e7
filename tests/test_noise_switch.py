"""Noise switch: two exported networks of one task composed into one ONNX graph that
restores each component with the part of its noise level; its metadata, golden files,
refusals and ``pympisr noise-switch``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from pympisr.cli import main
from pympisr.errors import InvalidInputError
from pympisr.export import export_model, read_metadata
from pympisr.export.noise_switch import compose_noise_switch
from pympisr.model_zoo import read_manifest, sha256_file
from pympisr.models import build_model
from pympisr.tasks import get_task


def export_tiny(path: Path, seed: int, *, scale: int = 2, noise: bool = True,
                dims: int = 2) -> Path:
    """An SMRnet-tiny upsampler with random weights, exported end to end."""
    torch.manual_seed(seed)
    net = build_model("smrnet-tiny", dims=dims, scale_factor=scale, noise_channel=noise)
    export_model(net.eval(), path, metadata={"architecture": "SMRnet",
                                             "model_name": "smrnet-tiny",
                                             "noise_range": [0.002 * (seed + 1), 1.0]},
                 task=get_task("upsample", dims, scale), min_size=6)
    return path


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("parts")
    return {"low": export_tiny(root / "low.onnx", 0), "high": export_tiny(root / "high.onnx", 1),
            "x4": export_tiny(root / "x4.onnx", 2, scale=4),
            "plain": export_tiny(root / "plain.onnx", 3, noise=False)}


def run(path: Path, sm: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["restored"], {"sm": sm, "sigma": sigma})[0]


def test_each_component_is_restored_by_the_part_of_its_noise_level(
        parts: dict[str, Path], tmp_path: Path) -> None:
    result = compose_noise_switch(parts["low"], parts["high"], tmp_path / "s.onnx",
                                  level=0.05)
    rng = np.random.default_rng(1)
    sm = (1e-3 * rng.standard_normal((4, 2, 11, 7))).astype(np.float32)
    peak = np.hypot(sm[:, 0], sm[:, 1]).reshape(4, -1).max(axis=1)
    sigma = (np.array([0.001, 0.04, 0.06, 0.5]) * peak).reshape(-1, 1).astype(np.float32)
    out = run(result.path, sm, sigma)
    low, high = run(parts["low"], sm, sigma), run(parts["high"], sm, sigma)
    assert out.shape == (4, 2, 22, 14) and not np.allclose(low, high)
    tol = 1e-6 * np.abs(out).max()
    for i, expected in enumerate((low, low, high, high)):
        np.testing.assert_allclose(out[i], expected[i], rtol=0, atol=tol)
    # the golden files reproduce, and their noise levels lie on both sides of the level
    x, y = np.load(result.golden_input), np.load(result.golden_output)
    golden_sigma = np.load(result.golden_extra["sigma"])
    relative = golden_sigma[:, 0] / np.hypot(x[:, 0], x[:, 1]).reshape(len(x), -1).max(axis=1)
    np.testing.assert_allclose(relative, [1e-3, 1e-2, 1e-1], rtol=1e-5)
    np.testing.assert_allclose(run(result.path, x, golden_sigma), y, rtol=0,
                               atol=1e-6 * np.abs(y).max())


def test_metadata_describe_both_parts(parts: dict[str, Path], tmp_path: Path) -> None:
    result = compose_noise_switch(parts["low"], parts["high"], tmp_path / "s.onnx",
                                  level=0.03, test_metrics={"psnr": {"0": 40.0}})
    meta = read_metadata(result.path)
    options = json.loads(meta["model_options"])
    assert meta["model_name"] == "noise-switch" and options["level"] == 0.03
    assert options["low"]["file"] == "low.onnx" and options["high"]["file"] == "high.onnx"
    assert meta["architecture"] == "NoiseSwitch(SMRnet, SMRnet)"
    assert json.loads(meta["noise_range"]) == [0.002, 1.0]
    assert (meta["task"], meta["scale_factor"], meta["dims"]) == ("upsample", "2", "2")
    assert json.loads(meta["inputs"]) == ["sm", "sigma"]
    assert json.loads(meta["test_metrics"]) == {"psnr": {"0": 40.0}}


def test_refuses_parts_that_do_not_fit_together(parts: dict[str, Path],
                                                tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="differ in scale_factor"):
        compose_noise_switch(parts["low"], parts["x4"], tmp_path / "a.onnx", level=0.05)
    with pytest.raises(InvalidInputError, match=r"plain.onnx: a noise switch needs"):
        compose_noise_switch(parts["low"], parts["plain"], tmp_path / "b.onnx", level=0.05)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InvalidInputError, match="level"):
            compose_noise_switch(parts["low"], parts["high"], tmp_path / "c.onnx", level=bad)
    assert not list(tmp_path.iterdir())
    out = compose_noise_switch(parts["low"], parts["high"], tmp_path / "d.onnx",
                               level=0.05).path
    with pytest.raises(FileExistsError, match="d.onnx"):
        compose_noise_switch(parts["low"], parts["high"], out, level=0.05)


def test_cli_composes_registers_and_checks_its_parts(parts: dict[str, Path],
                                                     tmp_path: Path) -> None:
    out = tmp_path / "zoo" / "switch.onnx"
    args = ["noise-switch", str(parts["low"]), str(parts["high"]), "--level", "0.02",
            "--out", str(out), "--register", "switch"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    entry = read_manifest(out.parent)["models"][0]
    assert entry["name"] == "switch" and entry["sha256"] == sha256_file(out)
    assert entry["model_options"]["level"] == 0.02 and entry["golden"]["sigma"]
    # a part whose bytes no longer match its sidecar is refused
    tampered = tmp_path / "high.onnx"
    tampered.write_bytes(parts["high"].read_bytes() + b"\0")
    (tmp_path / "high.onnx.sha256").write_text(
        parts["high"].with_name("high.onnx.sha256").read_text())
    res = CliRunner().invoke(main, ["noise-switch", str(parts["low"]), str(tampered),
                                    "--level", "0.02", "--out", str(tmp_path / "t.onnx")])
    assert res.exit_code == 1 and "sha256" in res.output
    assert not (tmp_path / "t.onnx").exists()
