"""Simulated Lissajous FFP system matrices (DESIGN section 5).

For every voxel centre ``r`` (``center - fov/2 + (i + 0.5) fov / N`` per axis, x fastest)
the normalised mean moment ``m(r, t_n)`` is evaluated over one trajectory period
(``t_n = n / 2.5 MHz``, ``n = 0 .. V-1``; field model in :mod:`pympisr.physics.fields`),
Fourier transformed (rfft over n) and differentiated in time. Receive coil ``c``
(x, y, z) is homogeneous, so its signal is proportional to ``d m_c / dt``::

    S[c, k, voxel] = (2 pi i k / V) * sum_n m_c(r, t_n) exp(-2 pi i k n / V)

Symmetry used for speed: every drive channel is ``A cos(2 pi n / d)`` with ``d``
dividing ``V``, so the field, and with it the equilibrium moment, satisfies
``m(t_{V-n}) = m(t_n)``. Only ``n = 0 .. V/2`` is evaluated and the rfft of the even
sequence equals the DCT-I of its first half (real), which halves moment evaluations
and transform cost; the clean SM is therefore purely imaginary before a transfer
function is applied (equilibrium models have no relaxation phase lag).

Global scale factor: exactly 1 in the formula above, i.e. the DFT over one period of
the time derivative of the normalised moment with the time in units of the sampling
interval. The physical constants of a real scanner (mu0, coil sensitivity, particle
moment M_S V_c, concentration per voxel, amplifier gain) are one overall factor that
every restoration step normalises away; it is not applied.

Particles (``params.model == "anisotropy"``): immobilised particles share one easy axis
and one K; fluid particles align their easy axis with the local selection field
``G r`` (the paper's "oriented along the SF"; DESIGN's "radially", identical for an
isotropic gradient) and have ``K(r) = K (|G r| / max_grid |G r|)^gamma``. Bulk
moment evaluation uses the interpolation tables of :mod:`pympisr.physics.tables`
(documented max error 5e-5 of the saturation moment); the Langevin model is exact.

Optionally the receive chain is applied by multiplying with a transfer function
(``SystemMatrix.transfer_function`` then holds it and ``is_transfer_function_corrected``
is False, as for a measured SM).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import h5py
import numpy as np
import scipy.fft

from ..errors import MDFError
from ..physics import fields
from ..physics.moments import anisotropy_parameter
from ..system_matrix import SystemMatrix
from .parameters import SimulationParameters, sample_parameters

__all__ = [
    "OVERRIDE_NAMES",
    "component_energies",
    "configure_threads",
    "load_transfer_function",
    "simulate_spectra",
    "simulate_system_matrix",
    "simulation_metadata",
    "voxel_positions",
]

OVERRIDE_NAMES = ("dims", "grid", "fov", "center", "model", "diameter", "anisotropy",
                  "easy_axis", "fluid", "gamma", "drive_amplitude", "gradient",
                  "transfer_function", "temperature", "saturation")

METADATA_PREFIX = "/_pympisr/simulation/"
_CHUNK_BYTES = 96 * 2**20  # float32 moment buffer per chunk
_fft_workers = -1


def configure_threads(num_threads: int | None) -> None:
    """Threads for numba kernels and FFTs in this process (None = all cores)."""
    global _fft_workers
    import numba

    n = numba.config.NUMBA_NUM_THREADS if num_threads is None else max(1, int(num_threads))
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    _fft_workers = -1 if num_threads is None else n


def voxel_positions(grid: tuple[int, int, int], fov: np.ndarray,
                    center: np.ndarray) -> np.ndarray:
    """Voxel centres ``(Nz * Ny * Nx, 3)`` in metres, x fastest (MDF order)."""
    axes = [center[a] - fov[a] / 2 + (np.arange(n) + 0.5) * fov[a] / n
            for a, n in enumerate(grid)]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return np.stack([x.ravel(), y.ravel(), z.ravel()], axis=-1)


def _particle_setup(params: SimulationParameters, offsets: np.ndarray,
                    peak: float) -> tuple[np.ndarray, np.ndarray]:
    """Easy axes (Nv, 3) and anisotropy parameters alpha (Nv,) per voxel of ``offsets``
    (field offsets ``G r``, T); ``peak`` is ``max |G r|`` over the whole grid, so a voxel's
    parameters do not depend on which other voxels are simulated."""
    nv = offsets.shape[0]
    alpha_max = float(anisotropy_parameter(params.anisotropy, params.diameter,
                                           params.temperature))
    if not params.fluid:
        return np.tile(params.easy_axis, (nv, 1)), np.full(nv, alpha_max)
    strength = np.linalg.norm(offsets, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        axes = np.where(strength[:, None] > 0, offsets / strength[:, None], [0.0, 0.0, 1.0])
    alphas = alpha_max * (strength / peak) ** params.gamma if peak > 0 else np.zeros(nv)
    return axes, alphas


def _moment_chunks(params: SimulationParameters, voxels: np.ndarray | None,
                   selection_warp: Callable[[np.ndarray], np.ndarray] | None = None
                   ) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(slice into the voxel list, moments float32 (n, 3, V/2 + 1))`` per chunk.

    Samples ``n = 0 .. V/2`` of the period (the rest follows by symmetry, module doc).
    ``selection_warp`` (see :func:`simulate_spectra`) maps voxel positions ``(N, 3)`` (m)
    to the positions whose linear selection field they see.
    """
    from ..physics import tables
    from . import kernels

    dims = params.dims
    half = fields.period_samples(dims) // 2
    drive = np.ascontiguousarray(fields.drive_field(params.drive_amplitude, dims)[: half + 1])
    positions = voxel_positions(params.grid, params.fov, params.center)
    if selection_warp is not None:
        positions = np.asarray(selection_warp(positions), dtype=np.float64)
    peak = float(np.linalg.norm(positions * params.gradient, axis=-1).max())
    if voxels is not None:
        positions = positions[voxels]
    offsets = positions * params.gradient
    beta = params.beta
    v_len = drive.shape[0]
    per_chunk = max(1, min(offsets.shape[0], _CHUNK_BYTES // (3 * v_len * 4)))
    anisotropic = params.model == "anisotropy"
    if anisotropic:
        axes, alphas = _particle_setup(params, offsets, peak)
        if alphas.max() > tables.ALPHA_MAX:
            raise ValueError(
                f"anisotropy parameter alpha = K V_c / (k_B T) = {alphas.max():.3g} exceeds "
                f"the fast-path table range {tables.ALPHA_MAX} (e.g. K <= 10000 J/m^3 at "
                "D = 25 nm); lower anisotropy or diameter")
        table = tables.anisotropy_table()
        constant = not params.fluid
        slice2 = table.slice(float(alphas[0])) if constant else None
    for start in range(0, offsets.shape[0], per_chunk):
        sel = slice(start, min(start + per_chunk, offsets.shape[0]))
        out = np.empty((sel.stop - sel.start, 3, v_len), np.float32)
        off = np.ascontiguousarray(offsets[sel])
        if not anisotropic:
            kernels.moment_langevin(drive, off, beta, out)
        elif constant:
            kernels.moment_anisotropy_constant(drive, off, beta,
                                               np.ascontiguousarray(axes[sel]),
                                               float(alphas[0]), slice2, out)
        else:
            kernels.moment_anisotropy_varying(drive, off, beta,
                                              np.ascontiguousarray(axes[sel]),
                                              np.ascontiguousarray(alphas[sel]),
                                              table.values, out)
        yield sel, out


def _half_period_rfft(moments: np.ndarray) -> np.ndarray:
    """rfft over a full period of the even sequence whose first half is ``moments``.

    ``moments`` (..., V/2 + 1) holds samples n = 0 .. V/2; returns the real spectrum
    (..., V/2 + 1) (DCT-I: ``x_0 + (-1)^k x_{V/2} + 2 sum_n x_n cos(2 pi k n / V)``).
    """
    return scipy.fft.dct(moments, type=1, axis=-1, workers=_fft_workers)


def _derivative_factor(bins: np.ndarray, v_len: int) -> np.ndarray:
    return (2j * np.pi * bins / v_len).astype(np.complex64)


def simulate_spectra(params: SimulationParameters, *, bins: np.ndarray | None = None,
                     voxels: np.ndarray | None = None,
                     transfer_function: np.ndarray | None = None,
                     selection_warp: Callable[[np.ndarray], np.ndarray] | None = None
                     ) -> np.ndarray:
    """Clean spectra ``(3, K_sel, N_sel)`` complex64 for rfft ``bins`` and voxel indices.

    ``bins`` default: all ``V // 2 + 1`` bins; ``voxels`` default: all voxels (flat MDF
    order). ``transfer_function`` (3, K_sel) multiplies the result if given.
    ``selection_warp``: a non-linear selection field, the linear field ``G w(r)`` of a
    warped position instead of ``G r``; it maps all voxel positions ``(N, 3)`` in
    metres to ``w(r)`` (e.g.
    :func:`pympisr.simulation.mismatch.simulate_nonlinear_gradient`).
    """
    v_len = fields.period_samples(params.dims)
    bins = np.arange(v_len // 2 + 1) if bins is None else np.asarray(bins, np.int64)
    n_vox = int(np.prod(params.grid)) if voxels is None else len(voxels)
    result = np.empty((3, bins.size, n_vox), np.complex64)
    from .kernels import scatter_spectra

    factor = np.broadcast_to(_derivative_factor(bins, v_len)[None, :], (3, bins.size))
    if transfer_function is not None:
        factor = factor * np.asarray(transfer_function, np.complex64)
    factor = np.ascontiguousarray(factor, dtype=np.complex64)
    for sel, moments in _moment_chunks(params, voxels, selection_warp):
        spec = _half_period_rfft(moments)  # (n, 3, K) float32
        del moments
        scatter_spectra(spec, bins, factor, result, sel.start)
    return result


def component_energies(params: SimulationParameters, *, voxel_stride: int = 1) -> np.ndarray:
    """Energy ``sum_voxels |S[c, k]|^2`` of every component, float64 ``(3, V // 2 + 1)``.

    With ``voxel_stride > 1`` only every ``voxel_stride``-th voxel along each axis is
    simulated (cost / stride^dims) and the sum is scaled by the voxel-count ratio: an
    estimate used to choose components before the full simulation.
    """
    v_len = fields.period_samples(params.dims)
    nx, ny, nz = params.grid
    iz, iy, ix = np.meshgrid(np.arange(0, nz, voxel_stride), np.arange(0, ny, voxel_stride),
                             np.arange(0, nx, voxel_stride), indexing="ij")
    voxels = (ix + nx * (iy + ny * iz)).ravel()
    factor = np.abs(_derivative_factor(np.arange(v_len // 2 + 1), v_len)) ** 2
    energy = np.zeros((3, v_len // 2 + 1))
    for _, moments in _moment_chunks(params, voxels):
        spec = _half_period_rfft(moments)
        energy += np.einsum("nck,nck->ck", spec, spec, dtype=np.float64)
    return energy * factor[None, :] * (np.prod(params.grid) / voxels.size)


def load_transfer_function(source: Any, frequencies: np.ndarray,
                           bins: np.ndarray | None = None, channels: int = 3) -> np.ndarray:
    """Transfer function on ``frequencies`` (Hz), complex64 ``(channels, K)``.

    ``source``: a complex array ``(channels, K)`` on these frequencies, or
    ``(channels, V // 2 + 1)`` on all rfft bins (then ``bins`` selects), or a path to an
    HDF5 file with ``frequencies`` (L,) in Hz and ``transferFunction`` (C, L) complex or
    (C, L, 2) real/imag (e.g. ``shared/data/real/transfer_function_3ch.h5``).
    Files are interpolated linearly in magnitude and unwrapped phase; outside their
    frequency range the edge values are held.
    """
    freqs = np.asarray(frequencies, np.float64)
    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        path = os.fsdecode(source)
        try:
            with h5py.File(path, "r") as f:
                if "frequencies" not in f or "transferFunction" not in f:
                    raise MDFError(path, "/", "needs datasets 'frequencies' and "
                                   "'transferFunction'")
                f_src = np.asarray(f["frequencies"][()], np.float64).reshape(-1)
                tf = np.asarray(f["transferFunction"][()])
        except OSError as exc:
            raise MDFError(path, "/", f"cannot read transfer function ({exc})") from exc
        if not np.iscomplexobj(tf):
            if tf.shape[-1] != 2:
                raise MDFError(path, "/transferFunction", f"expected (C, L, 2) or complex "
                               f"(C, L), got shape {tf.shape}")
            tf = tf[..., 0] + 1j * tf[..., 1]
        tf = np.atleast_2d(tf)
        if tf.shape[1] != f_src.size or tf.shape[0] < channels:
            raise MDFError(path, "/transferFunction", f"shape {tf.shape} does not match "
                           f"{f_src.size} frequencies and {channels} channels")
        order = np.argsort(f_src)
        f_src, tf = f_src[order], tf[:channels, order]
        mag = np.stack([np.interp(freqs, f_src, np.abs(t)) for t in tf])
        phase = np.stack([np.interp(freqs, f_src, np.unwrap(np.angle(t))) for t in tf])
        return (mag * np.exp(1j * phase)).astype(np.complex64)
    tf = np.asarray(source)
    if tf.ndim != 2 or tf.shape[0] != channels:
        raise ValueError(f"transfer function array must be ({channels}, K), got {tf.shape}")
    if tf.shape[1] == freqs.size:
        return tf.astype(np.complex64)
    if bins is not None and tf.shape[1] > int(np.max(bins)):
        return tf[:, bins].astype(np.complex64)
    raise ValueError(f"transfer function has {tf.shape[1]} frequencies, the system matrix "
                     f"{freqs.size}")


def simulation_metadata(params: SimulationParameters, positions: np.ndarray) -> dict[str, Any]:
    """MDF metadata of a simulated calibration plus every parameter under /_pympisr."""
    dims = params.dims
    v_len = fields.period_samples(dims)
    amp = params.drive_amplitude.copy()
    if dims == 2:
        amp[2] = 0.0
    gradient = np.zeros((1, 1, 3, 3))
    gradient[0, 0] = np.diag(params.gradient)
    meta: dict[str, Any] = {
        "/experiment/isSimulation": np.int8(1),
        "/experiment/name": "pympisr simulation",
        "/experiment/description": f"simulated {dims}D Lissajous FFP system matrix "
                                   f"({params.model} model)",
        "/experiment/subject": "simulated delta sample",
        "/scanner/name": "pympisr simulated Lissajous FFP scanner",
        "/scanner/manufacturer": "pympisr",
        "/scanner/topology": "FFP",
        "/tracer/name": np.array(["simulated single-core particles"], dtype=object),
        "/acquisition/drivefield/baseFrequency": fields.SAMPLING_RATE,
        "/acquisition/drivefield/numChannels": np.int64(3),
        "/acquisition/drivefield/divider": np.asarray(fields.DIVIDERS, np.int64).reshape(3, 1),
        "/acquisition/drivefield/strength": amp.reshape(1, 3, 1),
        "/acquisition/drivefield/phase": np.full((1, 3, 1), np.pi / 2),
        "/acquisition/drivefield/waveform": np.array([["sine"]] * 3, dtype=object),
        "/acquisition/drivefield/cycle": v_len / fields.SAMPLING_RATE,
        "/acquisition/receiver/numChannels": np.int64(3),
        "/acquisition/receiver/bandwidth": fields.SAMPLING_RATE / 2,
        "/acquisition/receiver/numSamplingPoints": np.int64(v_len),
        "/acquisition/receiver/unit": "a.u.",
        "/acquisition/gradient": gradient,
        "/acquisition/offsetField": np.zeros((1, 1, 3)),
        "/acquisition/numPeriodsPerFrame": np.int64(1),
        "/acquisition/numAverages": np.int64(1),
        "/calibration/method": "simulation",
        "/calibration/order": "xyz",
        "/calibration/positions": positions,
        "/calibration/deltaSampleSize": np.zeros(3),
        METADATA_PREFIX + "scale_factor": 1.0,
        METADATA_PREFIX + "scale_definition": "S[c,k,r] = (2 pi i k / V) * rfft_n(m_c(r, t_n))[k]",
    }
    for name, value in params.to_dict().items():
        if name == "extra":
            for key, extra in value.items():
                meta[METADATA_PREFIX + key] = np.asarray(extra)
        elif value is not None:
            meta[METADATA_PREFIX + name] = (np.int8(value) if isinstance(value, bool)
                                            else np.asarray(value) if isinstance(value, list)
                                            else value)
    return meta


def _resolve_parameters(params: SimulationParameters | None, seed: int | None,
                        overrides: dict[str, Any]) -> SimulationParameters:
    unknown = sorted(set(overrides) - set(OVERRIDE_NAMES))
    if unknown:
        raise TypeError(f"unknown simulation parameter(s) {unknown}; "
                        f"allowed: {', '.join(OVERRIDE_NAMES)}")
    if params is None:
        params = sample_parameters(seed, dims=int(overrides.get("dims", 2)),
                                   model=overrides.get("model", "anisotropy"))
    elif seed is not None:
        raise ValueError("pass either params or seed, not both")
    if not overrides:
        return params
    changes = dict(overrides)
    if changes.get("dims") == 2 and "grid" not in changes and params.grid[2] != 1:
        changes["grid"] = (params.grid[0], params.grid[1], 1)
    return params.replace(**changes)


def simulate_system_matrix(params: SimulationParameters | None = None, *,
                           seed: int | None = None, frequencies: np.ndarray | None = None,
                           max_frequency: float | None = None,
                           selection_warp: Callable[[np.ndarray], np.ndarray] | None = None,
                           **overrides: Any) -> SystemMatrix:
    """Simulate a clean 3-channel system matrix.

    Parameters
    ----------
    params:
        All parameters; default: drawn by :func:`sample_parameters` from ``seed``.
    seed:
        Seed of the sampler (only without ``params``).
    frequencies:
        0-based rfft bin indices to simulate (default all ``V // 2 + 1``); bounds memory
        for 3D (the reference scanner's full band at 19^3, 3 x 26929 bins x 6859 voxels,
        is 4.4 GB as complex64).
    max_frequency:
        Keep only bins with frequency ``<= max_frequency`` (Hz); combines with
        ``frequencies``.
    selection_warp:
        A non-linear selection field (:func:`simulate_spectra`); default linear.
    **overrides:
        Parameter fields to replace (names in :data:`OVERRIDE_NAMES`, SI units).

    Returns
    -------
    SystemMatrix with data ``(3, K, Nz, Ny, Nx)`` complex64, ``frequency_indices`` the
    simulated bins, metadata holding MDF calibration fields (method "simulation",
    ``/experiment/isSimulation = 1``) and every parameter under
    ``/_pympisr/simulation/<name>``.
    """
    params = _resolve_parameters(params, seed, overrides)
    all_freqs = fields.rfft_frequencies(params.dims)
    bins = np.arange(all_freqs.size) if frequencies is None else np.unique(
        np.asarray(frequencies, np.int64))
    if bins.size and (bins.min() < 0 or bins.max() >= all_freqs.size):
        raise ValueError(f"frequency indices must lie in [0, {all_freqs.size - 1}]")
    if max_frequency is not None:
        bins = bins[all_freqs[bins] <= max_frequency]
    freqs = all_freqs[bins]
    tf = None
    if params.transfer_function is not None:
        tf = load_transfer_function(params.transfer_function, freqs, bins)
    data = simulate_spectra(params, bins=bins, transfer_function=tf,
                            selection_warp=selection_warp)
    nx, ny, nz = params.grid
    positions = voxel_positions(params.grid, params.fov, params.center)
    return SystemMatrix(
        data=data.reshape(3, bins.size, nz, ny, nx), frequencies=freqs, grid=params.grid,
        fov=params.fov, center=params.center, frequency_indices=bins, transfer_function=tf,
        is_transfer_function_corrected=False,
        metadata=simulation_metadata(params, positions))
