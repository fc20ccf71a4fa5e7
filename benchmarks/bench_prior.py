"""Benchmark: simulation-prior restoration vs classical baselines and the blind network.

    python benchmarks/bench_prior.py [--sms 3] [--components 200]
        [--parts denoise,upsample,accelerate3d,inpaint3d,relaxation,langevin,nonlinear]
        [--tasks denoise,upsample] [--kappa 0.1]

Matched split: ``sample_parameters(seed, dims=2)`` SMs whose stated geometry has errors
of up to 3 % (gradient, drive) and 2 % of the FOV (centre); the prior uses the geometry
fitted to the noisy input (:func:`pympisr.fitting.fit`).
* denoise, papers' protocol (DESIGN 12 P): the 200 strongest components, each with
  complex noise of per-part std 0.1 times its maximum; DCT-F with the true sigma and the
  best threshold factor of 1.5 ... 3.5 per component (oracle-tuned); target prior >=
  DCT-F + 6 dB;
* upsample x4 noise-free: 4 x 4 block means of a fine simulated SM (the FOV kept), the
  prior on the fine grid vs bicubic; target >= +15 dB. The fit uses the coarse SM.
* accelerate3d / inpaint3d: 3D accelerated calibration x2 (prior vs tricubic) and 3D
  inpainting of a contiguous 10 % of the positions (prior vs biharmonic), matched and
  with the selection-field non-linearity ``--kappa`` (:func:`prior_3d`).

Mismatched split (physics the prior lacks): relaxation (``simulate_relaxed``, tau0 = 8
samples, field dependent), Langevin data against the anisotropy prior, and a
selection field 10 % stronger at the FOV edge than linear
(``simulate_nonlinear_gradient``, kappa 0.1); calibration protocol (DESIGN 12 R): one
absolute noise floor (1e-3 of the measured SM's maximum), PSNR per relative-noise bin
(noise over the measured component's peak). Denoising: noisy, DCT-F (factor 2.5), the
shipped blind network ``denoise_dncnn_small_nl_2d`` (restore_system_matrix with the
true noise) and the prior. Upsampling x4 (4 x 4 block means of the fine SM, restored
to the fine grid): bicubic, DCT-F+bicubic, the default x4 network and the prior.
Acceptance: prior >= max(network, classical) - 0.3 dB in every bin.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np

MISMATCHES = ("relaxation", "langevin", "nonlinear")
PARTS = ("denoise", "upsample", "accelerate3d", "inpaint3d", *MISMATCHES)
# default kappa of the mismatched split's selection-field non-linearity (field excess at
# the FOV edge; --kappa)
NONLINEARITY = 0.1


def strongest_rows(clean, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(channels, rows) of the ``count`` strongest components of channels x, y."""
    energy = np.sum(np.abs(clean.data) ** 2, axis=(2, 3, 4))
    energy[2:] = 0
    order = np.argsort(energy, axis=None)[::-1][:count]
    return np.unravel_index(order, energy.shape)


def subset(sm, rows: np.ndarray):
    return sm.replace(data=sm.data[:, rows], frequencies=sm.frequencies[rows],
                      frequency_indices=sm.frequency_indices[rows],
                      snr=None if sm.snr is None else sm.snr[:, rows])


def matched_denoise(seed: int, count: int) -> dict[str, float]:
    from pympisr.baselines.dct import dct_denoise
    from pympisr.fitting import fit
    from pympisr.metrics import psnr
    from pympisr.restoration.prior import prior_restore
    from pympisr.simulation.mismatch import state_geometry
    from pympisr.simulation.parameters import sample_parameters
    from pympisr.simulation.system_matrix import simulate_system_matrix

    rng = np.random.default_rng(seed)
    clean = simulate_system_matrix(sample_parameters(seed, dims=2))
    peak = np.abs(clean.data).reshape(*clean.data.shape[:2], -1).max(axis=-1)
    sigma = 0.1 * np.maximum(peak, 1e-30)
    noise = rng.standard_normal(clean.data.shape) + 1j * rng.standard_normal(clean.data.shape)
    sm, _ = state_geometry(clean.replace(data=clean.data + sigma[..., None, None, None] * noise),
                           rng)
    t0 = time.perf_counter()
    result = fit(sm, noise=sigma, progress=False)
    t_fit = time.perf_counter() - t0
    ch, ks = strongest_rows(clean, count)
    rows = np.unique(ks)
    t0 = time.perf_counter()
    out, _ = prior_restore(subset(sm, rows), "denoise", fit=result, noise=sigma[:, rows],
                           progress=False)
    t_prior = time.perf_counter() - t0
    scores = defaultdict(list)
    for c, k in zip(ch, ks):
        j = int(np.searchsorted(rows, k))
        ref, y = clean.data[c, k, 0], sm.data[c, k, 0]
        scores["noisy"].append(psnr(y, ref))
        scores["dct_oracle"].append(max(psnr(dct_denoise(y, sigma[c, k], threshold=t), ref)
                                        for t in (1.5, 2.0, 2.5, 3.0, 3.5)))
        scores["prior"].append(psnr(out.data[c, j, 0], ref))
    return {**{k: float(np.mean(v)) for k, v in scores.items()}, "fit_s": t_fit,
            "prior_s": t_prior}


