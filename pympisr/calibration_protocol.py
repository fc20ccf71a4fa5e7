"""Calibration protocol (R) of DESIGN section 12: one absolute noise floor per system matrix.

A real calibration measures every frequency component with the same receive chain, so
all components of one system matrix (SM) share one *absolute* noise floor. Relative to
each component's own maximum the noise then spans from ~0.001 (strong low harmonics)
to far above 1 (weak high harmonics). This protocol reproduces that situation on
simulated SMs and scores restoration methods per relative-noise bin, in 2D (default)
or 3D (``dims=3``: the 3D models of the manifest, e.g. ``denoise_dncnn_small_nl_3d``).

Per SM ``i`` (``0 .. num_sms - 1``; everything is drawn from ``SeedSequence([seed, i])``):

1. parameters from :func:`pympisr.simulation.parameters.sample_parameters` (``dims``)
   with ``ranges={"samples_per_fwhm": (lo, hi), "grid": grid_range}``, grid range
   (12, 44) per axis in 2D and (10, 19) in 3D (:data:`GRID_RANGES`; the reference 3D
   scanner grid is 19^3); by default even SMs draw ``samples_per_fwhm`` from the
   training range (4, 12) of the 2D and the 3D models, odd ones from (12, 60);
2. the clean SM is simulated (:func:`pympisr.simulation.simulate_system_matrix`) and
   the components that carry signal are chosen with the dataset rule
   (:class:`pympisr.simulation.generate.SelectionRule`: ``k >= 1`` and energy >= 1e-5 x
   the largest energy, at most ``max_components``, :data:`MAX_COMPONENTS`: 400 in 2D,
   300 in 3D); the SM handed to the methods holds the frequency bins of these
   components (all 3 channels). 2D simulates all frequencies at once; 3D never holds the
   full band (0.65 MB per voxel, 4.4 GB for 19^3): the energies of all bins come first
   (:func:`pympisr.simulation.system_matrix.component_energies`, on every second voxel
   per axis for grids above 16, as the dataset generator does), then only the chosen
   bins are simulated (:func:`simulate_kept`);
3. the task (``task``: ``denoise``, ``upsample``, ``accelerate``, ``inpaint``;
   :func:`protocol_task`) measures the clean SM (:func:`measure`): denoising keeps it,
   super-resolution makes the coarse calibration with its geometry
   (:meth:`pympisr.tasks.Task.degrade_system_matrix`: ``s^d`` block means or every
   ``s``-th position), inpainting corrupts one seed-paper mask per SM (a contiguous
   block of 10 % of the positions in robot order, the same for every component, drawn
   from the SM's seed: :func:`case_mask`). The clean reference is the fine SM on the
   grid a restoration returns (:func:`fine_reference`; cropped to the points the coarse
   grid covers);
4. the noise floor (:class:`NoiseFloor`): per-part standard deviation
   ``sigma_abs = f * max|S|`` (2D: max over all components; 3D: over the kept ones,
   which hold the strongest) with ``f`` log-uniform in ``fraction_range`` (default
   1e-4 .. 1e-2: the strongest components get relative noise 1e-4 .. 1e-2, weak ones
   far above 1), white by default or shaped over frequency by the per-frequency
   background standard deviation of a real MDF file (:func:`real_noise_profile`,
   scaled to median 1 over the SM's frequencies);
   the result is the true per-component noise std ``noise_std`` (C, K) in the SM's
   units, and the measured SM is ``A S + N`` with complex white Gaussian ``N`` of that
   std per part on every measured sample (missing positions of inpainting stay 0; a
   coarse calibration with a larger sample would in reality also collect more signal,
   which is not modelled: the same floor as the fine calibration);
5. every method maps ``(measured SM, noise_std[, mask])`` to a restored SM on the fine
   grid (:data:`RestorationMethod`);
6. per kept component ``(c, k)``: relative noise ``noise_std[c, k] / max|S[c, k]|``
   (clean fine component), its bin (:data:`BIN_LABELS`, lower edges inclusive), and
   PSNR and SSIM of :mod:`pympisr.metrics` against the clean fine component (both
   normalised by the clean component's maximum magnitude, DESIGN section 7);
   inpainting also over the corrupted positions only
   (:func:`pympisr.evaluation.masked_scores`).

Methods (:func:`default_methods`): denoising: the noisy SM and DCT-F; super-resolution:
the bicubic spline through the measured points or block centres, alone and after DCT-F
on the measured grid (``DCT-F+bicubic``; the noise is white with the known std there);
inpainting: the zero-filled measurement (``noisy``), biharmonic inpainting, alone and
followed by DCT-F of the filled component (``biharmonic+DCT-F``; :class:`TaskBaseline`);
pympisr models through :func:`pympisr.restoration.restore.restore_system_matrix` with the
true noise floor (and the mask). Every DCT-F variant gets the true per-component sigma
and, for each bin, the threshold factor of ``dct_factors`` (default 1.0 .. 3.5) with
the best mean PSNR *on the evaluated data itself* (an oracle choice, favourable to the
baseline); the chosen factors are reported.

Summaries: mean and 95 % t-interval (:func:`pympisr.metrics.mean_ci`) and counts per
(stratum, bin, method); strata are ``all``, ``inside`` (effective samples per FWHM
<= 12, the training range of the 2D and the 3D models) and ``beyond`` (> 12).
Acceptance (DESIGN section 12): a method passes a bin if its mean PSNR is not more than
0.3 dB below the best classical reference: max(noisy, DCT-F) for denoising,
max(bicubic, DCT-F+bicubic) for super-resolution (tricubic in 3D), max(noisy,
biharmonic, biharmonic+DCT-F) for inpainting, there over the whole component and over
the corrupted positions.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_output
from .metrics import mean_ci, psnr, ssim
from .system_matrix import SystemMatrix

__all__ = [
    "ACCEPT_TOLERANCE_DB",
    "BIN_EDGES",
    "BIN_LABELS",
    "DCT_FACTORS",
    "DEFAULT_DCT_FACTOR",
    "DEFAULT_SPF_RANGES",
    "GRID_RANGES",
    "MAX_COMPONENTS",
    "TUNED_DCT_FACTORS",
    "CalibrationCase",
    "CalibrationResult",
    "NoiseFloor",
    "ProtocolCase",
    "RestorationMethod",
    "TaskBaseline",
    "baseline_label",
    "calibration_output_paths",
    "call_method",
    "case_parameters",
    "case_mask",
    "dct_filter",
    "dct_method",
    "dct_variant",
    "default_methods",
    "effective_samples_per_fwhm",
    "evaluate_calibration",
    "fine_reference",
    "markdown_tables",
    "measure",
    "model_label",
    "mpifiles_snr",
    "noisy_method",
    "plot_calibration",
    "protocol_task",
    "protocol_dims",
    "pympisr_method",
    "real_noise_profile",
    "relative_noise_bin",
    "restore_accepts_noise",
    "simulate_case",
    "simulate_clean",
    "simulate_kept",
    "spf_stratum",
    "write_calibration_results",
]

RestorationMethod = Callable[..., SystemMatrix]
"""``method(sm, noise_std) -> SystemMatrix``, for inpainting ``method(sm, noise_std,
mask)`` (:func:`call_method`): ``sm.data`` complex64 (C, K, Nz, Ny, nx), the measured SM;
``noise_std`` float (C, K), the true per-part noise std of each component in the SM's
units; ``mask`` bool (Nz, Ny, Nx) (``Nz = 1`` in 2D), True = measured position.
Returns a new SM on the task's fine grid (the shape of the clean reference; ``sm`` is
not modified)."""

BIN_EDGES: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
BIN_LABELS: tuple[str, ...] = ("<0.003", "0.003-0.01", "0.01-0.03", "0.03-0.1", "0.1-0.3",
                               "0.3-1", ">1")
DCT_FACTORS: tuple[float, ...] = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5)
DEFAULT_DCT_FACTOR = 2.0  # pympisr.baselines.dct.DEFAULT_THRESHOLD (tuned there)
# Per-bin DCT-F factors the calibration protocol chose (best mean PSNR over DCT_FACTORS)
# on 12 SMs, seed 0, default floor (python benchmarks/bench_protocols.py); the image
# protocol's default DCT-F uses them.
TUNED_DCT_FACTORS: dict[str, float] = {"<0.003": 1.5, "0.003-0.01": 1.5, "0.01-0.03": 2.0,
                                       "0.03-0.1": 2.0, "0.1-0.3": 2.5, "0.3-1": 2.5,
                                       ">1": 2.5}
DEFAULT_SPF_RANGES: tuple[tuple[float, float], ...] = ((4.0, 12.0), (12.0, 60.0))
GRID_RANGES: dict[int, tuple[int, int]] = {2: (12, 44), 3: (10, 19)}
GRID_RANGE = GRID_RANGES[2]
# Kept components per SM: the dataset rule's 400 in 2D. 3D: 300, the rule of the 3D
# models' training data (sim3d), not the generator's 600: a 19^3 component costs
# ~ 3.5 x a 44^2 one in every method (DCT-F runs with 6 factors, SSIM is a 3D filter);
# 300 take ~2 min per 19^3 SM on 2 busy cores. Fewer would empty the high-noise bins:
# the floor is one absolute level, so the weakest kept components set the largest
# relative noise (seed 0, SMs 0 and 3: the strongest 150 reach 0.22 and 0.64, the
# strongest 300 reach 0.59 and 1.33).
MAX_COMPONENTS: dict[int, int] = {2: 400, 3: 300}
# Effective samples per FWHM of the training data: (4, 12) for the 2D and the 3D models
# (manifest "training_data" -> sampler_ranges.samples_per_fwhm).
TRAINING_SPF_MAX = 12.0
ENERGY_STRIDE_ABOVE = 16  # 3D grids with an axis above this rank components on every 2nd voxel
ACCEPT_TOLERANCE_DB = 0.3
METRICS: tuple[str, ...] = ("psnr", "ssim")
MASKED_METRICS: tuple[str, ...] = ("psnr_masked", "ssim_masked")
NOISY = "noisy"
CLEAN = "clean"
DCT = "DCT-F"


# ---------------------------------------------------------------------- methods
def noisy_method(sm: SystemMatrix, noise_std: np.ndarray,
                 mask: np.ndarray | None = None) -> SystemMatrix:
    """The identity: the measured SM itself (a copy; inpainting: zero where missing)."""
    return sm.replace(data=sm.data.copy())


noisy_method.classical = True  # type: ignore[attr-defined]


def dct_filter(data: np.ndarray, noise_std: np.ndarray, factor: float | Mapping[str, float],
               dims: int) -> np.ndarray:
    """DCT-F (:func:`pympisr.baselines.dct.dct_denoise`) of complex components
    ``(C, K, *spatial)`` with per-part noise std ``noise_std`` ``(C, K)`` and soft
    threshold ``factor * sigma``; ``factor`` one number or per relative-noise bin (see
    :func:`dct_method`)."""
    from .baselines.dct import dct_denoise

    std = np.asarray(noise_std, np.float64)
    if not isinstance(factor, Mapping):
        return dct_denoise(data, std, threshold=float(factor), dims=dims)
    flat = np.abs(data).reshape(*std.shape, -1)
    peaks = flat.max(axis=-1) - std * np.sqrt(2 * np.log(max(flat.shape[-1], 2)))
    bins = relative_noise_bin(std / np.maximum(peaks, np.finfo(np.float32).tiny))
    out = np.empty_like(data)
    for b in np.unique(bins):
        chosen = bins == b
        out[chosen] = dct_denoise(data[chosen], std[chosen], dims=dims,
                                  threshold=float(factor.get(BIN_LABELS[b], DEFAULT_DCT_FACTOR)))
    return out


def check_dct_factor(factor: float | Mapping[str, float]) -> None:
    """Raise ValueError unless ``factor`` is a finite number >= 0 or a mapping from
    :data:`BIN_LABELS` to such numbers."""
    values = list(factor.values()) if isinstance(factor, Mapping) else [factor]
    if isinstance(factor, Mapping) and not set(factor) <= set(BIN_LABELS):
        raise ValueError(f"unknown bins {sorted(set(factor) - set(BIN_LABELS))}; known: "
                         f"{BIN_LABELS}")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in values):
        raise ValueError(f"DCT-F factors must be finite and >= 0, got {factor!r}")


def dct_method(factor: float | Mapping[str, float]) -> RestorationMethod:
    """DCT-F (:func:`pympisr.baselines.dct.dct_denoise`) with the true per-component sigma
    and soft threshold ``factor * sigma``.

    ``factor`` is one number, or a mapping from relative-noise bin label
    (:data:`BIN_LABELS`) to factor, e.g. the per-bin factors the calibration protocol
    tuned (``CalibrationResult.dct_factor``). With a mapping, a component's bin is taken
    from ``noise_std / m``, where the clean maximum (unknown to a method) is estimated
    from the measured one as ``m = max|S_meas| - sigma sqrt(2 ln N)`` (the typical
    maximum of the noise magnitude over N voxels removed; pure-noise components get
    ``m ~ 0``, i.e. bin ``>1``); bins missing from the mapping use
    :data:`DEFAULT_DCT_FACTOR`.
    """
    check_dct_factor(factor)
    table = dict(factor) if isinstance(factor, Mapping) else float(factor)

    def method(sm: SystemMatrix, noise_std: np.ndarray,
               mask: np.ndarray | None = None) -> SystemMatrix:
        std = _check_noise_std(sm, noise_std)
        data = sm.data[:, :, 0] if sm.dims == 2 else sm.data            # (C, K, [Nz,] Ny, Nx)
        out = dct_filter(data, std, table, sm.dims)
        out = out[:, :, None] if sm.dims == 2 else out
        return sm.replace(data=np.asarray(out, dtype=np.complex64))

    method.__name__ = "dct_method"
    method.factor = factor  # type: ignore[attr-defined]
    method.classical = True  # type: ignore[attr-defined]
    method.with_factor = dct_method  # type: ignore[attr-defined]
    return method


def dct_variant(name: str, method: RestorationMethod
                ) -> Callable[[float | Mapping[str, float]], RestorationMethod] | None:
    """``factor -> method`` for a method with a DCT-F threshold (:func:`dct_method`, a
    :class:`TaskBaseline` with DCT-F, or any entry named ``"DCT-F"``), else None."""
    if getattr(method, "factor", None) is not None and hasattr(method, "with_factor"):
        return method.with_factor  # type: ignore[attr-defined, no-any-return]
    return dct_method if name == DCT else None


def baseline_label(task: Any, dct: bool) -> str:
    """Column name of a task's classical baseline: ``"bicubic"``, ``"biharmonic"``, ...;
    with DCT-F in the order it is applied (``"DCT-F+bicubic"``: DCT-F on the measured
    grid, then the spline; ``"biharmonic+DCT-F"``: the filled component is denoised)."""
    if not dct:
        return str(task.baseline_name)
    return f"{task.baseline_name}+{DCT}" if task.needs_mask else f"{DCT}+{task.baseline_name}"


class TaskBaseline:
    """The classical baseline of a task on a degraded SM, as a :data:`RestorationMethod`.

    Super-resolution (:class:`pympisr.tasks.Upsample`, :class:`~pympisr.tasks.Accelerate`):
    optionally DCT-F with the true sigma on the measured (coarse) grid, where the noise
    is white with the known std, then the bicubic spline through the measured points
    or block centres (:meth:`pympisr.tasks.Task.baseline`); the SM comes back on the
    output grid with the task's output geometry. Inpainting: biharmonic inpainting of
    the missing positions, then optionally DCT-F of the filled component (DCT-F of a
    zero-filled component would spread the gap). ``dct_factor``: None (baseline alone),
    one factor or per-bin factors (:func:`dct_method`).

    Variants made with :meth:`with_factor` share one cached biharmonic result, so tuning
    the DCT-F factor of inpainting costs one biharmonic pass per SM.
    """

    classical = True

    def __init__(self, task: Any, dct_factor: float | Mapping[str, float] | None = None,
                 shared: dict[str, Any] | None = None) -> None:
        if task.name == "denoise":
            raise ValueError("denoising's classical method is dct_method")
        if dct_factor is not None:
            check_dct_factor(dct_factor)
        self.task, self.factor = task, dct_factor
        self.shared = {} if shared is None else shared
        self.name = baseline_label(task, dct_factor is not None)

    def with_factor(self, factor: float | Mapping[str, float]) -> TaskBaseline:
        """The same baseline with DCT-F threshold ``factor`` (shares the cache)."""
        return TaskBaseline(self.task, factor, self.shared)

    def _filled(self, comps: np.ndarray, std: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The biharmonic fill of ``comps`` ``(C, K, *grid)`` (cached by content)."""
        key = hashlib.sha1(comps.tobytes() + np.packbits(mask).tobytes()).hexdigest()
        if self.shared.get("key") != key:
            flat = comps.reshape(-1, *comps.shape[2:])
            filled = self.task.baseline(flat, std.reshape(-1), mask)
            self.shared.update(key=key, filled=np.asarray(filled).reshape(comps.shape))
        return self.shared["filled"]

    def __call__(self, sm: SystemMatrix, noise_std: np.ndarray,
                 mask: np.ndarray | None = None) -> SystemMatrix:
        from .tasks.base import with_grid_positions

        std = _check_noise_std(sm, noise_std)
        comps = sm.data[:, :, 0] if sm.dims == 2 else sm.data            # (C, K, *grid_in)
        c, k = comps.shape[:2]
        if self.task.needs_mask:
            if mask is None:
                raise ValueError(f"{self.name}: inpainting needs the mask (True = measured)")
            out = self._filled(comps, std, np.asarray(mask, dtype=bool).reshape(comps.shape[2:]))
            if self.factor is not None:
                out = dct_filter(out, std, self.factor, sm.dims)
            data = out[:, :, None] if sm.dims == 2 else out
            return sm.replace(data=np.ascontiguousarray(data, np.complex64))
        if self.factor is not None:
            comps = dct_filter(comps, std, self.factor, sm.dims)
        out = self.task.baseline(comps.reshape(c * k, *comps.shape[2:]), std.reshape(-1))
        out = out.reshape(c, k, *out.shape[1:])
        grid, fov, center = self.task.output_geometry(sm.grid, sm.fov, sm.center)
        data = np.ascontiguousarray(out[:, :, None] if sm.dims == 2 else out, np.complex64)
        restored = sm.replace(data=data, grid=grid, fov=fov, center=center)
        return restored.replace(metadata=with_grid_positions(sm.metadata, restored))


