"""Restoration networks, built by name from a registry.

>>> from pympisr.models import build_model
>>> net = build_model("dncnn-small", dims=2)

Every network takes and returns float tensors ``(B, 2, [D,] H, W)`` (real and imaginary
part of a frequency component) and exposes ``dims``, ``size_multiple`` (input grids are
padded to a multiple of it) and ``scale_factor`` (output grid / input grid).
Architecture modules are imported below, explicitly, so that they register themselves.
"""

from __future__ import annotations

from . import dncnn  # noqa: F401  (registers DnCNN sizes)
from .dncnn import DnCNN
from .registry import ModelSpec, available_models, build_model, model_spec, register

__all__ = ["DnCNN", "ModelSpec", "available_models", "build_model", "model_spec", "register"]
