"""Papers' evaluation protocol (DESIGN sections 7 and 12, P) for every restoration task.

For every evaluated frequency component of a simulated test split (streamed item by item
from a :class:`pympisr.datasets.ComponentStore`) and a task of :mod:`pympisr.tasks`:

1. the clean component is cropped to the task's fine grid
   (:meth:`pympisr.tasks.Task.training_crop`: multiples of ``s`` for upsampling,
   ``s (n - 1) + 1`` for accelerated calibration, unchanged otherwise) and scaled to
   unit maximum magnitude;
2. it is measured with the task's operator ``A`` (identity, ``s^d`` block mean, every
   ``s``-th point, or the inpainting mask; :meth:`~pympisr.tasks.Task.operator`), or
   with a method's own :class:`Measurement` (TranSMS' strided sample and the random
   sample of compressed sensing). Inpainting masks are the seed paper's: one contiguous
   block of 10 % of the positions in robot order
   (:class:`pympisr.degradations.InpaintingMask`), drawn from
   ``numpy.random.default_rng([seed, g, MASK_STREAM, tag])`` for component ``g``
   (global index in the split) and measurement ``tag`` (0 for the task's own), the
   same at every noise level;
3. for each noise level ``sigma``, complex noise whose real and imaginary parts each
   have standard deviation ``sigma`` is added to the measured samples; for the task's
   own measurement it comes from ``numpy.random.default_rng([seed, g, round(1e6 *
   sigma)])`` (:func:`noisy_component`; denoising results are unchanged from before the
   protocol covered every task), for another measurement the tag is appended; missing
   positions stay 0;
4. every method restores the batch (components of one system matrix share a grid) to
   the fine grid;
5. PSNR, SSIM and nRMSE (:mod:`pympisr.metrics`) of each restoration (and, where the
   grid is unchanged, of the noisy input ``"noisy"``) against the clean fine component;
   for inpainting also over the missing positions only (:func:`masked_scores`).

Results are summarised as mean and 95% t-confidence interval per (stratum, sigma,
method). Strata are ``all`` and the average grid size of the fine grid: 3D
``(Nx + Ny + Nz) / 3`` in the seed paper's bins ``(12, 18]``, ``(18, 24]``,
``(24, 30]`` (:data:`GRID_BINS`); 2D grids, which the papers do not stratify, in
:data:`GRID_BINS_2D` (not for denoising, whose table is the seed paper's unstratified
Table 2). 2D components (``Nz = 1``) are passed to methods as ``(B, Ny, Nx)``, 3D ones
as ``(B, Nz, Ny, Nx)``.

Tables (:func:`markdown_tables`): denoising like the seed paper's Table 2 (rows sigma,
columns methods); super-resolution like its Tables 3 and 4 (rows methods, columns grid
bin x sigma); inpainting like Table 5 (the same, once in the masked region and once over
the volume); :func:`nrmse_table` like TranSMS' Table III (nRMSE in % per scale factor,
noiseless / noisy).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_output
from .baselines.dct import DEFAULT_THRESHOLD, dct_denoise
from .degradations import complex_gaussian
from .errors import DatasetError, InvalidInputError
from .metrics import SSIM_DATA_RANGE, SSIM_SIGMA, mean_ci, nrmse, psnr, ssim
from .operators import LinearOperator, Masking, StridedSampling
from .restoration.safety import SafetyOptions

__all__ = [
    "BASELINES",
    "DEFAULT_SIGMAS",
    "GRID_BINS",
    "GRID_BINS_2D",
    "MASK_STREAM",
    "TASK_SIGMAS",
    "EvaluationResult",
    "Measurement",
    "Method",
    "baseline_methods",
    "cs_method",
    "dct_method",
    "evaluate",
    "evaluate_denoising",
    "evaluation_task",
    "grid_stratum",
    "markdown_tables",
    "masked_scores",
    "metrics_summary",
    "model_method",
    "noisy_component",
    "nrmse_table",
    "output_paths",
    "plot_examples",
    "save_image_grid",
    "store_dims",
    "strided_bicubic_method",
    "task_baseline_method",
    "write_results",
]

DEFAULT_SIGMAS: tuple[float, ...] = (0.0, 0.06, 0.10, 0.20, 0.30)
# Default noise levels per task. The seed paper reports denoising (Table 2) and inpainting
# (Table 5) over all five levels, super-resolution (Tables 3, 4) "with and without noise";
# its text lost the numbers, so the SR defaults take the two lower levels (compressed
# sensing, the slowest baseline, runs once per level).
TASK_SIGMAS: dict[str, tuple[float, ...]] = {
    "denoise": DEFAULT_SIGMAS, "inpaint": DEFAULT_SIGMAS,
    "upsample": (0.0, 0.06, 0.10), "accelerate": (0.0, 0.06, 0.10)}
GRID_BINS: tuple[tuple[int, int], ...] = ((12, 18), (18, 24), (24, 30))
GRID_BINS_2D: tuple[tuple[int, int], ...] = ((8, 20), (20, 32), (32, 48))
NOISY = "noisy"
METRICS = ("psnr", "ssim", "nrmse")
MASKED_METRICS = ("psnr_masked", "ssim_masked", "nrmse_masked")
MASK_STREAM = 7919  # rng stream of the masks (inpainting, random sampling)
PAPER_MASK_RATIO = 0.1  # seed paper Table 5: one contiguous block of 10 % of the grid
BASELINES = ("task", "strided", "cs-random", "cs")
"""Names of the classical methods :func:`baseline_methods` builds: the task's baseline,
TranSMS' strided bicubic (upsampling), compressed sensing from a random sample of the
fine grid (TranSMS' CS calibration) and compressed sensing with the task's operator."""


# ---------------------------------------------------------------------- measurements
@dataclass(frozen=True)
class Measurement:
    """How a method's input is measured from a clean fine component.

    ``operator(fine_shape, masks)`` is the linear operator (``masks``: bool
    ``(B, *fine_shape)`` from ``draw_mask``, or None); ``draw_mask(fine_shape, rng)``
    draws one component's mask (None: no mask). ``name`` tags the noise and mask
    streams (step 3 of the module docstring).
    """

    name: str
    operator: Callable[[tuple[int, ...], np.ndarray | None], LinearOperator]
    draw_mask: Callable[[tuple[int, ...], np.random.Generator], np.ndarray] | None = None

    @property
    def tag(self) -> int:
        """Stable stream number of this measurement (0 for the task's own)."""
        return 0 if self.name == "task" else zlib.crc32(self.name.encode())


def task_measurement(task: Any) -> Measurement:
    """The task's own measurement: its operator and, for inpainting, its masks."""
    return Measurement("task", task.operator, task.draw_mask if task.needs_mask else None)


@dataclass(frozen=True)
class Method:
    """A restoration method under evaluation.

    ``restore`` maps a complex batch ``y`` ``(B, *grid_in)`` of measured components
    (scaled with the unit-max clean components) to restored components ``(B, *fine)``
    on the task's fine grid. It is called ``restore(y)`` (blind), ``restore(y, sigma)``
    (``non_blind``), with ``mask=`` (bool ``(B, *grid_in)``, True = measured) added when
    ``takes_mask``. ``measurement``: the method's own :class:`Measurement` (None: the
    task's).
    """

    name: str
    restore: Callable[..., np.ndarray]
    non_blind: bool = False
    takes_mask: bool = False
    measurement: Measurement | None = None

    def __call__(self, y: np.ndarray, sigma: float, mask: np.ndarray | None = None,
                 expected: tuple[int, ...] | None = None) -> np.ndarray:
        """Run the method; ``expected`` is the output shape (default ``y.shape``)."""
        args = (y, sigma) if self.non_blind else (y,)
        out = np.asarray(self.restore(*args, mask=mask) if self.takes_mask
                         else self.restore(*args))
        want = y.shape if expected is None else tuple(expected)
        if out.shape != want:
            raise ValueError(f"method {self.name!r} returned shape {out.shape} for input "
                             f"{y.shape}; expected {want}")
        return out


def dct_method(threshold: float = DEFAULT_THRESHOLD) -> Method:
    """DCT-F with the true noise level (non-blind, as in the seed paper's simulations)."""
    def restore(noisy: np.ndarray, sigma: float) -> np.ndarray:
        return dct_denoise(noisy, sigma, threshold=threshold, dims=noisy.ndim - 1)

    return Method("DCT-F", restore, non_blind=True)


def evaluation_task(name: str, dims: int, scale_factor: int | None = None) -> Any:
    """The task ``name`` as the papers evaluate it: inpainting with the seed paper's
    masks (one contiguous block of 10 %), the others as :func:`pympisr.tasks.get_task`."""
    from .tasks import get_task

    if name == "inpaint":
        return get_task(name, dims, scale_factor, mask_ratio=PAPER_MASK_RATIO, num_masks=1)
    return get_task(name, dims, scale_factor)


def task_baseline_method(task: Any) -> Method:
    """The task's classical baseline (:meth:`pympisr.tasks.Task.baseline`) with the true
    sigma: DCT-F (tuned threshold), bicubic / tricubic spline through the measured
    points or block centres, biharmonic inpainting."""
    if task.name == "denoise":
        return dct_method()

    def restore(y: np.ndarray, sigma: float, mask: np.ndarray | None = None) -> np.ndarray:
        return task.baseline(y, np.full(y.shape[0], sigma), mask)

    return Method(task.baseline_name, restore, non_blind=True, takes_mask=task.needs_mask)


def strided_bicubic_method(task: Any) -> Method:
    """TranSMS' "strided bicubic" (IV-C 1): every ``s``-th fine position is measured
    with a small sample (not the block mean of the upsampling task) and the spline
    through those samples fills the ``n s`` grid (extrapolating the last ``s - 1``
    points). For accelerated calibration this is the task's own baseline."""
    from .baselines.interpolation import interpolate_upsample

    s = task.scale_factor

    def restore(y: np.ndarray, sigma: float) -> np.ndarray:
        fine = task.output_grid(y.shape[1:])
        return interpolate_upsample(y, s, dims=task.dims, mode="stride", target_shape=fine)

    measurement = Measurement("strided", lambda fine, masks: StridedSampling(s, fine))
    return Method(f"{task.baseline_name} (strided)", restore, non_blind=True,
                  measurement=measurement)


def cs_method(task: Any, *, random: bool, iterations: int | None = None) -> Method:
    """Compressed sensing (:func:`pympisr.baselines.compressed_sensing.cs_recover`, DCT
    sparsity, noise bound from the true sigma).

    ``random=True``: TranSMS' CS calibration (IV-C 2), a uniformly random sample of the
    fine grid with as many positions as the task's input grid measures; ``False``: the
    task's own measurement (block means, strided points or the inpainting mask)."""
    from .baselines.compressed_sensing import (DEFAULT_ITERATIONS, cs_recover,
                                               random_sampling_mask)

    steps = DEFAULT_ITERATIONS if iterations is None else int(iterations)
    if not random:
        def restore(y: np.ndarray, sigma: float, mask: np.ndarray | None = None) -> np.ndarray:
            fine = task.output_grid(y.shape[1:])
            return cs_recover(y, task.operator(fine, mask), sigma, fine, iterations=steps)

        return Method("CS", restore, non_blind=True, takes_mask=task.needs_mask)

    def draw(fine: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        fraction = np.prod(task.input_grid(fine)) / np.prod(fine)
        return random_sampling_mask(fine, float(fraction), rng)

    def restore_random(y: np.ndarray, sigma: float, mask: np.ndarray | None = None
                       ) -> np.ndarray:
        return cs_recover(y, Masking(mask, task.dims), sigma, y.shape[1:], iterations=steps)

    measurement = Measurement("random", lambda fine, masks: Masking(masks, task.dims), draw)
    return Method("CS (random)", restore_random, non_blind=True, takes_mask=True,
                  measurement=measurement)


def baseline_methods(task: Any, names: Sequence[str] | None = None, *,
                     cs_iterations: int | None = None) -> list[Method]:
    """The classical methods ``names`` (of :data:`BASELINES`) for ``task``; default: the
    task's baseline, plus strided bicubic and random-sample CS for upsampling and
    random-sample CS for accelerated calibration (TranSMS' Table III comparison)."""
    if names is None:
        names = {"upsample": ("task", "strided", "cs-random"),
                 "accelerate": ("task", "cs-random")}.get(task.name, ("task",))
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise InvalidInputError(f"unknown baselines {unknown}; choose from {', '.join(BASELINES)}")
    if "strided" in names and task.name != "upsample":
        raise InvalidInputError("the strided bicubic baseline belongs to the upsample task "
                                f"(for {task.name!r} it is the task's baseline or undefined)")
    if "cs-random" in names and task.grid_rule == "same":
        raise InvalidInputError(f"random-sample CS needs a super-resolution task, not "
                                f"{task.name!r}")
    build = {"task": lambda: task_baseline_method(task),
             "strided": lambda: strided_bicubic_method(task),
             "cs-random": lambda: cs_method(task, random=True, iterations=cs_iterations),
             "cs": lambda: cs_method(task, random=False, iterations=cs_iterations)}
    return [build[n]() for n in dict.fromkeys(names)]


def model_method(model: str | Path | Any, name: str | None = None, *,
                 safety: SafetyOptions | None = SafetyOptions(), task: str = "denoise",
                 scale_factor: int | None = None) -> Method:
    """An exported ONNX model as pympisr restores with it: the network (with the true
    noise level where it takes one; with the mask for inpainting) and, unless ``safety``
    is None, the safety step of :mod:`pympisr.restoration.safety` (non-blind: it gets the
    true sigma, as restore gets the noise level from the file).

    ``model`` is a shipped model name (its sha256 is verified), a path to an ``.onnx``
    file or a resolved model; it must be a model of ``task`` (and of ``scale_factor``
    where given). ``name`` defaults to the manifest name or the file stem (with
    `` (network)`` appended when ``safety`` is None).
    """
    from .restoration import OnnxRestorer
    from .restoration.restore import ComponentRestorer

    restorer = OnnxRestorer(model)
    if restorer.task != task:
        wanted = "a denoising" if task == "denoise" else f"a {task!r}"
        raise ValueError(f"{restorer.path}: a {restorer.task!r} model, not {wanted} model")
    if scale_factor is not None and restorer.scale_factor != scale_factor:
        raise ValueError(f"{restorer.path}: a x{restorer.scale_factor} model, not "
                         f"x{scale_factor}")
    run = ComponentRestorer(restorer, restorer.task_rules, safety)

    def restore(y: np.ndarray, sigma: float, mask: np.ndarray | None = None) -> np.ndarray:
        return run(y, np.full(y.shape[0], float(sigma)), mask)[0]

    default = restorer.entry["name"] if restorer.entry else restorer.path.stem
    return Method(name or (default if safety is not None else f"{default} (network)"),
                  restore, non_blind=True, takes_mask=restorer.task_rules.needs_mask)


# ---------------------------------------------------------------------- noise and metrics
def noisy_component(clean_unit: np.ndarray, sigma: float, seed: int, index: int,
                    tag: int = 0) -> np.ndarray:
    """``clean_unit`` plus the reproducible noise of component ``index`` at ``sigma``
    (``tag`` != 0: the stream of another measurement, module docstring step 3)."""
    key = [seed, index, int(round(sigma * 1e6))] + ([tag] if tag else [])
    noise = complex_gaussian(clean_unit.shape, sigma, np.random.default_rng(key))
    return (clean_unit + noise).astype(np.complex64)


def masked_scores(x: np.ndarray, ref: np.ndarray, missing: np.ndarray) -> dict[str, float]:
    """PSNR, SSIM and nRMSE of ``x`` against ``ref`` over the positions ``missing``
    (the seed paper's "masked region" of Table 5).

    Both images are divided by ``max|ref|`` over the whole component. PSNR: peak 1, MSE
    over the real and imaginary parts of the missing positions; nRMSE:
    ``||(x - ref)[missing]|| / ||ref[missing]||``; SSIM: the local SSIM map of the real
    and of the imaginary part (the pinned options of :func:`pympisr.metrics.ssim`,
    computed on the whole component so windows see the known surroundings) averaged over
    the missing positions, then over the two parts.
    """
    from skimage.metrics import structural_similarity

    x, ref = np.squeeze(np.asarray(x)), np.squeeze(np.asarray(ref))
    missing = np.squeeze(np.asarray(missing, dtype=bool))
    if not missing.any():
        raise ValueError("masked_scores: no missing position")
    peak = float(np.abs(ref).max())
    if not np.isfinite(peak) or peak == 0:
        raise ValueError("reference is all zero (or not finite): cannot normalise")
    xn, rn = x.astype(np.complex128) / peak, ref.astype(np.complex128) / peak
    diff = (xn - rn)[missing]
    mse = float(np.mean(np.abs(diff) ** 2)) / 2.0
    reference = float(np.linalg.norm(rn[missing]))
    smallest = min(xn.shape)
    win = min(11, smallest if smallest % 2 else smallest - 1)
    options = dict(gaussian_weights=True, sigma=SSIM_SIGMA, use_sample_covariance=False,
                   data_range=SSIM_DATA_RANGE, win_size=win, full=True)
    maps = [structural_similarity(a, b, **options)[1] for a, b in
            ((xn.real, rn.real), (xn.imag, rn.imag))]
    return {"psnr_masked": float("inf") if mse == 0 else float(10 * np.log10(1 / mse)),
            "ssim_masked": float(np.mean([m[missing].mean() for m in maps])),
            "nrmse_masked": float(np.linalg.norm(diff) / reference) if reference > 0
            else float("nan")}


def grid_stratum(grid: Sequence[int], *, two_d: bool = False) -> str | None:
    """Average-grid-size bin label of a grid ``(Nx, Ny, Nz)``: 3D in :data:`GRID_BINS`;
    2D (an axis of size 1) None, or with ``two_d`` the mean of the other two axes in
    :data:`GRID_BINS_2D`. None outside the bins."""
    if min(grid) <= 1:
        if not two_d:
            return None
        sizes, bins = [n for n in grid if n > 1], GRID_BINS_2D
    else:
        sizes, bins = list(grid), GRID_BINS
    if not sizes:
        return None
    average = float(np.mean(sizes))
    for low, high in bins:
        if low < average <= high:
            return f"({low},{high}]"
    return None


# ---------------------------------------------------------------------- results
@dataclass
class EvaluationResult:
    """Per-component metrics, their summary, timings and example images for a figure.

    ``task`` / ``scale_factor``: the evaluated task; ``metrics``: the metric keys of the
    records (inpainting adds the masked-region ones of :func:`masked_scores`).
    """

    records: list[dict[str, Any]]
    methods: list[str]
    sigmas: list[float]
    seconds: dict[str, float]
    examples: list[dict[str, Any]] = field(default_factory=list)
    figure_sigma: float = 0.0
    task: str = "denoise"
    scale_factor: int = 1
    metrics: tuple[str, ...] = METRICS

    def strata(self) -> list[str]:
        """``"all"`` followed by the grid-size bins present in the records."""
        present = {r["stratum"] for r in self.records if r["stratum"]}
        labels = [f"({lo},{hi}]" for lo, hi in (*GRID_BINS_2D, *GRID_BINS)]
        return ["all"] + [label for label in dict.fromkeys(labels) if label in present]

    def summary(self) -> list[dict[str, Any]]:
        """Mean and 95% CI of every metric per (stratum, sigma, method)."""
        groups: dict[tuple[str, float, str], list[dict[str, Any]]] = {}
        for r in self.records:
            for stratum in ("all", r["stratum"]):
                if stratum:
                    groups.setdefault((stratum, r["sigma"], r["method"]), []).append(r)
        rows = []
        for stratum in self.strata():
            for sigma in self.sigmas:
                for method in [NOISY, *self.methods]:
                    group = groups.get((stratum, sigma, method))
                    if not group:
                        continue
                    row: dict[str, Any] = {"stratum": stratum, "sigma": sigma,
                                           "method": method, "n": len(group)}
                    for metric in self.metrics:
                        mean, low, high = mean_ci([g[metric] for g in group])
                        row.update({metric: mean, f"{metric}_low": low, f"{metric}_high": high})
                    rows.append(row)
        return rows


def _selection(total: int, max_components: int | None) -> np.ndarray:
    """Global indices evaluated: all, or ``max_components`` spread evenly over the split."""
    if max_components is None or max_components >= total:
        return np.arange(total)
    if max_components < 1:
        raise ValueError(f"max_components must be >= 1, got {max_components}")
    return np.unique(np.linspace(0, total - 1, max_components).round().astype(np.int64))


def _unit_max(components: np.ndarray, path: Path, ids: np.ndarray,
              crop: tuple[int, ...] | None = None) -> np.ndarray:
    """Stored components ``(M, Nz, Ny, Nx)`` -> unit-max complex64 ``(M, [Nz,] Ny, Nx)``
    (the ``Nz`` axis is dropped for 2D grids), cropped to ``crop`` first if given."""
    clean = components[:, 0] if components.shape[1] == 1 else components
    if crop is not None:
        clean = clean[(slice(None), *[slice(0, n) for n in crop])]
    peaks = np.abs(clean).reshape(len(clean), -1).max(axis=1)
    if np.any(peaks == 0) or not np.all(np.isfinite(peaks)):
        bad = int(ids[np.argmax((peaks == 0) | ~np.isfinite(peaks))])
        raise ValueError(f"{path}: component {bad} is all zero or not finite")
    return (clean / peaks.reshape(-1, *[1] * (clean.ndim - 1))).astype(np.complex64)


def store_dims(store: Any) -> int:
    """2 or 3: the dimensionality of the components of ``store`` (from its first item)."""
    from .datasets import read_item

    grid = read_item(store.files[0], slice(0, 0)).grid
    return 2 if min(grid) <= 1 else 3


def _measure(clean: np.ndarray, ids: np.ndarray, measurement: Measurement,
             masks: np.ndarray | None, sigma: float, seed: int) -> np.ndarray:
    """Noisy measurements ``(B, *grid_in)`` of the unit-max clean batch (step 3)."""
    fine = clean.shape[1:]
    measured = measurement.operator(fine, masks).forward(clean)
    noisy = np.stack([noisy_component(m, sigma, seed, int(g), measurement.tag)
                      for m, g in zip(measured, ids)])
    return noisy * masks if masks is not None else noisy


def _draw_masks(measurement: Measurement, fine: tuple[int, ...], ids: np.ndarray,
                seed: int) -> np.ndarray | None:
    if measurement.draw_mask is None:
        return None
    return np.stack([measurement.draw_mask(fine, np.random.default_rng(
        [seed, int(g), MASK_STREAM, measurement.tag])) for g in ids]).astype(bool)


def evaluate(store: Any, methods: Mapping[str, Callable[[np.ndarray], np.ndarray]]
             | Iterable[Method], sigmas: Sequence[float] | None = None, *,
             task: Any = None, seed: int = 0, max_components: int | None = None,
             batch_size: int = 64, num_examples: int = 4, figure_sigma: float | None = None,
             progress: bool = True) -> EvaluationResult:
    """Evaluate restoration methods on the components of ``store`` (module docstring).

    Parameters
    ----------
    store
        A :class:`pympisr.datasets.ComponentStore` (its ``files``, ``offsets`` and
        ``len`` are used; items are read one at a time).
    methods
        :class:`Method` objects, or a mapping ``name -> restore(y) -> restored`` of blind
        methods.
    sigmas
        Noise levels relative to the unit-max clean component; default
        :data:`TASK_SIGMAS` of the task.
    task
        A :class:`pympisr.tasks.Task` (e.g. :func:`evaluation_task`); default denoising
        of the store's dimensionality. Its ``dims`` must match the store's.
    seed
        Noise and mask seed (see :func:`noisy_component`).
    max_components
        Evaluate at most this many components, spread evenly over the split.
    batch_size
        Components per read from disk and per call of a method.
    num_examples
        Components kept (input, restorations, clean) at ``figure_sigma`` for a figure.
    figure_sigma
        Noise level of the examples; default 0.10 if evaluated, else the largest sigma.
    """
    from .datasets import read_item
    from tqdm.auto import tqdm

    if task is None:
        task = evaluation_task("denoise", store_dims(store))
    method_list = ([Method(name, fn) for name, fn in methods.items()]
                   if isinstance(methods, Mapping) else list(methods))
    names = [m.name for m in method_list]
    if len(set(names)) != len(names) or NOISY in names:
        raise ValueError(f"method names must be unique and not {NOISY!r}: {names}")
    sigmas = [float(s) for s in (TASK_SIGMAS[task.name] if sigmas is None else sigmas)]
    if not sigmas or any(s < 0 or not math.isfinite(s) for s in sigmas):
        raise ValueError(f"sigmas must be finite and >= 0, got {sigmas}")
    if figure_sigma is None:
        figure_sigma = 0.10 if 0.10 in sigmas else max(sigmas)
    own = task_measurement(task)
    measurements = {own.name: own} | {m.measurement.name: m.measurement
                                      for m in method_list if m.measurement is not None}
    show_input = task.grid_rule == "same"  # the input is a candidate restoration
    metrics = METRICS + (MASKED_METRICS if task.needs_mask else ())
    selected = _selection(len(store), max_components)
    example_ids = set(selected[np.linspace(0, selected.size - 1, min(num_examples, selected.size))
                               .round().astype(int)].tolist()) if num_examples else set()
    offsets = np.asarray(store.offsets)
    item_of = np.searchsorted(offsets, selected, side="right") - 1

    records: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    seconds = {name: 0.0 for name in names}
    bar = tqdm(total=selected.size, desc=f"evaluate {task.name}", unit="comp",
               disable=not progress)
    for item_index in np.unique(item_of):
        item_ids = selected[item_of == item_index]
        path = store.files[item_index]
        for start in range(0, item_ids.size, batch_size):  # read batch by batch
            batch_ids = item_ids[start:start + batch_size]
            rows = batch_ids - offsets[item_index]
            item = read_item(path, rows)
            grid = tuple(int(g) for g in item.grid)
            spatial = item.components.shape[2:] if grid[2] == 1 else item.components.shape[1:]
            if len(spatial) != task.dims:
                raise DatasetError(f"{path}: {len(spatial)}D components, but the {task.name} "
                                   f"task was set up for {task.dims}D")
            fine = task.training_crop(spatial)
            if min(fine) < 3:
                raise DatasetError(f"{path}: grid {spatial} is too small for {task!r} "
                                   f"(fine grid {fine}; SSIM needs >= 3 points per axis)")
            fine_grid = tuple(reversed(fine)) + ((1,) if task.dims == 2 else ())
            stratum = grid_stratum(fine_grid, two_d=task.name != "denoise") or ""
            clean = _unit_max(item.components, path, batch_ids, fine)
            masks = {name: _draw_masks(m, fine, batch_ids, seed)
                     for name, m in measurements.items()}
            for sigma in sigmas:
                inputs = {name: _measure(clean, batch_ids, m, masks[name], sigma, seed)
                          for name, m in measurements.items()}
                outputs = {NOISY: inputs[own.name]} if show_input else {}
                for method in method_list:
                    source = method.measurement.name if method.measurement else own.name
                    tic = time.perf_counter()
                    outputs[method.name] = method(inputs[source], sigma, masks[source],
                                                  expected=clean.shape)
                    seconds[method.name] += time.perf_counter() - tic
                for j, g in enumerate(batch_ids):
                    base = {"component": int(g), "item": int(item_index), "row": int(rows[j]),
                            "channel": int(item.channel[j]),
                            "frequency_index": int(item.frequency_index[j]),
                            "grid": "x".join(map(str, grid)), "stratum": stratum,
                            "sigma": sigma}
                    for name, out in outputs.items():
                        record = {**base, "method": name, "psnr": psnr(out[j], clean[j]),
                                  "ssim": ssim(out[j], clean[j]),
                                  "nrmse": nrmse(out[j], clean[j])}
                        if task.needs_mask:
                            record.update(masked_scores(out[j], clean[j],
                                                        ~masks[own.name][j]))
                        records.append(record)
                    if sigma == figure_sigma and int(g) in example_ids:
                        images = {name: out[j] for name, out in outputs.items()}
                        examples.append({"component": int(g), "channel": base["channel"],
                                         "frequency_index": base["frequency_index"],
                                         "images": {NOISY: inputs[own.name][j]} | images
                                         | {"clean": clean[j]}})
            bar.update(batch_ids.size)
    bar.close()
    return EvaluationResult(records, names, sigmas, seconds, examples, figure_sigma,
                            task.name, task.scale_factor, metrics)


def evaluate_denoising(store: Any, methods: Mapping[str, Callable[[np.ndarray], np.ndarray]]
                       | Iterable[Method], sigmas: Sequence[float] = DEFAULT_SIGMAS, *,
                       seed: int = 0, max_components: int | None = None,
                       batch_size: int = 64, num_examples: int = 4,
                       figure_sigma: float | None = None,
                       progress: bool = True) -> EvaluationResult:
    """:func:`evaluate` with the denoising task (the seed paper's Table 2 protocol)."""
    return evaluate(store, methods, sigmas, task=evaluation_task("denoise", store_dims(store)),
                    seed=seed, max_components=max_components, batch_size=batch_size,
                    num_examples=num_examples, figure_sigma=figure_sigma, progress=progress)


# ---------------------------------------------------------------------- reporting
def _fmt(row: Mapping[str, Any], metric: str, digits: int) -> str:
    mean, low, high = row[metric], row[f"{metric}_low"], row[f"{metric}_high"]
    if not (math.isfinite(low) and math.isfinite(high)):  # one value, or PSNR inf
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {(high - low) / 2:.{digits}f}"


def _cell(row: Mapping[str, Any], suffix: str = "") -> str:
    return f"{_fmt(row, 'psnr' + suffix, 2)} / {_fmt(row, 'ssim' + suffix, 3)}"


def _timing(result: EvaluationResult) -> str:
    count = len({r["component"] for r in result.records})
    timing = ", ".join(f"{name} {1e3 * t / max(count * len(result.sigmas), 1):.2f} ms"
                       for name, t in result.seconds.items())
    return f"Restoration time per component: {timing}." if timing else ""


def _denoising_tables(result: EvaluationResult) -> list[str]:
    """Seed paper Table 2: rows sigma, columns methods, one table per stratum."""
    summary = result.summary()
    columns = [NOISY, *result.methods]
    blocks = []
    for stratum in result.strata():
        rows = {(r["sigma"], r["method"]): r for r in summary if r["stratum"] == stratum}
        n = max((r["n"] for r in rows.values()), default=0)
        title = ("All components" if stratum == "all"
                 else f"Average grid size {stratum}") + f" (n = {n}; PSNR dB / SSIM, mean ± 95% CI)"
        lines = [f"**{title}**", "", "| sigma | " + " | ".join(columns) + " |",
                 "|---" * (len(columns) + 1) + "|"]
        for sigma in result.sigmas:
            cells = [_cell(rows[(sigma, m)]) if (sigma, m) in rows else "" for m in columns]
            lines.append(f"| {sigma:g} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return blocks


def _method_tables(result: EvaluationResult) -> list[str]:
    """Seed paper Tables 3-5: rows methods, columns (grid-size bin, sigma); inpainting
    once for the masked region and once for the volume."""
    summary = {(r["stratum"], r["sigma"], r["method"]): r for r in result.summary()}
    methods = [m for m in [NOISY, *result.methods]
               if any(key[2] == m for key in summary)]
    strata = result.strata()
    counts = {s: max((r["n"] for k, r in summary.items() if k[0] == s), default=0)
              for s in strata}
    header = ["method"] + [f"{'all' if s == 'all' else s} (n={counts[s]}), σ {sigma:g}"
                           for s in strata for sigma in result.sigmas]
    scale = f" x{result.scale_factor}" if result.scale_factor > 1 else ""
    parts = ([("_masked", "missing positions"), ("", "whole volume")] if result.task == "inpaint"
             else [("", "")])
    blocks = []
    for suffix, region in parts:
        title = (f"**{result.task}{scale}{': ' + region if region else ''}** (PSNR dB / SSIM, "
                 "mean ± 95% CI; columns: average grid size bin of the fine grid and noise "
                 "sigma)")
        lines = [title, "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        for method in methods:
            cells = [_cell(summary[(s, sigma, method)], suffix)
                     if (s, sigma, method) in summary else ""
                     for s in strata for sigma in result.sigmas]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return blocks


def markdown_tables(result: EvaluationResult) -> str:
    """The papers' tables for ``result`` (module docstring): denoising one table per
    stratum (rows sigma, columns methods); other tasks rows methods, columns grid bin x
    sigma (inpainting: masked region, then volume). Cells: ``PSNR ± CI / SSIM ± CI``
    (mean and half-width of the 95% interval), then the restoration times."""
    task = getattr(result, "task", "denoise")
    blocks = _denoising_tables(result) if task == "denoise" else _method_tables(result)
    timing = _timing(result)
    return "\n\n".join(blocks + ([timing] if timing else [])) + "\n"


def nrmse_table(results: Mapping[int, EvaluationResult], noisy_sigma: float | None = None
                ) -> str:
    """TranSMS' Table III: mean nRMSE (%) per method (rows) and scale factor (columns),
    ``noiseless / noisy``.

    ``results`` maps each scale factor to its :class:`EvaluationResult`; the noisy value
    is at ``noisy_sigma`` (default: the smallest positive sigma evaluated at every
    scale; TranSMS' simulated data had 30 dB SNR). Missing entries are ``-``.
    """
    if not results:
        raise ValueError("nrmse_table needs at least one result")
    scales = sorted(results)
    if noisy_sigma is None:
        common = set.intersection(*(set(results[s].sigmas) for s in scales))
        positive = sorted(x for x in common if x > 0)
        noisy_sigma = positive[0] if positive else None
    means: dict[tuple[int, str, float], float] = {}
    for s in scales:
        for r in results[s].summary():
            if r["stratum"] == "all":
                means[(s, r["method"], r["sigma"])] = 100 * r["nrmse"]
    methods = list(dict.fromkeys(m for s in scales for m in results[s].methods))

    def value(s: int, m: str, sigma: float | None) -> str:
        v = means.get((s, m, sigma)) if sigma is not None else None
        return "-" if v is None else f"{v:.2f}%"

    noisy = "-" if noisy_sigma is None else f"sigma {noisy_sigma:g}"
    lines = [f"**Average nRMSE (%) in fine SM recovery, noiseless / noisy ({noisy})**", "",
             "| method | " + " | ".join(f"x{s}" for s in scales) + " |",
             "|---" * (len(scales) + 1) + "|"]
    for m in methods:
        lines.append(f"| {m} | " + " | ".join(f"{value(s, m, 0.0)} / {value(s, m, noisy_sigma)}"
                                             for s in scales) + " |")
    return "\n".join(lines) + "\n"


def _write_csv(path: Path, rows: list[dict[str, Any]], overwrite: bool) -> None:
    with atomic_output(path, overwrite=overwrite) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["empty"])
            writer.writeheader()
            writer.writerows(rows)


def plot_examples(result: EvaluationResult, path: Path, *, overwrite: bool = False) -> None:
    """Figure of the example components: input / methods / clean magnitudes.

    3D components show their central ``z`` slice. All panels of a row share the colour
    scale ``[0, 1]`` (the clean component has unit maximum magnitude); a
    super-resolution input is shown on its own (coarse) grid.
    """
    task = getattr(result, "task", "denoise")
    columns = [NOISY, *result.methods, "clean"]
    images = []
    for example in result.examples:
        row = [np.abs(example["images"][name]) for name in columns]
        images.append([image[image.shape[0] // 2] if image.ndim == 3 else image
                       for image in row])
    labels = [f"comp {example['component']}\nch {example['channel']}, "
              f"k {example['frequency_index']}" for example in result.examples]
    titles = [NOISY if task == "denoise" else "input", *result.methods, "clean"]
    save_image_grid(path, images, titles, labels,
                    title=f"|S| of example components at sigma = {result.figure_sigma:g}",
                    overwrite=overwrite)
def save_image_grid(path: str | os.PathLike[str], images: Sequence[Sequence[np.ndarray]],
                    columns: Sequence[str], row_labels: Sequence[str], *, title: str,
                    cmap: str = "viridis", vmax: float | None = 1.0, cell: float = 2.2,
                    extra_height: float = 0.0, fontsize: int = 9,
                    overwrite: bool = False) -> None:
    """Save a grid of 2D images as a PNG (110 dpi, written atomically).

    ``images[i][j]`` is shown in row ``i``, column ``j`` (origin at the bottom, no ticks)
    with the colour scale ``[0, vmax]``, or ``[0, its own maximum]`` (1 if that is 0)
    when ``vmax`` is None. ``columns`` title the first row (font size ``fontsize``),
    ``row_labels`` label the first column (``fontsize - 1``); ``title`` heads the figure
    (font size 10). The figure is ``cell`` inches per column and ``cell`` per row plus
    ``extra_height``; without rows it holds one empty row of axes. Matplotlib's object
    API with the Agg canvas: no pyplot, no global backend change.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    num_rows = max(len(images), 1)
    fig = Figure(figsize=(cell * len(columns), cell * num_rows + extra_height))
    FigureCanvasAgg(fig)
    axes = fig.subplots(num_rows, len(columns), squeeze=False)
    for i, (row, label) in enumerate(zip(images, row_labels)):
        for j, (image, name) in enumerate(zip(row, columns)):
            ax = axes[i, j]
            peak = vmax if vmax is not None else float(np.max(image)) or 1.0
            ax.imshow(image, cmap=cmap, vmin=0.0, vmax=peak, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=fontsize)
            if j == 0:
                ax.set_ylabel(label, fontsize=fontsize - 1)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_output(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def output_paths(out_dir: str | Path, *, overwrite: bool = False) -> dict[str, Path]:
    """The files :func:`write_results` writes; raises if one exists and not ``overwrite``."""
    out = Path(out_dir)
    paths = {"per_component": out / "per_component.csv", "summary": out / "summary.csv",
             "table": out / "table.md", "figure": out / "examples.png",
             "metrics": out / "metrics.json"}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)}: exist; pass overwrite=True to replace")
    return paths


def metrics_summary(result: EvaluationResult) -> dict[str, Any]:
    """All-component means and 95% CIs as a JSON-ready dict, the ``test_metrics`` that
    ``pympisr export --metrics`` stores in a model's metadata and manifest entry::

        {"definition": ..., "task": ..., "scale_factor": ...,
         "sigma": {"0.1": {"<method>": {"n", "psnr", "psnr_ci", "ssim", "ssim_ci",
                                        "nrmse"[, "psnr_masked", ...]}}}}

    Inpainting adds each masked-region metric with its CI. Infinite or undefined values
    (PSNR of an unchanged input at sigma 0) become None.
    """
    def number(value: float) -> float | None:
        return round(float(value), 4) if math.isfinite(value) else None

    by_sigma: dict[str, dict[str, Any]] = {}
    for row in result.summary():
        if row["stratum"] != "all":
            continue
        entry: dict[str, Any] = {"n": row["n"]}
        for metric in result.metrics:
            entry[metric] = number(row[metric])
            if not metric.startswith("nrmse"):
                entry[f"{metric}_ci"] = [number(row[f"{metric}_low"]),
                                         number(row[f"{metric}_high"])]
        by_sigma.setdefault(f"{row['sigma']:g}", {})[row["method"]] = entry
    return {"definition": "pympisr.metrics (DESIGN section 7): PSNR in dB on complex components "
                          "normalised to the unit-max ground truth; SSIM = mean of real/imag "
                          "SSIMs (Gaussian window sigma 1.5, data range 2); nRMSE as a fraction; "
                          "'_masked': over the missing positions of inpainting only; mean and "
                          "95% t-interval over components",
            "task": result.task, "scale_factor": result.scale_factor,
            "sigma": by_sigma}


def write_results(result: EvaluationResult, out_dir: str | Path, *,
                  overwrite: bool = False) -> dict[str, Path]:
    """Write ``per_component.csv``, ``summary.csv``, ``table.md``, ``examples.png`` and
    ``metrics.json`` (:func:`metrics_summary`)."""
    paths = output_paths(out_dir, overwrite=overwrite)
    _write_csv(paths["per_component"], result.records, overwrite)
    _write_csv(paths["summary"], result.summary(), overwrite)
    with atomic_output(paths["table"], overwrite=overwrite) as tmp:
        tmp.write_text(markdown_tables(result))
    with atomic_output(paths["metrics"], overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(metrics_summary(result), indent=1))
    plot_examples(result, paths["figure"], overwrite=overwrite)
    return paths
