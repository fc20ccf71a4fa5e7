"""Restoration tasks: one object per task owns its operator, samples, loss, network
inputs, baseline and output geometry (see :mod:`pympisr.tasks.base`).

>>> task = get_task("accelerate", dims=2, scale_factor=2)
>>> task.output_grid((13, 13))
(25, 25)
"""

from __future__ import annotations

from typing import Any

from ..errors import UnknownTaskError
from .base import SampleOptions, Task
from .denoise import Denoise
from .inpaint import Inpaint
from .superresolution import Accelerate, Upsample

__all__ = ["TASKS", "TASK_CLASSES", "Accelerate", "Denoise", "Inpaint", "SampleOptions",
           "Task", "Upsample", "get_task"]

TASK_CLASSES: dict[str, type[Task]] = {
    "denoise": Denoise,
    "upsample": Upsample,
    "accelerate": Accelerate,
    "inpaint": Inpaint,
}
TASKS = tuple(TASK_CLASSES)


def get_task(name: str, dims: int = 2, scale_factor: int | None = None,
             **options: Any) -> Task:
    """The task ``name`` (one of :data:`TASKS`) for ``dims``-D components.

    ``scale_factor`` defaults to 1 (2 for the super-resolution tasks); ``options`` go to
    the task's constructor (e.g. ``mask_ratio`` for inpainting).
    """
    if name not in TASK_CLASSES:
        raise UnknownTaskError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    cls = TASK_CLASSES[name]
    if scale_factor is None:
        scale_factor = 1 if cls.grid_rule == "same" else 2
    return cls(dims, scale_factor, **options)
