"""Synthetic, spec-conformant MDF v2 files built directly with h5py (test helper).

The factory is independent of :mod:`pympisr.mdf`: it writes the layouts exactly as the
MDF specification describes them and returns the ground truth, so tests can check the
reader against it. Other test modules may import it::

    from mdf_factory import make_system_matrix_file, make_measurement_file

Layouts (``layout=``):

* ``"fast"``: frequency domain, ``(J, C, K, N)``, isFastFrameAxis = 1 (usual SM layout)
* ``"frequency"``: frequency domain, ``(N, J, C, K)``
* ``"pairs"``: frequency domain ``(N, J, C, K, 2)`` float (complex as a trailing axis)
* ``"time"``: time domain ``(N, J, C, V)`` float32
* ``"time_fast"``: time domain ``(J, C, V, N)``
* ``"sparse"``: DCT-II compressed ``(J, C, K, B + E)`` with subsamplingIndices
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.fft

LAYOUTS = ("fast", "frequency", "pairs", "time", "time_fast", "sparse")

__all__ = ["LAYOUTS", "SyntheticMDF", "make_measurement_file", "make_system_matrix_file",
           "metadata_equal"]


@dataclass
class SyntheticMDF:
    """Ground truth of a generated file (all in the frequency domain, full spectrum).

    foreground: complex128 ``(O, C, L)`` foreground frames in voxel order (x fastest),
        as they should come out of the reader before background/TF correction.
    background: complex128 ``(E, C, L)`` background frames in acquisition order.
    foreground_time, background_time: 0-based acquisition index of each frame.
    frequencies: Hz of the L bins. transfer_function: ``(C, L)`` or None.
    snr: ``(J, C, L)`` or None (stored frequencies only when selected).
    stored_bins: 0-based bins present in the file.
    """

    path: Path
    foreground: np.ndarray
    background: np.ndarray
    foreground_time: np.ndarray
    background_time: np.ndarray
    frequencies: np.ndarray
    stored_bins: np.ndarray
    transfer_function: np.ndarray | None = None
    snr: np.ndarray | None = None
    grid: tuple[int, int, int] = (1, 1, 1)
    extra: dict[str, Any] = field(default_factory=dict)


def _string(h5: h5py.File, name: str, text: str, style: str) -> None:
    if style == "fixed":
        h5.create_dataset(name, data=np.bytes_(text.encode()))
    elif style == "array":
        h5.create_dataset(name, data=np.array([text], dtype=object),
                          dtype=h5py.string_dtype())
    else:
        h5.create_dataset(name, data=text, dtype=h5py.string_dtype())


def _flag(h5: h5py.File, name: str, value: Any, style: str) -> None:
    arr = np.asarray(value).astype(bool)
    if style == "uint8":
        h5.create_dataset(name, data=arr.astype(np.uint8))
    elif style == "bool":
        h5.create_dataset(name, data=arr)
    elif style == "enum":
        dt = h5py.enum_dtype({"FALSE": 0, "TRUE": 1}, basetype=np.int8)
        h5.create_dataset(name, data=arr.astype(np.int8), dtype=dt)
    else:
        h5.create_dataset(name, data=arr.astype(np.int8))


def _common_groups(h5: h5py.File, *, channels: int, num_samples: int, bandwidth: float,
                   num_frames: int, periods: int, strings: str, bools: str,
                   legacy: bool, simulation: bool) -> None:
    s = lambda name, text: _string(h5, name, text, strings)  # noqa: E731
    s("/version", "2.0" if legacy else "2.1.0")
    s("/uuid", str(uuid.UUID(int=1)))
    s("/time", "2024-01-02T03:04:05.678")
    s("/study/name", "factory study")
    h5["/study/number"] = np.int64(3)
    s("/study/uuid", str(uuid.UUID(int=2)))
    s("/study/description", "synthetic")
    s("/experiment/name", "factory experiment")
    h5["/experiment/number"] = np.int64(7)
    s("/experiment/uuid", str(uuid.UUID(int=3)))
    s("/experiment/description", "n.a.")
    s("/experiment/subject", "delta sample")
    _flag(h5, "/experiment/isSimulation", simulation, bools)
    s("/scanner/facility", "lab")
    s("/scanner/operator", "tester")
    s("/scanner/manufacturer", "factory")
    s("/scanner/name", "unit scanner")
    s("/scanner/topology", "FFP")
    h5["/scanner/boreSize"] = 0.1
    s("/tracer/name", "tracer")
    s("/tracer/batch", "b1")
    s("/tracer/vendor", "v")
    s("/tracer/solute", "Fe")
    h5["/tracer/volume"] = np.array([1e-6])
    h5["/tracer/concentration"] = np.array([0.5])
    s("/acquisition/startTime", "2024-01-02T03:04:00.000")
    h5["/acquisition/numAverages"] = np.int64(10)
    h5["/acquisition/numFrames"] = np.int64(num_frames)
    h5["/acquisition/numPeriods" if legacy else "/acquisition/numPeriodsPerFrame"] = \
        np.int64(periods)
    h5["/acquisition/gradient"] = np.tile(np.diag([-1.0, -1.0, 2.0]), (periods, 1, 1, 1))
    h5["/acquisition/offsetField"] = np.zeros((periods, 3))
    df = "/acquisition/drivefield/"
    h5[df + "numChannels"] = np.int64(2)
    h5[df + "baseFrequency"] = np.float64(2 * bandwidth)
    h5[df + "divider"] = np.array([[num_samples], [num_samples + 2]], dtype=np.int64)
    h5[df + "cycle"] = np.float64(num_samples / (2 * bandwidth))
    h5[df + "strength"] = np.full((periods, 2, 1), 0.012)
    h5[df + "phase"] = np.zeros((periods, 2, 1))
    h5.create_dataset(df + "waveform", data=np.array([["sine"], ["sine"]], dtype=object),
                      dtype=h5py.string_dtype())
    rx = "/acquisition/receiver/"
    h5[rx + "numChannels"] = np.int64(channels)
    h5[rx + "bandwidth"] = np.float64(bandwidth)
    h5[rx + "numSamplingPoints"] = np.int64(num_samples)
    s(rx + "unit", "V")
    h5["/_custom/note"] = np.arange(3)


def _random_complex(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def _write_measurement_group(h5: h5py.File, *, layout: str, frames_fd: np.ndarray,
                             frames_td: np.ndarray | None, bg_mask: np.ndarray,
                             perm: np.ndarray | None, selection: np.ndarray | None,
                             bools: str, legacy: bool, bg_corrected: bool,
                             tf_corrected: bool, sparse: dict[str, Any] | None) -> None:
    """frames_fd: (N, J, C, K) complex stored frames; frames_td: (N, J, C, V) real."""
    m = "/measurement/"
    if layout in ("time", "time_fast"):
        data = frames_td.astype(np.float32)
        if layout == "time_fast":
            data = np.transpose(data, (1, 2, 3, 0))
    elif layout == "frequency":
        data = frames_fd.astype(np.complex64)
    elif layout == "pairs":
        data = np.stack([frames_fd.real, frames_fd.imag], axis=-1).astype(np.float32)
    else:  # fast, sparse
        data = np.transpose(frames_fd, (1, 2, 3, 0)).astype(np.complex64)
    chunks = None
    if layout in ("fast", "sparse"):
        chunks = (1, 1, 1, data.shape[-1])
    h5.create_dataset(m + "data", data=data, chunks=chunks)
    fast = layout in ("fast", "sparse", "time_fast")
    fourier = layout not in ("time", "time_fast")
    _flag(h5, m + ("isTransposed" if legacy else "isFastFrameAxis"), fast, bools)
    _flag(h5, m + "isFourierTransformed", fourier, bools)
    _flag(h5, m + "isBackgroundCorrected", bg_corrected, bools)
    _flag(h5, m + "isTransferFunctionCorrected", tf_corrected, bools)
    _flag(h5, m + "isSpectralLeakageCorrected", False, bools)
    _flag(h5, m + "isFramePermutation", perm is not None, bools)
    _flag(h5, m + "isFrequencySelection", selection is not None, bools)
    if not legacy:
        _flag(h5, m + "isSparsityTransformed", sparse is not None, bools)
    _flag(h5, m + "isBackgroundFrame", bg_mask, bools)
    if perm is not None:
        h5[m + "framePermutation"] = (perm + 1).astype(np.int64)
    if selection is not None:
        h5[m + "frequencySelection"] = (selection + 1).astype(np.int64)
    if sparse is not None:
        h5[m + "subsamplingIndices"] = sparse["indices"]
        _string(h5, m + "sparsityTransformation", "DCT-II", "vlen")


def make_system_matrix_file(path: str | Path, *, layout: str = "fast",
                            grid: tuple[int, int, int] = (4, 3, 1), channels: int = 3,
                            V: int = 32, periods: int = 1, background_frames: int = 4,
                            background_blocks: int = 2, permute: bool = True,
                            frequency_selection: Any = None, transfer_function: bool = False,
                            snr: bool = True, bg_corrected: bool = False,
                            tf_corrected: bool = False, bools: str = "int8",
                            strings: str = "vlen", legacy: bool = False,
                            sparse_fraction: float = 0.5, bandwidth: float = 1.25e6,
                            seed: int = 0) -> SyntheticMDF:
    """Write a synthetic calibration file and return its ground truth.

    Parameters
    ----------
    layout:
        One of :data:`LAYOUTS`.
    grid:
        ``(Nx, Ny, Nz)``; O = prod(grid) foreground frames.
    background_frames, background_blocks:
        E background frames split into contiguous blocks spread over the acquisition
        (first block at the start, last at the end).
    permute:
        Store foreground frames in voxel order and background frames last with a
        ``framePermutation`` (as MPIFiles writes SMs); otherwise store frames in
        acquisition order (``isFramePermutation = 0``).
    frequency_selection:
        None or 0-based rfft bins to store (frequency-domain layouts only).
    transfer_function, snr:
        Add ``/acquisition/receiver/transferFunction`` ``(C, L)`` / ``/calibration/snr``.
    bools, strings, legacy:
        Quirk styles: booleans as int8/uint8/bool/enum; strings vlen/fixed/array; v2.0
        legacy names (isTransposed, numPeriods, no isSparsityTransformed).
    sparse_fraction:
        For ``layout="sparse"``: fraction of DCT coefficients kept (B = round(f O)).
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    nx, ny, nz = grid
    num_voxels = nx * ny * nz
    num_bins = V // 2 + 1
    num_frames = num_voxels + background_frames
    # acquisition order: background blocks spread over the scan
    acq_is_bg = np.zeros(num_frames, dtype=bool)
    if background_frames:
        blocks = np.array_split(np.arange(background_frames), max(1, background_blocks))
        starts = np.linspace(0, num_frames - 1, len(blocks)).round().astype(int)
        for start, block in zip(starts, blocks):
            start = min(start, num_frames - len(block))
            while acq_is_bg[start:start + len(block)].any():
                start -= 1
            acq_is_bg[start:start + len(block)] = True
    fg_time = np.flatnonzero(~acq_is_bg)
    bg_time = np.flatnonzero(acq_is_bg)

    if layout in ("time", "time_fast"):
        td_fg = rng.standard_normal((num_voxels, periods, channels, V))
        td_bg = 0.1 * rng.standard_normal((background_frames, periods, channels, V))
        fg = np.fft.rfft(td_fg.astype(np.float32).astype(np.float64), axis=-1)
        bg = np.fft.rfft(td_bg.astype(np.float32).astype(np.float64), axis=-1)
    else:
        td_fg = td_bg = None
        fg = _random_complex(rng, (num_voxels, periods, channels, num_bins))
        bg = 0.1 * _random_complex(rng, (background_frames, periods, channels, num_bins))
        fg = fg.astype(np.complex64).astype(np.complex128)
        bg = bg.astype(np.complex64).astype(np.complex128)

    selection = None if frequency_selection is None else np.asarray(frequency_selection,
                                                                      dtype=np.int64)
    stored_bins = np.arange(num_bins) if selection is None else selection
    sparse = None
    if layout == "sparse":
        keep = max(1, int(round(sparse_fraction * num_voxels)))
        coeffs = scipy.fft.dctn(fg.reshape(nz, ny, nx, periods, channels, num_bins),
                                norm="ortho", axes=(0, 1, 2)).reshape(num_voxels, periods,
                                                                     channels, num_bins)
        order = np.argsort(-np.abs(coeffs), axis=0, kind="stable")[:keep]   # (B, J, C, L)
        kept = np.take_along_axis(coeffs, order, axis=0).astype(np.complex64)
        dense = np.zeros_like(coeffs)
        np.put_along_axis(dense, order, kept.astype(np.complex128), axis=0)
        fg = scipy.fft.idctn(dense.reshape(nz, ny, nx, periods, channels, num_bins),
                             norm="ortho", axes=(0, 1, 2)).reshape(fg.shape)
        sparse = {"indices": np.transpose(order[..., stored_bins] + 1, (1, 2, 3, 0))
                  .astype(np.int64)}
        stored_fg = kept.astype(np.complex128)
    else:
        stored_fg = fg

    if permute:
        stored = np.concatenate([stored_fg, bg])
        stored_td = None if td_fg is None else np.concatenate([td_fg, td_bg])
        mask = np.arange(stored.shape[0]) >= stored_fg.shape[0]
        perm = np.concatenate([fg_time, bg_time])
    else:
        if layout == "sparse":
            raise ValueError("sparse layout needs permute=True")
        stored = np.empty((num_frames, *fg.shape[1:]), dtype=np.complex128)
        stored[fg_time], stored[bg_time] = fg, bg
        stored_td = None
        if td_fg is not None:
            stored_td = np.empty((num_frames, *td_fg.shape[1:]))
            stored_td[fg_time], stored_td[bg_time] = td_fg, td_bg
        mask = acq_is_bg.copy()
        perm = None
    stored = stored[..., stored_bins]

    tf = None
    with h5py.File(path, "w") as h5:
        _common_groups(h5, channels=channels, num_samples=V, bandwidth=bandwidth,
                       num_frames=stored.shape[0], periods=periods, strings=strings,
                       bools=bools, legacy=legacy, simulation=False)
        _write_measurement_group(h5, layout=layout, frames_fd=stored, frames_td=stored_td,
                                 bg_mask=mask, perm=perm, selection=selection, bools=bools,
                                 legacy=legacy, bg_corrected=bg_corrected,
                                 tf_corrected=tf_corrected, sparse=sparse)
        c = "/calibration/"
        _string(h5, c + "method", "robot", strings)
        _string(h5, c + "order", "xyz", strings)
        h5[c + "size"] = np.array(grid, dtype=np.int64)
        h5[c + "fieldOfView"] = np.array([0.005 * nx, 0.005 * ny, 0.001 * nz])
        h5[c + "fieldOfViewCenter"] = np.array([0.0, 0.001, -0.002])
        h5[c + "deltaSampleSize"] = np.full(3, 1e-3)
        h5[c + "positions"] = rng.standard_normal((num_voxels, 3)) * 1e-3
        snr_values = None
        if snr:
            snr_values = rng.uniform(0.5, 50.0, (periods, channels, stored_bins.size))
            h5[c + "snr"] = snr_values
        if transfer_function:
            tf = (1.0 + 0.5 * rng.uniform(size=(channels, num_bins))) * np.exp(
                1j * rng.uniform(-np.pi, np.pi, (channels, num_bins)))
            tf = tf.astype(np.complex64).astype(np.complex128)
            h5.create_dataset("/acquisition/receiver/transferFunction",
                              data=tf.astype(np.complex64))
    return SyntheticMDF(path=path, foreground=fg[:, 0], background=bg[:, 0],
                        foreground_time=fg_time, background_time=bg_time,
                        frequencies=np.arange(num_bins) * (2 * bandwidth / V),
                        stored_bins=stored_bins, transfer_function=tf, snr=snr_values,
                        grid=grid, extra={"periods_fg": fg, "periods_bg": bg})


