"""Evaluation of denoising methods on a simulated test split (DESIGN section 7, paper 3.4).

For every evaluated frequency component of the split (streamed item by item from a
:class:`pympisr.datasets.ComponentStore`):

1. the clean component is scaled to unit maximum magnitude;
2. for each noise level ``sigma``, complex noise whose real and imaginary parts each have
   standard deviation ``sigma`` is added; the noise of component ``g`` (global index in
   the split) at level ``sigma`` comes from ``numpy.random.default_rng([seed, g,
   round(1e6 * sigma)])``, so results are reproducible and independent of which other
   components or levels are evaluated;
3. every method restores the noisy batch (components of one system matrix share a grid);
4. PSNR, SSIM and nRMSE of the noisy input and of each restoration against the clean
   component are computed with :mod:`pympisr.metrics`.

Results are summarised as mean and 95% t-confidence interval per (stratum, sigma,
method); 3D results are also stratified by the average grid size
``(Nx + Ny + Nz) / 3`` into the bins ``(12, 18]``, ``(18, 24]``, ``(24, 30]`` of the seed
paper.  2D components (``Nz = 1``) are passed to methods as ``(B, Ny, Nx)``, 3D ones as
``(B, Nz, Ny, Nx)``.
"""

from __future__ import annotations

import csv
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
from .baselines.dct import DEFAULT_THRESHOLD, dct_denoise
from .degradations import complex_gaussian
from .restoration.safety import SafetyOptions
from .metrics import mean_ci, nrmse, psnr, ssim

__all__ = [
    "DEFAULT_SIGMAS",
    "GRID_BINS",
    "EvaluationResult",
    "Method",
    "dct_method",
    "evaluate_denoising",
    "grid_stratum",
    "markdown_tables",
    "model_method",
    "noisy_component",
    "output_paths",
    "plot_examples",
    "save_image_grid",
    "write_results",
]

DEFAULT_SIGMAS: tuple[float, ...] = (0.0, 0.06, 0.10, 0.20, 0.30)
GRID_BINS: tuple[tuple[int, int], ...] = ((12, 18), (18, 24), (24, 30))
NOISY = "noisy"
METRICS = ("psnr", "ssim", "nrmse")


@dataclass(frozen=True)
class Method:
    """A restoration method under evaluation.

    ``restore(noisy)`` (blind) or ``restore(noisy, sigma)`` (``non_blind=True``) maps a
    complex batch ``(B, [D,] H, W)`` of unit-max-scaled noisy components to restored
    components of the same shape and scale.
    """

    name: str
    restore: Callable[..., np.ndarray]
    non_blind: bool = False

    def __call__(self, noisy: np.ndarray, sigma: float) -> np.ndarray:
        out = self.restore(noisy, sigma) if self.non_blind else self.restore(noisy)
        out = np.asarray(out)
        if out.shape != noisy.shape:
            raise ValueError(f"method {self.name!r} returned shape {out.shape} for input "
                             f"{noisy.shape}")
        return out


def dct_method(threshold: float = DEFAULT_THRESHOLD) -> Method:
    """DCT-F with the true noise level (non-blind, as in the seed paper's simulations)."""
    def restore(noisy: np.ndarray, sigma: float) -> np.ndarray:
        return dct_denoise(noisy, sigma, threshold=threshold, dims=noisy.ndim - 1)

    return Method("DCT-F", restore, non_blind=True)


def model_method(model: str | Path | Any, name: str | None = None, *,
                 safety: SafetyOptions | None = SafetyOptions()) -> Method:
    """An exported ONNX denoising model as pympisr restores with it: the network (with
    the true noise level where it takes one) and, unless ``safety`` is None, the safety
    step of :mod:`pympisr.restoration.safety` (non-blind: it gets the true sigma, as
    restore gets the noise level from the file).

    ``model`` is a shipped model name (its sha256 is verified), a path to an ``.onnx``
    file or a resolved model; ``name`` defaults to the manifest name or the file stem
    (with `` (network)`` appended when ``safety`` is None).
    """
    from .restoration import OnnxRestorer
    from .restoration.restore import ComponentRestorer
    from .tasks import get_task

    restorer = OnnxRestorer(model)
    if restorer.task != "denoise":
        raise ValueError(f"{restorer.path}: a {restorer.task!r} model, not a denoising model")
    run = ComponentRestorer(restorer, get_task("denoise", restorer.dims), safety)

    def restore(noisy: np.ndarray, sigma: float) -> np.ndarray:
        return run(noisy, np.full(noisy.shape[0], float(sigma)), None)[0]

    default = restorer.entry["name"] if restorer.entry else restorer.path.stem
    return Method(name or (default if safety is not None else f"{default} (network)"),
                  restore, non_blind=True)


