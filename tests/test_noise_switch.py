"""NoiseSwitch: the per-component choice between two networks by noise level, its
refusals, its end-to-end ONNX export (both sides of the level inside one graph) and
``pympisr export --high-noise``."""

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
from pympisr.export import EndToEnd, export_model, export_noise_switch, read_metadata
from pympisr.models import build_model
from pympisr.models.conditioning import run_network
from pympisr.models.noise_switch import NoiseSwitch
from pympisr.tasks import get_task


def tiny_sr(seed: int, *, noise: bool = True, scale: int = 2, dims: int = 2):
    torch.manual_seed(seed)
    return build_model("smrnet-tiny", dims=dims, scale_factor=scale,
                       noise_channel=noise).eval()


@pytest.mark.parametrize("dims", [2, 3])
def test_each_component_gets_the_network_of_its_noise_level(dims: int) -> None:
    low, high = tiny_sr(0, dims=dims), tiny_sr(1, dims=dims)
    switch = NoiseSwitch(low, high, threshold=0.05).eval()
    assert (switch.dims, switch.scale_factor, switch.noise_channel) == (dims, 2, True)
    x = torch.randn(4, 2, *(5,) * dims)
    sigma = torch.tensor([[0.01], [0.5], [0.05], [0.0501]])
    with torch.inference_mode():
        out = run_network(switch, x, sigma)
        a, b = run_network(low, x, sigma), run_network(high, x, sigma)
    assert not torch.allclose(a, b)
    # at and below the level: low; above it: high
    for i, expected in enumerate((a, b, a, b)):
        torch.testing.assert_close(out[i], expected[i], rtol=0, atol=0)


def test_refuses_parts_that_do_not_fit_together() -> None:
    with pytest.raises(ValueError, match="high-noise network SMRnet takes no noise"):
        NoiseSwitch(tiny_sr(0), tiny_sr(1, noise=False), 0.05)
    with pytest.raises(ValueError, match="differ in scale_factor"):
        NoiseSwitch(tiny_sr(0), tiny_sr(1, scale=4), 0.05)
    with pytest.raises(ValueError, match="differ in dims"):
        NoiseSwitch(tiny_sr(0), tiny_sr(1, dims=3), 0.05)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="threshold"):
            NoiseSwitch(tiny_sr(0), tiny_sr(1), bad)


def test_export_keeps_both_sides_of_the_level_in_one_graph(tmp_path: Path) -> None:
    low, high = tiny_sr(0), tiny_sr(1)
    task = get_task("upsample", 2, 2)
    result = export_model(NoiseSwitch(low, high, 0.05), tmp_path / "s.onnx",
                          metadata={"architecture": "NoiseSwitch"}, task=task, min_size=6)
    assert result.parity_error <= 1e-4
    assert json.loads(result.metadata["inputs"]) == ["sm", "sigma"]
    # the golden sigma spans both sides of the level (relative 0.001, 0.01, 0.1)
    golden_sigma = np.load(result.golden_extra["sigma"])
    x = np.load(result.golden_input)
    peak = np.hypot(x[:, 0], x[:, 1]).reshape(len(x), -1).max(axis=1)
    np.testing.assert_allclose(golden_sigma[:, 0] / peak, [1e-3, 1e-2, 1e-1], rtol=1e-5)
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    sm = rng.standard_normal((2, 2, 9, 11)).astype(np.float32)
    peak = np.hypot(sm[:, 0], sm[:, 1]).reshape(2, -1).max(axis=1)
    sigma = (np.array([0.02, 0.2]) * peak).reshape(2, 1).astype(np.float32)
    out = session.run(["restored"], {"sm": sm, "sigma": sigma})[0]
    with torch.inference_mode():
        parts = [EndToEnd(net, task=task, min_size=6)(torch.from_numpy(sm),
                                                      torch.from_numpy(sigma)).numpy()
                 for net in (low, high)]
    np.testing.assert_allclose(out[0], parts[0][0], rtol=0, atol=1e-5 * np.abs(out).max())
    np.testing.assert_allclose(out[1], parts[1][1], rtol=0, atol=1e-5 * np.abs(out).max())


def sr_checkpoint(tmp_path: Path, name: str, root: Path, **options: object) -> Path:
    """A 2-step x2 upsampling SMRnet-tiny checkpoint with the noise input."""
    from pympisr.training import Trainer, TrainingConfig

    config = TrainingConfig.from_dict({
        "experiment": {"name": name, "task": "upsample", "scale_factor": 2, "seed": 3,
                       "output_dir": str(tmp_path / name)},
        "data": {"root": str(root), "patch_size": 8, "val_components": 4,
                 "sigma_range": [0.05, 0.3]},
        "model": {"name": "smrnet-tiny", "options": {"noise_channel": True, **options}},
        "train": {"steps": 2, "batch_size": 4, "val_every": 2, "checkpoint_every": 2,
                  "threads": 2},
    })
    trainer = Trainer(config, progress=False)
    trainer.fit()
    return trainer.best_path


def test_export_cli_writes_a_switch_with_both_parts_described(tmp_path: Path) -> None:
    from test_training import write_toy_dataset

    root = write_toy_dataset(tmp_path / "data", items={"train": 1, "val": 1}, components=2)
    low = sr_checkpoint(tmp_path, "low", root)
    high = sr_checkpoint(tmp_path, "high", root, growth=6)
    out = tmp_path / "zoo" / "switch.onnx"
    res = CliRunner().invoke(main, ["export", str(low), "--out", str(out), "--high-noise",
                                    str(high), "--switch-level", "0.03",
                                    "--register", "switch"])
    assert res.exit_code == 0, res.output
    meta = read_metadata(out)
    options = json.loads(meta["model_options"])
    assert meta["model_name"] == "noise-switch" and options["threshold"] == 0.03
    assert options["high"]["model_options"]["growth"] == 6
    assert meta["architecture"] == "NoiseSwitch(SMRnet, SMRnet)"
    assert set(json.loads(meta["training"])) == {"low", "high"}
    assert meta["task"] == "upsample" and meta["scale_factor"] == "2"
    # one without the other, or a zero level, is refused with a clear message
    res = CliRunner().invoke(main, ["export", str(low), "--out", str(tmp_path / "x.onnx"),
                                    "--high-noise", str(high)])
    assert res.exit_code != 0 and "--switch-level" in res.output
    with pytest.raises(InvalidInputError, match="threshold"):
        export_noise_switch(low, high, tmp_path / "y.onnx", threshold=0.0)
