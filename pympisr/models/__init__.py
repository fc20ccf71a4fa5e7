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
from . import pconv_unet  # noqa: F401  (registers PConvUNet sizes)
from . import rdn  # noqa: F401  (registers RDN sizes)
from . import smrnet  # noqa: F401  (registers SMRnet sizes)
from . import srcnn  # noqa: F401  (registers SRCNN sizes)
from . import swinir  # noqa: F401  (registers SwinIR sizes)
from . import transms  # noqa: F401  (registers TranSMS sizes)
from . import vdsr  # noqa: F401  (registers VDSR sizes)
from .dncnn import DnCNN
from .registry import ModelSpec, available_models, build_model, model_spec, register

__all__ = ["DnCNN", "ModelSpec", "available_models", "build_model", "model_spec", "register"]
