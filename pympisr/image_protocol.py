"""Image protocol (I) of DESIGN section 12: does a restored SM give better images?

Per SM ``i`` (seeds from ``SeedSequence([seed, i])`` as in
:mod:`pympisr.calibration_protocol`, whose helpers are reused):

1. a clean 2D SM is simulated with ``samples_per_fwhm`` from the SM's range (by default
   the training range (4, 12) and (12, 60) in turn, grid 12 .. 44 per axis); only the
   receive channels x and y are used (the z coil of a 2D trajectory sees no particle
   signal). For the super-resolution tasks it is the SM simulated at the target
   resolution, cropped to the points a coarse calibration covers
   (:func:`~pympisr.calibration_protocol.fine_reference`);
2. the task measures it (:func:`~pympisr.calibration_protocol.measure`; ``task``:
   ``denoise`` keeps it, ``upsample`` / ``accelerate`` make the coarse calibration,
   ``inpaint`` corrupts one seed-paper mask of 10 % of the positions per SM) and one
   absolute noise floor (:class:`~pympisr.calibration_protocol.NoiseFloor`, default
   ``sigma_abs`` = 1e-4 .. 1e-2 x max|S|, white) gives the true per-component noise std
   ``noise_std`` (C, K) and the measured SM ``A S + N``;
3. per-component SNR, ``snr_mode``:

   * ``"mpifiles"`` (default): computed the MPIFiles way (DESIGN section 11) from the
     measured SM and 20 simulated empty (background) frames of the same noise,
     ``max_voxels |S_noisy - mean(bg)| / mean |diff(bg)|``; as in a real file, pure-noise
     components of large grids reach SNR ~2 (the maximum of many noise samples);
   * ``"true"``: the known ``max|S_clean| / noise_std``;

   every SM under test (noisy, baselines, restored, clean) gets this same SNR, so the
   same rows are selected for all of them; the SM handed to the methods holds the
   frequency bins where some channel reaches the lowest threshold (other rows are never
   used);
4. phantoms (``snake``, ``resolution``, ``spiral`` of :mod:`pympisr.phantoms`, fitted to
   the FOV) are measured with the *clean* fine SM
   (:func:`pympisr.simulation.measurement.simulate_measurement`, ``u = S c``), and
   complex white noise with the same per-(channel, frequency) std as the calibration
   (``measurement_noise`` x ``noise_std``; one frame, same receive chain) is added once
   per SM and phantom: fixed for all methods;
5. every method restores the measured SM to the fine grid
   (:data:`~pympisr.calibration_protocol.RestorationMethod`): denoising: noisy, DCT-F;
   super-resolution: bicubic, DCT-F+bicubic; inpainting: the corrupted (zero-filled)
   SM, biharmonic, biharmonic+DCT-F; pympisr models (restore_system_matrix with the
   true noise floor and mask); the clean fine SM is the reference. Then
   :func:`pympisr.reco.reconstruct` (Kaczmarz, MPIReco defaults: 3 sweeps, real and
   non-negative, normalised lambda; no background correction needed) reconstructs all
   phantoms for every SNR threshold and normalised lambda;
6. metrics against the phantom (:func:`image_metrics`): Pearson correlation of the image
   with the phantom (scale-free), and PSNR and SSIM after least-squares scaling of the
   image to the phantom (``a = <x, c> / <x, x>``; PSNR peak = max of the phantom; SSIM
   with the pinned options of :mod:`pympisr.metrics` on real images, data range = the
   phantom's range).

Reports per stratum (``all``; ``inside``: effective samples per FWHM <= 12; ``beyond``)
and per (threshold, lambda): mean of each metric per method, the worst case of
``corr(restored) - corr(base)`` over SMs and phantoms (base: the noisy SM for denoising,
the task's baseline, bicubic or biharmonic, otherwise; acceptance: never below -0.01),
and whether the restored SMs beat the classical method with DCT-F (DCT-F,
DCT-F+bicubic, biharmonic+DCT-F) on average correlation.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .calibration_protocol import (CLEAN, DCT, DEFAULT_SPF_RANGES, GRID_RANGE, NOISY,
                                   TUNED_DCT_FACTORS, NoiseFloor, ProtocolCase,
                                   RestorationMethod, baseline_label, call_method, case_mask,
                                   case_rng, complex_noise, dct_variant, default_methods,
                                   effective_samples_per_fwhm, fine_reference, json_record,
                                   measure, mpifiles_snr, noisy_method, output_files,
                                   present_strata, protocol_task, restore_accepts_noise,
                                   simulate_clean, spf_range_of, write_report)
from .metrics import SSIM_SIGMA, mean_ci
from .system_matrix import Measurement, SystemMatrix

__all__ = [
    "DROP_TOLERANCE",
    "LAMBDAS",
    "PHANTOM_NAMES",
    "SNR_THRESHOLDS",
    "ImageCase",
    "ImageResult",
    "evaluate_images",
    "image_metrics",
    "image_output_paths",
    "markdown_tables",
    "plot_images",
    "simulate_image_case",
    "write_image_results",
]

PHANTOM_NAMES: tuple[str, ...] = ("snake", "resolution", "spiral")
SNR_THRESHOLDS: tuple[float, ...] = (2.0, 3.0, 5.0)
LAMBDAS: tuple[float, ...] = (0.0, 1e-3, 1e-2, 1e-1)
DROP_TOLERANCE = 0.01
_BACKGROUND_FRAMES = 20


# ---------------------------------------------------------------------- metrics
def image_metrics(image: np.ndarray, phantom: np.ndarray) -> dict[str, float]:
    """Correlation, PSNR (dB) and SSIM of a reconstruction against its phantom.

    ``image`` and ``phantom``: real, same shape (singleton axes are dropped, 2D or 3D).
    ``corr``: Pearson correlation (0 for a constant image). ``scale``: least-squares
    factor ``a = <x, c> / <x, x>`` (0 for an all-zero image); PSNR =
    ``10 log10(max(c)^2 / mean((a x - c)^2))``; SSIM of ``a x`` vs ``c`` as in
    :func:`pympisr.metrics.ssim` (Gaussian window sigma 1.5, population covariances,
    window shrunk on short axes) with ``data_range = max(c) - min(c)``.
    """
    from skimage.metrics import structural_similarity

    x = np.squeeze(np.asarray(image, np.float64))
    c = np.squeeze(np.asarray(phantom, np.float64))
    if x.shape != c.shape:
        raise ValueError(f"image {x.shape} and phantom {c.shape} differ in shape")
    if x.ndim not in (2, 3) or min(x.shape) < 3:
        raise ValueError(f"need a 2D or 3D image with >= 3 points per axis, got {x.shape}")
    span = float(c.max() - c.min())
    if span <= 0:
        raise ValueError("phantom is constant")
    xc, cc = x - x.mean(), c - c.mean()
    denominator = float(np.sqrt(np.sum(xc * xc) * np.sum(cc * cc)))
    corr = float(np.sum(xc * cc) / denominator) if denominator > 0 else 0.0
    energy = float(np.sum(x * x))
    scale = float(np.sum(x * c) / energy) if energy > 0 else 0.0
    fitted = scale * x
    mse = float(np.mean((fitted - c) ** 2))
    peak = float(np.abs(c).max())
    psnr = float("inf") if mse == 0 else float(10 * np.log10(peak ** 2 / mse))
    smallest = min(x.shape)
    win = min(11, smallest if smallest % 2 else smallest - 1)
    ssim = float(structural_similarity(fitted, c, gaussian_weights=True, sigma=SSIM_SIGMA,
                                       use_sample_covariance=False, data_range=span,
                                       win_size=win))
    return {"corr": corr, "psnr": psnr, "ssim": ssim, "scale": scale}


# ---------------------------------------------------------------------- simulation
@dataclass
class ImageCase(ProtocolCase):
    """One SM of the image protocol.

    ``clean`` (2, K_sel, 1, Ny, Nx), the fine SM, / ``noisy`` (2, K_sel, 1, ny, nx), the
    measured one: on the frequency bins some channel of which reaches the lowest SNR
    threshold, both with ``snr`` set (the same array); ``mask`` (inpainting);
    ``noise_std`` (2, K_sel); ``phantoms`` float (P, 1, Ny, Nx); ``measurement`` with P
    frames (frame p measures phantom p).
    """

    phantom_names: tuple[str, ...]
    phantoms: np.ndarray
    measurement: Measurement


def simulate_image_case(index: int, seed: int, spf_range: tuple[float, float],
                        floor: NoiseFloor | None = None, *,
                        phantoms: Sequence[str] = PHANTOM_NAMES, snr_mode: str = "mpifiles",
                        min_threshold: float = min(SNR_THRESHOLDS),
                        measurement_noise: float = 1.0,
                        grid_range: tuple[int, int] = GRID_RANGE,
                        task: str | Any = "denoise", scale: int | None = None) -> ImageCase:
    """Simulate SM ``index``, its measured (degraded, noisy) copy, SNR and phantom
    measurements (module docstring); ``task``/``scale`` as
    :func:`~pympisr.calibration_protocol.protocol_task`."""
    from .phantoms import make_phantom
    from .simulation.measurement import simulate_measurement

    if snr_mode not in ("mpifiles", "true"):
        raise ValueError(f"snr_mode must be 'mpifiles' or 'true', got {snr_mode!r}")
    if not (math.isfinite(measurement_noise) and measurement_noise >= 0):
        raise ValueError(f"measurement_noise must be finite and >= 0, got {measurement_noise}")
    rules = protocol_task(task, scale)
    floor = floor or NoiseFloor()
    full, params = simulate_clean(index, seed, spf_range, grid_range=grid_range)
    fraction, std_full = floor.draw(full, case_rng(seed, index, 0))
    channels = np.arange(2)                                   # x, y receive coils (2D)
    fine = fine_reference(rules, full.replace(data=full.data[channels], snr=None,
                                              transfer_function=None))
    std_all = std_full[channels]
    mask = case_mask(rules, fine, seed, index)
    measured = measure(rules, fine, std_all, mask, case_rng(seed, index, 1))
    if snr_mode == "mpifiles":
        background = complex_noise(std_all, (_BACKGROUND_FRAMES,), case_rng(seed, index, 2))
        snr_all = mpifiles_snr(measured.data, np.moveaxis(background, -1, 0))
    else:
        peaks = np.abs(fine.data.reshape(2, full.num_frequencies, -1)).max(axis=-1)
        snr_all = (peaks / std_all).astype(np.float32)
    bins = np.flatnonzero(np.any(snr_all >= min_threshold, axis=0))
    if bins.size == 0:
        raise ValueError(f"SM {index}: no component reaches SNR {min_threshold}")
    snr = snr_all[:, bins]
    keep = dict(frequencies=full.frequencies[bins], frequency_indices=full.frequency_indices[bins])
    clean = fine.replace(data=fine.data[:, bins], snr=snr, **keep)
    noisy = measured.replace(data=measured.data[:, bins], snr=snr.copy(), **keep)
    noise_std = std_all[:, bins]
    images = np.stack([make_phantom(name, clean).astype(np.float64) for name in phantoms])
    frames = [simulate_measurement(clean, image, noise=0.0).data[0] for image in images]
    data = np.stack(frames).astype(np.complex128)                             # (P, C, K)
    rng = case_rng(seed, index, 3)
    data += measurement_noise * noise_std[None] * (rng.standard_normal(data.shape)
                                                   + 1j * rng.standard_normal(data.shape))
    meas = Measurement(data=data.astype(np.complex64), frequencies=clean.frequencies,
                       frequency_indices=clean.frequency_indices)
    return ImageCase(index=index, params=params, clean=clean, noisy=noisy, noise_std=noise_std,
                     phantom_names=tuple(phantoms), phantoms=images, measurement=meas,
                     fraction=fraction, spf_range=tuple(spf_range),
                     spf=effective_samples_per_fwhm(params), mask=mask)


# ---------------------------------------------------------------------- evaluation
@dataclass
class ImageResult:
    """Per-image records of :func:`evaluate_images`.

    ``records``: one dict per (SM, phantom, threshold, lambda, method) with ``sm``,
    ``stratum``, ``spf``, ``grid``, ``phantom``, ``threshold``, ``lambda``, ``rows``
    (selected rows), ``method``, ``corr``, ``psnr`` (dB), ``ssim``, ``scale``.
    ``restored``: names of the methods under test (pympisr models). ``base``: the SM
    the correlation drops are measured against (``noisy`` for denoising, the task's
    baseline otherwise); ``rival``: the classical SM the restorations should beat on
    average (``DCT-F``, ``DCT-F+bicubic``, ``biharmonic+DCT-F``; None if absent).
    """

    records: list[dict[str, Any]]
    methods: list[str]
    restored: list[str]
    thresholds: list[float]
    lambdas: list[float]
    cases: list[dict[str, Any]]
    seconds: dict[str, float]
    examples: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    base: str = NOISY
    rival: str | None = DCT

    def strata(self) -> list[str]:
        """Strata present in the records
        (:func:`~pympisr.calibration_protocol.present_strata`)."""
        return present_strata(self.records)

    def _groups(self) -> dict[tuple[str, float, float, str], list[dict[str, Any]]]:
        groups: dict[tuple[str, float, float, str], list[dict[str, Any]]] = {}
        for r in self.records:
            for stratum in ("all", r["stratum"]):
                groups.setdefault((stratum, r["threshold"], r["lambda"], r["method"]),
                                  []).append(r)
        return groups

    def summary(self) -> list[dict[str, Any]]:
        """Mean and 95 % CI of corr, PSNR, SSIM per (stratum, threshold, lambda, method)."""
        groups = self._groups()
        rows = []
        for stratum in self.strata():
            for thr in self.thresholds:
                for lam in self.lambdas:
                    for method in self.methods:
                        group = groups.get((stratum, thr, lam, method))
                        if not group:
                            continue
                        row: dict[str, Any] = {"stratum": stratum, "threshold": thr,
                                               "lambda": lam, "method": method,
                                               "n": len(group)}
                        for metric in ("corr", "psnr", "ssim"):
                            mean, low, high = mean_ci([g[metric] for g in group])
                            row.update({metric: mean, f"{metric}_low": low,
                                        f"{metric}_high": high})
                        rows.append(row)
        return rows

    def comparison(self) -> list[dict[str, Any]]:
        """Per (stratum, threshold, lambda, method other than :attr:`base`): mean
        correlations, the worst ``corr(method) - corr(base)`` over (SM, phantom) and
        where it occurred, ``passes`` (worst >= -0.01) and, for the restorations under
        test, ``beats_dct`` (mean corr above the :attr:`rival`'s, the classical method
        with DCT-F). Classical and clean rows are references (``reference`` True): how
        far the same criterion holds for the baselines and the ideal SM."""
        groups = self._groups()
        out = []
        for stratum in self.strata():
            for thr in self.thresholds:
                for lam in self.lambdas:
                    base = {(r["sm"], r["phantom"]): r["corr"]
                            for r in groups.get((stratum, thr, lam, self.base), [])}
                    means = {m: float(np.mean([r["corr"] for r in groups[(stratum, thr, lam, m)]]))
                             for m in self.methods if (stratum, thr, lam, m) in groups}
                    for method in [m for m in self.methods if m != self.base]:
                        group = groups.get((stratum, thr, lam, method), [])
                        if not group:
                            continue
                        drops = [(r["corr"] - base[(r["sm"], r["phantom"])], r["sm"],
                                  r["phantom"]) for r in group]
                        worst = min(drops)
                        row = {"stratum": stratum, "threshold": thr, "lambda": lam,
                               "method": method, "n": len(group),
                               **{f"corr_{m}": v for m, v in means.items()},
                               "worst_drop": worst[0], "worst_sm": worst[1],
                               "worst_phantom": worst[2],
                               "passes": bool(worst[0] >= -DROP_TOLERANCE),
                               "reference": method not in self.restored}
                        if self.rival in means and method in self.restored:
                            row["beats_dct"] = bool(means[method] > means[self.rival])
                        out.append(row)
        return out


def evaluate_images(num_sms: int = 24, *, seed: int = 0,
                    methods: Mapping[str, RestorationMethod] | None = None,
                    spf_ranges: Sequence[tuple[float, float]] = DEFAULT_SPF_RANGES,
                    floor: NoiseFloor | None = None,
                    phantoms: Sequence[str] = PHANTOM_NAMES,
                    thresholds: Sequence[float] = SNR_THRESHOLDS,
                    lambdas: Sequence[float] = LAMBDAS, snr_mode: str = "mpifiles",
                    iterations: int = 3,
                    dct_factor: float | Mapping[str, float] | None = None,
                    measurement_noise: float = 1.0,
                    grid_range: tuple[int, int] = GRID_RANGE, num_examples: int = 2,
                    task: str | Any = "denoise", scale: int | None = None,
                    progress: bool = True) -> ImageResult:
    """Run the image protocol (module docstring) on ``num_sms`` simulated SMs.

    Parameters
    ----------
    methods:
        ``name -> method(sm, noise_std[, mask])``; default
        :func:`~pympisr.calibration_protocol.default_methods` of the task (classical
        methods, shipped model). For grid-keeping tasks ``"noisy"`` (the measured SM) is
        always evaluated; ``"clean"`` (the clean fine SM) is always added as reference;
        every method with a DCT-F threshold
        (:func:`~pympisr.calibration_protocol.dct_variant`) gets threshold
        ``dct_factor`` with the true sigma. Methods
        with a true ``classical`` attribute are baselines; every other method counts as
        a restoration under test.
    task, scale:
        The restoration task
        (:func:`~pympisr.calibration_protocol.protocol_task`): ``"denoise"``,
        ``"upsample"``, ``"accelerate"`` (``scale`` default 2) or ``"inpaint"``.
    dct_factor:
        One factor, or per relative-noise bin (e.g. ``CalibrationResult.dct_factor`` of
        the calibration protocol; see :func:`~pympisr.calibration_protocol.dct_method`);
        default :data:`~pympisr.calibration_protocol.TUNED_DCT_FACTORS`.
    iterations:
        Kaczmarz sweeps.
    measurement_noise:
        Measurement noise std in units of the SM's per-component noise std.
    num_examples:
        SMs whose ``snake`` reconstructions are kept for the figure (the first SMs of
        each stratum, up to this many in all).
    """
    from tqdm.auto import tqdm

    from .reco import reconstruct

    if num_sms < 1:
        raise ValueError(f"num_sms must be >= 1, got {num_sms}")
    thresholds = [float(t) for t in thresholds]
    lambdas = [float(v) for v in lambdas]
    if not thresholds or any(t <= 0 for t in thresholds):
        raise ValueError(f"SNR thresholds must be > 0, got {thresholds}")
    if not lambdas or any(v < 0 for v in lambdas):
        raise ValueError(f"lambdas must be >= 0, got {lambdas}")
    floor = floor or NoiseFloor()
    rules = protocol_task(task, scale)
    methods = dict(default_methods(task=rules) if methods is None else methods)
    if rules.grid_rule == "same":
        methods = {NOISY: methods.pop(NOISY, noisy_method), **methods}
    dct_factor = dict(TUNED_DCT_FACTORS) if dct_factor is None else dct_factor
    for name, method in list(methods.items()):
        make = dct_variant(name, method)
        if make is not None:
            methods[name] = make(dct_factor)
    if CLEAN in methods:
        raise ValueError(f"{CLEAN!r} is the reference, not a method name")
    classical = [n for n in methods if n == NOISY or getattr(methods[n], "classical", False)]
    restored = [n for n in methods if n not in classical]
    names = classical + restored + [CLEAN]
    denoise = rules.name == "denoise"
    base_method = NOISY if denoise else baseline_label(rules, False)
    base_method = base_method if base_method in methods else names[0]
    rival = DCT if denoise else baseline_label(rules, True)
    rival = rival if rival in methods else None
    seconds = {name: 0.0 for name in names} | {"reconstruction": 0.0}
    records: list[dict[str, Any]] = []
    cases: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    example_strata: set[str] = set()
    bar = tqdm(total=num_sms, desc="image protocol", unit="SM", disable=not progress)
    for i in range(num_sms):
        case = simulate_image_case(i, seed, spf_range_of(i, spf_ranges), floor,
                                   phantoms=phantoms, snr_mode=snr_mode,
                                   min_threshold=min(thresholds),
                                   measurement_noise=measurement_noise, grid_range=grid_range,
                                   task=rules)
        sms: dict[str, SystemMatrix] = {}
        for name, method in methods.items():
            tic = time.perf_counter()
            out = call_method(method, case.noisy, case.noise_std, case.mask)
            seconds[name] += time.perf_counter() - tic
            if out.data.shape != case.clean.data.shape:
                raise ValueError(f"method {name!r} returned shape {out.data.shape}, expected "
                                 f"{case.clean.data.shape} (the clean fine SM)")
            sms[name] = out.replace(snr=case.noisy.snr)
        sms[CLEAN] = case.clean
        keep_example = (len(examples) < num_examples and case.stratum not in example_strata
                        and "snake" in case.phantom_names)
        example_images: dict[tuple[float, float], dict[str, np.ndarray]] = {}
        base = {"sm": i, "stratum": case.stratum, "spf": round(case.spf, 3),
                "grid": "x".join(map(str, case.clean.grid[:2])), "fraction": case.fraction}
        for thr in thresholds:
            rows = int(np.sum(case.noisy.snr >= thr))
            for lam in lambdas:
                for name in names:
                    tic = time.perf_counter()
                    images = reconstruct(sms[name], case.measurement, snr_thresh=thr,
                                         lambd=lam, iterations=iterations, bg_correction=False)
                    seconds["reconstruction"] += time.perf_counter() - tic
                    for p, phantom_name in enumerate(case.phantom_names):
                        scores = image_metrics(images[p], case.phantoms[p])
                        records.append({**base, "phantom": phantom_name, "threshold": thr,
                                        "lambda": lam, "rows": rows, "method": name, **scores})
                    if keep_example:
                        p = case.phantom_names.index("snake")
                        example_images.setdefault((thr, lam), {})[name] = images[p, 0]
        if keep_example:
            p = case.phantom_names.index("snake")
            examples.append({"sm": i, "stratum": case.stratum, "spf": case.spf,
                             "phantom": case.phantoms[p, 0], "images": example_images})
            example_strata.add(case.stratum)
        cases.append({"sm": i, "grid": list(case.clean.grid[:2]),
                      "measured_grid": list(case.noisy.grid[:2]), "spf": case.spf,
                      "spf_sampled": float(case.params.extra.get("samples_per_fwhm", math.nan)),
                      "spf_range": list(case.spf_range), "stratum": case.stratum,
                      "floor_fraction": case.fraction,
                      "rows_per_threshold": {f"{t:g}": int(np.sum(case.noisy.snr >= t))
                                             for t in thresholds}})
        bar.update(1)
    bar.close()
    settings = {"task": rules.name, "scale_factor": rules.scale_factor, "base": base_method,
                "rival": rival,
                "num_sms": num_sms, "seed": seed, "spf_ranges": [list(r) for r in spf_ranges],
                "grid_range": list(grid_range), "floor": floor.kind,
                "floor_fraction_range": list(floor.fraction_range), "snr_mode": snr_mode,
                "iterations": iterations, "dct_factor": dct_factor,
                "measurement_noise": measurement_noise, "phantoms": list(phantoms),
                "receive_channels": [0, 1], "restore_gets_noise": restore_accepts_noise()}
    return ImageResult(records, names, restored, thresholds, lambdas, cases, seconds, examples,
                       settings, base_method, rival)


# ---------------------------------------------------------------------- reporting
def markdown_tables(result: ImageResult) -> str:
    """Per stratum: mean correlation per method, worst drop (against the base SM) and
    comparison with the classical rival per (threshold, lambda); then PSNR / SSIM per
    method."""
    blocks = []
    task = result.settings.get("task", "denoise")
    label = (task if task in ("denoise", "inpaint")
             else f"{task} x{result.settings.get('scale_factor')}")
    rival = result.rival if result.rival in result.methods else None
    comparison = result.comparison()
    summary = result.summary()
    titles = {"all": "All SMs", "inside": "Inside the training range (samples/FWHM <= 12)",
              "beyond": "Beyond the training range (samples/FWHM > 12)"}
    for stratum in result.strata():
        sms = len({r["sm"] for r in result.records if stratum in ("all", r["stratum"])})
        images = len({(r["sm"], r["phantom"]) for r in result.records
                      if stratum in ("all", r["stratum"])})
        comp = {(c["threshold"], c["lambda"], c["method"]): c for c in comparison
                if c["stratum"] == stratum}
        summ = {(r["threshold"], r["lambda"], r["method"]): r for r in summary
                if r["stratum"] == stratum}
        header = ["SNR thr", "lambda", *[f"corr {m}" for m in result.methods]]
        dropped = [m for m in result.methods if m != result.base]
        header += [f"worst drop {m}" for m in dropped]
        header += [f"{m} > {rival}" for m in result.restored if rival]
        lines = [f"**Image protocol ({label}): {titles[stratum]}** ({sms} SMs x "
                 f"{len(result.settings.get('phantoms', []))} phantoms = {images} images; "
                 "mean Pearson correlation with the phantom; worst drop = min over images of "
                 f"corr(method) - corr({result.base}), ok if >= -{DROP_TOLERANCE:g} (judged "
                 "for the restorations; classical SMs and clean for reference))", "",
                 "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        for thr in result.thresholds:
            for lam in result.lambdas:
                cells = [f"{thr:g}", f"{lam:g}"]
                cells += [f"{summ[(thr, lam, m)]['corr']:.4f}" if (thr, lam, m) in summ else ""
                          for m in result.methods]
                for m in dropped:
                    c = comp.get((thr, lam, m))
                    verdict = "" if c is None or c["reference"] else (
                        " ok" if c["passes"] else " FAIL")
                    cells.append("" if c is None else f"{c['worst_drop']:+.4f}{verdict}")
                for m in result.restored if rival else []:
                    c = comp.get((thr, lam, m))
                    cells.append("" if c is None else
                                 {True: "yes", False: "no", None: ""}[c.get("beats_dct")])
                lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
        header = ["SNR thr", "lambda", *result.methods]
        lines = [f"**Image protocol ({label}): {titles[stratum]}: PSNR dB / SSIM** (image "
                 "least-squares "
                 "scaled to the phantom; mean)", "", "| " + " | ".join(header) + " |",
                 "|---" * len(header) + "|"]
        for thr in result.thresholds:
            for lam in result.lambdas:
                cells = [f"{thr:g}", f"{lam:g}"]
                cells += [f"{summ[(thr, lam, m)]['psnr']:.2f} / {summ[(thr, lam, m)]['ssim']:.3f}"
                          if (thr, lam, m) in summ else "" for m in result.methods]
                lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    total = sum(result.seconds.values())
    snr_rule = ("MPIFiles rule on the measured SM + 20 simulated background frames"
                if result.settings.get("snr_mode") == "mpifiles"
                else "known max|S_clean| / noise std")
    blocks.append(
        f"SNR: {result.settings.get('snr_mode')} "
        f"({snr_rule}); DCT-F with the true sigma, threshold factor "
        f"{result.settings.get('dct_factor')}; Kaczmarz "
        f"{result.settings.get('iterations')} sweeps; restore_system_matrix "
        f"{'receives' if result.settings.get('restore_gets_noise') else 'does NOT receive'} "
        "the true noise std. Seconds: "
        + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items()) + f" (total {total:.1f}).")
    return "\n\n".join(blocks) + "\n"


def plot_images(result: ImageResult, path: str | os.PathLike[str], *,
                overwrite: bool = False) -> None:
    """Example reconstructions of the snake phantom: one row per (example SM, setting)
    with the phantom and every method's image (each scaled to its own maximum)."""
    from .evaluation import save_image_grid  # lazy: evaluation imports the restoration

    settings = [(min(result.thresholds), min(result.lambdas)),
                (min(result.thresholds), sorted(result.lambdas)[len(result.lambdas) // 2])]
    settings = list(dict.fromkeys(settings))
    rows = [(ex, s) for ex in result.examples for s in settings if s in ex["images"]]
    columns = ["phantom", *result.methods]
    images = [[example["phantom"] if name == "phantom" else example["images"][(thr, lam)][name]
               for name in columns] for example, (thr, lam) in rows]
    labels = [f"SM {example['sm']} ({example['stratum']},\nspf {example['spf']:.1f}) thr "
              f"{thr:g}, lambda {lam:g}" for example, (thr, lam) in rows]
    save_image_grid(path, images, columns, labels,
                    title="Image protocol: snake phantom reconstructions", cmap="gray",
                    vmax=None, cell=2.0, extra_height=0.4, fontsize=8, overwrite=overwrite)


def image_output_paths(out_dir: str | os.PathLike[str], *, overwrite: bool = False
                       ) -> dict[str, Path]:
    """Files of :func:`write_image_results`; raises FileExistsError if one exists and not
    ``overwrite``."""
    return output_files(out_dir, {"per_image": "image_per_image.csv",
                                  "summary": "image_summary.csv",
                                  "comparison": "image_comparison.csv",
                                  "table": "image_table.md", "figure": "image_examples.png",
                                  "metrics": "metrics.json"}, overwrite=overwrite)


def write_image_results(result: ImageResult, out_dir: str | os.PathLike[str], *,
                        overwrite: bool = False) -> dict[str, Path]:
    """Write per-image, summary and comparison CSV, the tables, a figure and metrics.json."""
    paths = image_output_paths(out_dir, overwrite=overwrite)
    summary = result.summary()
    comparison = result.comparison()
    metrics = {
        "protocol": "image",
        "definition": "Pearson correlation of the reconstruction with the phantom; PSNR (dB, "
                      "peak = phantom max) and SSIM (Gaussian window 1.5, data range = phantom "
                      "range) after least-squares scaling of the image to the phantom; mean "
                      "and 95% t-interval over (SM, phantom)",
        "settings": result.settings,
        "summary": [json_record(r) for r in summary],
        "comparison": [json_record(r) for r in comparison],
        "cases": [json_record(c) for c in result.cases],
        "seconds": json_record(result.seconds),
    }
    write_report(paths, {"per_image": result.records, "summary": summary,
                         "comparison": comparison}, markdown_tables(result), metrics,
                 overwrite=overwrite)
    plot_images(result, paths["figure"], overwrite=overwrite)
    return paths