def matched_upsample(seed: int, count: int, factor: int = 4) -> dict[str, float]:
    from pympisr.fitting import fit
    from pympisr.metrics import psnr
    from pympisr.restoration.prior import prior_restore
    from pympisr.simulation.mismatch import state_geometry
    from pympisr.simulation.parameters import sample_parameters
    from pympisr.simulation.system_matrix import simulate_system_matrix
    from pympisr.tasks import get_task

    rng = np.random.default_rng(seed)
    params = sample_parameters(seed, dims=2)
    coarse_grid = (params.grid[0], params.grid[1], 1)
    fine = simulate_system_matrix(params.replace(
        grid=(factor * coarse_grid[0], factor * coarse_grid[1], 1)))
    task = get_task("upsample", dims=2, scale_factor=factor)
    op = task.operator(fine.data.shape[3:])
    coarse = fine.replace(data=op.forward(fine.data[:, :, 0])[:, :, None], grid=coarse_grid)
    coarse, _ = state_geometry(coarse, rng)
    scale = np.abs(coarse.data).max()
    result = fit(coarse, noise=1e-6 * scale, progress=False)
    ch, ks = strongest_rows(fine, count)
    rows = np.unique(ks)
    out, _ = prior_restore(subset(coarse, rows), task, fit=result, noise=0.0, progress=False)
    scores = defaultdict(list)
    for c, k in zip(ch, ks):
        j = int(np.searchsorted(rows, k))
        ref = fine.data[c, k, 0]
        bicubic = task.baseline(coarse.data[c, k][None, 0], np.zeros(1))[0]
        scores["bicubic"].append(psnr(bicubic, ref))
        scores["prior"].append(psnr(out.data[c, j, 0], ref))
    return {k: float(np.mean(v)) for k, v in scores.items()}


def prior_3d(seed: int, kappa: float, count: int = 20, task_name: str = "accelerate"
             ) -> dict[str, float]:
    """3D accelerated calibration x2 (every 2nd position of a 13^3 grid, so 7^3 are
    measured) of the ``count`` strongest components below 150 kHz, noise floor 1e-3 of
    the measured maximum, stated geometry with errors, the fit on the measured SM;
    ``kappa`` > 0 adds the selection-field non-linearity. Mean PSNR (dB) of the prior,
    of the classical method (tricubic) and of the task's default 3D network, and the
    prior's smallest per-component gain over the classical method.
    ``task_name="inpaint"``: the same 13^3 SM with a contiguous 10 % of the positions
    (robot order) missing, biharmonic as the classical method, PSNR over the missing
    positions."""
    from pympisr.calibration_protocol import pympisr_method
    from pympisr.fitting import fit
    from pympisr.metrics import psnr
    from pympisr.physics import fields
    from pympisr.restoration.prior import prior_restore
    from pympisr.simulation.mismatch import simulate_nonlinear_gradient, state_geometry
    from pympisr.simulation.parameters import reference_parameters
    from pympisr.tasks import get_task

    rng = np.random.default_rng([seed, 11])
    params = reference_parameters(3, fluid=seed % 2 == 0, grid=(13, 13, 13))
    bins = np.flatnonzero(fields.rfft_frequencies(3) <= 150e3)
    full = simulate_nonlinear_gradient(params, kappa, frequencies=bins)
    energy = np.sum(np.abs(full.data) ** 2, axis=(2, 3, 4))
    rows = np.unique(np.argsort(energy.max(axis=0))[::-1][:count])
    fine = subset(full, rows)
    if task_name == "accelerate":
        task, mask = get_task("accelerate", dims=3, scale_factor=2), None
        measured = task.operator(fine.data.shape[2:]).forward(fine.data)
        scored = np.ones(fine.data.shape[2:], dtype=bool)
    else:
        task = get_task("inpaint", dims=3)
        mask = np.asarray(task.draw_mask(fine.data.shape[2:], rng), dtype=bool)
        measured = fine.data * mask
        scored = ~mask
    floor = 1e-3 * float(np.abs(measured).max())
    noisy = measured + floor * (rng.standard_normal(measured.shape)
                                + 1j * rng.standard_normal(measured.shape))
    if mask is not None:
        noisy = noisy * mask
    sm, _ = state_geometry(fine.replace(data=noisy.astype(np.complex64),
                                        grid=measured.shape[2:][::-1]), rng)
    result = fit(sm, noise=floor, components=min(40, 3 * rows.size), progress=False)
    out, _ = prior_restore(sm, task, fit=result, noise=floor, mask=mask, progress=False)
    std = np.full(sm.data.shape[:2], floor)
    network = pympisr_method(task=task_name, scale=task.scale_factor if mask is None else None)
    net = network(sm, std) if mask is None else network(sm, std, mask)
    prior, classical, learned = [], [], []
    for c in range(3):
        for k in range(rows.size):
            ref = fine.data[c, k]
            if np.abs(ref).max() < 1e-3 * np.abs(fine.data).max():
                continue  # the channel carries no signal at this frequency
            base = task.baseline(sm.data[c, k][None], np.full(1, floor), mask)[0]
            prior.append(psnr(out.data[c, k][scored], ref[scored]))
            classical.append(psnr(base[scored], ref[scored]))
            learned.append(psnr(net.data[c, k][scored], ref[scored]))
    gain = np.array(prior) - np.array(classical)
    return {"prior": float(np.mean(prior)), "classical": float(np.mean(classical)),
            "network": float(np.mean(learned)), "min_gain": float(gain.min()),
            "n": len(prior)}


