"""Restore measured system matrices with an ONNX model: in memory and MDF to MDF.

``restore_system_matrix(sm)`` returns a new :class:`~pympisr.SystemMatrix`:

1. the noise level of every component comes from the file (background frames, else
   ``/calibration/snr``, else a blind estimate; :mod:`.noise_level`);
2. the selected components (all by default, or those with calibration SNR >=
   ``snr_thresh``) go through the model of the task (:mod:`pympisr.tasks`), with the
   noise level as input where the model takes one;
3. the safety step (:mod:`.safety`) makes the result never worse than the measurement:
   SURE-optimal combination with the measurement and the classical baseline
   (denoising), a combination with the classical baselines weighted by held-out
   validation (super-resolution, inpainting), and projection onto the data-consistent
   set for every task;
4. super-resolution tasks return the SM on the output grid with the matching FOV.

``restore(path)`` loads an MDF file, does the same and writes a new MDF file next to it
(never the input itself) with provenance under ``/_pympisr/restoration/``: the model
and how it was verified, the noise source and level, and per component the action
taken (:data:`.safety.ACTIONS`), the weights and the residual-to-noise ratio.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..errors import InvalidInputError, RestorationError
from ..system_matrix import SystemMatrix
from ..tasks import TASKS, Task, get_task
from ..tasks.base import with_grid_positions
from .noise_level import NoiseLevel, component_noise
from .runtime import OnnxRestorer
from .safety import (ACTIONS, SafetyOptions, SafetyRecord, consistency_step,
                     estimated_relative_noise, holdout_weight, sure_combination)

__all__ = ["METHODS", "PROVENANCE", "TASKS", "ComponentRestorer", "default_output_path", "restore", "restore_system_matrix"]

PROVENANCE = "/_pympisr/restoration"


def _restorer(model: str | os.PathLike[str] | OnnxRestorer | None, task: str,
              dims: int, trust: bool, scale: int | None = None) -> OnnxRestorer:
    get_task(task)  # UnknownTaskError for a bad name
    if isinstance(model, OnnxRestorer):
        restorer = model
    else:
        from ..model_zoo import resolve_model
        restorer = OnnxRestorer(resolve_model(model, task=task, dims=dims, trust=trust,
                                              scale=scale), trust=trust)
    if scale is not None and restorer.scale_factor != scale:
        raise InvalidInputError(f"model {restorer.name} restores at scale "
                                f"{restorer.scale_factor}, not {scale}")
    if restorer.task != task:
        raise InvalidInputError(f"model {restorer.name} is a {restorer.task!r} model, not {task!r}")
    if restorer.dims != dims:
        raise InvalidInputError(f"model {restorer.name} is for {restorer.dims}D components; the "
                         f"system matrix is {dims}D")
    return restorer


def _selection(sm: SystemMatrix, snr_thresh: float | None) -> np.ndarray:
    """bool ``(C, K)``: components to restore."""
    if snr_thresh is None:
        return np.ones(sm.data.shape[:2], dtype=bool)
    if not np.isfinite(snr_thresh):
        raise InvalidInputError(f"snr_thresh must be a finite number, got {snr_thresh!r}")
    if sm.snr is None:
        raise InvalidInputError("snr_thresh needs the calibration SNR (/calibration/snr), which "
                         "this system matrix does not have")
    return np.asarray(sm.snr) >= snr_thresh


METHODS = ("network", "prior")
# smallest validation grid (points per axis after one more degradation) for the held-out
# check of super-resolution; smaller grids keep the network's output
MIN_HOLDOUT_GRID = 3


def _grid_mask(mask: Any, sm: SystemMatrix) -> tuple[np.ndarray, str]:
    """The inpainting mask as bool ``(Nz, Ny, Nx)`` (True = valid sample) and how it
    was obtained: ``"given"``, ``"file <path>"`` or ``"auto (...)"``
    (:func:`.detect.detect_corrupted` with its default threshold)."""
    if isinstance(mask, str) and mask == "auto":
        from .detect import detect_corrupted
        found = detect_corrupted(sm)
        flagged = int(np.count_nonzero(~found.valid))
        return (np.asarray(found.valid, dtype=bool).reshape(sm.data.shape[2:]),
                f"auto (detect_corrupted, threshold {found.threshold:g}, "
                f"{flagged} positions flagged)")
    source = "given"
    if isinstance(mask, (str, os.PathLike)):
        source = f"file {os.fspath(mask)}"
        path = Path(mask)
        if path.suffix != ".npy":
            raise InvalidInputError(f"{path}: a mask file must be a .npy array (bool over the grid)")
        mask = np.load(path, allow_pickle=False)
    arr = np.asarray(mask)
    shape = sm.data.shape[2:]
    if arr.shape == shape[1:] and sm.dims == 2:
        arr = arr[None]
    if arr.shape != shape:
        raise InvalidInputError(f"mask of shape {arr.shape} does not match the grid (Nz, Ny, Nx) = "
                         f"{shape}")
    if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
        raise InvalidInputError("mask must be boolean (True = valid calibration position)")
    return arr.astype(bool), source


class ComponentRestorer:
    """Restore batches of components: the model, then the safety step (module doc).

    >>> run = ComponentRestorer(OnnxRestorer(name), get_task("denoise"), SafetyOptions())
    >>> x, record = run(y, sigma, None)     # y complex (B, *grid), sigma (B,)

    Parameters
    ----------
    restorer:
        The ONNX model.
    task:
        Its task (grid rule, operator, baseline).
    safety:
        :class:`SafetyOptions`, or None for the raw network output; options left None
        take the values the restorer recommends (``recommended_safety``, from the
        model's manifest entry; :meth:`SafetyOptions.for_model`).
    seed:
        Seed of the Monte-Carlo SURE probes.
    """

    def __init__(self, restorer: OnnxRestorer, task: Task, safety: SafetyOptions | None,
                 seed: int = 0) -> None:
        self.restorer, self.task = restorer, task
        self.safety = None if safety is None else safety.for_model(
            getattr(restorer, "recommended_safety", None))
        self.rng = np.random.default_rng(seed)

    def denoise(self, y: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray, np.ndarray]:
        """Returns ``x``, action codes, network and baseline weights (all ``(B, ...)``)."""
        if self.safety is None:
            out = self.restorer(y, sigma=sigma)
            ones = np.ones(y.shape[0])
            return out, np.full(y.shape[0], ACTIONS.index("restored")), ones, 0 * ones
        from ..baselines.dct import dct_denoise_sure

        dims = y.ndim - 1
        peak = np.abs(y).reshape(y.shape[0], -1).max(axis=1)
        relative = np.where(peak > 0, sigma / np.where(peak > 0, peak, 1), np.inf)
        use_net = ((relative >= self.safety.network_floor)
                   & (estimated_relative_noise(y, sigma) <= self.safety.network_ceiling))
        x = np.empty_like(y)
        a, b = np.zeros(y.shape[0]), np.zeros(y.shape[0])
        for group, with_net in ((use_net, True), (~use_net, False)):
            if not group.any():
                continue
            sig = sigma[group]

            def network(z: np.ndarray, sig: np.ndarray = sig) -> np.ndarray:
                return self.restorer(z, sigma=np.resize(sig, z.shape[0]))

            def baseline(z: np.ndarray, sig: np.ndarray = sig) -> tuple[np.ndarray, np.ndarray]:
                out, div, _ = dct_denoise_sure(z, sig, dims=dims)
                return out, div

            x[group], a[group], b[group] = sure_combination(
                y[group], sig, dims, network if with_net else None,
                baseline if self.safety.use_baseline else None, self.safety, self.rng)
        codes = np.full(y.shape[0], ACTIONS.index("blended"))
        codes[a >= 0.95] = ACTIONS.index("restored")
        codes[b >= 0.95] = ACTIONS.index("baseline")
        codes[a + b < 0.05] = ACTIONS.index("kept")
        return x, codes, a, b

    def other_task(self, y: np.ndarray, sigma: np.ndarray, mask: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Super-resolution and inpainting: the network and the task's baseline with
        DCT-F, combined with the weight from held-out validation (:mod:`.safety`);
        components whose relative noise is below ``safety.network_floor`` (above the
        network's fidelity) or that are noise only (estimated relative noise above
        ``safety.network_ceiling``) get the classical method alone, as in
        :meth:`denoise`. ``mask``: the inpainting mask of
        every component of the batch (grid shape, True = valid), else None."""
        batch = y.shape[0]
        masks = None if mask is None else np.broadcast_to(mask, y.shape)
        if self.safety is None or not self.safety.use_baseline:
            ones = np.ones(batch)
            return (self.restorer(y, mask=masks, sigma=sigma),
                    np.full(batch, ACTIONS.index("restored")), ones, 0 * ones)
        peak = np.abs(y).reshape(batch, -1).max(axis=1)
        noise_only = estimated_relative_noise(y, sigma) > self.safety.network_ceiling
        net = (sigma >= self.safety.network_floor * peak) & ~noise_only
        x = self.classical(y, sigma, mask)
        a, b = np.zeros(batch), np.ones(batch)
        if net.any():
            yn, sn = y[net], sigma[net]
            f = self.restorer(yn, mask=None if masks is None else masks[net], sigma=sn)
            a[net] = self._holdout(yn, sn, mask)
            shape = (-1, *([1] * (y.ndim - 1)))
            x[net] = (x[net] + a[net].reshape(shape) * (f - x[net])).astype(np.complex64)
            b[net] = 1 - a[net]
        codes = np.full(batch, ACTIONS.index("blended"))
        codes[a >= 0.95] = ACTIONS.index("restored")
        codes[b >= 0.95] = ACTIONS.index("baseline")
        return x, codes, a, b

    def classical(self, y: np.ndarray, sigma: np.ndarray, mask: np.ndarray | None
                  ) -> np.ndarray:
        """The task's baseline with DCT-F (SURE-chosen threshold): on the measured grid
        before the spline (super-resolution), on the filled component (inpainting)."""
        from ..baselines.dct import dct_denoise_sure

        dims = y.ndim - 1
        if self.task.needs_mask:
            filled = self.task.baseline(y, sigma, mask)
            return dct_denoise_sure(filled, sigma, dims=dims)[0].astype(np.complex64)
        smooth = dct_denoise_sure(y, sigma, dims=dims)[0]
        return self.task.baseline(smooth, sigma, mask).astype(np.complex64)

    def _holdout(self, y: np.ndarray, sigma: np.ndarray, mask: np.ndarray | None
                 ) -> np.ndarray:
        """Held-out validation weight ``(B,)`` of the network against the classical
        method (:func:`.safety.holdout_weight`); 1 (the network) where the grid is too
        small to hold data out."""
        dims = y.ndim - 1
        batch = y.shape[0]
        network_only = np.ones(batch)
        if self.task.needs_mask:
            drawn = self.task.draw_mask(mask.shape, self.rng)
            hidden = mask & ~drawn
            if hidden.sum() < 2:
                return network_only
            seen = mask & drawn
            target, inputs, sig = y, y * seen, sigma
            in_mask: np.ndarray | None = seen

            def held_out(v: np.ndarray) -> np.ndarray:
                return v * hidden
        else:
            crop = self.task.training_crop(y.shape[1:])
            coarse = self.task.input_grid(y.shape[1:])
            if min(coarse) < MIN_HOLDOUT_GRID:
                return network_only
            target = y[(slice(None), *(slice(0, n) for n in crop))]
            op = self.task.operator(crop)
            inputs = op.forward(target)
            sig = sigma * op.noise_gain(crop)  # noise std of A y
            in_mask = None

            def held_out(v: np.ndarray) -> np.ndarray:
                return op.project(v, np.zeros_like(inputs), 0.0)
        f2 = self.restorer(inputs.astype(np.complex64),
                           mask=None if in_mask is None else np.broadcast_to(in_mask,
                                                                             inputs.shape),
                           sigma=sig)
        c2 = self.classical(inputs, sig, in_mask)
        return holdout_weight(held_out(c2 - target), held_out(f2 - c2), dims)

    def __call__(self, y: np.ndarray, sigma: np.ndarray, mask: np.ndarray | None
                 ) -> tuple[np.ndarray, SafetyRecord]:
        """Restore a batch ``y`` complex ``(B, *grid)`` with noise ``sigma`` ``(B,)``."""
        batch = y.shape[0]
        masks = None if mask is None else np.broadcast_to(mask, y.shape)
        if self.task.name == "denoise":
            x, codes, a, b = self.denoise(y, sigma)
        elif masks is None:
            x, codes, a, b = self.other_task(y, sigma, None)
        else:  # one pass per distinct mask (evaluation draws one per component)
            x = np.empty(y.shape, dtype=np.complex64)
            codes, a, b = np.empty(batch, int), np.empty(batch), np.empty(batch)
            distinct, which = np.unique(masks.reshape(batch, -1), axis=0,
                                        return_inverse=True)
            for index, flat in enumerate(distinct):
                group = which.reshape(-1) == index
                x[group], codes[group], a[group], b[group] = self.other_task(
                    y[group], sigma[group], flat.reshape(y.shape[1:]))
        ratio = np.full(batch, np.nan)
        if self.safety is not None:
            op = self.task.operator(x.shape[1:], masks)
            measured = y if masks is None else y * masks
            x, projected, ratio = consistency_step(x, measured, sigma, op, self.safety)
            peak = np.abs(y).reshape(batch, -1).max(axis=1)
            kept = sigma < self.safety.keep_below * peak
            codes = np.where(projected & ~kept, ACTIONS.index("projected"), codes)
            codes = np.where(kept, ACTIONS.index("kept"), codes)
        return x, SafetyRecord(codes.astype(np.int8), a, b, ratio)


def restore_system_matrix(sm: SystemMatrix, *, task: str = "denoise",
                          model: str | os.PathLike[str] | OnnxRestorer | None = None,
                          noise: float | np.ndarray | None = None, noise_source: str = "auto",
                          mask: Any = None, snr_thresh: float | None = None,
                          safety: SafetyOptions | None = SafetyOptions(), trust: bool = False,
                          seed: int = 0, progress: bool = True, method: str = "network",
                          scale: int | None = None) -> SystemMatrix:
    """Restore the components of ``sm`` in memory (module docstring).

    Parameters
    ----------
    sm:
        System matrix, data complex64 ``(C, K, Nz, Ny, Nx)``.
    task:
        One of :data:`pympisr.tasks.TASKS`.
    model:
        Manifest name, ``.onnx`` path, an :class:`OnnxRestorer`, or None for the
        manifest's default model for the task and ``sm.dims``.
    noise:
        Per-part noise std of each component in the units of ``sm.data`` (scalar or
        ``(C, K)``); None: from the file (:func:`.noise_level.component_noise`).
    noise_source:
        ``"auto"``, ``"background"``, ``"snr"`` or ``"blind"`` when ``noise`` is None.
    mask:
        Inpainting only: bool over the grid ``(Nz, Ny, Nx)`` (or ``(Ny, Nx)`` in 2D), a
        ``.npy`` file of it, or ``"auto"`` to find the corrupted positions with
        :func:`pympisr.restoration.detect.detect_corrupted`; True = valid calibration
        position. The provenance records the mask and how it was obtained.
    snr_thresh:
        Restore only components with ``sm.snr >= snr_thresh``; the others are copied
        (or, when the task changes the grid, filled by the task's classical baseline).
    safety:
        :class:`SafetyOptions`, or None to return the raw network output (for studies;
        the result may then be worse than the input).
    trust:
        Run a model file that no manifest or sha256 sidecar vouches for.
    seed:
        Seed of the Monte-Carlo SURE probes (results are reproducible).
    progress:
        Show a tqdm bar over batches.
    method:
        ``"network"`` (the task's ONNX model) or ``"prior"``: least squares on a span of
        simulations around the simulator fitted to ``sm``
        (:func:`pympisr.restoration.prior.prior_restore`; ``model`` is not used).
    scale:
        Scale factor of the super-resolution tasks; checked against the model's (the
        default model of a task is chosen for it).

    Returns
    -------
    A new SystemMatrix (``sm`` is not modified) whose metadata records the restoration
    under ``/_pympisr/restoration/``.
    """
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")
    needs_mask = get_task(task).needs_mask
    if needs_mask != (mask is not None):
        raise InvalidInputError(f"task {task!r} " + (
            "needs a mask (True = valid position, a .npy file, or 'auto')"
            if needs_mask else "takes no mask"))
    grid_mask, mask_source = (None, "") if mask is None else _grid_mask(mask, sm)
    if method == "prior":
        return _prior(sm, task, scale, noise, grid_mask, mask_source, safety, seed, progress)
    restorer = _restorer(model, task, sm.dims, trust, scale)
    task_obj = restorer.task_rules
    level: NoiseLevel = component_noise(sm, noise, source=noise_source)
    selected = _selection(sm, snr_thresh)
    c_count, k_count = sm.data.shape[:2]
    squeeze = sm.dims == 2
    spatial_in = sm.data.shape[3:] if squeeze else sm.data.shape[2:]
    spatial_out = task_obj.output_grid(spatial_in)
    out_grid, out_fov, out_center = task_obj.output_geometry(sm.grid, sm.fov, sm.center)
    data = np.empty((c_count, k_count, *(((1,) if squeeze else ()) + spatial_out)),
                    dtype=np.complex64)
    record = SafetyRecord(np.zeros((c_count, k_count), np.int8), np.zeros((c_count, k_count)),
                          np.zeros((c_count, k_count)), np.full((c_count, k_count), np.nan))
    run = ComponentRestorer(restorer, task_obj, safety, seed)
    comp_mask = None if grid_mask is None else (grid_mask[0] if squeeze else grid_mask)
    batch = restorer.batch_size
    with tqdm(total=c_count * k_count, disable=not progress, unit="comp",
              desc=f"{task} with {restorer.name}") as bar:
        for ch in range(c_count):
            for start in range(0, k_count, batch):
                ks = np.arange(start, min(k_count, start + batch))
                comps = sm.data[ch, ks][:, 0] if squeeze else sm.data[ch, ks]
                sigma = level.std[ch, ks]
                chosen = selected[ch, ks]
                out = np.empty((ks.size, *spatial_out), dtype=np.complex64)
                if chosen.any():
                    x, rec = run(comps[chosen], sigma[chosen], comp_mask)
                    out[chosen] = x
                    for name in ("action", "network_weight", "baseline_weight",
                                 "residual_ratio"):
                        getattr(record, name)[ch, ks[chosen]] = getattr(rec, name)
                if (~chosen).any():
                    out[~chosen] = (comps[~chosen] if spatial_out == spatial_in else
                                    task_obj.baseline(comps[~chosen], sigma[~chosen],
                                                      comp_mask))
                data[ch, ks] = out[:, None] if squeeze else out
                bar.update(ks.size)
    if not np.all(np.isfinite(data)):
        raise RestorationError(f"restoration with {restorer.name} produced non-finite "
                                 "values")
    metadata = _provenance(sm.metadata, restorer, task_obj, level, selected, record,
                           run.safety, snr_thresh, grid_mask, mask_source)
    restored = sm.replace(data=data, grid=out_grid, fov=out_fov, center=out_center,
                          metadata=metadata)
    if out_grid != sm.grid:
        restored = restored.replace(metadata=with_grid_positions(metadata, restored))
    return restored


def _provenance(metadata: dict[str, Any], restorer: OnnxRestorer, task: Task,
                level: NoiseLevel, selected: np.ndarray, record: SafetyRecord,
                safety: SafetyOptions | None, snr_thresh: float | None,
                grid_mask: np.ndarray | None, mask_source: str) -> dict[str, Any]:
    from .. import __version__

    info = restorer.describe()
    out = dict(metadata)
    out.update({
        f"{PROVENANCE}/task": task.name,
        f"{PROVENANCE}/scaleFactor": task.scale_factor,
        f"{PROVENANCE}/model": info["name"],
        f"{PROVENANCE}/modelFile": info["file"],
        f"{PROVENANCE}/modelSha256": info["sha256"],
        f"{PROVENANCE}/modelVerification": info.get("verification", ""),
        f"{PROVENANCE}/architecture": info["architecture"],
        f"{PROVENANCE}/pympisrVersion": __version__,
        f"{PROVENANCE}/date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        f"{PROVENANCE}/snrThreshold": float("nan") if snr_thresh is None else float(snr_thresh),
        f"{PROVENANCE}/restoredComponents": selected.astype(np.int8),
        f"{PROVENANCE}/numRestored": int(selected.sum()),
        f"{PROVENANCE}/noiseSource": level.source,
        f"{PROVENANCE}/noiseStd": level.std.astype(np.float32),
        f"{PROVENANCE}/safety": "none" if safety is None else json.dumps(asdict(safety)),
        f"{PROVENANCE}/action": record.action,  # "copied" (0) where not selected
        f"{PROVENANCE}/actionNames": json.dumps(list(ACTIONS)),
        f"{PROVENANCE}/networkWeight": record.network_weight.astype(np.float32),
        f"{PROVENANCE}/baselineWeight": record.baseline_weight.astype(np.float32),
        f"{PROVENANCE}/residualRatio": record.residual_ratio.astype(np.float32),
    })
    out.update(_mask_provenance(grid_mask, mask_source))
    return out


def _mask_provenance(grid_mask: np.ndarray | None, mask_source: str) -> dict[str, Any]:
    if grid_mask is None:
        return {}
    return {f"{PROVENANCE}/mask": grid_mask.astype(np.int8),
            f"{PROVENANCE}/maskSource": mask_source}


def _prior(sm: SystemMatrix, task: str, scale: int | None, noise: Any,
           grid_mask: np.ndarray | None, mask_source: str, safety: SafetyOptions | None,
           seed: int, progress: bool) -> SystemMatrix:
    """``method="prior"`` of :func:`restore_system_matrix`."""
    from .prior import prior_restore

    task_obj = get_task(task, sm.dims, scale)
    restored, _ = prior_restore(sm, task_obj, noise=noise, mask=grid_mask, seed=seed,
                                safety=safety if safety is not None else SafetyOptions(),
                                progress=progress)
    metadata = {**restored.metadata, f"{PROVENANCE}/method": "prior",
                **_mask_provenance(grid_mask, mask_source)}
    restored = restored.replace(metadata=metadata)
    if restored.grid != sm.grid:
        restored = restored.replace(metadata=with_grid_positions(metadata, restored))
    return restored


def default_output_path(path: str | os.PathLike[str]) -> Path:
    """``<stem>_restored<suffix>`` next to ``path`` (suffix ``.mdf`` if it has none)."""
    p = Path(path)
    return p.with_name(f"{p.stem}_restored{p.suffix or '.mdf'}")


def restore(path: str | os.PathLike[str], *, task: str = "denoise",
            model: str | os.PathLike[str] | None = None,
            out: str | os.PathLike[str] | None = None, snr_thresh: float | None = None,
            noise: float | np.ndarray | None = None, noise_source: str = "auto",
            mask: Any = None, safety: SafetyOptions | None = SafetyOptions(),
            trust: bool = False, overwrite: bool = False, progress: bool = True,
            method: str = "network", scale: int | None = None) -> Path:
    """Restore the system matrix in the MDF file ``path`` into a new MDF file.

    The data is loaded background corrected (MPIFiles' rule) and without transfer-
    function correction (the model is invariant to a per-component complex factor), the
    components are restored (:func:`restore_system_matrix`), and the result is written
    with ``path`` as metadata template. The input file is only read.

    Parameters
    ----------
    path:
        Input calibration MDF file (a regular file).
    task, model, snr_thresh, noise, noise_source, mask, safety, trust, method, scale:
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
    InvalidInputError
        ``out`` is the input file or empty, or another argument is invalid.
    OutputPathError
        ``out`` cannot be created (its folder is a file or not writable).
    """
    from ..atomic import check_output_path
    from ..mdf import require_regular_file
    from ..mdf.reader import load_system_matrix
    from ..mdf.writer import save_system_matrix

    src = require_regular_file(path)
    if out is not None and not os.fspath(out):
        raise InvalidInputError("the output path is empty")
    target = check_output_path(out if out is not None else default_output_path(src))
    if target.exists() and target.samefile(src):
        raise InvalidInputError(f"{target}: refusing to write the restored system matrix over "
                         "its input file")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: exists; pass overwrite=True (--overwrite) to "
                              "replace it")
    sm = load_system_matrix(src, bg_correction=True, tf_correction=False)
    restored = restore_system_matrix(sm, task=task, model=model, snr_thresh=snr_thresh,
                                     noise=noise, noise_source=noise_source, mask=mask,
                                     safety=safety, trust=trust, progress=progress,
                                     method=method, scale=scale)
    metadata: dict[str, Any] = dict(restored.metadata)
    # a path that is not valid UTF-8 is stored with its undecodable bytes escaped
    metadata[f"{PROVENANCE}/source"] = os.fsencode(src.resolve()).decode(
        "utf-8", errors="backslashreplace")
    return save_system_matrix(restored.replace(metadata=metadata), target, template=src,
                              overwrite=overwrite)
