"""Benchmark the system-matrix simulator and dataset generation.

Run ``python benchmarks/bench_simulation.py [--n2d 20] [--n3d 2]``; prints a markdown
table with

* 2D 32x32 SM, anisotropy model (immobilised and fluid), 3 channels, full band;
* 3D 19x19x19 SM, anisotropy model (immobilised and fluid), full band (26929 bins);
* dataset throughput (SMs per hour, sampled parameters, 2D and 3D, all cores) and the
  peak resident memory of the generating processes.

Timings exclude one-off numba compilation and the anisotropy table build (warm-up
run first). The machine may be shared: compare numbers taken under similar load.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time

import numpy as np


def peak_rss_gb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1e6  # Linux: kilobytes


def timed(func, repeat: int = 1) -> float:
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n2d", type=int, default=20, help="2D SMs for the throughput run")
    parser.add_argument("--n3d", type=int, default=2, help="3D SMs for the throughput run")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    from pympisr.physics.tables import anisotropy_table
    from pympisr.simulation.generate import generate_dataset
    from pympisr.simulation.parameters import sample_parameters
    from pympisr.simulation.system_matrix import simulate_system_matrix

    anisotropy_table()
    for fluid in (False, True):  # warm-up: compile / load every kernel
        simulate_system_matrix(seed=0, dims=3, grid=(2, 2, 2), fluid=fluid, frequencies=[1])
        simulate_system_matrix(seed=0, dims=2, grid=(4, 4, 1), fluid=fluid)

    rows = []
    # dataset throughput first: worker processes are forked from a still small parent,
    # so RUSAGE_CHILDREN reports the workers' own peak memory
    tmp = tempfile.mkdtemp(prefix="pympisr_bench_")
    try:
        for dims, count in ((2, args.n2d), (3, args.n3d)):
            if count < 1:
                continue
            out = os.path.join(tmp, f"d{dims}")
            t = timed(lambda: generate_dataset(out, dims=dims, splits={"train": count},
                                               seed=123, workers=args.workers,
                                               progress=False))
            size = sum(os.path.getsize(os.path.join(out, "train", f))
                       for f in os.listdir(os.path.join(out, "train")))
            rows.append((f"dataset {dims}D, {count} SMs, sampled grids, {args.workers} workers",
                         f"{3600 * count / t:.0f} SMs/hour",
                         f"{t:.1f} s total, {size / count / 1e6:.1f} MB per item"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rss_workers = peak_rss_gb(resource.RUSAGE_CHILDREN)

    base2 = sample_parameters(1, dims=2).replace(grid=(32, 32, 1), anisotropy=3500.0)
    for fluid in (False, True):
        t = timed(lambda: simulate_system_matrix(base2.replace(fluid=fluid)), repeat=3)
        rows.append((f"2D 32x32 SM, anisotropy, {'fluid' if fluid else 'immobilised'}, "
                     "817 bins", f"{t:.2f} s", "goal <= 1 s"))
    base3 = sample_parameters(1, dims=3).replace(grid=(19, 19, 19), anisotropy=3500.0)
    for fluid in (False, True):
        t = timed(lambda: simulate_system_matrix(base3.replace(fluid=fluid)))
        rows.append((f"3D 19^3 SM, anisotropy, {'fluid' if fluid else 'immobilised'}, "
                     "26929 bins (4.4 GB complex64)", f"{t:.1f} s", "goal <= 60 s"))
    rows.append(("peak memory, benchmark process (3D full band)",
                 f"{peak_rss_gb(resource.RUSAGE_SELF):.2f} GB", ""))
    rows.append(("peak memory, largest dataset worker", f"{rss_workers:.2f} GB", ""))

    print(f"\nload average (1 min): {os.getloadavg()[0]:.1f} (machine may be shared)\n")
    print("| benchmark | result | note |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
