"""Training loop shared by every restoration network (seed paper 3.3).

Adam with a multi-step learning-rate schedule, an exponential moving average (EMA) of the
weights (the EMA weights are validated, kept as "best" and exported), mixed precision on
CUDA only (bfloat16 autocast where the GPU supports it, else float16 with gradient
scaling; CPU runs in float32, see :mod:`.precision`), checkpoints with exact resume, a
tqdm progress bar and a loss-curve figure. Several processes launched by ``torchrun``
train one model data-parallel (:mod:`.distributed`); rank 0 writes the files.

Files in ``output_dir``:

* ``last.pt``: full state (model, EMA, optimiser, schedule, scaler, step, history);
  ``best.pt``: the same at the lowest validation loss;
* ``history.json`` and ``loss.png``: training and validation loss per step.

Training is step based: batch ``t`` is drawn by :class:`StepBatchSampler` from
``(seed, t)``, so resuming from ``last.pt`` continues exactly where the run stopped.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from ..atomic import atomic_output
from ..errors import CheckpointError, ConfigError
from ..models import build_model, model_spec
from ..models.conditioning import run_network
from ..models.warm_start import load_onnx_convolutions
from .config import TrainingConfig
from .data import ComponentDataset, StepBatchSampler, dataset_description
from .distributed import (DistributedContext, ShardedBatchSampler, agree, barrier,
                          combine_loss, prepare_model, wrap_model)
from .losses import noise_level_weights, sample_weighted
from .precision import select_device, training_precision

__all__ = ["EMA", "TrainResult", "Trainer", "load_checkpoint", "model_from_checkpoint"]

CHECKPOINT_FORMAT = "pympisr-checkpoint-1"


class EMA:
    """Exponential moving average of a model's weights.

    ``ema = d * ema + (1 - d) * weights`` after every step with
    ``d = min(decay, (1 + step) / (10 + step))`` (short warm-up); buffers (batch-norm
    running statistics) are copied from the live model.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for avg, live in zip(self.model.parameters(), model.parameters()):
            avg.lerp_(live.detach(), 1.0 - d)
        for avg, live in zip(self.model.buffers(), model.buffers()):
            avg.copy_(live)


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.fit`."""

    step: int
    train_loss: float
    val_loss: float
    best_val_loss: float
    val_identity_loss: float
    elapsed_s: float
    last_checkpoint: Path
    best_checkpoint: Path
    finished: bool
    steps_run: int = 0
    train_time_s: float = 0.0  # in training steps of this call (no validation/checkpoints)


class Trainer:
    """Train the network of a :class:`TrainingConfig`.

    Parameters
    ----------
    config:
        The experiment.
    progress:
        Show a tqdm progress bar (rank 0 only).
    distributed:
        This process's place in a data-parallel run (default: a single process); the
        process group must be joined already (:func:`.distributed.process_group`).
    """

    def __init__(self, config: TrainingConfig, *, progress: bool = True,
                 distributed: DistributedContext | None = None) -> None:
        self.config = config
        self.dist = distributed or DistributedContext()
        self.progress = progress and self.dist.is_main
        self.output_dir = Path(config.experiment.output_dir)
        cfg = config
        if cfg.train.batch_size % self.dist.world_size:
            raise ConfigError(f"train.batch_size = {cfg.train.batch_size} is not a multiple "
                              f"of the {self.dist.world_size} training processes")
        torch.set_num_threads(cfg.train.threads)
        self.device = select_device(cfg.train.device, self.dist.local_rank)
        self.precision = training_precision(self.device, cfg.train.amp)
        options = cfg.sample_options()
        self.task = cfg.make_task()
        self.train_set = ComponentDataset(cfg.data.root, cfg.data.train_split, options,
                                          task=self.task, noise=cfg.data.noise,
                                          seed=cfg.experiment.seed)
        self.val_set = ComponentDataset(cfg.data.root, cfg.data.val_split, options,
                                        task=self.task, noise=cfg.data.noise,
                                        seed=cfg.experiment.seed + 1)
        n_val = min(len(self.val_set), cfg.data.val_components)
        self.val_indices = np.linspace(0, len(self.val_set) - 1, n_val).round().astype(int)
        self.model_options = {**model_spec(cfg.model.name).defaults, **cfg.model.options,
                              "dims": cfg.data.dims}
        torch.manual_seed(cfg.experiment.seed)
        self.model = build_model(cfg.model.name, **self.model_options)
        if cfg.model.init_from:
            load_onnx_convolutions(self.model, cfg.model.init_from)
        self.model = prepare_model(self.model.to(self.device), self.device, self.dist)
        self.train_model = wrap_model(self.model, self.device, self.dist)
        self.ema = EMA(self.model, cfg.ema.decay) if cfg.ema.enabled else None
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.optimizer.lr,
                                          betas=tuple(cfg.optimizer.betas),
                                          weight_decay=cfg.optimizer.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=list(cfg.schedule.milestones), gamma=cfg.schedule.gamma)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision.loss_scaling)
        self.step = 0
        self.elapsed_s = 0.0
        self.history: dict[str, list[list[float]]] = {"train": [], "val": [], "lr": []}
        self.best_val = math.inf
        self.val_identity = math.nan

    # ---------------------------------------------------------------- checkpoints
    @property
    def last_path(self) -> Path:
        return self.output_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.output_dir / "best.pt"

    def eval_model(self) -> nn.Module:
        """The weights used for validation and export (EMA if enabled)."""
        return self.ema.model if self.ema is not None else self.model

    def state(self) -> dict[str, Any]:
        from .. import __version__
        cfg = self.config
        return {
            "format": CHECKPOINT_FORMAT,
            "pympisr_version": __version__,
            "config": cfg.to_dict(),
            "task": cfg.experiment.task,
            "model": {"name": cfg.model.name,
                      "architecture": model_spec(cfg.model.name).architecture,
                      "options": self.model_options},
            "data": dataset_description(cfg.data.root),
            "step": self.step,
            "elapsed_s": self.elapsed_s,
            "state_dict": self.model.state_dict(),
            "ema_state_dict": None if self.ema is None else self.ema.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "history": self.history,
            "best_val": self.best_val,
            "val_identity": self.val_identity,
        }

    def save(self, path: Path) -> None:
        with atomic_output(path, overwrite=True) as tmp:
            torch.save(self.state(), tmp)

    def resume(self, path: Path | None = None) -> None:
        """Load the full training state from ``path`` (default ``last.pt``)."""
        ckpt = load_checkpoint(path or self.last_path)
        if ckpt["model"]["name"] != self.config.model.name:
            raise CheckpointError(f"{path or self.last_path}: checkpoint is for model "
                                  f"{ckpt['model']['name']!r}, config asks "
                                  f"{self.config.model.name!r}")
        self.model.load_state_dict(ckpt["state_dict"])
        if self.ema is not None and ckpt["ema_state_dict"] is not None:
            self.ema.model.load_state_dict(ckpt["ema_state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt["scaler"]:  # empty when saved without loss scaling (CPU, bfloat16)
            self.scaler.load_state_dict(ckpt["scaler"])
        self.step = int(ckpt["step"])
        self.elapsed_s = float(ckpt["elapsed_s"])
        self.history = ckpt["history"]
        self.best_val = float(ckpt["best_val"])
        self.val_identity = float(ckpt["val_identity"])

    # ---------------------------------------------------------------- loops
    def _loader(self, dataset: Any, **kwargs: Any) -> DataLoader:
        workers = self.config.data.num_workers
        return DataLoader(dataset, num_workers=workers, persistent_workers=False,
                          pin_memory=self.device.type == "cuda", **kwargs)

    @torch.no_grad()
    def validate(self) -> tuple[float, float]:
        """(mean task loss of the eval model, same for the degraded input itself; the
        latter is NaN when the task changes the grid)."""
        model = self.eval_model()
        model.eval()
        loader = self._loader(Subset(self.val_set, self.val_indices.tolist()), batch_size=64)
        total = identity = weight = 0.0
        for batch in loader:
            batch = self.weigh({k: v.to(self.device) for k, v in batch.items()})
            with self.autocast():
                pred = self.forward(model, batch)
            n = float(self.loss_mass(batch))
            total += float(self.task.loss(pred.float(), batch)) * n
            same_grid = batch["input"].shape == batch["target"].shape
            identity += float(self.task.loss(batch["input"], batch)) * n if same_grid \
                else math.nan
            weight += n
        return total / weight, identity / weight

    def autocast(self) -> torch.autocast:
        """The autocast context of forward passes (:mod:`.precision`)."""
        return torch.autocast(self.device.type, dtype=self.precision.dtype,
                              enabled=self.precision.autocast)

    def weigh(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``batch`` with ``"sample_weight"`` ``(B,)`` added when the ``[loss]`` table asks
        for noise-level weights (:func:`.losses.noise_level_weights`)."""
        cfg = self.config.loss
        if cfg.noise_floor > 0:
            batch["sample_weight"] = noise_level_weights(batch["sigma"], cfg.noise_floor,
                                                         cfg.noise_power)
        return batch

    @staticmethod
    def loss_mass(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Total pixel weight of a batch's loss (valid pixels times the sample weights):
        the weight of its mean when batches or processes are combined."""
        return sample_weighted(batch["valid"], batch.get("sample_weight")).sum()

    @staticmethod
    def forward(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The model's prediction for a batch (inputs as the task defines them)."""
        return run_network(model, batch["input"], batch.get("sigma"), batch.get("mask"))

    def fit(self, *, resume: bool = False) -> TrainResult:
        """Train until ``train.steps`` (or ``train.max_minutes``); return the outcome."""
        cfg = self.config.train
        if resume:
            self.resume()
        sampler = StepBatchSampler(len(self.train_set), cfg.batch_size,
                                   seed=self.config.experiment.seed,
                                   num_steps=cfg.steps, start_step=self.step)
        if self.dist.enabled:
            sampler = ShardedBatchSampler(sampler, self.dist)
        loader = self._loader(self.train_set, batch_sampler=sampler)
        self.model.train()
        running: list[float] = []
        train_loss = math.nan
        val_loss = self.history["val"][-1][1] if self.history["val"] else math.nan
        t0, elapsed0 = time.perf_counter(), self.elapsed_s
        first_step = self.step
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not self.progress,
                   desc=self.config.experiment.name, unit="step")
        finished = True
        train_time = 0.0
        step_start = time.perf_counter()
        for batch in loader:
            batch = self.weigh({k: v.to(self.device, non_blocking=True)
                                for k, v in batch.items()})
            with self.autocast():
                pred = self.forward(self.train_model, batch)
            loss = objective = self.task.loss(pred.float(), batch)
            if self.dist.enabled:
                loss, objective = combine_loss(loss, self.loss_mass(batch), self.dist)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite training loss at step {self.step}")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(objective).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update(self.model, self.step)
            self.step += 1
            running.append(float(loss.detach()))
            self.elapsed_s = elapsed0 + time.perf_counter() - t0
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                train_loss = float(np.mean(running))
                running.clear()
                self.history["train"].append([self.step, train_loss])
                self.history["lr"].append([self.step, self.scheduler.get_last_lr()[0]])
                bar.set_postfix(loss=f"{train_loss:.4f}", val=f"{val_loss:.4f}")
            out_of_time = cfg.max_minutes > 0 and self.elapsed_s >= 60 * cfg.max_minutes
            if self.dist.enabled:
                out_of_time = agree(out_of_time, self.device)
            train_time += time.perf_counter() - step_start
            last = self.step == cfg.steps or out_of_time
            if (self.step % cfg.val_every == 0 or last) and self.dist.is_main:
                val_loss, self.val_identity = self.validate()
                self.model.train()
                self.history["val"].append([self.step, val_loss])
                if val_loss < self.best_val:
                    self.best_val = val_loss
                    self.save(self.best_path)
                self.plot_history()
            if (self.step % cfg.checkpoint_every == 0 or last) and self.dist.is_main:
                self.save(self.last_path)
                self.write_history()
            step_start = time.perf_counter()
            if out_of_time and self.step < cfg.steps:
                finished = False
                break
        bar.close()
        barrier(self.dist)  # the others return once rank 0 has written its files
        if running:
            train_loss = float(np.mean(running))
        elif math.isnan(train_loss) and self.history["train"]:
            # nothing trained in this call (resuming a finished run): report the last loss
            train_loss = float(self.history["train"][-1][1])
        return TrainResult(step=self.step, train_loss=train_loss, val_loss=val_loss,
                           best_val_loss=self.best_val, val_identity_loss=self.val_identity,
                           elapsed_s=self.elapsed_s, last_checkpoint=self.last_path,
                           best_checkpoint=self.best_path, finished=finished,
                           steps_run=self.step - first_step, train_time_s=train_time)

    # ---------------------------------------------------------------- reporting
    def write_history(self) -> None:
        """Write ``history.json`` (losses and learning rate per step)."""
        with atomic_output(self.output_dir / "history.json", overwrite=True) as tmp:
            tmp.write_text(json.dumps({**self.history, "val_identity": self.val_identity,
                                       "elapsed_s": self.elapsed_s}, indent=1))

    def plot_history(self) -> None:
        """Write the loss-curve figure ``loss.png``."""
        plot_loss_curve(self.history, self.output_dir / "loss.png",
                        title=self.config.experiment.name, identity=self.val_identity)


def plot_loss_curve(history: dict[str, list[list[float]]], path: Path, *, title: str,
                    identity: float = math.nan) -> None:
    """Training and validation masked-L1 loss against step (log scale), as a PNG.

    Uses matplotlib's object API with the Agg canvas (no pyplot, no backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for key, style in (("train", "-"), ("val", "o-")):
        if history.get(key):
            steps, values = zip(*history[key])
            ax.plot(steps, values, style, label=f"{key} (EMA)" if key == "val" else key,
                    markersize=3)
    if math.isfinite(identity):
        ax.axhline(identity, color="gray", linestyle="--", label="val, noisy input")
    ax.set_xlabel("step")
    ax.set_ylabel("masked L1")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint (CPU tensors) and check its format.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    CheckpointError
        The file is not a (readable) pympisr training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError,
            UnicodeDecodeError, ImportError, AttributeError, IndexError, KeyError) as exc:
        raise CheckpointError(f"{path}: not a pympisr training checkpoint (torch.load "
                              f"failed: {type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a pympisr training checkpoint "
                              f"(expected format {CHECKPOINT_FORMAT!r})")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], *, ema: bool = True) -> nn.Module:
    """The network of a checkpoint in eval mode (EMA weights when present and ``ema``)."""
    model = build_model(ckpt["model"]["name"], **ckpt["model"]["options"])
    state = ckpt["ema_state_dict"] if ema and ckpt.get("ema_state_dict") else ckpt["state_dict"]
    model.load_state_dict(state)
    return model.eval()