def noisy_component(clean_unit: np.ndarray, sigma: float, seed: int, index: int) -> np.ndarray:
    """``clean_unit`` plus the reproducible noise of component ``index`` at ``sigma``."""
    rng = np.random.default_rng([seed, index, int(round(sigma * 1e6))])
    noise = complex_gaussian(clean_unit.shape, sigma, rng)
    return (clean_unit + noise).astype(np.complex64)


def grid_stratum(grid: Sequence[int]) -> str | None:
    """Average-grid-size bin label of a 3D grid ``(Nx, Ny, Nz)``; None for 2D or outside."""
    if min(grid) <= 1:
        return None
    average = float(np.mean(grid))
    for low, high in GRID_BINS:
        if low < average <= high:
            return f"({low},{high}]"
    return None


@dataclass
class EvaluationResult:
    """Per-component metrics, their summary, timings and example images for a figure."""

    records: list[dict[str, Any]]
    methods: list[str]
    sigmas: list[float]
    seconds: dict[str, float]
    examples: list[dict[str, Any]] = field(default_factory=list)
    figure_sigma: float = 0.0

    def strata(self) -> list[str]:
        """``"all"`` followed by the grid-size bins present in the records."""
        present = {r["stratum"] for r in self.records if r["stratum"]}
        return ["all"] + [f"({lo},{hi}]" for lo, hi in GRID_BINS if f"({lo},{hi}]" in present]

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
                    for metric in METRICS:
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


def _unit_max(components: np.ndarray, path: Path, ids: np.ndarray) -> np.ndarray:
    """Stored components ``(M, Nz, Ny, Nx)`` -> unit-max complex64 ``(M, [Nz,] Ny, Nx)``
    (the ``Nz`` axis is dropped for 2D grids)."""
    clean = components[:, 0] if components.shape[1] == 1 else components
    peaks = np.abs(clean).reshape(len(clean), -1).max(axis=1)
    if np.any(peaks == 0) or not np.all(np.isfinite(peaks)):
        bad = int(ids[np.argmax((peaks == 0) | ~np.isfinite(peaks))])
        raise ValueError(f"{path}: component {bad} is all zero or not finite")
    return (clean / peaks.reshape(-1, *[1] * (clean.ndim - 1))).astype(np.complex64)


def evaluate_denoising(store: Any, methods: Mapping[str, Callable[[np.ndarray], np.ndarray]]
                       | Iterable[Method], sigmas: Sequence[float] = DEFAULT_SIGMAS, *,
                       seed: int = 0, max_components: int | None = None,
                       batch_size: int = 64, num_examples: int = 4,
                       figure_sigma: float | None = None,
                       progress: bool = True) -> EvaluationResult:
    """Evaluate denoising methods on the components of ``store`` (module docstring).

    Parameters
    ----------
    store
        A :class:`pympisr.datasets.ComponentStore` (its ``files``, ``offsets`` and
        ``len`` are used; items are read one at a time).
    methods
        :class:`Method` objects, or a mapping ``name -> restore(noisy) -> restored``
        of blind methods (e.g. ``{"DCT-F": ...}``, models).
    sigmas
        Noise levels relative to the unit-max clean component.
    seed
        Noise seed (see :func:`noisy_component`).
    max_components
        Evaluate at most this many components, spread evenly over the split.
    batch_size
        Components per read from disk and per call of a method.
    num_examples
        Components kept (noisy, restorations, clean) at ``figure_sigma`` for a figure.
    figure_sigma
        Noise level of the examples; default 0.10 if evaluated, else the largest sigma.
    """
    from .datasets import read_item
    from tqdm.auto import tqdm

    method_list = ([Method(name, fn) for name, fn in methods.items()]
                   if isinstance(methods, Mapping) else list(methods))
    names = [m.name for m in method_list]
    if len(set(names)) != len(names) or NOISY in names:
        raise ValueError(f"method names must be unique and not {NOISY!r}: {names}")
    sigmas = [float(s) for s in sigmas]
    if not sigmas or any(s < 0 or not math.isfinite(s) for s in sigmas):
        raise ValueError(f"sigmas must be finite and >= 0, got {sigmas}")
    if figure_sigma is None:
        figure_sigma = 0.10 if 0.10 in sigmas else max(sigmas)
    selected = _selection(len(store), max_components)
    example_ids = set(selected[np.linspace(0, selected.size - 1, min(num_examples, selected.size))
                               .round().astype(int)].tolist()) if num_examples else set()
    offsets = np.asarray(store.offsets)
    item_of = np.searchsorted(offsets, selected, side="right") - 1

    records: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    seconds = {name: 0.0 for name in names}
    bar = tqdm(total=selected.size, desc="evaluate", unit="comp", disable=not progress)
    for item_index in np.unique(item_of):
        item_ids = selected[item_of == item_index]
        for start in range(0, item_ids.size, batch_size):  # read batch by batch
            batch_ids = item_ids[start:start + batch_size]
            rows = batch_ids - offsets[item_index]
            item = read_item(store.files[item_index], rows)
            grid = tuple(int(g) for g in item.grid)
            stratum = grid_stratum(grid) or ""
            clean = _unit_max(item.components, store.files[item_index], batch_ids)
            for sigma in sigmas:
                noisy = np.stack([noisy_component(c, sigma, seed, int(g))
                                  for c, g in zip(clean, batch_ids)])
                outputs = {NOISY: noisy}
                for method in method_list:
                    tic = time.perf_counter()
                    outputs[method.name] = method(noisy, sigma)
                    seconds[method.name] += time.perf_counter() - tic
                for j, g in enumerate(batch_ids):
                    base = {"component": int(g), "item": int(item_index), "row": int(rows[j]),
                            "channel": int(item.channel[j]),
                            "frequency_index": int(item.frequency_index[j]),
                            "grid": "x".join(map(str, grid)), "stratum": stratum,
                            "sigma": sigma}
                    for name, out in outputs.items():
                        records.append({**base, "method": name,
                                        "psnr": psnr(out[j], clean[j]),
                                        "ssim": ssim(out[j], clean[j]),
                                        "nrmse": nrmse(out[j], clean[j])})
                    if sigma == figure_sigma and int(g) in example_ids:
                        images = {name: out[j] for name, out in outputs.items()}
                        examples.append({"component": int(g), "channel": base["channel"],
                                         "frequency_index": base["frequency_index"],
                                         "images": images | {"clean": clean[j]}})
            bar.update(batch_ids.size)
    bar.close()
    return EvaluationResult(records, names, sigmas, seconds, examples, figure_sigma)


