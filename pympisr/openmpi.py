"""The OpenMPI data sets: file names, scanner settings, cached download, stand-in data.

OpenMPI (Knopp et al., "OpenMPIData: an initiative for freely accessible magnetic
particle imaging data", Data in Brief 2020; data CC BY 4.0) publishes calibrations and
phantom measurements of a Bruker preclinical scanner as MDF files. pympisr uses the 3D
Lissajous pair (OpenMPIData's ``examples/reco3D.jl``):

* calibration ``calibrations/3.mdf``: Perimag, delta sample 2 x 2 x 1 mm, grid
  19 x 19 x 19 on a 38 x 38 x 19 mm field of view, 362 background scans, 1000
  averages; ``calibrations/6.mdf`` is the 37 x 37 x 37 (37 x 37 x 18.5 mm) version;
* phantom measurements ``measurements/<phantom>Phantom/3.mdf`` (resolution, shape,
  concentration, cone);
* scanner: drive amplitudes 12 x 12 x 12 mT at 2.5 MHz / (102, 96, 99), selection-field
  gradient (-1, -1, 2) T/m (x, y, z), sampling 2.5 MHz, 3 receive channels;
* reconstruction settings of the OpenMPI examples: SNR threshold 2, minimum frequency
  80 kHz, lambda 0.001, 3 Kaczmarz iterations, receive channels 1:3.

:func:`openmpi_data` is the one entry point. It returns the real files when they are in
the cache (:func:`pympisr.download.cache_dir` ``/openmpi/...``, fetched there by
:func:`fetch_openmpi` or copied by hand), and otherwise - the build machines cannot
reach the data servers - simulated stand-in files in the same MDF layout
(:mod:`pympisr.openmpi_standin`), with a :class:`~pympisr.errors.StandInDataWarning` and
``DataFiles.standin = True``.
"""

from __future__ import annotations

import os
import urllib.error
import warnings
from dataclasses import dataclass
from pathlib import Path

from .download import OPENMPI_BASE, cache_dir, download, openmpi_url
from .errors import DataUnavailableError, InvalidInputError, StandInDataWarning

__all__ = ["CALIBRATION_3D", "DataFiles", "GRID_ENV_VAR", "PHANTOM_STUDIES",
           "RECONSTRUCTION_SETTINGS", "SCANNER", "SHA256", "fetch_openmpi", "openmpi_data",
           "openmpi_folder", "standin_grid"]

CALIBRATION_3D = "calibrations/3.mdf"
# pympisr phantom name -> OpenMPI study folder (3D Lissajous experiment number 3)
PHANTOM_STUDIES: dict[str, str] = {
    "resolution": "resolutionPhantom",
    "shape": "shapePhantom",
    "concentration": "concentrationPhantom",
    "cone": "conePhantom",
}
# Bruker preclinical scanner, 3D Lissajous sequence (OpenMPIData docs, calibration.md);
# SI units, x/y/z order
SCANNER: dict[str, object] = {
    "name": "Bruker Preclinical MPI System",
    "sampling_rate": 2.5e6,
    "dividers": (102, 96, 99),
    "drive_amplitude": (0.012, 0.012, 0.012),
    "gradient": (-1.0, -1.0, 2.0),
    "grid": (19, 19, 19),
    "fov": (0.038, 0.038, 0.019),
    "delta_sample": (0.002, 0.002, 0.001),
    "receive_channels": 3,
    "background_scans": 362,
    "averages": 1000,
    "tracer": "Perimag",
}
RECONSTRUCTION_SETTINGS: dict[str, object] = {
    "snr_thresh": 2.0, "min_freq": 80e3, "lambd": 1e-3, "iterations": 3,
    "rec_channels": (0, 1, 2),
}
# published sha256 of OpenMPI files, where known (none are published by OpenMPI itself;
# add an entry after verifying a download to pin it)
SHA256: dict[str, str] = {}
GRID_ENV_VAR = "PYMPISR_STANDIN_GRID"


@dataclass(frozen=True)
class DataFiles:
    """A calibration and a phantom measurement of one data set.

    Attributes
    ----------
    calibration, measurement:
        The MDF files.
    phantom:
        pympisr's phantom name (a key of :data:`PHANTOM_STUDIES`).
    standin:
        True when the files are simulated stand-ins, not the real OpenMPI measurement.
    source:
        Where the files come from: the OpenMPI URLs, or a description of the stand-in.
    reference:
        Stand-ins only: the noise-free calibration (ground truth for restoration);
        None for real data.
    """

    calibration: Path
    measurement: Path
    phantom: str
    standin: bool
    source: str
    reference: Path | None = None


