"""End-to-end ONNX export: parity with PyTorch at several shapes (2D and 3D), metadata,
failure on shape-dependent graphs, and the golden pairs of every shipped model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from pympisr.cli import main
from pympisr.export import (EndToEnd, ExportCheckError, export_checkpoint, export_model,
                            golden_paths, read_metadata)
from pympisr.model_zoo import ResolvedModel, read_manifest, sha256_file, verify_model
from pympisr.models import build_model

MODELS = Path(__file__).resolve().parents[1] / "onnx_models"
REQUIRED_METADATA = {"task", "architecture", "dims", "scale_factor", "axis_order",
                     "noise_range", "training_data", "pympisr_version", "test_metrics"}


def run_onnx(path: Path, x: np.ndarray, **extra: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["restored"], {"sm": x, **extra})[0]


def random_net(name: str, dims: int, seed: int = 0) -> nn.Module:
    """A network with random weights and non-trivial batch-norm statistics."""
    torch.manual_seed(seed)
    net = build_model(name, dims=dims)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


class Bottleneck(nn.Module):
    """Down- and up-sampling toy network: needs grids that are multiples of 4."""

    size_multiple = 4
    scale_factor = 1

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.dims = dims
        conv, up = (nn.Conv2d, nn.ConvTranspose2d) if dims == 2 else (nn.Conv3d, nn.ConvTranspose3d)
        self.down = conv(2, 4, 4, stride=4)
        self.up = up(4, 2, 4, stride=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(torch.tanh(self.down(x)))


class ShapeBranch(nn.Module):
    """A Python branch on the grid width: traced once, then wrong at other widths."""

    dims = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * x if x.shape[-1] > 20 else x


@pytest.mark.parametrize("min_size", [1, 12])
@pytest.mark.parametrize("dims", [2, 3])
def test_parity_at_new_shapes(tmp_path: Path, dims: int, min_size: int) -> None:
    net = random_net("dncnn-tiny", dims)
    result = export_model(net, tmp_path / "m.onnx", metadata={"task": "denoise"},
                          min_size=min_size)
    assert result.parity_error < 1e-4
    assert read_metadata(result.path)["min_size"] == str(min_size)
    wrapper = EndToEnd(net, min_size=min_size)
    rng = np.random.default_rng(1)
    shapes = [(4, 2, 8, 31), (1, 2, 25, 9)] if dims == 2 else [(3, 2, 5, 8, 7), (1, 2, 10, 4, 6)]
    for shape in shapes:
        x = (rng.standard_normal(shape) * 10.0 ** rng.uniform(-6, 2)).astype(np.float32)
        with torch.inference_mode():
            ref = wrapper(torch.from_numpy(x)).numpy()
        out = run_onnx(result.path, x)
        assert out.shape == x.shape
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("dims", [2, 3])
def test_padding_and_cropping_inside_the_graph(tmp_path: Path, dims: int) -> None:
    net = Bottleneck(dims).eval()
    result = export_model(net, tmp_path / "b.onnx", metadata={"task": "denoise"})
    x = np.random.default_rng(2).standard_normal((2, 2, *[7 + i for i in range(dims)]))
    x = x.astype(np.float32)
    with torch.inference_mode():
        ref = EndToEnd(net)(torch.from_numpy(x)).numpy()
    out = run_onnx(result.path, x)
    assert out.shape == x.shape
    np.testing.assert_allclose(out, ref, atol=1e-5 * np.abs(ref).max())


def test_small_grids_are_padded_to_the_patch_size() -> None:
    """With min_size the network sees the grid inside zeros: the result differs from
    running it on the bare grid, and equals running it on the explicitly padded grid."""
    net = random_net("dncnn-tiny", 2)
    x = torch.randn(1, 2, 6, 9)
    with torch.inference_mode():
        padded = EndToEnd(net, min_size=12)(x)
        bare = EndToEnd(net)(x)
        scale = torch.sqrt(x[:, :1] ** 2 + x[:, 1:] ** 2).amax()
        manual = net(torch.nn.functional.pad(x / scale, [1, 2, 3, 3]))[..., 3:9, 1:10] * scale
    torch.testing.assert_close(padded, manual)
    assert not torch.allclose(padded, bare)


def test_graph_is_scale_equivariant(tmp_path: Path) -> None:
    """Normalisation happens inside: scaling the input by a scale scales the output."""
    result = export_model(random_net("dncnn-tiny", 2), tmp_path / "m.onnx",
                          metadata={"task": "denoise"})
    x = np.random.default_rng(3).standard_normal((2, 2, 12, 10)).astype(np.float32)
    small, large = run_onnx(result.path, x * 1e-6), run_onnx(result.path, x * 1e3)
    np.testing.assert_allclose(small * 1e9, large, rtol=1e-4, atol=1e-4 * np.abs(large).max())


def test_shape_dependent_graph_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(ExportCheckError, match="differ"):
        export_model(ShapeBranch(), tmp_path / "bad.onnx", metadata={"task": "denoise"})
    assert not (tmp_path / "bad.onnx").exists()


def test_metadata_opset_and_golden_files(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    result = export_model(random_net("dncnn-tiny", 3), out, metadata={
        "task": "denoise", "architecture": "DnCNN", "noise_range": [0, 0.3],
        "training_data": {"n": 1}, "pympisr_version": "x", "test_metrics": {}})
    model = onnx.load(str(out))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    assert [i.name for i in model.graph.input] == ["sm"]
    assert [o.name for o in model.graph.output] == ["restored"]
    meta = read_metadata(out)
    assert REQUIRED_METADATA <= set(meta) and meta["dims"] == "3"
    assert json.loads(meta["noise_range"]) == [0, 0.3]
    g_in, g_out = golden_paths(out)
    assert (g_in, g_out) == (result.golden_input, result.golden_output)
    x, y = np.load(g_in), np.load(g_out)
    assert x.dtype == y.dtype == np.float32 and x.ndim == 5 and x.shape == y.shape
    with pytest.raises(FileExistsError):
        export_model(random_net("dncnn-tiny", 3), out, metadata={"task": "denoise"})


def test_export_cli_from_checkpoint_and_register(tmp_path: Path) -> None:
    from test_training import tiny_config, write_toy_dataset
    from pympisr.training import Trainer

    root = write_toy_dataset(tmp_path / "data", items={"train": 1, "val": 1}, components=2)
    trainer = Trainer(tiny_config(root, tmp_path / "run", steps=2), progress=False)
    trainer.fit()
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"psnr": {"0.1": 40.0}}))
    out = tmp_path / "zoo" / "toy.onnx"
    res = CliRunner().invoke(main, ["export", str(trainer.best_path), "--out", str(out),
                                    "--metrics", str(metrics), "--register", "toy"])
    assert res.exit_code == 0, res.output
    entry = read_manifest(out.parent)["models"][0]
    assert entry["name"] == "toy" and entry["sha256"] == sha256_file(out)
    assert entry["test_metrics"] == {"psnr": {"0.1": 40.0}}
    assert entry["training"]["steps"] == 2 and entry["opset"] == 17
    direct = export_checkpoint(trainer.best_path, tmp_path / "again.onnx")
    assert json.loads(direct.metadata["training"])["weights"] == "ema"
    # the embedded training record names folders, not this machine's absolute paths
    assert str(tmp_path) not in direct.metadata["training"] + direct.metadata["training_data"]


def shipped_models() -> list[dict]:
    if not (MODELS / "manifest.json").exists():
        return []
    return read_manifest(MODELS)["models"]


def test_at_least_one_model_is_shipped() -> None:
    assert any(m["task"] == "denoise" and m["dims"] == 2 for m in shipped_models())


@pytest.mark.parametrize("entry", shipped_models(), ids=lambda e: e["name"])
def test_shipped_golden_pair_reproduces(entry: dict) -> None:
    resolved = ResolvedModel(MODELS / entry["file"], entry)
    verify_model(resolved)
    meta = read_metadata(resolved.path)
    assert REQUIRED_METADATA <= set(meta) and int(meta["dims"]) == entry["dims"]
    # under 5 MB per network (a noise switch holds two)
    networks = 2 if entry["model_name"] == "noise-switch" else 1
    assert entry["opset"] <= 17 and resolved.path.stat().st_size < 5e6 * networks
    x = np.load(MODELS / entry["golden"]["input"])
    y = np.load(MODELS / entry["golden"]["output"])
    assert x.dtype == np.float32 and x.shape[1] == 2 and x.ndim == entry["dims"] + 2
    extra = {k: np.load(MODELS / entry["golden"][k]) for k in ("sigma", "mask")
             if k in entry["golden"]}
    out = run_onnx(resolved.path, x, **extra)
    np.testing.assert_allclose(out, y, rtol=0, atol=1e-5 * np.abs(y).max())


def test_export_adds_data_consistency_to_a_network_trained_without(tmp_path: Path) -> None:
    """``--data-consistency block`` puts the (weightless) projection into the graph: the
    output's 2 x 2 block means then reproduce the input (noise-free, radius 0 on a
    noise-free input); a network without that option is refused by name."""
    from test_training import tiny_config, write_toy_dataset
    from pympisr.training import Trainer, TrainingConfig

    root = write_toy_dataset(tmp_path / "data", items={"train": 1, "val": 1}, components=2)
    sr = TrainingConfig.from_dict({
        "experiment": {"name": "sr", "task": "upsample", "scale_factor": 2,
                       "output_dir": str(tmp_path / "sr")},
        "data": {"root": str(root), "patch_size": 8, "val_components": 4},
        "model": {"name": "smrnet-tiny"},
        "train": {"steps": 2, "batch_size": 4, "val_every": 2, "checkpoint_every": 2}})
    trainer = Trainer(sr, progress=False)
    trainer.fit()
    out = tmp_path / "dc.onnx"
    res = CliRunner().invoke(main, ["export", str(trainer.best_path), "--out", str(out),
                                    "--data-consistency", "block"])
    assert res.exit_code == 0, res.output
    assert json.loads(read_metadata(out)["model_options"])["data_consistency"] == "block"
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 5)).astype(np.float32)
    y = run_onnx(out, x)
    means = y.reshape(2, 2, 6, 2, 5, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(means, x, atol=1e-5 * np.abs(x).max())
    plain = tmp_path / "plain.onnx"
    export_checkpoint(trainer.best_path, plain)
    assert not np.allclose(run_onnx(plain, x).reshape(2, 2, 6, 2, 5, 2).mean(axis=(3, 5)), x,
                           atol=1e-3)
    denoiser = Trainer(tiny_config(root, tmp_path / "dn", steps=2), progress=False)
    denoiser.fit()
    res = CliRunner().invoke(main, ["export", str(denoiser.best_path), "--out",
                                    str(tmp_path / "dn.onnx"), "--data-consistency", "block"])
    assert res.exit_code == 1 and "DnCNN has no data-consistency layer" in res.output