def _cell(row: Mapping[str, Any]) -> str:
    def fmt(metric: str, digits: int) -> str:
        mean, low, high = row[metric], row[f"{metric}_low"], row[f"{metric}_high"]
        if not (math.isfinite(low) and math.isfinite(high)):  # one value, or PSNR inf
            return f"{mean:.{digits}f}"
        return f"{mean:.{digits}f} ± {(high - low) / 2:.{digits}f}"

    return f"{fmt('psnr', 2)} / {fmt('ssim', 3)}"


def markdown_tables(result: EvaluationResult) -> str:
    """Tables like the seed paper's Table 2: rows sigma, columns methods, one per stratum.

    Cells: ``PSNR ± CI / SSIM ± CI`` (mean and half-width of the 95% interval).
    """
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
    count = len({r["component"] for r in result.records})
    timing = ", ".join(f"{name} {1e3 * t / max(count * len(result.sigmas), 1):.2f} ms"
                       for name, t in result.seconds.items())
    if timing:
        blocks.append(f"Restoration time per component: {timing}.")
    return "\n\n".join(blocks) + "\n"


def _write_csv(path: Path, rows: list[dict[str, Any]], overwrite: bool) -> None:
    with atomic_output(path, overwrite=overwrite) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["empty"])
            writer.writeheader()
            writer.writerows(rows)


def plot_examples(result: EvaluationResult, path: Path, *, overwrite: bool = False) -> None:
    """Figure of the example components: noisy / methods / clean magnitudes.

    3D components show their central ``z`` slice.  All panels of a row share the colour
    scale ``[0, 1]`` (the clean component has unit maximum magnitude).
    """
    columns = [NOISY, *result.methods, "clean"]
    images = []
    for example in result.examples:
        row = [np.abs(example["images"][name]) for name in columns]
        images.append([image[image.shape[0] // 2] if image.ndim == 3 else image
                       for image in row])
    labels = [f"comp {example['component']}\nch {example['channel']}, "
              f"k {example['frequency_index']}" for example in result.examples]
    save_image_grid(path, images, columns, labels,
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

        {"definition": ..., "sigma": {"0.1": {"<method>": {"n", "psnr", "psnr_ci",
                                                          "ssim", "ssim_ci", "nrmse"}}}}

    Infinite or undefined values (PSNR of an unchanged input at sigma 0) become None.
    """
    def number(value: float) -> float | None:
        return round(float(value), 4) if math.isfinite(value) else None

    by_sigma: dict[str, dict[str, Any]] = {}
    for row in result.summary():
        if row["stratum"] != "all":
            continue
        by_sigma.setdefault(f"{row['sigma']:g}", {})[row["method"]] = {
            "n": row["n"],
            "psnr": number(row["psnr"]), "psnr_ci": [number(row["psnr_low"]), number(row["psnr_high"])],
            "ssim": number(row["ssim"]), "ssim_ci": [number(row["ssim_low"]), number(row["ssim_high"])],
            "nrmse": number(row["nrmse"]),
        }
    return {"definition": "pympisr.metrics (DESIGN section 7): PSNR in dB on complex components "
                          "normalised to the unit-max ground truth; SSIM = mean of real/imag "
                          "SSIMs (Gaussian window sigma 1.5, data range 2); nRMSE as a fraction; "
                          "mean and 95% t-interval over components",
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
