"""Import system matrices stored by other projects into :class:`pympisr.SystemMatrix`
(write them as MDF with :func:`pympisr.save_system_matrix`).

* :func:`load_transms_mat`: TranSMS (icon-lab/TranSMS) ``.mat`` files, MATLAB v5 or
  v7.3 (:mod:`.transms`);
* :func:`load_smrnet_h5`: 3dSMRnet (Ivo-B/3dSMRnet) HDF5 files (:mod:`.smrnet`);
* :func:`system_matrix_from_array`: a plain complex array with frequencies and grid
  (:mod:`.array`).

Bad files raise :class:`~pympisr.errors.InvalidInputError` naming the file, the key and
the problem.
"""

from __future__ import annotations

from .array import system_matrix_from_array
from .smrnet import load_smrnet_h5
from .transms import load_transms_mat

__all__ = ["load_smrnet_h5", "load_transms_mat", "system_matrix_from_array"]
