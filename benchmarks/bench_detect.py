"""Precision and recall of the corrupted-position detector on simulated system matrices.

For every seed and dimension a clean SM is simulated (:mod:`pympisr.simulation`; 2D
grids of 14-22 points per axis with all 817 frequencies, 3D grids of 9-13 points with
the frequencies up to 60 kHz), complex white noise is added at one absolute floor of
``f * max|S|`` for all components, ``f`` in ``--floors`` (the calibration protocol's
range: the strongest components then have SNR 1/f, the weakest are pure noise), and
the detector (:func:`pympisr.restoration.detect_corrupted`, default settings) runs on

* the noisy SM itself: the fraction of positions flagged ("clean");
* one copy per corruption kind of :mod:`pympisr.simulation.corruptions` (5 isolated
  spikes of 20 sigma; one drifting block of 10 % of the positions with a slowly varying
  5 sigma offset; 3 one-step shifts along acquisition order; 3 zeroed positions):
  precision and recall of the flagged positions against that kind's ground truth.

Precision and recall are pooled over seeds (sums of true/false positives), per
dimension, floor and kind. Run::

    python benchmarks/bench_detect.py                 # 2D and 3D, 4 seeds, 3 floors
    python benchmarks/bench_detect.py --dims 2 --seeds 2 --threshold 6
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np

from pympisr.calibration_protocol import complex_noise
from pympisr.restoration.detect import DEFAULT_THRESHOLD, detect_corrupted
from pympisr.simulation import sample_parameters, simulate_system_matrix
from pympisr.simulation.corruptions import CORRUPTION_KINDS, corrupt_system_matrix

COUNTS = {"spike": 5, "drift": 1, "shift": 3, "zero": 3}


def simulate(dims: int, seed: int):
    rng = np.random.default_rng([seed, dims])
    if dims == 2:
        grid = (int(rng.integers(14, 23)), int(rng.integers(14, 23)), 1)
        return simulate_system_matrix(sample_parameters(seed, dims=2).replace(grid=grid))
    grid = tuple(int(n) for n in rng.integers(9, 14, size=3))
    params = sample_parameters(seed, dims=3).replace(grid=grid)
    return simulate_system_matrix(params, max_frequency=60e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--floors", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2])
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    args = parser.parse_args()

    # (dims, floor, kind) -> [true positives, flagged, corrupted]
    tally: dict[tuple[int, float, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    worst_clean: dict[tuple[int, float], float] = defaultdict(float)
    seconds: dict[int, list[float]] = defaultdict(list)
    for dims in args.dims:
        for seed in range(args.seeds):
            clean = simulate(dims, seed)
            for floor in args.floors:
                rng = np.random.default_rng([seed, dims, int(round(-np.log10(floor) * 10))])
                sigma = np.full(clean.data.shape[:2], floor * float(np.abs(clean.data).max()))
                noisy = clean.replace(data=clean.data + complex_noise(sigma, clean.spatial_shape,
                                                                      rng))
                start = time.perf_counter()
                result = detect_corrupted(noisy, threshold=args.threshold)
                seconds[dims].append(time.perf_counter() - start)
                t = tally[(dims, floor, "clean")]
                t[1] += result.num_flagged
                t[2] += result.valid.size
                worst_clean[(dims, floor)] = max(worst_clean[(dims, floor)],
                                                 result.fraction_flagged)
                for kind in CORRUPTION_KINDS:
                    corrupted = corrupt_system_matrix(noisy, sigma, rng,
                                                      counts={kind: COUNTS[kind]})
                    flagged = ~detect_corrupted(corrupted.sm, threshold=args.threshold).valid
                    truth = ~corrupted.valid
                    t = tally[(dims, floor, kind)]
                    t[0] += int(np.count_nonzero(flagged & truth))
                    t[1] += int(np.count_nonzero(flagged))
                    t[2] += int(np.count_nonzero(truth))
            print(f"dims {dims} seed {seed}: grid {clean.grid}, {clean.data.shape[1]} "
                  "frequencies", flush=True)

    print(f"\nthreshold {args.threshold:g}, {args.seeds} seeds per dimension; "
          f"detection time per SM: " + ", ".join(f"{d}D {np.mean(s):.1f} s"
                                                  for d, s in seconds.items()))
    header = "| dims | floor | clean flagged (mean / worst SM) | " + " | ".join(
        f"{k} P / R" for k in CORRUPTION_KINDS) + " |"
    print(header)
    print("|" + "---|" * (3 + len(CORRUPTION_KINDS)))
    for dims in args.dims:
        for floor in args.floors:
            tp, flagged, total = tally[(dims, floor, "clean")]
            cells = [f"{dims}D", f"{floor:g}",
                     f"{100 * flagged / total:.2f} % / {100 * worst_clean[(dims, floor)]:.2f} %"]
            for kind in CORRUPTION_KINDS:
                tp, flagged, total = tally[(dims, floor, kind)]
                precision = tp / flagged if flagged else float("nan")
                cells.append(f"{precision:.2f} / {tp / total:.2f}")
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
