"""Data-parallel training on several processes (torch DistributedDataParallel, DDP).

Launch one process per GPU (or several CPU processes) with ``torchrun``::

    torchrun --nproc_per_node 4 -m pympisr train CONFIG.toml
    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 --master_addr HOST \\
             --master_port 29500 -m pympisr train CONFIG.toml        # on each node

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:meth:`DistributedContext.from_environment` reads them, :func:`process_group` joins the
group (backend ``nccl`` on GPUs, ``gloo`` on CPUs).

What stays the same as a single-process run
    * ``train.batch_size`` is the global batch. Step ``t``'s batch is the one
      :class:`~pympisr.training.data.StepBatchSampler` draws for a single process; process
      ``r`` of ``W`` takes its samples ``r, r + W, r + 2W, ...`` (:class:`ShardedBatchSampler`),
      so the processes see disjoint samples whose union is the single-process batch.
    * The update is the single-process update on the global batch (up to floating-point
      summation order). Every task loss is a mean over the valid pixels of its batch
      (:mod:`pympisr.training.losses`); for per-process losses ``L_r`` over ``n_r`` valid
      pixels the global loss is ``L = sum_r n_r L_r / sum_r n_r``. Each process
      back-propagates ``W n_r L_r / sum_r n_r`` and DDP averages the gradients over the
      ``W`` processes, which gives exactly ``grad L`` (:func:`combine_loss`).
    * Resuming is exact: the batches depend only on the step, every process loads the same
      ``last.pt``, and DDP keeps the weights identical on all processes.

What differs
    * Batch normalisation: on GPUs the layers become :class:`torch.nn.SyncBatchNorm`
      (statistics over the global batch). SyncBatchNorm does not run on CPUs, so with
      ``gloo`` each process normalises over its own ``batch_size / W`` samples.
    * Only rank 0 validates, writes checkpoints, ``history.json`` and ``loss.png`` and
      shows the progress bar; the others wait for it at the next gradient exchange. The
      logged training loss is the global one (all-reduced), the same on every process,
      and the time limit (``train.max_minutes``) is agreed by all processes, so all stop
      at the same step.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from ..errors import ConfigError, InvalidInputError

__all__ = ["DistributedContext", "ShardedBatchSampler", "agree", "backend_for", "barrier",
           "combine_loss", "prepare_model", "process_group", "shard", "wrap_model"]

T = TypeVar("T")
GROUP_TIMEOUT = timedelta(minutes=30)  # longest wait of one process for the others


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a data-parallel run (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """Whether more than one process trains together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: validates, writes files and reports."""
        return self.rank == 0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> DistributedContext:
        """The context torchrun describes in ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``
        (a single process when ``WORLD_SIZE`` is not set).

        Raises
        ------
        InvalidInputError
            A variable is not an integer, or the ranks are out of range (the message
            names the variable).
        """
        env = os.environ if environ is None else environ
        if "WORLD_SIZE" not in env:
            return cls()
        values = {}
        for name, default in (("RANK", None), ("WORLD_SIZE", None), ("LOCAL_RANK", "0")):
            raw = env.get(name, default)
            if raw is None:
                raise InvalidInputError(f"environment variable {name} is not set although "
                                        "WORLD_SIZE is (launch with torchrun)")
            try:
                values[name] = int(raw)
            except ValueError:
                raise InvalidInputError(f"environment variable {name}={raw!r} is not an "
                                        "integer") from None
        world, rank, local = values["WORLD_SIZE"], values["RANK"], values["LOCAL_RANK"]
        if world < 1 or not 0 <= rank < world or local < 0:
            raise InvalidInputError(f"environment: RANK={rank}, WORLD_SIZE={world}, "
                                    f"LOCAL_RANK={local} is not a valid process placement")
        return cls(rank=rank, world_size=world, local_rank=local)


def backend_for(device: torch.device) -> str:
    """``"nccl"`` for GPUs, ``"gloo"`` for CPUs."""
    return "nccl" if device.type == "cuda" else "gloo"


@contextlib.contextmanager
def process_group(context: DistributedContext, device: torch.device) -> Iterator[None]:
    """Join the process group of a torchrun launch for the block (nothing when not
    distributed); ``MASTER_ADDR`` and ``MASTER_PORT`` come from the environment."""
    if not context.enabled:
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend_for(device), rank=context.rank,
                            world_size=context.world_size, timeout=GROUP_TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def shard(batch: Sequence[T], context: DistributedContext) -> list[T]:
    """This process's share of a global batch: items ``rank, rank + W, ...``.

    Raises
    ------
    ConfigError
        The batch size is not a multiple of the number of processes.
    """
    if len(batch) % context.world_size:
        raise ConfigError(f"train.batch_size = {len(batch)} is not a multiple of the "
                          f"{context.world_size} training processes")
    return list(batch[context.rank::context.world_size])


class ShardedBatchSampler(Sampler[list[Any]]):
    """This process's share (:func:`shard`) of every batch of a batch sampler."""

    def __init__(self, batches: Sampler[list[Any]], context: DistributedContext) -> None:
        self.batches = batches
        self.context = context

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[list[Any]]:
        for batch in self.batches:
            yield shard(batch, self.context)


def prepare_model(model: nn.Module, device: torch.device,
                  context: DistributedContext) -> nn.Module:
    """Batch norm over the global batch on GPUs (SyncBatchNorm; same parameter names, so
    checkpoints are unchanged); ``model`` as it is otherwise. Call before the optimiser
    and the EMA copy are made."""
    if context.enabled and device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def wrap_model(model: nn.Module, device: torch.device,
               context: DistributedContext) -> nn.Module:
    """The module that runs the training forward pass: DDP around ``model`` when
    distributed (it shares ``model``'s parameters), ``model`` itself otherwise."""
    if not context.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index]
                                   if device.type == "cuda" else None)


def combine_loss(loss: torch.Tensor, weight: torch.Tensor,
                 context: DistributedContext) -> tuple[torch.Tensor, torch.Tensor]:
    """``(global loss, this process's objective)`` from its mean loss ``loss`` over
    ``weight`` valid pixels (see the module docstring: back-propagating the objective
    on every process and averaging the gradients gives the gradient of the global loss).

    The global loss is detached and identical on all processes.
    """
    stats = torch.stack([loss.detach() * weight, weight.to(loss.dtype)]).double()
    dist.all_reduce(stats)
    total = stats[1].clamp_min(1.0)
    global_loss = (stats[0] / total).to(loss.dtype)
    objective = loss * (weight.double() * context.world_size / total).to(loss.dtype)
    return global_loss, objective


def agree(flag: bool, device: torch.device) -> bool:
    """True on every process when ``flag`` is true on any (all-reduce, maximum)."""
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def barrier(context: DistributedContext) -> None:
    """Wait until every process arrives (nothing when not distributed)."""
    if context.enabled:
        dist.barrier()
