"""Benchmark: restore time of every task's shipped model on the issues' reference sizes.

    python benchmarks/bench_restore_tasks.py [--cases upsample2d,denoise3d,...] [--threads N]
        [--model NAME_OR_ONNX]

Cases (targets from the issues, 2 cores):

* ``upsample2d``: a 2D 22 x 22 SM with 3 x 817 components (the 2 x 2 block means of the
  reference scanner's 44 x 44 SM) upsampled x2 to 44 x 44; target <= 30 s (issue 17);
* ``accelerate3d``: a 3D SM measured on every 2nd point of a 19^3 grid (10^3, 3 x 1000
  components) restored to 19^3 (no target; reported);
* ``denoise3d``: a 3D 19^3 SM with 3 x 1000 components; target <= 120 s (issue 12);
* ``inpaint3d``: the same SM with 10 % of its positions (one block in robot order)
  corrupted, inpainted with the mask; target <= 120 s (issue 11).

Each SM is the reference scanner's (``reference_parameters``) with one absolute noise
floor (``--floor`` x max|S| per part), restored with ``restore_system_matrix`` and the
safety step, with the model the manifest lists first for the task (or ``--model``).
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

CASES = ("upsample2d", "accelerate3d", "denoise3d", "inpaint3d")


def noisy(sm, floor: float, seed: int = 0):
    """``sm`` plus complex noise of per-part std ``floor * max|S|``; returns (sm, std)."""
    rng = np.random.default_rng(seed)
    std = floor * float(np.abs(sm.data).max())
    noise = std * (rng.standard_normal(sm.data.shape) + 1j * rng.standard_normal(sm.data.shape))
    return sm.replace(data=(sm.data + noise).astype(np.complex64)), std


def reference_sm(dims: int, grid: tuple[int, int, int], bins: int):
    from pympisr.simulation.parameters import reference_parameters
    from pympisr.simulation.system_matrix import simulate_system_matrix
    return simulate_system_matrix(reference_parameters(dims, grid=grid),
                                  frequencies=np.arange(bins))


def case_inputs(case: str, floor: float):
    """(task, scale, input SM, noise std, mask) of a case."""
    from pympisr.degradations import InpaintingMask
    from pympisr.tasks import get_task

    if case == "upsample2d":
        fine = reference_sm(2, (44, 44, 1), 817)
        sm, std = noisy(get_task("upsample", 2, 2).degrade_system_matrix(fine), floor)
        return "upsample", 2, sm, std, None
    fine = reference_sm(3, (19, 19, 19), 1000)
    if case == "accelerate3d":
        sm, std = noisy(get_task("accelerate", 3, 2).degrade_system_matrix(fine), floor)
        return "accelerate", 2, sm, std, None
    sm, std = noisy(fine, floor)
    if case == "denoise3d":
        return "denoise", None, sm, std, None
    mask = InpaintingMask(0.1, 3).sample_single((19, 19, 19), np.random.default_rng(0))
    return "inpaint", None, sm.replace(data=sm.data * mask), std, mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--model", default=None,
                        help="manifest name or .onnx path used for every case given "
                             "(default: the manifest's first model of each case's task)")
    parser.add_argument("--floor", type=float, default=1e-3,
                        help="noise std per part relative to the SM's maximum magnitude")
    args = parser.parse_args()

    import torch

    from pympisr.model_zoo import resolve_model
    from pympisr.restoration import OnnxRestorer, restore_system_matrix
    from pympisr.restoration.runtime import default_threads

    threads = args.threads or default_threads()
    torch.set_num_threads(threads)
    targets = {"upsample2d": 30.0, "denoise3d": 120.0, "inpaint3d": 120.0}
    rows = []
    for case in args.cases.split(","):
        task, scale, sm, std, mask = case_inputs(case, args.floor)
        resolved = resolve_model(args.model, task=task, dims=sm.dims, scale=scale)
        restorer = OnnxRestorer(resolved, threads=threads)
        t0 = time.perf_counter()
        out = restore_system_matrix(sm, task=task, model=restorer, noise=std, mask=mask,
                                    progress=False)
        seconds = time.perf_counter() - t0
        count = sm.data.shape[0] * sm.data.shape[1]
        grid_in = "x".join(str(n) for n in sm.grid if n > 1)
        grid_out = "x".join(str(n) for n in out.grid if n > 1)
        target = targets.get(case)
        rows.append((case, restorer.name, f"{grid_in} -> {grid_out}", count, seconds,
                     "-" if target is None else f"<= {target:g} s: "
                     f"{'met' if seconds <= target else 'NOT met'}"))
    print(f"threads: {threads}, noise floor {args.floor:g} x max|S|, safety step on\n")
    print("| case | model | grid | components | time (s) | target |")
    print("|---|---|---|---|---|---|")
    for case, name, grid, count, seconds, target in rows:
        print(f"| {case} | {name} | {grid} | {count} | {seconds:.1f} | {target} |")


if __name__ == "__main__":
    main()
