"""Tolerant reading of single MDF fields, whatever the writer's quirks.

Real MDF files (DESIGN section 3) store the same logical value in several ways:

* booleans as ``int8`` (the spec), ``uint8``, HDF5 ``bool`` or an HDF5 enum;
* strings as fixed-length bytes, variable-length strings or object arrays of bytes,
  sometimes wrapped in a ``(1,)`` or ``(1, 1)`` array;
* legacy names: ``/measurement/isTransposed`` (v2.0) for ``isFastFrameAxis`` and
  ``/acquisition/numPeriods`` for ``numPeriodsPerFrame``.

:class:`FieldReader` hides these differences and turns every problem into an
:class:`~pympisr.errors.MDFError` naming the file, the field and the problem.
"""

from __future__ import annotations

import os
from typing import Any

import h5py
import numpy as np

from ..errors import MDFError
from .safety import require_plausible

__all__ = ["LEGACY_NAMES", "FieldReader", "decode_strings", "is_boolean_field", "read_value"]

#: current field name -> older names that mean the same thing
LEGACY_NAMES: dict[str, tuple[str, ...]] = {
    "/measurement/isFastFrameAxis": ("/measurement/isTransposed",),
    "/acquisition/numPeriodsPerFrame": ("/acquisition/numPeriods",),
}

_MISSING = object()


def is_boolean_field(path: str) -> bool:
    """True for MDF flag fields (``isSimulation``, ``isBackgroundFrame``, ...)."""
    name = path.rsplit("/", 1)[-1]
    return len(name) > 2 and name.startswith("is") and name[2].isupper()


def decode_strings(value: Any) -> Any:
    """Bytes -> ``str``; arrays of bytes/objects -> object arrays of ``str``.

    Other values are returned unchanged. Undecodable bytes are replaced (U+FFFD).
    """
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray) and value.dtype.kind in "SOU":
        out = np.empty(value.shape, dtype=object)
        for index, item in np.ndenumerate(value):
            out[index] = decode_strings(item) if isinstance(item, (bytes, np.bytes_)) else (
                item if isinstance(item, str) else str(item))
        return out
    return value


def read_value(dataset: h5py.Dataset) -> Any:
    """Read a whole dataset as a normalised Python/numpy value for ``metadata``.

    Strings become ``str`` (scalars) or object arrays of ``str``; flag fields
    (:func:`is_boolean_field`) become ``int8``; HDF5 enums become their integer base
    type; empty datasets become :class:`h5py.Empty`.
    """
    if dataset.shape is None:
        return h5py.Empty(dataset.dtype)
    raw = dataset[()]
    value = decode_strings(raw)
    if isinstance(value, str) or (isinstance(value, np.ndarray) and value.dtype == object):
        return value
    if is_boolean_field(dataset.name or "") and np.asarray(value).dtype.kind in "biu":
        arr = (np.asarray(value) != 0).astype(np.int8)
        return arr[()] if arr.ndim == 0 else arr
    if isinstance(value, np.ndarray) and h5py.check_dtype(enum=dataset.dtype) is not None:
        return value.astype(dataset.dtype.base)
    return value


