"""MDF v2 (Magnetic Particle Imaging Data Format) input and output.

* :func:`load_system_matrix`, :func:`load_measurement`: read every MDF v2 layout, with
  MPIFiles.jl's background and transfer-function rules (:mod:`pympisr.mdf.reader`);
* :func:`save_system_matrix`, :func:`save_measurement`: write MDF 2.1.0
  (:mod:`pympisr.mdf.writer`);
* :func:`validate`: list every departure of a file from the specification;
* :func:`describe`: a light summary of a file without reading its data;
* :func:`require_regular_file`: the check every open path runs first (FIFOs, devices
  and directories are refused with an MDFError; :mod:`pympisr.mdf.safety` also bounds
  what a file's declared sizes may make pympisr allocate).
"""

from __future__ import annotations

from .metadata import StoredDataset
from .reader import MDFWarning, load_measurement, load_system_matrix
from .safety import require_regular_file
from .summary import describe
from .validate import validate
from .writer import save_measurement, save_system_matrix

__all__ = ["MDFWarning", "StoredDataset", "describe", "load_measurement",
           "load_system_matrix", "require_regular_file", "save_measurement",
           "save_system_matrix", "validate"]
