"""Experiment configuration from TOML files (stdlib ``tomllib``).

A config has one table per concern; every key is optional except ``data.root``::

    [experiment]  name, task (a name of pympisr.tasks.TASKS), scale_factor, seed,
                  output_dir
    [data]        root, train_split, val_split, dims, patch_size, sigma_range,
                  sigma_distribution ("uniform" | "loguniform"), zero_fraction,
                  noise ("gaussian" | "parametric" | path of an MDF file whose
                  background frames are the noise),
                  scale_range, num_workers, val_components
    [model]       name (registry name, e.g. "dncnn-small"), options (table of overrides),
                  init_from (warm start from an exported .onnx, see
                  pympisr.models.warm_start)
    [optimizer]   lr, betas, weight_decay                  (Adam)
    [schedule]    milestones (steps), gamma                (MultiStepLR)
    [ema]         enabled, decay
    [loss]        noise_floor, noise_power     (per-sample weights (sigma + noise_floor)
                                                ^-noise_power; noise_floor = 0: unweighted,
                                                pympisr.training.losses)
    [train]       steps, batch_size, log_every, val_every, checkpoint_every, amp,
                  threads, max_minutes, device

Relative paths are kept as written (resolved against the working directory when used).
Unknown tables or keys are errors, so a typo never silently falls back to a default.
Every problem raises :class:`~pympisr.errors.ConfigError` (a ValueError) naming the file
and the key.
See ``pympisr/configs/*.toml`` for complete examples.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

from ..tasks import TASKS, SampleOptions, Task, get_task

__all__ = ["DataConfig", "EMAConfig", "ExperimentConfig", "LossConfig", "ModelConfig",
           "OptimizerConfig", "ScheduleConfig", "TrainConfig", "TrainingConfig", "load_config"]

@dataclass
class ExperimentConfig:
    name: str = "experiment"
    task: str = "denoise"
    scale_factor: int = 0  # 0: the task's default (1, or 2 for super-resolution)
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
    sigma_distribution: str = "uniform"
    zero_fraction: float = 0.05
    noise: str = "gaussian"  # "gaussian", "parametric" or an MDF file with background frames
    scale_range: tuple[float, float] = (0.8, 1.2)
    num_workers: int = 0
    val_components: int = 512


@dataclass
class ModelConfig:
    name: str = "dncnn-small"
    options: dict[str, Any] = field(default_factory=dict)
    init_from: str = ""  # warm start: an exported .onnx of a conv-only network


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
class LossConfig:
    noise_floor: float = 0.0  # > 0: weight samples by (sigma + noise_floor)^-noise_power
    noise_power: float = 1.0


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
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "<dict>") -> TrainingConfig:
        """Build and validate a config from nested dicts (as parsed from TOML)."""
        sections = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(raw) - set(sections)
        if unknown:
            raise ConfigError(f"{source}: unknown table(s) {sorted(unknown)}; "
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
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not a TOML text file (not valid UTF-8 at byte "
                              f"{exc.start})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML ({exc})") from exc
        return cls.from_dict(raw, str(path))

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON/TOML-able) of all settings."""
        return dataclasses.asdict(self)

    def make_task(self) -> Task:
        """The experiment's :class:`~pympisr.tasks.Task`."""
        return get_task(self.experiment.task, self.data.dims,
                        self.experiment.scale_factor or None)

    def sample_options(self) -> SampleOptions:
        """The per-sample preprocessing of the ``[data]`` table."""
        d = self.data
        return SampleOptions(dims=d.dims, patch_size=d.patch_size,
                             sigma_range=tuple(d.sigma_range),  # type: ignore[arg-type]
                             sigma_distribution=d.sigma_distribution,
                             zero_fraction=d.zero_fraction,
                             scale_range=tuple(d.scale_range))  # type: ignore[arg-type]

    def validate(self, source: str = "<config>") -> None:
        """Raise :class:`ConfigError` naming the offending key if a value is out of range
        or not finite."""
        for section in dataclasses.fields(self):
            part = getattr(self, section.name)
            for fld in dataclasses.fields(part):
                value = getattr(part, fld.name)
                values = value if isinstance(value, tuple) else (value,)
                if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                    raise ConfigError(f"{source}: {section.name}.{fld.name} must be finite, "
                                      f"got {value!r}")
        sigma, scale = self.data.sigma_range, self.data.scale_range
        checks = [
            (self.experiment.task in TASKS, "experiment.task",
             f"must be one of {TASKS}, got {self.experiment.task!r}"),
            (self.experiment.scale_factor >= 0, "experiment.scale_factor",
             "must be >= 0 (0: the task's default)"),
            (bool(self.data.root), "data.root", "is required (dataset folder)"),
            (self.data.dims in (2, 3), "data.dims", f"must be 2 or 3, got {self.data.dims}"),
            (self.data.patch_size > 0, "data.patch_size", "must be positive"),
            (self.data.noise in ("gaussian", "parametric") or Path(self.data.noise).is_file(),
             "data.noise", "must be 'gaussian', 'parametric' or an existing MDF file with "
             f"background frames, got {self.data.noise!r}"),
            (0 <= sigma[0] <= sigma[1], "data.sigma_range",
             f"must satisfy 0 <= low <= high, got {tuple(sigma)}"),
            (0 < scale[0] <= scale[1], "data.scale_range",
             f"must satisfy 0 < low <= high, got {tuple(scale)}"),
            (self.train.steps > 0, "train.steps", "must be positive"),
            (self.train.batch_size > 0, "train.batch_size", "must be positive"),
            (self.train.val_every > 0 and self.train.checkpoint_every > 0
             and self.train.log_every > 0, "train.*_every", "must be positive"),
            (self.train.threads >= 1, "train.threads", "must be >= 1"),
            (self.optimizer.lr > 0, "optimizer.lr", "must be positive"),
            (0 < self.ema.decay < 1, "ema.decay", "must be in (0, 1)"),
            (self.loss.noise_floor >= 0, "loss.noise_floor", "must be >= 0 (0: unweighted)"),
            (self.loss.noise_power >= 0, "loss.noise_power", "must be >= 0"),
            (list(self.schedule.milestones) == sorted(self.schedule.milestones),
             "schedule.milestones", "must be increasing"),
            (self.train.device in ("auto", "cpu", "cuda") or
             self.train.device.startswith("cuda:"), "train.device",
             f"must be auto, cpu or cuda[:N], got {self.train.device!r}"),
        ]
        for ok, key, problem in checks:
            if not ok:
                raise ConfigError(f"{source}: {key} {problem}")
        try:
            self.make_task()
            self.sample_options()
        except ValueError as exc:
            raise ConfigError(f"{source}: [experiment]/[data]: {exc}") from exc


def _section(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(raw) - set(fields)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(fields)}")
    values = {}
    for key, value in raw.items():
        default = getattr(cls(), key)
        values[key] = _coerce(value, default, f"{where} {key}")
    return cls(**values)


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Convert a TOML value to the type of the field's default (tuples from arrays)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected an array, got {value!r}")
        if len(default) and len(value) != len(default):
            raise ConfigError(f"{where}: expected {len(default)} values, got {len(value)}")
        return tuple(value)
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return dict(value)
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    if not isinstance(value, type(default)):
        raise ConfigError(f"{where}: expected {type(default).__name__}, got {value!r}")
    return value


def load_config(path: str | os.PathLike[str]) -> TrainingConfig:
    """Parse and validate the TOML experiment config at ``path``."""
    return TrainingConfig.load(path)
