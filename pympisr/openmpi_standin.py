"""Simulated stand-ins for the OpenMPI 3D calibration and phantom measurements.

Used by :func:`pympisr.openmpi.openmpi_data` when the real files are not in the cache.
The files follow the layout of OpenMPI's ``calibrations/3.mdf`` and its phantom
measurements, with the scanner settings of :data:`pympisr.openmpi.SCANNER` (Bruker 3D
Lissajous: 2.5 MHz / (102, 96, 99), 12 mT per axis, gradient (-1, -1, 2) T/m, 38 x 38 x
19 mm calibration FOV, 3 receive channels):

Calibration (``calibration.mdf``, MDF 2.1.0, ``/measurement/data`` J x C x K x N with
``isFastFrameAxis = isFramePermutation = isFourierTransformed = 1``, background frames
after the grid's foreground frames, ``isBackgroundCorrected = 0``)::

    S_meas[c, k, r] = H[c, k] S[c, k, r] + b[c, k] + n[c, k, r]
    B_e[c, k]       = b[c, k] + sigma[c, k] w_e[c, k]            (e = 1 .. E)

* ``S``: equilibrium model with uniaxial anisotropy (:mod:`pympisr.simulation`), the
  particle parameters the MPI group fitted to Bruker data (``reference_parameters``,
  fluid, D = 19 nm) on the OpenMPI geometry;
* ``H``: a receive-chain transfer function (:func:`receive_chain_transfer_function`,
  or a measured one), stored in ``/acquisition/receiver/transferFunction``;
* ``b``: a static background (feed-through) of 3 sigma with random phase;
* ``n``: calibration noise along the robot path (raster order): coloured spectrum,
  slow drift and rare spikes (:class:`pympisr.simulation.noise.ParametricNoise`),
  scaled to ``sigma[c, k] = noise_floor * max|H S| * s(c, f) / mean(s)``;
* ``w_e``: white complex Gaussian background frames (real, imag std 1);
* ``/calibration/snr``: ``rms_r |S_meas - mean_e B_e| / rms_e |B_e - mean_e B_e|``.

Frequencies: the full 3D spectrum has 26929 bins (4.4 GB for 19^3 voxels), so only the
``num_frequencies`` strongest bins (estimated on a coarse grid) are simulated and
stored as a frequency selection (``isFrequencySelection = 1``); OpenMPI stores all
bins, a difference MPIFiles and pympisr's reader handle alike.

Measurement (``measurement-<phantom>.mdf``): ``u = H S c + b + noise`` for the
phantom's concentration ``c`` (:func:`pympisr.simulate_measurement`), 10 foreground and
10 background frames on the calibration's frequencies, frequency domain, not
background or transfer-function corrected. OpenMPI's measurements are time-domain with
1000 frames; a stand-in is smaller but needs the same processing.

Every file carries ``/_pympisr/standin = 1`` and ``/experiment/isSimulation = 1``, and a
noise-free ``calibration-noisefree.mdf`` (``H S`` only) lies beside them as ground
truth for restoration experiments.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .errors import InvalidInputError
from .openmpi import CALIBRATION_3D, PHANTOM_STUDIES, SCANNER, DataFiles
from .system_matrix import SystemMatrix

__all__ = ["STANDIN_PHANTOMS", "STANDIN_VERSION", "receive_chain_transfer_function",
           "simulate_standin_calibration", "standin_folder", "write_standin"]

STANDIN_VERSION = 1
# OpenMPI phantom -> the pympisr phantom (pympisr.phantoms) that stands in for it
STANDIN_PHANTOMS: dict[str, str] = {"resolution": "resolution", "shape": "snake",
                                    "concentration": "dots"}
STANDIN_FLAG = "/_pympisr/standin"


def receive_chain_transfer_function(frequencies: np.ndarray, channels: int = 3
                                    ) -> np.ndarray:
    """Model of an MPI receive chain, complex64 ``(channels, K)`` on ``frequencies`` (Hz).

    A first-order high-pass at 30 kHz (the drive-frequency band-stop's flank) and a
    second-order low-pass at 1 MHz (anti-aliasing), with channel gains 1.0, 0.9, 1.1::

        H_c(f) = g_c * (i f / f_h) / (1 + i f / f_h) / (1 + i f / f_l)^2
    """
    f = np.asarray(frequencies, np.float64)[None, :]
    gains = np.array([1.0, 0.9, 1.1] * (channels // 3 + 1))[:channels, None]
    high = (1j * f / 30e3) / (1 + 1j * f / 30e3)
    low = 1.0 / (1 + 1j * f / 1e6) ** 2
    return (gains * high * low).astype(np.complex64)


def standin_folder(cache: Path, grid: int, seed: int, num_frequencies: int) -> Path:
    """Folder of one stand-in variant inside ``cache``."""
    return (cache / "openmpi-standin" /
            f"v{STANDIN_VERSION}-grid{grid}-k{num_frequencies}-seed{seed}")


def _parameters(grid: int) -> Any:
    from .simulation.parameters import reference_parameters

    return reference_parameters(3, fluid=True, grid=(grid, grid, grid)).replace(
        fov=np.asarray(SCANNER["fov"], np.float64),
        drive_amplitude=np.asarray(SCANNER["drive_amplitude"], np.float64),
        gradient=np.asarray(SCANNER["gradient"], np.float64))


def _strongest_bins(params: Any, count: int) -> np.ndarray:
    """The ``count`` rfft bins with the most energy (all channels), sorted."""
    from .simulation.system_matrix import component_energies

    stride = max(1, params.grid[0] // 7)
    energy = component_energies(params, voxel_stride=stride).sum(axis=0)
    energy[0] = 0.0  # the DC bin carries no induced signal
    return np.sort(np.argsort(energy)[::-1][:count])


def _clean_system_matrix(grid: int, num_frequencies: int, transfer_function: Any,
                         progress: bool) -> SystemMatrix:
    """``H S`` with the OpenMPI geometry, simulated z-slice by z-slice (progress bar)."""
    from .physics import fields
    from .simulation.system_matrix import (load_transfer_function, simulate_spectra,
                                           simulation_metadata, voxel_positions)

    params = _parameters(grid)
    bins = _strongest_bins(params, num_frequencies)
    freqs = fields.rfft_frequencies(3)[bins]
    if transfer_function is None:
        tf = receive_chain_transfer_function(freqs)
    else:
        tf = load_transfer_function(transfer_function, freqs, bins)
    nx, ny, nz = params.grid
    data = np.empty((3, bins.size, nz * ny * nx), np.complex64)
    for z in tqdm(range(nz), desc="stand-in system matrix (z slices)", disable=not progress):
        voxels = np.arange(z * ny * nx, (z + 1) * ny * nx)
        data[:, :, voxels] = simulate_spectra(params, bins=bins, voxels=voxels,
                                              transfer_function=tf)
    meta = simulation_metadata(params, voxel_positions(params.grid, params.fov, params.center))
    return SystemMatrix(data=data.reshape(3, bins.size, nz, ny, nx), frequencies=freqs,
                        grid=params.grid, fov=params.fov, center=params.center,
                        frequency_indices=bins, transfer_function=tf,
                        is_transfer_function_corrected=False, metadata=meta)


def _openmpi_metadata(meta: dict[str, Any], description: str, *, calibration: bool = True
                      ) -> dict[str, Any]:
    """Simulation metadata relabelled as a stand-in for the OpenMPI scanner."""
    out = dict(meta)
    out.update({
        "/experiment/name": "OpenMPI stand-in (pympisr simulation)",
        "/experiment/description": description,
        "/scanner/name": f"{SCANNER['name']} (simulated stand-in)",
        "/scanner/manufacturer": "Bruker (simulated by pympisr)",
        "/tracer/name": np.array([f"{SCANNER['tracer']} (simulated single-core stand-in)"],
                                 dtype=object),
        "/acquisition/numAverages": np.int64(SCANNER["averages"]),
        STANDIN_FLAG: np.int8(1),
        "/_pympisr/standin_version": np.int64(STANDIN_VERSION),
    })
    if calibration:
        out["/calibration/deltaSampleSize"] = np.asarray(SCANNER["delta_sample"], np.float64)
    return out


def simulate_standin_calibration(clean: SystemMatrix, *, noise_floor: float = 1e-3,
                                 background_frames: int = 362,
                                 seed: int = 0) -> SystemMatrix:
    """A noisy, not background-corrected calibration from ``clean`` (module docstring).

    ``noise_floor``: mean noise std relative to the largest ``|H S|``;
    ``background_frames``: E (OpenMPI: 362).
    """
    from .simulation.noise import ParametricNoise, acquisition_order, rms_snr

    if not np.isfinite(noise_floor) or noise_floor <= 0:
        raise InvalidInputError(f"noise_floor must be a positive number, got {noise_floor!r}")
    if background_frames < 2:
        raise InvalidInputError(f"background_frames must be >= 2, got {background_frames!r}")
    rng = np.random.default_rng(seed)
    model = ParametricNoise()
    c, k = clean.data.shape[:2]
    shape = model.spectrum(clean.frequencies, c, rng)
    sigma = noise_floor * float(np.abs(clean.data).max()) * shape / shape.mean()
    steps = clean.num_voxels
    path = model.path_noise(sigma, steps, rng)                 # (C, K, steps) along the path
    noise = np.empty((c, k, steps), np.complex64)
    noise[:, :, acquisition_order(clean.spatial_shape)] = path
    phase = np.exp(2j * np.pi * rng.random((c, k)))
    offset = (3.0 * sigma * phase).astype(np.complex64)
    white = (rng.standard_normal((background_frames, c, k))
             + 1j * rng.standard_normal((background_frames, c, k)))
    background = (offset[None] + sigma[None] * white).astype(np.complex64)
    data = clean.data + offset[:, :, None, None, None] + noise.reshape(clean.data.shape)
    corrected = data - background.mean(axis=0)[:, :, None, None, None]
    return clean.replace(data=data.astype(np.complex64), background=background,
                         snr=rms_snr(corrected, background), is_background_corrected=False)


def _write(save: Any, item: Any, path: Path) -> None:
    """Write atomically; a file another process finished meanwhile is kept."""
    try:
        save(item, path)
    except FileExistsError:
        pass


def write_standin(cache: Path, *, phantom: str = "resolution", grid: int = 19,
                  seed: int = 0, num_frequencies: int = 800, noise_floor: float = 1e-3,
                  measurement_noise: float = 2e-3, transfer_function: Any = None,
                  progress: bool = True) -> DataFiles:
    """Write (or reuse) stand-in calibration and measurement files under ``cache``.

    Files already present for the same settings (:func:`standin_folder`) are reused;
    ``transfer_function`` (a path to a measured one, e.g.
    ``transfer_function_3ch.h5``) replaces the model
    :func:`receive_chain_transfer_function` (then use a separate ``cache``).
    Returns :class:`~pympisr.openmpi.DataFiles` with ``standin=True`` and ``reference``
    the noise-free calibration.
    """
    import pympisr
    from .simulation.measurement import simulate_measurement

    if phantom not in STANDIN_PHANTOMS:
        known = ", ".join(STANDIN_PHANTOMS)
        if phantom in PHANTOM_STUDIES:
            raise InvalidInputError(f"OpenMPI phantom {phantom!r} has no simulated "
                                    f"stand-in; stand-ins exist for {known}")
        raise InvalidInputError(f"unknown OpenMPI phantom {phantom!r}; choose from {known}")
    if isinstance(grid, bool) or int(grid) < 3:
        raise InvalidInputError(f"stand-in grid must be an integer >= 3, got {grid!r}")
    if num_frequencies < 1:
        raise InvalidInputError(f"num_frequencies must be >= 1, got {num_frequencies!r}")
    folder = standin_folder(Path(cache), int(grid), seed, num_frequencies)
    reference = folder / "calibration-noisefree.mdf"
    calibration = folder / "calibration.mdf"
    measurement = folder / f"measurement-{phantom}.mdf"
    source = (f"simulated stand-in for OpenMPI {CALIBRATION_3D} and "
              f"measurements/{PHANTOM_STUDIES[phantom]}/3.mdf ({grid}^3 grid, "
              f"{num_frequencies} strongest frequencies, seed {seed})")
    if reference.is_file():
        clean = None
    else:
        clean = _clean_system_matrix(int(grid), num_frequencies, transfer_function, progress)
        clean = clean.replace(metadata=_openmpi_metadata(clean.metadata, f"{source}; "
                                                         "noise-free"))
        _write(pympisr.save_system_matrix, clean, reference)
    if calibration.is_file() and measurement.is_file():
        return DataFiles(calibration, measurement, phantom, standin=True, source=source,
                         reference=reference)
    if clean is None:
        clean = pympisr.load_system_matrix(reference, bg_correction=False,
                                           tf_correction=False)
    if calibration.is_file():
        background = pympisr.load_system_matrix(calibration, bg_correction=False,
                                                tf_correction=False).background
    else:
        noisy = simulate_standin_calibration(
            clean, noise_floor=noise_floor, seed=seed,
            background_frames=int(SCANNER["background_scans"]))  # type: ignore[call-overload]
        noisy = noisy.replace(metadata=_openmpi_metadata(clean.metadata, source))
        _write(pympisr.save_system_matrix, noisy, calibration)
        background = noisy.background
    if not measurement.is_file():
        # the scanner's static background b (mean of the calibration's background
        # frames) is recorded in every frame of the measurement too
        static = np.repeat(background.mean(axis=0, keepdims=True), 2, axis=0)
        meas = simulate_measurement(
            clean.replace(background=static, is_background_corrected=True),
            STANDIN_PHANTOMS[phantom], noise=measurement_noise, frames=10,
            background_frames=10, seed=seed + 1)
        meas = meas.replace(metadata=_openmpi_metadata(meas.metadata, source,
                                                        calibration=False))
        _write(pympisr.save_measurement, meas, measurement)
    return DataFiles(calibration, measurement, phantom, standin=True, source=source,
                     reference=reference)