def restore_accepts_noise() -> bool:
    """Whether :func:`pympisr.restoration.restore.restore_system_matrix` takes ``noise=``."""
    from .restoration.restore import restore_system_matrix

    return "noise" in inspect.signature(restore_system_matrix).parameters


def pympisr_method(model: str | os.PathLike[str] | Any | None = None, *,
                   task: str = "denoise", scale: int | None = None,
                   **kwargs: Any) -> RestorationMethod:
    """pympisr restoration: ``restore_system_matrix(sm, task=task, model=model,
    noise=noise_std, mask=mask, scale=scale, progress=False, **kwargs)``.

    ``noise=`` is passed only if the installed ``restore_system_matrix`` has that
    parameter (:func:`restore_accepts_noise`); otherwise the restoration is blind.
    ``mask`` (inpainting) is the calibration's mask of measured positions; ``scale``
    (super-resolution) selects and checks the model's scale factor. A model name or
    path (None: the default model of the task) is loaded once per dimensionality (an
    ``OnnxRestorer`` is reused).
    """
    from .restoration.restore import restore_system_matrix
    from .restoration.runtime import OnnxRestorer

    with_noise = restore_accepts_noise()
    loaded: dict[int, Any] = {}

    def method(sm: SystemMatrix, noise_std: np.ndarray,
               mask: np.ndarray | None = None) -> SystemMatrix:
        std = _check_noise_std(sm, noise_std)
        chosen = model
        if not isinstance(model, OnnxRestorer):
            if sm.dims not in loaded:
                from .model_zoo import resolve_model

                loaded[sm.dims] = OnnxRestorer(resolve_model(model, task=task, dims=sm.dims,
                                                             scale=scale))
            chosen = loaded[sm.dims]
        extra = dict(kwargs)
        if with_noise:
            extra["noise"] = std
        if mask is not None:
            extra["mask"] = mask
        if scale is not None:
            extra["scale"] = scale
        return restore_system_matrix(sm, task=task, model=chosen, progress=False, **extra)

    method.passes_noise = with_noise  # type: ignore[attr-defined]
    return method