def make_measurement_file(path: str | Path, *, layout: str = "frequency", frames: int = 5,
                          background_frames: int = 2, channels: int = 3, V: int = 32,
                          periods: int = 1, frequency_selection: Any = None,
                          transfer_function: bool = False, bools: str = "int8",
                          strings: str = "vlen", bandwidth: float = 1.25e6,
                          seed: int = 1) -> SyntheticMDF:
    """Write a synthetic measurement (background frames first, then foreground frames).

    ``layout`` is ``"frequency"``, ``"fast"``, ``"pairs"``, ``"time"`` or
    ``"time_fast"``. The returned ground truth has ``grid = (0, 0, 0)`` and
    foreground/background in stored order.
    """
    if layout == "sparse":
        raise ValueError("measurements cannot be sparsity transformed")
    path = Path(path)
    rng = np.random.default_rng(seed)
    num_bins = V // 2 + 1
    num_frames = frames + background_frames
    mask = np.arange(num_frames) < background_frames
    if layout in ("time", "time_fast"):
        td = rng.standard_normal((num_frames, periods, channels, V))
        fd = np.fft.rfft(td.astype(np.float32).astype(np.float64), axis=-1)
    else:
        td = None
        fd = _random_complex(rng, (num_frames, periods, channels, num_bins))
        fd = fd.astype(np.complex64).astype(np.complex128)
    selection = None if frequency_selection is None else np.asarray(frequency_selection,
                                                                      dtype=np.int64)
    stored_bins = np.arange(num_bins) if selection is None else selection
    tf = None
    with h5py.File(path, "w") as h5:
        _common_groups(h5, channels=channels, num_samples=V, bandwidth=bandwidth,
                       num_frames=num_frames, periods=periods, strings=strings, bools=bools,
                       legacy=False, simulation=False)
        _write_measurement_group(h5, layout=layout, frames_fd=fd[..., stored_bins],
                                 frames_td=td, bg_mask=mask, perm=None, selection=selection,
                                 bools=bools, legacy=False, bg_corrected=False,
                                 tf_corrected=False, sparse=None)
        if transfer_function:
            tf = (1.0 + rng.uniform(size=(channels, num_bins))).astype(np.complex64)
            h5.create_dataset("/acquisition/receiver/transferFunction", data=tf)
            tf = tf.astype(np.complex128)
    idx = np.arange(num_frames)
    return SyntheticMDF(path=path, foreground=fd[~mask, 0], background=fd[mask, 0],
                        foreground_time=idx[~mask], background_time=idx[mask],
                        frequencies=np.arange(num_bins) * (2 * bandwidth / V),
                        stored_bins=stored_bins, transfer_function=tf, grid=(0, 0, 0))


