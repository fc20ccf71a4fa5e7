"""Kaczmarz speed: one sweep vs a BLAS matrix-vector product, and vs a plain row loop.

Usage::

    python benchmarks/bench_kaczmarz.py [--case all|1|2] [--blas-threads 2]
                                        [--repeats 5] [--quick]

Thread counts are fixed before numpy is imported: OPENBLAS_NUM_THREADS,
OMP_NUM_THREADS, MKL_NUM_THREADS and BLIS_NUM_THREADS are set to ``--blas-threads``
(default 2) for the BLAS product; the Kaczmarz kernels are single-threaded (numba
without ``parallel``), NUMBA_NUM_THREADS is set to 1. Every timed call is measured with
the wall clock (``time.perf_counter``) and the process CPU time
(``time.process_time``); tables give the best of the repetitions. On a machine shared
with other work the CPU time of a single-threaded code is the fairer figure (it does
not count time spent waiting for a core); the load average (1 min) is printed before
and after each case. Compilation is excluded (one warm-up call first, numba's on-disk
cache makes it a load); everything else :func:`pympisr.kaczmarz` does (conversions, row
energies, set-up, output) is included.

Cases (issue 4):

1. ``S`` 2000 x 50000 complex64 (800 MB): one BLAS ``S @ x`` vs one Kaczmarz sweep
   (the engine's sweep kernel called on prepared inputs), and the public
   :func:`pympisr.kaczmarz` call with one sweep (which adds the pass over ``S`` for
   row energies and set-up). Goal: sweep / ``S @ x`` <= 2.
2. A 2D problem: 44 x 44 grid (1936 voxels), 800 rows, 3 sweeps, lambda = 1e-3
   (unnormalised): :func:`pympisr.kaczmarz` vs the plain Python row loop of the MDF
   repository's ``python/kaczmarzReg.py`` (the same algorithm: row norms with
   ``np.linalg.norm``, one numpy ``dot`` and one update per row, projections after each
   sweep) on the same complex64 data. Goal: speed-up >= 50.
"""

from __future__ import annotations

import argparse
import os
import sys


def _set_threads(blas_threads: int) -> None:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "BLIS_NUM_THREADS"):
        os.environ[var] = str(blas_threads)
    os.environ["NUMBA_NUM_THREADS"] = "1"