def protocol_dims(task: str | Any = "denoise", dims: int | None = None) -> int:
    """The dimensionality a protocol simulates: ``dims`` if given (2 or 3), else that of
    a Task object, else 2 (a task name)."""
    if dims is None:
        return 2 if isinstance(task, str) else int(task.dims)
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims!r}")
    return int(dims)


def protocol_task(task: str | Any = "denoise", scale: int | None = None,
                  dims: int = 2) -> Any:
    """The :class:`pympisr.tasks.Task` a protocol evaluates on ``dims``-D SMs (2 or 3): a
    task name (inpainting with the seed paper's masks,
    :func:`pympisr.evaluation.evaluation_task`; ``scale`` default 2 for
    super-resolution) or a Task object of that dimensionality (returned as is)."""
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims!r}")
    if not isinstance(task, str):
        if task.dims != dims:
            raise ValueError(f"this protocol simulates {dims}D SMs, not {task!r}")
        return task
    from .evaluation import evaluation_task

    return evaluation_task(task, dims, scale)


def default_methods(models: Sequence[str | None] = (None,), *, dct: bool = True,
                    task: str | Any = "denoise", scale: int | None = None,
                    dims: int | None = None) -> dict[str, RestorationMethod]:
    """The classical methods of ``task`` and pympisr models (:func:`model_label`; None =
    the default shipped model of the task and ``dims``, :func:`protocol_dims`).

    denoise: ``noisy``, ``DCT-F``; upsample / accelerate: ``bicubic`` and
    ``DCT-F+bicubic``; inpaint: ``noisy`` (the zero-filled measurement), ``biharmonic``
    and ``biharmonic+DCT-F`` (:class:`TaskBaseline`); the DCT-F entries with
    :data:`DEFAULT_DCT_FACTOR` (the calibration protocol tunes it per bin, the image
    protocol sets its own factors), left out when ``dct`` is False.
    """
    rules = protocol_task(task, scale, protocol_dims(task, dims))
    methods: dict[str, RestorationMethod] = {}
    if rules.grid_rule == "same":
        methods[NOISY] = noisy_method
    if rules.name == "denoise":
        if dct:
            methods[DCT] = dct_method(DEFAULT_DCT_FACTOR)
    else:
        plain = TaskBaseline(rules)
        methods[plain.name] = plain
        if dct:
            with_dct = plain.with_factor(DEFAULT_DCT_FACTOR)
            methods[with_dct.name] = with_dct
    factor = rules.scale_factor if rules.grid_rule != "same" else None
    for model in models:
        methods[model_label(model, task=rules.name, scale=factor, dims=rules.dims)] = \
            pympisr_method(model, task=rules.name, scale=factor)
    return methods


def model_label(model: str | os.PathLike[str] | None, *, task: str = "denoise",
                scale: int | None = None, dims: int = 2) -> str:
    """Column name of a pympisr model: the manifest's default name (for ``task``,
    ``dims`` and ``scale``), or the file stem."""
    if model is None:
        from .model_zoo import default_model

        try:
            return "pympisr:" + str(default_model(task, dims, scale=scale).entry["name"])
        except Exception:  # noqa: BLE001 - only a label
            return "pympisr"
    return "pympisr:" + Path(os.fspath(model)).stem


def call_method(method: RestorationMethod, sm: SystemMatrix, noise_std: np.ndarray,
                mask: np.ndarray | None) -> SystemMatrix:
    """``method(sm, noise_std)``, or ``method(sm, noise_std, mask)`` when there is an
    inpainting mask (bool ``(Nz, Ny, Nx)``, True = measured)."""
    return method(sm, noise_std) if mask is None else method(sm, noise_std, mask)


