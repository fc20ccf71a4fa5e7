"""Benchmark: recover a perturbed scanner geometry by fitting the simulator (issue 13.1).

    python benchmarks/bench_fit.py [--sms 4] [--snr 3 10 100 1000] [--3d]

Test SMs: ``sample_parameters(seed, dims=2)`` simulated over the full band, white complex
noise with per-part std ``max|S| / SNR`` (one absolute floor, so weak components are
much noisier), and a stated geometry with uniform errors up to 3 % (gradient, drive)
and 2 % of the FOV (centre) (:func:`pympisr.simulation.mismatch.state_geometry`).
Errors are reported in the fit's gauge (geometric mean of the drive amplitudes at the
stated value, :mod:`pympisr.fitting.model`): the data cannot separate a common field
scale from the particle size. ``--3d``: one 19^3 SM at the reference scanner geometry,
timed (target <= 10 min on 2 cores). Targets: gradient and drive within 1 %, centre
within 2 % of the FOV; a 2D fit <= 60 s. A fit refused for too few significant
components (``InvalidInputError``) prints the refusal instead of errors.

The "bound" columns are the Cramer-Rao bound (one std) of the largest log-gradient and
of the centre, in % and % of the FOV, from the Fisher information of the noise-free data
at the truth on the components the fit selects (:meth:`pympisr.fitting.FitProblem.information`,
no geometry prior): no unbiased estimate from those data does better on average. The
"bound, all" columns are the same from every component of the driven channels (every
nonzero frequency, however weak): no unbiased estimate from the whole SM does better.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def case(seed: int, snr: float, dims: int = 2):
    from pympisr.simulation.mismatch import state_geometry
    from pympisr.simulation.parameters import reference_parameters, sample_parameters
    from pympisr.simulation.system_matrix import simulate_system_matrix

    rng = np.random.default_rng([seed, int(snr)])
    if dims == 2:
        truth = sample_parameters(seed, dims=2)
        clean = simulate_system_matrix(truth)
    else:
        truth = reference_parameters(3, fluid=bool(seed % 2), grid=(19, 19, 19))
        clean = simulate_system_matrix(truth, max_frequency=250e3)
    sigma = float(np.abs(clean.data).max()) / snr
    noise = rng.standard_normal(clean.data.shape) + 1j * rng.standard_normal(clean.data.shape)
    sm, _ = state_geometry(clean.replace(data=(clean.data + sigma * noise).astype(np.complex64)),
                           rng)
    return truth, sm, sigma


def errors(truth, sm, result) -> dict[str, float]:
    from pympisr.fitting import nominal_geometry

    d = truth.dims
    stated = nominal_geometry(sm)
    c = np.exp(np.mean(np.log(truth.drive_amplitude[:d] / stated.drive_amplitude[:d])))
    grad = np.max(np.abs(result.values["gradient"][:d] / (truth.gradient[:d] / c) - 1))
    drive = np.max(np.abs(result.values["drive_amplitude"][:d]
                          / (truth.drive_amplitude[:d] / c) - 1))
    center = np.max(np.abs(result.values["center"][:d] - truth.center[:d]) / truth.fov[:d])
    start = np.max(np.abs(sm.center[:d] - truth.center[:d]) / truth.fov[:d])
    return {"gradient_%": 100 * grad, "drive_%": 100 * drive, "center_%fov": 100 * center,
            "stated_center_%fov": 100 * start, "state_ok": result.fluid == truth.fluid}


def bound(truth, sm, sigma, everything: bool = False) -> tuple[float, float]:
    """Cramer-Rao bound (%, % FOV) of the log-gradient and the centre (module doc); with
    ``everything`` from every component of the driven channels (all nonzero frequencies),
    not only those the fit selects."""
    from pympisr.fitting import FitProblem, ParameterSpace, nominal_geometry
    from pympisr.fitting.solver import frequency_bins, select_components
    from pympisr.restoration.noise_level import component_noise
    from pympisr.simulation.system_matrix import simulate_system_matrix

    d = truth.dims
    nominal = nominal_geometry(sm)
    if everything:
        rows = np.flatnonzero(frequency_bins(sm) != 0)
        chosen = np.array([(c, k) for c in range(d) for k in rows])
    else:
        chosen = select_components(sm, component_noise(sm, sigma).std, 40)
    clean = simulate_system_matrix(truth, frequencies=frequency_bins(sm))
    flat = clean.data.reshape(*clean.data.shape[:2], -1)
    space = ParameterSpace(nominal, truth.fluid)
    x = space.vector_of(truth)
    problem = FitProblem(space, flat[chosen[:, 0], chosen[:, 1]].astype(np.complex128),
                         chosen[:, 0], frequency_bins(sm)[chosen[:, 1]],
                         np.arange(sm.num_voxels), np.full(chosen.shape[0], 1.0 / sigma))
    std = np.sqrt(np.diag(np.linalg.inv(problem.information(x))))
    return 100 * float(std[:d].max()), 100 * float(std[2 * d - 1:3 * d - 1].max())


def main() -> None:
    from pympisr.errors import InvalidInputError
    from pympisr.fitting import fit

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sms", type=int, default=4)
    parser.add_argument("--snr", type=float, nargs="+", default=[3, 10, 100, 1000])
    parser.add_argument("--3d", dest="three_d", action="store_true")
    parser.add_argument("--bound", action="store_true",
                        help="also print the Cramer-Rao bound (2D; module docstring)")
    args = parser.parse_args()
    print("| dims | seed | SNR | grid | fluid | gradient err % | drive err % | centre err "
          "% FOV (stated) | state ok | sims | time s | bound gradient % | bound centre % | "
          "bound, all: gradient % | bound, all: centre % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    runs = [(3, s, 1000.0) for s in range(1)] if args.three_d else [
        (2, s, snr) for snr in args.snr for s in range(args.sms)]
    for dims, seed, snr in runs:
        truth, sm, sigma = case(seed, snr, dims)
        head = f"| {dims} | {seed} | {snr:g} | {'x'.join(map(str, truth.grid[:dims]))} | " \
               f"{truth.fluid} |"
        t0 = time.perf_counter()
        try:
            result = fit(sm, noise=sigma, progress=False)
        except InvalidInputError as exc:  # too few significant components: refused
            print(f"{head} refused: {exc} | | | | | | "
                  + (" - | - | {:.2f} | {:.2f} |".format(*bound(truth, sm, sigma, True))
                     if args.bound and dims == 2 else " - | - | - | - |"), flush=True)
            continue
        elapsed = time.perf_counter() - t0
        e = errors(truth, sm, result)
        print(f"{head} {e['gradient_%']:.3f} | {e['drive_%']:.3f} | "
              f"{e['center_%fov']:.3f} ({e['stated_center_%fov']:.2f}) | {e['state_ok']} | "
              f"{result.evaluations} | {elapsed:.1f} | "
              + (" {:.2f} | {:.2f} | {:.2f} | {:.2f} |".format(
                  *bound(truth, sm, sigma), *bound(truth, sm, sigma, everything=True))
                 if args.bound and dims == 2 else " - | - | - | - |"), flush=True)


if __name__ == "__main__":
    main()
