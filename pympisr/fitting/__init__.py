"""Fit the simulator's geometry and particle parameters to a measured system matrix
(:func:`fit`, :class:`FitResult`; DESIGN section 13)."""

from __future__ import annotations

from .solver import FitProblem, fit
from .model import Nominal, ParameterSpace, nominal_geometry
from .result import FitResult

__all__ = ["FitProblem", "FitResult", "Nominal", "ParameterSpace", "fit", "nominal_geometry"]