def _check_noise_std(sm: SystemMatrix, noise_std: np.ndarray) -> np.ndarray:
    std = np.asarray(noise_std, dtype=np.float64)
    if std.shape != sm.data.shape[:2]:
        raise ValueError(f"noise_std must be (C, K) = {sm.data.shape[:2]}, got {std.shape}")
    if not np.all(np.isfinite(std)) or np.any(std < 0):
        raise ValueError("noise_std must be finite and >= 0")
    return std


# ---------------------------------------------------------------------- noise floor
def real_noise_profile(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-(channel, frequency) noise std of a real MDF file: ``(frequencies (K,) Hz,
    std (C, K))`` in the file's units.

    From the background frames if the file has at least 2, else from all calibration
    positions (for an essentially empty calibration such as the DAQ bring-up file
    ``daq_systemMatrix_v2.0.mdf`` of ``../shared/data/real``). The std is
    ``sqrt(mean |x - mean x|^2 / 2)`` (per part) over frames/positions.
    """
    import pympisr

    sm = pympisr.load_system_matrix(path, bg_correction=False)
    if sm.background is not None and sm.background.shape[0] >= 2:
        frames = np.asarray(sm.background, np.complex128)                      # (E, C, K)
    else:
        c, k = sm.data.shape[:2]
        frames = np.moveaxis(sm.data.reshape(c, k, -1), -1, 0).astype(np.complex128)
        if frames.shape[0] < 2:
            raise ValueError(f"{path}: fewer than 2 frames or positions to estimate noise")
    dev = frames - frames.mean(axis=0, keepdims=True)
    return np.asarray(sm.frequencies, np.float64), np.sqrt(np.mean(np.abs(dev) ** 2, axis=0) / 2)


@dataclass(frozen=True)
class NoiseFloor:
    """One absolute noise floor per SM (module docstring, step 3).

    Attributes
    ----------
    fraction_range:
        ``(low, high)``: ``sigma_abs / max|S|`` is drawn log-uniformly in this range.
    profile:
        None (white: the same std for every component), or ``(frequencies (K_src,) Hz,
        std (C_src, K_src))`` from :func:`real_noise_profile`: the std of component
        ``(c, k)`` follows the source's std at the nearest positive source frequency
        (channel ``c mod C_src``), normalised to median 1 over the target components.
    source:
        Where the profile came from (a file name), for the report.
    """

    fraction_range: tuple[float, float] = (1e-4, 1e-2)
    profile: tuple[np.ndarray, np.ndarray] | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        low, high = (float(v) for v in self.fraction_range)
        if not (0 < low <= high and math.isfinite(high)):
            raise ValueError(f"fraction_range must satisfy 0 < low <= high, got "
                             f"{self.fraction_range}")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> NoiseFloor:
        """A floor shaped by the background of a real MDF file (:func:`real_noise_profile`)."""
        return cls(profile=real_noise_profile(path), source=os.fspath(path), **kwargs)

    @property
    def kind(self) -> str:
        return "white" if self.profile is None else f"real-profile ({self.source or 'array'})"

    def shape(self, frequencies: np.ndarray, channels: int) -> np.ndarray:
        """Relative std per component, float64 (channels, K), median 1 (all ones if white)."""
        freqs = np.asarray(frequencies, np.float64)
        if self.profile is None:
            return np.ones((channels, freqs.size))
        src_f, src_std = (np.asarray(a, np.float64) for a in self.profile)
        positive = np.flatnonzero(src_f > 0)
        nearest = positive[np.argmin(np.abs(freqs[:, None] - src_f[positive][None, :]), axis=1)]
        std = src_std[np.arange(channels) % src_std.shape[0]][:, nearest]
        median = float(np.median(std[std > 0])) if np.any(std > 0) else 1.0
        return np.maximum(std / median, 1e-3)

    def draw(self, sm: SystemMatrix, rng: np.random.Generator) -> tuple[float, np.ndarray]:
        """``(fraction, noise_std (C, K))`` for the clean SM ``sm``; ``noise_std`` is in
        the SM's units, ``fraction * max|S|`` times the shape."""
        return self.draw_level(float(np.abs(sm.data).max()), sm.frequencies,
                               sm.num_channels, rng)

    def draw_level(self, peak: float, frequencies: np.ndarray, channels: int,
                   rng: np.random.Generator) -> tuple[float, np.ndarray]:
        """``(fraction, noise_std (channels, K))`` for an SM with maximum magnitude
        ``peak`` on ``frequencies`` (K,) Hz: ``fraction * peak`` times the shape
        (:meth:`shape`), ``fraction`` log-uniform in :attr:`fraction_range`."""
        low, high = self.fraction_range
        fraction = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        return fraction, fraction * peak * self.shape(frequencies, channels)


def complex_noise(noise_std: np.ndarray, spatial: tuple[int, ...],
                  rng: np.random.Generator) -> np.ndarray:
    """Complex white Gaussian noise (C, K, *spatial), per-part std ``noise_std`` (C, K)."""
    std = np.asarray(noise_std, np.float64).reshape(*np.shape(noise_std), *[1] * len(spatial))
    shape = (*np.shape(noise_std), *spatial)
    return (std * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))).astype(
        np.complex64)


