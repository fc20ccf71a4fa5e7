"""Image reconstruction with MPIReco.jl semantics (DESIGN section 4).

* :func:`kaczmarz`: regularised Kaczmarz row-action solver (numba kernel or numpy);
* :func:`select_frequencies`: MPIFiles' ``filterFrequencies`` rule;
* :func:`reconstruct`: system matrix + measurement -> concentration images;
* :func:`write_image`: the image as HDF5 (MDF ``/reconstruction`` group) plus a PNG.
"""

from __future__ import annotations

from .frequency_filter import select_frequencies
from .kaczmarz import kaczmarz
from .output import write_image
from .reconstruct import reconstruct

__all__ = ["kaczmarz", "reconstruct", "select_frequencies", "write_image"]