class FieldReader:
    """Typed, quirk-tolerant access to the fields of an open MDF file.

    Every accessor takes an absolute HDF5 path; ``default`` (when given) is returned
    if the field (and its legacy names) is absent; any other problem raises
    :class:`MDFError` naming ``path`` and the field.
    """

    def __init__(self, h5: h5py.File, path: str | os.PathLike[str]) -> None:
        self.h5 = h5
        self.path = os.fspath(path)
        self._objects: dict[str, h5py.Dataset | h5py.Group] | None = None
        #: objects whose names are not UTF-8 (shown with backslash escapes); skipped
        self.undecodable: list[str] = []

    # ------------------------------------------------------------------ basics
    def error(self, field: str, problem: str) -> MDFError:
        return MDFError(self.path, field, problem)

    @property
    def objects(self) -> dict[str, h5py.Dataset | h5py.Group]:
        """Every group and dataset reachable by hard links, by absolute path.

        Built once per file (HDF5 lookups are slow); soft and external links are not
        followed, so a field stored only as a link counts as missing. Objects whose
        names are not valid UTF-8 (h5py hands those over as bytes) are left out and
        listed in :attr:`undecodable` instead: no MDF field has such a name, and h5py
        cannot use them as ``str`` paths.
        """
        if self._objects is None:
            found: dict[str, h5py.Dataset | h5py.Group] = {"/": self.h5}

            def visit(name: str | bytes, obj: Any) -> None:
                if isinstance(name, bytes):  # names that are not UTF-8 (damaged files)
                    self.undecodable.append(
                        "/" + name.decode("utf-8", errors="backslashreplace"))
                    return
                found["/" + name] = obj

            try:
                self.h5.visititems(visit)
            except (KeyError, RuntimeError, OSError, ValueError, TypeError) as exc:
                raise self.error("/", f"cannot walk the HDF5 tree ({exc})") from None
            self._objects = found
        return self._objects

    def resolve(self, field: str) -> str | None:
        """The name under which ``field`` is stored (itself or a legacy name), or None."""
        for name in (field, *LEGACY_NAMES.get(field, ())):
            if name in self.objects:
                return name
        return None

    def has(self, field: str) -> bool:
        return self.resolve(field) is not None

    def is_group(self, field: str) -> bool:
        return isinstance(self.objects.get(field), h5py.Group)

    def dataset(self, field: str) -> h5py.Dataset:
        """The dataset at ``field`` (or a legacy name); MDFError if missing."""
        name = self.resolve(field)
        if name is None:
            raise self.error(field, "missing mandatory field")
        obj = self.objects[name]
        if not isinstance(obj, h5py.Dataset):
            raise self.error(name, "expected a dataset, found a group")
        return obj

    def raw(self, field: str, default: Any = _MISSING) -> Any:
        """The normalised value (:func:`read_value`) of ``field``."""
        if default is not _MISSING and not self.has(field):
            return default
        ds = self.dataset(field)
        require_plausible(self.path, ds.name or field, ds)
        try:
            return read_value(ds)
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            raise self.error(ds.name, f"cannot read value ({exc})") from None

    # ------------------------------------------------------------------ typed access
    def _scalar(self, field: str, value: Any) -> Any:
        arr = np.asarray(value)
        if arr.size != 1:
            raise self.error(field, f"expected a single value, found shape {arr.shape}")
        return arr.reshape(-1)[0]

    def flag(self, field: str, default: Any = _MISSING) -> bool:
        """A boolean flag stored as int8, uint8, bool or enum (0 = false)."""
        value = self.raw(field, default)
        if value is default and default is not _MISSING:
            return default
        item = self._scalar(field, value)
        if isinstance(item, (str, bytes)) or np.asarray(item).dtype.kind not in "biu":
            raise self.error(field, f"expected a boolean (int8), found {np.asarray(value).dtype}")
        return bool(item)

    def flags(self, field: str, default: Any = _MISSING) -> np.ndarray:
        """A boolean mask (1-D) stored as int8, uint8, bool or enum."""
        value = self.raw(field, default)
        if value is default and default is not _MISSING:
            return default
        arr = np.asarray(value)
        if arr.dtype.kind not in "biu":
            raise self.error(field, f"expected a boolean mask (int8), found {arr.dtype}")
        return arr.reshape(-1) != 0

    def integer(self, field: str, default: Any = _MISSING) -> int:
        value = self.raw(field, default)
        if value is default and default is not _MISSING:
            return default
        item = self._scalar(field, value)
        arr = np.asarray(item)
        if arr.dtype.kind in "iub":
            return int(item)
        if arr.dtype.kind == "f" and np.isfinite(item) and float(item).is_integer():
            return int(item)
        raise self.error(field, f"expected an integer, found {item!r} ({arr.dtype})")

    def _flat_of_size(self, field: str, arr: np.ndarray, size: int | None) -> np.ndarray:
        """``arr`` flattened when ``size`` is given (it must have ``size`` elements)."""
        if size is None:
            return arr
        arr = arr.reshape(-1)
        if arr.size != size:
            raise self.error(field, f"expected {size} values, found {arr.size}")
        return arr

    def number(self, field: str, default: Any = _MISSING) -> float:
        value = self.raw(field, default)
        if value is default and default is not _MISSING:
            return default
        item = self._scalar(field, value)
        if np.asarray(item).dtype.kind not in "iuf":
            raise self.error(field, f"expected a number, found {np.asarray(item).dtype}")
        number = float(item)
        if not np.isfinite(number):
            raise self.error(field, f"non-finite value {number}")
        return number

    def numbers(self, field: str, *, size: int | None = None,
                default: Any = _MISSING) -> np.ndarray:
        """A float64 array (flattened when ``size`` is given, which it must match)."""
        value = self.raw(field, default)
        if value is default and default is not _MISSING:
            return default
        arr = np.asarray(value)
        if arr.dtype.kind not in "iuf":
            raise self.error(field, f"expected numbers, found {arr.dtype}")
        arr = self._flat_of_size(field, arr.astype(np.float64), size)
        if not np.all(np.isfinite(arr)):
            raise self.error(field, "contains NaN or Inf")
        return arr

    def integers(self, field: str, *, size: int | None = None,
                 default: Any = _MISSING) -> np.ndarray:
        """An int64 array (flattened when ``size`` is given, which it must match)."""
        value = self.raw(field, default)
        if value is default and default is not _MISSING:
            return default
        arr = np.asarray(value)
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "iub":
            raise self.error(field, f"expected integers, found {arr.dtype}")
        arr = self._flat_of_size(field, arr.astype(np.int64), size)
        return arr

    def string(self, field: str, default: Any = _MISSING) -> str:
        """A string stored fixed, variable-length or as a one-element object array."""
        value = self.raw(field, default)
        if value is default and default is not _MISSING:
            return default
        if isinstance(value, np.ndarray) and value.dtype == object:
            if value.size != 1:
                raise self.error(field, f"expected one string, found shape {value.shape}")
            value = value.reshape(-1)[0]
        if not isinstance(value, str):
            raise self.error(field, f"expected a string, found {type(value).__name__}")
        return value