def mpifiles_snr(noisy: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Per-component SNR the MPIFiles way (DESIGN section 11), float32 (C, K).

    ``max_voxels |S_fg - mean(S_bg)| / mean |diff(S_bg)|`` with ``noisy`` (C, K, ...)
    the foreground (calibration positions) and ``background`` (E, C, K) empty frames.
    """
    bg = np.asarray(background, np.complex128)
    c, k = bg.shape[1:]
    fg = np.asarray(noisy).reshape(c, k, -1)
    signal = np.abs(fg - bg.mean(axis=0)[..., None]).max(axis=-1)
    noise = np.abs(np.diff(bg, axis=0)).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(noise > 0, signal / noise, np.inf).astype(np.float32)


# ---------------------------------------------------------------------- simulation
def effective_samples_per_fwhm(params: Any) -> float:
    """Mean over the planar axes (x, y; all three in 3D) of ``N_axis * FWHM_axis /
    FOV_axis`` with the 1D Langevin FWHM ``4.16 / (beta |G_axis|)``: the sampling the SM
    really has after the grid was clipped to its range."""
    from .simulation.parameters import FWHM_FACTOR

    axes = 2 if params.dims == 2 else 3
    fwhm = FWHM_FACTOR / (params.beta * np.abs(np.asarray(params.gradient)[:axes]))
    return float(np.mean(np.asarray(params.grid[:axes]) * fwhm / np.asarray(params.fov)[:axes]))


def spf_stratum(spf: float) -> str:
    """``"inside"`` (effective samples per FWHM <= 12, the training range) or ``"beyond"``."""
    return "inside" if spf <= TRAINING_SPF_MAX else "beyond"


def present_strata(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """The strata to report for ``records`` (each with a ``"stratum"``): ``"all"``, then
    ``"inside"`` and ``"beyond"`` where some record has them."""
    present = {r["stratum"] for r in records}
    return ["all"] + [s for s in ("inside", "beyond") if s in present]


def case_parameters(index: int, seed: int, spf_range: tuple[float, float], *,
                    grid_range: tuple[int, int] | None = None, dims: int = 2) -> Any:
    """Simulation parameters of ``dims``-D SM number ``index``
    (:func:`pympisr.simulation.parameters.sample_parameters` with the samples-per-FWHM
    range ``spf_range`` and the grid range per axis ``grid_range``, default
    :data:`GRID_RANGES`); the sampler seed is drawn from ``SeedSequence([seed, index])``."""
    from .simulation.parameters import sample_parameters

    dims = protocol_dims(dims=dims)
    grid_range = GRID_RANGES[dims] if grid_range is None else grid_range
    sampler_seed = int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])
    return sample_parameters(sampler_seed, dims=dims, ranges={
        "samples_per_fwhm": tuple(spf_range), "grid": tuple(grid_range)})


def simulate_clean(index: int, seed: int, spf_range: tuple[float, float], *,
                   grid_range: tuple[int, int] | None = None, dims: int = 2
                   ) -> tuple[SystemMatrix, Any]:
    """Clean ``dims``-D SM number ``index`` (all frequencies) and its parameters
    (:func:`case_parameters`). A 3D SM holds the full band (4.4 GB for 19^3 voxels);
    :func:`simulate_kept` simulates only the components the protocol keeps."""
    from .simulation.system_matrix import simulate_system_matrix

    params = case_parameters(index, seed, spf_range, grid_range=grid_range, dims=dims)
    return simulate_system_matrix(params), params


def simulate_kept(index: int, seed: int, spf_range: tuple[float, float], *,
                  grid_range: tuple[int, int] | None = None, dims: int = 2,
                  max_components: int | None = None
                  ) -> tuple[SystemMatrix, np.ndarray, float, Any]:
    """The components of SM ``index`` that carry signal (module docstring, step 2).

    Returns ``(sm, pairs, peak, params)``: ``sm`` the clean SM on the frequency bins of
    the kept components (3, K_sel, Nz, Ny, Nx); ``pairs`` (M, 2) ``(channel, position in
    K_sel)`` of the kept components; ``peak`` max|S| for the noise floor (2D: over all
    components; 3D: over the kept ones, the full band is never simulated at once);
    ``params`` the simulation parameters. ``max_components`` default
    :data:`MAX_COMPONENTS` of ``dims``.
    """
    from .simulation.generate import SelectionRule
    from .simulation.system_matrix import component_energies, simulate_system_matrix

    dims = protocol_dims(dims=dims)
    rule = SelectionRule(max_components=MAX_COMPONENTS[dims] if max_components is None
                         else max_components)
    if dims == 2:
        full, params = simulate_clean(index, seed, spf_range, grid_range=grid_range, dims=2)
        flat = full.data.reshape(full.num_channels, full.num_frequencies, -1)
        energy = np.einsum("ckn,ckn->ck", flat.real, flat.real, dtype=np.float64)
        energy += np.einsum("ckn,ckn->ck", flat.imag, flat.imag, dtype=np.float64)
        kept = rule.select(energy)                                        # (M, 2) (c, bin)
        bins = np.unique(kept[:, 1])
        sm = full.replace(data=full.data[:, bins], frequencies=full.frequencies[bins],
                          frequency_indices=full.frequency_indices[bins])
        peak = float(np.abs(full.data).max())
    else:
        params = case_parameters(index, seed, spf_range, grid_range=grid_range, dims=3)
        stride = 2 if max(params.grid) > ENERGY_STRIDE_ABOVE else 1
        kept = rule.select(component_energies(params, voxel_stride=stride))
        bins = np.unique(kept[:, 1])
        sm = simulate_system_matrix(params, frequencies=bins)
        peak = float(np.abs(sm.data).max())
    pairs = np.stack([kept[:, 0], np.searchsorted(bins, kept[:, 1])], axis=1)
    return sm, pairs, peak, params


def case_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """Generator of random stream ``stream`` (0 noise floor, 1 SM noise, 2 background,
    3 measurement) of SM ``index``."""
    return np.random.default_rng([int(seed), int(index), 1000 + int(stream)])


def spf_range_of(index: int, spf_ranges: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The samples-per-FWHM range of SM ``index``: the ranges are used in turn."""
    return tuple(spf_ranges[index % len(spf_ranges)])  # type: ignore[return-value]


def fine_reference(task: Any, sm: SystemMatrix) -> SystemMatrix:
    """The part of the fine SM ``sm`` that a degraded calibration covers, with its
    geometry: the data cropped to :meth:`pympisr.tasks.Task.training_crop` (the first
    ``s (n - 1) + 1`` / ``n s`` points per axis; unchanged for grid-keeping tasks) and
    grid, FOV and centre of ``output_geometry(input_geometry(...))``, i.e. exactly the
    grid a restoration of ``task.degrade_system_matrix(sm)`` is returned on."""
    if task.grid_rule == "same":
        return sm
    from .tasks.base import with_grid_positions

    crop = task.training_crop(sm.data.shape[-task.dims:])
    data = sm.data[(Ellipsis, *(slice(0, n) for n in crop))]
    grid, fov, center = task.output_geometry(*task.input_geometry(sm.grid, sm.fov, sm.center))
    cropped = sm.replace(data=np.ascontiguousarray(data), grid=grid, fov=fov, center=center)
    return cropped.replace(metadata=with_grid_positions(sm.metadata, cropped))


def case_mask(task: Any, sm: SystemMatrix, seed: int, index: int) -> np.ndarray | None:
    """Inpainting: the corrupted positions of SM ``index``, one seed-paper mask (a
    contiguous block of 10 % of the positions in robot order,
    :class:`pympisr.degradations.InpaintingMask`) for all components, bool
    ``(Nz, Ny, Nx)`` (True = measured), from random stream 4 (:func:`case_rng`); None
    for the other tasks."""
    if not task.needs_mask:
        return None
    spatial = sm.data.shape[-task.dims:]
    mask = np.asarray(task.draw_mask(spatial, case_rng(seed, index, 4)), dtype=bool)
    return mask.reshape(sm.data.shape[2:])


def measure(task: Any, clean: SystemMatrix, noise_std: np.ndarray, mask: np.ndarray | None,
            rng: np.random.Generator) -> SystemMatrix:
    """The calibration a degraded measurement of the clean fine SM ``clean`` gives:
    ``A S + N`` (:meth:`pympisr.tasks.Task.degrade_system_matrix`, with the grid and
    geometry of the coarse calibration), complex white noise of per-part std
    ``noise_std`` (C, K) on every measured sample, zero at missing positions
    (inpainting). Denoising: ``S + N`` exactly as before the protocols covered the other
    tasks (same random numbers)."""
    degraded = clean
    if task.grid_rule != "same" or task.needs_mask:
        degraded = task.degrade_system_matrix(clean, mask)
    data = degraded.data + complex_noise(noise_std, degraded.spatial_shape, rng)
    if mask is not None:
        data = data * mask
    return degraded.replace(data=np.asarray(data, np.complex64))


@dataclass
class ProtocolCase:
    """What every simulated SM of the protocols has (calibration and image protocol).

    ``index``: the SM's number; ``params``: its simulation parameters; ``clean``: the
    clean SM on the fine grid the methods restore to (:func:`fine_reference`);
    ``noisy``: the measured SM handed to the methods (denoising: ``clean`` plus the
    noise floor; super-resolution: the coarse calibration plus the floor; inpainting:
    plus the floor, zero at the corrupted positions, :func:`measure`); ``noise_std``:
    true per-part noise std per kept (channel, frequency); ``fraction``: the floor's
    fraction of max|S|; ``spf_range``: the samples-per-FWHM range drawn from; ``spf``:
    the effective samples per FWHM (:func:`effective_samples_per_fwhm`); ``mask``
    (inpainting): bool ``(Nz, Ny, Nx)``, True = measured (:func:`case_mask`).
    """

    index: int
    params: Any
    clean: SystemMatrix
    noisy: SystemMatrix
    noise_std: np.ndarray
    fraction: float
    spf_range: tuple[float, float]
    spf: float
    mask: np.ndarray | None = field(default=None, kw_only=True)

    @property
    def stratum(self) -> str:
        """``"inside"`` or ``"beyond"`` the training range (:func:`spf_stratum`)."""
        return spf_stratum(self.spf)


@dataclass
class CalibrationCase(ProtocolCase):
    """One simulated calibration of the protocol.

    ``clean`` (3, K_sel, Nz, Ny, Nx) / ``noisy`` (3, K_sel, nz, ny, nx) (``Nz = nz = 1``
    in 2D): SMs on the frequency bins of the kept components; ``pairs`` (M, 2)
    ``(channel, position in K_sel)`` of the kept components; ``noise_std`` (3, K_sel)
    true per-part std; ``relative_noise`` (M,): ``noise_std`` over the clean fine
    component's max |S|.
    """

    pairs: np.ndarray
    relative_noise: np.ndarray


def simulate_case(index: int, seed: int, spf_range: tuple[float, float],
                  floor: NoiseFloor | None = None, *,
                  grid_range: tuple[int, int] | None = None, task: str | Any = "denoise",
                  scale: int | None = None, dims: int | None = None,
                  max_components: int | None = None) -> CalibrationCase:
    """Simulate ``dims``-D SM ``index`` (:func:`protocol_dims`: default the task's, or 2),
    keep its signal components (:func:`simulate_kept`), measure them as ``task``
    (:func:`protocol_task`) would and add the noise floor (module docstring)."""
    from .physics.fields import rfft_frequencies

    dims = protocol_dims(task, dims)
    rules = protocol_task(task, scale, dims)
    floor = floor or NoiseFloor()
    kept, pairs, peak, params = simulate_kept(index, seed, spf_range, grid_range=grid_range,
                                              dims=dims, max_components=max_components)
    clean = fine_reference(rules, kept)
    # the floor's shape is normalised over the full band, as for the SM a scanner measures
    fraction, noise_std = floor.draw_level(peak, rfft_frequencies(dims), kept.num_channels,
                                           case_rng(seed, index, 0))
    noise_std = noise_std[:, kept.frequency_indices]
    mask = case_mask(rules, clean, seed, index)
    noisy = measure(rules, clean, noise_std, mask, case_rng(seed, index, 1))
    background = complex_noise(noise_std, (20,), case_rng(seed, index, 2))   # (C, K, E)
    noisy.snr = mpifiles_snr(noisy.data, np.moveaxis(background, -1, 0))
    peaks = np.abs(clean.data[pairs[:, 0], pairs[:, 1]]).reshape(len(pairs), -1).max(axis=-1)
    relative = noise_std[pairs[:, 0], pairs[:, 1]] / peaks
    return CalibrationCase(index=index, params=params, clean=clean, noisy=noisy, pairs=pairs,
                           noise_std=noise_std, relative_noise=relative, fraction=fraction,
                           spf_range=tuple(spf_range), spf=effective_samples_per_fwhm(params),
                           mask=mask)


def relative_noise_bin(relative: np.ndarray | float) -> np.ndarray:
    """Bin index (0 .. 6, into :data:`BIN_LABELS`) of relative noise values; each bin
    includes its lower edge (0.003 falls into ``0.003-0.01``)."""
    return np.searchsorted(np.asarray(BIN_EDGES), np.asarray(relative, np.float64), side="right")


# ---------------------------------------------------------------------- evaluation
@dataclass
class CalibrationResult:
    """Per-component records, DCT-F tuning and timings of :func:`evaluate_calibration`.

    ``records``: one dict per (SM, kept component, method) with ``sm``, ``stratum``,
    ``spf``, ``grid``, ``fraction``, ``channel``, ``frequency_index``, ``relative_noise``,
    ``bin``, ``method`` and the ``metrics`` (``psnr`` dB, ``ssim``; inpainting also
    ``psnr_masked``, ``ssim_masked`` over the corrupted positions).
    ``tuning[method][bin][factor]`` = mean PSNR of a method with a tuned DCT-F factor,
    ``factors[method][bin]`` = the chosen factor. ``references``: the classical methods
    the acceptance rule compares with. ``cases``: per-SM facts.
    """

    records: list[dict[str, Any]]
    methods: list[str]
    tuning: dict[str, dict[str, dict[float, float]]]
    factors: dict[str, dict[str, float]]
    cases: list[dict[str, Any]]
    seconds: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)
    references: list[str] = field(default_factory=lambda: [NOISY, DCT])
    task: str = "denoise"
    metrics: tuple[str, ...] = METRICS

    @property
    def dct_factor(self) -> dict[str, float]:
        """Per-bin DCT-F factor chosen for ``DCT-F`` (other tasks: for the first tuned
        method, e.g. ``DCT-F+bicubic``); empty if nothing was tuned."""
        return self.factors.get(DCT) or next(iter(self.factors.values()), {})

    @property
    def dct_tuning(self) -> dict[str, dict[float, float]]:
        """Mean PSNR per bin and factor of the method of :attr:`dct_factor`."""
        return self.tuning.get(DCT) or next(iter(self.tuning.values()), {})

    def strata(self) -> list[str]:
        """Strata present in the records (:func:`present_strata`)."""
        return present_strata(self.records)

    def summary(self) -> list[dict[str, Any]]:
        """Mean and 95 % CI of every metric and the count per (stratum, bin, method)."""
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for r in self.records:
            for stratum in ("all", r["stratum"]):
                groups.setdefault((stratum, r["bin"], r["method"]), []).append(r)
        rows = []
        for stratum in self.strata():
            for label in BIN_LABELS:
                for method in self.methods:
                    group = groups.get((stratum, label, method))
                    if not group:
                        continue
                    row: dict[str, Any] = {"stratum": stratum, "bin": label, "method": method,
                                           "n": len(group)}
                    for metric in self.metrics:
                        mean, low, high = mean_ci([g[metric] for g in group])
                        row.update({metric: mean, f"{metric}_low": low, f"{metric}_high": high})
                    if method in self.factors:
                        row["dct_factor"] = self.factors[method].get(label)
                    rows.append(row)
        return rows

    def acceptance(self) -> list[dict[str, Any]]:
        """Per (stratum, bin, method under test): the mean-PSNR margin over the best
        classical reference (:attr:`references`; denoising: max(noisy, DCT-F), DESIGN
        section 12) and whether it is >= -0.3 dB; inpainting also ``margin_masked_db``
        over the corrupted positions, and both must pass."""
        table = {(r["stratum"], r["bin"], r["method"]): r for r in self.summary()}
        judged = ["psnr"] + (["psnr_masked"] if "psnr_masked" in self.metrics else [])
        out = []
        for (stratum, label, method), row in table.items():
            if method in self.references or method == CLEAN:
                continue
            refs = [table[(stratum, label, m)] for m in self.references
                    if (stratum, label, m) in table]
            if not refs:
                continue
            entry: dict[str, Any] = {"stratum": stratum, "bin": label, "method": method,
                                     "n": row["n"]}
            for metric in judged:
                key = "margin_db" if metric == "psnr" else "margin_masked_db"
                entry[key] = row[metric] - max(r[metric] for r in refs)
            entry["passes"] = all(entry[k] >= -ACCEPT_TOLERANCE_DB for k in entry
                                  if k.startswith("margin"))
            out.append(entry)
        return out


