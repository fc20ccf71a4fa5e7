"""pympisr: restoration of MPI system matrices with networks trained on simulations.

The public API is re-exported here lazily (PEP 562), so ``import pympisr`` stays fast
and never imports torch, onnxruntime or Julia until a function that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import MDFError
from .system_matrix import Measurement, SystemMatrix

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "load_system_matrix": "pympisr.mdf.reader",
    "load_measurement": "pympisr.mdf.reader",
    "save_system_matrix": "pympisr.mdf.writer",
    "save_measurement": "pympisr.mdf.writer",
    "simulate_system_matrix": "pympisr.simulation.system_matrix",
    "simulate_measurement": "pympisr.simulation.measurement",
    "kaczmarz": "pympisr.reco.kaczmarz",
    "reconstruct": "pympisr.reco.reconstruct",
    "restore": "pympisr.restoration.restore",
    "restore_system_matrix": "pympisr.restoration.restore",
    "detect_corrupted": "pympisr.restoration.detect",
    "fit": "pympisr.fitting",
    "download": "pympisr.download",
    "openmpi_data": "pympisr.openmpi",
}

_SUBMODULES = {
    "mdf", "physics", "simulation", "reco", "phantoms", "degradations", "baselines",
    "metrics", "models", "training", "export", "restoration", "evaluation", "datasets",
    "julia",
}

__all__ = ["MDFError", "Measurement", "SystemMatrix", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"pympisr.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'pympisr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
