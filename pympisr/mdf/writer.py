"""Writing :class:`~pympisr.SystemMatrix` and :class:`~pympisr.Measurement` as MDF 2.1.0.

Layouts written:

* system matrix: ``/measurement/data`` h5py shape ``(1, C, K, O + E)`` (J x C x K x N),
  complex64 as the ``{r, i}`` compound, ``isFastFrameAxis = isFourierTransformed =
  isFramePermutation = 1``, foreground frames in voxel order (x fastest) followed by the
  E background frames (``isBackgroundFrame``), chunked by frequency rows so a reader
  can fetch single rows; ``/calibration`` with size, fieldOfView, fieldOfViewCenter,
  snr ``(1, C, K)``, method, order;
* measurement: ``(N, 1, C, K)`` (N x J x C x K), foreground then background frames.

Field values come from, in increasing priority: defaults for every mandatory field
(so a simulated system matrix without metadata gives a valid file), the metadata of
``template`` (another MDF file), the object's ``metadata``, and the fields the object
models explicitly; a partly filled ``/tracer`` group is completed with "n.a."/zero
entries, and per-voxel calibration fields (positions, offsetFields) that no longer
match the grid are dropped. Booleans are int8, strings variable-length UTF-8 (any ``str``
is writable: characters UTF-8 cannot encode, such as the surrogates of undecodable
file names, are written as backslash escapes). Metadata entries that are
:class:`~pympisr.mdf.metadata.StoredDataset` references are copied from their source
file with HDF5's object copy, or dropped with an :class:`~pympisr.errors.MDFWarning`
if that fails. Without ``frequency_indices`` and without numSamplingPoints/bandwidth in
the metadata, the receiver grid is inferred from the frequencies when they are integer
multiples ``k * df`` (k >= 0) of one spacing (:func:`infer_frequency_indices`). Provenance goes to
``/_pympisr/version`` and ``/_pympisr/writtenAt`` (plus any ``/_pympisr/...`` entries of
the metadata). Files are written atomically (:func:`pympisr.atomic.atomic_output`) and
never replace an existing file unless ``overwrite=True``.
"""

from __future__ import annotations

import datetime as _dt
import os
import uuid
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..atomic import atomic_output
from ..errors import MDFError, MDFWarning
from ..system_matrix import Measurement, SystemMatrix
from .metadata import FRAME_PERMUTATION, StoredDataset, collect_metadata, modelled_fields
from .quirks import is_boolean_field
from .reader import open_mdf
from .safety import MAX_SAMPLING_POINTS, data_outside_file, require_regular_file

__all__ = ["MDF_VERSION", "infer_frequency_indices", "save_measurement",
           "save_system_matrix"]

MDF_VERSION = "2.1.0"
_CHUNK_BYTES = 1 << 20


