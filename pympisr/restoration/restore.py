"""Restore measured system matrices with an ONNX model: in memory and MDF to MDF.

``restore_system_matrix(sm)`` returns a new :class:`~pympisr.SystemMatrix` whose
selected frequency components (all by default, or those with calibration SNR >=
``snr_thresh``) were passed through the model, component by component in batches;
``restore(path)`` loads an MDF file, does the same and writes a new MDF file next to it
(never the input itself) with provenance under ``/_pympisr/restoration/``.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..system_matrix import SystemMatrix
from .runtime import OnnxRestorer

__all__ = ["TASKS", "default_output_path", "restore", "restore_system_matrix"]

TASKS = ("denoise",)
PROVENANCE = "/_pympisr/restoration"


def _restorer(model: str | os.PathLike[str] | OnnxRestorer | None, task: str,
              dims: int) -> OnnxRestorer:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if isinstance(model, OnnxRestorer):
        restorer = model
    else:
        from ..model_zoo import resolve_model
        restorer = OnnxRestorer(resolve_model(model, task=task, dims=dims))
    if restorer.task != task:
        raise ValueError(f"model {restorer.name} is a {restorer.task!r} model, not {task!r}")
    if restorer.dims != dims:
        raise ValueError(f"model {restorer.name} is for {restorer.dims}D components; the "
                         f"system matrix is {dims}D")
    return restorer


def _selection(sm: SystemMatrix, snr_thresh: float | None) -> np.ndarray:
    """bool ``(C, K)``: components to restore."""
    if snr_thresh is None:
        return np.ones(sm.data.shape[:2], dtype=bool)
    if sm.snr is None:
        raise ValueError("snr_thresh needs the calibration SNR (/calibration/snr), which "
                         "this system matrix does not have")
    return np.asarray(sm.snr) >= snr_thresh


def restore_system_matrix(sm: SystemMatrix, *, task: str = "denoise",
                          model: str | os.PathLike[str] | OnnxRestorer | None = None,
                          snr_thresh: float | None = None,
                          progress: bool = True) -> SystemMatrix:
    """Restore the components of ``sm`` in memory.

    Parameters
    ----------
    sm:
        System matrix, data complex64 ``(C, K, Nz, Ny, Nx)``.
    task:
        Restoration task; only ``"denoise"`` is available so far.
    model:
        Manifest name, ``.onnx`` path, an :class:`OnnxRestorer`, or None for the
        manifest's default model for the task and ``sm.dims``.
    snr_thresh:
        Restore only components with ``sm.snr >= snr_thresh`` (others are copied).
    progress:
        Show a tqdm bar over batches.

    Returns
    -------
    A new SystemMatrix (``sm`` is not modified) whose metadata records the restoration
    under ``/_pympisr/restoration/`` (model, sha256, task, selection, date).
    """
    restorer = _restorer(model, task, sm.dims)
    selected = _selection(sm, snr_thresh)
    channels, freqs = np.nonzero(selected)
    data = sm.data.copy()
    squeeze = sm.dims == 2
    batch = restorer.batch_size
    with tqdm(total=channels.size, disable=not progress, unit="comp",
              desc=f"restoring with {restorer.name}") as bar:
        for start in range(0, channels.size, batch):
            c, k = channels[start:start + batch], freqs[start:start + batch]
            comps = sm.data[c, k]                               # (b, Nz, Ny, Nx)
            out = restorer(comps[:, 0] if squeeze else comps)
            data[c, k] = out[:, None] if squeeze else out
            bar.update(c.size)
    from .. import __version__
    info = restorer.describe()
    metadata = dict(sm.metadata)
    metadata.update({
        f"{PROVENANCE}/task": task,
        f"{PROVENANCE}/model": info["name"],
        f"{PROVENANCE}/modelFile": info["file"],
        f"{PROVENANCE}/modelSha256": info["sha256"],
        f"{PROVENANCE}/architecture": info["architecture"],
        f"{PROVENANCE}/pympisrVersion": __version__,
        f"{PROVENANCE}/date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        f"{PROVENANCE}/snrThreshold": float("nan") if snr_thresh is None else float(snr_thresh),
        f"{PROVENANCE}/restoredComponents": selected.astype(np.int8),
        f"{PROVENANCE}/numRestored": int(selected.sum()),
    })
    return sm.replace(data=data, metadata=metadata)


def default_output_path(path: str | os.PathLike[str]) -> Path:
    """``<stem>_restored<suffix>`` next to ``path`` (suffix ``.mdf`` if it has none)."""
    p = Path(path)
    return p.with_name(f"{p.stem}_restored{p.suffix or '.mdf'}")


def restore(path: str | os.PathLike[str], *, task: str = "denoise",
            model: str | os.PathLike[str] | None = None,
            out: str | os.PathLike[str] | None = None, snr_thresh: float | None = None,
            overwrite: bool = False, progress: bool = True) -> Path:
    """Restore the system matrix in the MDF file ``path`` into a new MDF file.

    The data is loaded background corrected (MPIFiles' rule) and without transfer-
    function correction (the model is invariant to a per-component complex factor), the
    selected components are restored (:func:`restore_system_matrix`), and the result is
    written with ``path`` as metadata template. The input file is only read.

    Parameters
    ----------
    path:
        Input calibration MDF file.
    task, model, snr_thresh:
        As in :func:`restore_system_matrix`.
    out:
        Output file; default :func:`default_output_path`. Must differ from ``path``.
    overwrite:
        Replace an existing ``out``.

    Returns
    -------
    The written path.

    Raises
    ------
    FileExistsError
        ``out`` exists and ``overwrite`` is False (checked before any work).
    ValueError
        ``out`` is the input file.
    """
    from ..mdf.reader import load_system_matrix
    from ..mdf.writer import save_system_matrix

    src = Path(path)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such file")
    target = Path(out) if out is not None else default_output_path(src)
    if target.exists() and target.samefile(src):
        raise ValueError(f"{target}: refusing to write the restored system matrix over "
                         "its input file")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: exists; pass overwrite=True (--overwrite) to "
                              "replace it")
    sm = load_system_matrix(src, bg_correction=True, tf_correction=False)
    restored = restore_system_matrix(sm, task=task, model=model, snr_thresh=snr_thresh,
                                     progress=progress)
    metadata: dict[str, Any] = dict(restored.metadata)
    metadata[f"{PROVENANCE}/source"] = str(src.resolve())
    return save_system_matrix(restored.replace(metadata=metadata), target, template=src,
                              overwrite=overwrite)