def kept_images(data: np.ndarray, pairs: np.ndarray, dims: int) -> np.ndarray:
    """The kept components ``pairs`` (M, 2) ``(channel, frequency position)`` of SM data
    ``(C, K, Nz, Ny, Nx)`` as images: ``(M, Ny, Nx)`` in 2D (the ``Nz = 1`` axis
    dropped), ``(M, Nz, Ny, Nx)`` in 3D."""
    comps = data[pairs[:, 0], pairs[:, 1]]
    return comps[:, 0] if dims == 2 else comps


def _scores(out: np.ndarray, clean: np.ndarray, missing: np.ndarray | None
            ) -> dict[str, float]:
    scores = {"psnr": psnr(out, clean), "ssim": ssim(out, clean)}
    if missing is not None:
        from .evaluation import masked_scores

        masked = masked_scores(out, clean, missing)
        scores.update(psnr_masked=masked["psnr_masked"], ssim_masked=masked["ssim_masked"])
    return scores


def evaluate_calibration(num_sms: int = 12, *, seed: int = 0,
                         methods: Mapping[str, RestorationMethod] | None = None,
                         spf_ranges: Sequence[tuple[float, float]] = DEFAULT_SPF_RANGES,
                         floor: NoiseFloor | None = None,
                         dct_factors: Sequence[float] | None = DCT_FACTORS,
                         grid_range: tuple[int, int] | None = None,
                         task: str | Any = "denoise", scale: int | None = None,
                         dims: int | None = None, max_components: int | None = None,
                         progress: bool = True) -> CalibrationResult:
    """Run the calibration protocol (module docstring) on ``num_sms`` simulated SMs.

    Parameters
    ----------
    methods:
        ``name -> method(sm, noise_std[, mask])`` (:data:`RestorationMethod`); default
        :func:`default_methods` of the task (classical methods, shipped default model).
        For grid-keeping tasks a method named ``"noisy"`` is always evaluated. A method
        with a DCT-F threshold (:func:`dct_variant`: :func:`dct_method`,
        :class:`TaskBaseline` with DCT-F, any entry named ``"DCT-F"``) is evaluated with
        every factor of ``dct_factors`` and, per bin, the best mean PSNR is reported (pass
        ``dct_factors=None`` to evaluate the given factor as is). Methods with a true
        ``classical`` attribute are the references of the acceptance rule.
    spf_ranges:
        Samples-per-FWHM ranges used in turn by SM 0, 1, 2, ...
    floor:
        The noise floor (default :class:`NoiseFloor()`: white, fraction 1e-4 .. 1e-2).
    grid_range:
        Grid size range per axis of the simulated SMs (default :data:`GRID_RANGES`:
        (12, 44) in 2D, (10, 19) in 3D).
    task, scale:
        The restoration task (:func:`protocol_task`): ``"denoise"``, ``"upsample"``,
        ``"accelerate"`` (``scale`` default 2) or ``"inpaint"``, or a Task object.
    dims:
        2 or 3: the dimensionality of the simulated SMs (default: a Task object's, else
        2; :func:`protocol_dims`). The default methods then use the shipped models of
        that dimensionality.
    max_components:
        Kept components per SM (default :data:`MAX_COMPONENTS`: 400 in 2D, 300 in 3D).
    """
    from tqdm.auto import tqdm

    if num_sms < 1:
        raise ValueError(f"num_sms must be >= 1, got {num_sms}")
    dims = protocol_dims(task, dims)
    rules = protocol_task(task, scale, dims)
    grid_range = GRID_RANGES[dims] if grid_range is None else tuple(grid_range)
    max_components = MAX_COMPONENTS[dims] if max_components is None else int(max_components)
    floor = floor or NoiseFloor()
    methods = dict(default_methods(task=rules) if methods is None else methods)
    if rules.grid_rule == "same":
        methods = {NOISY: methods.pop(NOISY, noisy_method), **methods}
    factors = None if dct_factors is None else [float(f) for f in dct_factors]
    if factors is not None and not factors:
        raise ValueError("dct_factors must not be empty")
    variants = {} if factors is None else {name: dct_variant(name, method)
                                           for name, method in methods.items()}
    tuned = {name: make for name, make in variants.items() if make is not None}
    names = list(methods)
    references = [n for n in names if n == NOISY or n in tuned
                  or getattr(methods[n], "classical", False)]
    metrics = METRICS + (MASKED_METRICS if rules.needs_mask else ())
    seconds = {name: 0.0 for name in names}
    records: list[dict[str, Any]] = []
    tuning_rows: list[dict[str, Any]] = []      # tuned methods per factor, per component
    cases: list[dict[str, Any]] = []
    for i in tqdm(range(num_sms), desc=f"calibration protocol ({rules.name}, {dims}D)",
                  unit="SM", disable=not progress):
        case = simulate_case(i, seed, spf_range_of(i, spf_ranges), floor, grid_range=grid_range,
                             task=rules, max_components=max_components)
        bins = relative_noise_bin(case.relative_noise)
        clean = kept_images(case.clean.data, case.pairs, dims)        # (M, [Nz,] Ny, Nx)
        missing = None if case.mask is None else ~case.mask.reshape(clean.shape[1:])
        base = [{"sm": i, "stratum": case.stratum, "spf": round(case.spf, 3),
                 "grid": "x".join(map(str, case.clean.grid[:dims])),
                 "fraction": case.fraction, "channel": int(c),
                 "frequency_index": int(case.clean.frequency_indices[k]),
                 "relative_noise": float(rel), "bin": BIN_LABELS[int(b)]}
                for (c, k), rel, b in zip(case.pairs, case.relative_noise, bins)]
        outputs: list[tuple[str, float | None, np.ndarray]] = []
        for name, method in methods.items():
            variants = [(None, method)] if name not in tuned else [
                (f, tuned[name](f)) for f in factors]  # type: ignore[union-attr]
            for factor, run in variants:
                tic = time.perf_counter()
                restored = call_method(run, case.noisy, case.noise_std, case.mask)
                seconds[name] += (time.perf_counter() - tic) / len(variants)
                outputs.append((name, factor, restored.data))
        for name, factor, data in outputs:
            if data.shape != case.clean.data.shape:
                raise ValueError(f"method {name!r} returned shape {data.shape}, expected "
                                 f"{case.clean.data.shape} (the clean fine SM)")
            comps = kept_images(data, case.pairs, dims)
            for j, row in enumerate(base):
                scores = _scores(comps[j], clean[j], missing)
                if factor is None:
                    records.append({**row, "method": name, **scores})
                else:
                    tuning_rows.append({**row, "method": name, **scores, "factor": factor})
        cases.append({"sm": i, "grid": list(case.clean.grid[:dims]),
                      "measured_grid": list(case.noisy.grid[:dims]), "spf": case.spf,
                      "spf_sampled": float(case.params.extra.get("samples_per_fwhm", math.nan)),
                      "spf_range": list(case.spf_range), "stratum": case.stratum,
                      "floor_fraction": case.fraction, "kept_components": int(len(base)),
                      "missing_positions": 0 if missing is None else int(missing.sum()),
                      "relative_noise_min": float(case.relative_noise.min()),
                      "relative_noise_max": float(case.relative_noise.max())})
    tuning: dict[str, dict[str, dict[float, float]]] = {}
    chosen: dict[str, dict[str, float]] = {}
    for name in tuned:
        tuning[name], chosen[name] = {}, {}
        for label in BIN_LABELS:
            rows = [t for t in tuning_rows if t["bin"] == label and t["method"] == name]
            if not rows:
                continue
            tuning[name][label] = {f: float(np.mean([t["psnr"] for t in rows
                                                     if t["factor"] == f]))
                                   for f in factors}  # type: ignore[union-attr]
            best = max(factors, key=lambda f: tuning[name][label][f])  # type: ignore[arg-type]
            chosen[name][label] = best
            records.extend({k: v for k, v in t.items() if k != "factor"}
                           for t in rows if t["factor"] == best)
    settings = {"task": rules.name, "scale_factor": rules.scale_factor, "dims": dims,
                "num_sms": num_sms, "seed": seed, "spf_ranges": [list(r) for r in spf_ranges],
                "grid_range": list(grid_range), "max_components": max_components,
                "floor": floor.kind,
                "floor_fraction_range": list(floor.fraction_range),
                "dct_factors": factors if tuned else None, "tuned": list(tuned),
                "references": references,
                "restore_gets_noise": restore_accepts_noise()}
    if rules.needs_mask:
        settings["mask"] = (f"one seed-paper mask per SM: a contiguous block of "
                            f"{rules.masks.ratio[0]:g} of the positions in robot order")
    return CalibrationResult(records, names, tuning, chosen, cases, seconds, settings,
                             references, rules.name, metrics)