def _now() -> str:
    """UTC time as ``yyyy-mm-ddThh:mm:ss.sss`` (MDF's format)."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def _template_metadata(template: str | os.PathLike[str] | None, kind: str) -> dict[str, Any]:
    if template is None:
        return {}
    with open_mdf(template) as reader:
        meta = collect_metadata(reader, kind)
    meta.pop(FRAME_PERMUTATION, None)
    return meta


def _looks_simulated(own: dict[str, Any], template: Any) -> bool:
    """No template and no metadata beyond user fields (``/_...``): a simulation."""
    return template is None and not any(not key.startswith("/_") for key in own)


def _defaults(is_simulation: bool) -> dict[str, Any]:
    """Values for every mandatory MDF field that the model does not determine."""
    now = _now()
    return {
        "/study/name": "pympisr", "/study/number": np.int64(0),
        "/study/uuid": str(uuid.uuid4()), "/study/description": "",
        "/experiment/name": "pympisr", "/experiment/number": np.int64(0),
        "/experiment/uuid": str(uuid.uuid4()), "/experiment/description": "",
        "/experiment/subject": "", "/experiment/isSimulation": np.int8(is_simulation),
        "/scanner/facility": "n.a.", "/scanner/operator": "n.a.",
        "/scanner/manufacturer": "n.a.", "/scanner/name": "n.a.", "/scanner/topology": "FFP",
        "/acquisition/startTime": now, "/acquisition/numAverages": np.int64(1),
        "/acquisition/receiver/unit": "V",
        "/acquisition/drivefield/numChannels": np.int64(1),
        "/acquisition/drivefield/strength": np.zeros((1, 1, 1)),
        "/acquisition/drivefield/phase": np.zeros((1, 1, 1)),
        "/acquisition/drivefield/waveform": np.array([["sine"]], dtype=object),
        "/measurement/isSpectralLeakageCorrected": np.int8(0),
    }


def _meta_number(meta: dict[str, Any], field: str) -> float | None:
    """A positive finite scalar from the metadata, or None (missing, array, text...)."""
    value = meta.get(field)
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    if arr.size != 1 or not np.isfinite(arr[0]) or arr[0] <= 0:
        return None
    return float(arr[0])


def infer_frequency_indices(frequencies: np.ndarray, rtol: float = 1e-6,
                            max_divisor: int = 64) -> np.ndarray | None:
    """0-based rfft bins ``k`` with ``frequencies = k * df``, or None if there are none.

    ``df`` is the largest spacing of which every frequency is a non-negative integer
    multiple (within ``rtol``). Such a spacing divides the smallest positive gap ``g``
    between the sorted distinct values of ``{0} | frequencies``, so ``df = g / m`` for
    the smallest ``m`` in ``1..max_divisor`` that fits every frequency. Repeated or
    negative frequencies, or ones that no such spacing fits, give None.
    """
    freqs = np.asarray(frequencies, dtype=np.float64).reshape(-1)
    if freqs.size == 0 or not np.all(np.isfinite(freqs)) or np.any(freqs < 0):
        return None
    if np.unique(freqs).size != freqs.size or not np.any(freqs > 0):
        return None
    gaps = np.diff(np.unique(np.concatenate([[0.0], freqs])))
    smallest_gap = float(gaps[gaps > 0].min())
    for divisor in range(1, max_divisor + 1):
        ratios = freqs / (smallest_gap / divisor)
        bins = np.round(ratios)
        if np.all(np.abs(ratios - bins) <= rtol * np.maximum(1.0, bins)):
            return bins.astype(np.int64)
    return None


def _missing_grid_error(frequencies: np.ndarray) -> ValueError:
    shown = ", ".join(f"{f:g}" for f in np.asarray(frequencies).reshape(-1)[:5])
    return ValueError("cannot place the frequencies (" + shown + " ... Hz) in an rfft "
                      "grid: they are not non-negative integer multiples of one spacing. "
                      "Pass frequency_indices (0-based rfft bins) or give the metadata "
                      "/acquisition/receiver/numSamplingPoints and bandwidth")


def _receiver_grid(frequencies: np.ndarray, indices: np.ndarray | None,
                   meta: dict[str, Any]) -> tuple[int, float, np.ndarray]:
    """(V, bandwidth, 0-based bins) consistent with ``frequencies``.

    Uses ``numSamplingPoints``/``bandwidth`` from the metadata when they reproduce the
    frequencies; otherwise V = 2 (max bin) (or 2 (K - 1) for a full spectrum) and the
    bandwidth from the bin spacing (bin k lies at ``k * 2 * bandwidth / V``). Without
    indices and metadata the bins are inferred (:func:`infer_frequency_indices`).
    """
    v_meta = _meta_number(meta, "/acquisition/receiver/numSamplingPoints")
    bw_meta = _meta_number(meta, "/acquisition/receiver/bandwidth")
    if v_meta is not None and not (float(v_meta).is_integer() and
                                   v_meta <= MAX_SAMPLING_POINTS):
        v_meta = None   # not a usable sample count: ignored, the grid is derived instead
    v_meta = int(v_meta) if v_meta is not None else None
    if indices is None:
        if v_meta and bw_meta:
            indices = np.round(frequencies / (2 * bw_meta / v_meta)).astype(np.int64)
        else:
            indices = infer_frequency_indices(frequencies)
            if indices is None:
                raise _missing_grid_error(frequencies)
    bins = np.asarray(indices, dtype=np.int64)
    if v_meta and bw_meta and bins.max() <= v_meta // 2 and np.allclose(
            bins * (2 * bw_meta / v_meta), frequencies, rtol=1e-6, atol=1e-6):
        return v_meta, bw_meta, bins
    full = np.array_equal(bins, np.arange(bins.size))
    num_samples = 2 * (bins.size - 1) if full else 2 * int(bins.max())
    num_samples = max(num_samples, 2)
    positive = bins > 0
    spacing = float(np.median(frequencies[positive] / bins[positive])) if positive.any() else 1.0
    return num_samples, spacing * num_samples / 2, bins


def writable_text(value: str | bytes) -> str:
    """``value`` as a str that UTF-8 can encode: bytes are decoded (undecodable bytes
    replaced), characters UTF-8 cannot encode (lone surrogates, e.g. from
    ``os.fsdecode`` of a non-UTF-8 path) become backslash escapes."""
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", "replace")
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _as_storable(field: str, value: Any) -> tuple[Any, Any]:
    """(data, dtype) for h5py; strings variable-length UTF-8, flags int8."""
    if isinstance(value, h5py.Empty):
        return value, None
    if isinstance(value, (str, bytes)):
        return writable_text(value), h5py.string_dtype()
    arr = np.asarray(value)
    if arr.dtype.kind in "OUS":
        out = np.empty(arr.shape, dtype=object)
        for index, item in np.ndenumerate(arr):
            if isinstance(item, (bytes, np.bytes_, str)):
                out[index] = writable_text(item)
            else:
                raise TypeError(f"cannot store a {type(item).__name__} in MDF")
        return out, h5py.string_dtype()
    if arr.dtype.kind == "b" or (is_boolean_field(field) and arr.dtype.kind in "iu"):
        return (arr != 0).astype(np.int8), None
    if isinstance(value, bool):
        return np.int8(value), None
    if isinstance(value, int):
        return np.int64(value), None
    if isinstance(value, float):
        return np.float64(value), None
    return arr, None


def _copy_stored(h5: h5py.File, field: str, ref: StoredDataset, path: str) -> None:
    """Copy a referenced dataset from its source file (HDF5 object copy, no detour
    through memory); MDFWarning and nothing written if that is impossible."""
    try:
        require_regular_file(ref.source)
        with h5py.File(ref.source, "r", locking=False) as src:
            obj = src.get(ref.name)
            if not isinstance(obj, h5py.Dataset):
                raise KeyError(f"{ref.name} is no longer a dataset there")
            outside = data_outside_file(obj)
            if outside:
                raise ValueError(outside)
            parent, _, name = field.rpartition("/")
            src.copy(obj, h5.require_group(parent or "/"), name=name)
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, MDFError) as exc:
        warnings.warn(f"{path}: {field}: large metadata dataset not copied from "
                      f"{ref.source} ({exc}); left out", MDFWarning, stacklevel=5)


def _write_fields(h5: h5py.File, fields: dict[str, Any], path: str) -> None:
    for field in sorted(fields, key=writable_text):
        value = fields[field]
        name = writable_text(field)
        if isinstance(value, StoredDataset):
            _copy_stored(h5, name, value, path)
            continue
        try:
            data, dtype = _as_storable(name, value)
            h5.create_dataset(name, data=data, dtype=dtype)
        except (TypeError, ValueError, OSError) as exc:
            raise MDFError(path, name, f"cannot write value ({exc})") from None


def _complete_tracer(meta: dict[str, Any]) -> None:
    """Fill the mandatory /tracer fields (A entries each) if the group is used at all."""
    if not any(key.startswith("/tracer/") for key in meta):
        return
    count = max(1, int(np.asarray(meta.get("/tracer/name", ["n.a."]), dtype=object).size))
    for name in ("name", "batch", "vendor"):
        meta.setdefault(f"/tracer/{name}", np.array(["n.a."] * count, dtype=object))
    meta.setdefault("/tracer/solute", np.array(["Fe"] * count, dtype=object))
    meta.setdefault("/tracer/volume", np.zeros(count))
    meta.setdefault("/tracer/concentration", np.zeros(count))


def _merge(template: dict[str, Any], own: dict[str, Any], kind: str,
           is_simulation: bool) -> dict[str, Any]:
    """defaults < template < own metadata, without the fields the model owns."""
    skip = modelled_fields(kind) - {FRAME_PERMUTATION}
    merged = _defaults(is_simulation)
    for source in (template, own):
        merged.update({k: v for k, v in source.items() if k not in skip})
    _complete_tracer(merged)
    return merged


def _drivefield(meta: dict[str, Any], num_samples: int, bandwidth: float) -> dict[str, Any]:
    """Drive-field timing consistent with the receiver when the metadata lacks it."""
    out: dict[str, Any] = {}
    if "/acquisition/drivefield/baseFrequency" not in meta:
        out["/acquisition/drivefield/baseFrequency"] = np.float64(2 * bandwidth)
    if "/acquisition/drivefield/divider" not in meta:
        out["/acquisition/drivefield/divider"] = np.array([[num_samples]], dtype=np.int64)
    if "/acquisition/drivefield/cycle" not in meta:
        out["/acquisition/drivefield/cycle"] = np.float64(num_samples / (2 * bandwidth))
    return out


def _frame_permutation(meta: dict[str, Any], num_frames: int) -> np.ndarray | None:
    perm = meta.pop(FRAME_PERMUTATION, None)
    if perm is None:
        return None
    perm = np.asarray(perm).reshape(-1)
    if perm.dtype.kind not in "iu" or not np.array_equal(np.sort(perm),
                                                         np.arange(1, num_frames + 1)):
        return None
    return perm.astype(np.int64)


def _layout_fields(*, num_frames: int, background_mask: np.ndarray, perm: np.ndarray | None,
                   fast: bool, selection: np.ndarray | None, bg_corrected: bool,
                   tf_corrected: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "/measurement/isBackgroundCorrected": np.int8(bg_corrected),
        "/measurement/isFastFrameAxis": np.int8(fast),
        "/measurement/isFourierTransformed": np.int8(1),
        "/measurement/isFramePermutation": np.int8(perm is not None),
        "/measurement/isFrequencySelection": np.int8(selection is not None),
        "/measurement/isSparsityTransformed": np.int8(0),
        "/measurement/isTransferFunctionCorrected": np.int8(tf_corrected),
        "/measurement/isBackgroundFrame": background_mask.astype(np.int8),
        "/acquisition/numFrames": np.int64(num_frames),
        "/acquisition/numPeriodsPerFrame": np.int64(1),
    }
    if perm is not None:
        fields["/measurement/framePermutation"] = perm
    if selection is not None:
        fields["/measurement/frequencySelection"] = (selection + 1).astype(np.int64)
    return fields


def _receiver_fields(meta: dict[str, Any], frequencies: np.ndarray,
                     indices: np.ndarray | None, num_channels: int,
                     transfer_function: np.ndarray | None
                     ) -> tuple[dict[str, Any], np.ndarray | None]:
    """Receiver fields and the 0-based frequency selection (None = full spectrum)."""
    num_samples, bandwidth, bins = _receiver_grid(frequencies, indices, meta)
    full = bins.size == num_samples // 2 + 1 and np.array_equal(bins, np.arange(bins.size))
    fields: dict[str, Any] = {
        "/acquisition/receiver/numChannels": np.int64(num_channels),
        "/acquisition/receiver/numSamplingPoints": np.int64(num_samples),
        "/acquisition/receiver/bandwidth": np.float64(bandwidth),
        **_drivefield(meta, num_samples, bandwidth),
    }
    if transfer_function is not None:
        fields["/acquisition/receiver/transferFunction"] = np.asarray(
            transfer_function, dtype=np.complex64)
    return fields, (None if full else bins)


def _root_fields() -> dict[str, Any]:
    from .. import __version__

    return {"/version": MDF_VERSION, "/uuid": str(uuid.uuid4()), "/time": _now(),
            "/_pympisr/version": __version__, "/_pympisr/writtenAt": _now()}


def _data_fields(meta: dict[str, Any], data: SystemMatrix | Measurement, *, channels: int,
                 num_frames: int, num_foreground: int, perm: np.ndarray | None,
                 fast: bool) -> dict[str, Any]:
    """Root, receiver and ``/measurement`` layout fields for ``data`` stored as
    ``num_frames`` frames, the first ``num_foreground`` foreground, the rest background."""
    receiver, selection = _receiver_fields(meta, data.frequencies, data.frequency_indices,
                                           channels, data.transfer_function)
    return {
        **_root_fields(), **receiver,
        **_layout_fields(num_frames=num_frames,
                         background_mask=np.arange(num_frames) >= num_foreground, perm=perm,
                         fast=fast, selection=selection,
                         bg_corrected=data.is_background_corrected,
                         tf_corrected=data.is_transfer_function_corrected),
    }


def _chunks(num_channels: int, num_freqs: int, num_frames: int) -> tuple[int, ...]:
    frames = min(num_frames, max(1, _CHUNK_BYTES * 4 // 8))
    rows = max(1, min(num_freqs, _CHUNK_BYTES // (8 * frames)))
    return (1, 1, rows, frames)


def save_system_matrix(sm: SystemMatrix, path: str | os.PathLike[str], *,
                       template: str | os.PathLike[str] | None = None,
                       overwrite: bool = False) -> Path:
    """Write ``sm`` as an MDF 2.1.0 calibration file (layout in the module docstring).

    Parameters
    ----------
    sm:
        System matrix; ``sm.frequency_indices`` (0-based rfft bins) place the rows in
        the spectrum (needed unless the metadata has numSamplingPoints and bandwidth).
    path:
        Output file.
    template:
        MDF file whose metadata (study, scanner, drive field, tracer, ...) fills the
        fields that ``sm.metadata`` does not have.
    overwrite:
        Replace an existing file.

    Returns
    -------
    The written path.
    """
    target = Path(path)
    own = dict(sm.metadata)
    simulated = _looks_simulated(own, template)
    meta = _merge(_template_metadata(template, "system_matrix"), own, "system_matrix",
                  is_simulation=simulated)
    channels, freqs = sm.data.shape[:2]
    num_voxels = sm.num_voxels
    background = sm.background
    num_bg = 0 if background is None else background.shape[0]
    num_frames = num_voxels + num_bg
    for per_voxel in ("/calibration/positions", "/calibration/offsetFields"):
        value = meta.get(per_voxel)   # (O, 3): stale once the grid has changed
        shape = value.shape if isinstance(value, StoredDataset) else np.shape(value)
        if value is not None and tuple(shape[:1]) != (num_voxels,):
            del meta[per_voxel]
    perm = _frame_permutation(meta, num_frames)
    if perm is None:
        perm = np.arange(1, num_frames + 1, dtype=np.int64)
    explicit: dict[str, Any] = {
        **_data_fields(meta, sm, channels=channels, num_frames=num_frames,
                       num_foreground=num_voxels, perm=perm, fast=True),
        "/calibration/size": np.asarray(sm.grid, dtype=np.int64),
        "/calibration/fieldOfView": np.asarray(sm.fov, dtype=np.float64),
        "/calibration/fieldOfViewCenter": np.asarray(sm.center, dtype=np.float64),
    }
    meta.setdefault("/calibration/method", "simulation" if simulated else "robot")
    meta.setdefault("/calibration/order", "xyz")
    if sm.snr is not None:
        explicit["/calibration/snr"] = np.asarray(sm.snr, dtype=np.float64)[None]
    fields = {**meta, **explicit}
    with atomic_output(target, overwrite=overwrite) as tmp:
        with h5py.File(tmp, "w") as h5:
            _write_fields(h5, fields, os.fspath(target))
            ds = h5.create_dataset("/measurement/data", shape=(1, channels, freqs, num_frames),
                                   dtype=np.complex64,
                                   chunks=_chunks(channels, freqs, num_frames))
            for c in range(channels):
                ds[0, c, :, :num_voxels] = sm.data[c].reshape(freqs, num_voxels)
                if num_bg:
                    ds[0, c, :, num_voxels:] = background[:, c, :].T
    return target


def save_measurement(meas: Measurement, path: str | os.PathLike[str], *,
                     template: str | os.PathLike[str] | None = None,
                     overwrite: bool = False) -> Path:
    """Write ``meas`` as an MDF 2.1.0 measurement file, layout ``(N, 1, C, K)``.

    Foreground frames come first, then background frames. ``template`` and
    ``overwrite`` are as for :func:`save_system_matrix`.
    """
    target = Path(path)
    own = dict(meas.metadata)
    meta = _merge(_template_metadata(template, "measurement"), own, "measurement",
                  is_simulation=_looks_simulated(own, template))
    num_fg, channels, freqs = meas.data.shape
    num_bg = 0 if meas.background is None else meas.background.shape[0]
    num_frames = num_fg + num_bg
    perm = _frame_permutation(meta, num_frames)
    explicit: dict[str, Any] = {
        **_data_fields(meta, meas, channels=channels, num_frames=num_frames,
                       num_foreground=num_fg, perm=perm, fast=False),
        "/acquisition/numAverages": np.int64(meas.num_averages),
    }
    fields = {**meta, **explicit}
    with atomic_output(target, overwrite=overwrite) as tmp:
        with h5py.File(tmp, "w") as h5:
            _write_fields(h5, fields, os.fspath(target))
            ds = h5.create_dataset("/measurement/data", shape=(num_frames, 1, channels, freqs),
                                   dtype=np.complex64)
            ds[:num_fg, 0] = meas.data
            if num_bg:
                ds[num_fg:, 0] = meas.background
    return target