def _load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def _one_sweep(kz, S, u, engine: str):
    """A callable running exactly one sweep of the engine's kernel on prepared inputs."""
    import numpy as np

    m, n = S.shape
    u2 = u.astype(np.complex128).reshape(m, 1)
    v = np.zeros_like(u2)
    if engine == "numba":
        sf = S.view(np.float32)
        energy, gram = kz._energies_and_gram(sf)
        w = np.ones(m)
        xr = np.zeros((1, n), dtype=np.float32)
        xi = np.zeros((1, n), dtype=np.float32)
        return lambda: kz._sweeps(sf, energy, gram, True, u2, v, w, 0.0, xr, xi, 1, True,
                                  True, n)
    eps = np.zeros(m)
    rows = np.arange(m, dtype=np.int64)
    denom = 1.0 / kz._row_energies(S)
    x = np.zeros((1, n), dtype=np.complex64)
    return lambda: kz._numpy_sweeps(S, u2, v, rows, denom, eps, x, 1, True, True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("all", "1", "2"), default="all")
    parser.add_argument("--blas-threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5,
                        help="repetitions of the slow calls (fast calls: 20x as many)")
    parser.add_argument("--quick", action="store_true",
                        help="case 1 with 500 x 50000 (for a smoke run)")
    args = parser.parse_args()
    if "numpy" in sys.modules:
        raise RuntimeError("numpy was imported before the thread counts were set")
    _set_threads(args.blas_threads)

    import importlib
    import time

    import numpy as np

    from pympisr.reco.kaczmarz import available_engines, kaczmarz

    kz = importlib.import_module("pympisr.reco.kaczmarz")

    def best(fn, repeats: int) -> tuple[float, float]:
        """Best wall and best CPU time (s) over ``repeats`` calls."""
        wall, cpu = [], []
        for _ in range(repeats):
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
        return min(wall), min(cpu)

    def mdf_row_loop(A, b, iterations, lambd):
        """The MDF reference loop (kaczmarzReg.py), enforceReal and enforcePositive on."""
        m, n = A.shape
        x = np.zeros(n, dtype=b.dtype)
        residual = np.zeros(m, dtype=x.dtype)
        energy = np.zeros(m)
        for i in range(m):
            energy[i] = np.linalg.norm(A[i, :])
        for _ in range(iterations):
            for i in range(m):
                if energy[i] > 0:
                    beta = (b[i] - A[i, :].dot(x) - np.sqrt(lambd) * residual[i]) / (
                        energy[i] ** 2 + lambd)
                    x[:] += beta * A[i, :].conjugate()
                    residual[i] += np.sqrt(lambd) * beta
            x.imag = 0
            x = x * (x.real > 0)
        return x

    engines = available_engines()
    print(f"CPU: {_cpu_name()}, {os.cpu_count()} logical cores; engines: {engines}; "
          f"BLAS threads: {args.blas_threads}; best of {args.repeats} (slow calls) or "
          f"{20 * args.repeats} (fast calls)\n")

    if args.case in ("all", "1"):
        rng = np.random.default_rng(0)             # each case has its own fixed data
        m, n = (500 if args.quick else 2000), 50000
        S = np.empty((m, n), dtype=np.complex64)
        S.real = rng.standard_normal((m, n), dtype=np.float32)
        S.imag = rng.standard_normal((m, n), dtype=np.float32)
        x = np.ones(n, dtype=np.complex64)
        u = (S @ x) * np.float32(0.5)
        load0 = _load()
        t_gemv = best(lambda: S @ x, args.repeats)[0]
        rows = []
        for engine in engines:
            kaczmarz(S[:4], u[:4], iterations=1, engine=engine)          # compile / load
            sweep_fn = _one_sweep(kz, S, u, engine)
            reps = args.repeats if engine == "numba" else max(1, args.repeats // 2)
            sweep = best(sweep_fn, reps)[0]
            t1 = best(lambda: kaczmarz(S, u, iterations=1, engine=engine), reps)[0]
            rows.append((f"one Kaczmarz sweep, {engine}", sweep))
            rows.append((f"kaczmarz(iterations=1), {engine} (+ row energies, set-up)", t1))
        print(f"## Case 1: S {m} x {n} complex64 ({S.nbytes / 1e6:.0f} MB); "
              f"load average {load0} -> {_load()}\n")
        print("| method | wall (ms) | ratio to BLAS S @ x |")
        print("|---|---:|---:|")
        print(f"| BLAS S @ x ({args.blas_threads} threads) | {1e3 * t_gemv:.1f} | 1.00 |")
        for name, t in rows:
            print(f"| {name} | {1e3 * t:.1f} | {t / t_gemv:.2f} |")
        del S
        print()

    if args.case in ("all", "2"):
        rng = np.random.default_rng(0)
        m, n, sweeps, lambd = 800, 44 * 44, 3, 1e-3
        A = np.empty((m, n), dtype=np.complex64)
        A.real = rng.standard_normal((m, n), dtype=np.float32)
        A.imag = rng.standard_normal((m, n), dtype=np.float32)
        c = rng.uniform(0, 1, n).astype(np.float32)
        b = A @ c.astype(np.complex64)
        load0 = _load()
        x_ref = mdf_row_loop(A, b, sweeps, lambd)
        ref_wall, ref_cpu = best(lambda: mdf_row_loop(A, b, sweeps, lambd), args.repeats)
        rows = []
        for engine in engines:
            def run(engine=engine):
                return kaczmarz(A, b, iterations=sweeps, lambd=lambd, normalize_reg=False,
                                engine=engine)
            x_ours = run()
            reps = 20 * args.repeats if engine == "numba" else args.repeats
            wall, cpu = best(run, reps)
            diff = np.linalg.norm(x_ours - x_ref) / np.linalg.norm(x_ref)
            rows.append((engine, wall, cpu, diff))
        print(f"## Case 2: 2D, 44 x 44 grid, {m} rows, {sweeps} sweeps; "
              f"load average {load0} -> {_load()}\n")
        print("| method | wall (ms) | speed-up (wall) | CPU (ms) | speed-up (CPU) | "
              "rel. diff. |")
        print("|---|---:|---:|---:|---:|---:|")
        print(f"| plain Python row loop (MDF kaczmarzReg) | {1e3 * ref_wall:.1f} | 1.0 | "
              f"{1e3 * ref_cpu:.1f} | 1.0 | - |")
        for engine, wall, cpu, diff in rows:
            print(f"| pympisr.kaczmarz, {engine} | {1e3 * wall:.2f} | "
                  f"{ref_wall / wall:.1f} | {1e3 * cpu:.2f} | {ref_cpu / cpu:.1f} | "
                  f"{diff:.1e} |")


if __name__ == "__main__":
    main()