# ---------------------------------------------------------------------- reporting
def _fmt(row: Mapping[str, Any], metric: str, digits: int) -> str:
    mean, low, high = row[metric], row[f"{metric}_low"], row[f"{metric}_high"]
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {(high - low) / 2:.{digits}f}"


def markdown_tables(result: CalibrationResult) -> str:
    """One table per stratum (inpainting: also one over the corrupted positions): rows =
    relative-noise bins, columns = methods, cells ``PSNR ± CI / SSIM ± CI``; then the
    tuned DCT-F factors and the acceptance check."""
    summary = result.summary()
    regions = [("", "")] + ([("_masked", ", corrupted positions only")]
                            if "psnr_masked" in result.metrics else [])
    task = result.task
    scale = result.settings.get("scale_factor", 1)
    label = task if task in ("denoise", "inpaint") else f"{task} x{scale}"
    label += f", {result.settings.get('dims', 2)}D"
    blocks = []
    for stratum in result.strata():
        rows = {(r["bin"], r["method"]): r for r in summary if r["stratum"] == stratum}
        sms = len({r["sm"] for r in result.records if stratum in ("all", r["stratum"])})
        title = {"all": "All SMs", "inside": "Inside the training range (samples/FWHM <= 12)",
                 "beyond": "Beyond the training range (samples/FWHM > 12)"}[stratum]
        for suffix, where in regions:
            lines = [f"**Calibration protocol ({label}): {title}{where}** ({sms} SMs; PSNR dB "
                     "/ SSIM against the clean fine SM, mean ± 95% CI)", "",
                     "| rel. noise | n | " + " | ".join(result.methods) + " |",
                     "|---" * (len(result.methods) + 2) + "|"]
            for bin_label in BIN_LABELS:
                cells = [f"{_fmt(rows[(bin_label, m)], 'psnr' + suffix, 2)} / "
                         f"{_fmt(rows[(bin_label, m)], 'ssim' + suffix, 3)}"
                         if (bin_label, m) in rows else "" for m in result.methods]
                n = max((rows[(bin_label, m)]["n"] for m in result.methods
                         if (bin_label, m) in rows), default=0)
                if n:
                    lines.append(f"| {bin_label} | {n} | " + " | ".join(cells) + " |")
            blocks.append("\n".join(lines))
    for method, chosen in result.factors.items():
        if chosen:
            blocks.append(f"{method}: DCT-F threshold factor per bin (oracle-tuned on these "
                          f"data, grid {result.settings.get('dct_factors')}): "
                          + ", ".join(f"{b}: {f:g}" for b, f in chosen.items()))
    acc = [a for a in result.acceptance() if a["stratum"] == "all"]
    if acc:
        masked = "margin_masked_db" in acc[0]
        refs = ", ".join(result.references)
        lines = [f"**Acceptance** (mean PSNR minus max({refs})"
                 + ("; whole component / corrupted positions" if masked else "")
                 + f"; pass if >= -{ACCEPT_TOLERANCE_DB:g} dB)", "",
                 "| method | " + " | ".join(BIN_LABELS) + " |",
                 "|---" * (len(BIN_LABELS) + 1) + "|"]
        for method in dict.fromkeys(a["method"] for a in acc):
            by_bin = {a["bin"]: a for a in acc if a["method"] == method}
            cells = []
            for b in BIN_LABELS:
                if b not in by_bin:
                    cells.append("")
                    continue
                margin = f"{by_bin[b]['margin_db']:+.2f}"
                if masked:
                    margin += f" / {by_bin[b]['margin_masked_db']:+.2f}"
                cells.append(f"{margin} {'ok' if by_bin[b]['passes'] else 'FAIL'}")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    count = len({(r["sm"], r["channel"], r["frequency_index"]) for r in result.records})
    timing = ", ".join(f"{name} {1e3 * t / max(count, 1):.2f} ms"
                       for name, t in result.seconds.items() if name != NOISY)
    receives = "receives" if result.settings.get("restore_gets_noise") else "does NOT receive"
    mask = f" Inpainting mask: {result.settings['mask']}." if "mask" in result.settings else ""
    blocks.append(f"Noise floor: {result.settings.get('floor')}, sigma_abs / max|S| log-uniform "
                  f"in {result.settings.get('floor_fraction_range')}, on the measured "
                  f"samples; restore_system_matrix {receives} the true noise std.{mask} "
                  f"Restoration time per component: {timing}.")
    return "\n\n".join(blocks) + "\n"


