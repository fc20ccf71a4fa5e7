"""Download public MPI data sets (OpenMPI, the MDF v2 example pair) into a local cache.

The files are served by the University Medical Center Hamburg-Eppendorf / TUHH group
(OpenMPIData, CC BY 4.0; cite the MDF paper, Knopp et al. 2016, arXiv:1602.06072):

* ``DATASETS["mdf-v2-sm"]`` / ``["mdf-v2-meas"]``: the MDF v2 example system matrix
  (44 x 44 x 1 grid, 3 channels x 817 frequencies) and its measurement;
* ``openmpi_url("calibrations/3.mdf")`` etc.: any file of the OpenMPI collection
  (:mod:`pympisr.openmpi` knows the calibration and phantom files).

Downloads stream to a temporary file, show a tqdm bar, check a sha256 when one is
known and are renamed into place only when complete; an existing file is kept (not
re-downloaded) after its sha256 is checked. Any URL scheme that :mod:`urllib` opens
works, including ``file://`` (a local mirror).

The cache folder (:func:`cache_dir`) is ``$PYMPISR_CACHE`` if set, else
``$XDG_CACHE_HOME/pympisr``, else ``~/.cache/pympisr`` (``%LOCALAPPDATA%\\pympisr\\Cache``
on Windows), the platform conventions that ``platformdirs`` implements.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from .atomic import atomic_output
from .errors import DataIntegrityError

__all__ = ["CACHE_ENV_VAR", "DATASETS", "OPENMPI_BASE", "cache_dir", "download",
           "openmpi_url", "sha256_of"]

OPENMPI_BASE = "http://media.tuhh.de/ibi/openMPIData/data/"
DATASETS: dict[str, str] = {
    "mdf-v2-sm": "http://media.tuhh.de/ibi/mdfv2/systemMatrix_V2.mdf",
    "mdf-v2-meas": "http://media.tuhh.de/ibi/mdfv2/measurement_V2.mdf",
}
CACHE_ENV_VAR = "PYMPISR_CACHE"
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """The folder where downloaded data sets and stand-in files are kept (module doc).

    The folder is not created here; :func:`download` creates what it writes.
    """
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "pympisr" / "Cache"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "pympisr"


def openmpi_url(relative: str, base: str = OPENMPI_BASE) -> str:
    """URL of an OpenMPI file, e.g. ``"calibrations/3.mdf"`` or
    ``"measurements/resolutionPhantom/3.mdf"``; ``base`` may point at a mirror."""
    return base.rstrip("/") + "/" + relative.lstrip("/")


def download(url: str, dest: str | os.PathLike[str], *, sha256: str | None = None,
             timeout: float = 60.0, progress: bool = True) -> Path:
    """Fetch ``url`` to ``dest`` (a file path) unless it already exists; return the path.

    Raises
    ------
    DataIntegrityError
        The downloaded bytes (or an existing ``dest``) do not match ``sha256``; nothing
        new is left at ``dest``. A ``ValueError``.
    urllib.error.URLError
        The server (or the ``file://`` path) cannot be reached.
    """
    dest = Path(dest)
    if dest.exists():
        if sha256 is not None and sha256_of(dest) != sha256.lower():
            raise DataIntegrityError(f"{dest}: exists but its sha256 differs from {sha256}; "
                                     "remove it to re-download")
        return dest
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=timeout) as response, atomic_output(dest) as tmp:
        total = int(response.headers.get("Content-Length") or 0) or None
        with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True,
                                          desc=dest.name, disable=not progress) as bar:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise DataIntegrityError(f"{url}: sha256 {digest.hexdigest()} does not match the "
                                     f"expected {sha256}")
    return dest


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