def metadata_equal(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Keys whose values differ between two metadata dicts (empty list = identical)."""
    diff = sorted(set(a) ^ set(b))
    for key in sorted(set(a) & set(b)):
        x, y = a[key], b[key]
        if isinstance(x, h5py.Empty) or isinstance(y, h5py.Empty):
            if not (isinstance(x, h5py.Empty) and isinstance(y, h5py.Empty)):
                diff.append(key)
            continue
        ax, ay = np.asarray(x), np.asarray(y)
        if type(x) is str or type(y) is str:
            if x != y:
                diff.append(key)
        elif ax.shape != ay.shape or ax.dtype != ay.dtype or not np.array_equal(ax, ay):
            diff.append(key)
    return diff


# Valid base files that fuzzers mutate (tests/test_mdf_fuzz.py, benchmarks/fuzz_mdf.py):
# name -> function writing the file at a path.
FUZZ_BASES = {
    "fast": lambda p: make_system_matrix_file(p, layout="fast", transfer_function=True),
    "time": lambda p: make_system_matrix_file(p, layout="time", permute=False),
    "sparse": lambda p: make_system_matrix_file(p, layout="sparse"),
    "selection": lambda p: make_system_matrix_file(p, layout="frequency",
                                                   frequency_selection=[1, 4, 6, 9]),
    "meas": lambda p: make_measurement_file(p, layout="frequency", transfer_function=True),
    "meas_time": lambda p: make_measurement_file(p, layout="time"),
}
