"""Which MDF fields pympisr models explicitly, and collecting all the others.

``SystemMatrix.metadata`` / ``Measurement.metadata`` map absolute HDF5 paths to values
(:func:`pympisr.mdf.quirks.read_value`) for every dataset that the data model does
not represent itself, so that load -> save -> load loses nothing. Left out are:

* the measurement layout (``/measurement/data`` and its flags, frame permutation,
  frequency selection, sparsity fields; legacy ``isTransposed``) and the sizes derived
  from the data (``/acquisition/numFrames``, ``numPeriodsPerFrame``/``numPeriods``,
  ``/acquisition/receiver/numChannels``);
* the fields modelled as attributes (transfer function, calibration size, field of
  view and its centre, SNR; ``numAverages`` for measurements);
* ``/acquisition/receiver/dataConversionFactor``, which the reader applies;
* the file's own identity (``/version``, ``/uuid``, ``/time``) and the provenance
  that every pympisr write regenerates (``/_pympisr/version``, ``/_pympisr/writtenAt``).

One layout field is kept on purpose: ``/measurement/framePermutation`` holds the
1-based acquisition index of each frame *in the model's order* (foreground frames,
then background frames) when it is not the identity, so background correction can
still be done after a save.
"""

from __future__ import annotations

from typing import Any

import h5py

from .quirks import FieldReader

__all__ = ["FRAME_PERMUTATION", "collect_metadata", "modelled_fields"]

FRAME_PERMUTATION = "/measurement/framePermutation"

_LAYOUT = {
    "/measurement/" + name for name in (
        "data", "isBackgroundCorrected", "isFastFrameAxis", "isFourierTransformed",
        "isFramePermutation", "isFrequencySelection", "isSparsityTransformed",
        "isTransferFunctionCorrected", "isBackgroundFrame", "framePermutation",
        "frequencySelection", "subsamplingIndices", "sparsityTransformation",
        "isTransposed")
}
_DERIVED = {
    "/version", "/uuid", "/time",
    "/acquisition/numFrames", "/acquisition/numPeriodsPerFrame", "/acquisition/numPeriods",
    "/acquisition/receiver/numChannels", "/acquisition/receiver/transferFunction",
    "/acquisition/receiver/dataConversionFactor",
    "/_pympisr/version", "/_pympisr/writtenAt",
}
_SYSTEM_MATRIX = {"/calibration/size", "/calibration/fieldOfView",
                  "/calibration/fieldOfViewCenter", "/calibration/snr"}
_MEASUREMENT = {"/acquisition/numAverages"}


def modelled_fields(kind: str) -> set[str]:
    """HDF5 paths that the ``"system_matrix"`` or ``"measurement"`` model owns."""
    extra = _SYSTEM_MATRIX if kind == "system_matrix" else _MEASUREMENT
    return _LAYOUT | _DERIVED | extra


def collect_metadata(reader: FieldReader, kind: str) -> dict[str, Any]:
    """All datasets of the file except :func:`modelled_fields`, keyed by HDF5 path."""
    skip = modelled_fields(kind)
    names = [name for name, obj in reader.objects.items()
             if isinstance(obj, h5py.Dataset) and name not in skip]
    return {name: reader.raw(name) for name in sorted(names)}
