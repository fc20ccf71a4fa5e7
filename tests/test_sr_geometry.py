"""Geometry of super-resolution restorations (issue 17 item 3).

Convention: a restored SM describes the output grid with ``/calibration/size``,
``fieldOfView``, ``fieldOfViewCenter`` and ``positions`` such that measured positions keep
their physical coordinates ("accelerate": the measured points are every s-th point of the
output grid; "upsample": each measured voxel is the s x s block of output voxels it
averages). The round trip: simulate a fine SM, keep every s-th point
(:meth:`Task.degrade_system_matrix`), save it as its own MDF file, restore, and compare
with the fine SM voxel for voxel.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn

import pympisr
from pympisr.export import export_model
from pympisr.mdf.validate import validate
from pympisr.model_zoo import manifest_entry, register_model
from pympisr.restoration import restore, restore_system_matrix
from pympisr.simulation.parameters import reference_parameters
from pympisr.simulation.system_matrix import simulate_system_matrix
from pympisr.tasks import get_task


class LinearUpscaler(nn.Module):
    """Bilinear upsampling of the measured grid (exact at the measured points for the
    stride rule); a stand-in for a trained network in geometry tests."""

    size_multiple = 1
    noise_channel = False

    def __init__(self, factor: int, rule: str) -> None:
        super().__init__()
        self.dims, self.scale_factor, self.rule = 2, factor, rule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scale_factor
        if self.rule == "scale":
            return nn.functional.interpolate(x, scale_factor=s, mode="bilinear",
                                             align_corners=False)
        h, w = x.shape[2], x.shape[3]
        y = nn.functional.interpolate(x, size=(s * (h - 1) + 1, s * (w - 1) + 1),
                                      mode="bilinear", align_corners=True)
        return nn.functional.pad(y, (0, s - 1, 0, s - 1))


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("srzoo")
    for task in ("accelerate", "upsample"):
        rule = get_task(task).grid_rule
        result = export_model(LinearUpscaler(2, rule).eval(), folder / f"{task}.onnx",
                              metadata={"architecture": "test"},
                              task=get_task(task, scale_factor=2))
        register_model(manifest_entry(f"linear-{task}", result), folder)
    return folder


@pytest.fixture(scope="module")
def fine() -> pympisr.SystemMatrix:
    params = reference_parameters(2, grid=(21, 19, 1))
    return simulate_system_matrix(params.replace(center=np.array([1e-3, -2e-3, 0.0])),
                                  frequencies=np.arange(1, 30))


@pytest.mark.parametrize("task,grid", [("accelerate", (11, 10, 1)), ("upsample", (10, 9, 1))])
def test_degraded_geometry_keeps_physical_positions(task: str, grid: tuple[int, ...],
                                                    fine: pympisr.SystemMatrix) -> None:
    t = get_task(task, dims=2, scale_factor=2)
    coarse = t.degrade_system_matrix(fine)
    assert coarse.grid == grid and coarse.data.shape[2:] == (1, grid[1], grid[0])
    centres_fine = fine.voxel_centers()[0]
    centres = coarse.voxel_centers()[0]
    if task == "accelerate":
        np.testing.assert_allclose(centres, centres_fine[::2, ::2], atol=1e-12)
        np.testing.assert_array_equal(coarse.data[:, :, 0], fine.data[:, :, 0, ::2, ::2])
    else:  # block centre = mean of the fine voxel centres it averages
        block = centres_fine[:18, :20].reshape(9, 2, 10, 2, 3).mean(axis=(1, 3))
        np.testing.assert_allclose(centres, block, atol=1e-12)
    np.testing.assert_allclose(coarse.metadata["/calibration/positions"],
                               centres.reshape(-1, 3))
    back = t.output_geometry(coarse.grid, coarse.fov, coarse.center)
    if task == "accelerate":  # 21 x 19 points: s divides N - 1, the round trip is exact
        assert back[0] == fine.grid
        np.testing.assert_allclose(back[1], fine.fov)
        np.testing.assert_allclose(back[2], fine.center, atol=1e-15)


@pytest.mark.parametrize("task", ["accelerate", "upsample"])
def test_restore_round_trip_geometry(task: str, fine: pympisr.SystemMatrix, zoo: Path,
                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYMPISR_MODELS", str(zoo))
    t = get_task(task, dims=2, scale_factor=2)
    fine_path = pympisr.save_system_matrix(fine, tmp_path / "fine.mdf")
    coarse_path = pympisr.save_system_matrix(t.degrade_system_matrix(fine),
                                             tmp_path / "coarse.mdf")
    out = restore(coarse_path, task=task, model=f"linear-{task}", noise=1e-9, progress=False)
    for path in (fine_path, coarse_path, out):
        assert validate(path) == [], path.name
    restored = pympisr.load_system_matrix(out, bg_correction=True, tf_correction=False)
    reference = pympisr.load_system_matrix(fine_path, bg_correction=True, tf_correction=False)
    region = t.output_grid(t.input_grid(fine.grid[:2]))  # the fine points the coarse SM covers
    assert restored.grid[:2] == region
    centres = restored.voxel_centers()[0]
    np.testing.assert_allclose(centres, reference.voxel_centers()[0, :region[1], :region[0]],
                               atol=1e-12)
    with h5py.File(out, "r") as f:
        positions = f["/calibration/positions"][()]
    np.testing.assert_allclose(positions, centres.reshape(-1, 3), atol=1e-9)
    # voxel for voxel: bilinear interpolation of a smooth SM is close, and exact where
    # the accelerated calibration measured
    est = restored.data[:, :, 0]
    ref = reference.data[:, :, 0, :region[1], :region[0]]
    if task == "accelerate":
        np.testing.assert_allclose(est[..., ::2, ::2], ref[..., ::2, ::2],
                                   atol=1e-6 * np.abs(ref).max())
    err = np.linalg.norm(est - ref) / np.linalg.norm(ref)
    assert err < 0.5


def test_shipped_x4_upsampler_beats_bicubic_on_a_noisy_coarse_sm() -> None:
    """The default x4 upsampler (TranSMS, paper size) restores a 4 x 4 block-mean
    calibration onto the fine grid, closer to the fine SM than bicubic."""
    from pympisr.model_zoo import default_model

    shipped = default_model("upsample", 2, scale=4)
    assert shipped.entry["name"] == "upsample_transms_x4_2d"
    params = reference_parameters(2, grid=(32, 32, 1))
    clean = simulate_system_matrix(params, frequencies=np.arange(1, 40))
    t = get_task("upsample", dims=2, scale_factor=4)
    coarse = t.degrade_system_matrix(clean)
    rng = np.random.default_rng(0)
    sigma = 0.02 * float(np.abs(coarse.data).max())
    noise = sigma * (rng.standard_normal(coarse.data.shape)
                     + 1j * rng.standard_normal(coarse.data.shape))
    noisy = coarse.replace(data=(coarse.data + noise).astype(np.complex64))
    restored = restore_system_matrix(noisy, task="upsample", scale=4, noise=sigma,
                                     progress=False)
    assert restored.grid == clean.grid
    ref = clean.data[:, :, 0]
    lr = noisy.data[:, :, 0].reshape(-1, *noisy.data.shape[-2:])
    bicubic = t.baseline(lr, np.full(lr.shape[0], sigma), None).reshape(ref.shape)
    err = np.linalg.norm(restored.data[:, :, 0] - ref)
    assert err < 0.8 * np.linalg.norm(bicubic - ref)
