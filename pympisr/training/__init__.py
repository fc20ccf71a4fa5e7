"""Training of restoration networks on simulated datasets (seed paper 3.3).

* :mod:`.data`: component dataset; samples are built by the task (:mod:`pympisr.tasks`);
* :mod:`.losses`: L1 on valid pixels, weighted L1 for inpainting, optional per-sample
  weights by noise level;
* :mod:`.config`: TOML experiment configs;
* :mod:`.trainer`: Adam + multi-step schedule, EMA, AMP on CUDA, checkpoints/resume;
* :mod:`.precision`: device choice, bfloat16/float16 autocast on GPUs;
* :mod:`.distributed`: data-parallel training of one model by torchrun processes (DDP).

``pympisr train CONFIG.toml`` runs an experiment from the command line.
"""

from __future__ import annotations

from .config import TrainingConfig, load_config
from .data import ComponentDataset, StepBatchSampler
from .losses import masked_l1, weighted_masked_l1
from .trainer import EMA, Trainer, TrainResult, load_checkpoint, model_from_checkpoint

__all__ = ["EMA", "ComponentDataset", "StepBatchSampler", "TrainResult",
           "Trainer", "TrainingConfig", "load_checkpoint", "load_config", "masked_l1",
           "model_from_checkpoint", "weighted_masked_l1"]
