"""Experiment configuration from TOML files (stdlib ``tomllib``).

A config has one table per concern; every key is optional except ``data.root``::

    [experiment]  name, task ("denoise"), seed, output_dir
    [data]        root, train_split, val_split, dims, patch_size, sigma_range,
                  scale_range, num_workers, val_components
    [model]       name (registry name, e.g. "dncnn-small"), options (table of overrides)
    [optimizer]   lr, betas, weight_decay                  (Adam)
    [schedule]    milestones (steps), gamma                (MultiStepLR)
    [ema]         enabled, decay
    [train]       steps, batch_size, log_every, val_every, checkpoint_every, amp,
                  threads, max_minutes, device

Relative paths are kept as written (resolved against the working directory when used).
Unknown tables or keys are errors, so a typo never silently falls back to a default.
See ``pympisr/configs/*.toml`` for complete examples.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DataConfig", "EMAConfig", "ExperimentConfig", "ModelConfig", "OptimizerConfig",
           "ScheduleConfig", "TrainConfig", "TrainingConfig", "load_config"]

TASKS = ("denoise",)


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    task: str = "denoise"
    seed: int = 0
    output_dir: str = "runs/experiment"


@dataclass
class DataConfig:
    root: str = ""
    train_split: str = "train"
    val_split: str = "val"
    dims: int = 2
    patch_size: int = 32
    sigma_range: tuple[float, float] = (0.0, 0.35)
    scale_range: tuple[float, float] = (0.8, 1.2)
    num_workers: int = 0
    val_components: int = 512


@dataclass
class ModelConfig:
    name: str = "dncnn-small"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimizerConfig:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0


@dataclass
class ScheduleConfig:
    milestones: tuple[int, ...] = ()
    gamma: float = 0.5


@dataclass
class EMAConfig:
    enabled: bool = True
    decay: float = 0.999


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 32
    log_every: int = 25
    val_every: int = 250
    checkpoint_every: int = 250
    amp: bool = True
    threads: int = 2
    max_minutes: float = 0.0
    device: str = "auto"


@dataclass
class TrainingConfig:
    """The whole experiment; ``TrainingConfig.load(path)`` or :func:`load_config`."""

    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "<dict>") -> TrainingConfig:
        """Build and validate a config from nested dicts (as parsed from TOML)."""
        sections = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(raw) - set(sections)
        if unknown:
            raise ValueError(f"{source}: unknown table(s) {sorted(unknown)}; "
                             f"known: {sorted(sections)}")
        parts = {}
        for name, fld in sections.items():
            section_cls = fld.default_factory  # type: ignore[misc]
            parts[name] = _section(section_cls, raw.get(name, {}), f"{source}: [{name}]")
        config = cls(**parts)
        config.validate(source)
        return config

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrainingConfig:
        """Parse a TOML config file."""
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: invalid TOML ({exc})") from exc
        return cls.from_dict(raw, str(path))

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON/TOML-able) of all settings."""
        return dataclasses.asdict(self)

    def validate(self, source: str = "<config>") -> None:
        """Raise ValueError naming the offending key if a value is out of range."""
        checks = [
            (self.experiment.task in TASKS, "experiment.task",
             f"must be one of {TASKS}, got {self.experiment.task!r}"),
            (bool(self.data.root), "data.root", "is required (dataset folder)"),
            (self.data.dims in (2, 3), "data.dims", f"must be 2 or 3, got {self.data.dims}"),
            (self.data.patch_size > 0, "data.patch_size", "must be positive"),
            (self.train.steps > 0, "train.steps", "must be positive"),
            (self.train.batch_size > 0, "train.batch_size", "must be positive"),
            (self.train.val_every > 0 and self.train.checkpoint_every > 0
             and self.train.log_every > 0, "train.*_every", "must be positive"),
            (self.train.threads >= 1, "train.threads", "must be >= 1"),
            (self.optimizer.lr > 0, "optimizer.lr", "must be positive"),
            (0 < self.ema.decay < 1, "ema.decay", "must be in (0, 1)"),
            (list(self.schedule.milestones) == sorted(self.schedule.milestones),
             "schedule.milestones", "must be increasing"),
            (self.train.device in ("auto", "cpu", "cuda") or
             self.train.device.startswith("cuda:"), "train.device",
             f"must be auto, cpu or cuda[:N], got {self.train.device!r}"),
        ]
        for ok, key, problem in checks:
            if not ok:
                raise ValueError(f"{source}: {key} {problem}")


def _section(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(raw) - set(fields)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(fields)}")
    values = {}
    for key, value in raw.items():
        default = getattr(cls(), key)
        values[key] = _coerce(value, default, f"{where} {key}")
    return cls(**values)


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Convert a TOML value to the type of the field's default (tuples from arrays)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true/false, got {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected an array, got {value!r}")
        if len(default) and len(value) != len(default):
            raise ValueError(f"{where}: expected {len(default)} values, got {len(value)}")
        return tuple(value)
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a table, got {value!r}")
        return dict(value)
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    if not isinstance(value, type(default)):
        raise ValueError(f"{where}: expected {type(default).__name__}, got {value!r}")
    return value


def load_config(path: str | os.PathLike[str]) -> TrainingConfig:
    """Parse and validate the TOML experiment config at ``path``."""
    return TrainingConfig.load(path)
