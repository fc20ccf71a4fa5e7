"""The task framework: every task builds samples, computes its loss, exports, runs in
onnxruntime and restores a SystemMatrix onto the right grid, with data consistency.

Super-resolution and inpainting networks come with their own issues; the small test
networks here stand in for them to exercise the framework end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pympisr import SystemMatrix
from pympisr.errors import UnknownTaskError
from pympisr.export import export_model
from pympisr.model_zoo import manifest_entry, register_model
from pympisr.models import build_model
from pympisr.restoration import OnnxRestorer, restore_system_matrix
from pympisr.tasks import TASKS, SampleOptions, get_task


class Upscaler(nn.Module):
    """Nearest-neighbour upsampling and one convolution (grid rule of the task)."""

    size_multiple = 1
    noise_channel = True

    def __init__(self, factor: int, rule: str) -> None:
        super().__init__()
        self.dims, self.scale_factor, self.rule = 2, factor, rule
        self.conv = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = nn.functional.interpolate(x, scale_factor=self.scale_factor, mode="nearest")
        y = up[:, :2] + 0.1 * self.conv(up)
        if self.rule == "stride":
            s = self.scale_factor
            y = y[:, :, :y.shape[2] - (s - 1), :y.shape[3] - (s - 1)]
        return y


class MaskedConv(nn.Module):
    """Takes the mask as a second input (as partial convolutions do)."""

    size_multiple = 1
    scale_factor = 1
    noise_channel = True
    takes_mask = True

    def __init__(self) -> None:
        super().__init__()
        self.dims = 2
        self.conv = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x[:, :2] * mask + self.conv(torch.cat([x, mask], 1)) * (1 - mask)


def _net(task: str) -> nn.Module:
    torch.manual_seed(0)
    if task == "denoise":
        return build_model("dncnn-tiny", dims=2, noise_channel=True)
    if task == "inpaint":
        return MaskedConv()
    return Upscaler(2, get_task(task).grid_rule)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("taskzoo")
    for task in TASKS:
        result = export_model(_net(task).eval(), folder / f"{task}.onnx",
                              metadata={"architecture": "test"}, task=get_task(task))
        register_model(manifest_entry(f"test-{task}", result), folder)
    return folder


def _sm(grid: tuple[int, int] = (13, 11)) -> SystemMatrix:
    rng = np.random.default_rng(1)
    yy, xx = np.meshgrid(np.linspace(-1, 1, grid[1]), np.linspace(-1, 1, grid[0]),
                         indexing="ij")
    comps = [np.exp(-(xx ** 2 + yy ** 2) * a) * np.exp(1j * b * xx)
             for a, b in rng.uniform(0.5, 3, (4, 2))]
    data = np.stack(comps)[None, :, None] * 1e-3
    noisy = data + 1e-5 * (rng.standard_normal(data.shape) + 1j * rng.standard_normal(data.shape))
    return SystemMatrix(data=noisy.astype(np.complex64), frequencies=np.arange(1, 5) * 1e3,
                        grid=(grid[0], grid[1], 1), fov=[0.026, 0.022, 0.001],
                        center=[0.001, -0.002, 0.0], frequency_indices=np.arange(1, 5))


def test_unknown_task_is_a_clear_error() -> None:
    with pytest.raises(UnknownTaskError, match="denoise"):
        get_task("deblur")


@pytest.mark.parametrize("task", TASKS)
def test_samples_and_loss(task: str) -> None:
    t = get_task(task)
    rng = np.random.default_rng(0)
    opts = SampleOptions(patch_size=12, sigma_range=(0.01, 1.0),
                         sigma_distribution="loguniform")
    clean = (rng.standard_normal((17, 23)) + 1j).astype(np.complex64)
    sample = t.make_sample(clean, rng, opts)
    out_patch = t.output_grid((12, 12))
    assert sample["input"].shape == (2, 12, 12)
    assert sample["target"].shape == (2, *out_patch) == (2, *sample["valid"].shape[1:])
    assert ("mask" in sample) == t.needs_mask
    assert 0 <= float(sample["sigma"]) < 1
    batch = {k: v[None] for k, v in sample.items()}
    loss = t.loss(batch["target"], batch)
    assert float(loss) == 0.0
    assert float(t.loss(torch.zeros_like(batch["target"]), batch)) > 0


def test_grid_rules_and_geometry() -> None:
    acc, up = get_task("accelerate", scale_factor=2), get_task("upsample", scale_factor=3)
    assert acc.output_grid((13, 11)) == (25, 21) and acc.input_grid((25, 22)) == (13, 11)
    assert up.output_grid((5, 4)) == (15, 12)
    grid, fov, center = acc.output_geometry((13, 11, 1), [0.026, 0.022, 0.001], [1, 2, 0])
    assert grid == (25, 21, 1)
    np.testing.assert_allclose(center, [1, 2, 0])
    # first and last measured positions are kept: (N - 1) * voxel is unchanged
    np.testing.assert_allclose((fov / np.array(grid))[:2] * (np.array(grid[:2]) - 1),
                               (np.array([0.026, 0.022]) / [13, 11]) * [12, 10])
    grid, fov, _ = up.output_geometry((5, 4, 1), [0.01, 0.01, 0.001], [0, 0, 0])
    assert grid == (15, 12, 1)
    np.testing.assert_allclose(fov, [0.01, 0.01, 0.001])


@pytest.mark.parametrize("task", TASKS)
def test_export_and_restore_every_task(task: str, zoo: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYMPISR_MODELS", str(zoo))
    restorer = OnnxRestorer(f"test-{task}")
    assert restorer.task == task and restorer.takes_noise_level
    sm = _sm()
    mask = None
    if task == "inpaint":
        mask = np.ones((11, 13), bool)
        mask[4:7, 2:9] = False
    restored = restore_system_matrix(sm, task=task, model=restorer, noise=1e-5, mask=mask,
                                     progress=False)
    t = get_task(task, scale_factor=restorer.scale_factor)
    grid, fov, center = t.output_geometry(sm.grid, sm.fov, sm.center)
    assert restored.grid == grid and restored.data.shape[3:] == grid[1::-1]
    np.testing.assert_allclose(restored.fov, fov)
    np.testing.assert_allclose(restored.center, center)
    assert np.all(np.isfinite(restored.data))
    # data consistency: the output seen through A is within the noise of the input
    op = t.operator(restored.data.shape[3:], mask)
    y = sm.data[0, :, 0] * (1 if mask is None else mask)
    residual = np.sqrt(np.sum(np.abs(op.forward(restored.data[0, :, 0]) - y) ** 2, axis=(1, 2)))
    m = op.measured_count(restored.data.shape[3:])
    assert np.all(residual <= 1.5 * np.sqrt(2 * m) * 1e-5 * (1 + 1e-3))
    actions = restored.metadata["/_pympisr/restoration/action"]
    assert actions.shape == sm.data.shape[:2]
    ratio = restored.metadata["/_pympisr/restoration/residualRatio"]
    assert np.all(ratio <= 1.5 + 1e-3)


def test_mask_is_required_exactly_for_inpainting(zoo: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYMPISR_MODELS", str(zoo))
    with pytest.raises(ValueError, match="mask"):
        restore_system_matrix(_sm(), task="inpaint", model="test-inpaint", progress=False)
    with pytest.raises(ValueError, match="mask"):
        restore_system_matrix(_sm(), task="denoise", model="test-denoise",
                              mask=np.ones((11, 13), bool), progress=False)


def test_stride_loss_crops_the_networks_sn_prediction() -> None:
    """A "stride" network predicts s n points per axis; the loss sees the first
    s (n - 1) + 1 (the task's output grid) and refuses a prediction that is too small."""
    task = get_task("accelerate", dims=2, scale_factor=2)
    sample = task.make_sample(np.ones((9, 9), np.complex64), np.random.default_rng(0),
                              SampleOptions(dims=2, patch_size=5))
    batch = {k: v[None] for k, v in sample.items()}
    assert batch["target"].shape[2:] == (9, 9)
    pred = torch.randn(1, 2, 10, 10)
    assert float(task.loss(pred, batch)) == pytest.approx(float(task.loss(pred[:, :, :9, :9],
                                                                         batch)))
    with pytest.raises(ValueError, match="smaller"):
        task.loss(pred[:, :, :8, :8], batch)


def test_inpaint_with_an_automatic_mask(zoo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mask="auto": the detector finds spiked positions, the provenance says so, the
    flagged positions are filled by the model (the untrained test model's values, not the
    spikes) and the others stay within the noise of the measurement."""
    from pympisr.simulation.corruptions import corrupt_system_matrix
    from pympisr.simulation.system_matrix import simulate_system_matrix

    monkeypatch.setenv("PYMPISR_MODELS", str(zoo))
    clean = simulate_system_matrix(seed=3, dims=2, grid=(16, 14, 1))
    rng = np.random.default_rng(0)
    sigma = 1e-3 * float(np.abs(clean.data).max())
    noisy = clean.data + sigma * (rng.standard_normal(clean.data.shape)
                                  + 1j * rng.standard_normal(clean.data.shape))
    bad = corrupt_system_matrix(clean.replace(data=noisy.astype(np.complex64)), sigma, rng,
                                counts={"spike": 4})
    restored = restore_system_matrix(bad.sm, task="inpaint", model="test-inpaint",
                                     noise=sigma, mask="auto", progress=False)
    mask = restored.metadata["/_pympisr/restoration/mask"].astype(bool)
    assert restored.metadata["/_pympisr/restoration/maskSource"].startswith("auto")
    spikes = ~bad.valid
    assert np.all(~mask[spikes])  # every spike flagged
    assert not np.allclose(restored.data[..., spikes], bad.sm.data[..., spikes])
    kept = np.abs(restored.data - bad.sm.data)[..., mask]
    assert np.sqrt(np.mean(kept ** 2)) <= 1.5 * np.sqrt(2) * sigma


def test_unknown_method_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="method must be one of"):
        restore_system_matrix(_sm(), method="magic", progress=False)
