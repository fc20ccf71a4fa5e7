"""Training pipeline: preprocessing, losses, config, trainer (loss drops, exact resume)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from mdf_factory import make_system_matrix_file

from pympisr.cli import main
from pympisr.training.config import TrainingConfig
from pympisr.datasets.store import DatasetItem, item_path, write_item
from pympisr.tasks import SampleOptions
from pympisr.training import (ComponentDataset, StepBatchSampler, Trainer,
                              TrainingConfig, load_checkpoint, load_config, masked_l1,
                              weighted_masked_l1)
from pympisr.training.losses import noise_level_weights

CONFIGS = Path(__file__).resolve().parents[1] / "pympisr" / "configs"


def smooth_components(rng: np.random.Generator, count: int,
                      shape: tuple[int, ...]) -> np.ndarray:
    """Smooth complex test images: Gaussian envelope times a random complex wave."""
    axes = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    out = np.empty((count, *shape), np.complex64)
    for j in range(count):
        arg = np.pi * sum(f * a for f, a in zip(rng.uniform(0.5, 2.5, len(shape)), axes))
        env = np.exp(-sum(a ** 2 for a in axes) / rng.uniform(0.2, 0.8))
        out[j] = env * np.exp(1j * (arg + rng.uniform(0, 2 * np.pi))) * rng.uniform(1e-3, 1)
    return out


def write_toy_dataset(root: Path, *, dims: int = 2, items: dict[str, int] | None = None,
                      components: int = 8, seed: int = 0) -> Path:
    """A small dataset in the store format with grids of 6 to 14 voxels per axis."""
    rng = np.random.default_rng(seed)
    for split, count in (items or {"train": 4, "val": 2}).items():
        for i in range(count):
            nx, ny = (int(n) for n in rng.integers(6, 15, 2))
            nz = 1 if dims == 2 else int(rng.integers(4, 8))
            comps = smooth_components(rng, components, (nz, ny, nx))
            write_item(item_path(root, split, i), DatasetItem(
                components=comps, channel=np.zeros(components), frequency_index=np.arange(components),
                energy=np.sum(np.abs(comps) ** 2, axis=(1, 2, 3)), grid=(nx, ny, nz),
                fov=np.full(3, 0.02), center=np.zeros(3), params={"toy": True}))
    return root


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_toy_dataset(tmp_path_factory.mktemp("toy2d"))


def tiny_config(root: Path, out: Path, **train: object) -> TrainingConfig:
    return TrainingConfig.from_dict({
        "experiment": {"name": "toy", "seed": 3, "output_dir": str(out)},
        "data": {"root": str(root), "patch_size": 16, "val_components": 12,
                 "sigma_range": [0.05, 0.3]},
        "model": {"name": "dncnn-tiny", "options": {"features": 16}},
        "optimizer": {"lr": 3e-3},
        "schedule": {"milestones": [30], "gamma": 0.5},
        "ema": {"decay": 0.9},
        "train": {"steps": 40, "batch_size": 8, "log_every": 5, "val_every": 20,
                  "checkpoint_every": 10, "threads": 2, **train},
    })


# ------------------------------------------------------------------ preprocessing
def test_sample_is_renormalised_padded_and_masked(toy_root: Path) -> None:
    ds = ComponentDataset(toy_root, "train", SampleOptions(dims=2, patch_size=16))
    sample = ds[3]
    x, y, v = sample["input"].numpy(), sample["target"].numpy(), sample["valid"].numpy()
    assert x.shape == y.shape == (2, 16, 16) and v.shape == (1, 16, 16)
    grid = ds.component(3).shape
    assert v.sum() == grid[0] * grid[1]
    rows, cols = np.nonzero(v[0])
    assert rows.max() - rows.min() + 1 == grid[0] and cols.max() - cols.min() + 1 == grid[1]
    # the corrupted input has unit maximum magnitude; padding is exactly zero
    assert np.hypot(x[0], x[1]).max() == pytest.approx(1.0, abs=1e-6)
    assert np.all(x[:, v[0] == 0] == 0) and np.all(y[:, v[0] == 0] == 0)


def test_noise_free_sample_is_a_rotated_copy(toy_root: Path) -> None:
    prep = SampleOptions(dims=2, patch_size=16, sigma_range=(0.0, 0.0))
    ds = ComponentDataset(toy_root, "train", prep)
    sample = ds[(5, 123)]
    x, y = sample["input"].numpy(), sample["target"].numpy()
    np.testing.assert_allclose(x, y, atol=1e-6)
    clean = ds.component(5)
    placed = (x[0] + 1j * x[1])[sample["valid"].numpy()[0] > 0].reshape(clean.shape)
    ratio = placed / np.where(np.abs(clean) > 0, clean, 1)
    strong = np.abs(clean) > 0.1 * np.abs(clean).max()
    # one complex factor for the whole image: a rotation and a scale
    np.testing.assert_allclose(ratio[strong], ratio[strong][0], rtol=1e-4, atol=1e-5)
    assert abs(abs(ratio[strong][0]) * np.abs(clean).max() - 1) < 1e-4


def test_noise_level_matches_sigma_range(toy_root: Path) -> None:
    prep = SampleOptions(dims=2, patch_size=16, sigma_range=(0.2, 0.2), scale_range=(1, 1))
    ds = ComponentDataset(toy_root, "train", prep)
    residual_std = []
    for key in range(len(ds)):
        s = ds[key]
        v = s["valid"].numpy()[0] > 0
        noise = (s["input"] - s["target"]).numpy()[:, v]
        # undo the renormalisation: the target's max magnitude is 1 before it
        scale = np.hypot(*s["target"].numpy()[:, v]).max()
        residual_std.append(noise.std() / scale)
    assert np.mean(residual_std) == pytest.approx(0.2, rel=0.1)


def test_samples_are_reproducible_and_offsets_vary(toy_root: Path) -> None:
    ds = ComponentDataset(toy_root, "train", SampleOptions(dims=2, patch_size=16))
    a, b = ds[(1, 99)], ds[(1, 99)]
    assert all(torch.equal(a[k], b[k]) for k in a)
    masks = {ds[(0, seed)]["valid"].numpy().tobytes() for seed in range(12)}
    assert len(masks) > 1


def test_large_components_are_cropped(toy_root: Path) -> None:
    ds = ComponentDataset(toy_root, "train", SampleOptions(dims=2, patch_size=5))
    s = ds[0]
    assert s["input"].shape == (2, 5, 5) and s["valid"].numpy().all()


def test_3d_samples(tmp_path: Path) -> None:
    root = write_toy_dataset(tmp_path, dims=3, items={"train": 1}, components=2)
    ds = ComponentDataset(root, "train", SampleOptions(dims=3, patch_size=16))
    s = ds[1]
    assert s["input"].shape == (2, 16, 16, 16) and s["valid"].shape == (1, 16, 16, 16)
    assert s["valid"].sum() == np.prod(ds.component(1).shape)
    with pytest.raises(ValueError, match="Nz"):
        ComponentDataset(root, "train", SampleOptions(dims=2)).component(0)


def test_step_sampler_resumes_exactly() -> None:
    full = list(StepBatchSampler(50, 4, seed=1, num_steps=10))
    tail = list(StepBatchSampler(50, 4, seed=1, num_steps=10, start_step=6))
    assert len(full) == 10 and tail == full[6:]
    assert full[0] != full[1]


# ------------------------------------------------------------------ losses
def test_masked_l1_ignores_padding() -> None:
    pred = torch.zeros(1, 2, 2, 2)
    target = torch.tensor([[[[1.0, 5.0], [3.0, 9.0]], [[-1.0, 7.0], [2.0, 9.0]]]])
    valid = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    # valid pixels: |1|, |3| (real), |-1|, |2| (imag) -> mean 7/4
    assert masked_l1(pred, target, valid).item() == pytest.approx(7 / 4)


def test_weighted_l1_weights_missing_pixels() -> None:
    pred = torch.zeros(1, 1, 1, 3)
    target = torch.ones(1, 1, 1, 3)
    valid = torch.tensor([[[[1.0, 1.0, 0.0]]]])
    known = torch.tensor([[[[1.0, 0.0, 0.0]]]])
    loss = weighted_masked_l1(pred, target, valid, known, known_weight=1, missing_weight=3)
    assert loss.item() == pytest.approx((1 + 3) / 2)


def test_sample_weights_make_the_losses_a_weighted_mean_over_samples() -> None:
    pred = torch.zeros(2, 1, 1, 2)
    target = torch.tensor([[[[1.0, 1.0]]], [[[4.0, 4.0]]]])
    valid = torch.ones(2, 1, 1, 2)
    weights = torch.tensor([3.0, 1.0])
    assert masked_l1(pred, target, valid, weights).item() == pytest.approx((3 + 4) / 4)
    known = torch.ones(2, 1, 1, 2)
    assert weighted_masked_l1(pred, target, valid, known, sample_weight=weights).item() \
        == pytest.approx((3 + 4) / 4)
    # uniform weights change nothing
    assert masked_l1(pred, target, valid, torch.full((2,), 0.3)).item() \
        == pytest.approx(masked_l1(pred, target, valid).item())


def test_noise_level_weights_favour_clean_samples_and_need_a_floor() -> None:
    w = noise_level_weights(torch.tensor([[0.0], [0.02], [0.98]]), 0.02)
    assert w.tolist() == pytest.approx([50.0, 25.0, 1.0])
    assert noise_level_weights(torch.tensor([0.0, 1.0]), 0.02, power=0.0).tolist() == [1, 1]
    with pytest.raises(ValueError, match="floor"):
        noise_level_weights(torch.tensor([0.1]), 0.0)


# ------------------------------------------------------------------ config
def test_shipped_configs_parse() -> None:
    files = sorted(CONFIGS.glob("*.toml"))
    assert files
    for path in files:
        cfg = load_config(path)
        assert cfg.data.patch_size > 0 and cfg.model.name


def test_config_rejects_unknown_keys_and_bad_values(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[data]\nroot = "x"\npatchsize = 3\n')
    with pytest.raises(ValueError, match="patchsize"):
        load_config(bad)
    bad.write_text('[data]\nroot = "x"\n[train]\nsteps = "many"\n')
    with pytest.raises(ValueError, match="steps"):
        load_config(bad)
    bad.write_text('[data]\nroot = "x"\ndims = 4\n')
    with pytest.raises(ValueError, match="data.dims"):
        load_config(bad)
    bad.write_text('[data]\nroot = "x"\n[loss]\nnoise_floor = -0.1\n')
    with pytest.raises(ValueError, match="loss.noise_floor"):
        load_config(bad)


# ------------------------------------------------------------------ trainer
def test_tiny_model_loss_drops(toy_root: Path, tmp_path: Path) -> None:
    trainer = Trainer(tiny_config(toy_root, tmp_path / "run"), progress=False)
    before, identity = trainer.validate()
    result = trainer.fit()
    assert result.finished and result.step == 40
    # better than the untrained network and than the noisy input itself
    assert result.val_loss < 0.9 * min(before, identity)
    train = [loss for _, loss in trainer.history["train"]]
    assert np.mean(train[-3:]) < 0.7 * np.mean(train[:3])
    assert (tmp_path / "run" / "loss.png").stat().st_size > 0
    assert (tmp_path / "run" / "best.pt").exists()
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["step"] == 40 and ckpt["model"]["options"]["features"] == 16


def test_noise_weighted_validation_loss_is_the_weighted_mean(toy_root: Path,
                                                             tmp_path: Path) -> None:
    plain = Trainer(tiny_config(toy_root, tmp_path / "a"), progress=False)
    config = tiny_config(toy_root, tmp_path / "b")
    config.loss.noise_floor = 0.02
    weighted = Trainer(config, progress=False)
    model = weighted.eval_model()
    model.eval()
    total = mass = 0.0
    with torch.no_grad():
        for i in weighted.val_indices:
            sample = {k: v[None] for k, v in weighted.val_set[int(i)].items()}
            per_sample = float(weighted.task.loss(weighted.forward(model, sample), sample))
            w = 1.0 / (float(sample["sigma"]) + 0.02)
            total += w * per_sample * float(sample["valid"].sum())
            mass += w * float(sample["valid"].sum())
    loss, _ = weighted.validate()
    assert loss == pytest.approx(total / mass, rel=1e-4)
    # same initial weights and data: only the weighting differs
    assert loss != pytest.approx(plain.validate()[0], rel=1e-3)


def test_resume_continues_exactly(toy_root: Path, tmp_path: Path) -> None:
    straight = Trainer(tiny_config(toy_root, tmp_path / "a", steps=8), progress=False)
    straight.fit()
    first = Trainer(tiny_config(toy_root, tmp_path / "b", steps=4), progress=False)
    first.fit()
    second = Trainer(tiny_config(toy_root, tmp_path / "b", steps=8), progress=False)
    result = second.fit(resume=True)
    assert result.step == 8
    for (name, p), q in zip(straight.model.state_dict().items(),
                            second.model.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)
    assert second.scheduler.get_last_lr() == straight.scheduler.get_last_lr()


def test_time_limit_stops_with_a_checkpoint(toy_root: Path, tmp_path: Path) -> None:
    trainer = Trainer(tiny_config(toy_root, tmp_path / "t", max_minutes=1e-6), progress=False)
    result = trainer.fit()
    assert not result.finished and result.step == 1
    assert load_checkpoint(result.last_checkpoint)["step"] == 1


def test_train_cli(toy_root: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "toy.toml"
    cfg.write_text(f'[experiment]\nname = "cli"\noutput_dir = "{tmp_path / "cli"}"\n'
                   f'[data]\nroot = "{toy_root}"\npatch_size = 16\nval_components = 4\n'
                   '[model]\nname = "dncnn-tiny"\n'
                   '[train]\nsteps = 3\nbatch_size = 2\nval_every = 3\n')
    runner = CliRunner()
    result = runner.invoke(main, ["train", str(cfg), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "finished at step 3" in result.output
    again = runner.invoke(main, ["train", str(cfg), "--quiet"])
    assert again.exit_code != 0 and "--resume" in again.output
    more = runner.invoke(main, ["train", str(cfg), "--quiet", "--resume", "--steps", "5"])
    assert more.exit_code == 0 and "step 5" in more.output


@pytest.mark.parametrize("noise", ["parametric", "file"])
def test_structured_training_noise_has_the_drawn_level(toy_root: Path, tmp_path: Path,
                                                        noise: str) -> None:
    """Noise from the parametric path model or an MDF file's background frames, rescaled
    to the drawn per-part std (config key data.noise)."""
    if noise == "file":
        noise = str(tmp_path / "bg.mdf")
        make_system_matrix_file(noise, background_frames=40, background_blocks=1)
    prep = SampleOptions(dims=2, patch_size=16, sigma_range=(0.2, 0.2), scale_range=(1, 1))
    ds = ComponentDataset(toy_root, "train", prep, noise=noise)
    assert ds.noise is not None
    sample = ds[(2, 7)]
    x, y, v = sample["input"].numpy(), sample["target"].numpy(), sample["valid"].numpy()
    residual = (x - y)[:, v[0] > 0]
    assert np.isfinite(residual).all() and residual.std() > 0
    # per-part std of the noise relative to the input's max is what "sigma" reports
    assert np.sqrt(np.mean(residual ** 2)) == pytest.approx(float(sample["sigma"]), rel=0.05)


def test_config_rejects_an_unknown_noise(tmp_path: Path) -> None:
    from pympisr.errors import ConfigError
    with pytest.raises(ConfigError, match="data.noise"):
        TrainingConfig.from_dict({"data": {"root": "x", "noise": "pink"}})
