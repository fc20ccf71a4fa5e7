"""Benchmark: forward time of every registered architecture's small size on the CPU.

    python benchmarks/bench_networks.py [--threads 1] [--batch 64] [--repeats 3]
                                        [--clock cpu|wall]

For each architecture in :func:`pympisr.models.available_models` the size named
``<family>-small`` (else the registered size with the fewest parameters) is built in eval
mode and timed on a batch of 2D 44 x 44 components (the MDF v2 example calibration's
grid) and, where the network supports 3D, of 19 x 19 x 19 components (the seed paper's
3D grid). Inputs have the network's extra inputs (noise level, mask) where it declares
them; grids are rounded up to the network's ``size_multiple``. Timed: PyTorch eager,
``torch.inference_mode``, best of ``--repeats`` after one warm-up. Prints a markdown
table: parameters, milliseconds per component. ``--clock cpu`` (the default) measures
the process's CPU time, which on one thread is the compute time even on a machine that
other jobs share; ``--clock wall`` measures elapsed time (use it with several threads).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn

GRID_2D = (44, 44)
GRID_3D = (19, 19, 19)


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def best_of(fn: Callable[[], object], repeats: int, clock: Callable[[], float]) -> float:
    """Shortest of ``repeats`` timings of ``fn`` (seconds) after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return min(times)


def small_size(architecture: str, names: list[str]) -> str:
    """``<family>-small`` of the architecture, else its size with the fewest parameters."""
    from pympisr.models import build_model, model_spec

    sizes = [n for n in names if model_spec(n).architecture == architecture]
    small = [n for n in sizes if n.endswith("-small")]
    if small:
        return small[0]

    def parameters(name: str) -> int:
        for dims in (2, 3):
            try:
                return sum(p.numel() for p in build_model(name, dims=dims).parameters())
            except ValueError:
                continue
        return 0

    return min(sizes, key=parameters)


def time_per_component(net: nn.Module, grid: tuple[int, ...], batch: int,
                       repeats: int, clock: Callable[[], float]) -> float:
    """Milliseconds per component of one forward pass on ``batch`` components."""
    from pympisr.models.conditioning import run_network

    multiple = int(getattr(net, "size_multiple", 1))
    grid = tuple(n + (-n) % multiple for n in grid)
    x = torch.randn(batch, 2, *grid)
    sigma = torch.full((batch, 1), 0.1)
    mask = (torch.rand(batch, 1, *grid) > 0.1).float()

    def forward() -> None:
        with torch.inference_mode():
            run_network(net, x, sigma, mask)

    return 1e3 * best_of(forward, repeats, clock) / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64, help="2D components per batch")
    parser.add_argument("--batch3d", type=int, default=8, help="3D components per batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="cpu: process CPU time (default); wall: elapsed time")
    args = parser.parse_args()

    from pympisr.models import available_models, build_model, model_spec

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    names = available_models()
    architectures = sorted({model_spec(n).architecture for n in names})
    print(f"threads: {args.threads}, batch 2D: {args.batch}, batch 3D: {args.batch3d}, "
          f"best of {args.repeats}, {args.clock} time\n")
    print(f"| architecture | size | parameters (2D) | scale | 2D {GRID_2D[0]}x{GRID_2D[1]} "
          f"(ms/component) | 3D {GRID_3D[0]}^3 (ms/component) |")
    print("|---|---|---|---|---|---|")
    for architecture in architectures:
        name = small_size(architecture, names)
        cells = []
        params = "-"
        scale = "-"
        for dims, grid, batch in ((2, GRID_2D, args.batch), (3, GRID_3D, args.batch3d)):
            try:
                net = build_model(name, dims=dims).eval()
            except ValueError:
                cells.append("2D only" if dims == 3 else "3D only")
                continue
            if dims == 2 or params == "-":
                params = f"{sum(p.numel() for p in net.parameters()):,}"
                scale = str(net.scale_factor)
            ms = time_per_component(net, grid, batch, args.repeats, CLOCKS[args.clock])
            cells.append(f"{ms:.2f}")
        print(f"| {architecture} | {name} | {params} | {scale} | {cells[0]} | {cells[1]} |",
              flush=True)


if __name__ == "__main__":
    main()