def mismatched_clean(params, kind: str, kappa: float = NONLINEARITY):
    """The clean SM of ``params`` with the unmodelled effect ``kind`` (module doc)."""
    from pympisr.simulation.mismatch import simulate_nonlinear_gradient, simulate_relaxed
    from pympisr.simulation.system_matrix import simulate_system_matrix

    if kind == "relaxation":
        return simulate_relaxed(params, 8.0)
    if kind == "langevin":
        return simulate_system_matrix(params.replace(model="langevin"))
    return simulate_nonlinear_gradient(params, kappa)


def mismatched(seed: int, kind: str, count: int, task_name: str = "denoise",
               kappa: float = NONLINEARITY) -> list[dict[str, float]]:
    """Per-component records (bin, method -> PSNR) of one mismatched SM.

    denoise: the SM of ``sample_parameters(seed)``; upsample: that SM's x4 fine version,
    observed as its 4 x 4 block means (the coarse SM has the sampled grid), restored to
    the fine grid. Noise (floor 1e-3 of the measured SM's maximum) is added to the
    measured SM, whose stated geometry has errors; the fit uses the measured SM.
    """
    from pympisr.calibration_protocol import (BIN_LABELS, TaskBaseline, dct_method,
                                              pympisr_method, relative_noise_bin)
    from pympisr.fitting import fit
    from pympisr.metrics import psnr
    from pympisr.restoration.prior import prior_restore
    from pympisr.simulation.mismatch import state_geometry
    from pympisr.simulation.parameters import sample_parameters
    from pympisr.tasks import get_task

    rng = np.random.default_rng([seed, 7])
    params = sample_parameters(seed, dims=2)
    if task_name == "denoise":
        task = get_task("denoise", dims=2)
        reference = mismatched_clean(params, kind, kappa)
        measured = reference
    else:
        task = get_task("upsample", dims=2, scale_factor=4)
        fine_grid = (4 * params.grid[0], 4 * params.grid[1], 1)
        reference = mismatched_clean(params.replace(grid=fine_grid), kind, kappa)
        op = task.operator(reference.data.shape[3:])
        measured = reference.replace(data=op.forward(reference.data[:, :, 0])[:, :, None],
                                     grid=params.grid)
    floor = 1e-3 * float(np.abs(measured.data).max())
    noise = rng.standard_normal(measured.data.shape) + 1j * rng.standard_normal(
        measured.data.shape)
    sm, _ = state_geometry(measured.replace(data=measured.data + floor * noise), rng)
    std = np.full(sm.data.shape[:2], floor)
    result = fit(sm, noise=std, progress=False)
    _, ks = strongest_rows(reference, count)
    rows = np.unique(ks)
    part, ref, clean_part = subset(sm, rows), subset(reference, rows), subset(measured, rows)
    prior = prior_restore(part, task, fit=result, noise=std[:, rows], progress=False)[0]
    if task_name == "denoise":
        outputs = {"noisy": part, "classical": dct_method(2.5)(part, std[:, rows]),
                   "network": pympisr_method("denoise_dncnn_small_nl_2d")(part, std[:, rows]),
                   "prior": prior}
    else:
        outputs = {"noisy": TaskBaseline(task)(part, std[:, rows]),
                   "classical": TaskBaseline(task, 2.5)(part, std[:, rows]),
                   "network": pympisr_method(task="upsample", scale=4)(part, std[:, rows]),
                   "prior": prior}
    records = []
    for c in (0, 1):
        for j in range(rows.size):
            target = ref.data[c, j, 0]
            peak = float(np.abs(clean_part.data[c, j, 0]).max())
            if peak == 0:
                continue
            rec = {"bin": BIN_LABELS[int(relative_noise_bin(floor / peak))]}
            for name, out in outputs.items():
                rec[name] = psnr(out.data[c, j, 0], target)
            records.append(rec)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sms", type=int, default=3)
    parser.add_argument("--components", type=int, default=200)
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated parts to run, of {', '.join(PARTS)}")
    parser.add_argument("--tasks", default="denoise,upsample",
                        help="tasks of the mismatched parts: denoise, upsample (x4)")
    parser.add_argument("--kappa", type=float, default=NONLINEARITY,
                        help="selection-field non-linearity of the nonlinear part")
    args = parser.parse_args()
    parts = args.parts.split(",")
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; known: {', '.join(PARTS)}")

    if "denoise" in parts:
        print("## matched, denoise (papers' protocol, sigma 0.1, strongest components)\n")
        print("| seed | noisy dB | DCT-F oracle dB | prior dB | prior - DCT-F | fit s | "
              "prior s |")
        print("|---|---|---|---|---|---|---|")
        for seed in range(args.sms):
            r = matched_denoise(seed, args.components)
            print(f"| {seed} | {r['noisy']:.2f} | {r['dct_oracle']:.2f} | {r['prior']:.2f} | "
                  f"{r['prior'] - r['dct_oracle']:+.2f} | {r['fit_s']:.0f} | "
                  f"{r['prior_s']:.0f} |", flush=True)
    if "upsample" in parts:
        print("\n## matched, upsample x4 noise-free\n")
        print("| seed | bicubic dB | prior dB | gain |")
        print("|---|---|---|---|")
        for seed in range(args.sms):
            r = matched_upsample(seed, args.components)
            print(f"| {seed} | {r['bicubic']:.2f} | {r['prior']:.2f} | "
                  f"{r['prior'] - r['bicubic']:+.2f} |", flush=True)
    for part, task_name, title, classical in (
            ("accelerate3d", "accelerate", "accelerate 3D x2 (13^3 from 7^3)", "tricubic"),
            ("inpaint3d", "inpaint", "inpaint 3D (13^3, a contiguous 10 % missing; PSNR "
             "on the missing positions)", "biharmonic")):
        if part not in parts:
            continue
        print(f"\n## {title}, noise floor 1e-3, matched and with a {args.kappa:g} field "
              "non-linearity\n")
        print(f"| seed | kappa | components | {classical} dB | network dB | prior dB | "
              f"prior - {classical} | smallest | prior - network |")
        print("|---|---|---|---|---|---|---|---|---|")
        for seed in range(args.sms):
            for kappa in (0.0, args.kappa):
                r = prior_3d(seed, kappa, task_name=task_name)
                print(f"| {seed} | {kappa:g} | {r['n']} | {r['classical']:.2f} | "
                      f"{r['network']:.2f} | {r['prior']:.2f} | "
                      f"{r['prior'] - r['classical']:+.2f} | {r['min_gain']:+.2f} | "
                      f"{r['prior'] - r['network']:+.2f} |", flush=True)
    from pympisr.calibration_protocol import BIN_LABELS

    for kind in [p for p in MISMATCHES if p in parts]:
        for task_name in args.tasks.split(","):
            records = [rec for seed in range(args.sms)
                       for rec in mismatched(seed, kind, args.components, task_name,
                                             args.kappa)]
            first, classical = (("noisy", "DCT-F") if task_name == "denoise"
                                else ("bicubic", "DCT-F+bicubic"))
            label = f"{kind}, kappa {args.kappa:g}" if kind == "nonlinear" else kind
            print(f"\n## mismatched ({label}), {task_name}"
                  f"{' x4' if task_name == 'upsample' else ''}, calibration protocol, PSNR "
                  "dB per relative-noise bin\n")
            print(f"| bin | n | {first} | {classical} | network | prior | "
                  "prior - best(network, classical) |")
            print("|---|---|---|---|---|---|---|")
            for label in BIN_LABELS:
                chosen = [r for r in records if r["bin"] == label]
                if not chosen:
                    continue
                mean = {m: float(np.mean([r[m] for r in chosen]))
                        for m in ("noisy", "classical", "network", "prior")}
                margin = mean["prior"] - max(mean["network"], mean["classical"],
                                             mean["noisy"] if task_name != "denoise"
                                             else -np.inf)
                print(f"| {label} | {len(chosen)} | {mean['noisy']:.2f} | "
                      f"{mean['classical']:.2f} | {mean['network']:.2f} | "
                      f"{mean['prior']:.2f} | {margin:+.2f}"
                      f"{'' if margin >= -0.3 else ' FAIL'} |", flush=True)


if __name__ == "__main__":
    main()
