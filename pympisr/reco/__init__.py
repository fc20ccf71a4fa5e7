"""Image reconstruction with MPIReco.jl semantics (DESIGN section 4).

* :func:`kaczmarz`: regularised Kaczmarz row-action solver (numba kernel or numpy);
* :func:`select_frequencies`: MPIFiles' ``filterFrequencies`` rule;
* :func:`reconstruct`: system matrix + measurement -> concentration images (one
  pipeline; ``backend=`` chooses who reads files and solves: :mod:`.backends`);
* :class:`ReconstructionBackend`, :class:`PythonBackend`, :class:`SolverParameters`,
  :func:`get_backend`: the backend protocol and the native backend (the Julia one is
  ``pympisr.julia.JuliaBackend``);
* :func:`write_image`: the image as HDF5 (MDF ``/reconstruction`` group) plus a PNG.
"""

from __future__ import annotations

from .backends import PythonBackend, ReconstructionBackend, SolverParameters, get_backend
from .frequency_filter import select_frequencies
from .kaczmarz import kaczmarz
from .output import write_image
from .reconstruct import reconstruct

__all__ = ["PythonBackend", "ReconstructionBackend", "SolverParameters", "get_backend",
           "kaczmarz", "reconstruct", "select_frequencies", "write_image"]
