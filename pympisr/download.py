"""Download public MPI data sets (OpenMPI, the MDF v2 example pair) into a local folder.

The files are served by the University Medical Center Hamburg-Eppendorf / TUHH group
(OpenMPIData, CC BY 4.0; cite the MDF paper, Knopp et al. 2016, arXiv:1602.06072):

* ``DATASETS["mdf-v2-sm"]`` / ``["mdf-v2-meas"]``: the MDF v2 example system matrix
  (44 x 44 x 1 grid, 3 channels x 817 frequencies) and its measurement;
* ``openmpi_url("calibrations/17.mdf")`` etc.: any file of the OpenMPI collection.

Downloads stream to a temporary file, show a tqdm bar, optionally check a sha256 and
are renamed into place only when complete; an existing file is kept (not re-downloaded).
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from .atomic import atomic_output

__all__ = ["DATASETS", "OPENMPI_BASE", "download", "openmpi_url"]

OPENMPI_BASE = "http://media.tuhh.de/ibi/openMPIData/data/"
DATASETS: dict[str, str] = {
    "mdf-v2-sm": "http://media.tuhh.de/ibi/mdfv2/systemMatrix_V2.mdf",
    "mdf-v2-meas": "http://media.tuhh.de/ibi/mdfv2/measurement_V2.mdf",
}
_CHUNK = 1 << 20


def openmpi_url(relative: str) -> str:
    """URL of an OpenMPI file, e.g. ``"calibrations/1.mdf"`` or ``"measurements/shapePhantom/1.mdf"``."""
    return OPENMPI_BASE + relative.lstrip("/")


def download(url: str, dest: str | os.PathLike[str], *, sha256: str | None = None,
             timeout: float = 60.0, progress: bool = True) -> Path:
    """Fetch ``url`` to ``dest`` (a file path) unless it already exists; return the path.

    Raises
    ------
    ValueError
        The downloaded bytes do not match ``sha256`` (nothing is left at ``dest``).
    urllib.error.URLError
        The server cannot be reached.
    """
    dest = Path(dest)
    if dest.exists():
        if sha256 is not None and _sha256(dest) != sha256:
            raise ValueError(f"{dest}: exists but its sha256 differs from {sha256}; remove it to re-download")
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
        if sha256 is not None and digest.hexdigest() != sha256:
            raise ValueError(f"{url}: sha256 {digest.hexdigest()} does not match the expected {sha256}")
    return dest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
