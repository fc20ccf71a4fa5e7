"""Physics-based simulation of MPI system matrices, noise and training datasets.

* :func:`simulate_system_matrix` (:mod:`.system_matrix`) and the parameter sampler
  (:mod:`.parameters`),
* :class:`NoiseSource` (:mod:`.noise`),
* dataset generation (:mod:`.generate`, ``pympisr dataset``).

Submodules are imported on first use so that ``import pympisr.simulation`` is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "SimulationParameters": "pympisr.simulation.parameters",
    "sample_parameters": "pympisr.simulation.parameters",
    "reference_parameters": "pympisr.simulation.parameters",
    "simulate_system_matrix": "pympisr.simulation.system_matrix",
    "NoiseSource": "pympisr.simulation.noise",
    "generate_dataset": "pympisr.simulation.generate",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pympisr.simulation' has no attribute {name!r}")
