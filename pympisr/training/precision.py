"""Device selection and mixed precision for training.

Mixed precision (``[train] amp = true``) is used on CUDA only, as in the seed paper
(section 3.3, "mixed precision on GPU"):

* bfloat16 autocast where the GPU supports it (compute capability >= 8.0: A100, H100,
  H200, RTX 30xx and newer): same exponent range as float32, so no loss scaling;
* float16 autocast with dynamic loss scaling (:class:`torch.amp.GradScaler`) on older GPUs.

On the CPU training runs in float32 even with ``amp = true``: bfloat16 autocast on a CPU
without native bfloat16 units is slower than float32, and keeping float32 makes CPU
results independent of the CPU model. Weights, optimiser state, checkpoints and exported
models are float32 in every case (the ONNX contract, DESIGN.md section 8).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import ConfigError

__all__ = ["Precision", "select_device", "training_precision"]


@dataclass(frozen=True)
class Precision:
    """How the forward pass runs: autocast on/off, its dtype, and loss scaling."""

    autocast: bool
    dtype: torch.dtype
    loss_scaling: bool

    @property
    def name(self) -> str:
        """``"float32"``, ``"bfloat16"`` or ``"float16"`` (the forward pass's dtype)."""
        return str(self.dtype if self.autocast else torch.float32).removeprefix("torch.")


def training_precision(device: torch.device, amp: bool, *,
                       bf16_supported: Callable[[], bool] | None = None) -> Precision:
    """The precision of training on ``device`` (see the module docstring).

    ``bf16_supported`` answers whether the CUDA device supports bfloat16 (default
    :func:`torch.cuda.is_bf16_supported`); it is a parameter so the choice is testable
    without a GPU.
    """
    if not amp or device.type != "cuda":
        return Precision(autocast=False, dtype=torch.float32, loss_scaling=False)
    supported = bf16_supported or torch.cuda.is_bf16_supported
    if supported():
        return Precision(autocast=True, dtype=torch.bfloat16, loss_scaling=False)
    return Precision(autocast=True, dtype=torch.float16, loss_scaling=True)


def select_device(name: str, local_rank: int = 0, *,
                  cuda_count: Callable[[], int] | None = None) -> torch.device:
    """The training device for a config's ``train.device`` in process ``local_rank``.

    ``"auto"``: the GPU ``cuda:<local_rank>`` when CUDA is available, else the CPU;
    ``"cuda"``: ``cuda:<local_rank>`` (one GPU per process under torchrun);
    ``"cuda:N"`` and ``"cpu"``: as written. ``cuda_count`` returns the number of visible
    GPUs (default :func:`torch.cuda.device_count`).

    Raises
    ------
    ConfigError
        A GPU is asked for but none (or not that many) is visible.
    """
    count = (cuda_count or torch.cuda.device_count)()
    if name == "cpu" or (name == "auto" and count == 0):
        return torch.device("cpu")
    if name in ("auto", "cuda"):
        index = local_rank
    else:
        try:
            index = int(name.partition(":")[2])
        except ValueError:
            raise ConfigError(f"train.device = {name!r}: expected auto, cpu, cuda or "
                              "cuda:N") from None
    if index >= count:
        raise ConfigError(f"train.device = {name!r}: GPU {index} requested (local rank "
                          f"{local_rank}) but {count} CUDA device(s) are visible")
    return torch.device("cuda", index)
