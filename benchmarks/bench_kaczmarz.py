"""Kaczmarz speed: one sweep vs a BLAS matrix-vector product, and vs a plain row loop.

Usage::

    python benchmarks/bench_kaczmarz.py [--blas-threads 2] [--repeats 5] [--quick]

Thread counts are fixed before numpy is imported: OPENBLAS_NUM_THREADS,
OMP_NUM_THREADS, MKL_NUM_THREADS and BLIS_NUM_THREADS are set to ``--blas-threads``
(default 2) for the BLAS product; the Kaczmarz kernels are single-threaded (numba
without ``parallel``), NUMBA_NUM_THREADS is set to 1. Timings are the best of
``--repeats`` runs: wall clock (``time.perf_counter``); case 2, where everything is
single-threaded, also reports process CPU time (``time.process_time``), which is
robust to other processes competing for the cores.

Cases (issue 4):

1. ``S`` 2000 x 50000 complex64 (800 MB): one BLAS ``S @ x`` vs one Kaczmarz sweep
   (the engine's sweep kernel called on prepared inputs), and the public
   :func:`pympisr.kaczmarz` call with one sweep (which adds the row-energy pass over
   ``S`` and set-up).
2. A 2D problem: 44 x 44 grid (1936 voxels), 800 rows, 3 sweeps, lambda = 1e-3
   (unnormalised): :func:`pympisr.kaczmarz` vs a plain Python row loop written like the
   MDF repository's ``python/kaczmarzReg.py`` (row energies with ``np.linalg.norm``,
   one numpy ``dot`` and one update per row) on the same complex64 data.
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


def _one_sweep(kz, S, u, engine: str):
    """A callable running exactly one sweep of the engine's kernel on prepared inputs."""
    import numpy as np

    m, n = S.shape
    rows = np.arange(m, dtype=np.int64)
    denom = 1.0 / kz._row_energies(S)
    eps = np.zeros(m)
    u2 = u.astype(np.complex128).reshape(m, 1)
    v = np.zeros_like(u2)
    if engine == "numba":
        xr = np.zeros((1, n), dtype=np.float32)
        xi = np.zeros((1, n), dtype=np.float32)
        sf = S.view(np.float32)
        return lambda: kz._sweeps(sf, u2, v, rows, denom, eps, xr, xi, 1, True, True, n)
    x = np.zeros((1, n), dtype=np.complex64)
    return lambda: kz._numpy_sweeps(S, u2, v, rows, denom, eps, x, 1, True, True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blas-threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true",
                        help="case 1 with 500 x 50000 (for a smoke run)")
    args = parser.parse_args()
    if "numpy" in sys.modules:
        raise RuntimeError("numpy was imported before the thread counts were set")
    _set_threads(args.blas_threads)

    import time

    import numpy as np

    import importlib

    from pympisr.reco.kaczmarz import available_engines, kaczmarz

    kz = importlib.import_module("pympisr.reco.kaczmarz")

    def best(fn, repeats: int, clock=time.perf_counter) -> float:
        times = []
        for _ in range(repeats):
            t0 = clock()
            fn()
            times.append(clock() - t0)
        return min(times)

    def mdf_style_row_loop(A, b, iterations, lambd):
        """Plain row loop in the manner of MDF's python/kaczmarzReg.py (real, positive)."""
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

    rng = np.random.default_rng(0)
    engines = available_engines()
    print(f"engines: {engines}; BLAS threads: {args.blas_threads}; best of {args.repeats}\n")

    # ---------------------------------------------------------------- case 1
    m, n = (500 if args.quick else 2000), 50000
    S = np.empty((m, n), dtype=np.complex64)
    S.real = rng.standard_normal((m, n), dtype=np.float32)
    S.imag = rng.standard_normal((m, n), dtype=np.float32)
    x = np.ones(n, dtype=np.complex64)
    u = (S @ x) * np.float32(0.5)
    t_gemv = best(lambda: S @ x, args.repeats)
    print(f"## Case 1: S {m} x {n} complex64 ({S.nbytes / 1e6:.0f} MB)\n")
    print("| method | time (ms) | ratio to BLAS S @ x |")
    print("|---|---:|---:|")
    print(f"| BLAS S @ x ({args.blas_threads} threads) | {1e3 * t_gemv:.1f} | 1.00 |")
    for engine in engines:
        kaczmarz(S[:4], u[:4], iterations=1, engine=engine)          # compile / warm up
        sweep_fn = _one_sweep(kz, S, u, engine)
        reps = args.repeats if engine == "numba" else max(1, args.repeats // 2)
        sweep = best(sweep_fn, reps)
        t1 = best(lambda: kaczmarz(S, u, iterations=1, engine=engine), reps)
        print(f"| one Kaczmarz sweep, {engine} | {1e3 * sweep:.1f} | {sweep / t_gemv:.2f} |")
        print(f"| kaczmarz(iterations=1), {engine} (+ row energies, set-up) | {1e3 * t1:.1f} | "
              f"{t1 / t_gemv:.2f} |")
    del S

    # ---------------------------------------------------------------- case 2
    m, n, sweeps, lambd = 800, 44 * 44, 3, 1e-3
    A = np.empty((m, n), dtype=np.complex64)
    A.real = rng.standard_normal((m, n), dtype=np.float32)
    A.imag = rng.standard_normal((m, n), dtype=np.float32)
    c = rng.uniform(0, 1, n).astype(np.float32)
    b = A @ c.astype(np.complex64)
    ref_reps = max(1, args.repeats // 2)
    t_ref = best(lambda: mdf_style_row_loop(A, b, sweeps, lambd), ref_reps)
    c_ref = best(lambda: mdf_style_row_loop(A, b, sweeps, lambd), ref_reps, time.process_time)
    x_ref = mdf_style_row_loop(A, b, sweeps, lambd)
    print(f"\n## Case 2: 2D, 44 x 44 grid, {m} rows, {sweeps} sweeps\n")
    print("| method | wall (ms) | speed-up (wall) | CPU (ms) | speed-up (CPU) | rel. diff. |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| plain Python row loop (MDF kaczmarzReg style) | {1e3 * t_ref:.1f} | 1.0 | "
          f"{1e3 * c_ref:.1f} | 1.0 | - |")
    for engine in engines:
        def run(engine=engine):
            return kaczmarz(A, b, iterations=sweeps, lambd=lambd, normalize_reg=False,
                            engine=engine)
        run()
        t = best(run, args.repeats)
        c = best(run, args.repeats, time.process_time)
        diff = np.linalg.norm(run() - x_ref) / np.linalg.norm(x_ref)
        print(f"| pympisr.kaczmarz, {engine} | {1e3 * t:.2f} | {t_ref / t:.1f} | "
              f"{1e3 * c:.2f} | {c_ref / c:.1f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
