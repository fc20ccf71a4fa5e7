"""Defences against hostile or damaged input files.

* :func:`require_regular_file`: every MDF open path calls it first, so a FIFO, a
  character device (``/dev/zero``), a socket or a directory is refused with an
  :class:`~pympisr.errors.MDFError` instead of hanging or reading forever.
* :func:`storage_problem`: an HDF5 dataset may *declare* a shape far larger than what
  the file stores (chunked datasets whose chunks were never written are a few hundred
  bytes on disk whatever their declared shape). Before a dataset is read whole, or
  sizes derived from its shape are used to allocate memory, its declared size is
  compared with the bytes the file really holds for it: a dataset declaring more than
  ``max(UNSTORED_BYTES_LIMIT, COMPRESSION_RATIO_LIMIT * stored bytes)`` is refused.
  Legitimately compressed data (gzip, shuffle, ...) stays far below that ratio.
  Datasets whose raw data lives outside the file (external storage, virtual
  datasets) are refused too, since their sources could be devices or FIFOs.
* :data:`METADATA_BYTE_LIMIT`: extra (metadata) datasets larger than this are not
  read into memory (:mod:`pympisr.mdf.metadata`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import h5py
import numpy as np

from ..errors import MDFError

__all__ = ["COMPRESSION_RATIO_LIMIT", "EXPANSION_RATIO_LIMIT", "MAX_SAMPLING_POINTS",
           "METADATA_BYTE_LIMIT", "UNSTORED_BYTES_LIMIT", "count_product",
           "data_outside_file", "declared_bytes", "format_bytes", "require_plausible",
           "require_regular_file", "storage_problem", "stored_bytes"]

#: declared bytes a dataset may have even if the file stores nothing for it (fill value)
UNSTORED_BYTES_LIMIT = 16 << 20
#: largest accepted ratio of declared to stored bytes (compression ratio) above that
COMPRESSION_RATIO_LIMIT = 64
#: largest accepted ratio of DCT-expanded system-matrix bytes to stored data bytes
EXPANSION_RATIO_LIMIT = 1024
#: largest accepted numSamplingPoints (samples per drive-field period)
MAX_SAMPLING_POINTS = 1 << 31
#: metadata datasets declaring more bytes than this are referenced, not loaded
METADATA_BYTE_LIMIT = 16 << 20

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def require_regular_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a :class:`~pathlib.Path` if it is a regular file (symlinks followed).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    MDFError
        ``path`` is a FIFO, device, socket, directory or cannot be examined; reading such
        a "file" could block forever (FIFO) or never end (``/dev/zero``).
    """
    target = Path(os.fspath(path))
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{target}: no such file") from None
    except OSError as exc:
        raise MDFError(target, "/", f"cannot examine the file ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        what = next((name for test, name in _KINDS if test(mode)), "a special file")
        raise MDFError(target, "/", f"not a regular file ({what}); pympisr reads only "
                                    "regular files")
    return target


def declared_bytes(ds: h5py.Dataset) -> int:
    """Bytes the dataset's declared shape and type need in memory (exact Python int)."""
    if ds.shape is None:
        return 0
    count = 1
    for extent in ds.shape:
        count *= int(extent)
    return count * int(ds.dtype.itemsize)


def stored_bytes(ds: h5py.Dataset) -> int:
    """Bytes the file really holds for the dataset's raw data (0 if never written)."""
    try:
        return int(ds.id.get_storage_size())
    except (OSError, RuntimeError, ValueError):
        return 0


def format_bytes(size: int) -> str:
    """``12.0 MiB``-style text for a byte count."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def data_outside_file(ds: h5py.Dataset) -> str | None:
    """Why the raw data lies outside the file (external or virtual), or None."""
    try:
        if ds.external:
            return "its raw data is stored in external files (not supported)"
        if ds.is_virtual:
            return "it is a virtual dataset mapping other files (not supported)"
    except (OSError, RuntimeError, ValueError, TypeError):
        return "its storage layout cannot be read"
    return None


def storage_problem(ds: h5py.Dataset) -> str | None:
    """Why ``ds`` must not be read (implausible declared size, data outside the file).

    None when the dataset may be read whole: its declared size is at most
    ``max(UNSTORED_BYTES_LIMIT, COMPRESSION_RATIO_LIMIT * stored bytes)``.
    """
    declared = declared_bytes(ds)
    if declared == 0:
        return None
    outside = data_outside_file(ds)
    if outside:
        return outside
    stored = stored_bytes(ds)
    if declared <= max(UNSTORED_BYTES_LIMIT, COMPRESSION_RATIO_LIMIT * stored):
        return None
    return (f"declares shape {ds.shape} ({format_bytes(declared)} of {ds.dtype}) but the "
            f"file stores only {format_bytes(stored)} of it; refused (unwritten data or "
            f"a compression ratio above {COMPRESSION_RATIO_LIMIT})")


def require_plausible(path: str, field: str, ds: h5py.Dataset) -> None:
    """MDFError naming ``field`` when :func:`storage_problem` finds one."""
    problem = storage_problem(ds)
    if problem:
        raise MDFError(path, field, problem)


def count_product(values: np.ndarray | tuple[int, ...]) -> int:
    """Product of integers without int64 overflow (Python ints)."""
    total = 1
    for value in np.asarray(values).reshape(-1).tolist():
        total *= int(value)
    return total
