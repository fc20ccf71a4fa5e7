"""Data-parallel training (DDP on gloo, 2 CPU processes), device and precision choice."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from pympisr.errors import ConfigError, InvalidInputError
from pympisr.simulation.generate import generate_dataset
from pympisr.training import StepBatchSampler, Trainer, TrainingConfig, load_checkpoint
from pympisr.training.data import ComponentDataset
from pympisr.training.distributed import (DistributedContext, ShardedBatchSampler,
                                          backend_for, process_group, shard)
from pympisr.training.precision import select_device, training_precision

WORLD = 2
STEPS = 8
HALF = 4


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tiny_config(root: Path, out: Path, steps: int) -> TrainingConfig:
    """A few steps of a small DnCNN without batch norm (per-process statistics would make
    a CPU data-parallel run differ from a single process by design)."""
    return TrainingConfig.from_dict({
        "experiment": {"name": "ddp", "seed": 5, "output_dir": str(out)},
        "data": {"root": str(root), "patch_size": 16, "val_components": 16,
                 "sigma_range": [0.05, 0.3]},
        "model": {"name": "dncnn-tiny", "options": {"features": 16, "batch_norm": False}},
        "optimizer": {"lr": 3e-3},
        "schedule": {"milestones": [6], "gamma": 0.5},
        "ema": {"decay": 0.9},
        "train": {"steps": steps, "batch_size": 8, "log_every": 2, "val_every": 4,
                  "checkpoint_every": 4, "threads": 1},
    })


def ddp_worker(rank: int, port: int, root: str, out: str) -> None:
    """One of the WORLD processes: a straight run, a half run and its resume; records the
    (component, seed) keys this process's data loader asked for."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    context = DistributedContext(rank=rank, world_size=WORLD, local_rank=rank)
    seen: list[list[int]] = []
    original = ComponentDataset.__getitem__

    def recording(self, key):  # type: ignore[no-untyped-def]
        if isinstance(key, tuple) and self.store.split == "train":
            seen.append([int(k) for k in key])
        return original(self, key)

    ComponentDataset.__getitem__ = recording  # this child process only
    with process_group(context, torch.device("cpu")):
        Trainer(tiny_config(Path(root), Path(out) / "straight", STEPS), progress=False,
                distributed=context).fit()
        keys = list(seen)
        Trainer(tiny_config(Path(root), Path(out) / "resumed", HALF), progress=False,
                distributed=context).fit()
        Trainer(tiny_config(Path(root), Path(out) / "resumed", STEPS), progress=False,
                distributed=context).fit(resume=True)
    (Path(out) / f"keys{rank}.json").write_text(json.dumps(keys))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddp") / "ds"
    generate_dataset(root, dims=2, splits={"train": 3, "val": 1}, seed=2, workers=1,
                     grid_max=10, model="langevin", progress=False)
    return root


@pytest.fixture(scope="module")
def ddp_run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp_out")
    context = mp.start_processes(ddp_worker, args=(free_port(), str(dataset), str(out)),
                                 nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + 600  # generous: a busy 2-core CI machine
    try:
        while not context.join(timeout=1):
            assert time.monotonic() < deadline, "the 2-process run did not finish in 600 s"
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    return out


def test_two_processes_match_one_with_the_same_global_batch(dataset: Path, ddp_run: Path,
                                                            tmp_path: Path) -> None:
    single = Trainer(tiny_config(dataset, tmp_path / "single", STEPS), progress=False)
    single.fit()
    one = json.loads((tmp_path / "single" / "history.json").read_text())
    two = json.loads((ddp_run / "straight" / "history.json").read_text())
    assert [s for s, _ in two["train"]] == [2, 4, 6, 8]
    np.testing.assert_allclose([v for _, v in two["train"]], [v for _, v in one["train"]],
                               rtol=1e-4)
    np.testing.assert_allclose([v for _, v in two["val"]], [v for _, v in one["val"]],
                               rtol=1e-4)
    ddp = load_checkpoint(ddp_run / "straight" / "last.pt")
    assert ddp["step"] == STEPS
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp["state_dict"][name], value, rtol=1e-4, atol=1e-6)
    # rank 0 wrote the run's files, nothing else was written (no temporaries either)
    assert sorted(p.name for p in (ddp_run / "straight").iterdir()) == \
        ["best.pt", "history.json", "last.pt", "loss.png"]