def openmpi_folder(cache: str | os.PathLike[str] | None = None) -> Path:
    """Folder of the real OpenMPI files in the cache (``<cache>/openmpi``)."""
    return Path(cache if cache is not None else cache_dir()) / "openmpi"


def _measurement_path(phantom: str) -> str:
    if phantom not in PHANTOM_STUDIES:
        raise InvalidInputError(f"unknown OpenMPI phantom {phantom!r}; choose from "
                                f"{', '.join(PHANTOM_STUDIES)}")
    return f"measurements/{PHANTOM_STUDIES[phantom]}/3.mdf"


def fetch_openmpi(relative: str, *, cache: str | os.PathLike[str] | None = None,
                  base: str = OPENMPI_BASE, progress: bool = True) -> Path:
    """Download one OpenMPI file (e.g. ``"calibrations/3.mdf"``) into the cache, unless it
    is there already; its sha256 is checked when :data:`SHA256` knows it.

    ``base`` may be a mirror, also ``file:///path/to/mirror/``.
    """
    dest = openmpi_folder(cache) / relative
    return download(openmpi_url(relative, base), dest, sha256=SHA256.get(relative),
                    progress=progress)


def standin_grid(default: int = 19) -> int:
    """Grid size per axis for stand-in data: ``$PYMPISR_STANDIN_GRID`` or ``default``."""
    text = os.environ.get(GRID_ENV_VAR)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 3:
        raise InvalidInputError(f"{GRID_ENV_VAR}={text!r}: an integer >= 3 is needed")
    return value


def openmpi_data(phantom: str = "resolution", *, cache: str | os.PathLike[str] | None = None,
                 allow_standin: bool = True, download: bool = False,
                 base: str = OPENMPI_BASE, grid: int | None = None, seed: int = 0,
                 progress: bool = True) -> DataFiles:
    """The OpenMPI 3D calibration and the ``phantom`` measurement, real or stand-in.

    Parameters
    ----------
    phantom:
        ``"resolution"``, ``"shape"``, ``"concentration"`` or ``"cone"``.
    cache:
        Cache folder (default :func:`pympisr.download.cache_dir`).
    allow_standin:
        Use simulated stand-in files when the real ones are missing (default); with
        False a :class:`~pympisr.errors.DataUnavailableError` is raised instead.
    download:
        Try to download missing real files from ``base`` first.
    grid:
        Stand-in grid size per axis (default ``$PYMPISR_STANDIN_GRID`` or 19, as
        OpenMPI's calibration 3); ignored for real files.
    seed:
        Seed of the stand-in's noise.
    progress:
        Show progress bars.

    Returns
    -------
    :class:`DataFiles`; ``standin`` says whether the files are simulated (a
    :class:`~pympisr.errors.StandInDataWarning` is also issued).
    """
    relative_meas = _measurement_path(phantom)
    folder = openmpi_folder(cache)
    calibration, measurement = folder / CALIBRATION_3D, folder / relative_meas
    problem = "not in the cache"
    if download and not (calibration.is_file() and measurement.is_file()):
        try:
            for relative in (CALIBRATION_3D, relative_meas):
                fetch_openmpi(relative, cache=cache, base=base, progress=progress)
        except (urllib.error.URLError, OSError) as exc:
            problem = f"download from {base} failed ({exc})"
    if calibration.is_file() and measurement.is_file():
        return DataFiles(calibration, measurement, phantom, standin=False,
                         source=f"{openmpi_url(CALIBRATION_3D, base)}, "
                                f"{openmpi_url(relative_meas, base)}")
    if not allow_standin:
        raise DataUnavailableError(
            f"{calibration} / {measurement}: OpenMPI files {problem}; download them "
            "(openmpi_data(download=True) or pympisr.openmpi.fetch_openmpi), copy them "
            "there, or allow simulated stand-in data (allow_standin=True)")
    from .openmpi_standin import write_standin

    size = standin_grid() if grid is None else int(grid)
    files = write_standin(Path(cache if cache is not None else cache_dir()), phantom=phantom,
                          grid=size, seed=seed, progress=progress)
    warnings.warn(f"OpenMPI files {problem}: using SIMULATED stand-in data "
                  f"({size}^3 grid, {files.calibration.parent})", StandInDataWarning,
                  stacklevel=2)
    return files
