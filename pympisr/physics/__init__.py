"""Particle and scanner physics: mean magnetic moments and Lissajous FFP fields.

* :func:`mean_moment` (:mod:`.moments`): exact Langevin and equilibrium-anisotropy
  moments; :mod:`.tables`: the interpolated fast path for bulk simulation.
* :mod:`.fields`: drive and selection fields, trajectory periods, mixing orders.
"""

from __future__ import annotations

from . import fields
from .moments import anisotropy_parameter, field_parameter, langevin, mean_moment

__all__ = ["anisotropy_parameter", "field_parameter", "fields", "langevin", "mean_moment"]
