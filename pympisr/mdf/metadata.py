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

Large datasets are not read: a dataset declaring more than
:data:`~pympisr.mdf.safety.METADATA_BYTE_LIMIT` (16 MiB) bytes, or one whose declared
size the file does not plausibly store (:func:`~pympisr.mdf.safety.storage_problem`),
becomes a :class:`StoredDataset` reference (source file, HDF5 name, shape, dtype). The
writer copies referenced datasets from their source file with HDF5's object copy
(no detour through memory, unwritten chunks stay unwritten) and drops them with an
:class:`~pympisr.errors.MDFWarning` if the source can no longer be read. Objects whose
names are not valid UTF-8 are skipped with an MDFWarning (``validate`` reports them).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import h5py

from ..errors import MDFWarning
from .quirks import FieldReader
from .safety import METADATA_BYTE_LIMIT, declared_bytes, storage_problem

__all__ = ["FRAME_PERMUTATION", "StoredDataset", "collect_metadata", "modelled_fields"]

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


@dataclass(frozen=True)
class StoredDataset:
    """A metadata dataset left in its source file instead of being loaded.

    Attributes
    ----------
    source:
        Path of the file that holds it.
    name:
        Its absolute HDF5 path there.
    shape, dtype:
        Declared shape and numpy dtype string.
    """

    source: str
    name: str
    shape: tuple[int, ...]
    dtype: str


def _is_large(ds: h5py.Dataset) -> bool:
    """Too big (or too implausible) to read into the metadata dict."""
    return declared_bytes(ds) > METADATA_BYTE_LIMIT or storage_problem(ds) is not None


def _warn_undecodable(reader: FieldReader) -> None:
    if reader.undecodable:
        shown = ", ".join(reader.undecodable[:5])
        warnings.warn(f"{reader.path}: {len(reader.undecodable)} HDF5 object(s) with "
                      f"names that are not UTF-8 skipped ({shown})", MDFWarning,
                      stacklevel=4)


def collect_metadata(reader: FieldReader, kind: str) -> dict[str, Any]:
    """All datasets of the file except :func:`modelled_fields`, keyed by HDF5 path.

    Large datasets are :class:`StoredDataset` references (module docstring).
    """
    skip = modelled_fields(kind)
    out: dict[str, Any] = {}
    datasets = {name: obj for name, obj in reader.objects.items()
                if isinstance(obj, h5py.Dataset) and name not in skip}
    _warn_undecodable(reader)
    for name in sorted(datasets):
        ds = datasets[name]
        if _is_large(ds):
            out[name] = StoredDataset(reader.path, name, tuple(ds.shape or ()),
                                      ds.dtype.str)
        else:
            out[name] = reader.raw(name)
    return out