def test_ranks_load_disjoint_samples_covering_the_global_batch(ddp_run: Path,
                                                               dataset: Path) -> None:
    keys = [json.loads((ddp_run / f"keys{r}.json").read_text()) for r in range(WORLD)]
    assert len(keys[0]) == len(keys[1]) == STEPS * 8 // WORLD
    assert not {tuple(k) for k in keys[0]} & {tuple(k) for k in keys[1]}
    n = len(ComponentDataset(dataset, "train", tiny_config(dataset, dataset, 1)
                             .sample_options()))
    expected = [tuple(k) for batch in StepBatchSampler(n, 8, seed=5, num_steps=STEPS)
                for k in batch]
    assert sorted(tuple(k) for k in keys[0] + keys[1]) == sorted(expected)


def test_distributed_resume_is_bit_exact(ddp_run: Path) -> None:
    straight = load_checkpoint(ddp_run / "straight" / "last.pt")
    resumed = load_checkpoint(ddp_run / "resumed" / "last.pt")
    assert straight["step"] == resumed["step"] == STEPS
    for part in ("state_dict", "ema_state_dict"):
        for name, value in straight[part].items():
            assert torch.equal(value, resumed[part][name]), (part, name)
    for a, b in zip(straight["optimizer"]["state"].values(),
                    resumed["optimizer"]["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert straight["history"]["train"] == resumed["history"]["train"]


# ------------------------------------------------------------------ no processes needed
def test_context_from_torchrun_environment() -> None:
    assert DistributedContext.from_environment({}) == DistributedContext()
    ctx = DistributedContext.from_environment({"RANK": "3", "WORLD_SIZE": "4",
                                               "LOCAL_RANK": "1"})
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.enabled, ctx.is_main) == \
        (3, 4, 1, True, False)
    with pytest.raises(InvalidInputError, match="RANK='x'"):
        DistributedContext.from_environment({"RANK": "x", "WORLD_SIZE": "2"})
    with pytest.raises(InvalidInputError, match="RANK is not set"):
        DistributedContext.from_environment({"WORLD_SIZE": "2"})
    with pytest.raises(InvalidInputError, match="not a valid process placement"):
        DistributedContext.from_environment({"RANK": "2", "WORLD_SIZE": "2"})


def test_sharded_batches_partition_every_step() -> None:
    batches = StepBatchSampler(100, 12, seed=1, num_steps=5)
    shards = [list(ShardedBatchSampler(batches, DistributedContext(r, 3, r)))
              for r in range(3)]
    for step, batch in enumerate(batches):
        parts = [shards[r][step] for r in range(3)]
        assert all(len(p) == 4 for p in parts)
        assert sorted(sum(parts, [])) == sorted(batch)
    with pytest.raises(ConfigError, match="not a multiple of the 5"):
        shard(list(range(12)), DistributedContext(0, 5, 0))


def test_batch_size_must_split_over_processes(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="batch_size = 8 is not a multiple of the 3"):
        Trainer(tiny_config(dataset, tmp_path, 2), distributed=DistributedContext(0, 3, 0))


def test_precision_choice() -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert training_precision(cpu, True).autocast is False  # CPU trains in float32
    assert training_precision(gpu, False).name == "float32"
    bf16 = training_precision(gpu, True, bf16_supported=lambda: True)
    assert (bf16.autocast, bf16.dtype, bf16.loss_scaling) == (True, torch.bfloat16, False)
    fp16 = training_precision(gpu, True, bf16_supported=lambda: False)
    assert (fp16.autocast, fp16.dtype, fp16.loss_scaling) == (True, torch.float16, True)
    assert backend_for(cpu) == "gloo" and backend_for(gpu) == "nccl"


def test_device_choice() -> None:
    none, four = (lambda: 0), (lambda: 4)
    assert select_device("auto", 0, cuda_count=none) == torch.device("cpu")
    assert select_device("auto", 2, cuda_count=four) == torch.device("cuda", 2)
    assert select_device("cuda", 3, cuda_count=four) == torch.device("cuda", 3)
    assert select_device("cuda:1", 3, cuda_count=four) == torch.device("cuda", 1)
    assert select_device("cpu", 1, cuda_count=four) == torch.device("cpu")
    with pytest.raises(ConfigError, match="GPU 4 requested"):
        select_device("cuda", 4, cuda_count=four)
    with pytest.raises(ConfigError, match="0 CUDA device"):
        select_device("cuda", 0, cuda_count=none)
    with pytest.raises(ConfigError, match="cuda:N"):
        select_device("cuda:x", 0, cuda_count=four)