def plot_calibration(result: CalibrationResult, path: str | os.PathLike[str], *,
                     overwrite: bool = False) -> None:
    """PSNR and SSIM (mean ± 95 % CI) per relative-noise bin and method, all SMs."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    summary = [r for r in result.summary() if r["stratum"] == "all"]
    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    positions = {label: i for i, label in enumerate(BIN_LABELS)}
    for j, method in enumerate(result.methods):
        rows = [r for r in summary if r["method"] == method]
        x = np.array([positions[r["bin"]] for r in rows]) + 0.08 * (j - len(result.methods) / 2)
        for ax, metric in zip(axes, ("psnr", "ssim")):
            mean = np.array([r[metric] for r in rows])
            half = np.array([(r[f"{metric}_high"] - r[f"{metric}_low"]) / 2
                             if math.isfinite(r[f"{metric}_low"]) else 0.0 for r in rows])
            ax.errorbar(x, mean, yerr=half, marker="o", ms=4, capsize=2, label=method)
    for ax, label in zip(axes, ("PSNR (dB)", "SSIM")):
        ax.set_xticks(range(len(BIN_LABELS)), BIN_LABELS, rotation=30, fontsize=8)
        ax.set_xlabel("relative noise (std / component max |S|)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Calibration protocol ({result.task}): {len(result.cases)} simulated "
                 f"{result.settings.get('dims', 2)}D SMs, one noise floor per SM", fontsize=10)
    fig.tight_layout()
    with atomic_output(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def output_files(out_dir: str | os.PathLike[str], names: Mapping[str, str], *,
                 overwrite: bool = False) -> dict[str, Path]:
    """``{key: out_dir / name}`` for the file ``names`` of a protocol's results; raises
    FileExistsError (naming them all) if some exist and not ``overwrite``."""
    out = Path(out_dir)
    paths = {key: out / name for key, name in names.items()}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)}: exist; pass overwrite=True "
                              "(--overwrite) to replace")
    return paths


def calibration_output_paths(out_dir: str | os.PathLike[str], *, overwrite: bool = False
                             ) -> dict[str, Path]:
    """Files of :func:`write_calibration_results`; raises FileExistsError if one exists and
    not ``overwrite``."""
    return output_files(out_dir, {"per_component": "calibration_per_component.csv",
                                  "summary": "calibration_summary.csv",
                                  "table": "calibration_table.md",
                                  "figure": "calibration.png", "metrics": "metrics.json"},
                        overwrite=overwrite)


def write_csv(path: Path, rows: list[dict[str, Any]], overwrite: bool) -> None:
    """``rows`` as CSV (header from the union of the keys, in first-seen order)."""
    fields = list(dict.fromkeys(k for r in rows for k in r)) or ["empty"]
    with atomic_output(path, overwrite=overwrite) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)


def json_number(value: Any) -> Any:
    """JSON-safe number: None for NaN/inf, rounded floats."""
    if isinstance(value, (float, np.floating)):
        return round(float(value), 5) if math.isfinite(value) else None
    return value


def json_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` with every value made JSON-safe (:func:`json_number`)."""
    return {k: json_number(v) for k, v in row.items()}


def write_report(paths: Mapping[str, Path], tables: Mapping[str, list[dict[str, Any]]],
                 markdown: str, metrics: Mapping[str, Any], *, overwrite: bool) -> None:
    """Write a protocol's text results: each ``tables[key]`` as CSV to ``paths[key]``
    (:func:`write_csv`), ``markdown`` to ``paths["table"]`` and ``metrics`` as indented
    JSON to ``paths["metrics"]``, each atomically."""
    for key, rows in tables.items():
        write_csv(paths[key], rows, overwrite)
    with atomic_output(paths["table"], overwrite=overwrite) as tmp:
        tmp.write_text(markdown)
    with atomic_output(paths["metrics"], overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(metrics, indent=1))


def write_calibration_results(result: CalibrationResult, out_dir: str | os.PathLike[str], *,
                              overwrite: bool = False) -> dict[str, Path]:
    """Write per-component and summary CSV, the markdown tables, a figure and metrics.json."""
    paths = calibration_output_paths(out_dir, overwrite=overwrite)
    summary = result.summary()
    metrics = {
        "protocol": "calibration",
        "definition": "pympisr.metrics PSNR (dB) / SSIM of each kept component against the "
                      "clean one on the fine grid (unit-max normalised by the clean "
                      "component; inpainting also over the corrupted positions); bins by "
                      "relative noise = true per-part noise std / clean component max |S|; "
                      "mean and 95% t-interval",
        "settings": result.settings,
        "summary": [json_record(r) for r in summary],
        "dct_factor": result.dct_factor,
        "dct_factors": result.factors,
        "dct_tuning": {m: {b: {f"{f:g}": json_number(v) for f, v in t.items()}
                           for b, t in by_bin.items()} for m, by_bin in result.tuning.items()},
        "acceptance": [json_record(a) for a in result.acceptance()],
        "cases": [json_record(c) for c in result.cases],
        "seconds": json_record(result.seconds),
    }
    write_report(paths, {"per_component": result.records, "summary": summary},
                 markdown_tables(result), metrics, overwrite=overwrite)
    plot_calibration(result, paths["figure"], overwrite=overwrite)
    return paths
